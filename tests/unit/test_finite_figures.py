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


def _small_step_with(tmp_path: Path, key: str, value: str) -> Path:
    from tests.conftest import SMALL_STEP

    path = tmp_path / "far.yaml"
    path.write_text(f"base: {SMALL_STEP}\nname: far\nset:\n  {key}: {value}\n")
    return path


def test_an_overflow_from_an_input_short_of_the_edge_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NIC of 1e-99 Gb/s (short of the edge, 1e-100) gives a step of 1.1e102 s: past the edge, so
    refused, and the line said "from the scenario's magnitudes". No input of the twin is real beyond
    1e+-20 in its unit (sim.run.FAR), so that input is named: the others of the small step are all
    within it (the line names one key)."""
    path = _small_step_with(tmp_path, "cluster.nic_Gbps", "1.0e-99")
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--format", "json"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert err.splitlines() == [
        f"error: {path}: the results overflow: step_time_s is 1.10649e+102, from cluster.nic_Gbps = 1e-99; "
        "use values nearer to real ones"
    ]


def test_a_layout_search_refuses_an_overflow_before_it_searches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`twin plan layouts` bounded and ran every layout (20 s for the small step), each refused alike,
    then refused the table and left its folder; the bound of the scenario's own layout is checked first."""
    path = _small_step_with(tmp_path, "cluster.nic_Gbps", "1.0e-99")
    with pytest.raises(SystemExit) as info:
        main(["plan", "layouts", str(path), "-o", str(tmp_path / "plx"), "-q"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert "the results overflow: step_time_s (its lower bound) is" in err and "cluster.nic_Gbps = 1e-99" in err
    assert not (tmp_path / "plx").exists()
