"""Sweeps: expansion and validation of sweep files, derived scenarios, rows that match a direct run,
resume after a kill, identical results on a dask cluster, ``twin compare`` and the Pareto front."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import load_scenario
from sim.economics import HOURS_PER_YEAR, training_cost
from sim.errors import ScenarioError
from sim.run import simulate_training
from sim.sweep.pareto import pareto_front, pareto_front_reference
from sim.sweep.point import FAILED, INFEASIBLE, OK, run_point
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep
from sim.sweep.store import Store, journal_path

ROOT = Path(__file__).resolve().parents[3]
SMALL = ROOT / "tests" / "data" / "sweep" / "small-step.yaml"


def write_sweep(folder: Path, body: dict, name: str = "s.yaml") -> Path:
    body = {"base": str(SMALL)} | body
    path = folder / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def twin(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


# ------------------------------------------------------------------------------------ sweep files


def test_grid_then_points_in_order(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        {"grid": {"comm.sms": [12, 20], "cluster.nic_Gbps": [200, 400]}, "points": [{"comm.coprocessor": True}]},
    )
    sweep = load_sweep(path)
    got = [p.overrides for p in sweep.points]
    assert got == [
        {"comm.sms": 12, "cluster.nic_Gbps": 200},
        {"comm.sms": 12, "cluster.nic_Gbps": 400},
        {"comm.sms": 20, "cluster.nic_Gbps": 200},
        {"comm.sms": 20, "cluster.nic_Gbps": 400},
        {"comm.coprocessor": True},
    ]
    assert [p.index for p in sweep.points] == list(range(5))
    assert sweep.keys == ("comm.sms", "cluster.nic_Gbps", "comm.coprocessor")
    assert len({p.point_id for p in sweep.points}) == 5


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"grid": {"comm.smz": [1]}}, "grid.comm.smz: 1: unknown key"),
        ({"grid": {"comm.sms": [20, -3]}}, "grid.comm.sms: -3:"),
        ({"points": [{}, {"pipeline.pp": "x"}]}, "points[1].pipeline.pp:"),
        ({"points": [{"pipeline.pp.x": 1}]}, "points[0].pipeline.pp.x: 1: pipeline.pp is a value"),
        ({"points": [{"comm.sms": 12}, {"comm.sms": 12}]}, "points[1]: repeats the point"),
        ({"grid": {"comm.sms": []}}, "grid.comm.sms: give a non-empty list"),
        ({"grid": {"comm..sms": [1]}}, "grid.comm..sms: an override key is a dotted scenario key"),
        ({}, "the sweep has no points"),
        ({"gird": {}}, "gird: unknown key; allowed: name, description, base, grid, points"),
        ({"points": [{"cluster.topology": "nope.yaml"}]}, "points[0].cluster.topology:"),
    ],
)
def test_bad_sweeps_name_the_key(tmp_path: Path, body: dict, needle: str) -> None:
    path = write_sweep(tmp_path, body)
    with pytest.raises(ScenarioError) as e:
        load_sweep(path)
    line = str(e.value)
    assert "\n" not in line
    assert needle in line
    assert line.startswith(str(path))


def test_bad_sweep_from_the_command_line_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20, "twenty"]}})
    out = tmp_path / "r.parquet"
    r = twin("sweep", str(path), "-o", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and 'grid.comm.sms: "twenty"' in r.stderr
    assert not out.exists() and not journal_path(out).exists()


def test_base_without_training_is_refused(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"base": str(ROOT / "scenarios" / "schedule-comparison.yaml"), "grid": {"seed": [1]}})
    with pytest.raises(ScenarioError, match="needs a training section"):
        load_sweep(path)


def test_path_overrides_resolve_against_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    rel = os.path.relpath(ROOT / "topologies" / "deepseek-v3-ft2.yaml", tmp_path / "sub")
    path = write_sweep(tmp_path / "sub", {"points": [{"cluster.topology": rel}]})
    sweep = load_sweep(path)
    data = sweep.scenario_data(sweep.points[0])
    assert Path(data["cluster"]["topology"]) == (ROOT / "topologies" / "deepseek-v3-ft2.yaml").resolve()
    assert sweep.points[0].overrides["cluster.topology"] == rel  # recorded as written


# ------------------------------------------------------------------------------- derived scenarios


def test_derived_scenario_equals_its_base_with_the_overrides(tmp_path: Path) -> None:
    derived = load_scenario(SMALL)
    base = load_scenario(ROOT / "scenarios" / "deepseek_v3_pretrain.yaml")
    assert derived.name == "small-step"
    assert derived.training is not None and derived.training.gpus == 512
    assert derived.workload.ep == 32
    assert derived.profile_path.resolve() == base.profile_path.resolve()  # resolved against the base's folder
    assert derived.cluster_spec() == base.cluster_spec()


def test_derived_scenario_errors(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text(f"base: {SMALL}\nset: {{comm.sms: -1}}\n")
    with pytest.raises(ScenarioError, match=r"d\.yaml: comm\.sms"):
        load_scenario(bad)
    bad.write_text(f"base: {SMALL}\npipeline: {{pp: 4}}\n")
    with pytest.raises(ScenarioError, match="a derived scenario"):
        load_scenario(bad)
    bad.write_text("base: d.yaml\n")
    with pytest.raises(ScenarioError, match="its own base"):
        load_scenario(bad)


# ---------------------------------------------------------------------------------------- rows


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
    assert ok["status"] == OK and ok["error"] == ""
    assert ok["step_time_s"] == direct.step_time_s
    assert ok["gpu_hours_per_T"] == direct.gpu_hours_per_trillion_tokens
    assert ok["memory_headroom_GB"] == pytest.approx(80 - ok["memory_peak_GB"])
    assert ok["comm.sms"] == 12 and ok["label"] == "comm.sms=12"
    assert bad["status"] == INFEASIBLE and "workload.ep" in bad["error"]
    assert math.isnan(bad["step_time_s"])
    assert not journal_path(out).exists()  # the Parquet file holds everything


def test_a_point_that_raises_is_recorded_not_dropped() -> None:
    data = yaml.safe_load(SMALL.read_text())
    row = run_point({"name": "x"}, str(SMALL), str(SMALL.parent))  # not a valid scenario: infeasible line
    assert row["status"] == INFEASIBLE and "pipeline" in row["error"]
    row = run_point(data, str(SMALL), "/nonexistent-folder-for-a-bug")  # a derived file handed raw: base key
    assert row["status"] in (INFEASIBLE, FAILED) and row["error"]


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
    r = twin("compare", str(out), "--by", "memory_headroom_GB", "--format", "json", "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    shrunk = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12]}}))
    with pytest.raises(ScenarioError, match=r"not in .*--restart"):
        run_sweep(shrunk, out, workers=1)
    third = run_sweep(shrunk, out, workers=1, restart=True)
    assert third.ran == 1 and len(pd.read_parquet(out)) == 1


def test_override_columns_keep_their_values_whatever_their_size(tmp_path: Path) -> None:
    points = [{"seed": 1}, {"seed": 10**19}, {"cluster.nic_Gbps": 400}, {"cluster.nic_Gbps": 12.5}]
    sweep = load_sweep(write_sweep(tmp_path, {"points": points}))
    assert sweep.override_dtypes == {"seed": "json", "cluster.nic_Gbps": "float64"}  # 10**19 does not fit Int64
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    from sim.sweep.runner import _row

    for p in sweep.points:
        store.add(_row(sweep, p, {"status": INFEASIBLE, "error": "x"}))
    store.write()
    store.release()
    df = pd.read_parquet(out)
    assert list(df["seed"].fillna("-")) == ["1", str(10**19), "-", "-"]
    assert list(df["cluster.nic_Gbps"])[2:] == [400.0, 12.5]


def test_a_row_after_a_cut_journal_line_is_kept(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 16, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    store.add({"point": 0, "point_id": sweep.points[0].point_id, "status": OK, "error": ""})
    store.release()
    with open(journal_path(out), "a") as f:
        f.write('{"point": 1, "point_id": "')  # killed in the middle of a line
    again = Store(sweep, out)
    again.add({"point": 2, "point_id": sweep.points[2].point_id, "status": OK, "error": ""})
    again.release()
    third = Store(sweep, out)
    assert third.done() == {sweep.points[0].point_id, sweep.points[2].point_id}
    third.release()


def test_journal_rows_survive_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    row = {"point": 0, "point_id": sweep.points[0].point_id, "label": "x", "comm.sms": 12, "status": OK, "error": ""}
    store.add(row)
    store.release()  # as if killed: no Parquet written yet
    with open(journal_path(out), "a") as f:
        f.write('{"point": 1, "point_id": "')  # a line cut short
    again = Store(sweep, out)
    assert again.done() == {sweep.points[0].point_id}
    again.release()


def test_a_corrupt_results_file_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12]}})
    out = tmp_path / "r.parquet"
    out.write_bytes(b"not parquet at all")
    r = twin("sweep", str(path), "-o", str(out))
    assert r.returncode == 2 and "r.parquet: cannot read it as sweep results" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet", "s.yaml"]  # no lock, no journal
    assert out.read_bytes() == b"not parquet at all"


def test_two_sweeps_cannot_write_one_file(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    try:
        with pytest.raises(ScenarioError, match="another sweep is writing"):
            Store(sweep, out)
    finally:
        store.release()


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
    deadline = time.monotonic() + 120
    lines = 0
    while time.monotonic() < deadline and proc.poll() is None:
        lines = journal.read_text().count("\n") if journal.exists() else 0
        if lines >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = journal.read_text().count("\n")
    assert 2 <= done < 6
    r = twin("sweep", str(path), "-o", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    assert f"{6 - done} point(s) run, {done} already done" in " ".join(r.stdout.split())
    resumed = pd.read_parquet(out)
    clean_out = tmp_path / "clean.parquet"
    run_sweep(load_sweep(path), clean_out, workers=2)
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(clean_out))
    assert list(resumed["status"]) == [OK] * 6


def _workers(pid: int) -> list[int]:
    """Pool worker processes (spawned) among the children of ``pid``."""
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
    killed = []
    while time.monotonic() < deadline and proc.poll() is None and not killed:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            for pid in _workers(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    assert killed, "no worker to kill"
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    df = pd.read_parquet(out)
    assert list(df["status"]) == [OK] * 4  # the point in flight ran again on a new worker


@pytest.mark.parametrize("order", [[13, 8, 12, 16, 20], [8, 12, 13, 16, 20, 24, 28]])
def test_a_point_that_kills_its_worker_is_recorded_and_the_others_run(tmp_path: Path, order: list[int]) -> None:
    from sim.sweep.runner import _local
    from tests.unit.sweep.crashing import crash_on_13

    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": order}}))
    rows = {p.overrides["comm.sms"]: r for p, r in _local(sweep, list(sweep.points), 2, fn=crash_on_13)}
    assert sorted(rows) == sorted(order)  # every point once
    assert rows[13]["status"] == FAILED and "died while it ran alone" in rows[13]["error"]
    assert all(r["status"] == OK and r["step_time_s"] == sms for sms, r in rows.items() if sms != 13)


def test_dask_cluster_gives_the_same_rows(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}, "points": [{"workload.ep": 1024}]})
    local = tmp_path / "local.parquet"
    run_sweep(load_sweep(path), local, workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        r = twin("sweep", str(path), "-o", str(tmp_path / "dask.parquet"), "--scheduler", cluster.scheduler_address)
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(local), pd.read_parquet(tmp_path / "dask.parquet"))


def test_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12]}})
    out = tmp_path / "r.parquet"
    r = twin("sweep", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.startswith("error: --scheduler: cannot reach")
    assert not out.exists()


# ----------------------------------------------------------------------------------- compare


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
        "memory_headroom_GB",
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
    front = pareto_front(ok["step_time_s"].to_numpy(), ok["memory_headroom_GB"].to_numpy(), "min", "max")
    assert sorted(p["point"] for p in got["pareto_front"]) == sorted(ok.iloc[front]["point"])
    assert plot.stat().st_size > 1000
    r = twin("compare", str(out), "--by", "speed")
    assert r.returncode == 2 and "--by: unknown figure 'speed'" in r.stderr


def test_compare_refuses_a_file_that_is_not_sweep_results(tmp_path: Path) -> None:
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    r = twin("compare", str(bad))
    assert r.returncode == 2 and "not a twin sweep results file" in r.stderr


VALUES = st.one_of(st.integers(0, 6).map(float), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(VALUES, VALUES), max_size=40),
    st.sampled_from(["min", "max"]),
    st.sampled_from(["min", "max"]),
)
def test_pareto_front_matches_the_pairwise_reference(points: list[tuple[float, float]], bx: str, by: str) -> None:
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    assert list(pareto_front(x, y, bx, by)) == list(pareto_front_reference(x, y, bx, by))


def test_pareto_front_closed_case() -> None:
    x = np.array([1.0, 2.0, 3.0, 2.0, 4.0])
    y = np.array([5.0, 3.0, 1.0, 4.0, 1.0])
    assert list(pareto_front(x, y)) == [0, 1, 2]  # (2,4) is beaten by (2,3); (4,1) by (3,1)


# ---------------------------------------------------------------------------------- economics


def test_cost_per_trillion_tokens_closed_form() -> None:
    c = training_cost(180_000.0, 2048, 9e6, 2048, gpu_hour_usd=2.0, fabric_life_years=4.0)
    assert c.gpu_usd_per_T == 360_000.0
    per_gpu_hour = 9e6 / 2048 / (4 * HOURS_PER_YEAR)
    assert c.fabric_usd_per_T == pytest.approx(180_000 * per_gpu_hour)
    half = training_cost(180_000.0, 1024, 9e6, 2048)
    assert half.fabric_usd == 4.5e6 and half.fabric_usd_per_gpu_hour == pytest.approx(per_gpu_hour)
