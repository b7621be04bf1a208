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
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sim.sweep.point import OK
from sim.sweep.store import journal_path
from tests.conftest import REPO, write_sweep


def _twin_limited(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    fn: Callable[[], None] = limit
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=300, cwd=REPO, preexec_fn=fn
    )


@pytest.mark.parametrize(
    "limit",
    [
        1_500,  # a journal row is about 1,180 bytes: the second row, or the first Parquet write, fails
        4_000,  # every row fits in the journal (3.5 kB); the Parquet file (over 6 kB) does not
    ],
)
def test_sweep_with_a_full_disk_stops_in_one_line_and_resumes(tmp_path: Path, limit: int) -> None:
    """Which write fails first depends on timing (the Parquet file is rewritten every few seconds, the
    journal at each point); either is named, and the journal keeps every point completed before."""
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12, 16, 20]}})
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
    assert 1 <= len(rows) <= 3 and all(row["status"] == OK for row in rows)
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
