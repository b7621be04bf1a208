"""The profile measured on a lent H200 by ``twin calibrate run --device cuda`` (full preset),
committed with its provenance: what it says, checked without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile

PROFILE = Path(__file__).resolve().parents[3] / "calibrate" / "profiles" / "h200-measured.json"


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel(load_profile(PROFILE, "NVIDIA H200"))


def test_provenance_and_what_ran(model: CostModel) -> None:
    p = model.profile
    assert p.source == "measured" and p.device.sms == 132 and p.device.torch and p.device.driver
    scalings = {s.params.get("scaling") for s in p.samples if s.op == "gemm" and s.params.get("dtype") == "fp8"}
    assert scalings == {"blockwise", "rowwise", "tensorwise"}
    assert any("disjoint (checked with %smid)" in line for line in p.ran)
    assert any("SMs shared" in line or "through torch" in line for line in p.ran)  # torch's contexts overlap


def test_errors_of_the_predictor_on_the_h200(model: CostModel) -> None:
    lofo = model.lofo_error()
    print("H200 leave-one-family-out:", {k: round(v, 4) for k, v in lofo.items()})
    assert lofo["gemm"] <= 0.10
    loso = model.loso_error(min_m=512)
    assert loso is not None and loso <= 0.05  # the old GPU target, leave one shape out, M >= 512


def test_h200_measurements_say(model: CostModel) -> None:
    """HBM: a 1 GiB copy moves 4.2 TB/s (read + written) of the datasheet's 4.8; 20 SMs reach a third
    of it. Interference on disjoint SMs is small for GEMMs, ~15-20% for the copy."""
    assert 4.0e12 < model.hbm_rate() < 4.8e12
    assert 0.30 < model.memory_sm_fraction(20) < 0.40
    assert model.interference_mode == "green-contexts"
    assert model.interference.phi["fp8"] < 0.1 and 0.1 < model.interference.psi["fp8"] < 0.3
    # GEMM throughput against SMs is measured: 64 of 132 SMs keep about 58% (not 48% as linear)
    assert 0.5 < model.sm_throughput(64) < 0.65
