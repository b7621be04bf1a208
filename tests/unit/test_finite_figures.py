"""Finite inputs whose products overflow are refused before anything is written or plotted, with one
line naming the figure and the inputs at the edge of floating point (sim.run.check_finite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.run import check_finite


def _write(tmp: Path, ops: str) -> Path:
    path = tmp / "s.yaml"
    path.write_text(f"name: s\npipeline: {{pp: 4, microbatches: 8}}\nops: {ops}\n")
    return path


@pytest.mark.parametrize("command", ["run", "report"])
def test_overflowing_op_times_are_refused_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = _write(tmp_path, "{forward_ms: 1.7e308, backward_ms: 2, weight_ms: 1}")
    with pytest.raises(SystemExit) as info:
        main([command, str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "results overflow" in err and "ops.forward_ms[0] = 1.7e+308" in err and str(path) in err
    assert not (tmp_path / "out").exists()


def test_a_non_finite_figure_names_itself(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, "{forward_ms: 1, backward_ms: 2, weight_ms: 1}"))
    check_finite(sc, {"step_time": 1.0, "bubble": {"per_device": [0.5, 0.25]}}, 1e6)
    with pytest.raises(ScenarioError, match=r"bubble\.per_device\[1\] is nan, from the scenario's magnitudes"):
        check_finite(sc, {"step_time": 1.0, "bubble": {"per_device": [0.5, float("nan")]}})


def test_a_figure_past_the_edge_is_refused_though_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Op times of 1e250 ms give a step of about 1e248 s: finite, and finite in a trace's microseconds
    (1e254), but only an input at the edge of floating point (past sim.run.EDGE, 1e100) takes a figure
    there; `twin run` refused nothing, where `twin report` and `twin plan layouts` refused the same
    figure. Times of 1e90 ms (a step near 1e88 s, short of the edge) still run."""
    path = _write(tmp_path, "{forward_ms: 1e250, backward_ms: 2, weight_ms: 1}")
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "results overflow: schedules[0].step_time is 1.1e+248" in err and "ops.forward_ms[0] = 1e+250" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as info:
        main(["run", str(_write(tmp_path, "{forward_ms: 1e90, backward_ms: 2, weight_ms: 1}")), "--format", "json"])
    assert info.value.code == 0
