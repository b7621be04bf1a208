"""Memory-bound kernel times (:meth:`CostModel.memory_time`, :class:`MemoryCurve`): never falling as
bytes rise, never under the profile's launch floor, exact at the measured sizes, and sizes under a
byte refused (docs/calibration.md, "Memory-bound kernels")."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware.costmodel import SMALL_KERNEL_S, CostModel, MemoryCurve
from sim.hardware.gpu import DEEPSEEK_COMPUTE_SMS
from sim.hardware.profile import PROFILES_DIR, load_profile

SHIPPED = sorted(PROFILES_DIR.glob("*.json"))


def _model(name: str) -> CostModel:
    return CostModel(load_profile(PROFILES_DIR / name))


def _kernels(model: CostModel) -> list[str | None]:
    return [None, *sorted({str(s.params.get("kernel")) for s in model.profile.samples if s.op == "memory"})]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_memory_time_never_falls_as_bytes_rise(path: Path) -> None:
    """Every kernel class of every shipped profile, on all SMs, DeepSeek's 112 and 16: over 1 B to
    100 GB, densely, and either side of every measured size, the time never falls and never drops
    under the floor."""
    model = CostModel(load_profile(path))
    measured = {float(s.params["bytes"]) for s in model.profile.samples if s.op == "memory"}
    near = {x for b in measured for x in (np.nextafter(b, 0), b, np.nextafter(b, np.inf), 0.999 * b, 1.001 * b)}
    sizes = np.unique(np.r_[np.geomspace(1, 1e11, 700), [b for b in near if b >= 1]])
    for kernel in _kernels(model):
        for sms in (model.all_sms, DEEPSEEK_COMPUTE_SMS, 16):
            times = np.array([model.memory_time(float(b), kernel, sms) for b in sizes])
            rises = np.diff(times)
            assert (rises >= 0).all(), (kernel, sms, sizes[1:][rises < 0][:3])
            assert (times >= model.memory_floor_s).all()
            assert times[-1] > 10 * times[0]  # and it does rise: the bytes cost time


def test_the_reported_sizes_no_longer_fall() -> None:
    """The issue's sizes on the default profile's copies: 3 MB and 4 MiB took less than the measured
    2 MiB (10.6 and 9.3 against 22.7 us), 1 B 11 ps. Now the 2 MiB and 32 MiB copies are their samples,
    the sizes between lie between them, and 1 B takes the profile's launch floor."""
    model = _model("h800.json")
    sizes = [1, 1e6, 2097152, 3e6, 4194304, 16777216, 33554432]
    times = [model.memory_time(b) for b in sizes]
    assert times == sorted(times)
    assert times[2] == pytest.approx(22.6559993e-6, rel=1e-12)  # hbm_copy.csv: 1 MiB copied, read + written
    assert times[6] == pytest.approx(22.8480007e-6, rel=1e-12)
    assert all(times[2] <= t <= times[6] for t in times[3:6])
    assert times[0] == pytest.approx(model.memory_floor_s, rel=1e-4)


def test_the_floor_is_the_shortest_measured_memory_kernel() -> None:
    """H800: the trace's ``split`` (two tiny kernels, 1.98 us), shorter than its median ``small``
    kernel; the H100's shortest sample, its 1 MiB copy (22.7 us, timed one call per event pair: the
    timer's overhead inside), is longer than a tiny kernel, so its floor is ``SMALL_KERNEL_S`` (an
    assumption), as a datasheet profile's. A tiny kernel takes the floor on any SM count (the launch
    does not slow on fewer SMs; the bytes do)."""
    floors = {
        "h800.json": 1.983050847457627e-06,
        "h800-trace.json": 1.983050847457627e-06,
        "h100-sxm-measured.json": SMALL_KERNEL_S,
        "h800-datasheet.json": SMALL_KERNEL_S,
    }
    for name, floor in floors.items():
        model = _model(name)
        shortest = min((s.time_s for s in model.profile.samples if s.op == "memory"), default=SMALL_KERNEL_S)
        assert model.memory_floor_s == min(shortest, model.small_kernel_time()) == pytest.approx(floor)
        for sms in (model.all_sms, 16, 1):
            assert model.memory_time(1, None, sms) == pytest.approx(floor, abs=0.01e-6)
        big = model.memory_time(1e9)
        assert model.memory_time(1e9, None, 16) > 1.5 * big  # 16 SMs move bytes slower


def test_exact_at_measured_sizes_and_pooled_classes_keep_their_total() -> None:
    """At a size whose mean is in order, the mean of its samples (the trace's ``expert-map``, 204 us
    for 0.5 MB over two kernels, came out at 157 us: a fraction of HBM clipped at 0.1%); where a class's
    means fall as bytes rise, the pooled curve keeps the class's total time over its samples (of the
    classes timed on one SM count: the trace's, at 112)."""
    model = _model("h800.json")
    memory = [s for s in model.profile.samples if s.op == "memory" and s.params.get("kernel") != "small"]
    trace = [s for s in memory if s.params.get("source") == "trace"]
    assert {int(s.params["sms"]) for s in trace} == {DEEPSEEK_COMPUTE_SMS}
    for kernel in sorted({str(s.params["kernel"]) for s in trace}):
        mine = [s for s in memory if s.params["kernel"] == kernel]
        predicted = math.fsum(
            model.memory_time(float(s.params["bytes"]), kernel, int(s.params.get("sms", model.all_sms))) for s in mine
        )
        assert predicted == pytest.approx(math.fsum(s.time_s for s in mine), rel=1e-9), kernel
    (expert_map,) = [s for s in memory if s.params["kernel"] == "expert-map"]
    assert model.memory_time(float(expert_map.params["bytes"]), "expert-map", 112) == pytest.approx(expert_map.time_s)
    norms = [s for s in memory if s.params["kernel"] == "norm"]  # in order: exact at each size
    for b in {float(s.params["bytes"]) for s in norms}:
        mean = statistics.fmean(s.time_s for s in norms if float(s.params["bytes"]) == b)
        assert model.memory_time(b, "norm", 112) == pytest.approx(mean, rel=1e-9)


def test_the_curve_pools_sizes_whose_means_fall() -> None:
    """Pool-adjacent-violators: 2 MB at 30 us and 3 MB at 20 us (one sample each) pool to 25 us; the
    weights are the samples, so the pooled time keeps the total; beyond the largest size, its rate."""
    us = 1e-6
    curve = MemoryCurve.through([(1e6, 10 * us), (2e6, 30 * us), (3e6, 20 * us), (4e6, 40 * us)], 1 * us)
    assert curve.times == pytest.approx((10 * us, 25 * us, 25 * us, 40 * us))
    three = MemoryCurve.through([(1e6, 10 * us), (2e6, 30 * us), (2e6, 32 * us), (3e6, 19 * us)], 1 * us)
    assert three.times[1] == three.times[2] == pytest.approx((30 + 32 + 19) / 3 * us)
    assert curve.at(0.5e6) == pytest.approx(5.5 * us)  # halfway from the floor to the first size
    assert curve.at(8e6) == pytest.approx(80 * us)
    assert curve.at(1.5e6) == pytest.approx(17.5 * us)


def test_sizes_under_a_byte_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """As twin collective refuses them: a kernel moves at least one byte (1e-300 B came out at 1e-311 s)."""
    model = _model("h800.json")
    for size in (0.5, 1e-300, 0.0, -1.0, math.nan):
        with pytest.raises(ScenarioError, match="at least 1 byte"):
            model.memory_time(size)
    profile = str(PROFILES_DIR / "h800.json")
    for bad in ("0.5", "1e-300", "0"):
        with pytest.raises(SystemExit) as info:
            main(["calibrate", "predict", "--profile", profile, "--op", "memory", "--bytes", bad])
        assert info.value.code == 2
        assert f"--bytes: must be a finite number in [1, 1e+18], got '{bad}'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", profile, "--op", "memory"])
    assert info.value.code == 2 and "--bytes: a memory op needs --bytes (at least 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", profile, "--op", "memory", "--bytes", "1", "--format", "json"])
    assert info.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["time_s"] == pytest.approx(model.memory_floor_s, rel=1e-4)


def _left_out_errors(model: CostModel) -> dict[str, list[float]]:
    """Each size of a class with 3 or more sizes removed with all its samples and predicted from the
    rest, at the class's usual SM count: relative errors against the size's mean time."""
    memory = [s for s in model.profile.samples if s.op == "memory"]
    errors: dict[str, list[float]] = {}
    for kernel in sorted({str(s.params.get("kernel")) for s in memory} - {"small"}):
        mine = [s for s in memory if s.params.get("kernel") == kernel]
        sms = statistics.mode(int(s.params.get("sms", model.all_sms)) for s in mine)
        sizes = sorted({float(s.params["bytes"]) for s in mine})
        if len(sizes) < 3:
            continue
        for b in sizes:
            out = [s for s in mine if float(s.params["bytes"]) == b]
            times = [s.time_s for s in out if int(s.params.get("sms", model.all_sms)) == sms]
            if not times:
                continue
            rest = CostModel(
                model.profile.model_copy(update={"samples": [s for s in model.profile.samples if s not in out]})
            )
            errors.setdefault(kernel, []).append(abs(rest.memory_time(b, kernel, sms) / statistics.fmean(times) - 1))
    return errors


def test_left_out_errors_are_the_documented_ones() -> None:
    """docs/calibration.md's figures: the median error predicting each measured size left out."""
    documented = {
        "h800.json": 0.113,
        "h100-sxm-measured.json": 0.053,
        "h200-measured.json": 0.024,
        "h100-sxm-device.json": 0.011,
    }
    for name, median in documented.items():
        errors = _left_out_errors(_model(name))
        pooled = [e for es in errors.values() for e in es]
        per_class = {k: round(statistics.median(v), 3) for k, v in errors.items()}
        print(f"{name}: median {statistics.median(pooled):.3f} over {len(pooled)} sizes; {per_class}")
        assert statistics.median(pooled) == pytest.approx(median, abs=0.0015)
