"""``twin plan run`` (issue 21): a whole run integrated over its phases and batch ramp.

What must hold, from the definition (sim/experiments/run_plan.py): each slice's steps x batch x
sequence are its tokens; its GPU-hours are steps x step time x GPUs / 3600 (the step's own GPU-hours
per trillion tokens agree); days are steps x step time / 86400; every distinct step is simulated once;
a ramp's step runs at its own batch, not scaled from the steady state (half the batch has the same
bubble, so its step takes more than half as long); bad input is one line with exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.experiments.run_plan import load_run, plan_run, totals
from tests.conftest import SMALL_STEP


def _run_file(folder: Path, **more: object) -> Path:
    body = {
        "name": "tiny",
        "base": str(SMALL_STEP),
        "phases": [
            {
                "name": "main",
                "tokens": 1.0e11,
                "global_batch": 2048,
                "ramp": {"batches": [1024, 2048], "over_tokens": 2.0e10},
                "published_gpu_hours": 1000.0,
            },
            {"name": "long", "steps": 10, "global_batch": 1024, "set": {"model.seq_len": 2048}},
        ],
        "groups": [{"name": "all", "phases": ["main", "long"], "published_gpu_hours": 2000.0}],
        **more,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_the_run_integrates_its_steps(tmp_path: Path) -> None:
    path = _run_file(tmp_path)
    simulated: list[int] = []
    results, groups = plan_run(load_run(path), path, simulated.append)
    assert simulated == [1, 2, 3]  # (1024, 4096), (2048, 4096) and (1024, 2048): each once
    main_phase, long_phase = results
    assert [s.global_batch for s in main_phase.slices] == [1024, 2048, 2048]
    assert sum(s.tokens for s in main_phase.slices) == pytest.approx(1.0e11)
    for r in results:
        for s in r.slices:
            assert s.steps * s.global_batch * s.seq_len == pytest.approx(s.tokens, rel=1e-12)
            gpus = int(s.step["gpus"])
            hours = s.steps * float(s.step["step_time_s"]) * gpus / 3600
            assert float(s.step["gpu_hours_per_T"]) * s.tokens / 1e12 == pytest.approx(hours, rel=1e-9)
        assert r.days == pytest.approx(sum(s.seconds for s in r.slices) / 86400, rel=1e-12)
    assert long_phase.steps == pytest.approx(10) and long_phase.slices[0].seq_len == 2048
    half, full = main_phase.slices[0].step, main_phase.slices[1].step
    assert float(half["step_time_s"]) > float(full["step_time_s"]) / 2  # the same bubble, half the work
    assert groups[0]["gpu_hours"] == pytest.approx(main_phase.gpu_hours + long_phase.gpu_hours)
    t = totals(results)
    assert t["gpu_hours"] == pytest.approx(sum(r.gpu_hours for r in results))


def test_the_cli_prints_the_phases_and_the_total(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run_file(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "--format", "json", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    d = json.loads(out)
    assert [p["name"] for p in d["phases"]] == ["main", "long"]
    assert set(d["phases"][0]) >= {"name", "steps", "tokens", "gpu_hours", "days", "usd", "mfu"}
    assert set(d["total"]) >= {"gpu_hours", "days", "usd"}
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == d


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"phases": [{"name": "x", "global_batch": 2048}]}, "phases.0"),  # neither tokens nor steps
        ({"phases": [{"name": "x", "steps": 1, "batch": 5}]}, "phases.0.batch"),
        ({"groups": [{"name": "g", "phases": ["nope"], "published_gpu_hours": 1.0}]}, "groups"),
    ],
)
def test_bad_run_files_are_one_line(tmp_path: Path, change: dict, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run_file(tmp_path)
    body = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError) as info:
        load_run(path)
    assert info.value.key_path.startswith(key.split(".")[0]) and str(path) in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "run", str(path)])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2 and err.count("\n") == 1


def test_failures_cost_youngs_overhead_apart(tmp_path: Path) -> None:
    """Young/Daly to first order: a job of G GPUs fails every M = MTBF x 3600 / G seconds; checkpoints
    every tau = sqrt(2 C M) cost C / tau, failures (tau / 2 + R) / M of the time."""
    from sim.experiments.run_plan import FailureSpec, failure_overhead

    f = FailureSpec(mtbf_gpu_hours=50000.0, checkpoint_s=60.0, restart_s=600.0)
    tau, overhead = failure_overhead(f, 512)
    m = 50000.0 * 3600 / 512
    assert tau == pytest.approx((2 * 60.0 * m) ** 0.5)
    assert overhead == pytest.approx(60.0 / tau + (tau / 2 + 600.0) / m)
    # Young's interval is the best: any other costs more
    for other in (tau / 2, tau * 2):
        assert failure_overhead(f.model_copy(update={"interval_s": other}), 512)[1] > overhead
    assert failure_overhead(f.model_copy(update={"mtbf_gpu_hours": 1e5}), 512)[1] < overhead
    path = _run_file(tmp_path, failures={"mtbf_gpu_hours": 50000.0, "checkpoint_s": 60.0, "restart_s": 600.0})
    results, _ = plan_run(load_run(path), path)
    for r in results:
        days, hours = r.lost()
        assert days == pytest.approx(r.days * overhead, rel=1e-9)  # every step of the tiny run on 512 GPUs
        assert hours == pytest.approx(days * 24 * 512, rel=1e-9)
        assert r.to_dict()["failures"] == {"lost_days": days, "lost_gpu_hours": hours}
    assert totals(results)["lost_days"] == pytest.approx(sum(r.lost()[0] for r in results))
