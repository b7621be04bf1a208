"""Sweeps that run training steps: rows that match a direct run, resume after a kill (of the sweep or of
a worker), identical results on a dask cluster, and ``twin compare`` on real results."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.run import simulate_training
from sim.sweep.pareto import pareto_front
from sim.sweep.point import INFEASIBLE, OK
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep
from sim.sweep.store import journal_path
from tests.conftest import SMALL_STEP as SMALL
from tests.conftest import twin, write_sweep

ROOT = Path(__file__).resolve().parents[3]


def test_row_matches_a_direct_run_and_infeasible_points_are_recorded(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"points": [{"comm.sms": 12}, {"workload.ep": 1024}]})
    sweep = load_sweep(path)
    out = tmp_path / "r.parquet"
    outcome = run_sweep(sweep, out, workers=1)
    assert (outcome.total, outcome.ran, outcome.skipped, outcome.failed) == (2, 2, 0, 1)
    df = pd.read_parquet(out)
    assert list(df["point"]) == [0, 1]
    ok, bad = df.iloc[0], df.iloc[1]
    derived = tmp_path / "d.yaml"
    derived.write_text(f"base: {SMALL}\nset: {{comm.sms: 12}}\n")
    direct = simulate_training(load_scenario(derived)).result
    assert ok["status"] == OK and pd.isna(ok["error"])  # null where nothing went wrong
    assert ok["step_time_s"] == direct.step_time_s
    assert ok["gpu_hours_per_T"] == direct.gpu_hours_per_trillion_tokens
    assert ok["memory_headroom_GiB"] == pytest.approx(80 - ok["memory_peak_GiB"])
    assert ok["comm.sms"] == 12 and ok["label"] == "comm.sms=12"
    assert bad["status"] == INFEASIBLE and "workload.ep" in bad["error"]
    assert math.isnan(bad["step_time_s"])
    assert not journal_path(out).exists()  # the Parquet file holds everything


def test_resume_runs_only_new_points_and_refuses_foreign_rows(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    first = run_sweep(load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}})), out, workers=1)
    assert first.ran == 2
    before = pd.read_parquet(out)
    grown = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [8, 12, 20]}}))  # a point in front
    second = run_sweep(grown, out, workers=1)
    assert (second.ran, second.skipped) == (1, 2)
    after = pd.read_parquet(out)
    assert list(after["point"]) == [0, 1, 2] and list(after["comm.sms"]) == [8, 12, 20]
    kept = after.iloc[1:].reset_index(drop=True)
    assert list(kept["point_id"]) == list(before["point_id"])
    pd.testing.assert_frame_equal(kept.drop(columns="point"), before.drop(columns="point"))
    r = twin("compare", str(out), "--by", "memory_headroom_GiB", "--format", "json", "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    shrunk = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12]}}))
    with pytest.raises(ScenarioError, match=r"not in .*--restart"):
        run_sweep(shrunk, out, workers=1)
    third = run_sweep(shrunk, out, workers=1, restart=True)
    assert third.ran == 1 and len(pd.read_parquet(out)) == 1


def test_killed_sweep_resumes_losing_only_points_in_flight(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [8, 12, 16, 20, 24, 28]}})
    out = tmp_path / "r.parquet"
    journal = journal_path(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "-j", "1", "-q"],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300

    def completed() -> int:
        """Rows on disk: the Parquet file (rewritten every few seconds, which empties the journal) and
        the journal lines since."""
        ids = set()
        if out.exists():
            ids |= set(pd.read_parquet(out)["point_id"].astype(str))
        if journal.exists():
            ids |= {json.loads(x)["point_id"] for x in journal.read_text().splitlines() if x.endswith("}")}
        return len(ids)

    while time.monotonic() < deadline and proc.poll() is None:
        if completed() >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = completed()
    assert 2 <= done < 6
    r = twin("sweep", str(path), "-o", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    assert f"{6 - done} point(s) run, {done} already done" in " ".join(r.stdout.split())
    resumed = pd.read_parquet(out)
    clean_out = tmp_path / "clean.parquet"
    run_sweep(load_sweep(path), clean_out, workers=2)
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(clean_out))
    assert list(resumed["status"]) == [OK] * 6


def spawned_workers(pid: int) -> list[int]:
    """Worker processes (started by multiprocessing's spawn: a process pool's, a dask nanny's) among
    the children of ``pid``."""
    out = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
            cmd = (child / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "spawn_main" in cmd and "resource_tracker" not in cmd:
            out.append(int(child.name))
    return out


def test_a_killed_worker_is_replaced_and_its_point_run_again(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [8, 12, 16, 20]}})
    out = tmp_path / "r.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "-j", "1", "-q"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    journal = journal_path(out)
    deadline = time.monotonic() + 120
    killed: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None and not killed:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            for pid in spawned_workers(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    assert killed, "no worker to kill"
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    df = pd.read_parquet(out)
    assert list(df["status"]) == [OK] * 4  # the point in flight ran again on a new worker


def test_dask_cluster_gives_the_same_rows(tmp_path: Path) -> None:
    """The cluster runs in processes of its own (``dask scheduler``, ``dask worker``): one started in
    the test process would leave its threads there, and the tests that fork children skip in a process
    with threads (``tests/integration/training/test_second_core.py``)."""
    pytest.importorskip("distributed")
    from tests.integration.sweep.test_dask_faults import _cluster, _kill, _port

    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}, "points": [{"workload.ep": 1024}]})
    local = tmp_path / "local.parquet"
    run_sweep(load_sweep(path), local, workers=2)
    port = _port()
    scheduler, workers = _cluster(port)
    try:
        time.sleep(3)  # the scheduler listening, the workers registered (the sweep's client waits 5 s)
        r = twin("sweep", str(path), "-o", str(tmp_path / "dask.parquet"), "--scheduler", f"tcp://127.0.0.1:{port}")
    finally:
        _kill(workers)
        _kill(scheduler)
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(tmp_path / "dask.parquet"))


def _results(tmp_path: Path) -> Path:
    path = write_sweep(
        tmp_path,
        {"grid": {"comm.sms": [12, 20], "cluster.nic_Gbps": [200, 400]}, "points": [{"workload.ep": 1024}]},
    )
    out = tmp_path / "r.parquet"
    run_sweep(load_sweep(path), out, workers=2)
    return out


def test_compare_ranks_and_finds_the_front(tmp_path: Path) -> None:
    out = _results(tmp_path)
    plot = tmp_path / "p.png"
    r = twin(
        "compare",
        str(out),
        "--by",
        "step_time_s",
        "--against",
        "memory_headroom_GiB",
        "--plot",
        str(plot),
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    df = pd.read_parquet(out)
    ok = df[df["status"] == OK]
    assert got["ok"] == 4 and got["not_ok"] == 1
    assert [b["point"] for b in got["best"]] == list(ok.sort_values(["step_time_s", "point"])["point"])
    front = pareto_front(ok["step_time_s"].to_numpy(), ok["memory_headroom_GiB"].to_numpy(), "min", "max")
    assert sorted(p["point"] for p in got["pareto_front"]) == sorted(ok.iloc[front]["point"])
    assert plot.stat().st_size > 1000
    r = twin("compare", str(out), "--by", "speed")
    assert r.returncode == 2 and "--by: unknown figure 'speed'" in r.stderr
