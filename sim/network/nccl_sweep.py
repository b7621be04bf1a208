"""A size sweep of one collective on the flow-level network, in nccl-tests' sizes, columns and numbers.

People who run nccl-tests read a collective as a table: one row per message size from ``-b``
(minBytes) to ``-e`` (maxBytes), each size ``-f`` (stepFactor) times the last, or ``-i``
(stepBytes) more when the factor is 1, and busbw read against link bandwidth. ``twin collective``
gives the twin's figures the same way so the two can be laid side by side, diffed, or read by the
same scripts (``calibrate.nccl_tests.parse_log`` reads this output back).

Followed from nccl-tests 2.19.6 (github.com/NVIDIA/nccl-tests, commit a0b82b2: ``src/common.cu``,
``src/util.cu``, ``src/<collective>.cu``):

* sizes (:func:`parse_size`): a number, optionally followed by K, M or G (2^10, 2^20, 2^30 bytes,
  either case), truncated to whole bytes; the loop runs while ``size <= maxBytes``;
* each size becomes a count of ``float`` elements (4 bytes), ``count = size / 4``; all-gather,
  reduce-scatter and all-to-all round the count per rank down to 16 bytes' worth
  (:func:`nccl_size`), so the size column (the larger of the send and receive buffers) can be
  less than asked, even 0; the count column is per rank for those three, the whole buffer for
  all-reduce and send/recv;
* ``redop`` is ``sum`` (all-reduce, reduce-scatter, send/recv) or ``none`` (all-gather,
  all-to-all), ``root`` -1;
* time in microseconds, algbw and busbw in GB/s (10^9), each printed in nccl-tests' widths
  (:func:`float_str`, its ``getFloatStr``); busbw = algbw x :func:`bus_factor`;
* ``Avg bus bandwidth``: the mean busbw over every row and both placements, printed with ``%g``.

What the twin does not have: data (nothing is moved or checked, so ``#wrong`` is ``N/A``, as
nccl-tests prints with ``-c 0``) and in-place buffers (the flow model moves the same bytes either
way, so the in-place columns repeat the out-of-place figures). A size rounded down to 0 bytes moves
nothing: its time and bandwidths are 0 (nccl-tests would show a launch's few microseconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sim.errors import ScenarioError
from sim.hardware.costmodel import NCCL_NAMES
from sim.limits import MAX_BYTES, MAX_SWEEP_SIZES
from sim.network.collectives import CollectiveResult, bus_factor, check_collective, run_collective
from sim.network.context import SimContext
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology
from sim.number_text import not_ascii

ELEMENT = ("float", 4)  # nccl-tests' default data type (-d float) and its bytes
PROGRAM = {kind: f"{name}_perf" for kind, name in NCCL_NAMES.items()}
REDOP = {"allreduce": "sum", "reducescatter": "sum", "sendrecv": "sum", "allgather": "none", "alltoall": "none"}
PER_RANK_COUNT = ("allgather", "reducescatter", "alltoall")  # count column per rank, rounded to 16 B
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"^\s*(\S+?)\s*([kKmMgG]?)\s*$")
SIZE_FORMS = "a size in bytes like 8, 1K, 128M or 1G (K, M, G = 2^10, 2^20, 2^30, as nccl-tests reads them)"


def parse_size(text: str) -> int:
    """Bytes of a size written as nccl-tests' ``-b``/``-e``/``-i`` take it (``8``, ``1K``, ``1.5M``,
    ``1e9``), truncated to whole bytes; ValueError (saying what is allowed) otherwise."""
    m = _SIZE.match(text) if not_ascii(text) is None else None  # (float reads every script's digits)
    try:
        number = float(m[1]) if m else math.nan
    except ValueError:
        number = math.nan
    if m is None or not math.isfinite(number):
        raise ValueError(f"must be {SIZE_FORMS}, got {text!r}")
    value = number * _UNITS[m[2].lower()]
    if not 1 <= value <= MAX_BYTES:
        raise ValueError(f"must be {SIZE_FORMS} in [1, {MAX_BYTES:g}], got {text!r}")
    return int(value)


def sweep_sizes(minbytes: int, maxbytes: int, stepfactor: int = 1, stepbytes: int = 1 << 20) -> list[int]:
    """The sizes nccl-tests runs: from ``minbytes`` while ``<= maxbytes``, times ``stepfactor``, or
    plus ``stepbytes`` when the factor is 1; at most :data:`~sim.limits.MAX_SWEEP_SIZES` of them."""
    if minbytes < 1:
        raise ScenarioError("minbytes", f"must be at least 1 byte, got {minbytes:,}")
    if maxbytes < minbytes:
        raise ScenarioError("maxbytes", f"must be at least minbytes ({minbytes:,} B), got {maxbytes:,} B")
    if stepfactor < 1 or stepbytes < 1:
        raise ScenarioError("stepfactor" if stepfactor < 1 else "stepbytes", "must be at least 1")
    sizes: list[int] = []
    size = minbytes
    while size <= maxbytes:
        if len(sizes) == MAX_SWEEP_SIZES:
            how = "raise --stepfactor" if stepfactor > 1 else "raise --stepbytes or give --stepfactor"
            raise ScenarioError(
                "stepfactor" if stepfactor > 1 else "stepbytes",
                f"{minbytes:,}..{maxbytes:,} B gives more than {MAX_SWEEP_SIZES:,} sizes; {how}",
            )
        sizes.append(size)
        size = size * stepfactor if stepfactor > 1 else size + stepbytes
    return sizes


def nccl_size(kind: str, ranks: int, size: int) -> tuple[int, int]:
    """(size column in bytes, count column in elements) nccl-tests prints when asked for ``size``."""
    elt = ELEMENT[1]
    count = size // elt
    if kind in PER_RANK_COUNT:
        per_rank = (count // ranks) & ~(16 // elt - 1)
        return per_rank * ranks * elt, per_rank
    return count * elt, count


@dataclass(frozen=True)
class SweepRow:
    """One size of a sweep: nccl-tests' size and count, and the twin's collective (None: 0 bytes)."""

    kind: str
    algorithm: str
    ranks: int
    size: int
    count: int
    result: CollectiveResult | None

    @property
    def time_s(self) -> float:
        return self.result.time_s if self.result else 0.0

    @property
    def algbw_GBps(self) -> float:
        return self.result.algbw_Bps / 1e9 if self.result else 0.0

    @property
    def busbw_GBps(self) -> float:
        return self.result.busbw_Bps / 1e9 if self.result else 0.0

    def record(self) -> dict[str, float | int | str | None]:
        """The row as one JSON record: nccl-tests' columns (out-of-place; in-place is the same in the
        twin) and the twin's figures (``time_s``, busiest link, flows)."""
        r = self.result
        return {
            "size": self.size,
            "count": self.count,
            "type": ELEMENT[0],
            "redop": REDOP[self.kind],
            "root": -1,
            "time_us": self.time_s * 1e6,
            "algbw_GBps": self.algbw_GBps,
            "busbw_GBps": self.busbw_GBps,
            "wrong": None,
            "bus_factor": bus_factor(self.kind, self.ranks),
            "time_s": self.time_s,
            "max_link_utilization": r.max_link_utilization if r else 0.0,
            "flows": r.flows if r else 0,
            "kind": self.kind,
            "algorithm": self.algorithm,
            "ranks": self.ranks,
            "size_bytes": float(self.size),
        }


def run_sweep(
    topo: Topology,
    kind: str,
    gpus: int,
    sizes: list[int],
    algorithm: str = "ring",
    seed: int | None = None,
    completion_rtol: float = COMPLETION_RTOL,
    progress: Callable[[int], None] | None = None,
) -> list[SweepRow]:
    """Each size's collective alone on one network (one context: the same routes for every size)."""
    check_collective(topo, kind, gpus, algorithm)
    ctx = SimContext(topo, completion_rtol, seed)
    rows = []
    for i, asked in enumerate(sizes):
        size, count = nccl_size(kind, gpus, asked)
        result = run_collective(topo, kind, gpus, size, algorithm, seed, completion_rtol, ctx) if size else None
        rows.append(SweepRow(kind, algorithm, gpus, size, count, result))
        if progress is not None:
            progress(i + 1)
    return rows


def float_str(value: float, width: int) -> str:
    """nccl-tests' ``getFloatStr``: 2, 1 or 0 decimals, whichever first fits ``width``, else exponent."""
    for decimals in (2, 1, 0):
        text = f"{value:{width}.{decimals}f}"
        if len(text) <= width:
            return text
    return (f"{value:{width}.1e}" if width >= 7 else f"{value:{width}.0e}")[:width]


def avg_busbw(rows: list[SweepRow]) -> float:
    """nccl-tests' ``Avg bus bandwidth`` (GB/s): the mean over rows (in-place repeats out-of-place)."""
    return sum(r.busbw_GBps for r in rows) / len(rows) if rows else 0.0


def _columns(*cells: str) -> str:
    """nccl-tests' column line: ``"# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s "``."""
    widths = (10, 12, 8, 6, 6, 7, 6, 6, 6, 7, 6, 6, 6)
    return "# " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)) + " "


def _header() -> Iterator[str]:
    yield "#"
    yield "# " + "  ".join(f"{'':>{w}}" for w in (10, 12, 8, 6, 6)) + f"{'out-of-place':>23}{'in-place':>31}{'':10}"
    yield _columns("size", "count", "type", "redop", "root", *("time", "algbw", "busbw", "#wrong") * 2)
    yield _columns("(B)", "(elements)", "", "", "", *("(us)", "(GB/s)", "(GB/s)", "") * 2)


def _row(r: SweepRow) -> str:
    """``"%12li  %12li  %8s  %6s  %6i"``, then ``"  %7s  %6s  %6s    N/A"`` for each placement."""
    time, algbw, busbw = float_str(r.time_s * 1e6, 7), float_str(r.algbw_GBps, 6), float_str(r.busbw_GBps, 6)
    placement = f"  {time:>7}  {algbw:>6}  {busbw:>6}    N/A"
    return f"{r.size:12d}  {r.count:12d}  {ELEMENT[0]:>8}  {REDOP[r.kind]:>6}  {-1:6d}" + placement * 2


def _footer_line(name: str, value: str) -> str:
    """``"# %-20s : %s"``: the summary lines under the rows."""
    return f"# {name:<20} : {value}"


def nccl_tests_text(rows: list[SweepRow], where: str, step: tuple[int, int, int, int]) -> str:
    """The sweep as nccl-tests prints it: its header, column block, rows and footer, with comment
    lines saying what ran (``where``: the GPUs and cluster; ``step``: minbytes, maxbytes, factor, bytes)."""
    kind = rows[0].kind
    program = PROGRAM[kind]
    minbytes, maxbytes, factor, stepbytes = step
    stepping = f"{factor}(factor)" if factor > 1 else f"{stepbytes}(bytes)"
    busiest = max(rows, key=lambda r: r.result.max_link_utilization if r.result else 0.0)
    util = busiest.result.max_link_utilization if busiest.result else 0.0
    lines = [
        f"# twin collective {kind}: nccl-tests' {program} simulated on the flow-level network",
        f"# Collective test starting: {program}",
        f"# nRanks {rows[0].ranks} ({where}) algorithm: {rows[0].algorithm} "
        f"minBytes {minbytes} maxBytes {maxbytes} step: {stepping}",
        "# no data moves in the twin: #wrong is N/A (as with nccl-tests -c 0); in-place repeats out-of-place",
        *_header(),
        *(_row(r) for r in rows),
        _footer_line("Out of bounds values", "0 OK"),
        _footer_line("Avg bus bandwidth", f"{avg_busbw(rows):g} "),
        _footer_line("Busiest link", f"{100 * util:.1f}% of its capacity at {busiest.size} B"),
        "#",
        f"# Collective test concluded: {program}",
    ]
    return "\n".join(lines) + "\n"
