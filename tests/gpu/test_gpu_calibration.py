"""GPU calibration checks (marked ``gpu``; skipped where torch sees no CUDA device)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_quick_gpu_profile_has_fp8_and_sm_sweep() -> None:
    from calibrate.run import run_calibration

    profile = run_calibration("cuda", "quick", world=1, comm=False)
    fp8 = [s for s in profile.samples if s.op == "gemm" and s.params.get("dtype") == "fp8"]
    assert fp8, "no FP8 GEMM path ran"
    assert any("sms" in s.params for s in profile.samples if s.op == "gemm")


def test_gemm_predictor_error_within_five_percent_for_large_m() -> None:
    """The issue's GPU target: leave-one-shape-out median error <= 5% for M >= 512."""
    from calibrate.run import run_calibration
    from sim.hardware.costmodel import CostModel

    profile = run_calibration("cuda", "quick", world=1, comm=False)
    large = profile.model_copy(
        update={"samples": [s for s in profile.samples if s.op == "gemm" and int(s.params.get("m", 0)) >= 512]}
    )
    error = CostModel(large).loso_error()
    assert error is not None and error <= 0.05
