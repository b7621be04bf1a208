"""The table of docs/deepep.md: DeepEP's published test setting as the twin predicts it
(:mod:`sim.experiments.deepep_table` runs it; ``twin check deepep`` prints this document)."""

from __future__ import annotations

from collections.abc import Iterable

from reports.document import Document
from sim.experiments.deepep_table import DeepEPRow
from sim.number_text import signed_percent

HEADERS = [
    "EP",
    "link",
    "SMs",
    "dispatch GB/s (twin)",
    "published",
    "error",
    "combine GB/s (twin)",
    "published",
    "error",
    "dispatch us",
    "combine us",
]
ALIGN = "rlrrrrrrrrr"


def table_rows(rows: Iterable[DeepEPRow]) -> list[list[str]]:
    """Every EP size and SM count: the twin's GB/s beside the published ones, and the times."""
    out = []
    for r in rows:
        d, pub_d, c, pub_c = r.dispatch_GBps, r.published_dispatch_GBps, r.combine_GBps, r.published_combine_GBps
        out.append(
            [
                str(r.ep),
                r.link,
                str(r.sms),
                f"{d:.1f}",
                f"{pub_d:g}",
                signed_percent(d / pub_d - 1),
                f"{c:.1f}",
                f"{pub_c:g}",
                signed_percent(c / pub_c - 1),
                f"{r.dispatch_us:.0f}",
                f"{r.combine_us:.0f}",
            ]
        )
    return out


def document(rows: Iterable[DeepEPRow]) -> Document:
    """``twin check deepep``: the table under its title."""
    doc = Document("DeepEP normal kernels: the twin against DeepEP's README (H800 + CX7)")
    doc.table(HEADERS, table_rows(rows), align=ALIGN)
    return doc
