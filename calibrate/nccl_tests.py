"""``twin calibrate import-nccl-tests``: standard nccl-tests output -> communication samples.

nccl-tests (github.com/NVIDIA/nccl-tests) prints, per binary (``all_reduce_perf``,
``all_gather_perf``, ``reduce_scatter_perf``, ``alltoall_perf``, ``sendrecv_perf``, ...):

* a ``# Collective test starting: <name>_perf`` line (newer versions) and ``#  Rank  N ... on HOST
  device D ...`` lines, one per rank: the GPU count is the number of ranks, the node count the
  number of distinct hosts;
* a header naming the columns, in two groups (out-of-place, in-place): ``size count type redop
  [root] time algbw busbw #wrong`` (older versions: ``error`` for ``#wrong``, no ``root``, some no
  ``redop``);
* one row per message size. ``time`` is in microseconds, ``algbw``/``busbw`` in GB/s.

Each row gives two samples (``op: collective``): out-of-place and in-place, with the collective,
``bytes`` (the size column), count, type, GPUs, nodes and both bandwidths. Rows of size 0 are
skipped; a time of 0 or below is refused (nccl-tests prints only what it timed), and so are a row
that repeats an earlier one whole, times included (``-N`` repeats each size with its own times: kept),
and a second column header (a log
pasted twice, or two runs in one file: each run prints its header once and each size once). The collective
comes from the test-starting line, else from the file name. ``--gpus`` and ``--nodes`` give the scale
of a log without Rank lines (both, splitting evenly, at most 1,024 GPUs on a node); where the Rank
lines show it, a flag that says otherwise is refused, naming it (as a ``--device`` the Rank lines
contradict). The samples keep the row's op (``redop``) and ``root``.

What nccl-tests marks wrong or prints otherwise is refused, naming the line: its summary's ``Out of
bounds values`` other than ``0 OK``; a row whose ``#wrong``
is not 0 (or N/A, checking off; an older log's ``error``, the largest relative error, of 1 or more),
a type nccl-tests does not have (:data:`TYPE_BYTES`), a count of elements that does not fit in the
row's size, a row of units under the header other than B, elements, us and GB/s (a time in ms read
as us would be 1000x off), and Rank lines that are not ranks 0 to n-1 once each, split evenly over
their hosts, a whole number of the header's ``nThread x nGpus`` a process.

The numbers (the Rank lines' rank and device, a row's size, count, root, times and bandwidths) are
plain ASCII without digit separators: Python's int and float also read ``٢٠٤٨`` (Arabic-Indic) or
``８`` (full-width) as digits and ``8_14`` as 814, which nccl-tests never prints; such a cell is
refused, naming its line (:mod:`sim.number_text`). The log's other text (comments, host and GPU
names) may hold any characters.

The GPU is the one the Rank lines name after the bus id (``NVIDIA H100 80GB HBM3``: the H100's
datasheet), where every one names a GPU the twin knows; Rank lines naming different GPUs are
refused. ``twin calibrate import-nccl-tests`` gives a new profile that GPU (refusing a ``--device``
or a ``--profile`` of another), and refuses a row that repeats, in another log of the import or
among the ``--profile``'s samples, the same collective, GPUs, nodes, size, count, type, op, root and
placement.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ScenarioError, shown
from sim.hardware.profile import Sample
from sim.limits import MAX_BYTES, MAX_GPUS, MAX_GPUS_PER_NODE, MAX_RATE
from sim.number_text import not_plain

MAX_TIME_S = 1e9  # a profile's bound on a sample's time (sim.hardware.profile.Sample)
MIN_TIME_US = 1e-3  # a nanosecond: nccl-tests prints microseconds with two decimals (as import-measurements)
MAX_LOG_BYTES = 256 * 1024 * 1024  # a log of a few hundred lines is some KiB
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast", "reduce")
_RANK = re.compile(r"^#\s*Rank\s+(\d+)\s.*?\bon\s+(\S+)\s+device\s+(\d+)")
_BUS_ID = re.compile(r"^\s*\[[^\]]*\]")  # the PCI bus id before the GPU's name: [0000:00:06]
_STARTING = re.compile(r"Collective test starting:\s*(\w+?)_perf")
_VERDICT = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s+(\w+)")  # nccl-tests' summary: "0 OK"


def _collective(text: str, path: Path) -> str:
    found = _STARTING.search(text)
    if found:
        return found[1]
    for name in sorted(COLLECTIVES, key=len, reverse=True):
        if path.name.startswith(name):
            return name
    raise ScenarioError(
        "", "cannot tell the collective: no 'Collective test starting' line and the file name names none", str(path)
    )


def _is_header(line: str) -> bool:
    """Whether ``line`` is nccl-tests' column header (``#  size  count  type ... time  algbw  busbw``)."""
    words = line.lstrip("#").split()
    return words[:2] == ["size", "count"] and "time" in words


def _columns(lines: list[str], path: Path) -> tuple[int, list[str]]:
    """(line index of the column header, column names with out-of-place/in-place prefixes)."""
    for i, line in enumerate(lines):
        words = line.lstrip("#").split()
        if _is_header(line):
            names: list[str] = []
            group = "out-of-place"
            for w in words:
                w = "#wrong" if w == "error" else w  # (older versions: the largest relative error, a float)
                if w in ("time", "algbw", "busbw", "#wrong"):
                    if f"{group}:{w}" in names:
                        group = "in-place"
                    names.append(f"{group}:{w}")
                else:
                    names.append(w)
            return i, names
    raise ScenarioError("", "no nccl-tests column header (a '# size count type ... time algbw busbw' line)", str(path))


def _plain(cell: str, what: str, number: int, path: Path, kind: str = "a number") -> None:
    """Refuse ``cell`` (``what``: ``size``, ``out-of-place time``...; on line ``number``) unless it is
    plain ASCII without digit separators, as nccl-tests prints its numbers (:mod:`sim.number_text`)."""
    why = not_plain(cell)
    if why is not None:
        raise ScenarioError(f"line {number}", f"{what} {shown(cell)!r} is not {kind}: it {why}", str(path))


# nccl-tests' type names and their widths in bytes (nccl-tests' and rccl-tests' common.cu; the FP8 types
# under both spellings)
TYPE_BYTES = {
    "int8": 1, "uint8": 1, "char": 1, "f8e4m3": 1, "f8e5m2": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
    "half": 2, "bfloat16": 2,
    "int32": 4, "uint32": 4, "int": 4, "float": 4,
    "int64": 8, "uint64": 8, "double": 8,
}  # fmt: skip
_UNITS = {"B", "elements", "us", "GB/s"}  # what nccl-tests' row of units under the header says
_NGPUS = re.compile(r"^#.*\bnThread\s+(\d+)\s+nGpus\s+(\d+)\b")


def _check_ranks(ranks: dict[int, str], lines: list[str], path: Path) -> None:
    """The Rank lines are ranks 0 .. n-1, each once (the GPUs counted are the ranks that ran), split
    evenly over their hosts (a sample's GPUs sit on nodes of equal size), and as many as a whole number
    of processes of the header's ``nThread x nGpus`` ranks each."""
    if not ranks:
        return
    gaps = sorted(set(range(len(ranks))) - set(ranks))
    if gaps:
        shown_ranks = ", ".join(map(str, sorted(ranks)))[:80]
        message = f"rank(s) {shown_ranks} are not 0 to {len(ranks) - 1}: rank {gaps[0]} is missing"
        raise ScenarioError("Rank lines", message, str(path))
    per_host = Counter(ranks.values())
    if len(set(per_host.values())) > 1:
        split = ", ".join(f"{n} on {h}" for h, n in sorted(per_host.items()))[:120]
        message = f"the ranks are split unevenly over the hosts ({split}); the twin's samples are GPUs on equal nodes"
        raise ScenarioError("Rank lines", message, str(path))
    for number, line in enumerate(lines, start=1):
        m = _NGPUS.match(line)
        if m and int(m[1]) * int(m[2]) and len(ranks) % (int(m[1]) * int(m[2])):
            message = (
                f"nThread {m[1]} x nGpus {m[2]} ranks a process, but {len(ranks)} Rank line(s): "
                "a Rank line is missing, or the header is another run's"
            )
            raise ScenarioError(f"line {number}", message, str(path))


def _check_units(lines: list[str], start: int, path: Path) -> None:
    """The row of units under the column header, where the log has one, says what nccl-tests prints:
    sizes in B, counts in elements, times in us, bandwidths in GB/s (a time in ms read as us is 1000x
    off)."""
    for number, line in enumerate(lines[start + 1 : start + 3], start=start + 2):
        units = re.findall(r"\(([^)]*)\)", line) if line.lstrip().startswith("#") else []
        other = [u for u in units if u not in _UNITS]
        if other:
            message = f"the units row says ({other[0]}); nccl-tests prints B, elements, us and GB/s, as read here"
            raise ScenarioError(f"line {number}", message, str(path))


def _check_verdict(lines: list[str], path: Path) -> None:
    """nccl-tests' own verdict under the rows, ``# Out of bounds values : N OK``: a log it marks FAILED
    (results out of bounds) was imported as good samples; refused, naming that line."""
    for number, line in enumerate(lines, start=1):
        m = _VERDICT.match(line)
        if m and (m[2] != "OK" or m[1] != "0"):
            message = f"nccl-tests says '{m[1]} {m[2]}' (results out of bounds): the collective was wrong; not imported"
            raise ScenarioError(f"line {number}", message, str(path))


def _check_row(row: dict[str, str], older: bool, number: int, path: Path) -> None:
    """A row nccl-tests printed for results it checked: a type it has, ``count`` elements of it within
    ``size`` bytes (the count is the whole buffer's, or one rank's part of it: at most the size either
    way), and no wrong result (``#wrong`` 0, or N/A where checking was off; an older log's ``error``, the
    largest relative error, below 1: an error of 1 or more leaves no correct digit)."""
    width = TYPE_BYTES.get(row["type"])
    if width is None:
        message = f"type {shown(row['type'])[:20]!r} is not one nccl-tests prints ({', '.join(TYPE_BYTES)})"
        raise ScenarioError(f"line {number}", message, str(path))
    if row["count"].isdigit() and row["size"].isdigit() and int(row["count"]) * width > int(row["size"]):
        message = f"count {row['count']} x {width} B ({row['type']}) is more than the size, {row['size']} B"
        raise ScenarioError(f"line {number}", message, str(path))
    for group in ("out-of-place", "in-place"):
        cell = row.get(f"{group}:#wrong")
        if cell is None or cell == "N/A":
            continue
        try:
            wrong = float(cell)
        except ValueError:
            raise ScenarioError(
                f"line {number}", f"{group} #wrong {shown(cell)[:20]!r} is not a number", str(path)
            ) from None
        if not 0 <= wrong < 1 or (not older and wrong != 0):
            message = f"{group} #wrong is {cell}: the collective's results were wrong; not imported"
            raise ScenarioError(f"line {number}", message, str(path))


def _scale(ranks: dict[int, str], gpus: int | None, nodes: int | None, path: Path) -> tuple[int, int]:
    """(GPUs, nodes) of a log: from its Rank lines (ranks, and their distinct hosts), where it has them
    (a ``gpus`` or ``nodes`` that says otherwise is refused, naming the flag, as a ``--device`` the Rank
    lines contradict); else ``gpus`` and ``nodes``, both needed, the GPUs split evenly over the nodes, at
    most :data:`sim.limits.MAX_GPUS_PER_NODE` on each (refused otherwise, naming the flag)."""
    if ranks:
        hosts = len(set(ranks.values()))
        for flag, given, shown_by_log, what in (
            ("--gpus", gpus, len(ranks), f"{len(ranks):,} rank(s)"),
            ("--nodes", nodes, hosts, f"{hosts:,} host(s)"),
        ):
            if given is not None and given != shown_by_log:
                message = f"{given:,}, but the Rank lines of {path} show {what}: "
                message += f"give {flag} {shown_by_log} or leave it out"
                raise ScenarioError(flag, message)
        gpus = nodes = None  # (the same figures as the Rank lines': the test as it ran)
    n_gpus = gpus or len(ranks)
    n_nodes = nodes or len(set(ranks.values()))
    if not n_gpus or not n_nodes:
        flag = "--nodes" if gpus and not nodes else "--gpus"
        raise ScenarioError(flag, "the log has no '#  Rank' lines: give --gpus and --nodes", str(path))
    if gpus is None and nodes is None:
        per_host = max(Counter(ranks.values()).values())
        if n_gpus > MAX_GPUS or per_host > MAX_GPUS_PER_NODE:
            message = (
                f"{n_gpus:,} ranks on {n_nodes:,} host(s), at most {per_host:,} on one; the limits are "
                f"{MAX_GPUS:,} GPUs and {MAX_GPUS_PER_NODE:,} per node"
            )
            raise ScenarioError("Rank lines", message, str(path))
        return n_gpus, n_nodes  # as the test ran
    if n_gpus % n_nodes:  # (no Rank lines: both flags given)
        raise ScenarioError("--nodes", f"the GPUs ({n_gpus:,}) do not split evenly over the nodes ({n_nodes:,})")
    per_node = n_gpus // n_nodes
    if per_node > MAX_GPUS_PER_NODE:
        message = f"{per_node:,} GPUs per node is over the limit of {MAX_GPUS_PER_NODE:,} "
        message += f"({n_gpus:,} GPUs over {n_nodes:,} node(s))"
        raise ScenarioError("--gpus", message)
    return n_gpus, n_nodes


def _gpu(devices: dict[int, str], path: Path) -> tuple[str | None, str]:
    """(the datasheet name, the name as printed) of the GPU the Rank lines name (``NVIDIA H100 80GB HBM3``
    -> H100), or (None, "") where they name none the twin has a datasheet for; Rank lines that name
    different GPUs (one the twin knows beside another) are refused."""
    from sim.hardware.gpu import datasheet_for

    known = {rank: datasheet_for(text) for rank, text in devices.items()}
    first_of: dict[str | None, int] = {}  # a datasheet name (None: none) -> the first rank naming it
    for rank in sorted(known):
        gpu = known[rank]
        first_of.setdefault(gpu.name if gpu else None, rank)
    if len(first_of) > 1:  # (distinct keys: one at least is a GPU the twin knows)
        a, b = sorted(first_of.values())[:2]
        message = f"rank {a} names {shown(devices[a])!r}, rank {b} {shown(devices[b])!r}: one kind of GPU per log"
        raise ScenarioError("Rank lines", message, str(path))
    gpu = known[min(known)] if known else None
    return (gpu.name, devices[min(known)]) if gpu else (None, "")


@dataclass
class NcclLog:
    """What one nccl-tests log holds: its samples, the line of each, and the GPU its Rank lines name."""

    samples: list[Sample]
    lines: list[int]  # the log's line number of each sample
    gpu: str | None  # the datasheet name (H200) of the GPU every Rank line names; None where they name none
    gpu_text: str  # that GPU as the Rank lines print it (NVIDIA H200)


def sample_identity(s: Sample) -> tuple[object, ...]:
    """What makes two collective samples the same measurement: the collective, GPUs, nodes, size, count,
    type, op, root, placement and the time measured (two runs of a test measure it twice, each with its
    own time: both are kept, as import-measurements keeps a repeat with its own time; a profile's samples
    written before op and root were kept have None there)."""
    p = s.params
    keys = ("collective", "gpus", "nodes", "bytes", "count", "type", "redop", "root", "placement")
    return (*(p.get(k) for k in keys), s.time_s)


def parse_log(path: str | Path, gpus: int | None = None, nodes: int | None = None) -> list[Sample]:
    """Samples of one nccl-tests log; ``gpus``/``nodes``: the scale of a log without Rank lines (where
    it has them, they must say the same)."""
    return read_log(path, gpus, nodes).samples


def read_log(path: str | Path, gpus: int | None = None, nodes: int | None = None) -> NcclLog:
    """One nccl-tests log (:func:`parse_log`'s samples, their lines, the GPU named)."""
    path = Path(path)
    from sim.yamlio import read_bytes

    text = read_bytes(path, "nccl-tests log", MAX_LOG_BYTES).decode("utf-8", errors="replace")
    lines = text.splitlines()
    start, names = _columns(lines, path)
    collective = _collective(text, path)
    ranks = {}
    devices = {}  # rank -> the GPU's name as printed after its bus id
    for number, line in enumerate(lines, start=1):
        m = _RANK.match(line)
        if m:
            for what, cell in (("rank", m[1]), ("device", m[3])):  # (\d: any script's digits)
                _plain(cell, f"Rank line: {what}", number, path, "a whole number")
            if int(m[1]) in ranks:
                message = f"rank {m[1]} has a second Rank line: a log pasted twice, or two runs in one file?"
                raise ScenarioError(f"line {number}", message, str(path))
            ranks[int(m[1])] = m[2]
            devices[int(m[1])] = _BUS_ID.sub("", line[m.end() :], count=1).strip()
    _check_ranks(ranks, lines, path)
    _check_units(lines, start, path)
    _check_verdict(lines, path)
    older = "error" in lines[start].lstrip("#").split()  # (its #wrong: the largest relative error)
    n_gpus, n_nodes = _scale(ranks, gpus, nodes, path)
    gpu, gpu_text = _gpu(devices, path)
    samples = []
    sample_lines = []
    first_line: dict[tuple[str, ...], int] = {}  # a row's identity (size, count, type, op, root) -> its line
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if _is_header(line):  # (nccl-tests prints one per run)
                message = "a second column header: this file holds two nccl-tests runs; give each its own file"
                raise ScenarioError(f"line {number}", message, str(path))
            continue
        cells = line.split()
        if len(cells) != len(names):
            raise ScenarioError(
                f"line {number}", f"expected {len(names)} columns ({' '.join(names)}), got {len(cells)}", str(path)
            )
        row = dict(zip(names, cells, strict=True))
        for column in ("size", "count"):
            _plain(row[column], column, number, path, "a whole number")
        if "root" in row:
            _plain(row["root"], "root", number, path, "a whole number")
        for group in ("out-of-place", "in-place"):
            for column in ("time", "algbw", "busbw"):
                if f"{group}:{column}" in row:
                    _plain(row[f"{group}:{column}"], f"{group} {column}", number, path)
        for column in ("size", "count"):
            if not row[column].isdigit():
                raise ScenarioError(f"line {number}", f"{column} {row[column]!r} is not a whole number", str(path))
        identity = tuple(cells)  # (nccl-tests -N repeats each size with its own times: kept, as measurements)
        if identity in first_line:  # the same row, times included: a pasted copy
            shown_row = " ".join(row[c] for c in names if ":" not in c)[:80]
            message = (
                f"repeats the row of line {first_line[identity]}, times included ({shown_row}): a log pasted twice?"
            )
            raise ScenarioError(f"line {number}", message, str(path))
        first_line[identity] = number
        size = int(row["size"])
        if size == 0:
            continue
        for column in ("size", "count"):
            if int(row[column]) > MAX_BYTES:
                message = f"{column} {row[column]:.30} is over the limit of {MAX_BYTES:g} (bytes or elements)"
                raise ScenarioError(f"line {number}", message, str(path))
        _check_row(row, older, number, path)
        for group in ("out-of-place", "in-place"):
            try:
                time_us = float(row[f"{group}:time"])
                algbw, busbw = float(row[f"{group}:algbw"]), float(row[f"{group}:busbw"])
            except (KeyError, ValueError):
                raise ScenarioError(f"line {number}", f"{group} time/algbw/busbw are not numbers", str(path)) from None
            if time_us <= 0:  # (nccl-tests prints no row it has not timed)
                cell = row[f"{group}:time"]
                raise ScenarioError(f"line {number}", f"{group} time must be > 0, got {cell}", str(path))
            if time_us < MIN_TIME_US:
                cell = row[f"{group}:time"]
                message = f"{group} time {cell} us is less than a nanosecond (nccl-tests times in microseconds)"
                raise ScenarioError(f"line {number}", message, str(path))
            if any(not 0 <= bw <= MAX_RATE for bw in (algbw, busbw) if math.isfinite(bw)):
                given = f"{row[f'{group}:algbw']} {row[f'{group}:busbw']}"
                message = f"{group} algbw/busbw must be GB/s in [0, {MAX_RATE:g}], got {given}"
                raise ScenarioError(f"line {number}", message, str(path))
            if not all(math.isfinite(x) for x in (time_us, algbw, busbw)) or time_us * 1e-6 > MAX_TIME_S:
                raise ScenarioError(
                    f"line {number}",
                    f"{group} time/algbw/busbw must be finite numbers and the time at most {MAX_TIME_S:g} s",
                    str(path),
                )
            params: dict[str, float | int | str] = {
                "collective": collective,
                "bytes": size,
                "count": int(row["count"]),
                "type": row["type"],
                "gpus": n_gpus,
                "nodes": n_nodes,
                "placement": group,
                **{c: row[c] for c in ("redop", "root") if c in row},  # (a repeat across logs is told by them)
                "algbw_GBps": algbw,
                "busbw_GBps": busbw,
                "source": f"nccl-tests {path.name}",
            }
            samples.append(Sample(op="collective", params=params, time_s=time_us * 1e-6))
            sample_lines.append(number)
    if not samples:
        raise ScenarioError("", "no result rows", str(path))
    return NcclLog(samples, sample_lines, gpu, gpu_text)
