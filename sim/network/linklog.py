"""What the network carried and when: a log of finished coflows and flow batches, and the bytes each
link block carried per time bin (the link counters of a Perfetto trace).

While a run's main event loop runs, :class:`~sim.network.flows.FlowNetwork` appends one record per
finished coflow (its kind: the bytes it put on each link) and one per finished batch of plain flows
(its bytes per link block), with its start and end from the run's origin and its tag (``deepep``,
``pipeline``, ``zero1``, ``flows``). Measurements taken alone (:meth:`SimContext.run_alone`) are not
logged: they take no time on the run's clock.

:func:`block_counters` turns the log into bytes per (time bin, link block, tag). A record's bytes are
spread evenly over its life (its mean rate); under contention a coflow's real rate varies, so a bin
may hold bytes a few bins early or late, but every record's bytes land in the bins it spans, exactly
once: the counters integrate to the bytes the network carried (a test checks it against
:attr:`~sim.network.flows.FlowStats.coflow_bytes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class LinkLog:
    """Finished coflows ``(start, end, kind, tag)`` and plain batches ``(start, end, tag, bytes per
    block)``, times in seconds from the run's origin. Coflows are added as they finish
    (:meth:`add_coflow`), except those that ran on a reservation
    (:meth:`~sim.network.flows.FlowNetwork.ran_solo`), added when it ends: readers take them in order
    of their ends. A step finishes some 30,000 coflows: they are kept column by column (plain floats,
    ints and strings, which the cyclic garbage collector never visits), :attr:`coflows` zips them."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    batches: list[tuple[float, float, str, np.ndarray]] = field(default_factory=list)

    def add_coflow(self, start: float, end: float, kind: int, tag: str) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.kinds.append(kind)
        self.tags.append(tag)

    def add_coflows(
        self, starts: Sequence[float], ends: Sequence[float], kinds: Sequence[int], tags: Sequence[str]
    ) -> None:
        """:meth:`add_coflow` for each of several coflows, in order."""
        self.starts.extend(starts)
        self.ends.extend(ends)
        self.kinds.extend(kinds)
        self.tags.extend(tags)

    @property
    def coflows(self) -> list[tuple[float, float, int, str]]:
        """The finished coflows as ``(start, end, kind, tag)``, in the order they were added."""
        return list(zip(self.starts, self.ends, self.kinds, self.tags, strict=True))

    @classmethod
    def of(
        cls, coflows: list[tuple[float, float, int, str]], batches: list[tuple[float, float, str, np.ndarray]]
    ) -> LinkLog:
        log = cls(batches=list(batches))
        for record in coflows:
            log.add_coflow(*record)
        return log

    def __len__(self) -> int:
        return len(self.starts) + len(self.batches)


COUNTER_COLUMNS = ["start_s", "end_s", "block", "tag", "bytes"]


def _end(record: tuple[float, float, int, str]) -> float:
    return record[1]


@dataclass(frozen=True)
class CarriedLog:
    """A run's link log with what reading it needs: the bytes one coflow of each kind puts on each
    link block, and the blocks' names."""

    log: LinkLog
    kind_block_bytes: list[np.ndarray]
    block_names: tuple[str, ...]
    kind_links: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per kind: links, bytes

    def counters(self, end_s: float, bins: int = 2000) -> pd.DataFrame:
        """:func:`block_counters` over ``[0, end_s]``."""
        return block_counters(self.log, self.kind_block_bytes, self.block_names, end_s, bins)

    def group_counters(
        self, group_of_link: np.ndarray, group_names: tuple[str, ...], end_s: float, bins: int = 2000
    ) -> pd.DataFrame:
        """Bytes per (bin, group of links, tag) of the coflows, the ``block`` column naming the group:
        ``group_of_link[i]`` is link ``i``'s group (an index into ``group_names``), -1 for links in none
        (a rank's NICs, say). Plain flow batches are logged per block only and are not counted."""
        per_kind = []
        for links, link_bytes in self.kind_links:
            g = group_of_link[links]
            mine = g >= 0
            per_kind.append(np.bincount(g[mine], weights=link_bytes[mine], minlength=len(group_names)))
        log = self.log
        coflows_only = LinkLog(log.starts, log.ends, log.kinds, log.tags)  # read only: the columns as they are
        return block_counters(coflows_only, per_kind, group_names, end_s, bins)


def block_counters(
    log: LinkLog,
    kind_block_bytes: list[np.ndarray],
    block_names: tuple[str, ...],
    end_s: float,
    bins: int = 2000,
) -> pd.DataFrame:
    """Bytes per (bin, link block, tag): ``bins`` equal bins over ``[0, end_s]``; ``kind_block_bytes[k]``
    the bytes a coflow of kind ``k`` puts on each block. Rows only where bytes moved."""
    import pandas as pd  # only when the counters are read (outputs), not for a run's figures

    if not len(log) or end_s <= 0:
        return pd.DataFrame({c: [] for c in COUNTER_COLUMNS})
    width = end_s / bins
    log = LinkLog.of(sorted(log.coflows, key=_end), log.batches)  # as they finished (stable: ties stay)
    tags = sorted(set(log.tags) | {t for _, _, t, _ in log.batches})
    tag_of = {t: i for i, t in enumerate(tags)}
    nblocks = len(block_names)
    out = np.zeros((bins, len(tags), nblocks))
    # one row of bytes per block for each coflow kind, then one per plain batch: a record names its row
    table = np.zeros((len(kind_block_bytes) + len(log.batches), nblocks))
    for k, v in enumerate(kind_block_bytes):
        table[k, : len(v)] = v
    for i, (*_, b) in enumerate(log.batches):
        table[len(kind_block_bytes) + i, : len(b)] = b
    start = np.array(log.starts + [s for s, *_ in log.batches], dtype=np.float64)
    end = np.array(log.ends + [e for _, e, *_ in log.batches], dtype=np.float64)
    tag = np.array([tag_of[t] for t in log.tags] + [tag_of[t] for _, _, t, _ in log.batches], dtype=np.int64)
    row = np.array(log.kinds, dtype=np.int64)
    row = np.concatenate([row, len(kind_block_bytes) + np.arange(len(log.batches), dtype=np.int64)])
    # each record's share of its bytes in each bin it spans (1 in one bin when it lasts no time)
    first = np.clip((start / width).astype(np.int64), 0, bins - 1)
    last = np.clip((end / width).astype(np.int64), 0, bins - 1)
    last = np.maximum(last, first)
    span = last - first + 1
    rec = np.repeat(np.arange(len(row)), span)
    b = first[rec] + (np.arange(len(rec)) - np.repeat(np.cumsum(span) - span, span))
    lo = np.maximum(start[rec], b * width)
    hi = np.minimum(end[rec], (b + 1) * width)
    life = end[rec] - start[rec]
    frac = np.where(life > 0, np.clip(hi - lo, 0.0, None) / np.where(life > 0, life, 1.0), 0.0)
    # rounding at the bin edges: make each record's shares sum to exactly one
    total = np.bincount(rec, weights=frac, minlength=len(row))
    single = total <= 0
    frac = np.where(single[rec], (b == first[rec]).astype(np.float64), frac / np.where(single, 1.0, total)[rec])
    np.add.at(out, (b, tag[rec]), frac[:, None] * table[row[rec]])
    nz_bin, nz_tag, nz_block = np.nonzero(out)
    return pd.DataFrame(
        {
            "start_s": nz_bin * width,
            "end_s": (nz_bin + 1) * width,
            "block": [block_names[i] for i in nz_block],
            "tag": [tags[i] for i in nz_tag],
            "bytes": out[nz_bin, nz_tag, nz_block],
        }
    )
