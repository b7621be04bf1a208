"""The table of docs/calibration.md: DeepSeek's trace kernels against H100-based predictions.

    python -m reports.trace_kernels > table.md

Every GEMM, attention and memory-bound op of one MoE layer in DeepSeek's H800 trace (kernels matched to
the layer model's ops by order, mean alone-equivalent time over the 4 layers at 112 SMs) beside what
the profile built from the H100 measurements alone predicts for the same shape on 112 SMs (the H800
keeps the H100's SMs, clocks and HBM), and the datasheet profile's prediction.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from calibrate.trace_calibration import TRACE_SMS, match_ops, op_means
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile
from sim.training.costs import OpCoster
from sim.training.params import ChunkParams

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO.parent / "shared" / "reference" / "deepseek-v3" / "profile-data-train.json"
PROFILES = REPO / "calibrate" / "profiles"


def rows(trace: Path = TRACE) -> list[tuple[str, str, str, str, float, float, float]]:
    """(annotation, op, kind, shape, trace us, H100-based us, datasheet us) of every compute op."""
    h100 = OpCoster(CostModel(load_profile(PROFILES / "h100-sxm-measured.json")), TRACE_SMS, ChunkParams())
    sheet = OpCoster(CostModel(load_profile(PROFILES / "h800-datasheet.json")), TRACE_SMS, ChunkParams())
    out = []
    for (ann, name), (op, t) in op_means(match_ops(trace), ChunkParams()).items():
        if op.stream == "comm" or op.kind == "small":
            continue
        if op.kind == "gemm":
            shape = f"{op.dtype} {op.m}x{op.n}x{op.k}"
        elif op.kind == "attention":
            shape = f"{op.phase} {op.heads}h s{op.seq} {op.qk_dim}/{op.v_dim}"
        else:
            shape = f"{op.kernel} {op.nbytes / 1e6:.0f} MB"
        out.append((ann, name, op.kind, shape, t * 1e6, h100.kernel_time(op) * 1e6, sheet.kernel_time(op) * 1e6))
    return out


def table(trace: Path = TRACE) -> str:
    lines = [
        "| annotation | op | shape | trace us | H100-based us | error | datasheet us | error |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    data = rows(trace)
    for ann, name, _, shape, t, h, d in data:
        lines.append(
            f"| {ann} | {name} | {shape} | {t:.0f} | {h:.0f} | {100 * (h / t - 1):+.0f}% "
            f"| {d:.0f} | {100 * (d / t - 1):+.0f}% |"
        )
    for kind in ("gemm", "attention", "memory"):
        sel = [(t, h, d) for (_, _, k, _, t, h, d) in data if k == kind]
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


if __name__ == "__main__":
    print(table())
