"""The table of docs/deepep.md: DeepEP's published test setting as the twin predicts it
(:mod:`sim.experiments.deepep_table` runs it; ``twin validate deepep`` prints this table)."""

from __future__ import annotations

from collections.abc import Iterable

from sim.experiments.deepep_table import DeepEPRow


def table(rows: Iterable[DeepEPRow]) -> str:
    """Markdown: every EP size and SM count, the twin's GB/s beside the published ones, and the times."""
    lines = [
        "| EP | link | SMs | dispatch GB/s (twin) | published | error | combine GB/s (twin) | published | error "
        "| dispatch us | combine us |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d, pub_d, c, pub_c = r.dispatch_GBps, r.published_dispatch_GBps, r.combine_GBps, r.published_combine_GBps
        lines.append(
            f"| {r.ep} | {r.link} | {r.sms} | {d:.1f} | {pub_d:g} | {100 * (d / pub_d - 1):+.0f}% "
            f"| {c:.1f} | {pub_c:g} | {100 * (c / pub_c - 1):+.0f}% | {r.dispatch_us:.0f} | {r.combine_us:.0f} |"
        )
    return "\n".join(lines)
