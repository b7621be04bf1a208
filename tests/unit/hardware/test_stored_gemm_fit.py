"""A profile's stored GEMM fit (``gemm_fit``) stands for fitting again: every shipped profile carries
the fit of its own samples (fitting them again gives the same floats and the same digest), a run uses
it only while the digest matches its inputs, and any change of a sample or a peak makes the run fit
afresh instead of using a stale fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.hardware.costmodel import CostModel, fitted
from sim.hardware.profile import PROFILES_DIR, Sample, load_profile

SHIPPED = sorted(PROFILES_DIR.glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_carries_its_current_fit(path: Path) -> None:
    profile = load_profile(path)
    assert fitted(profile).gemm_fit == profile.gemm_fit  # refitting from its samples: the same floats
    model = CostModel(profile).gemm_model
    assert all(fit.stored for fit in model.fits.values())
    assert set(profile.gemm_fit) == set(model.fits)


def test_the_stored_fit_predicts_what_a_fresh_fit_predicts() -> None:
    profile = load_profile(PROFILES_DIR / "h800.json")
    stored = CostModel(profile)
    fresh = CostModel(profile.model_copy(update={"gemm_fit": {}}))
    assert all(f.stored for f in stored.gemm_model.fits.values())
    assert not any(f.stored for f in fresh.gemm_model.fits.values())
    for m, n, k, sms in [(4096, 7168, 2048, 132), (128, 4096, 7168, 112), (8192, 1536, 7168, 66)]:
        for dtype, scaling in [("fp8", "blockwise"), ("fp8", "tensorwise"), ("bf16", "none")]:
            args = (m, n, k, dtype, sms, scaling)
            assert stored.gemm_time(*args) == fresh.gemm_time(*args)


def test_a_changed_sample_or_peak_is_fitted_again() -> None:
    profile = load_profile(PROFILES_DIR / "h800.json")
    gemm = next(i for i, s in enumerate(profile.samples) if s.op == "gemm" and s.params.get("dtype") == "fp8")
    slower = Sample(op="gemm", params=profile.samples[gemm].params, time_s=profile.samples[gemm].time_s * 2)
    samples = [*profile.samples[:gemm], slower, *profile.samples[gemm + 1 :]]
    edited = CostModel(profile.model_copy(update={"samples": samples})).gemm_model
    assert not edited.fits["fp8"].stored and edited.fits["bf16"].stored  # only the changed dtype refits
    peaks = profile.peaks.model_copy(update={"fp8_dense_TFLOPS": profile.peaks.fp8_dense_TFLOPS * 1.1})
    faster = CostModel(profile.model_copy(update={"peaks": peaks})).gemm_model
    assert not faster.fits["fp8"].stored and not faster.fits["bf16"].stored  # the peaks are in every digest
