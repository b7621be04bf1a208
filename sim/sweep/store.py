"""Where a sweep's rows go: an append-only journal beside the Parquet file, so a killed sweep loses
only the points that were running.

* ``results.parquet.journal``: one JSON row per line, appended and flushed to disk as each point
  completes (a line cut short by a kill is ignored on the next start).
* ``results.parquet``: every completed row in point order, rewritten atomically (temporary file, then
  rename) every few seconds and at the end; the journal is removed once the Parquet file holds
  everything it had.
* On start, rows of both are read, each file once (:func:`read_results`: its rows and its metadata from
  one read); points already there are skipped. Rows of points that are not in the sweep (another sweep,
  or a changed base scenario) stop it, unless ``--restart`` discards them. Rows another revision of the
  simulator computed (their ``twin_code``, :mod:`sim.code_digest`) are computed again, so one file never
  mixes two models.
* The rows of ``twin sweep --best``'s screening are lower bounds, not steps (:class:`BoundsSweep`): its
  file says so (``"lower_bounds": true`` in the metadata and on each journal line; false on a sweep of
  steps), and neither kind of sweep resumes into the other's file (the bounds would be kept as step
  times). A journal line with no such mark was written before journals said their kind, by an older
  revision: it is computed again, as any row of another revision, never resumed as either kind.
* ``--restart`` of a sweep of steps discards the screening rows ``--best`` keeps beside its output
  (:func:`screening_path`) too: bounds of the scenario before the change the restart answers (an
  edited topology or profile, which no point id sees) must not screen the steps after it.

The frame's columns and dtypes come from the sweep alone (:func:`frame`), so the same rows give the
same file whether they were computed now, read from the journal, or returned by dask workers.
"""

from __future__ import annotations

import fcntl
import json
import math
import numbers
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from sim.code_digest import code_digest
from sim.errors import ScenarioError, TwinError, kind_of
from sim.outputs import NAME_BYTES, a_link, atomic_write
from sim.overrides import label
from sim.sweep.point import (
    LAYOUT_COLUMNS,
    METRICS,
    NOTE_COLUMNS,
    OK,
    PROVENANCE_COLUMNS,
    STATUSES,
    past_edge,
    sign_break,
)
from sim.sweep.spec import Sweep


def check_name_room(output: Path, added: str, what: str = "the journal beside it") -> None:
    """Refuse a results name with no room for ``added`` bytes more (a valid 250-byte name ran, then
    failed writing its journal: "File name too long")."""
    room = NAME_BYTES - len(added)
    if len(os.fsencode(output.name)) > room:
        raise TwinError(f"{output}: the name is too long for {what}; give one of at most {room} bytes")


META_KEY = b"clustertwin.sweep"
BOUNDS_KEY = "lower_bounds"  # in the metadata (and a journal line): the rows are bounds, not steps
# The journal's first line after ``--restart``: the results file's rows are discarded even if the run
# stops before it rewrites that file (the file is kept until then, so a refused restart deletes nothing)
RESTARTED = "restarted"
FLUSH_EVERY_S = 5.0


class BoundsSweep(Sweep):
    """A sweep whose rows are its points' lower bounds, not their steps: the screening of ``twin sweep
    --best`` (:mod:`sim.sweep.screen`). Its file says so; a sweep of steps never resumes into it."""


def meta_of(schema_metadata: dict[bytes, bytes] | None, file: str | None = None) -> dict[str, Any]:
    """The metadata ``twin sweep`` wrote among a Parquet schema's key-value metadata, {} where there is
    none (a file written by hand, or before twin sweep wrote it). Where it is there but not a JSON
    mapping: refused, naming ``file`` and the key, when ``file`` is given (``twin compare``: it says
    whether the rows are lower bounds and how many points the sweep has); {} otherwise (a resumed
    sweep reads its own rows, whose checks do not need it)."""
    raw = (schema_metadata or {}).get(META_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        if file is None:
            return {}
        raise ScenarioError(
            META_KEY.decode(), "the file's metadata is not JSON (twin sweep writes a JSON mapping)", file
        ) from None
    if not isinstance(meta, dict):
        if file is None:
            return {}
        raise ScenarioError(META_KEY.decode(), f"the file's metadata is not a JSON mapping, got {kind_of(meta)}", file)
    return meta


def read_meta(path: Path) -> dict[str, Any]:
    """:func:`meta_of` a results file ({} where it cannot be read: its rows are read, and refused, on
    their own)."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # not Parquet
        return {}
    return meta_of(schema.metadata)


def holds_bounds(meta: dict[str, Any], path: Path) -> bool:
    """Whether a results file (its metadata ``meta``) holds ``--best``'s lower bounds, not steps: its
    metadata says so, or, written before it did, its sweep's name ends in ``-screening`` and the file's
    in ``.screening.parquet`` (both as ``--best`` names them)."""
    flag = meta.get(BOUNDS_KEY)
    if isinstance(flag, bool):
        return flag
    name = meta.get("name")
    return isinstance(name, str) and name.endswith("-screening") and path.name.endswith(".screening.parquet")


def _refuse_mixing(sweep: Sweep, file: Path, bounds: bool) -> None:
    """Refuse the rows of ``file`` where they are of the other kind (``bounds``: lower bounds, else
    steps) than ``sweep`` writes."""
    if bounds == isinstance(sweep, BoundsSweep):
        return
    held = (
        "lower bounds (the screening rows of twin sweep --best), not steps: resuming would keep the bounds "
        "as step times"
        if bounds
        else "steps, not the lower bounds --best screens with"
    )
    raise ScenarioError("", f"holds {held}; write to another file or pass --restart to discard them", str(file))


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".journal")


def screening_path(output: Path) -> Path:
    """Where ``twin sweep --best`` keeps the screening rows of ``output``: ``NAME.screening.parquet``
    beside it."""
    return output.with_name(f"{output.stem}.screening{output.suffix}")


def columns(sweep: Sweep) -> list[tuple[str, str]]:
    """(column, dtype) of a sweep's rows, in order."""
    cols = [("point", "Int64"), ("point_id", "string"), ("label", "string")]
    for key, dtype in sweep.override_dtypes.items():
        cols.append((key, "string" if dtype == "json" else dtype))
    cols += [("status", "string"), ("error", "string")]
    cols += [(m.name, "float64") for m in METRICS]
    cols += list(LAYOUT_COLUMNS + NOTE_COLUMNS + PROVENANCE_COLUMNS)
    return cols


def override_cells(sweep: Sweep, overrides: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, dtype in sweep.override_dtypes.items():
        value = overrides.get(key)
        out[key] = json.dumps(value, sort_keys=True) if (dtype == "json" and value is not None) else value
    return out


def frame(sweep: Sweep, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a frame with the sweep's columns and dtypes, in point order."""
    cols = columns(sweep)
    ordered = sorted(rows, key=lambda r: int(r["point"]))
    data = {}
    for name, dtype in cols:
        values = [r.get(name) for r in ordered]
        if dtype == "float64":
            values = [math.nan if v is None else float(v) for v in values]
        data[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data)


def read_results(output: Path) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """(where, row) of every row of a results file (``row N`` counts its rows from 1) and its metadata
    (:func:`meta_of`), from one read of the file."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(output, use_pandas_metadata=True)  # (as pandas.read_parquet reads it)
        df = table.to_pandas()
    except Exception as err:
        raise ScenarioError("", f"cannot read it as sweep results ({type(err).__name__}: {err})", str(output)) from None
    if "point_id" not in df.columns or "point" not in df.columns:
        raise ScenarioError("", "not a sweep results file (no point_id column)", str(output))
    rows = [
        (f"row {i}", {str(k): (None if _missing(v) else v) for k, v in rec.items()})
        for i, rec in enumerate(df.to_dict(orient="records"), start=1)
    ]
    return rows, meta_of(table.schema.metadata)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _read_journal(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) of every whole row of a journal: ``line N`` counts its lines from 1.

    Every line a sweep writes is a JSON object (a row, or the restart mark); a kill can cut one short,
    and the next run goes on after it on a new line, so a cut line can sit anywhere: it does not parse
    and begins as every line does, with ``{``. Any other line (text, JSON that is no row) says the file
    is no sweep's journal but something else of that name, which is refused, never read as empty and
    then deleted."""
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return rows
    if stat.S_ISDIR(mode):
        raise ScenarioError("", "is a folder, not a journal file", str(path))
    if not stat.S_ISREG(mode):  # a pipe would never end
        raise ScenarioError("", "not a regular file (a device, pipe or socket); a journal is a file", str(path))
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if line.lstrip("\x00").startswith("{") or not line.strip("\x00"):
                continue  # the line a kill cut short (after a power cut, a file system may leave NULs)
            row = None
        if isinstance(row, dict) and row.get(RESTARTED) is True and "point_id" not in row:
            rows.clear()  # what came before the restart (none: it starts the journal) is not this sweep's
            rows.append((f"line {number}", {RESTARTED: True}))
        elif isinstance(row, dict) and "point_id" in row:
            rows.append((f"line {number}", row))
        else:
            raise ScenarioError(f"line {number}", NOT_A_JOURNAL, str(path))
    return rows


# What a file of a journal's name that is no sweep's journal is told (the sweep would replace it)
NOT_A_JOURNAL = (
    "not a line of a sweep's journal (a JSON row per line): this file is not the journal a sweep keeps "
    "here; move it away, or give --output another name"
)


def _bad_cell(column: str, dtype: str, value: Any) -> str | None:
    """Why ``value`` cannot be a row's cell of ``column`` (of ``dtype``), or None. Null is any figure's
    'unknown', and NaN a figure's (a point that did not run to the end has none)."""
    if column in ("point_id", "status") and not isinstance(value, str):
        return f"{value!r} is not text"
    if column == "status" and value not in STATUSES:
        return f"{value!r} is not one of {', '.join(STATUSES)}"
    if value is None:
        return None
    if dtype == "string":
        return None if isinstance(value, str) else f"{value!r} is not text"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return f"{value!r} is not a number"
    if math.isinf(value):
        return f"{value!r} is not a finite number"
    past = past_edge(value)
    if past is not None:
        return past[1]
    if dtype == "Int64" and not (math.isnan(value) or float(value).is_integer()):
        return f"{value!r} is not a whole number"
    return None


# An ok row holds one of these (a training point's step time or its bound, a serving point's goodput):
# read back without, it would be kept as done, and twin compare refuses the file it is written to
OK_FIGURES = ("step_time_s", "goodput_requests_per_s")


RESTART = "fix or remove it, or pass --restart to discard the rows"
CACHED = "fix or remove it (the rows are a cache: removed, every point runs again)"  # (a co-design report's)


def check_row(sweep: Sweep, row: dict[str, Any], where: str, file: Path, fix: str = RESTART) -> None:
    """A row read back (from the journal or the results file) must have cells that the sweep's columns
    can hold, and an ok row figures of the signs :func:`sim.sweep.point.sign_break` asks for (as
    ``twin compare`` reads the file); else one line names the file, the line or row, and the column, and
    says how to go on (``fix``). The point, its label and the override cells are not read: they are
    written again from the sweep."""
    rewritten = {"point", "label", *sweep.keys}
    ok = row.get("status") == OK
    for column, dtype in columns(sweep):
        if column in rewritten:
            continue
        value = row.get(column)
        why = _bad_cell(column, dtype, value)
        if why is None and ok and not _missing(value):  # an ok row's figures, as twin compare reads them
            broken = sign_break(column, value)
            why = None if broken is None else broken[1]
        if why is not None:
            raise ScenarioError(f"{where}: {column}", f"{why}; {fix}", str(file))
    if ok and all(_missing(row.get(c)) for c in OK_FIGURES):
        why = "none in a point whose status is ok (a step's time, or a serving point's goodput)"
        raise ScenarioError(f"{where}: {OK_FIGURES[0]}", f"{why}; {fix}", str(file))


def lock_path(output: Path) -> Path:
    """The lock beside ``output``: ``NAME.lock``."""
    return output.with_name(output.name + ".lock")


def _refuse_links(output: Path) -> None:
    """Refuse a results file, its journal or its lock that is a symbolic link: a sweep read the rows of
    the link's target, then put a plain file in the link's place, so the target kept its old rows and
    the link was gone. As for output folders (:mod:`sim.outputs`), twin does not write through links."""
    for path in (output, journal_path(output), lock_path(output)):
        if path.is_symlink():
            raise ScenarioError("", a_link(path), str(path))


def _take_lock(output: Path) -> TextIO:
    """The lock beside ``output`` (``NAME.lock``), taken: two sweeps never write one file at once."""
    lock = lock_path(output)
    for _ in range(20):
        try:
            f = open(lock, "a")
        except OSError as err:
            why = f"cannot take the lock {lock.name} beside it: {err.strerror}"
            raise ScenarioError("", why, str(output)) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ScenarioError("", "another sweep is writing this file now", str(output)) from None
        try:
            same = os.fstat(f.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same and os.fstat(f.fileno()).st_size:  # a sweep's lock is empty: this is someone's file
            f.close()
            why = f"{lock.name} beside it is not a sweep's lock (a lock is an empty file; this one holds data)"
            raise ScenarioError("", f"{why}: move it away, or give --output another name", str(output))
        if same:  # not a lock file its last holder removed while we opened it
            return f
        f.close()
    raise ScenarioError("", "cannot take the lock beside it (removed again and again)", str(output))


def _drop_lock(f: TextIO) -> None:
    lock = Path(f.name)
    f.close()
    lock.unlink(missing_ok=True)


def _mark_restart(journal: Path) -> None:
    """A new journal whose first line says the results file's rows are discarded (on disk before any
    point runs: a restart stopped at any time never gives the old rows back)."""

    def put(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({RESTARTED: True}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    atomic_write(journal, put)


def _holds_bounds_rows(beside: Path) -> bool:
    """Whether ``beside`` (a file or only its journal) holds ``--best``'s screening rows: the file's
    metadata (:func:`holds_bounds`) or a journal line marked as bounds. Anything else (no such file, a
    file of steps, one that is not a sweep's) is not touched by a restart of the output."""
    if beside.exists():
        return holds_bounds(read_meta(beside), beside)
    try:
        journaled = _read_journal(journal_path(beside))
    except ScenarioError:  # a folder or a pipe: not screening rows
        return False
    return any(row.get(BOUNDS_KEY) is True for _, row in journaled)


def _restart_bounds_beside(beside: Path) -> None:
    """A restart of a sweep of steps discards the screening rows ``--best`` kept beside its output, as
    it discards its own (:func:`_mark_restart`: the file stays until a screening's first write replaces
    it): bounds of the scenario before the change that the restart answers would screen the steps after
    it. Under the screening file's lock (a sweep writing it now is named in one line)."""
    if not _holds_bounds_rows(beside):
        return
    lock = _take_lock(beside)
    try:
        if beside.exists():
            _mark_restart(journal_path(beside))
        else:
            journal_path(beside).unlink(missing_ok=True)
    finally:
        _drop_lock(lock)


class Store:
    """The rows of one sweep in one output file (see the module docstring)."""

    def __init__(
        self,
        sweep: Sweep,
        output: Path,
        restart: bool = False,
        retry_failed: bool = False,
        drop_foreign: bool = False,
        restart_screening: bool = True,
        fix: str = RESTART,
    ) -> None:
        """``drop_foreign``: rows of points not in the sweep are dropped instead of stopping it (a
        co-design report's results are a cache of its current study file). ``restart_screening``: a
        restart of a sweep of steps discards the screening rows beside its output too (``--best``,
        which restarts both files itself, turns it off). ``fix``: what a refusal of a row read back says to
        do (:func:`check_row`; a co-design report's cache, which has no --restart: :data:`CACHED`)."""
        self.sweep = sweep
        self.output = output
        self.fix = fix
        self.journal = journal_path(output)
        check_name_room(output, ".journal")  # (its lock, ``.lock``, is shorter)
        _refuse_links(output)
        self._lock: TextIO | None = None
        self._journal_file: TextIO | None = None
        self.stale = 0  # rows read that another revision of the simulator computed (dropped, to run again)
        self._lock = _take_lock(output)
        try:
            screening = restart_screening and not isinstance(sweep, BoundsSweep)
            self.rows = self._load(restart, retry_failed, drop_foreign, screening)
        except BaseException:
            self.release()  # nothing left behind: not even the lock file
            raise
        self._last_flush = time.monotonic()
        self._dirty = False

    def _load(
        self, restart: bool, retry_failed: bool, drop_foreign: bool, screening: bool = False
    ) -> dict[str, dict[str, Any]]:
        if restart:  # the old rows are dropped, not the old file: it stays until the first write replaces it
            if self.output.exists():
                read_results(self.output)  # (a file that is not a sweep's results is refused, --restart or not)
            _read_journal(self.journal)  # (and a file of the journal's name that is no journal)
            if screening:  # (before this file is marked: a refusal there leaves it as it was)
                _restart_bounds_beside(screening_path(self.output))
            if self.output.exists():
                _mark_restart(self.journal)
            else:
                self.journal.unlink(missing_ok=True)
            return {}
        ids = {p.point_id for p in self.sweep.points}
        rows: dict[str, dict[str, Any]] = {}
        journaled = _read_journal(self.journal)
        restarted = bool(journaled) and RESTARTED in journaled[0][1]
        if restarted:  # a --restart that stopped before rewriting the results: its old rows do not count
            journaled = journaled[1:]
        kept = not restarted and self.output.exists()
        read: list[tuple[Path, str, dict[str, Any]]] = []
        if kept:
            held, meta = read_results(self.output)  # (one read: rows and metadata)
            read = [(self.output, w, r) for w, r in held]
            if read and meta:  # (a file with no metadata has no kind to tell)
                _refuse_mixing(self.sweep, self.output, holds_bounds(meta, self.output))
        # each journal line says which kind it is; one with no mark was written before lines did, by an
        # older revision: run again below, as another revision's rows are, never taken as either kind
        for mark in sorted({r[BOUNDS_KEY] for _, r in journaled if isinstance(r.get(BOUNDS_KEY), bool)}):
            _refuse_mixing(self.sweep, self.journal, mark)
        read += [(self.journal, w, r) for w, r in journaled]
        unmarked: set[str] = set()  # points whose row read last is a journal line with no kind
        origin: dict[str, Path] = {}  # the file each point's row was read from last
        for file, where, row in read:
            pid = row.get("point_id")
            if not isinstance(pid, str):
                raise ScenarioError(f"{where}: point_id", f"{pid!r} is not text", str(file))
            if pid in ids:  # a foreign row is refused or dropped below, whatever it holds
                check_row(self.sweep, row, where, file, self.fix)
            rows[pid] = row
            origin[pid] = file
            if file == self.journal and not isinstance(row.get(BOUNDS_KEY), bool):
                unmarked.add(pid)
            else:
                unmarked.discard(pid)
        foreign = [i for i in rows if i not in ids]
        if foreign and drop_foreign:
            rows = {i: r for i, r in rows.items() if i in ids}
        elif foreign:
            # the file read: the journal alone where the rows are only there (a sweep killed before its
            # first write of the results, which then do not exist)
            held_in = {origin[i] for i in foreign}
            raise ScenarioError(
                "",
                f"holds {len(foreign)} point(s) that are not in {self.sweep.path} (another sweep, or its base "
                "scenario changed); write to another file or pass --restart to discard them",
                str(self.journal if held_in == {self.journal} else self.output),
            )
        if retry_failed:
            rows = {i: r for i, r in rows.items() if r.get("status") in ("ok", "infeasible")}
        inputs = {p.point_id: self.sweep.input_digest(p) for p in self.sweep.points if p.point_id in rows}
        stale = [
            i
            for i, r in rows.items()
            if r.get("twin_code") != code_digest() or r.get("twin_inputs") != inputs.get(i) or i in unmarked
        ]
        self.stale = len(stale)  # computed by another revision of the simulator, or from other files: run again
        for i in stale:
            del rows[i]
        current = {p.point_id: p for p in self.sweep.points}
        for i, row in rows.items():  # a grown or reordered sweep: the point's place and cells as they are now
            point = current[i]
            row.update(point=point.index, label=label(point.overrides))
            row.update(override_cells(self.sweep, point.overrides))
        return rows

    def release(self) -> None:
        if self._journal_file is not None:
            try:
                self._journal_file.close()
            except OSError:  # what a full disk would not take (the error was reported when it was written)
                pass
            self._journal_file = None
        if self._lock is not None:
            _drop_lock(self._lock)
            self._lock = None

    def done(self) -> set[str]:
        return set(self.rows)

    def add(self, row: dict[str, Any]) -> None:
        """Record one completed point: journal line now (flushed to disk), Parquet every few seconds."""
        self.rows[str(row["point_id"])] = row
        if self._journal_file is None:
            self._journal_file = open(self.journal, "a+", encoding="utf-8")
            if self._journal_file.tell() > 0:  # a line cut by a kill must not swallow the next one
                self._journal_file.seek(self._journal_file.tell() - 1)
                if self._journal_file.read(1) != "\n":
                    self._journal_file.write("\n")
        line = row | {BOUNDS_KEY: isinstance(self.sweep, BoundsSweep)}  # steps or bounds (_refuse_mixing)
        try:
            self._journal_file.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._journal_file.flush()
            os.fsync(self._journal_file.fileno())
        except OSError as err:  # the disk full: what is journaled stays (a cut line is skipped on reading)
            detail = err.strerror or str(err)
            raise TwinError(
                f"{self.journal}: could not write it ({detail}); the points completed before are kept in it: "
                "run again to resume"
            ) from None
        self._dirty = True
        if time.monotonic() - self._last_flush > FLUSH_EVERY_S:
            self.write()

    def frame(self) -> pd.DataFrame:
        return frame(self.sweep, self.rows.values())

    def write(self) -> None:
        """Rewrite the Parquet file with every row so far (atomic), then drop the journal."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.frame(), preserve_index=False)
        meta = {
            "name": self.sweep.name,
            "sweep": str(self.sweep.path),
            "base": str(self.sweep.base_path),
            "base_sha256": self.sweep.base_hash,
            "points": len(self.sweep.points),
            BOUNDS_KEY: isinstance(self.sweep, BoundsSweep),
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
        try:
            atomic_write(self.output, lambda tmp: pq.write_table(table, tmp))
        except TwinError as err:  # the journal still holds every completed point
            raise TwinError(f"{err}; the completed points are kept in {self.journal}: run again to resume") from None
        if self._journal_file is not None:
            self._journal_file.close()
            self._journal_file = None
        self.journal.unlink(missing_ok=True)
        self._last_flush = time.monotonic()
        self._dirty = False
