"""The disk filling up during a sweep and during a report (issue 23, faults under load).

Simulated with a file-size limit on the twin's process (``RLIMIT_FSIZE``: a write past it fails with
EFBIG, as a full disk fails with ENOSPC; Python ignores SIGXFSZ, so the write raises instead of killing
the process). What must hold: one line on stderr naming the file that could not be written and exit
status 2; the file it was replacing untouched (outputs are written to a temporary and renamed); the
sweep's journal intact (every line a complete row), so running the sweep again without the limit
resumes, running only the points not journaled, and gives every row.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sim.sweep.point import OK
from sim.sweep.store import BOUNDS_KEY, journal_path, read_results
from tests.conftest import REPO, write_sweep


def _twin_limited(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess[str]:
    """``twin ARGS`` under the limit, writing no bytecode (``-B``, and its workers by the environment):
    Python 3.11 writes a ``.pyc`` with one ``write`` and does not check for a short one, and past the
    limit the kernel writes what fits and returns short, so a module whose ``.pyc`` was stale got a
    truncated one, and every later import of it in any process failed (``EOFError: EOF read where object
    expected``, which the CLI showed as ``error: aborted``)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    fn: Callable[[], None] = limit
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-B", "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        preexec_fn=fn,
        env=env,
    )


GRID = {"grid": {"comm.sms": [12, 16, 20]}}


@pytest.fixture(scope="module")
def sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[int], int]:
    """The bytes of each journal line of the sweep below (as :meth:`sim.sweep.store.Results.add` writes
    it, from the rows of a run without a limit) and of its results file: the limits are set from
    them, not from the sizes of the day (a column added makes every row longer)."""
    folder = tmp_path_factory.mktemp("unlimited")
    out = folder / "r.parquet"
    r = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(write_sweep(folder, GRID)), "-o", str(out), "-j", "1", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    rows, _ = read_results(out)
    lines = [len((json.dumps(row | {BOUNDS_KEY: False}, separators=(",", ":")) + "\n").encode()) for _, row in rows]
    return lines, out.stat().st_size


@pytest.mark.parametrize("case", ["second row", "results file"])
def test_sweep_with_a_full_disk_stops_in_one_line_and_resumes(
    tmp_path: Path, case: str, sizes: tuple[list[int], int]
) -> None:
    """Which write fails first depends on timing (the Parquet file is rewritten every few seconds, the
    journal at each point); either is named, and the journal keeps every point completed before.

    ``second row``: the limit lets the first journal line through and stops the second halfway (a
    line read back from Parquet may differ from the one journaled by a few bytes: NaN is written
    ``NaN`` there and ``null`` here, hence half a line of room); ``results file``: every line fits,
    and the results file, larger than the whole journal, does not."""
    row_bytes, parquet = sizes
    if case == "second row":
        limit = row_bytes[0] + row_bytes[1] // 2
    else:
        limit = sum(row_bytes) + 64
        assert parquet > limit + 1024, (parquet, row_bytes)  # the case holds: the results file cannot be written
    path = write_sweep(tmp_path, GRID)
    out = tmp_path / "r.parquet"
    journal = journal_path(out)
    r = _twin_limited(["sweep", str(path), "-o", str(out), "-j", "1", "-q"], limit)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith((f"error: {journal}: could not write it", f"error: {out}: could not write it"))
    assert "File too large" in lines[0] and "run again to resume" in lines[0]
    assert r.stdout == ""
    assert not out.exists()  # nothing half-written
    text = journal.read_text()
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            assert line == text.splitlines()[-1] and not text.endswith("\n")  # only the row being written
    assert len(rows) == 1 if case == "second row" else 1 <= len(rows) <= 3, len(rows)
    assert all(row["status"] == OK for row in rows)
    assert len(text.encode()) <= limit
    again = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "-j", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert again.returncode == 0, again.stderr
    assert f"{3 - len(rows)} point(s) run, {len(rows)} already done" in " ".join(again.stdout.split())
    done = pd.read_parquet(out)
    assert list(done["status"]) == [OK] * 3
    for row in rows:  # the journaled points are the rows of the result, as they were
        kept = done[done["point_id"] == row["point_id"]].iloc[0]
        assert kept["step_time_s"] == row["step_time_s"]


def test_report_with_a_full_disk_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    scenario = str(REPO / "scenarios" / "dualpipe-table.yaml")
    first = subprocess.run(
        [sys.executable, "-m", "sim", "report", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "dualpipe-table"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    r = _twin_limited(["report", scenario, "-o", str(tmp_path)], 20_000)  # its figures are larger
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder}: could not write it"), r.stderr
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before  # the report it was replacing, byte for byte
    assert [p.name for p in tmp_path.iterdir()] == ["dualpipe-table"]  # no temporary left beside it
