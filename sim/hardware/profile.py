"""Calibration profiles: measured (or imported, or datasheet) kernel timings with provenance.

A profile is a JSON file (``calibrate/profiles/*.json``) with this schema (version 1):

* ``schema_version``: 1
* ``device``: name, SM count, and what is known of clocks, driver, CUDA and torch versions
* ``source``: ``measured`` (microbenchmarks), ``trace`` (imported profiler trace) or ``datasheet``
* ``created`` (ISO date), ``git_revision`` of the twin that wrote it, ``tool`` (command line)
* ``peaks``: dense FP8 / BF16 TFLOPS and HBM TB/s used by the roofline
* ``efficiency``: fraction of peak assumed where no sample exists (datasheet profiles)
* ``ran`` / ``skipped``: what was measured, and what was not and why
* ``samples``: every raw sample: ``op`` (gemm, attention, memory, interference, alltoall, p2p,
  chunk), its ``params`` (shape, dtype, scaling, SMs ...; names in docs/calibration.md) and ``time_s``
* ``sources``: files the samples were read from (name, SHA-256, bytes) and ``method``, how they were
  measured (imported profiles: the measurement folder's README)
* ``loso_error``: the predictor's leave-one-shape-out median relative error per op;
  ``lofo_error``: the same when whole shape families are left out (``gemm`` M >= 512, per dtype and
  scaling, and the worst family)
* ``gemm_fit`` (written by every ``twin calibrate`` command): per dtype, the GEMM model's fitted
  parameters and efficiencies with the SHA-256 of what they were fitted on
  (:func:`sim.hardware.gemm_model.fit_digest`: the samples, the peaks, the fit's constants and
  version). A run uses them when the digest matches, and fits again when it does not (a hand-edited
  sample, another peak): the same floats either way, without importing scipy and solving at every run.

Loading validates the schema (strict keys) and, when asked, the device: a profile of another device
than the one requested is refused with a one-line error.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError, ValidationInfo, field_validator

from sim.errors import ScenarioError, kind_of
from sim.hardware.gpu import DEFAULT_EFFICIENCY, GpuSpec, datasheet_for
from sim.limits import MAX_BYTES, MIN_RATE
from sim.yamlio import MAX_JSON_BYTES, parse_json, read_text, validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Numbers strict (``strict=True``, ``StrictFloat``): one given as text ("1979") or as true/false is
# refused, not converted (true was read as 1 TFLOPS).


class DeviceInfo(_Strict):
    name: str = Field(min_length=1)
    sms: int = Field(ge=1, le=1024, strict=True)
    clock_mhz: float | None = Field(None, gt=0, strict=True)
    driver: str | None = None
    cuda: str | None = None
    torch: str | None = None


class Peaks(_Strict):
    fp8_dense_TFLOPS: float = Field(ge=MIN_RATE, le=1e9, strict=True)
    bf16_dense_TFLOPS: float = Field(ge=MIN_RATE, le=1e9, strict=True)
    hbm_TBps: float = Field(ge=MIN_RATE, le=1e9, strict=True)


# Parameters the cost model reads as numbers: a profile that gives one as text is refused when loaded,
# not when a prediction first reads it.
NUMERIC_PARAMS = frozenset(
    "m n k sms heads seq qk_dim v_dim causal bytes bytes_copied tokens hidden compute_sms comm_sms copy_bytes "
    "alone_s hbm_rate_Bps launch_us gpus nodes count algbw_GBps busbw_GBps world experts m_total".split()
)
# Parameters the cost model reads as names: a number there is refused when loaded.
TEXT_PARAMS = frozenset("dtype scaling phase kernel mode collective placement family timing".split())
# What the cost model reads of each op's samples without a default: a sample without them is refused
# when loaded (not a KeyError at the first prediction, nor a sample silently left out of a fit).
# A GEMM needs ``m``, or ``m_total`` and ``experts`` (a grouped GEMM, kept as data).
REQUIRED_PARAMS = {
    "gemm": ("n", "k", "dtype"),
    "attention": ("heads", "seq", "phase"),
    "memory": ("bytes", "kernel"),
    "interference": ("kernel", "alone_s", "compute_sms", "comm_sms", "copy_bytes"),
    "collective": ("collective", "gpus", "nodes", "bytes"),
    "alltoall": ("bytes",),
    "p2p": ("bytes",),
}
INTERFERENCE_KERNELS = ("gemm", "copy")
# Where a sample came from and what it is called, on any op: kept, never computed with.
PROVENANCE_PARAMS = frozenset("annotation source op family".split())
# Every other parameter each op's samples may give: what the cost model reads, and what the calibration
# tools (calibrate/: the benches, the trace, import-measurements, import-nccl-tests) write beside it.
# Any other key is refused when loaded: an attention sample's `casual: 0` (for `causal`) was taken as
# causal without a word, and the step moved 5% from the one the user meant.
KNOWN_PARAMS: dict[str, frozenset[str]] = {
    op: frozenset(keys.split())
    for op, keys in {
        "gemm": "m n k sms dtype scaling shape timing experts m_total",
        "attention": "heads seq qk_dim v_dim causal phase sms",
        "memory": "kernel bytes bytes_copied tokens hidden sms kernels",
        "interference": "kernel alone_s compute_sms comm_sms copy_bytes mode gemm m n k dtype scaling hbm_rate_Bps",
        "collective": "collective bytes count type gpus nodes placement redop root algbw_GBps busbw_GBps world",
        "alltoall": "bytes world backend gpus nodes",
        "p2p": "bytes world backend",
        "chunk": "stream compute_sms comm_sms stat layers",
    }.items()
}
# What the cost model takes for an attention sample's head dims and mask where it does not give them:
# DeepSeek-V3's MLA (a query/key head of 128 + 64 RoPE dims, a value head of 128), causal.
ATTENTION_DEFAULTS: dict[str, int] = {"qk_dim": 192, "v_dim": 128, "causal": 1}


def attention_param(params: dict[str, float | int | str], key: str) -> int:
    """An attention sample's ``qk_dim``, ``v_dim`` or ``causal`` as the cost model reads it: given, or
    :data:`ATTENTION_DEFAULTS`."""
    return int(params.get(key, ATTENTION_DEFAULTS[key]))


# The memory class of an FP8 quantisation written with torch ops (amax per tile, scale, cast: several
# unfused passes, about 7% of HBM bandwidth on an H100): what ../shared/measurements' fp8_cast table and
# `twin calibrate run` time. It is not the recipe's cast: DeepSeek's kernels (its trace: 1-3 TB/s on the
# H800) and Transformer Engine's are fused single passes, which a profile without their samples times
# as the copies its HBM samples measure (sim.hardware.costmodel: a fused streaming kernel moves its
# bytes as a copy does). Kept under its own name, for reference; the layer model's casts are "fp8-cast".
TORCH_FP8_CAST = "fp8-cast-torch"


# Of those, the counts the cost model reads as whole numbers (``int(...)``: a GEMM's and an attention's
# dimensions, SMs, a collective's GPUs and nodes): a fraction is refused, and so is one below the minimum
# (0.5 or 1e-300 was truncated to 0, and the GEMM fit took its logarithm: a traceback from scipy).
WHOLE_PARAMS = {
    **dict.fromkeys(
        "m n k sms heads seq qk_dim v_dim tokens hidden compute_sms gpus nodes world experts m_total".split(), 1
    ),
    **dict.fromkeys(("comm_sms", "causal"), 0),
}
NONNEGATIVE_PARAMS = frozenset("bytes bytes_copied copy_bytes".split())  # byte counts may be 0 or fractional
# times and rates the cost model divides by: above 0 (an interference sample's alone_s of 0 was a
# ZeroDivisionError; of -1, a slowdown below 0 that shortened the step)
POSITIVE_PARAMS = frozenset("alone_s hbm_rate_Bps".split())
SM_PARAMS = ("sms", "compute_sms", "comm_sms")  # at most the device's SMs


def _refuse_booleans(values: object) -> object:
    """A mapping's true or false where a number goes, refused naming its key (pydantic reads true as 1)."""
    for key, value in values.items() if isinstance(values, dict) else ():
        if isinstance(value, bool):
            raise ValueError(f"{key}: {value!r} is not a number (give 1 or 0)")
    return values


def _what_param(key: str) -> str:
    """What a sample's parameter ``key`` must be, as an error says it."""
    if key in TEXT_PARAMS:
        return "text"
    if key in WHOLE_PARAMS:
        return f"a whole number >= {WHOLE_PARAMS[key]}"
    return "a finite number" if key in NUMERIC_PARAMS else "a number or text"


def _refuse_non_scalars(values: object) -> object:
    """A sample's parameter that is neither a number nor text (a list, a mapping, null, true), refused
    naming its key and what it must be (pydantic named a member of its union: ``family.float``)."""
    _refuse_booleans(values)
    for key, value in values.items() if isinstance(values, dict) else ():
        if not isinstance(value, int | float | str):
            raise ValueError(f"{key}: must be {_what_param(key)}, got {value!r}")
    return values


def _check_known(op: str, key: str) -> None:
    """``key`` is a parameter ``op``'s samples may give (:data:`KNOWN_PARAMS`); a ValueError ``KEY: ...``
    naming the nearest known one otherwise."""
    known = KNOWN_PARAMS.get(op)
    if known is None or key in known or key in PROVENANCE_PARAMS:
        return
    near = difflib.get_close_matches(key, sorted(known | PROVENANCE_PARAMS), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(f"{key}: not a parameter of {op} samples{hint}; they take {', '.join(sorted(known))}")


def _check_param(key: str, value: float | int | str) -> None:
    """One parameter of a sample, of the type and range the cost model reads it as; a ValueError
    ``KEY: must be ...`` otherwise."""
    if key in TEXT_PARAMS and not isinstance(value, str):
        raise ValueError(f"{key}: must be text, got {value!r}")
    if key not in NUMERIC_PARAMS:
        return
    if isinstance(value, int) and abs(value) > sys.float_info.max:  # (math.isfinite raised OverflowError)
        raise ValueError(f"{key}: must be {_what_param(key)}, got a whole number of {len(str(abs(value))):,} digits")
    if isinstance(value, str) or not math.isfinite(value):
        raise ValueError(f"{key}: must be {_what_param(key)}, got {value!r}")
    if key in WHOLE_PARAMS and (value != int(value) or value < WHOLE_PARAMS[key]):
        raise ValueError(f"{key}: must be {_what_param(key)}, got {value!r}")
    if key in NONNEGATIVE_PARAMS and value < 0:
        raise ValueError(f"{key}: must be 0 or more, got {value!r}")
    if key in NONNEGATIVE_PARAMS and value > MAX_BYTES:  # (1e30 bytes moved a step by 3 s)
        raise ValueError(f"{key}: must be at most {MAX_BYTES:g} bytes (sim.limits.MAX_BYTES), got {value!r}")
    if key in POSITIVE_PARAMS and not value > 0:
        raise ValueError(f"{key}: must be more than 0, got {value!r}")


class Sample(_Strict):
    op: Literal["gemm", "attention", "memory", "interference", "alltoall", "p2p", "collective", "chunk"]
    params: dict[str, float | int | str]
    time_s: float = Field(gt=0, le=1e9, strict=True)

    _scalars = field_validator("params", mode="before")(_refuse_non_scalars)

    @field_validator("params")
    @classmethod
    def _numbers(cls, params: dict[str, float | int | str], info: ValidationInfo) -> dict[str, float | int | str]:
        op = info.data.get("op")
        for key, value in params.items():
            _check_param(key, value)
            _check_known(str(op), key)
        for key in REQUIRED_PARAMS.get(op or "", ()):
            if key not in params:
                raise ValueError(f"{key} is missing ({op} samples have {', '.join(REQUIRED_PARAMS[op or ''])})")
        if op == "gemm" and "m" not in params and not ("m_total" in params and "experts" in params):
            raise ValueError("m is missing (gemm samples have m, or m_total and experts for a grouped GEMM)")
        from sim.hardware.costmodel import PHASES
        from sim.hardware.gemm_model import SCALING_ALIASES, SCALINGS, canonical_scaling

        dtype, phase = params.get("dtype"), params.get("phase")
        if op in ("gemm", "interference") and dtype is not None and dtype not in SCALINGS:
            raise ValueError(f"dtype: unknown dtype {dtype!r}; choose from {', '.join(SCALINGS)}")
        scaling = params.get("scaling")
        if op == "gemm" and isinstance(dtype, str) and isinstance(scaling, str):
            known = SCALINGS[dtype]
            if canonical_scaling(dtype, scaling) not in known:
                named = ", ".join(sorted({*known, *(a for a, c in SCALING_ALIASES.items() if a and c in known)}))
                raise ValueError(f"scaling: unknown scaling {scaling!r} for {dtype}; choose from {named}")
        if op == "interference" and params["kernel"] not in INTERFERENCE_KERNELS:
            kernel = params["kernel"]
            raise ValueError(f"kernel: {kernel!r} is not an interference kernel ({', '.join(INTERFERENCE_KERNELS)})")
        if op == "memory" and params["kernel"] == "copy" and not float(params["bytes"]) > 0:
            # (the HBM rate is the best copy's bytes / time: a copy of 0 bytes made it 0, and every
            # interference and SM-share figure divided by it)
            raise ValueError(f"bytes: a copy's bytes must be more than 0, got {params['bytes']!r}")
        if op == "attention" and phase is not None and phase not in PHASES:
            raise ValueError(f"phase: unknown phase {phase!r}; choose from {', '.join(PHASES)}")
        return params


class Skipped(_Strict):
    what: str
    why: str


class SourceFile(_Strict):
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0, strict=True)


class GemmFitEntry(_Strict):
    """A stored GEMM fit (:mod:`sim.hardware.gemm_model`): its parameters and efficiencies within the
    bounds the fit itself keeps to (a hand-edited or damaged fit would predict any time at all)."""

    inputs_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: dict[str, StrictFloat]
    efficiency: dict[str, StrictFloat]

    _no_booleans = field_validator("params", "efficiency", mode="before")(_refuse_booleans)

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, float]) -> dict[str, float]:
        from sim.hardware.gemm_model import LOWER, SHARED, UPPER

        missing = [k for k in SHARED if k not in params]
        if missing:
            raise ValueError(f"{missing[0]} is missing (a fit has {', '.join(SHARED)})")
        for key, value in params.items():
            if key not in LOWER:
                raise ValueError(f"{key} is not a parameter of the fit ({', '.join(LOWER)})")
            if not LOWER[key] <= value <= UPPER[key]:
                raise ValueError(f"{key}: {value!r} is outside the fit's bounds [{LOWER[key]:g}, {UPPER[key]:g}]")
        return params

    @field_validator("efficiency")
    @classmethod
    def _efficiency(cls, efficiency: dict[str, float]) -> dict[str, float]:
        from sim.hardware.gemm_model import EFFICIENCY_RANGE

        lo, hi = EFFICIENCY_RANGE
        for key, value in efficiency.items():
            if not lo <= value <= hi:
                raise ValueError(f"{key}: {value!r} is outside the fit's bounds [{lo:g}, {hi:g}]")
        return efficiency


class Profile(_Strict):
    schema_version: Literal[1] = 1
    device: DeviceInfo
    source: Literal["measured", "trace", "datasheet"]
    created: str
    git_revision: str = "unknown"
    tool: str = ""
    peaks: Peaks
    efficiency: float = Field(
        DEFAULT_EFFICIENCY, gt=0, le=1, strict=True, description="assumed fraction of peak without samples"
    )
    ran: list[str] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    samples: list[Sample] = Field(default_factory=list)
    sources: list[SourceFile] = Field(default_factory=list)
    method: str = ""
    loso_error: dict[str, StrictFloat] = Field(default_factory=dict)
    lofo_error: dict[str, StrictFloat] = Field(default_factory=dict)
    gemm_fit: dict[str, GemmFitEntry] = Field(default_factory=dict)


PROFILES_DIR = Path(__file__).resolve().parents[2] / "calibrate" / "profiles"
DEFAULT_PROFILE = PROFILES_DIR / "h800.json"  # H100 measurements plus DeepSeek's H800 trace kernels


# Profiles already validated, by the SHA-256 of their text: loading a scenario checks its profile,
# assembling it reads the profile again, and a sweep's worker does both at every point; parsing and
# validating the default profile (5,700 lines, 700 samples) costs about 65 ms each time. Keyed by
# content, not by path and modification time (a file rewritten within the clock's tick would read
# stale); profiles are frozen, so one object serves every caller. A few entries: the profiles of one
# run or sweep.
_VALIDATED: dict[str, Profile] = {}
_VALIDATED_MAX = 8


def load_profile(path: str | Path, device: str | None = None) -> Profile:
    """Read and validate a profile; ``device`` (e.g. ``H800``) refuses profiles of other devices."""
    path = Path(path)
    text = read_text(path, "profile", MAX_JSON_BYTES)
    digest = hashlib.sha256(text.encode()).hexdigest()
    profile = _VALIDATED.get(digest)
    if profile is None:
        profile = _validated(parse_json(text, str(path)), path)
        if len(_VALIDATED) >= _VALIDATED_MAX:
            del _VALIDATED[next(iter(_VALIDATED))]
        _VALIDATED[digest] = profile
    if device is not None and profile.device.name.lower() != device.lower():
        raise ScenarioError(
            "device.name", f"profile is for {profile.device.name!r}, but {device!r} was requested", str(path)
        )
    return profile


def check_device_sms(path: str | Path, profile: Profile, gpu: GpuSpec) -> None:
    """Refuse a profile whose ``device.sms`` is not the SM count of ``gpu``, the datasheet a run takes
    for its device (an H800 where its name has none), naming the profile file and that key: the SM
    split, and every SM-limited time, are worked out on the datasheet's SMs."""
    sms = profile.device.sms
    if sms == gpu.sms:
        return
    name = profile.device.name
    taken = "" if datasheet_for(name) is gpu else f" (no datasheet for {name!r}: taken as an {gpu.name})"
    message = f"{sms} SMs, but the datasheet of {gpu.name} has {gpu.sms}{taken} (sim/hardware/gpu.py)"
    raise ScenarioError("device.sms", message, str(path))


def _validated(data: object, path: Path) -> Profile:
    if not isinstance(data, dict):
        raise ScenarioError("", f"a profile is a JSON object, got {kind_of(data)}", str(path))
    try:
        profile = Profile.model_validate(data)
    except ValidationError as err:
        e = _param_named(validation_error(err, Profile), data)
        raise ScenarioError(e.key_path, e.message, str(path)) from None
    _check_fits(profile, path)
    sms = profile.device.sms
    for i, sample in enumerate(profile.samples):
        for key in SM_PARAMS:
            value = sample.params.get(key)
            if isinstance(value, int | float) and value > sms:
                message = f"{value!r} is more SMs than the device's {sms} (device.sms)"
                raise ScenarioError(f"samples[{i}].params.{key}", message, str(path))
    _check_roofline(profile, path)
    return profile


def _check_roofline(profile: Profile, path: Path) -> None:
    """No sample's time beats the profile's own peaks by more than the slack
    (:mod:`sim.hardware.roofline`), on a device with a datasheet: a GEMM sample a million times too fast
    (a unit slip) made a run report an MFU of 1.18."""
    from sim.hardware.roofline import ROOFLINE_SLACK, roofline_times, too_fast

    gpu = datasheet_for(profile.device.name)
    if gpu is None:
        # (a CPU's or an unknown GPU's `calibrate run` takes its peaks from its own best samples, on all
        # its cores and in one dtype: a sample on fewer cores, or attention, may pass them, and no
        # datasheet says what is possible)
        return
    for i, sample in enumerate(profile.samples):
        for j, (key, seconds, b) in enumerate(roofline_times(sample, profile.peaks, profile.device.sms)):
            if not too_fast(seconds, b):
                continue
            peak = b.peak / 1e12
            real = roofline_times(sample, gpu, profile.device.sms)[j][2]  # the same work at the datasheet's peaks
            if not too_fast(seconds, real):  # the time is one the GPU can do: the profile's peak is off
                given = getattr(profile.peaks, b.peak_key)
                message = (
                    f"{given:g} {b.rate_unit}: samples[{i}] runs {b.least_s / seconds:.3g}x faster than it allows "
                    f"({b.work:.4g} {b.what} in {seconds:.4g} s{b.on}), within the {gpu.name} datasheet's "
                    f"{getattr(gpu, b.peak_key):g} {b.rate_unit}; check the unit"
                )
                raise ScenarioError(f"peaks.{b.peak_key}", message, str(path))
            message = (
                f"{seconds:.4g} s is {b.least_s / seconds:.3g}x faster than the profile's {b.bound} allows "
                f"({b.work:.4g} {b.what} at its {peak:.4g} {b.rate_unit}{b.on} take at least {b.least_s:.4g} s; "
                f"more than {ROOFLINE_SLACK:g}x under that is no kernel); check the unit"
            )
            raise ScenarioError(f"samples[{i}].{key}", message, str(path))


def _param_named(e: ScenarioError, data: dict[str, object]) -> ScenarioError:
    """A sample's ``params`` refused for one of its keys (``m: must be ...``): the key joins the key
    path (``samples[12].params.m: must be ...``), as a scenario's keys do."""
    at = re.fullmatch(r"samples\[(\d+)\]\.params", e.key_path)
    named = re.match(r"(\w+): (.*)", e.message, re.S)
    if at is None or named is None:
        return e
    samples = data.get("samples")
    sample = samples[int(at[1])] if isinstance(samples, list) and int(at[1]) < len(samples) else None
    params = sample.get("params") if isinstance(sample, dict) else None
    if not isinstance(params, dict) or named[1] not in params:
        return e
    return ScenarioError(f"{e.key_path}.{named[1]}", named[2])


def _check_fits(profile: Profile, path: Path) -> None:
    """The stored fit's dtypes and scalings, and the held-out errors (0 or more), as the twin knows them."""
    from sim.hardware.gemm_model import SCALINGS

    for name in ("loso_error", "lofo_error"):
        for key, value in getattr(profile, name).items():
            if value < 0:
                raise ScenarioError(f"{name}.{key}", f"{value!r} is below 0 (a median relative error)", str(path))
    for dtype, fit in profile.gemm_fit.items():
        if dtype not in SCALINGS:
            raise ScenarioError(f"gemm_fit.{dtype}", f"unknown dtype; choose from {', '.join(SCALINGS)}", str(path))
        for scaling in fit.efficiency:
            if scaling not in SCALINGS[dtype]:
                message = f"not a scaling of {dtype} ({', '.join(SCALINGS[dtype])})"
                raise ScenarioError(f"gemm_fit.{dtype}.efficiency.{scaling}", message, str(path))


def dump_profile(profile: Profile) -> str:
    return profile.model_dump_json(indent=2) + "\n"
