"""A sweep on a dask cluster under faults (issue 23, faults under load): a worker killed with SIGKILL
mid-sweep, then the scheduler killed and started again.

What must hold. A lost worker costs nothing but time: the scheduler runs its task again on another
worker (dask reschedules the tasks of a lost worker), so the sweep goes on. A lost scheduler takes
every task in flight with it: the sweep stops with one line (exit status 2) and keeps the points
completed so far, never recording the lost ones as failed; run again against a new scheduler, it
runs only the points it did not have, and the rows are those of a clean run, bit for bit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.sweep.point import OK
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep
from sim.sweep.store import journal_path
from tests.conftest import REPO, write_sweep
from tests.integration.sweep.test_sweep import spawned_workers

DASK = Path(sys.executable).with_name("dask")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(DASK), *args, "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _cluster(port: int) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", str(port)])
    workers = _start(["worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2", "--nthreads", "1"])
    return scheduler, workers


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _rows(out: Path) -> int:
    """Points on disk: the Parquet file and the journal lines since."""
    ids: set[str] = set()
    if out.exists():
        ids |= set(pd.read_parquet(out)["point_id"].astype(str))
    journal = journal_path(out)
    if journal.exists():
        ids |= {line.split('"point_id":"')[1][:16] for line in journal.read_text().splitlines() if line.endswith("}")}
    return len(ids)


def _wait(until: object, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None and not until():  # type: ignore[operator]
        time.sleep(0.05)


def test_lost_worker_is_replaced_and_lost_scheduler_stops_the_sweep_to_resume(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    assert DASK.exists(), DASK
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [8, 12, 16, 20, 24, 28]}})
    out = tmp_path / "dask.parquet"
    port = _port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler, workers = _cluster(port)
    try:
        time.sleep(3)  # the scheduler listening, the workers registered (the sweep's client waits 5 s)
        sweep = subprocess.Popen(
            [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "-q", "--scheduler", address],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait(lambda: _rows(out) >= 1, sweep)
        assert sweep.poll() is None, sweep.communicate()
        killed = spawned_workers(workers.pid)
        assert len(killed) == 2, killed
        os.kill(killed[0], signal.SIGKILL)  # a worker with a task in flight
        _wait(lambda: _rows(out) >= 3, sweep)
        assert sweep.poll() is None, "the sweep finished before its scheduler could be killed"
        _kill(scheduler)
        _, err = sweep.communicate(timeout=120)
        assert sweep.returncode == 2, err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --scheduler: lost the dask scheduler"), err
        kept = _rows(out)
        assert 3 <= kept < 6
        rows = pd.read_parquet(out)
        # the tasks lost with the scheduler are not recorded
        assert list(rows["status"]) == [OK] * kept, list(rows["error"])
        _kill(workers)
        scheduler, workers = _cluster(port)  # the scheduler started again, on the same address
        time.sleep(3)
        again = subprocess.run(
            [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "--scheduler", address],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        assert f"{6 - kept} point(s) run, {kept} already done" in " ".join(again.stdout.split())
    finally:
        _kill(workers)
        _kill(scheduler)
    clean = tmp_path / "clean.parquet"
    run_sweep(load_sweep(path), clean, workers=2)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(clean))


def test_best_on_a_dask_cluster_through_the_command(tmp_path: Path) -> None:
    """``twin sweep --best 2 --scheduler`` (:mod:`sim.sweep.screen`): the bounds (a function other than the
    step's) and the steps on dask workers give the same two as the local full sweep, and the command's
    summary says so. The cluster runs in processes of its own, as above: one started in the test process
    would leave its threads there, and the tests that fork children skip in a process with threads."""
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [100, 400, 1600], "comm.sms": [12, 20, 32]}})
    whole = tmp_path / "full.parquet"
    run_sweep(load_sweep(path), whole, workers=2)
    out = tmp_path / "dask.parquet"
    port = _port()
    scheduler, workers = _cluster(port)
    try:
        time.sleep(3)  # the scheduler listening, the workers registered (the sweep's client waits 5 s)
        args = ["sweep", str(path), "-o", str(out), "--best", "2", "--scheduler", f"tcp://127.0.0.1:{port}"]
        r = subprocess.run(
            [sys.executable, "-m", "sim", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        _kill(workers)
        _kill(scheduler)
    assert r.returncode == 0, r.stderr
    expected = pd.read_parquet(whole).sort_values(["step_time_s", "point"]).head(2)
    got = pd.read_parquet(out).sort_values(["step_time_s", "point"]).head(2)
    assert list(got["point_id"]) == list(expected["point_id"])
    assert list(got["step_time_s"]) == list(expected["step_time_s"])
    lines = r.stdout.splitlines()
    assert lines[0].startswith("s: 9 of 9 points bounded -> ") and "the best 2 by step_time_s, exact:" in lines[1]
