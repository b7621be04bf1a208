"""Interrupted writes leave nothing half-written: temporaries of killed processes are removed by the
next write, and an error inside a write removes its temporary. (SIGTERM at random moments of a whole
``twin run``: tests/integration/test_signals.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.outputs import atomic_write_text, clean_stale, owned_outputs


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_dir = tmp_path / f".report.run.{dead.pid}.abcd1234"
    stale_dir.mkdir()
    (stale_dir / "x").write_text("half")
    stale_file = tmp_path / f".p.{dead.pid}.abcd1234.json"
    stale_file.write_text("{")
    live = tmp_path / f".report.run.{os.getpid()}.efgh5678"  # our own (a write in progress): kept
    live.mkdir()
    legacy = tmp_path / ".report.run.zz99yy88"  # an older twin's, without PID: removed after an hour
    legacy.mkdir()
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / ".reports.notours"  # another name: kept
    other.mkdir()
    with owned_outputs(tmp_path / "report", "run") as tmp:
        (tmp / "a.txt").write_text("ok")
    atomic_write_text(tmp_path / "p.json", "{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["report", "p.json", live.name, other.name])
    assert clean_stale(tmp_path, "report.run") == []


def test_error_inside_owned_outputs_removes_the_temporary(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), owned_outputs(tmp_path / "r", "run") as tmp:
        (tmp / "a").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
