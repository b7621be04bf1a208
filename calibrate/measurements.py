"""``twin calibrate import-measurements``: tables of kernel timings taken elsewhere -> a profile.

A measurement folder (or a single CSV) holds tables whose kind is told by their columns. Column
names are exact (lower case); a time column carries its unit in its name (``seconds`` or ``_s``,
``milliseconds`` or ``_ms``, ``microseconds`` or ``_us``) and is stored in seconds. Every other
column is refused, as is a cell that is not a number where one is needed, with one line naming the
file, the row (the file's line number, the header being row 1) and the column.

* gemm: family, dtype (fp8, bf16), scaling (tensorwise, rowwise, blockwise_1x128_128x128 or
  blockwise, none), M, N, K, [sms], time
* attention: heads, seq, qk_head_dim, v_head_dim, causal, forward_<time>, backward_<time>, [sms]
* hbm_copy: bytes_copied, [sms], time
* fp8_cast: tokens, hidden, [sms], time
* interference: compute_sms, comm_sms, gemm, gemm_alone_<time>, gemm_beside_copy_<time>,
  copy_bytes, copy_alone_<time>, copy_beside_gemm_<time>, [mode]

(``[x]`` optional; ``time`` is any of the time columns above, ``forward_<time>`` e.g.
``forward_seconds``.) A
``README.md`` beside the tables becomes the profile's ``method``; the date of the measurement is
the first ISO date in the README's first line or the folder's name.

No time may beat the GPU's datasheet roofline (``--device``'s peaks, :mod:`sim.hardware.gpu`) by more
than its slack (:mod:`sim.hardware.roofline`, which a loaded profile's samples meet too): a time past
that is a unit slip (seconds under a ``milliseconds`` header: a factor of 1000), refused naming the
file, row and column with the rate it implies. A time over :data:`UNIT_SLIP` (1000) times the least
its work can take (the roofline, and a GEMM's inputs read once from HBM), and over
:data:`SLOW_FLOOR_S` (1 ms), is the slip the other way (microseconds under a ``milliseconds`` header)
and is refused alike.

Each measurement counts once in the fits: a row that repeats an earlier row's measurement, time
included (a table pasted twice, or copied into a second file), a second header row, and a file with
the same bytes as another are refused. The same configuration measured twice with different times is
kept (the H100 folder's 1 GiB copy on 132 SMs is in both its size sweep and its SM sweep).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
from collections.abc import Callable
from pathlib import Path

from calibrate.profiles import git_revision, with_errors
from sim.errors import ScenarioError, shown
from sim.hardware.gpu import GpuSpec, datasheet_for
from sim.hardware.profile import TORCH_FP8_CAST, DeviceInfo, Peaks, Profile, Sample, Skipped, SourceFile
from sim.hardware.roofline import ALONE_S, Bound, roofline_times, too_fast
from sim.number_text import not_plain
from sim.units import BF16_BYTES, FP8_BYTES, FP8_TILE, FP32_BYTES
from sim.yamlio import MAX_JSON_BYTES, read_bytes, read_text

MAX_TIME_S = 1e9  # a profile's bound on a sample's time (sim.hardware.profile.Sample)
# a measured time below a nanosecond is a unit slip, not a kernel: a launch alone takes microseconds
# and CUDA events resolve about 0.5 us (a GEMM of 1e-300 s would claim 1e+300 times the peak)
MIN_TIME_S = 1e-9
MAX_COUNT = 2**53  # a shape, a size or a count: whole numbers a float holds exactly
UNITS = {"seconds": 1.0, "s": 1.0, "milliseconds": 1e-3, "ms": 1e-3, "microseconds": 1e-6, "us": 1e-6}
TIME = "<time>"
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # name -> (required, optional)
    "gemm": (("family", "dtype", "scaling", "m", "n", "k", TIME), ("sms",)),
    "attention": (
        ("heads", "seq", "qk_head_dim", "v_head_dim", "causal", f"forward_{TIME}", f"backward_{TIME}"),
        ("sms",),
    ),
    "hbm_copy": (("bytes_copied", TIME), ("sms",)),
    "fp8_cast": (("tokens", "hidden", TIME), ("sms",)),
    "interference": (
        (
            "compute_sms",
            "comm_sms",
            "gemm",
            f"gemm_alone_{TIME}",
            f"gemm_beside_copy_{TIME}",
            "copy_bytes",
            f"copy_alone_{TIME}",
            f"copy_beside_gemm_{TIME}",
        ),
        ("mode",),
    ),
}
SCALINGS = {"tensorwise", "rowwise", "blockwise", "blockwise_1x128_128x128", "none"}
DTYPES = {"fp8", "bf16", "fp16", "fp32"}
_UNSCALED = {"none"}
DTYPE_SCALINGS = {"fp8": SCALINGS - _UNSCALED, "bf16": _UNSCALED, "fp16": _UNSCALED, "fp32": _UNSCALED}
INTERFERENCE_MODES = {"green-contexts", "green-contexts-overlapping", "shared-sms"}
# DeepSeek-V3 projections named by the H100 measurements' README: (N, K) of x[M, K] @ W[K, N]
FAMILY_SHAPES = {"moe_up": (4096, 7168), "moe_down": (7168, 2048), "q_a": (1536, 7168), "attn_o": (7168, 16384)}


def _split_unit(column: str) -> tuple[str, float] | None:
    """``gemm_alone_seconds`` -> (``gemm_alone_<time>``, 1.0); None when no time unit ends it."""
    for unit, factor in UNITS.items():
        if column == unit:
            return TIME, factor
        if column.endswith("_" + unit):
            return column[: -len(unit)] + TIME, factor
    return None


class _Table:
    """One CSV file's rows with its kind, each cell read by column name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        text = read_text(path, "measurement table", MAX_JSON_BYTES)  # a regular UTF-8 file of bounded size
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            rows = list(reader)
        except csv.Error as e:
            raise ScenarioError(f"row {reader.line_num}", f"malformed CSV: {e}", str(path)) from None
        if not rows or not any(c.strip() for c in rows[0]):
            raise ScenarioError("", "empty table: no header row", str(path))
        header = [c.strip() for c in rows[0]]
        self.columns: dict[str, tuple[int, float]] = {}  # logical name -> (index, unit factor)
        unknown = []
        for i, col in enumerate(header):
            split = _split_unit(col)
            logical, factor = split if split else (col.lower() if col in ("M", "N", "K") else col, 1.0)
            if logical in self.columns:
                raise ScenarioError(f"row 1, column {col}", "a column is named twice", str(path))
            self.columns[logical] = (i, factor)
            if not any(logical in req + opt for req, opt in TABLES.values()):
                unknown.append(col)
        kinds = [
            name
            for name, (req, opt) in TABLES.items()
            if set(req) <= set(self.columns) and set(self.columns) <= set(req) | set(opt)
        ]
        if unknown:
            raise ScenarioError(
                f"row 1, column {unknown[0]}",
                "unknown column (see docs/calibration.md for the columns of each table; a time column "
                "names its unit: seconds, milliseconds, microseconds)",
                str(path),
            )
        if len(kinds) != 1:
            best = min(TABLES, key=lambda n: len(set(TABLES[n][0]) ^ set(self.columns)))
            missing = sorted(set(TABLES[best][0]) - set(self.columns))
            raise ScenarioError(
                "row 1", f"the columns match no table; as a {best} table it lacks {', '.join(missing)}", str(path)
            )
        self.kind = kinds[0]
        self.rows = [(n + 2, r) for n, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
        self.header = header
        for line, r in self.rows:
            if [c.strip() for c in r] == header:  # (its cells would be refused as values, naming one column)
                message = "a second header row: the table is pasted twice, or two tables share the file"
                raise ScenarioError(f"row {line}", message, str(path))
            if any(c.strip() for c in r[len(header) :]):
                raise ScenarioError(f"row {line}", f"has {len(r)} fields; the header has {len(header)}", str(path))

    def _cell(self, line: int, row: list[str], name: str) -> str:
        i, _ = self.columns[name]
        if i >= len(row):
            raise ScenarioError(f"row {line}, column {self.header[i]}", "missing value", str(self.path))
        return row[i].strip()

    def has(self, name: str) -> bool:
        return name in self.columns

    def number(self, line: int, row: list[str], name: str, integer: bool = False) -> float:
        """The cell as a number (time columns converted to seconds)."""
        text = self._cell(line, row, name)
        i, factor = self.columns[name]
        where = f"row {line}, column {self.header[i]}"
        why = not_plain(text)  # (float reads both; no CSV writer means them)
        if why is not None:
            raise ScenarioError(where, f"{text!r} is not a number: it {why}", str(self.path))
        try:
            value = float(text)
        except ValueError:
            raise ScenarioError(
                where, f"{text!r} is not a number (units go in the column name)", str(self.path)
            ) from None
        time = factor != 1.0 or name.endswith(TIME)
        if not math.isfinite(value) or value < 0 or ((time or (integer and name != "comm_sms")) and value <= 0):
            raise ScenarioError(where, f"{text} is not allowed here (must be a positive number)", str(self.path))
        if integer and value != int(value):
            raise ScenarioError(where, f"{text} must be a whole number", str(self.path))
        if integer and value > MAX_COUNT:
            raise ScenarioError(where, f"{text} is more than {MAX_COUNT:.3g}", str(self.path))
        if time and value * factor > MAX_TIME_S:
            raise ScenarioError(where, f"{text} is more than {MAX_TIME_S:g} seconds", str(self.path))
        if time and value * factor < MIN_TIME_S:
            raise ScenarioError(
                where, f"{text} is less than a nanosecond ({MIN_TIME_S:g} s): not a kernel's time", str(self.path)
            )
        return value * factor

    def choice(self, line: int, row: list[str], name: str, allowed: set[str]) -> str:
        text = self._cell(line, row, name)
        if text not in allowed:
            i, _ = self.columns[name]
            raise ScenarioError(
                f"row {line}, column {self.header[i]}",
                f"{text!r} is not one of {', '.join(sorted(allowed))}",
                str(self.path),
            )
        return text

    def text(self, line: int, row: list[str], name: str) -> str:
        value = self._cell(line, row, name)
        if not value:
            i, _ = self.columns[name]
            raise ScenarioError(f"row {line}, column {self.header[i]}", "missing value", str(self.path))
        return value

    def flag(self, line: int, row: list[str], name: str) -> bool:
        return self.choice(line, row, name, {"True", "False", "true", "false", "1", "0"}) in ("True", "true", "1")


def _sms(t: _Table, line: int, row: list[str], all_sms: int) -> int:
    if not t.has("sms"):
        return all_sms
    sms = int(t.number(line, row, "sms", integer=True))
    if not 0 < sms <= all_sms:
        raise ScenarioError(f"row {line}, column sms", f"must be in 1..{all_sms}, got {sms}", str(t.path))
    return sms


def _gemm(t: _Table, all_sms: int) -> list[tuple[int, Sample]]:
    out = []
    for line, row in t.rows:
        dtype = t.choice(line, row, "dtype", DTYPES)
        scaling = t.choice(line, row, "scaling", SCALINGS)
        if scaling not in DTYPE_SCALINGS[dtype]:  # (a profile refuses the pair: pydantic's text before)
            allowed = ", ".join(sorted(DTYPE_SCALINGS[dtype]))
            raise ScenarioError(
                f"row {line}, column scaling", f"{scaling!r} is not a scaling of {dtype} ({allowed})", str(t.path)
            )
        family = t.text(line, row, "family")
        params: dict[str, float | int | str] = {
            "family": family,
            "dtype": dtype,
            "scaling": "blockwise" if scaling.startswith("blockwise") else scaling,
            "m": int(t.number(line, row, "m", integer=True)),
            "n": int(t.number(line, row, "n", integer=True)),
            "k": int(t.number(line, row, "k", integer=True)),
            "sms": _sms(t, line, row, all_sms),
        }
        if family.endswith("_single"):  # timed one call per event pair: launch overhead included
            params["timing"] = "single"
        out.append((line, Sample(op="gemm", params=params, time_s=t.number(line, row, TIME))))
    return out


def _attention(t: _Table, all_sms: int) -> list[tuple[int, Sample]]:
    out = []
    for line, row in t.rows:
        base: dict[str, float | int | str] = {
            "heads": int(t.number(line, row, "heads", integer=True)),
            "seq": int(t.number(line, row, "seq", integer=True)),
            "qk_dim": int(t.number(line, row, "qk_head_dim", integer=True)),
            "v_dim": int(t.number(line, row, "v_head_dim", integer=True)),
            "causal": int(t.flag(line, row, "causal")),
            "sms": _sms(t, line, row, all_sms),
        }
        for phase, column in (("fwd", f"forward_{TIME}"), ("bwd", f"backward_{TIME}")):
            params = {**base, "phase": phase}
            out.append((line, Sample(op="attention", params=params, time_s=t.number(line, row, column))))
    return out


def _hbm_copy(t: _Table, all_sms: int) -> list[tuple[int, Sample]]:
    out = []
    for line, row in t.rows:
        size = int(t.number(line, row, "bytes_copied", integer=True))
        params = {"kernel": "copy", "bytes": 2 * size, "bytes_copied": size, "sms": _sms(t, line, row, all_sms)}
        out.append((line, Sample(op="memory", params=params, time_s=t.number(line, row, TIME))))
    return out


def _fp8_cast(t: _Table, all_sms: int) -> list[tuple[int, Sample]]:
    out = []
    for line, row in t.rows:
        tokens = int(t.number(line, row, "tokens", integer=True))
        hidden = int(t.number(line, row, "hidden", integer=True))
        elems = tokens * hidden  # BF16 in, FP8 and one FP32 scale per 1x128 tile out
        nbytes = BF16_BYTES * elems + FP8_BYTES * elems + FP32_BYTES * elems // FP8_TILE
        params = {"kernel": TORCH_FP8_CAST, "bytes": nbytes, "tokens": tokens, "hidden": hidden}
        params["sms"] = _sms(t, line, row, all_sms)
        out.append((line, Sample(op="memory", params=params, time_s=t.number(line, row, TIME))))
    return out


def gemm_label(label: str) -> dict[str, float | int | str]:
    """``fp8_moe_up_8192`` / ``bf16_8192x4096x7168`` -> dtype, family, M, N, K of the GEMM."""
    dtype, _, rest = label.partition("_")
    params: dict[str, float | int | str] = {"gemm": label, "dtype": dtype if dtype in DTYPES else "unknown"}
    shape = re.search(r"(\d+)x(\d+)x(\d+)", rest)
    if shape:
        params.update(m=int(shape[1]), n=int(shape[2]), k=int(shape[3]))
    else:
        for family, (n, k) in FAMILY_SHAPES.items():
            found = re.fullmatch(rf"{family}_(\d+)", rest)
            if found:
                params.update(family=family, m=int(found[1]), n=n, k=k)
    return params


def _interference(t: _Table, all_sms: int) -> list[tuple[int, Sample]]:
    out = []
    for line, row in t.rows:
        compute = int(t.number(line, row, "compute_sms", integer=True))
        comm = int(t.number(line, row, "comm_sms", integer=True))
        if compute + comm > all_sms or compute < 1:
            raise ScenarioError(
                f"row {line}, column compute_sms", f"{compute} + {comm} SMs do not fit a {all_sms}-SM GPU", str(t.path)
            )
        if t.has("mode"):
            mode = t.choice(line, row, "mode", INTERFERENCE_MODES)
        else:  # torch's GreenContext.create gives overlapping SM sets (docs/calibration.md)
            mode = "shared-sms" if comm == 0 else "green-contexts-overlapping"
        label = gemm_label(t.text(line, row, "gemm"))
        if label["dtype"] == "unknown":  # (a profile's Sample refused the dtype: a traceback)
            raise ScenarioError(
                f"row {line}, column gemm",
                f"{shown(repr(label['gemm']))} does not start with the GEMM's dtype ({', '.join(sorted(DTYPES))}): "
                "DTYPE_FAMILY_M (fp8_moe_up_8192) or DTYPE_MxNxK (bf16_8192x4096x7168)",
                str(t.path),
            )
        base = {
            **label,
            "compute_sms": compute,
            "comm_sms": comm,
            "mode": mode,
            "copy_bytes": int(t.number(line, row, "copy_bytes", integer=True)),
        }
        for kernel, alone, beside in (
            ("gemm", "gemm_alone", "gemm_beside_copy"),
            ("copy", "copy_alone", "copy_beside_gemm"),
        ):
            params = {**base, "kernel": kernel, "alone_s": t.number(line, row, f"{alone}_{TIME}")}
            time_s = t.number(line, row, f"{beside}_{TIME}")
            out.append((line, Sample(op="interference", params=params, time_s=time_s)))
    return out


UNIT_NAMES = {1.0: "s", 1e-3: "ms", 1e-6: "us"}


def _roofline_times(sample: Sample, gpu: GpuSpec, all_sms: int) -> list[tuple[str, float, Bound]]:
    """Each time ``sample`` holds with what the datasheet allows its work (:mod:`sim.hardware.roofline`):
    (its column's logical name, seconds, the bound)."""
    p = sample.params
    out = []
    for key, seconds, b in roofline_times(sample, gpu, all_sms):
        if sample.op == "attention":
            column = f"{'forward' if p['phase'] == 'fwd' else 'backward'}_{TIME}"
        elif sample.op == "interference":
            kernel, other = ("copy", "gemm") if p["kernel"] == "copy" else ("gemm", "copy")
            column = f"{kernel}_alone_{TIME}" if key == ALONE_S else f"{kernel}_beside_{other}_{TIME}"
        else:
            column = TIME
        out.append((column, seconds, b))
    return out


# A time this many times over the roofline, and over SLOW_FLOOR_S, is a unit slip the other way (seconds
# or microseconds read as milliseconds: a factor of 1000). The roofline here also counts a GEMM's
# inputs read once from HBM (a lower bound on any kernel's time: a small-M GEMM is memory-bound). In the
# H100 folder (../shared/measurements/h100-sxm-2026-11-23) the slowest rows against it are launch-bound
# kernels of 23 to 262 us at up to 36x; every row over 1 ms is within 15x of it (an FP8 cast of 1.5 ms).
# A launch costs some microseconds, so a kernel of over 1 ms runs at over 0.1% of its roofline unless
# the unit is off.
UNIT_SLIP = 1000.0
SLOW_FLOOR_S = 1e-3
DTYPE_BYTES = {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}  # an element of a GEMM's inputs


def _least_s(sample: Sample, b: Bound, gpu: GpuSpec) -> float:
    """The least time of ``sample``'s work by the bound ``b`` and, for a GEMM, its inputs read once
    from HBM (:data:`DTYPE_BYTES`)."""
    p = sample.params
    if sample.op == "gemm" or (sample.op == "interference" and "m" in p):
        m, n, k = int(p["m"]), int(p["n"]), int(p["k"])
        read = (m * k + k * n) * DTYPE_BYTES.get(str(p["dtype"]), 1)
        return max(b.least_s, read / (gpu.hbm_TBps * 1e12))
    return b.least_s


def _check_too_slow(
    t: _Table, line: int, row: list[str], sample: Sample, gpu: GpuSpec, column: str, seconds: float, b: Bound
) -> None:
    """Refuse a time :data:`UNIT_SLIP` times over its roofline and over :data:`SLOW_FLOOR_S`: a unit
    slip (microseconds under a ``milliseconds`` header): a GEMM of 4096 x 4096 x 7168 at 250 ms was
    imported, and the fit then predicted a GEMM 8 times larger 4 times faster."""
    least = _least_s(sample, b, gpu)
    if seconds > SLOW_FLOOR_S and seconds > UNIT_SLIP * least:
        i, factor = t.columns[column]
        unit = UNIT_NAMES.get(factor, t.header[i])
        shown_least = f"{least * 1e3:.4g} ms" if least >= 1e-3 else f"{least * 1e6:.4g} us"
        message = (
            f"{t._cell(line, row, column)} {unit} is {seconds / least:,.0f}x the least time the "
            f"{gpu.name}'s datasheet allows its work ({shown_least}: {b.bound}{b.on}, and HBM for a GEMM's "
            f"inputs); over {UNIT_SLIP:g}x that is a unit slip, not a kernel; check the unit"
        )
        raise ScenarioError(f"row {line}, column {t.header[i]}", message, str(t.path))


def _check_roofline(t: _Table, line: int, row: list[str], sample: Sample, gpu: GpuSpec, all_sms: int) -> None:
    """Refuse a time faster than the datasheet allows its work: a unit slip (seconds under a
    ``milliseconds`` header), not a kernel; or far slower than it (:func:`_check_too_slow`)."""
    for column, seconds, b in _roofline_times(sample, gpu, all_sms):
        _check_too_slow(t, line, row, sample, gpu, column, seconds, b)
        if not too_fast(seconds, b):
            continue
        i, factor = t.columns[column]
        unit = UNIT_NAMES.get(factor, t.header[i])
        scale = 1e12  # TFLOPS, TB/s
        least = f"{b.least_s * 1e3:.4g} ms" if b.least_s >= 1e-3 else f"{b.least_s * 1e6:.4g} us"
        message = (
            f"{t._cell(line, row, column)} {unit} is {b.least_s / seconds:.3g}x faster than the {gpu.name}'s "
            f"{b.bound} allows ({b.work:.4g} {b.what} in {seconds:.3g} s is {b.work / seconds / scale:.3g} "
            f"{b.rate_unit}; at {b.peak / scale:.4g} {b.rate_unit}{b.on} they take at least {least}); check the unit"
        )
        raise ScenarioError(f"row {line}, column {t.header[i]}", message, str(t.path))


# the samples of a table, each with its row (the file's line number)
READERS: dict[str, Callable[[_Table, int], list[tuple[int, Sample]]]] = {
    "gemm": _gemm,
    "attention": _attention,
    "hbm_copy": _hbm_copy,
    "fp8_cast": _fp8_cast,
    "interference": _interference,
}


def source_file(path: Path, what: str = "source") -> SourceFile:
    data = read_bytes(path, what, MAX_JSON_BYTES)
    return SourceFile(name=path.name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def _date(readme: str, folder: str, readme_path: Path, folder_path: Path) -> str:
    """The measurement's date: the first ISO date in the README's first line, else in the folder's
    name, else today; one that is no day of the calendar (2026-13-45) is refused, naming where it is."""
    for text, where, file in (
        (readme.splitlines()[0] if readme else "", "line 1", readme_path),
        (folder, "", folder_path),
    ):
        found = re.search(r"\d{4}-\d{2}-\d{2}", text)
        if found:
            try:
                return dt.date.fromisoformat(found[0]).isoformat()
            except ValueError:
                raise ScenarioError(
                    where, f"{found[0]} is not a date (the measurement's: YYYY-MM-DD)", str(file)
                ) from None
    return dt.date.today().isoformat()


def import_measurements(path: str | Path, device: str, sms: int | None = None, tool: str = "") -> Profile:
    """Read a measurement folder (every ``*.csv`` and its ``README.md``) or one CSV into a profile
    for ``device`` (its datasheet peaks; ``sms`` defaults to the datasheet's SM count)."""
    path = Path(path)
    if not path.exists():
        raise ScenarioError("", "no such file or folder", str(path))
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise ScenarioError("", "no *.csv tables in the folder", str(path))
    gpu = datasheet_for(device)
    if gpu is None:
        raise ScenarioError("--device", f"no datasheet for {device!r}; the twin knows H800, H100 and H200")
    if sms is not None and sms != gpu.sms:  # a run takes the datasheet's SMs and refuses another count
        raise ScenarioError(
            "--sms",
            f"{sms}: the {gpu.name} datasheet has {gpu.sms} SMs, and a run refuses a profile of any other "
            "count (its device.sms); leave --sms out",
        )
    all_sms = sms or gpu.sms
    readme_path = (path if path.is_dir() else path.parent) / "README.md"
    readme = read_text(readme_path, "README", MAX_JSON_BYTES) if readme_path.is_file() else ""
    samples: list[Sample] = []
    ran = []
    sources = [source_file(f, "measurement table") for f in files]
    same_bytes: dict[str, Path] = {}
    for f, src in zip(files, sources, strict=True):  # a copy of a table would count every row twice in the fit
        if src.sha256 in same_bytes:
            first = same_bytes[src.sha256]
            raise ScenarioError("", f"holds the same bytes as {first.name}: give each table once", str(f))
        same_bytes[src.sha256] = f
    seen: dict[tuple[object, ...], tuple[Path, int]] = {}  # a sample, time included -> its table and row
    for f in files:
        table = _Table(f)
        rows = dict(table.rows)
        for line, sample in READERS[table.kind](table, all_sms):
            _check_roofline(table, line, rows[line], sample, gpu, all_sms)
            key = (sample.op, tuple(sorted(sample.params.items())), sample.time_s)
            if key in seen:
                first, first_line = seen[key]
                where = f"row {first_line}" + (f" of {first.name}" if first != f else "")
                message = f"repeats {where}, time included (the same {table.kind} measurement counted twice)"
                raise ScenarioError(f"row {line}", message, str(f))
            seen[key] = (f, line)
            samples.append(sample)
        ran.append(f"{table.kind} from {f.name} ({len(table.rows)} rows)")
    if not samples:
        raise ScenarioError("", "no measurements: the tables have a header and no rows", str(path))
    sources += [source_file(readme_path)] if readme else []
    kinds = {r.split()[0] for r in ran}
    skipped = [Skipped(what="p2p and all-to-all", why="not in the measurements (import nccl-tests logs for them)")]
    skipped += [Skipped(what=k, why="no table of this kind") for k in READERS if k not in kinds]
    folder = path if path.is_dir() else path.parent
    profile = Profile(
        device=DeviceInfo(name=device, sms=all_sms),
        source="measured",
        created=_date(readme, folder.name, readme_path, folder),
        git_revision=git_revision(),
        tool=tool or f"twin calibrate import-measurements {path} --device {device!r}",
        peaks=Peaks(
            fp8_dense_TFLOPS=gpu.fp8_dense_TFLOPS, bf16_dense_TFLOPS=gpu.bf16_dense_TFLOPS, hbm_TBps=gpu.hbm_TBps
        ),
        ran=ran,
        skipped=skipped,
        samples=samples,
        sources=sources,
        method=readme.strip(),
    )
    return with_errors(profile)
