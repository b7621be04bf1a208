"""The table of docs/calibration.md: DeepSeek's trace kernels against H100-based predictions
(:func:`sim.experiments.trace_validation.kernel_rows` computes the rows; ``twin check kernels``
prints this document).

One row per GEMM, attention and memory-bound op of a MoE layer: the trace's time, the H100-based and
the datasheet profiles' predictions on 112 SMs and their errors; then per kind the totals, the total's
error and the median absolute error of the ops.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from reports.document import Document
from sim.experiments.trace_validation import KernelRow
from sim.number_text import signed_percent

KINDS = ("gemm", "attention", "memory")
HEADERS = ["annotation", "op", "shape", "trace us", "H100-based us", "error", "datasheet us", "error"]
ALIGN = "lllrrrrr"


def table_rows(rows: Sequence[KernelRow]) -> list[list[str]]:
    """Every op, then the totals per kind (microseconds)."""
    out = []
    for r in rows:
        t, h, d = r.trace_us, r.h100_us, r.datasheet_us
        out.append(
            [
                r.annotation,
                r.op,
                r.shape,
                f"{t:.0f}",
                f"{h:.0f}",
                signed_percent(h / t - 1),
                f"{d:.0f}",
                signed_percent(d / t - 1),
            ]
        )
    for kind in KINDS:
        sel = [(r.trace_us, r.h100_us, r.datasheet_us) for r in rows if r.kind == kind]
        if sel:
            th = sum(t for t, _, _ in sel)
            hh = sum(h for _, h, _ in sel)
            dd = sum(d for _, _, d in sel)
            med = statistics.median(abs(h / t - 1) for t, h, _ in sel)
            out.append(
                [
                    f"**all {kind}**",
                    "",
                    f"{len(sel)} ops",
                    f"{th:.0f}",
                    f"{hh:.0f}",
                    f"{signed_percent(hh / th - 1)} (median abs {100 * med:.0f}%)",
                    f"{dd:.0f}",
                    signed_percent(dd / th - 1),
                ]
            )
    return out


def document(rows: Sequence[KernelRow]) -> Document:
    """``twin check kernels``: the table under its title."""
    doc = Document("DeepSeek's trace kernels against the H100-based and datasheet profiles (112 SMs)")
    doc.table(HEADERS, table_rows(rows), align=ALIGN)
    return doc
