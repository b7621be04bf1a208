"""A run file's failure model (``failures:``, sim/experiments/run_plan.py ``failure_overhead``).

``mtbf_gpu_hours: 1e-300`` (or ``interval_s: 1e-300``) ran with exit 0 and printed 7.85e298 lost days and
$2e303 (the first-order form ``C / tau + (tau / 2 + R) / M``, its restart term ``R / M`` unbounded as the
cluster's MTBF ``M`` shrinks); ``0.001`` gave 78 lost days on an 80-second run. The expected time is
Daly's closed form for exponential failures, ``(M / tau) e^(R/M) (e^((tau + C)/M) - 1)`` per second of
training; where a second of training is expected to take more than ``sim.limits.MAX_TIME`` seconds the
run never completes, refused naming ``failures.mtbf_gpu_hours`` where even Young's interval is past it,
else ``failures.interval_s``: before anything runs, in one line, exit status 2, nothing written. (A
cluster failing every restart and checkpoint, ``M <= R + C``, was refused too at first; its time is
finite, several times the failure-free one, and is computed.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim.experiments.run_plan import FailureSpec, failure_overhead
from tests.conftest import SMALL_STEP
from tests.unit.test_bad_inputs import ran_cleanly, refused_in_one_line

GPUS = 512  # the small step's


def _run(folder: Path, name: str, failures: str) -> str:
    (folder / name).write_text(
        f"name: tinyrun\nbase: {SMALL_STEP}\nphases:\n  - {{name: p, steps: 10, global_batch: 1024}}\n"
        f"failures: {{{failures}}}\n"
    )
    return name


# ------------------------------------------------------------------------ the closed form, by hand
def test_the_expected_time_is_dalys_closed_form_by_hand() -> None:
    """M = 100 GPU-hours x 3600 / 360 GPUs = 1000 s, C = 50 s, R = 100 s."""
    f = FailureSpec(mtbf_gpu_hours=100.0, checkpoint_s=50.0, restart_s=100.0)
    # interval 500 s: (1000 / 500) e^0.1 (e^0.55 - 1) - 1 = 2 x 1.1051709181 x 0.7332530179 - 1
    tau, overhead = failure_overhead(f.model_copy(update={"interval_s": 500.0}), 360)
    assert tau == 500.0
    assert overhead == pytest.approx(2 * 1.1051709181 * 0.7332530179 - 1, rel=1e-9)
    assert overhead == pytest.approx(0.6207398219, rel=1e-9)  # (the first order said 0.45)
    # Young's interval sqrt(2 x 50 x 1000) = 316.2277660 s: (1000 / 316.2277660) e^0.1 (e^0.3662277660 - 1) - 1
    tau, overhead = failure_overhead(f, 360)
    assert tau == pytest.approx(316.2277660, rel=1e-9)
    assert overhead == pytest.approx(0.5457184494, rel=1e-9)
    # free checkpoints: taken continuously, only restarts cost: e^(R/M) - 1 = e^0.1 - 1
    tau, overhead = failure_overhead(f.model_copy(update={"checkpoint_s": 0.0}), 360)
    assert (tau, overhead) == (0.0, pytest.approx(0.1051709181, rel=1e-9))


def test_it_is_youngs_first_order_form_when_failures_are_rare() -> None:
    f = FailureSpec(mtbf_gpu_hours=1.0e7, checkpoint_s=60.0, restart_s=600.0)  # M = 7.0e7 s on 512 GPUs
    tau, overhead = failure_overhead(f, GPUS)
    m = 1.0e7 * 3600 / GPUS
    assert overhead == pytest.approx(60.0 / tau + (tau / 2 + 600.0) / m, rel=2e-3)  # tau / M = 1.3e-3


def test_a_cluster_that_fails_every_restart_and_checkpoint_is_computed_not_refused() -> None:
    """No cliff at ``M = R + C`` (it was refused there as "never completes"): Daly's time is finite and
    grows smoothly, about 3.9 times the failure-free time at Young's interval for R = 600 s, C = 60 s."""
    m = 660.0  # restart_s + checkpoint_s
    at_edge = FailureSpec(mtbf_gpu_hours=m * GPUS / 3600, checkpoint_s=60.0, restart_s=600.0)
    tau, overhead = failure_overhead(at_edge, GPUS)
    assert tau == pytest.approx(math.sqrt(2 * 60.0 * m))
    assert overhead == pytest.approx(m / tau * math.exp(600.0 / m) * math.expm1((tau + 60.0) / m) - 1, rel=1e-12)
    below = at_edge.model_copy(update={"mtbf_gpu_hours": 0.999 * m * GPUS / 3600})
    assert overhead < failure_overhead(below, GPUS)[1] < overhead * 1.01  # (continuous through the edge)


# ------------------------------------------------------------------------ twin plan run, one line
MTBF = "on 512 GPUs the cluster fails every {} s on average (mtbf_gpu_hours x 3600 / GPUs): with a restart of 600 s "
MTBF += "and a checkpoint of 60 s, even at Young's interval each second of training is expected to take longer than a "
MTBF += "float holds, more than the 1e+12 s any time may be (sim.limits.MAX_TIME): the run never completes; give a "
MTBF += "longer MTBF, or a shorter restart_s or checkpoint_s"
LONG = "a checkpoint every {} s of training, each 60 s, on a cluster that fails every 3.52e+05 s: each second of "
LONG += "training is expected to take {} with the checkpoints, restarts and lost work, more than the 1e+12 s any "
LONG += "time may be (sim.limits.MAX_TIME): the run never completes; give an interval near Young's sqrt(2 C M) = 6495 s"

CASES = [
    ("mtbf_gpu_hours: 1.0e-300, checkpoint_s: 60, restart_s: 600", "mtbf_gpu_hours", MTBF.format("7.03e-300")),
    ("mtbf_gpu_hours: 0.001, checkpoint_s: 60, restart_s: 600", "mtbf_gpu_hours", MTBF.format("0.00703")),
    (
        "mtbf_gpu_hours: 50000, interval_s: 1.0e-300, checkpoint_s: 60, restart_s: 600",
        "interval_s",
        LONG.format("1e-300", "6.01e+301 s"),
    ),
    (
        "mtbf_gpu_hours: 50000, interval_s: 1.0e12, checkpoint_s: 60, restart_s: 600",
        "interval_s",
        LONG.format("1e+12", "longer than a float holds"),
    ),
]


@pytest.mark.parametrize("failures,key,why", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["run", "run -o", "validate"])
def test_a_run_that_never_completes_is_refused_in_one_line(
    failures: str,
    key: str,
    why: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    name = _run(tmp_path, "a6.yaml", failures)
    args = {"run": ["plan", "run", name, "--format", "json"], "run -o": ["plan", "run", name, "-o", "out"]}
    refused_in_one_line(
        args.get(command, ["validate", name]), f"error: {name}: failures.{key}: {why}", tmp_path, capsys
    )


def test_a_run_sweep_names_its_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _run(tmp_path, "run.yaml", "mtbf_gpu_hours: 50000, checkpoint_s: 60, restart_s: 600")
    (tmp_path / "sw.yaml").write_text("base: run.yaml\ngrid: {failures.mtbf_gpu_hours: [50000, 1.0e-300]}\n")
    expected = f"error: sw.yaml: grid.failures.mtbf_gpu_hours: 1e-300: {MTBF.format('7.03e-300')}"
    refused_in_one_line(["plan", "run", "sw.yaml"], expected, tmp_path, capsys)


# ------------------------------------------------------------------------ a whole run past any time
def _trained_s(name: str, capsys: pytest.CaptureFixture[str]) -> float:
    """The run's seconds of training, as ``twin plan run --format json`` prints them."""
    data = json.loads(ran_cleanly(["plan", "run", name, "--format", "json"], capsys))
    return sum(s["days"] * 86400 for ph in data["phases"] for s in ph["slices"])


def test_a_run_whose_lost_time_passes_any_time_is_refused_after_its_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``interval_s: 1e-10`` with ``C = 60`` s: about ``C / tau = 6e11`` s lost per second of training, under
    MAX_TIME (1e12) per second, so the per-second check passes; 10 steps of the small step (tens of seconds)
    lose some 1e13 s in all, which is past it: refused naming the interval (at Young's interval the run
    loses seconds). It printed 1.5e9 lost days with exit 0 on DeepSeek-V3's 2048 GPUs."""
    monkeypatch.chdir(tmp_path)
    base = "mtbf_gpu_hours: 50000, checkpoint_s: 60, restart_s: 600"
    _run(tmp_path, "fine.yaml", base)
    trained = _trained_s("fine.yaml", capsys)
    name = _run(tmp_path, "tiny-interval.yaml", base + ", interval_s: 1.0e-10")
    f = FailureSpec(mtbf_gpu_hours=50000, checkpoint_s=60, restart_s=600, interval_s=1e-10)
    per_second = failure_overhead(f, GPUS)[1]
    young = failure_overhead(f.model_copy(update={"interval_s": None}), GPUS)[1]
    assert per_second < 1e12 < trained * per_second and trained * young < 1e12  # (the case's conditions)
    expected = (
        f"error: {name}: failures.interval_s: a checkpoint every 1e-10 s on 512 GPUs: the run's {trained:.3g} s of "
        f"training are expected to lose {trained * per_second:.3g} s to checkpoints, restarts and lost work, more "
        f"than the 1e+12 s any time may be (sim.limits.MAX_TIME); at Young's interval sqrt(2 C M) it would lose "
        f"{trained * young:.3g} s"
    )
    # (refused once its steps are simulated, so after their progress line: -q keeps the error the only line)
    refused_in_one_line(["plan", "run", name, "-q", "--format", "json"], expected, tmp_path, capsys)
    refused_in_one_line(["plan", "run", name, "-q", "-o", "out"], expected, tmp_path, capsys)  # (nothing written)
    # a sweep of the run names its own key, not the run file's
    (tmp_path / "sw.yaml").write_text("base: fine.yaml\ngrid: {failures.interval_s: [1000, 1.0e-10]}\n")
    swept = expected.replace(f"{name}: failures.interval_s:", "sw.yaml: grid.failures.interval_s: 1e-10:")
    refused_in_one_line(["plan", "run", "sw.yaml", "-q"], swept, tmp_path, capsys)


def test_a_run_past_any_time_even_at_youngs_interval_names_the_mtbf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``M = 3.8 x 3600 / 512 = 26.7`` s against ``R = 600`` s (``e^(R/M)`` = 5.6e9): 2.1e11 s a second of
    training at Young's interval, under MAX_TIME per second, past it over the run's tens of seconds."""
    monkeypatch.chdir(tmp_path)
    _run(tmp_path, "fine.yaml", "mtbf_gpu_hours: 50000, checkpoint_s: 60, restart_s: 600")
    trained = _trained_s("fine.yaml", capsys)
    name = _run(tmp_path, "fragile.yaml", "mtbf_gpu_hours: 3.8, checkpoint_s: 60, restart_s: 600")
    per_second = failure_overhead(FailureSpec(mtbf_gpu_hours=3.8, checkpoint_s=60, restart_s=600), GPUS)[1]
    assert per_second < 1e12 < trained * per_second  # (the case's conditions)
    lost = trained * per_second
    expected = (
        f"error: {name}: failures.mtbf_gpu_hours: on 512 GPUs the run's {trained:.3g} s of training are expected to "
        f"lose {lost:.3g} s to checkpoints, restarts and lost work (at Young's interval {lost:.3g} s), more than the "
        "1e+12 s any time may be (sim.limits.MAX_TIME): give a longer MTBF, or a shorter restart_s or checkpoint_s"
    )
    refused_in_one_line(["plan", "run", name, "-q", "--format", "json"], expected, tmp_path, capsys)


def test_a_failure_prone_run_costs_the_closed_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """M = 128 GPU-hours x 3600 / 512 GPUs = 900 s, C = 50 s, R = 100 s, interval 500 s: by hand
    (900 / 500) e^(100/900) (e^(550/900) - 1) - 1 = 1.8 x 1.1175190687 x 0.8424774590 - 1 = 0.6946723258."""
    monkeypatch.chdir(tmp_path)
    name = _run(tmp_path, "mild.yaml", "mtbf_gpu_hours: 128, interval_s: 500, checkpoint_s: 50, restart_s: 100")
    data = json.loads(ran_cleanly(["plan", "run", name, "--format", "json"], capsys))
    (s,) = data["phases"][0]["slices"]
    assert s["gpus"] == GPUS and s["failures"]["interval_s"] == 500.0
    hand = 1.8 * 1.1175190687 * 0.8424774590 - 1
    assert hand == pytest.approx(0.6946723258, rel=1e-9)
    assert s["failures"]["lost_days"] == pytest.approx(s["days"] * hand, rel=1e-9)
    assert data["total"]["lost_days"] == pytest.approx(data["total"]["days"] * hand, rel=1e-9)
    assert data["total"]["lost_gpu_hours"] == pytest.approx(data["total"]["lost_days"] * 24 * GPUS, rel=1e-9)
