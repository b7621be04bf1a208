"""A loaded profile's samples meet the roofline of its own peaks (:mod:`sim.hardware.roofline`): a time
more than ``ROOFLINE_SLACK`` (2) times under the least its work can take is no kernel, and is refused
naming the sample's key. A BF16 GEMM sample a million times too fast (a unit slip in a hand-made
profile) was taken, and ``twin run`` reported an MFU of 1.18; ``import-measurements`` already refused
such a time in a table, a profile read directly was not checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.hardware.profile import PROFILES_DIR, load_profile
from sim.hardware.roofline import ROOFLINE_SLACK, roofline_times

MEASURED = PROFILES_DIR / "h100-sxm-measured.json"


def _nearest(path: Path) -> dict[str, float]:
    """Per op and kind, the largest ratio of a sample's least time to its time (1: at the peak)."""
    profile = load_profile(path)
    out: dict[str, float] = {}
    for sample in profile.samples:
        for key, seconds, b in roofline_times(sample, profile.peaks, profile.device.sms):
            kind = f"{sample.op}:{sample.params.get('dtype', sample.params.get('kernel', ''))}:{key}"
            out[kind] = max(out.get(kind, 0.0), b.least_s / seconds)
    return out


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_profile_is_within_the_slack(path: Path) -> None:
    """Every shipped profile loads (the check is in the loader) and its nearest sample is under the
    slack; the GEMMs and attention, bounded by FLOPs at the dense peak, under 1 (a boost clock gives at
    most 8% more, docs/calibration.md)."""
    nearest = _nearest(path)
    assert all(v < ROOFLINE_SLACK for v in nearest.values())
    assert all(v < 1 for k, v in nearest.items() if k.startswith(("gemm", "attention")))


def test_the_nearest_measured_samples_are_the_documented_ones() -> None:
    """The H100's one-call BF16 GEMM on 8 SMs at 96% of its share of the peak; DeepSeek's H800 trace has
    an elementwise kernel at 1.35x the HBM bandwidth by its logical bytes (L2): why the slack is not 1."""
    assert _nearest(MEASURED)["gemm:bf16:time_s"] == pytest.approx(0.96, abs=0.01)
    assert _nearest(PROFILES_DIR / "h800-trace.json")["memory:elementwise:time_s"] == pytest.approx(1.35, abs=0.01)


def _with(tmp_path: Path, op: str, change: Any) -> tuple[Path, int, dict[str, Any]]:
    """The measured H100 profile with ``change(sample)`` applied to its first sample of ``op``."""
    data = json.loads(MEASURED.read_text())
    at = next(i for i, s in enumerate(data["samples"]) if s["op"] == op)
    change(data["samples"][at])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path, at, data["samples"][at]


def _refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "show", str(path)])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "") and got.err.count("\n") == 1
    return got.err


@pytest.mark.parametrize("op", ["gemm", "attention", "memory"])
def test_a_sample_a_million_times_too_fast_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str
) -> None:
    path, at, _ = _with(tmp_path, op, lambda s: s.update(time_s=s["time_s"] * 1e-6))
    err = _refused(path, capsys)
    assert err.startswith(f"error: {path}: samples[{at}].time_s: ") and "faster than the profile's" in err
    assert err.rstrip().endswith("check the unit")


def test_an_interference_kernel_alone_too_fast_names_alone_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, at, _ = _with(tmp_path, "interference", lambda s: s["params"].update(alone_s=s["params"]["alone_s"] * 1e-6))
    assert _refused(path, capsys).startswith(f"error: {path}: samples[{at}].params.alone_s: ")


@pytest.mark.parametrize(("ratio", "taken"), [(0.95 * ROOFLINE_SLACK, True), (1.05 * ROOFLINE_SLACK, False)])
def test_the_bound_is_the_slack(tmp_path: Path, capsys: pytest.CaptureFixture[str], ratio: float, taken: bool) -> None:
    """A GEMM sample at ``ratio`` times its least time's speed: taken under the slack, refused past it."""
    profile = load_profile(MEASURED)
    at = next(i for i, s in enumerate(profile.samples) if s.op == "gemm" and "m" in s.params)
    (_, _, b) = roofline_times(profile.samples[at], profile.peaks, profile.device.sms)[0]
    data = json.loads(MEASURED.read_text())
    data["samples"][at]["time_s"] = b.least_s / ratio
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    if taken:
        assert load_profile(path).samples[at].time_s == b.least_s / ratio
    else:
        assert f"samples[{at}].time_s: " in _refused(path, capsys)


def test_a_device_without_a_datasheet_is_not_held_to_its_measured_peaks(tmp_path: Path) -> None:
    """A CPU's ``calibrate run`` takes its peaks from its own best GEMMs on all cores (calibrate/run.py):
    a sample on fewer cores, or attention, passes them (7.5x on this host's CPU), and no datasheet says
    what is possible; such a profile loads as written."""

    def cpu(sample: dict[str, Any]) -> None:
        sample["time_s"] *= 1e-6

    path, at, _ = _with(tmp_path, "gemm", cpu)
    data = json.loads(path.read_text())
    data["device"]["name"] = "x86_64 CPU"
    path.write_text(json.dumps(data))
    assert load_profile(path).samples[at].time_s == data["samples"][at]["time_s"]
