"""Closed-form bubble of each schedule (DeepSeek-V3 report, Table 2; Megatron; ZB paper).

Valid for uniform stages with zero transfer cost; for DualPipe only when W = B/2 and F&B = F + B
(elsewhere the timed simulation differs, which is the point of a twin). ``None`` means no closed
form is published for that case.
"""

from __future__ import annotations


def bubble(name: str, pp: int, f: float, b: float, w: float, fb: float | None = None, v: int = 2) -> float | None:
    """Per-device bubble of ``name`` with per-stage times F, B, W (and F&B)."""
    if name == "1f1b":
        return (pp - 1) * (f + b)
    if name == "zb1p":
        return (pp - 1) * (f + b - 2 * w)
    if name == "interleaved-1f1b":
        return (pp - 1) * (f + b) / v
    if name in ("dualpipe", "dualpipev"):
        return (pp / 2 - 1) * ((f + b if fb is None else fb) + b - 3 * w)
    return None
