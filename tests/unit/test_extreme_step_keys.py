"""Extreme values of the training step's keys, and of the files it reads and the run files over it,
end cleanly (issue 23: "unbreakable").

A fuzz of every key of the default scenario with hostile values (0, -1, 1e308, 1e-300, NaN, inf, 1e18,
wrong types: 1,235 runs of ``twin run --format json``) found five that never ended and one that ended
without naming its key. Each is a case here, run as the user would run it, under an alarm that turns a
hang into a failure:

* ``model.n_layers: 1e18`` and ``model.mtp_depth: 1e18``: counts without an upper bound (a loop over
  the layers, an allocation); every count of a model is now bounded (:mod:`sim.limits`);
* ``workload.notify_wait_us: 1e18``, ``cluster.nic_Gbps: 1e-300``: the step's times reach 1e12 s and
  more, where the clock's spacing (one ulp, 1e-4 s) exceeds a flow's time; the flow network woke at
  ``now + dt == now`` for ever (:meth:`sim.network.flows.FlowNetwork._settle` now wakes at the next
  time the clock can hold; tests/unit/network/test_flows.py); times in microseconds are bounded by
  ``MAX_TIME``;
* ``cluster.nvlink_GBps: 1e308``: the run succeeded with a numpy warning, and the command hung
  replaying it: ``twin`` showed caught warnings inside ``catch_warnings(record=True)``, which records
  each one shown, so the list grew as it was walked. Rates are now bounded by ``MAX_RATE``, and
  warnings are shown after the recording ends, each once (:func:`test_a_warning_is_shown_once`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from sim.cli import main
from sim.cli.common import invoke
from tests.unit.test_key_fuzz import alarm as ringing

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
ALARM_S = 90  # a clean refusal takes well under a second, a run of the default step about two


@pytest.fixture
def alarm() -> Iterator[None]:
    """A hang fails the test (:func:`tests.unit.test_key_fuzz.alarm`)."""
    with ringing(ALARM_S):
        yield


def _scenario(tmp_path: Path, key: str, value: Any) -> Path:
    """The default scenario with ``key`` set to ``value`` (a derived scenario: its base and the change)."""
    path = tmp_path / "extreme.yaml"
    path.write_text(yaml.safe_dump({"base": str(DEFAULT), "set": {key: value}}))
    return path


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [
        ("model.n_layers", 10**18, "model.n_layers: Input should be less than or equal to 1024"),
        ("model.mtp_depth", 10**18, "model.mtp_depth: Input should be less than or equal to 1024"),
        ("model.dim", 10**18, "model.dim: Input should be less than or equal to 1048576"),
        ("model.n_routed_experts", 10**18, "model.n_routed_experts: Input should be less than or equal to 32768"),
        ("model.seq_len", 10**18, "model.seq_len: Input should be less than or equal to 16777216"),
        ("workload.notify_wait_us", 1e18, "workload.notify_wait_us: Input should be less than or equal to"),
        ("workload.launch_gap_us", 1e308, "workload.launch_gap_us: Input should be less than or equal to"),
        ("cluster.nvlink_GBps", 1e308, "cluster.nvlink_GBps: Input should be less than or equal to"),
        ("cluster.nic_Gbps", 1e308, "cluster.nic_Gbps: Input should be less than or equal to"),
        ("cluster.nic_Gbps", 1e-300, "the results overflow: step_time_s is 3.21643e+303, from cluster.nic"),
        ("cluster.nvlink_GBps", 1e-300, "from cluster.nvlink_GBps = 1e-300"),
    ],
)
def test_extreme_value_is_refused_in_one_line(
    key: str, value: Any, refused: str, tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario(tmp_path, key, value)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and refused in lines[0], err
    assert out == ""


@pytest.mark.parametrize(("key", "value"), [("workload.notify_wait_us", 1e12), ("cluster.nvlink_GBps", 1e15)])
def test_the_largest_accepted_value_runs(
    key: str, value: float, tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bounds are not where runs stop working: at the bound itself the step runs (a notify wait of
    1e12 us puts the step near 2e9 s, where the clock still resolves 1e-6 s)."""
    path = _scenario(tmp_path, key, value)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--format", "json", "-q"])
    assert info.value.code == 0, capsys.readouterr().err


def test_a_warning_is_shown_once(alarm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that succeeds with warnings ends, and shows each (message, place) once after it ran."""
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *_a, **_k: shown.append(str(message)))
    app = typer.Typer()

    @app.command()
    def noisy() -> None:
        for _ in range(3):
            warnings.warn("overflow encountered", RuntimeWarning, stacklevel=1)

    @app.command()
    def other() -> None:  # a second command, so that typer keeps "noisy" as a subcommand
        pass

    assert invoke(app, ["noisy"]) == 0
    assert shown == ["overflow encountered"]


PROFILE = REPO / "calibrate" / "profiles" / "h800.json"
TOPOLOGY = REPO / "topologies" / "deepseek-v3-mpft.yaml"


@pytest.mark.parametrize(
    ("which", "key", "value", "refused"),
    [  # a second fuzz, of the topology's and the profile's keys (612 runs), found these
        ("profile", "gemm_fit.fp8.params.k0", -1.0, "gemm_fit.fp8.params: k0: -1.0 is outside the fit's bounds"),
        ("profile", "gemm_fit.fp8.params.t0_us", 1e308, "t0_us: 1e+308 is outside the fit's bounds [0, 100]"),
        ("profile", "gemm_fit.bf16.params.gamma", True, "gemm_fit.bf16.params: gamma: True is not a number"),
        ("profile", "gemm_fit.fp8.efficiency.rowwise", 5.0, "rowwise: 5.0 is outside the fit's bounds [0.02, 1.2]"),
        ("profile", "device.sms", True, "device.sms: Input should be a valid integer (got True)"),
        # (refused when the profile is read: its samples run past a peak that low, not past the datasheet's)
        ("profile", "peaks.bf16_dense_TFLOPS", 1e-300, "peaks.bf16_dense_TFLOPS: 1e-300 TFLOPS: samples["),
        ("topology", "node.nvlink_GBps", 1e-300, "the results overflow"),
    ],
)
def test_extreme_value_in_a_file_the_scenario_reads_is_named_there(
    which: str,
    key: str,
    value: Any,
    refused: str,
    tmp_path: Path,
    alarm: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: a stored GEMM fit took any parameter (k0 = -1, a t0 of 1e308 us: a step of 1e200 s, exit
    0), ``device.sms: true`` read as 1 SM, and an overflow from these files blamed "the scenario's
    magnitudes". Now a fit keeps to the bounds the fitting uses (:mod:`sim.hardware.gemm_model`), and an
    error names the file the value is in and its key (for an overflow: the file, the key and the value)."""
    profile = json.loads(PROFILE.read_text())
    topology = yaml.safe_load(TOPOLOGY.read_text())
    node = profile if which == "profile" else topology
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    (tmp_path / "p.json").write_text(json.dumps(profile))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(topology))
    data = yaml.safe_load(DEFAULT.read_text())
    data["profile"], data["cluster"]["topology"] = "p.json", "t.yaml"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    lines = err.splitlines()
    named = tmp_path / ("p.json" if which == "profile" else "t.yaml")
    assert len(lines) == 1 and refused in lines[0], err
    if "overflow" in refused:  # the run's error is the scenario's; the value is named in its file
        assert lines[0].startswith(f"error: {path}: ") and f"{named}: {key} = {value:g}" in lines[0], err
    else:
        assert lines[0].startswith(f"error: {named}: "), err
    assert out == ""


def test_measured_sms_beyond_the_profile_gpu_names_its_key(
    tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A third fuzz, of the schedule comparison's keys (``scenarios/dualpipe-table.yaml``, 1,235 runs),
    found one error naming another key: op times measured at more SMs than the profile's GPU has were
    blamed on ``profile``."""
    data = yaml.safe_load((REPO / "scenarios" / "dualpipe-table.yaml").read_text())
    data["ops"]["measured_at_compute_sms"] = 10**18
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--format", "json", "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == (
        f"error: {path}: ops.measured_at_compute_sms: must be at most the profile GPU's 132 SMs, "
        "got 1000000000000000000\n"
    )


RUN = REPO / "scenarios" / "runs" / "deepseek-v3.yaml"


@pytest.mark.parametrize(
    ("where", "value", "refused"),
    [  # a fourth fuzz, of the run file's keys (377 runs of twin plan run), found these
        (("phases", 0, "tokens"), math.inf, "phases.0.tokens: Input should be a finite number"),
        (("phases", 0, "tokens"), 1e308, "phases.0.tokens: Input should be less than or equal to 1000000000000000000"),
        (("phases", 1, "set", "model.seq_len"), math.nan, "phases.1.set: model.seq_len: nan is not a finite number"),
        (("phases", 2, "set", "training.cp"), math.inf, "phases.2.set: training.cp: inf is not a finite number"),
    ],
)
def test_extreme_value_in_a_run_file_is_refused_in_one_line(
    where: tuple[Any, ...], value: float, refused: str, tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a phase of ``tokens: .inf`` (or 1e308) printed infinite GPU-hours, days and dollars with
    exit 0, and a NaN among a phase's overrides was a traceback (its key is the overrides as JSON)."""
    data = yaml.safe_load(RUN.read_text())
    data["base"] = str((RUN.parent / data["base"]).resolve())
    node = data
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert err == f"error: {path}: {refused}\n"


def test_a_run_file_figure_that_overflows_is_refused_naming_its_inputs(tmp_path: Path) -> None:
    """What ``twin plan run`` checks before it prints or writes (a second line of defence behind the
    bounds): a non-finite figure is refused, naming it and the run file's values at the edge."""
    from sim.errors import ScenarioError
    from sim.run import check_figures_finite

    path = tmp_path / "run.yaml"
    with pytest.raises(ScenarioError) as info:
        check_figures_finite(str(path), {"phases": [{"tokens": 1e200}]}, {"phases": [{"gpu_hours": math.inf}]})
    assert str(info.value) == (
        f"{path}: the results overflow: phases[0].gpu_hours is inf, from phases[0].tokens = 1e+200; "
        "use values nearer to real ones"
    )
    check_figures_finite(str(path), {"phases": [{"tokens": 1e13}]}, {"phases": [{"gpu_hours": 2.7e6}]})  # passes


def test_serving_times_beyond_a_trace_are_refused(
    tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """With an IB of 1e-300 Gb/s a prefill forward takes ~1e300 s: finite, but numpy's rounding of its
    microseconds to 3 decimals (x 1e3 inside ``np.round``) overflowed, and ``twin serve -o`` wrote
    ``"dur": Infinity`` into trace.json (not JSON) with exit 0. The finite check now allows for that
    factor (``sim.run.TRACE_US``), and a figure past ``sim.run.EDGE`` (1e100: only inputs at the edge take
    one there) is refused before it: one line naming the figure and the input, and nothing written."""
    path = tmp_path / "serve.yaml"
    base = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "set": {"serve.duration_s": 2.0, "cluster.nic_Gbps": 1e-300}}))
    with pytest.raises(SystemExit) as info:
        main(["serve", str(path), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == (
        f"error: {path}: the results overflow: capacity.prefill.prefill_forward_s is 1.13962e+302, "
        "from cluster.nic_Gbps = 1e-300; use values nearer to real ones\n"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
