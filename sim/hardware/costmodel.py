"""The calibrated cost model: how long a GEMM, attention, memory-bound or communication kernel takes.

Everything comes from a :class:`~sim.hardware.profile.Profile` (no torch):

* **GEMM** (:mod:`sim.hardware.gemm_model`): a wave/roofline model fitted per dtype with one
  efficiency per FP8 scaling (tensorwise, rowwise, blockwise), SM-limited samples included, plus a
  narrow residual correction near measured shapes. Without samples of a dtype: the roofline at the
  profile's assumed ``efficiency`` (datasheet profiles), SMs scaling linearly.
* **Attention** (``scaled_dot_product_attention`` at MLA head dims): roofline FLOPs
  ``2 x heads x seq^2 x (qk + v)``, halved when causal, x 2.5 for the backward (five matmuls against
  two), efficiency interpolated in log (heads, seq, qk, v) over samples of the same causal/phase
  class; ``fwd+bwd`` is the sum of the two.
* **Memory-bound kernels** (:class:`MemoryCurve`): time piecewise linear in bytes through the memory
  samples of a kernel class (copy, fp8-cast, norm, ...; the mean time per measured size, sizes whose
  means fall as bytes rise pooled), from a launch floor at 0 bytes (the shortest memory-bound kernel
  the profile measured, or a tiny kernel's time where that is shorter: :attr:`CostModel.memory_floor_s`)
  and at the largest sample's rate beyond it: non-decreasing in bytes by construction, exact at the
  measured sizes.
* **SMs**: every compute op is timed on the SMs it gets. GEMMs through the fitted model; attention
  through its own SM samples where the profile has them, else the GEMM's measured (BF16) throughput
  curve; memory-bound kernels through the measured copy bandwidth against SMs (green-context copy
  samples), else linear below the point where a copy saturates HBM.
* **Interference** (:mod:`sim.hardware.interference`): a GEMM beside communication kernels on
  ``comm_sms`` other SMs, and the communication kernels beside a GEMM, fitted to the profile's
  interference samples.
* **Communication** (``alltoall``, ``p2p``): an alpha-beta line ``t = alpha + bytes / beta`` fitted
  by least squares to the profile's samples of that op.

``loso_error`` (leave one sample out) and ``lofo_error`` (leave one shape family out) report the
GEMM predictor's error; calibration stores both in the profile and ``twin calibrate show`` prints them.
"""

from __future__ import annotations

import bisect
import functools
import math
import statistics
from dataclasses import dataclass

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.gemm_model import (
    INPUT_BYTES,
    OUTPUT_BYTES,
    SCALINGS,
    GemmModel,
    GemmPoint,
    Peaks,
    StoredFit,
    canonical_scaling,
    lofo_errors,
    loso_errors,
    summarise_lofo,
)
from sim.hardware.interference import InterferenceModel, InterferenceRow
from sim.hardware.profile import GemmFitEntry, Profile, Sample, attention_param
from sim.hardware.promotion import MIN_TOKENS as PROMOTION_MIN_TOKENS
from sim.hardware.promotion import PromotionFit, promotion_factor
from sim.model.ops import ATTENTION_BWD_RATIO, attention_flops

NEIGHBOURS = 8
# the twin's collective names (sim.network.collectives.KINDS) -> nccl-tests' (its programs: NAME_perf)
NCCL_NAMES = {
    "allreduce": "all_reduce",
    "allgather": "all_gather",
    "reducescatter": "reduce_scatter",
    "alltoall": "alltoall",
    "sendrecv": "sendrecv",
}
PHASES = ("fwd", "bwd", "fwd+bwd")
SMALL_KERNEL_S = 3e-6  # a tiny kernel without calibration: launch-bound, a few microseconds (assumption)


def interpolate(xs: np.ndarray, ys: np.ndarray, at: np.ndarray, default: float) -> float:
    """A value at ``at`` from samples ``(xs, ys)`` in log space: exact at samples; elsewhere a local
    linear fit to the ``NEIGHBOURS`` nearest (tricube weights), kept within their range;
    inverse-distance weighting below 5 samples; ``default`` without samples. Dimensions the samples
    do not vary are left out (they carry no information)."""
    if len(ys) == 0:
        return default
    varying = np.ptp(xs, axis=0) > 1e-12
    xs, at = xs[:, varying], at[varying]
    dist = np.sqrt(np.sum((xs - at) ** 2, axis=1))
    exact = dist < 1e-9
    if exact.any():
        return float(ys[exact].mean())
    if len(ys) < 5:
        weights = 1.0 / dist**2
        return float(np.sum(weights * ys) / weights.sum())
    nearest = np.argsort(dist)[:NEIGHBOURS]
    span = dist[nearest].max() * (1 + 1e-9)
    weights = np.sqrt((1 - (dist[nearest] / span) ** 3) ** 3 + 1e-6)
    local = xs[nearest] - at
    local = local[:, np.ptp(local, axis=0) > 1e-12]  # a constant column would alias the intercept
    design = np.c_[np.ones(len(nearest)), local]
    coef, *_ = np.linalg.lstsq(design * weights[:, None], ys[nearest] * weights, rcond=None)
    # a local line through scattered neighbours may leave their range (even go negative): keep it inside
    return float(np.clip(coef[0], ys[nearest].min(), ys[nearest].max()))


def fitted(profile: Profile) -> Profile:
    """``profile`` carrying its GEMM fit (``gemm_fit``), as every ``twin calibrate`` command writes it:
    fitted afresh from its samples, whatever fit it carried before."""
    model = GemmModel(_gemm_points(profile), CostModel.peaks_of(profile))
    fits = {dt: fit.stored_fit() for dt, fit in model.fits.items()}
    entries = {
        dt: GemmFitEntry(inputs_sha256=f.inputs_sha256, params=f.params, efficiency=f.efficiency)
        for dt, f in fits.items()
    }
    return profile.model_copy(update={"gemm_fit": entries})


def _gemm_points(profile: Profile) -> list[GemmPoint]:
    points = []
    for s in profile.samples:
        p = s.params
        if s.op != "gemm" or not all(x in p for x in ("m", "n", "k")):  # grouped GEMMs are kept as data
            continue
        dtype = str(p.get("dtype", "bf16"))
        scaling = canonical_scaling(dtype, str(p["scaling"]) if "scaling" in p else None)
        if dtype == "fp8" and "scaling" not in p:
            scaling = "tensorwise"
        family = str(p.get("family", p.get("shape", "unnamed")))
        sms = int(p.get("sms", profile.device.sms))
        single = p.get("timing") == "single"
        points.append(GemmPoint(int(p["m"]), int(p["n"]), int(p["k"]), sms, dtype, scaling, family, s.time_s, single))
    return points


@dataclass(frozen=True)
class MemoryCurve:
    """Whole-GPU time of a memory-bound kernel class against the bytes it moves, non-decreasing by
    construction: piecewise linear in bytes through ``(0, floor_s)`` and the measured sizes (``sizes``,
    ``times``: the mean time of the samples of each size; where a larger size's mean is shorter than a
    smaller one's, the sizes are pooled to their sample-weighted mean, the pool-adjacent-violators
    least-squares monotone fit, so the samples' total time is kept), and beyond the largest size at its
    rate (``times[-1] / sizes[-1]`` seconds per byte). Without samples (``sizes`` empty):
    ``max(floor_s, bytes / rate_Bps)``."""

    sizes: tuple[float, ...]
    times: tuple[float, ...]
    floor_s: float
    rate_Bps: float = 0.0  # unmeasured curves only

    @classmethod
    def unmeasured(cls, floor_s: float, rate_Bps: float) -> MemoryCurve:
        return cls((), (), floor_s, rate_Bps)

    @classmethod
    def through(cls, points: list[tuple[float, float]], floor_s: float) -> MemoryCurve:
        """The curve through ``(bytes, seconds)`` samples (several of one size: their mean)."""
        by_size: dict[float, list[float]] = {}
        for b, t in points:
            by_size.setdefault(b, []).append(t)
        sizes = sorted(by_size)
        # pool adjacent violators: blocks of consecutive sizes [total seconds, samples, sizes], each
        # block's mean at least the one before it
        blocks: list[tuple[float, int, int]] = []
        for b in sizes:
            total, n, width = math.fsum(by_size[b]), len(by_size[b]), 1
            while blocks and blocks[-1][0] / blocks[-1][1] > total / n:
                t0, n0, w0 = blocks.pop()
                total, n, width = total + t0, n + n0, width + w0
            blocks.append((total, n, width))
        times = tuple(total / n for total, n, width in blocks for _ in range(width))
        return cls(tuple(sizes), times, min(floor_s, times[0]))

    def at(self, nbytes: float) -> float:
        """Seconds to move ``nbytes`` on the whole GPU."""
        if not self.sizes:
            return max(self.floor_s, nbytes / self.rate_Bps)
        if nbytes >= self.sizes[-1]:
            return self.times[-1] * (nbytes / self.sizes[-1])
        i = bisect.bisect_right(self.sizes, nbytes)  # sizes[i - 1] <= nbytes < sizes[i]
        x0, y0 = (0.0, self.floor_s) if i == 0 else (self.sizes[i - 1], self.times[i - 1])
        x1, y1 = self.sizes[i], self.times[i]
        # (kept within the segment's ends: rounding must not step past them)
        return min(max(y0 + (y1 - y0) * ((nbytes - x0) / (x1 - x0)), y0), y1)


class CostModel:
    """Predicts kernel times from a :class:`Profile` (no torch)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.all_sms = profile.device.sms
        self.peaks = self.peaks_of(profile)
        self.gemm_points = _gemm_points(profile)
        stored = {dt: StoredFit(f.inputs_sha256, f.params, f.efficiency) for dt, f in profile.gemm_fit.items()}
        self.gemm_model = GemmModel(self.gemm_points, self.peaks, stored)
        self._memory = [s for s in profile.samples if s.op == "memory"]
        self.interference = InterferenceModel.fit(self._interference_rows())
        # memos of this model (not functools.lru_cache on the methods: a class-wide cache keeps every
        # model it has seen alive, and a sweep's worker builds one per point)
        self._gemm_memo: dict[tuple[int, int, int, str, int, str], float] = {}
        self._memory_curve_memo: dict[str | None, MemoryCurve] = {}
        self._promotion: PromotionFit | None = None

    @staticmethod
    def peaks_of(profile: Profile) -> Peaks:
        """The profile's peaks in the units the GEMM model reads (FLOP/s, bytes/s)."""
        pk = profile.peaks
        return Peaks(pk.fp8_dense_TFLOPS * 1e12, pk.bf16_dense_TFLOPS * 1e12, pk.hbm_TBps * 1e12, profile.device.sms)

    # ---------------------------------------------------------------- GEMM
    def gemm_roofline(self, m: int, n: int, k: int, dtype: str = "fp8", sms: int | None = None) -> float:
        """Time at 100% of the (SM-scaled) peak, seconds."""
        if dtype not in INPUT_BYTES:
            raise ScenarioError("dtype", f"unknown dtype {dtype!r}; choose from {', '.join(INPUT_BYTES)}")
        sms = self._sms(sms)
        flops = 2.0 * m * n * k
        nbytes = (m * k + k * n) * INPUT_BYTES[dtype] + m * n * OUTPUT_BYTES
        return max(flops / (self.peaks.flops(dtype) * sms / self.all_sms), nbytes / self.peaks.hbm_Bps)

    def _sms(self, sms: int | None) -> int:
        sms = self.all_sms if sms is None else sms
        if not 0 < sms <= self.all_sms:
            raise ScenarioError("sms", f"must be in 1..{self.all_sms}, got {sms}")
        return sms

    def gemm_time(
        self,
        m: int,
        n: int,
        k: int,
        dtype: str = "fp8",
        sms: int | None = None,
        scaling: str | None = None,
        beside_comm_sms: int = 0,
        accumulation: str = "promoted",
    ) -> float:
        """Predicted GEMM time in seconds on ``sms`` SMs (default all but ``beside_comm_sms``), FP8
        ``scaling`` (default DeepSeek's blockwise), optionally beside memory-bound communication
        kernels saturating ``beside_comm_sms`` other SMs. ``accumulation="full"``: an FP8 GEMM whose
        partial sums stay in the tensor cores, the measured promotion factor faster
        (:mod:`sim.hardware.promotion`)."""
        for name, v in (("m", m), ("n", n), ("k", k)):
            if v < 1:
                raise ScenarioError(name, f"must be >= 1, got {v}")
        if sms is None and 0 < beside_comm_sms < self.all_sms:
            sms = self.all_sms - beside_comm_sms
        sms = self._sms(sms)
        if dtype not in INPUT_BYTES:
            raise ScenarioError("dtype", f"unknown dtype {dtype!r}; choose from {', '.join(INPUT_BYTES)}")
        scaling = canonical_scaling(dtype, scaling)
        allowed = SCALINGS.get(dtype, ("none",))
        if scaling not in allowed:
            raise ScenarioError("scaling", f"{dtype} has no scaling {scaling!r}; choose from {', '.join(allowed)}")
        t = self._gemm(m, n, k, dtype, sms, scaling)
        if accumulation not in ("promoted", "full"):
            raise ScenarioError("accumulation", f"unknown accumulation {accumulation!r}; choose promoted or full")
        if accumulation == "full" and dtype == "fp8":
            t = max(t / self.promotion().factor, self.gemm_roofline(m, n, k, dtype, sms))
        if beside_comm_sms:
            if sms + beside_comm_sms > self.all_sms:
                raise ScenarioError("beside_comm_sms", f"{sms} + {beside_comm_sms} SMs exceed the GPU's {self.all_sms}")
            t *= self.interference.gemm_slowdown(dtype, self.comm_utilisation(beside_comm_sms))
        return t

    def promotion(self) -> PromotionFit:
        """The profile's measured promotion factor (:mod:`sim.hardware.promotion`); refused, naming
        ``compute.fp8_accumulation``, for a profile without tensor-wise FP8 and BF16 GEMMs of one shape."""
        if self._promotion is None:
            fit = promotion_factor(self.gemm_points, self.peaks)
            if fit is None:
                raise ScenarioError(
                    "compute.fp8_accumulation",
                    f"profile {self.profile.device.name!r} has no tensor-wise FP8 and BF16 GEMM of one shape "
                    f"(M >= {PROMOTION_MIN_TOKENS}, all SMs) to measure promotion on; use a measured profile",
                )
            self._promotion = fit
        return self._promotion

    def _gemm(self, m: int, n: int, k: int, dtype: str, sms: int, scaling: str) -> float:
        key = (m, n, k, dtype, sms, scaling)
        hit = self._gemm_memo.get(key)
        if hit is None:
            if self.gemm_model.has(dtype):
                hit = self.gemm_model.time(m, n, k, dtype, scaling, sms)
            else:
                hit = self.gemm_roofline(m, n, k, dtype, sms) / self.profile.efficiency
            self._gemm_memo[key] = hit
        return hit

    def sm_throughput(self, sms: int, m: int = 4096, n: int = 4096, k: int = 7168, dtype: str = "bf16") -> float:
        """Fraction of the whole GPU's GEMM throughput left on ``sms`` SMs (4096 x 4096 x 7168 BF16 by
        default, the calibration's SM-sweep GEMM). Measured where the profile has SM-limited samples;
        linear in SMs for datasheet profiles."""
        return self.gemm_time(m, n, k, dtype) / self.gemm_time(m, n, k, dtype, sms)

    # ---------------------------------------------------------------- attention
    def attention_time(
        self,
        heads: int,
        seq: int,
        qk_dim: int = 192,
        v_dim: int = 128,
        causal: bool = True,
        phase: str = "fwd",
        sms: int | None = None,
    ) -> float:
        """Predicted attention time in seconds (BF16) on ``sms`` SMs."""
        if phase not in PHASES:
            raise ScenarioError("phase", f"unknown phase {phase!r}; choose from {', '.join(PHASES)}")
        sms = self._sms(sms)
        if phase == "fwd+bwd" and not self._attention_samples(causal, phase):
            return self.attention_time(heads, seq, qk_dim, v_dim, causal, "fwd", sms) + self.attention_time(
                heads, seq, qk_dim, v_dim, causal, "bwd", sms
            )
        t = self._attention_full(heads, seq, qk_dim, v_dim, causal, phase)
        return t / self._attention_sm_fraction(sms, causal, phase)

    def _attention_samples(self, causal: bool, phase: str, sms: int | None = None) -> list[Sample]:
        sms = self.all_sms if sms is None else sms
        return [
            s
            for s in self.profile.samples
            if s.op == "attention"
            and attention_param(s.params, "causal") == int(causal)
            and s.params.get("phase") == phase
            and int(s.params.get("sms", self.all_sms)) == sms
        ]

    @staticmethod
    def _attention_coords(s: Sample) -> np.ndarray:
        p = s.params
        coords = [p["heads"], p["seq"], attention_param(p, "qk_dim"), attention_param(p, "v_dim")]
        return np.log(np.array(coords, dtype=np.float64))

    def _attention_full(self, heads: int, seq: int, qk: int, v: int, causal: bool, phase: str) -> float:
        """Time on all SMs: efficiency interpolated over the class's samples, each taken on any SM
        count and brought to the whole GPU through the attention SM curve."""
        roof = self.attention_roofline(heads, seq, qk, v, causal, phase)
        samples = [
            s
            for s in self.profile.samples
            if s.op == "attention"
            and attention_param(s.params, "causal") == int(causal)
            and s.params.get("phase") == phase
        ]
        xs = np.array([self._attention_coords(s) for s in samples]).reshape(len(samples), 4)
        ys = np.array(
            [
                self.attention_roofline(
                    int(s.params["heads"]),
                    int(s.params["seq"]),
                    attention_param(s.params, "qk_dim"),
                    attention_param(s.params, "v_dim"),
                    causal,
                    phase,
                )
                / (s.time_s * self._attention_sm_fraction(int(s.params.get("sms", self.all_sms)), causal, phase))
                for s in samples
            ]
        )
        at = np.log(np.array([heads, seq, qk, v], dtype=np.float64))
        eff = interpolate(xs, ys, at, self.profile.efficiency)
        return roof / float(np.clip(eff, 1e-2, 1.0))

    def _attention_sm_fraction(self, sms: int, causal: bool, phase: str) -> float:
        if sms >= self.all_sms:
            return 1.0
        limited = [
            s
            for s in self.profile.samples
            if s.op == "attention"
            and int(s.params.get("sms", self.all_sms)) < self.all_sms
            and s.params.get("phase") == phase
        ]
        if limited:  # measured: throughput at the sampled SM counts, interpolated in SMs
            ratios: dict[int, list[float]] = {}
            for s in limited:
                full = [
                    f
                    for f in self._attention_samples(bool(attention_param(s.params, "causal")), phase)
                    if all(f.params.get(x) == s.params.get(x) for x in ("heads", "seq", "qk_dim", "v_dim"))
                ]
                if full:
                    ratios.setdefault(int(s.params["sms"]), []).append(full[0].time_s / s.time_s)
            if ratios:
                xs = np.array([*sorted(ratios), self.all_sms], dtype=np.float64)
                ys = np.array([statistics.fmean(ratios[x]) for x in sorted(ratios)] + [1.0])
                return float(np.interp(sms, xs, ys, left=ys[0] * sms / xs[0]))
        return self.sm_throughput(sms)

    def attention_roofline(self, heads: int, seq: int, qk: int, v: int, causal: bool, phase: str) -> float:
        flops = attention_flops(heads, seq, qk, v, causal)
        flops *= {"fwd": 1.0, "bwd": ATTENTION_BWD_RATIO, "fwd+bwd": 1.0 + ATTENTION_BWD_RATIO}[phase]
        return flops / self.peaks.flops("bf16")

    # ---------------------------------------------------------------- memory-bound kernels
    def memory_time(self, nbytes: float, kernel: str | None = None, sms: int | None = None) -> float:
        """A memory-bound kernel moving ``nbytes`` (read + written, at least 1) on ``sms`` SMs: the
        whole-GPU :class:`MemoryCurve` of ``kernel``'s samples (copy, fp8-cast, norm, ...; when None, the
        copies: see :meth:`_memory_samples`), its time above the launch floor slowed on fewer SMs by the
        measured copy bandwidth against SMs (:meth:`memory_sm_fraction`), the floor kept:
        ``t = floor + (T(bytes) - floor) / fraction(sms)``. Samples of multi-kernel ops (``kernels`` > 1)
        are the op's total time."""
        if not nbytes >= 1:  # (nan too) under a byte is no kernel's work; twin collective refuses it likewise
            raise ScenarioError("nbytes", f"must be at least 1 byte, got {nbytes:g}")
        sms = self._sms(sms)
        curve = self.memory_curve(kernel)
        return curve.floor_s + (curve.at(nbytes) - curve.floor_s) / self.memory_sm_fraction(sms)

    def memory_curve(self, kernel: str | None = None) -> MemoryCurve:
        """The whole-GPU time curve of ``kernel``'s memory samples (memoised per kernel)."""
        hit = self._memory_curve_memo.get(kernel)
        if hit is None:
            hit = self._memory_curve_memo[kernel] = self._memory_curve_of(kernel)
        return hit

    @functools.cached_property
    def memory_floor_s(self) -> float:
        """The least time a memory-bound kernel takes: the shortest memory sample of the profile (any
        class, launch-bound ``small`` kernels included: the H800 trace's 1.98 us), or a tiny kernel's
        time (:meth:`small_kernel_time`) where that is shorter. Samples timed one call per event pair
        carry the timer's own overhead, so their shortest is no floor (the H100's 1 MiB copy: 22.7 us,
        its 16 MiB copy hardly longer; the H200's shortest 11.8 us): there the tiny kernel's time
        (``SMALL_KERNEL_S``, an assumption, without ``small`` samples) is the floor."""
        return min([s.time_s for s in self._memory] + [self.small_kernel_time()])

    def _memory_samples(self, kernel: str | None) -> list[Sample]:
        """The memory samples of ``kernel``; when None, of the copies (a fused streaming kernel of a
        class the profile has not measured moves its bytes as a copy does), else of any but tiny
        kernels. Classes are never mixed: an unfused torch FP8 cast reaches 5% of HBM where a copy of
        the same size reaches 85%, and a curve through both would describe neither."""
        if kernel is None and any(s.params.get("kernel") == "copy" for s in self._memory):
            kernel = "copy"
        mine = [
            s
            for s in self._memory
            if (kernel is None and s.params.get("kernel") != "small") or s.params.get("kernel") == kernel
        ]
        if kernel is not None and not mine:
            raise ScenarioError("kernel", f"the profile has no memory samples of kernel {kernel!r}")
        return mine

    def _memory_curve_of(self, kernel: str | None) -> MemoryCurve:
        floor = self.memory_floor_s
        mine = self._memory_samples(kernel)
        if not mine:  # no measurement: the datasheet bandwidth at the assumed efficiency, above the floor
            return MemoryCurve.unmeasured(floor, self.peaks.hbm_Bps * self.profile.efficiency)
        points = [
            # a sample on fewer SMs as its whole-GPU time: the part above the floor sped up by the copy curve
            (
                float(s.params["bytes"]),
                floor + (s.time_s - floor) * self.memory_sm_fraction(int(s.params.get("sms", self.all_sms))),
            )
            for s in mine
        ]
        return MemoryCurve.through(points, floor)

    def has_memory_kernel(self, kernel: str) -> bool:
        return kernel in self._memory_kernels

    @functools.cached_property
    def _memory_kernels(self) -> frozenset[object]:
        """The kernel classes the profile's memory samples name (asked once per op costed)."""
        return frozenset(s.params.get("kernel") for s in self._memory)

    def small_kernel_time(self) -> float:
        """One tiny launch-bound kernel (bookkeeping, scale transposes): the median of the profile's
        ``small`` samples, else ``SMALL_KERNEL_S`` (an assumption: a few microseconds of launch)."""
        return self._small_kernel_s

    @functools.cached_property
    def _small_kernel_s(self) -> float:
        times = [s.time_s for s in self._memory if s.params.get("kernel") == "small"]
        return statistics.median(times) if times else SMALL_KERNEL_S

    @functools.cached_property
    def _copy(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self._copy_curve()

    def _copy_curve(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(SMs, copy traffic rate) of the largest copy measured at several SM counts."""
        copies = [s for s in self._memory if s.params.get("kernel") == "copy" and "sms" in s.params]
        by_size: dict[float, dict[int, float]] = {}
        for s in copies:
            rate = float(s.params["bytes"]) / s.time_s
            by_size.setdefault(float(s.params["bytes"]), {})[int(s.params["sms"])] = rate
        sizes = [b for b, rates in by_size.items() if len(rates) >= 2 and self.all_sms in rates]
        if not sizes:
            return None
        rates = by_size[max(sizes)]
        xs = np.array(sorted(rates), dtype=np.float64)
        return xs, np.array([rates[int(x)] for x in xs])

    def hbm_rate(self) -> float:
        """Traffic rate (bytes/s, read + written) of the best copy on the whole GPU: the ``C`` of the
        interference model; the datasheet bandwidth x efficiency without copy samples."""
        copies = [float(s.params["bytes"]) / s.time_s for s in self._memory if s.params.get("kernel") == "copy"]
        return max(copies) if copies else self.peaks.hbm_Bps * self.profile.efficiency

    def memory_sm_fraction(self, sms: int) -> float:
        """Fraction of the whole GPU's copy bandwidth a memory-bound kernel reaches on ``sms`` SMs."""
        if sms >= self.all_sms:
            return 1.0
        curve = self._copy
        if curve is None:  # linear until 40% of the SMs saturate HBM (no measurement: an assumption)
            return min(1.0, sms / (0.4 * self.all_sms))
        xs, rates = curve
        full = rates[-1]
        return float(np.interp(sms, xs, rates / full, left=rates[0] / full * sms / xs[0]))

    def comm_utilisation(self, comm_sms: int, rate: float | None = None) -> float:
        """HBM share used by memory-bound communication kernels on ``comm_sms`` SMs: their traffic
        ``rate`` (bytes/s) when given, else a copy saturating those SMs (the measured worst case)."""
        if comm_sms <= 0:
            return 0.0
        c = self.hbm_rate()
        if rate is None:
            rate = c * self.memory_sm_fraction(comm_sms)
        return min(rate / c, 1.0)

    def _interference_rows(self) -> list[InterferenceRow]:
        """Measured pairs on disjoint green contexts; where a profile has none, pairs on torch's
        overlapping ones (``green-contexts-overlapping``: SM sharing and HBM sharing mixed).
        Pairs on shared SMs (``shared-sms``) are a different mechanism and stay data only."""
        modes = {str(s.params.get("mode", "green-contexts")) for s in self.profile.samples if s.op == "interference"}
        mode = "green-contexts" if "green-contexts" in modes else "green-contexts-overlapping"
        self.interference_mode = mode if modes & {mode} else "none"
        c = self.hbm_rate()
        pairs: dict[tuple[object, ...], dict[str, Sample]] = {}
        for s in self.profile.samples:
            if s.op != "interference" or s.params.get("mode", "green-contexts") != mode:
                continue
            key = tuple(sorted((k, v) for k, v in s.params.items() if k not in ("kernel", "alone_s")))
            pairs.setdefault(key, {})[str(s.params["kernel"])] = s
        rows = []
        for pair in pairs.values():
            if "gemm" not in pair or "copy" not in pair:
                continue
            g, cp = pair["gemm"], pair["copy"]
            copy_alone = float(cp.params["alone_s"])
            rows.append(
                InterferenceRow(
                    dtype=str(g.params.get("dtype", "fp8")),
                    compute_sms=int(g.params["compute_sms"]),
                    comm_sms=int(g.params["comm_sms"]),
                    gemm_slowdown=g.time_s / float(g.params["alone_s"]),
                    copy_slowdown=cp.time_s / copy_alone,
                    copy_utilisation=2.0
                    * float(cp.params["copy_bytes"])
                    / copy_alone
                    / float(cp.params.get("hbm_rate_Bps", c)),
                )
            )
        return rows

    # ---------------------------------------------------------------- communication
    def comm_samples(self, op: str, gpus: int | None = None, nodes: int | None = None) -> list[Sample]:
        """Samples of ``op`` (the twin's names, ``allreduce``, ..., or nccl-tests' ``all_reduce``, ...):
        torch.distributed ones (``alltoall`` at its ``world`` size, ``p2p`` between 2 processes, all on
        one node) and nccl-tests ones (``collective`` samples of that name, out-of-place; ``p2p`` is
        nccl-tests' ``sendrecv``) at one scale (``gpus``, ``nodes``); with several scales and none
        given, an error lists them; with a scale given that no sample of ``op`` was measured at, an
        error names the flag and lists the scales there are."""
        name = NCCL_NAMES.get("sendrecv" if op == "p2p" else op, op)
        direct = [s for s in self.profile.samples if s.op == op and op in ("alltoall", "p2p")]
        nccl = [
            s
            for s in self.profile.samples
            if s.op == "collective"
            and s.params.get("collective") == name
            and s.params.get("placement", "out-of-place") == "out-of-place"
        ]
        measured = [(s, (int(s.params["gpus"]), int(s.params["nodes"]))) for s in nccl]
        measured += [(s, (int(s.params.get("world", 2)), 1)) for s in direct]  # torch: processes of one host
        kept = [
            (s, scale)
            for s, scale in measured
            if (gpus is None or scale[0] == gpus) and (nodes is None or scale[1] == nodes)
        ]
        if measured and not kept:
            asked = " on ".join(x for x in (f"{gpus} GPUs" if gpus else "", f"{nodes} nodes" if nodes else "") if x)
            there = ", ".join(
                f"{g} GPUs on {n} node{'s' if n > 1 else ''}" for g, n in sorted({c for _, c in measured})
            )
            raise ScenarioError(
                "gpus" if gpus is not None else "nodes",
                f"the profile has no {op} sample at {asked} (it has {op} at {there})",
            )
        scales = sorted({scale for s, scale in kept if s.op == "collective"})
        if len(scales) > 1:
            listed = ", ".join(f"{g} GPUs on {n} nodes" for g, n in scales)
            raise ScenarioError(
                "gpus", f"the profile has {op} at several scales ({listed}); pick one by its GPUs and nodes"
            )
        nccl_kept = [s for s, _ in kept if s.op == "collective"]
        return nccl_kept or [s for s, _ in kept]

    def comm_time(self, op: str, nbytes: float, gpus: int | None = None, nodes: int | None = None) -> float:
        """Predicted time of ``op`` moving ``nbytes`` (nccl-tests' size column): an alpha-beta line
        ``alpha + bytes / beta`` fitted by least squares (relative errors) to the profile's samples of
        that op at one scale."""
        samples = self.comm_samples(op, gpus, nodes)
        xs = np.array([float(s.params["bytes"]) for s in samples])
        ts = np.array([s.time_s for s in samples])
        if len(xs) < 2:
            have = sorted(
                {
                    str(s.params.get("collective", s.op))
                    for s in self.profile.samples
                    if s.op in ("alltoall", "p2p", "collective")
                }
            )
            at = f" (one, at {int(xs[0]):,} B: a line needs samples at two sizes or more)" if len(xs) else ""
            raise ScenarioError(
                "op",
                f"the profile has fewer than 2 {op} samples{at} (its communication: {', '.join(have) or 'none'})",
            )
        alpha, inv_beta = comm_line(xs, ts)
        problem = comm_line_problem(xs, inv_beta)
        if problem is not None:
            raise ScenarioError("op", f"the profile's {op} samples: {problem}")
        return float(max(alpha, 0.0) + inv_beta * nbytes)

    # ---------------------------------------------------------------- errors
    def loso_error(self, dtype: str | None = None, min_m: int = 1) -> float | None:
        """Median relative error predicting each GEMM sample without its own residual (None below 2)."""
        model = self.gemm_model
        if dtype is not None:
            model = GemmModel([p for p in self.gemm_points if p.dtype == dtype], self.peaks)
        errors = loso_errors(model, min_m)
        return statistics.median(errors) if len(errors) >= 2 else None

    def lofo_error(self, min_m: int = 512) -> dict[str, float]:
        """Leave-one-family-out medians: ``gemm`` pooled, per dtype and scaling, and the worst family."""
        return summarise_lofo(lofo_errors(self.gemm_points, self.peaks, min_m))

    def describe(self) -> dict[str, dict[str, float]]:
        """The fitted GEMM parameters per dtype and the interference sensitivities."""
        out = self.gemm_model.describe()
        if self.interference.rows:
            out["interference"] = {**self.interference.describe(), "rows": float(self.interference.rows)}
        return out


def comm_line(sizes: np.ndarray, times: np.ndarray) -> tuple[float, float]:
    """The alpha-beta line ``time = alpha + bytes * inv_beta`` through communication samples, by least
    squares on relative errors (each row divided by its time): (alpha s, inv_beta s/B)."""
    design = np.c_[np.ones(len(sizes)), sizes]
    (alpha, inv_beta), *_ = np.linalg.lstsq(design / times[:, None], np.ones(len(sizes)), rcond=None)
    return float(alpha), float(inv_beta)


def comm_line_problem(sizes: np.ndarray, inv_beta: float) -> str | None:
    """Why samples give no alpha-beta line to predict from, or None: all at one size (the line's slope is
    any: a 1 GB all-reduce came out at 21 s from two rows at 1 KiB), or times that do not grow with the
    size (a slope of 0 or below: no bandwidth, every size as fast as the smallest)."""
    distinct = np.unique(sizes)
    if len(distinct) < 2:
        return (
            f"every one is at {int(distinct[0]):,} B; a time = alpha + bytes / bandwidth line needs samples at two "
            "sizes or more (nccl-tests -b and -e)"
        )
    if not inv_beta > 0:
        return (
            f"the times do not grow with the size (the line through them has a slope of {inv_beta:.3g} s/B, no "
            "bandwidth); measure sizes far enough apart that the transfer shows (nccl-tests -b 8 -e 1G)"
        )
    return None
