"""Sweeps of a training run (``twin plan run SWEEP.yaml``, sim/experiments/run_sweep.py).

What must hold, from the definitions (sim/experiments/run_plan.py): a point that sets nothing new is the
run itself, figure for figure; every distinct step of all the points is simulated once; a slice of
``T`` tokens at a step of GPU-hours per trillion tokens ``h`` costs ``h T / 1e12``, so a longer ramp
adds exactly ``sum_i (h_i - h_B) x (its tokens / n)`` (never less GPU-hours when each ramp step costs
more per token than the steady one), and a larger budget adds ``h_B x (T' - T) / 1e12`` to its phase
alone; failures cost Young's overhead on each slice; a step that does not fit makes its point infeasible,
as in any sweep; bad keys are one line naming the file and key, exit status 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from sim.experiments.run_plan import failure_overhead, load_run, plan_run, summary
from sim.experiments.run_sweep import load_run_sweep, simulate_sweep_steps, sweep_summary
from tests.conftest import SMALL_STEP
from tests.integration.test_plan_run import _run_file

FAILURES = {"mtbf_gpu_hours": 50000.0, "checkpoint_s": 60.0, "restart_s": 600.0}


def _sweep(folder: Path, grid: dict[str, Any] | None = None, points: list[Any] | None = None, **run: Any) -> Path:
    _run_file(folder, **run)  # run.yaml: main (1e11 tokens, ramp 1024, 2048 over 2e10, then 2048), long (10 steps)
    body: dict[str, Any] = {"name": "tiny-sweep", "base": "run.yaml"}
    if grid is not None:
        body["grid"] = grid
    if points is not None:
        body["points"] = points
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _points(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(the sweep's JSON, its points, the rows of its steps by key), simulated here."""
    rs = load_run_sweep(path)
    rows, ran = simulate_sweep_steps(rs)
    d = sweep_summary(rs, rows, ran)
    return d, d["points"], rows


def test_a_point_that_changes_nothing_is_the_run(tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"phases.main.ramp.over_tokens": [2.0e10, 4.0e10]}, failures=FAILURES)
    _, points, _ = _points(path)
    run = tmp_path / "run.yaml"
    spec = load_run(run)
    results, groups = plan_run(spec, run)
    alone = summary(spec, results, groups)
    assert points[0]["total"] == alone["total"]  # the same figures, bit for bit
    assert points[0]["phases"] == alone["phases"] and points[0]["groups"] == alone["groups"]
    assert points[1]["total"] != alone["total"]


def test_every_distinct_step_is_simulated_once(tmp_path: Path) -> None:
    grid = {"phases.main.ramp.over_tokens": [0, 2.0e10, 4.0e10], "phases.main.tokens": [1.0e11, 2.0e11]}
    rs = load_run_sweep(_sweep(tmp_path, grid, points=[{"phases.long.set.model.seq_len": 1024}]))
    assert len(rs.points) == 7
    # (1024, 4096), (2048, 4096), (1024, 2048) for every point; the last point adds (1024, 1024)
    assert len(rs.steps()) == 4
    done: list[tuple[int, int]] = []
    rows, ran = simulate_sweep_steps(rs, progress=lambda n, total: done.append((n, total)))
    assert done == [(1, 4), (2, 4), (3, 4), (4, 4)] and ran == 4 and set(rows) == set(rs.steps())


def test_steps_of_one_scenario_written_two_ways_are_one_point(tmp_path: Path) -> None:
    """The long phase set to the base's own EP (small-step.yaml's workload.ep: 32) instead of a shorter
    sequence is, at batch 1024, the main phase's ramp step: two keys, one scenario, simulated once and
    read by both (the steps' sweep refused the second as a point repeated, naming the run file and a
    points[2] in neither file)."""
    rs = load_run_sweep(_sweep(tmp_path, points=[{"phases.long.set": {"workload.ep": 32}}]))
    assert len(rs.steps()) == 3  # batch 1024 twice over (one key with workload.ep), batch 2048
    rows, ran = simulate_sweep_steps(rs)
    assert ran == 2 and set(rows) == set(rs.steps())
    ramp = next(k for k in rows if "1024" in k and "workload" not in k)
    long = next(k for k in rows if "workload" in k)
    assert rows[ramp]["step_time_s"] == rows[long]["step_time_s"]


def test_a_longer_ramp_never_costs_less_when_its_steps_cost_more_per_token(tmp_path: Path) -> None:
    """Each ramp slice runs at its own (smaller) batch: fewer micro-batches behind the same bubble, so more
    GPU-hours per token. GPU-hours over the ramp's length R: exactly the steady cost plus that excess."""
    ramps = [0, 2.0e10, 4.0e10, 8.0e10]
    _, points, rows = _points(_sweep(tmp_path, {"phases.main.ramp.over_tokens": ramps}))
    rs = load_run_sweep(tmp_path / "sweep.yaml")
    main_steps = {s.global_batch: rows[s.step] for s in rs.points[-1].plan.slices if s.phase == 0}
    h = {b: float(r["gpu_hours_per_T"]) for b, r in main_steps.items()}
    assert h[1024] > h[2048]  # the mechanism: the smaller batch's step costs more per token
    gpu_hours = [p["phases"][0]["gpu_hours"] for p in points]
    assert gpu_hours == sorted(gpu_hours)
    for r, got in zip(ramps, gpu_hours, strict=True):  # the closed form, from the steps' own figures
        each = r / 2  # the ramp's two equal slices, at 1024 and 2048 sequences
        expected = h[2048] * (1.0e11 - r) / 1e12 + (h[1024] + h[2048]) * each / 1e12
        assert got == pytest.approx(expected, rel=1e-12)
    long = [p["phases"][1] for p in points]
    assert all(x == long[0] for x in long)  # the other phase is not touched


def test_a_token_budget_scales_the_steady_part_linearly(tmp_path: Path) -> None:
    budgets = [1.0e11, 2.0e11, 3.5e11]
    _, points, rows = _points(_sweep(tmp_path, {"phases.main.tokens": budgets}))
    rs = load_run_sweep(tmp_path / "sweep.yaml")
    steady = rows[next(s.step for s in rs.points[0].plan.slices if s.phase == 0 and s.tokens == 1.0e11 - 2.0e10)]
    h, t = float(steady["gpu_hours_per_T"]), float(steady["step_time_s"])
    first = points[0]["phases"][0]
    for budget, p in zip(budgets, points, strict=True):
        main_phase = p["phases"][0]
        more = budget - budgets[0]
        assert main_phase["gpu_hours"] - first["gpu_hours"] == pytest.approx(h * more / 1e12, rel=1e-9)
        assert main_phase["steps"] - first["steps"] == pytest.approx(more / (2048 * 4096), rel=1e-9)
        assert main_phase["days"] - first["days"] == pytest.approx(more / (2048 * 4096) * t / 86400, rel=1e-9)
        assert p["phases"][1] == points[0]["phases"][1]
        assert p["total"]["gpu_hours"] == pytest.approx(main_phase["gpu_hours"] + p["phases"][1]["gpu_hours"])


def test_a_failure_rate_sweep_costs_youngs_overhead_apart(tmp_path: Path) -> None:
    mtbfs = [10000.0, 50000.0, 250000.0]
    _, points, _ = _points(_sweep(tmp_path, {"failures.mtbf_gpu_hours": mtbfs}, failures=FAILURES))
    from sim.experiments.run_plan import FailureSpec

    lost = []
    for mtbf, p in zip(mtbfs, points, strict=True):
        _, overhead = failure_overhead(FailureSpec(**(FAILURES | {"mtbf_gpu_hours": mtbf})), 512)
        assert p["total"]["lost_days"] == pytest.approx(p["total"]["days"] * overhead, rel=1e-9)
        assert {k: v for k, v in p["total"].items() if not k.startswith("lost")} == {
            k: v for k, v in points[0]["total"].items() if not k.startswith("lost")
        }  # the run's own figures do not move
        lost.append(p["total"]["lost_days"])
    assert lost == sorted(lost, reverse=True)


def test_a_step_that_does_not_fit_makes_its_point_infeasible(tmp_path: Path) -> None:
    """256 sequences are too few micro-batches per pipeline for DualPipe (2 x PP): refused, recorded."""
    grid = {"phases.main.ramp.batches": [[1024, 2048], [256, 2048]]}
    _, points, _ = _points(_sweep(tmp_path, grid))
    assert points[0]["status"] == "ok"
    assert points[1]["status"] == "infeasible" and points[1]["total"] is None
    assert points[1]["error"].startswith("phases.main: ") and "micro-batches" in points[1]["error"]


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("phases.nope.tokens", [1.0e11]),
        ("phases.main.colour", [1]),
        ("name", ["x"]),
        ("failures.mtbf", [1.0]),
        ("phases.main.tokens", ["many"]),
        ("phases.main.ramp.over_tokens", [5.0e11]),  # more than the phase's tokens
        ("phases.main.set.model.seq_len", [0]),
    ],
)
def test_bad_grid_keys_are_one_line(
    tmp_path: Path, key: str, values: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep(tmp_path, {key: values})
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "-o", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert f"{path}: grid.{key}: " in err
    assert not (tmp_path / "out").exists()


def test_twin_sweep_sends_a_run_to_plan_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _sweep(tmp_path, {"phases.main.tokens": [1.0e11]})
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(path)])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and err.count("\n") == 1 and "twin plan run" in err and f"{path}: base" in err
    scenario_sweep = tmp_path / "steps.yaml"
    scenario_sweep.write_text(yaml.safe_dump({"base": str(SMALL_STEP), "grid": {"comm.sms": [12]}}))
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(scenario_sweep)])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and err.count("\n") == 1 and "not a run file" in err and "twin sweep" in err


def test_the_cli_writes_the_sweep_and_resumes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _sweep(tmp_path, {"phases.main.ramp.over_tokens": [0, 2.0e10]}, points=[{"failures": FAILURES}])
    out = tmp_path / "out"
    args = ["plan", "run", str(path), "-o", str(out), "-j", "1", "--format", "json"]
    with pytest.raises(SystemExit) as info:
        main(args)
    first = json.loads(capsys.readouterr().out)
    assert info.value.code in (0, None)
    assert json.loads((out / "sweep.json").read_text()) == first
    assert (first["steps"], first["simulated"]) == (3, 3)
    assert [p["label"] for p in first["points"]] == [
        "main.ramp.over_tokens=0",
        "main.ramp.over_tokens=20B",
        "failures={mtbf_gpu_hours: 50K, checkpoint_s: 60, restart_s: 600}",
    ]
    _, here, _ = _points(path)  # in this process, without the results file: the same figures
    assert [p["total"] for p in first["points"]] == [p["total"] for p in here]
    md = (out / "report.md").read_text()
    assert "## Points" in md and "![points](figures/points.png)" in md and (out / "steps.parquet").is_file()
    with pytest.raises(SystemExit):
        main(args)
    again = json.loads(capsys.readouterr().out)
    assert again["simulated"] == 0 and again["points"] == first["points"]  # every step kept in steps.parquet


def test_the_shipped_ramp_sweep_needs_the_steps_of_one_run() -> None:
    """scenarios/sweeps/run-ramp.yaml (docs/run.md): four runs of DeepSeek-V3's, planned without simulating."""
    from sim.experiments.run_plan import plan_steps
    from tests.conftest import REPO

    rs = load_run_sweep(REPO / "scenarios" / "sweeps" / "run-ramp.yaml")
    assert [p.label for p in rs.points] == [
        "pretrain.ramp.over_tokens=0",
        "pretrain.ramp.over_tokens=469B",
        "pretrain.ramp.over_tokens=2T",
        "pretrain.tokens=20T",
    ]
    run = REPO / "scenarios" / "runs" / "deepseek-v3.yaml"
    alone = plan_steps(load_run(run), run)
    assert set(rs.steps()) == set(alone.steps) and len(alone.steps) == 7
    assert rs.points[1].plan.slices == alone.slices  # the published ramp is the run file's
    assert [s.global_batch for s in rs.points[0].plan.slices if s.phase == 0] == [15360]  # a ramp over 0: none
