"""The calibrated cost model: how long a GEMM or a memory-bound kernel takes, from a profile.

GEMM (M x K times K x N, ``dtype`` inputs, BF16 output) on ``sms`` SMs:

* roofline: ``max(2MNK / (peak x sms / all_sms), bytes / HBM)`` with bytes = (MK + KN) x input
  bytes + MN x 2; the peak scales linearly with the SMs given (analytical default until
  green-context samples exist);
* efficiency = roofline / measured time of each sample; a prediction interpolates it in log space
  over (M, N, K, SMs) by a local linear fit to the ``NEIGHBOURS`` = 8 nearest samples (tricube
  weights), clipped to (0, 1]; with fewer than 5 samples, by inverse-distance weighting. Measured
  points are reproduced exactly; shapes beyond them follow the local trend of the nearest ones
  ("roofline with efficiency"). On a synthetic smooth efficiency and a typical sweep grid the
  local fit's held-out median error is ~1.5% (inverse-distance weighting alone: ~15%);
* without samples for the dtype, the profile's assumed ``efficiency``.

Attention (``scaled_dot_product_attention`` at MLA head dims): roofline FLOPs
2 x heads x seq^2 x (qk + v) per forward, halved when causal, x 3.5 for forward+backward (backward
~2.5x forward); efficiency from attention samples of the same causal/phase class, interpolated in
log (heads, seq) the same way. Memory-bound kernels: achieved fraction of HBM bandwidth interpolated
in log(bytes) over the memory samples. Communication (``alltoall``, ``p2p``): an alpha-beta line
``t = alpha + bytes / beta`` fitted by least squares to the profile's samples of that op.

``loso_error`` predicts each sample from all the others (leave one shape out) and reports the median
relative error; calibration stores it in the profile and ``twin calibrate show`` prints it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.profile import Profile, Sample

NEIGHBOURS = 8
INPUT_BYTES = {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}
OUTPUT_BYTES = 2


@dataclass(frozen=True)
class _Point:
    coords: np.ndarray  # log m, log n, log k, log sms
    efficiency: float


class CostModel:
    """Predicts kernel times from a :class:`Profile` (no torch)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.all_sms = profile.device.sms
        self._gemm: dict[str, list[tuple[Sample, _Point]]] = {}
        for s in profile.samples:
            if s.op == "gemm" and all(x in s.params for x in ("m", "n", "k")):  # grouped GEMMs are kept as data
                dtype = str(s.params.get("dtype", "bf16"))
                m, n, k = (int(s.params[x]) for x in ("m", "n", "k"))
                sms = int(s.params.get("sms", self.all_sms))
                eff = self.gemm_roofline(m, n, k, dtype, sms) / s.time_s
                self._gemm.setdefault(dtype, []).append((s, _Point(self._coords(m, n, k, sms), eff)))

    @staticmethod
    def _coords(m: int, n: int, k: int, sms: int) -> np.ndarray:
        return np.log(np.array([m, n, k, sms], dtype=np.float64))

    def _peak_flops(self, dtype: str) -> float:
        peaks = self.profile.peaks
        tflops = peaks.fp8_dense_TFLOPS if dtype == "fp8" else peaks.bf16_dense_TFLOPS
        if dtype == "fp32":
            tflops = peaks.bf16_dense_TFLOPS / 2  # TF32 tensor cores run at half the BF16 rate
        return tflops * 1e12

    def gemm_roofline(self, m: int, n: int, k: int, dtype: str = "fp8", sms: int | None = None) -> float:
        """Time at 100% of the (SM-scaled) peak, seconds."""
        if dtype not in INPUT_BYTES:
            raise ScenarioError("--dtype", f"unknown dtype {dtype!r}; choose from {', '.join(INPUT_BYTES)}")
        sms = self.all_sms if sms is None else sms
        if not 0 < sms <= self.all_sms:
            raise ScenarioError("--sms", f"must be in 1..{self.all_sms}, got {sms}")
        flops = 2.0 * m * n * k
        nbytes = (m * k + k * n) * INPUT_BYTES[dtype] + m * n * OUTPUT_BYTES
        return max(
            flops / (self._peak_flops(dtype) * sms / self.all_sms), nbytes / (self.profile.peaks.hbm_TBps * 1e12)
        )

    def _efficiency(self, points: list[_Point], coords: np.ndarray) -> float:
        """Efficiency at ``coords`` from the samples' efficiencies. Dimensions in which the samples do
        not vary (e.g. SMs when no green-context samples exist) carry no information: they are left
        out, so the efficiency is constant along them and the roofline's scaling applies."""
        if not points:
            return self.profile.efficiency
        xs = np.array([p.coords for p in points])
        ys = np.array([p.efficiency for p in points])
        varying = np.ptp(xs, axis=0) > 1e-12
        xs, coords = xs[:, varying], coords[varying]
        dist = np.sqrt(np.sum((xs - coords) ** 2, axis=1))
        exact = dist < 1e-9
        if exact.any():
            return float(ys[exact].mean())
        if len(points) < 5:
            weights = 1.0 / dist**2
            return float(np.sum(weights * ys) / weights.sum())
        nearest = np.argsort(dist)[:NEIGHBOURS]
        span = dist[nearest].max() * (1 + 1e-9)
        weights = np.sqrt((1 - (dist[nearest] / span) ** 3) ** 3 + 1e-6)
        local = xs[nearest] - coords
        local = local[:, np.ptp(local, axis=0) > 1e-12]  # a constant column would alias the intercept
        design = np.c_[np.ones(len(nearest)), local]
        coef, *_ = np.linalg.lstsq(design * weights[:, None], ys[nearest] * weights, rcond=None)
        return float(np.clip(coef[0], 1e-2, 1.0))

    def gemm_time(self, m: int, n: int, k: int, dtype: str = "fp8", sms: int | None = None) -> float:
        """Predicted GEMM time in seconds."""
        for name, v in (("--m", m), ("--n", n), ("--k", k)):
            if v < 1:
                raise ScenarioError(name, f"must be >= 1, got {v}")
        sms = self.all_sms if sms is None else sms
        points = [p for _, p in self._gemm.get(dtype, [])]
        eff = self._efficiency(points, self._coords(m, n, k, sms))
        return self.gemm_roofline(m, n, k, dtype, sms) / eff

    def sm_throughput(self, sms: int, m: int = 4096, n: int = 4096, k: int = 7168, dtype: str = "bf16") -> float:
        """Fraction of the whole GPU's GEMM throughput left on ``sms`` SMs, for the calibration's
        SM-sweep GEMM (4096 x 4096 x 7168 BF16, ``calibrate.bench.bench_sm_limited_gemm``). With
        green-context samples the curve is measured; without them it is linear (the roofline)."""
        return self.gemm_time(m, n, k, dtype) / self.gemm_time(m, n, k, dtype, sms)

    def attention_time(
        self, heads: int, seq: int, qk_dim: int = 192, v_dim: int = 128, causal: bool = True, phase: str = "fwd"
    ) -> float:
        """Predicted attention time in seconds (BF16)."""
        if phase not in ("fwd", "fwd+bwd"):
            raise ScenarioError("--phase", f"unknown phase {phase!r}; choose from fwd, fwd+bwd")
        roof = self._attention_roofline(heads, seq, qk_dim, v_dim, causal, phase)
        points = []
        for s in self.profile.samples:
            if s.op == "attention" and int(s.params.get("causal", 1)) == int(causal) and s.params.get("phase") == phase:
                h, n = int(s.params["heads"]), int(s.params["seq"])
                eff = self._attention_roofline(h, n, int(s.params["qk_dim"]), int(s.params["v_dim"]), causal, phase)
                points.append(_Point(np.log(np.array([h, n], dtype=np.float64)), eff / s.time_s))
        return roof / self._efficiency(points, np.log(np.array([heads, seq], dtype=np.float64)))

    def _attention_roofline(self, heads: int, seq: int, qk: int, v: int, causal: bool, phase: str) -> float:
        flops = 2.0 * heads * seq * seq * (qk + v) * (0.5 if causal else 1.0) * (3.5 if phase == "fwd+bwd" else 1.0)
        return flops / self._peak_flops("bf16")

    def comm_time(self, op: str, nbytes: float) -> float:
        """Predicted ``alltoall`` or ``p2p`` time from the alpha-beta fit of the profile's samples."""
        xs = np.array([float(s.params["bytes"]) for s in self.profile.samples if s.op == op])
        ts = np.array([s.time_s for s in self.profile.samples if s.op == op])
        if len(xs) < 2:
            raise ScenarioError("--op", f"the profile has fewer than 2 {op} samples")
        design = np.c_[np.ones(len(xs)), xs]
        (alpha, inv_beta), *_ = np.linalg.lstsq(design / ts[:, None], np.ones(len(xs)), rcond=None)
        return float(max(alpha, 0.0) + max(inv_beta, 0.0) * nbytes)

    def memory_time(self, nbytes: float, kernel: str | None = None) -> float:
        """A memory-bound kernel moving ``nbytes``: the achieved fraction of HBM bandwidth interpolated
        in log(bytes) over the profile's memory samples (of ``kernel`` when given: copy, fp8-cast,
        elementwise), else the profile's assumed efficiency."""
        if nbytes <= 0:
            raise ScenarioError("--bytes", f"must be > 0, got {nbytes:g}")
        hbm = self.profile.peaks.hbm_TBps * 1e12
        points = [
            _Point(np.log(np.array([float(s.params["bytes"])])), float(s.params["bytes"]) / s.time_s / hbm)
            for s in self.profile.samples
            if s.op == "memory" and (kernel is None or s.params.get("kernel") == kernel)
        ]
        if kernel is not None and not points:
            raise ScenarioError("--kernel", f"the profile has no memory samples of kernel {kernel!r}")
        return nbytes / (hbm * self._efficiency(points, np.log(np.array([nbytes]))))

    def loso_error(self, dtype: str | None = None) -> float | None:
        """Median relative error predicting each GEMM sample from the others (None below 2 samples)."""
        errors = []
        for dt, entries in self._gemm.items():
            if dtype is not None and dt != dtype:
                continue
            for i, (sample, point) in enumerate(entries):
                others = [p for j, (_, p) in enumerate(entries) if j != i]
                if not others:
                    continue
                m, n, k = (int(sample.params[x]) for x in ("m", "n", "k"))
                sms = int(sample.params.get("sms", self.all_sms))
                pred = self.gemm_roofline(m, n, k, dt, sms) / self._efficiency(others, point.coords)
                errors.append(abs(pred - sample.time_s) / sample.time_s)
        return statistics.median(errors) if errors else None
