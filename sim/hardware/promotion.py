"""What promoting FP8 partial sums to CUDA cores costs a GEMM, measured (``compute.fp8_accumulation``).

Hopper's FP8 tensor cores keep about 14 bits of their accumulator (DeepSeek-V3 report, section 3.3.2),
so FP8 GEMM kernels copy the partial sums to FP32 registers on the CUDA cores every 128 elements of K
and add them there ("promotion"). cuBLAS does this unless told to accumulate fast
(``CUBLASLT_MATMUL_DESC_FAST_ACCUM``; ``torch._scaled_mm``'s ``use_fast_accum`` defaults to off), so
the profile's tensor-wise FP8 samples are promoted GEMMs. A BF16 GEMM accumulates in FP32 inside the
tensor cores and promotes nothing; the FP8 tensor cores are ``P_fp8 / P_bf16`` (2x) as fast. So on a
shape measured both ways, the promotion costs

    R(shape) = t_fp8_tensorwise / (t_bf16 * P_bf16 / P_fp8),

in the compute-bound regime (M >= 2048 tokens, all SMs). The factor is the median of R over every such
shape of the profile (:func:`promotion_factor`; burst-timed samples only): 1.088 over 34 shapes for the
H800 profile (the shared H100 measurements: five DeepSeek-V3 projection families and the SM-sweep
shapes), per family 1.06 (moe_up) to 1.13 (q_b) (``PromotionFit.per_family``); the H200 and the lent
H100's profiles give 1.16 and 1.18 over 96 shapes each. A median, not a mean: single measurements
carry outliers (the measurements' README says so). R includes whatever else separates the two kernels
(cuBLAS's tile choices, the FP8 epilogue's scaling), so it bounds the promotion's own cost from above.

The ask "full-precision accumulation in the tensor cores" (``compute.fp8_accumulation: full``) then
runs a promoted GEMM ``R`` times faster, never faster than its roofline (peak FLOP/s or HBM bytes).
Which GEMMs it reaches is the what-if's (:mod:`sim.model.compute_whatifs`): software block scaling
applies each 128-element block's scales to the partial sums at the promotion, so its GEMMs keep
leaving the tensor cores; only tensor-wise or natively scaled GEMMs gain.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from sim.hardware.gemm_model import GemmPoint, Peaks

MIN_TOKENS = 2048  # compute-bound: the measured families reach their plateau from here (docs/calibration.md)


@dataclass(frozen=True)
class PromotionFit:
    """The median promotion factor and what it rests on."""

    factor: float
    shapes: int
    per_family: dict[str, float]


def promotion_factor(points: list[GemmPoint], peaks: Peaks) -> PromotionFit | None:
    """``R`` of the module docstring from the profile's samples; None when no shape was measured both
    as a tensor-wise FP8 and a BF16 GEMM on all SMs (a datasheet profile)."""
    times: dict[tuple[int, int, int, str], dict[str, float]] = defaultdict(dict)
    for p in points:
        if p.sms != peaks.all_sms or p.m < MIN_TOKENS or p.single:
            continue
        key = "fp8" if (p.dtype, p.scaling) == ("fp8", "tensorwise") else "bf16" if p.dtype == "bf16" else ""
        if key:
            times[(p.m, p.n, p.k, p.family)][key] = p.time_s
    ratio = peaks.bf16_flops / peaks.fp8_flops
    pairs = [(shape[3], t["fp8"] / (t["bf16"] * ratio)) for shape, t in times.items() if len(t) == 2]
    if not pairs:
        return None
    families: dict[str, list[float]] = defaultdict(list)
    for family, r in pairs:
        families[family].append(r)
    per_family = {f: float(np.median(rs)) for f, rs in sorted(families.items())}
    return PromotionFit(float(np.median([r for _, r in pairs])), len(pairs), per_family)


__all__ = ["MIN_TOKENS", "PromotionFit", "promotion_factor"]
