"""The table of docs/calibration.md: DeepSeek's trace kernels against H100-based predictions
(:func:`sim.experiments.trace_validation.kernel_rows` computes the rows; ``twin validate kernels``
prints this table).

One row per GEMM, attention and memory-bound op of a MoE layer: the trace's time, the H100-based and
the datasheet profiles' predictions on 112 SMs and their errors; then per kind the totals, the total's
error and the median absolute error of the ops.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sim.experiments.trace_validation import KernelRow

KINDS = ("gemm", "attention", "memory")


def table(rows: Sequence[KernelRow]) -> str:
    """Markdown: every op, then the totals per kind (microseconds)."""
    lines = [
        "| annotation | op | shape | trace us | H100-based us | error | datasheet us | error |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, h, d = r.trace_us, r.h100_us, r.datasheet_us
        lines.append(
            f"| {r.annotation} | {r.op} | {r.shape} | {t:.0f} | {h:.0f} | {100 * (h / t - 1):+.0f}% "
            f"| {d:.0f} | {100 * (d / t - 1):+.0f}% |"
        )
    for kind in KINDS:
        sel = [(r.trace_us, r.h100_us, r.datasheet_us) for r in rows if r.kind == kind]
        if sel:
            th = sum(t for t, _, _ in sel)
            hh = sum(h for _, h, _ in sel)
            dd = sum(d for _, _, d in sel)
            med = statistics.median(abs(h / t - 1) for t, h, _ in sel)
            lines.append(
                f"| **all {kind}** | | {len(sel)} ops | {th:.0f} | {hh:.0f} | {100 * (hh / th - 1):+.0f}% "
                f"(median abs {100 * med:.0f}%) | {dd:.0f} | {100 * (dd / th - 1):+.0f}% |"
            )
    return "\n".join(lines)
