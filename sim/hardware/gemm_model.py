"""GEMM time from measured samples: a fitted wave/roofline model plus a narrow residual correction.

For ``x[M, K] @ W[K, N]`` with ``dtype`` inputs (BF16 output) on ``S`` of the GPU's ``S_all`` SMs::

    t = t0 + max( 2MNK / (P_dtype * S/S_all * e_scaling * w^gamma * K/(K + k0)),  bytes / (HBM * bw) )

* ``P_dtype``: the datasheet dense peak (FP8 or BF16) of the profile;
* ``e_scaling``: the best fraction of that peak a kernel of this FP8 scaling (tensorwise, rowwise,
  blockwise) or BF16 reaches; one per scaling, the other parameters are shared within a dtype;
* ``w = tiles / (ceil(tiles/S) * S)``, ``tiles = ceil(M/128) * ceil(N/128)``: wave quantisation of
  128x128 output tiles over the SMs (a GEMM too small to fill every SM, or with a last partial
  wave, wastes SMs); ``gamma`` says how much of it shows (cuBLAS splits K and picks other tiles
  for awkward shapes, so less than all of it);
* ``K/(K + k0)``: each tile's pipeline fill and epilogue cost ``k0`` columns of K;
* ``t0``: launch and tail latency; ``bytes = (MK + KN) x input bytes + MN x 2`` at ``bw`` of HBM;
* samples timed one call at a time (``timing: single``) carry the launch overhead a burst hides:
  ``launch_us`` more, fitted when such samples exist and never added to predictions.

The parameters are fitted per dtype by robust least squares on log time (scipy ``least_squares``,
soft-L1 loss) over every GEMM sample of that dtype, SM-limited (green-context) ones included, so
the SM scaling is measured, not assumed. On top, a narrow Gaussian smoother (bandwidth 0.3 in log M,
N, K, SMs) of the log residuals of the same dtype and scaling brings predictions at and next to
measured shapes onto the measurements; far from them the fitted model alone speaks. A profile stores
each dtype's fit with the digest of its inputs (:func:`fit_digest`, :class:`StoredFit`): a run uses
it while the digest matches and fits again otherwise.

A scaling without samples of its own takes the efficiency of the nearest measured one (blockwise ->
rowwise -> tensorwise, and back), and says so in :meth:`GemmModel.describe`. Errors are reported
two ways: leave one sample out (LOSO) and leave one whole shape family out (LOFO: refit without the
family, predict it), the harder and more honest figure.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass

import numpy as np

from sim.units import BF16_BYTES, FP8_BYTES, FP32_BYTES

SCALINGS = {"fp8": ("blockwise", "rowwise", "tensorwise"), "bf16": ("none",), "fp16": ("none",), "fp32": ("none",)}
SCALING_ALIASES = {
    "blockwise_1x128_128x128": "blockwise",
    "block": "blockwise",
    "row": "rowwise",
    "tensor": "tensorwise",
    "": "none",
}
INPUT_BYTES = {"fp8": FP8_BYTES, "bf16": BF16_BYTES, "fp16": 2, "fp32": FP32_BYTES}
OUTPUT_BYTES = BF16_BYTES
TILE = 128
BANDWIDTH = 0.3  # residual smoother, in natural-log units of M, N, K and SMs
SHRINK = 0.05  # residual smoother's pull towards the fitted model
SHARED = ("k0", "t0_us", "gamma", "bw")
DEFAULTS = {"k0": 300.0, "t0_us": 5.0, "gamma": 1.0, "bw": 0.8, "launch_us": 0.0}
LOWER = {"k0": 0.0, "t0_us": 0.0, "gamma": 0.0, "bw": 0.05, "launch_us": 0.0}
UPPER = {"k0": 1e4, "t0_us": 100.0, "gamma": 3.0, "bw": 1.0, "launch_us": 15.0}  # launch: a few us
MIN_FULL_FIT = 12  # below this many samples only the efficiencies are fitted
START_EFFICIENCY = 0.7  # where the fit starts (not a model constant: the fit moves it)
EFFICIENCY_RANGE = (0.02, 1.2)  # the fit's bounds on a scaling's efficiency (above 1: a peak below what runs)
LOSS, F_SCALE = "soft_l1", 0.1  # the fit's robust loss and its scale (log time)
# Raise when the model's formula (``DtypeFit._model_time``) or the fit's procedure changes: a stored fit
# (a profile's ``gemm_fit``) is used only when its digest, which includes this, matches.
FIT_VERSION = 1


def canonical_scaling(dtype: str, scaling: str | None) -> str:
    """``blockwise_1x128_128x128`` -> ``blockwise``; BF16 has no scaling (``none``); FP8 defaults to
    DeepSeek's blockwise recipe."""
    if scaling is None:
        return "blockwise" if dtype == "fp8" else "none"
    s = SCALING_ALIASES.get(scaling, scaling)
    return s


@dataclass(frozen=True)
class GemmPoint:
    """One measured GEMM."""

    m: int
    n: int
    k: int
    sms: int
    dtype: str
    scaling: str
    family: str
    time_s: float
    single: bool = False  # timed one call per event pair: the launch overhead is inside


@dataclass(frozen=True)
class Peaks:
    fp8_flops: float
    bf16_flops: float
    hbm_Bps: float
    all_sms: int

    def flops(self, dtype: str) -> float:
        if dtype == "fp8":
            return self.fp8_flops
        if dtype == "fp32":
            return self.bf16_flops / 2  # TF32 tensor cores run at half the BF16 rate
        return self.bf16_flops


def _arrays(points: list[GemmPoint]) -> tuple[np.ndarray, ...]:
    m = np.array([p.m for p in points], dtype=np.float64)
    n = np.array([p.n for p in points], dtype=np.float64)
    k = np.array([p.k for p in points], dtype=np.float64)
    s = np.array([p.sms for p in points], dtype=np.float64)
    return m, n, k, s


def roofline_parts(
    m: np.ndarray, n: np.ndarray, k: np.ndarray, sms: np.ndarray, dtype: str, peaks: Peaks
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FLOP time at 100% of the SM-scaled peak, minimal HBM bytes, wave efficiency)."""
    flop_time = 2.0 * m * n * k / (peaks.flops(dtype) * sms / peaks.all_sms)
    nbytes = (m * k + k * n) * INPUT_BYTES[dtype] + m * n * OUTPUT_BYTES
    tiles = np.ceil(m / TILE) * np.ceil(n / TILE)
    waves = np.ceil(tiles / sms)
    return flop_time, nbytes, tiles / (waves * sms)


def fit_digest(dtype: str, points: list[GemmPoint], peaks: Peaks) -> str:
    """SHA-256 of everything one dtype's fit depends on: its samples, the peaks, the fit's constants
    and :data:`FIT_VERSION` (a stored fit with another digest is refitted, never used)."""
    inputs = {
        "version": FIT_VERSION,
        "dtype": dtype,
        "points": [[p.m, p.n, p.k, p.sms, p.dtype, p.scaling, p.time_s, p.single] for p in points],
        "peaks": [peaks.fp8_flops, peaks.bf16_flops, peaks.hbm_Bps, peaks.all_sms],
        "constants": [DEFAULTS, LOWER, UPPER, SHARED, MIN_FULL_FIT, START_EFFICIENCY, LOSS, F_SCALE],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class StoredFit:
    """A dtype's fitted parameters as a profile stores them (``gemm_fit``), with the digest of the
    inputs they were fitted on (:func:`fit_digest`)."""

    inputs_sha256: str
    params: dict[str, float]
    efficiency: dict[str, float]


class DtypeFit:
    """The fitted model of one dtype (shared parameters and one efficiency per scaling). ``stored``:
    a fit of the same inputs read back from the profile (:class:`StoredFit`; its digest matches), used
    as is instead of fitting again: the same floats, so the same predictions, without scipy's import
    and the solve at every run."""

    def __init__(self, dtype: str, points: list[GemmPoint], peaks: Peaks, stored: StoredFit | None = None) -> None:
        self.dtype = dtype
        self.peaks = peaks
        self.points = points
        self.scalings = sorted({p.scaling for p in points})
        self.params = dict(DEFAULTS)
        self.efficiency: dict[str, float] = {}
        if stored is not None and stored.inputs_sha256 == fit_digest(dtype, points, peaks):
            self.params, self.efficiency = dict(stored.params), dict(stored.efficiency)
            self.stored = True
        else:
            self._fit()
            self.stored = False
        m, n, k, s = _arrays(points)
        self._coords = np.log(np.c_[m, n, k, s])
        self._scaling = np.array([p.scaling for p in points], dtype=object)
        model = self._model_time(m, n, k, s, self._scaling) + self._launch(self.params)
        self._residual = np.log(np.array([p.time_s for p in points])) - np.log(model)

    def _launch(self, params: dict[str, float]) -> np.ndarray:
        return np.array([p.single for p in self.points], dtype=np.float64) * params["launch_us"] * 1e-6

    def _model_time(
        self,
        m: np.ndarray,
        n: np.ndarray,
        k: np.ndarray,
        s: np.ndarray,
        scaling: np.ndarray,
        x: np.ndarray | None = None,
    ) -> np.ndarray:
        p = self.params if x is None else self._unpack(x)[0]
        eff = self.efficiency if x is None else self._unpack(x)[1]
        e = np.array([eff[self.substitute(str(sc))] for sc in scaling], dtype=np.float64)
        flop_time, nbytes, wave = roofline_parts(m, n, k, s, self.dtype, self.peaks)
        compute = flop_time / (e * wave ** p["gamma"] * k / (k + p["k0"]))
        memory = nbytes / (self.peaks.hbm_Bps * p["bw"])
        return p["t0_us"] * 1e-6 + np.maximum(compute, memory)

    def _free(self) -> tuple[str, ...]:
        if len(self.points) < MIN_FULL_FIT:
            return ()
        return (*SHARED, "launch_us") if any(p.single for p in self.points) else SHARED

    def _unpack(self, x: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        free = self._free()
        params = dict(DEFAULTS)
        params.update(zip(free, (float(v) for v in x[: len(free)]), strict=True))
        eff = dict(zip(self.scalings, (float(v) for v in x[len(free) :]), strict=True))
        return params, eff

    def _fit(self) -> None:
        free = self._free()
        m, n, k, s = _arrays(self.points)
        scaling = np.array([p.scaling for p in self.points], dtype=object)
        log_t = np.log(np.array([p.time_s for p in self.points]))
        x0 = np.array([DEFAULTS[f] for f in free] + [START_EFFICIENCY] * len(self.scalings))
        lo = np.array([LOWER[f] for f in free] + [EFFICIENCY_RANGE[0]] * len(self.scalings))
        hi = np.array([UPPER[f] for f in free] + [EFFICIENCY_RANGE[1]] * len(self.scalings))
        self.efficiency = dict.fromkeys(self.scalings, START_EFFICIENCY)

        def residuals(x: np.ndarray) -> np.ndarray:
            return np.log(self._model_time(m, n, k, s, scaling, x) + self._launch(self._unpack(x)[0])) - log_t

        from scipy.optimize import least_squares  # only when fitting: a stored fit needs no scipy

        result = least_squares(residuals, x0, bounds=(lo, hi), loss=LOSS, f_scale=F_SCALE)
        self.params, self.efficiency = self._unpack(result.x)

    def stored_fit(self) -> StoredFit:
        """This fit as a profile stores it."""
        digest = fit_digest(self.dtype, self.points, self.peaks)
        return StoredFit(digest, dict(self.params), dict(self.efficiency))

    def predict_point(self, p: GemmPoint) -> float:
        """A prediction comparable with the measured point (its launch overhead added if it has one)."""
        return self.time(p.m, p.n, p.k, p.sms, p.scaling) + (self.params["launch_us"] * 1e-6 if p.single else 0.0)

    def substitute(self, scaling: str) -> str:
        """The measured scaling standing in for ``scaling`` (itself when measured)."""
        if scaling in self.efficiency:
            return scaling
        order = SCALINGS.get(self.dtype, (scaling,))
        if scaling in order:
            i = order.index(scaling)
            for j in sorted(range(len(order)), key=lambda j: (abs(j - i), j)):
                if order[j] in self.efficiency:
                    return order[j]
        return next(iter(self.efficiency))

    def time(self, m: int, n: int, k: int, sms: int, scaling: str, smooth: bool = True) -> float:
        def one(v: int) -> np.ndarray:
            return np.array([float(v)])

        base = float(self._model_time(one(m), one(n), one(k), one(sms), np.array([scaling], dtype=object))[0])
        if not smooth:
            return base
        return base * float(np.exp(self.correction(m, n, k, sms, scaling)))

    def correction(self, m: int, n: int, k: int, sms: int, scaling: str, leave_out: int | None = None) -> float:
        """The residual smoother at a shape: a Gaussian-weighted mean of the log residuals of the
        samples of the same (substituted) scaling, shrunk towards 0; ``leave_out`` drops one sample."""
        mask = self._scaling == self.substitute(scaling)
        if leave_out is not None:
            mask[leave_out] = False
        if not mask.any():
            return 0.0
        coords = np.log(np.array([m, n, k, sms], dtype=np.float64))
        d2 = np.sum((self._coords[mask] - coords) ** 2, axis=1)
        w = np.exp(-d2 / (2 * BANDWIDTH**2))
        return float(np.sum(w * self._residual[mask]) / (np.sum(w) + SHRINK))


class GemmModel:
    """Fitted GEMM models of every dtype in a set of samples."""

    def __init__(self, points: list[GemmPoint], peaks: Peaks, stored: dict[str, StoredFit] | None = None) -> None:
        self.peaks = peaks
        self.points = points
        by_dtype: dict[str, list[GemmPoint]] = {}
        for p in points:
            by_dtype.setdefault(p.dtype, []).append(p)
        stored = stored or {}
        self.fits = {dt: DtypeFit(dt, pts, peaks, stored.get(dt)) for dt, pts in by_dtype.items()}

    def has(self, dtype: str) -> bool:
        return dtype in self.fits

    def time(self, m: int, n: int, k: int, dtype: str, scaling: str, sms: int) -> float:
        return self.fits[dtype].time(m, n, k, sms, scaling)

    def describe(self) -> dict[str, dict[str, float]]:
        """Fitted parameters per dtype (``e:<scaling>`` the efficiencies)."""
        out: dict[str, dict[str, float]] = {}
        for dt, fit in self.fits.items():
            out[dt] = {**fit.params, **{f"e:{s}": e for s, e in fit.efficiency.items()}}
        return out


def _relative(pred: float, truth: float) -> float:
    return abs(pred - truth) / truth


def loso_errors(model: GemmModel, min_m: int = 1) -> list[float]:
    """Each sample predicted from the fit of its dtype with that sample's own residual removed
    from the smoother (the shared parameters keep it: a cheap, slightly optimistic figure)."""
    errors = []
    for fit in model.fits.values():
        for i, p in enumerate(fit.points):
            if p.m < min_m:
                continue
            base = fit.time(p.m, p.n, p.k, p.sms, p.scaling, smooth=False) + (
                fit.params["launch_us"] * 1e-6 if p.single else 0.0
            )
            corr = fit.correction(p.m, p.n, p.k, p.sms, p.scaling, leave_out=i)
            errors.append(_relative(base * float(np.exp(corr)), p.time_s))
    return errors


def lofo_errors(points: list[GemmPoint], peaks: Peaks, min_m: int = 512) -> dict[str, list[float]]:
    """Leave one family out: for every (dtype, family), refit the dtype without the family and predict
    its samples with M >= ``min_m``. Keys: ``dtype:scaling:family``. Families of one dtype that are
    its only family are skipped (nothing would be left to fit)."""
    out: dict[str, list[float]] = {}
    by_dtype: dict[str, list[GemmPoint]] = {}
    for p in points:
        by_dtype.setdefault(p.dtype, []).append(p)
    for dt, pts in by_dtype.items():
        families = sorted({p.family for p in pts})
        if len(families) < 2:
            continue
        for fam in families:
            train = [p for p in pts if p.family != fam]
            test = [p for p in pts if p.family == fam and p.m >= min_m]
            if not test or len(train) < 3:
                continue
            fit = DtypeFit(dt, train, peaks)
            for p in test:
                key = f"{dt}:{p.scaling}:{fam}"
                out.setdefault(key, []).append(_relative(fit.predict_point(p), p.time_s))
    return out


def summarise_lofo(errors: dict[str, list[float]]) -> dict[str, float]:
    """``gemm`` (pooled median), ``gemm:<dtype>:<scaling>`` medians, ``gemm:worst-family``."""
    if not errors:
        return {}
    pooled = [e for es in errors.values() for e in es]
    out = {"gemm": statistics.median(pooled)}
    groups: dict[str, list[float]] = {}
    families: dict[str, list[float]] = {}
    for key, es in errors.items():
        dt, sc, fam = key.split(":", 2)
        groups.setdefault(f"gemm:{dt}:{sc}", []).extend(es)
        families.setdefault(f"{dt}:{fam}", []).extend(es)
    out.update({k: statistics.median(v) for k, v in sorted(groups.items())})
    worst = max(families.items(), key=lambda kv: statistics.median(kv[1]))
    out[f"gemm:worst-family:{worst[0]}"] = statistics.median(worst[1])
    return out
