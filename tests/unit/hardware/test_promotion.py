"""The promotion factor of ``compute.fp8_accumulation: full`` (sim.hardware.promotion): the median of
tensor-wise FP8 over BF16 at the FP8 peak, on shapes measured both ways, compute-bound, all SMs."""

from __future__ import annotations

import csv
import statistics

import pytest

from calibrate.profiles import datasheet_profile
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gemm_model import GemmPoint, Peaks
from sim.hardware.profile import load_profile
from sim.hardware.promotion import MIN_TOKENS, promotion_factor
from tests.conftest import REPO, SHARED, require_shared

PEAKS = Peaks(fp8_flops=2e15, bf16_flops=1e15, hbm_Bps=3e12, all_sms=132)
GEMMS = SHARED / "measurements" / "h100-sxm-2026-11-23" / "gemm.csv"


def _pair(m: int, fp8: float, bf16: float, sms: int = 132, family: str = "f") -> list[GemmPoint]:
    return [
        GemmPoint(m, 4096, 7168, sms, "fp8", "tensorwise", family, fp8),
        GemmPoint(m, 4096, 7168, sms, "bf16", "none", family, bf16),
    ]


def test_the_factor_is_the_median_ratio_over_compute_bound_pairs_on_all_sms() -> None:
    # bf16 at half the FP8 peak: an FP8 kernel as good as BF16 takes half its time (ratio 1)
    points = _pair(4096, 1.1, 2.0) + _pair(8192, 1.3, 2.0) + _pair(16384, 1.2, 2.0)
    points += _pair(256, 5.0, 2.0)  # memory-bound: left out
    points += _pair(4096, 9.0, 2.0, sms=64)  # SM-limited: left out
    points += [GemmPoint(2048, 4096, 7168, 132, "fp8", "blockwise", "f", 9.0)]  # block-scaled: not a pair
    fit = promotion_factor(points, PEAKS)
    assert fit is not None and fit.shapes == 3
    assert fit.factor == pytest.approx(1.2)
    assert fit.per_family == {"f": pytest.approx(1.2)}


def test_a_datasheet_profile_has_none_and_the_key_is_refused() -> None:
    model = CostModel(datasheet_profile())
    assert promotion_factor(model.gemm_points, model.peaks) is None
    with pytest.raises(ScenarioError) as err:
        model.promotion()
    assert err.value.key_path == "compute.fp8_accumulation"


def test_the_h800_profile_factor_is_the_shared_measurements_median() -> None:
    """Cross-check on the raw CSV: the H800 profile's GEMMs are the shared H100 measurements."""
    require_shared(GEMMS)
    rows: dict[tuple[str, ...], dict[str, float]] = {}
    with GEMMS.open() as f:
        for r in csv.DictReader(f):
            if r["sms"] != "132" or int(r["M"]) < MIN_TOKENS or r["family"].endswith("_single"):
                continue
            kind = {("fp8", "tensorwise"): "fp8", ("bf16", "none"): "bf16"}.get((r["dtype"], r["scaling"]))
            if kind:
                rows.setdefault((r["family"], r["M"], r["N"], r["K"]), {})[kind] = float(r["seconds"])
    model = CostModel(load_profile(REPO / "calibrate" / "profiles" / "h800.json"))
    ratio = model.peaks.bf16_flops / model.peaks.fp8_flops
    expected = statistics.median(t["fp8"] / (t["bf16"] * ratio) for t in rows.values() if len(t) == 2)
    assert model.promotion().factor == pytest.approx(expected, rel=1e-9)
    assert 1.0 < model.promotion().factor  # promoted FP8 runs slower than BF16 at twice the rate


def test_full_accumulation_divides_by_the_factor_down_to_the_roofline() -> None:
    model = CostModel(load_profile(REPO / "calibrate" / "profiles" / "h800.json"))
    r = model.promotion().factor
    for m, n, k in [(8192, 4096, 7168), (4096, 576, 7168), (64, 4096, 7168)]:
        promoted = model.gemm_time(m, n, k, "fp8", scaling="tensorwise")
        full = model.gemm_time(m, n, k, "fp8", scaling="tensorwise", accumulation="full")
        assert full == pytest.approx(max(promoted / r, model.gemm_roofline(m, n, k, "fp8")))
        assert full <= promoted
        # BF16 accumulates in FP32 already: nothing to promote
        assert model.gemm_time(m, n, k, "bf16", accumulation="full") == model.gemm_time(m, n, k, "bf16")
