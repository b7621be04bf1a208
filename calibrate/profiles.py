"""Building profiles without a GPU: from a datasheet, or from a PyTorch-profiler trace.

Both record provenance (source, date, the twin's git revision, the command) in the profile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from calibrate.trace import annotation_timings, kernel_span_us, mean_by_name
from sim.errors import ScenarioError, shown
from sim.hardware.gpu import DEEPSEEK_COMPUTE_SMS, DEFAULT_EFFICIENCY, H800, GpuSpec
from sim.hardware.profile import DeviceInfo, Peaks, Profile, Sample, Skipped, SourceFile


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _peaks(gpu: GpuSpec) -> Peaks:
    return Peaks(fp8_dense_TFLOPS=gpu.fp8_dense_TFLOPS, bf16_dense_TFLOPS=gpu.bf16_dense_TFLOPS, hbm_TBps=gpu.hbm_TBps)


def datasheet_profile(gpu: GpuSpec = H800, efficiency: float = DEFAULT_EFFICIENCY, tool: str = "") -> Profile:
    """Peaks from the datasheet and an assumed efficiency (an assumption, not a measurement)."""
    return Profile(
        device=DeviceInfo(name=gpu.name, sms=gpu.sms),
        source="datasheet",
        created=dt.date.today().isoformat(),
        git_revision=git_revision(),
        tool=tool,
        peaks=_peaks(gpu),
        efficiency=efficiency,
        skipped=[Skipped(what="all microbenchmarks", why="datasheet profile: no measurement")],
    )


def trace_source(trace: str | Path) -> SourceFile:
    """The provenance of a trace file (its name, SHA-256 and size) as a profile's ``sources`` lists it."""
    from sim.yamlio import MAX_TRACE_BYTES, read_bytes

    data = read_bytes(trace, "trace", MAX_TRACE_BYTES)
    return SourceFile(name=Path(trace).name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def trace_gpu(trace: str | Path, data: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """(the datasheet name, the name as printed) of the GPU a profiler trace's ``deviceProperties`` name
    (``NVIDIA H800`` -> H800), or (None, "") where it has none or names none the twin has a datasheet
    for; entries naming different GPUs (one the twin knows beside another) are refused, as the Rank
    lines of an nccl-tests log are (:mod:`calibrate.nccl_tests`). ``data``: the trace as
    :func:`calibrate.trace.read_trace` read it, where the caller has it (``trace`` names it in errors)."""
    from calibrate.trace import read_trace
    from sim.hardware.gpu import datasheet_for

    props = (data if data is not None else read_trace(trace)).get("deviceProperties")
    if props is None:
        return None, ""
    if not isinstance(props, list) or not all(isinstance(p, dict) for p in props):
        raise ScenarioError(
            "deviceProperties", "a list of each GPU's properties (JSON objects with a name)", str(trace)
        )
    names = {i: p["name"] for i, p in enumerate(props) if isinstance(p.get("name"), str)}
    known = {i: datasheet_for(name) for i, name in names.items()}
    first_of: dict[str | None, int] = {}  # a datasheet name (None: none) -> the first entry naming it
    for i, gpu in known.items():
        first_of.setdefault(gpu.name if gpu else None, i)
    if len(first_of) > 1:  # (one at least is a GPU the twin knows)
        a, b = sorted(first_of.values())[:2]
        raise ScenarioError(
            f"deviceProperties[{b}]",
            f"names {shown(names[b])!r}, entry {a} {shown(names[a])!r}: one kind of GPU per trace",
            str(trace),
        )
    gpu = next(iter(known.values()), None)
    return (gpu.name, names[min(known)]) if gpu else (None, "")


def profile_from_trace(
    trace: str | Path,
    gpu: GpuSpec = H800,
    compute_sms: int = DEEPSEEK_COMPUTE_SMS,
    layers_per_chunk: int | None = None,
    tool: str = "",
    base: Profile | None = None,
    source: SourceFile | None = None,
    data: dict[str, Any] | None = None,
) -> Profile:
    """A profile of what DeepSeek's trace says, optionally on top of a measured ``base`` profile;
    ``source``: the trace's :func:`trace_source`, and ``data`` its JSON as
    :func:`calibrate.trace.read_trace` read it, where the caller has them already (it is read once).

    * ``chunk`` samples: per-annotation GPU times (per layer, mean over the trace) and the pair's
      kernel span, for reference (the chunk model never reads them);
    * per-op samples (``calibrate.trace_calibration``): every kernel matched to the layer model's
      ops by order, GEMMs, attention, memory-bound classes and tiny kernels with their mean
      processor-sharing effective times at ``compute_sms`` = 112 SMs (132 - 20 for DeepEP).

    With ``base`` (e.g. the H100 measurements: the H800 keeps the H100's SMs, clocks and HBM), the
    result is ``base`` plus the trace's samples, for ``gpu``; where both hold the same thing (an
    attention shape, a memory-bound kernel class) the trace's samples replace the base's, since they
    are DeepSeek's own kernels.
    """
    from calibrate.trace import read_trace
    from calibrate.trace_calibration import match_ops, profile_samples

    events = data if data is not None else read_trace(trace)  # (parsed once; ``trace`` names the file)
    span_us = kernel_span_us(events)
    if not span_us > 0:
        raise ScenarioError(
            "traceEvents", "no GPU kernel events (cat 'kernel') with a duration: not a trace of a GPU run", str(trace)
        )
    if span_us * 1e-6 > MAX_SAMPLE_S:
        raise ScenarioError(
            "traceEvents",
            f"its kernels span {span_us * 1e-6:g} s from the first start to the last end, over a profile's "
            f"{MAX_SAMPLE_S:g} s; the timestamps (ts, microseconds) are not of one run",
            str(trace),
        )
    timings = annotation_timings(events)
    if not timings:  # (its method would say "mean over the 0 layers" of one sample)
        raise ScenarioError(
            "traceEvents",
            "no layer annotations (events of cat 'user_annotation' such as attn(F) over the kernels): "
            "not a profiler trace of a model's layers",
            str(trace),
        )
    means = mean_by_name(timings)
    # the layers the pair spans: the most times one layer annotation occurs (DeepSeek's trace: 4 each)
    counts: dict[str, int] = {}
    for t in timings:
        counts[t.name] = counts.get(t.name, 0) + 1
    name, seen = max(sorted(counts.items()), key=lambda kv: kv[1], default=("", 0))
    if layers_per_chunk is not None and layers_per_chunk != seen:
        raise ScenarioError(
            "--layers", f"the trace's annotations give {seen} layers ({name!r} {seen} times), got {layers_per_chunk}"
        )
    samples = []
    stat = "mean per-layer wall"
    for name, t in sorted(means.items()):
        if t.compute_wall_us > 0:
            params = {"annotation": name, "stream": "compute", "compute_sms": compute_sms, "stat": stat}
            samples.append(Sample(op="chunk", params=params, time_s=t.compute_wall_us * 1e-6))
        if t.comm_wall_us > 0:
            params = {"annotation": name, "stream": "deepep", "comm_sms": gpu.sms - compute_sms, "stat": stat}
            samples.append(Sample(op="chunk", params=params, time_s=t.comm_wall_us * 1e-6))
    pair = {"annotation": "F&B chunk pair", "layers": seen, "stat": "kernel span"}
    samples.append(Sample(op="chunk", params=pair, time_s=span_us * 1e-6))
    op_samples = [_sample(x, trace) for x in profile_samples(match_ops(events), compute_sms)]
    source = trace_source(trace) if source is None else source
    ran = [f"trace import of {Path(trace).name}: {len(op_samples)} op samples (kernels matched to the layer model)"]
    if base is None:
        return Profile(
            device=DeviceInfo(name=gpu.name, sms=gpu.sms),
            source="trace",
            created=dt.date.today().isoformat(),
            git_revision=git_revision(),
            tool=tool or f"twin calibrate import-trace {Path(trace).name}",
            peaks=_peaks(gpu),
            ran=ran,
            skipped=[Skipped(what="GEMM shape sweep", why="a trace has only the model's own shapes")],
            samples=[*samples, *op_samples],
            sources=[source],
            method=TRACE_METHOD,
        )
    if base.device.sms != gpu.sms:
        raise ScenarioError("--base", f"the base profile's GPU has {base.device.sms} SMs, the {gpu.name} {gpu.sms}")
    replaced = {_same_key(s) for s in op_samples}
    kept = [s for s in base.samples if _same_key(s) not in replaced]
    profile = base.model_copy(
        update={
            "device": DeviceInfo(name=gpu.name, sms=gpu.sms),
            "created": dt.date.today().isoformat(),
            "git_revision": git_revision(),
            "tool": tool,
            "peaks": _peaks(gpu),
            "ran": [*base.ran, *ran],
            "samples": [*kept, *samples, *op_samples],
            "sources": [*base.sources, source],
            "method": f"{base.method}\n\n{TRACE_METHOD}",
        }
    )
    return with_errors(profile)


MAX_SAMPLE_S = 1e9  # a profile's bound on a sample's time (sim.hardware.profile.Sample)


def _sample(x: dict[str, Any], trace: str | Path) -> Sample:
    """A per-op sample of the trace; a time a profile cannot hold (its kernels took no time) is one line
    naming the annotation and the op, not pydantic's."""
    t = x["time_s"]
    if not 0 < t <= MAX_SAMPLE_S:
        where = f"{x['params'].get('annotation')} op {x['params'].get('op')}"
        raise ScenarioError(
            "traceEvents",
            f"{where}: its kernels' mean time is {t:g} s; a profile's sample takes more than 0 and at most "
            f"{MAX_SAMPLE_S:g} s (are the kernels' durations, dur, in microseconds?)",
            str(trace),
        )
    return Sample.model_validate(x)


TRACE_METHOD = (
    "DeepSeek's H800 profiler trace (deepseek-ai/profile-data train.json): every kernel of every layer annotation "
    "matched by launch order to the layer model's ops (sim.model.layer), times are processor-sharing effective "
    "kernel times at 112 compute SMs, mean over the 4 layers (calibrate.trace_calibration)."
)


def _same_key(s: Sample) -> tuple[object, ...]:
    """What makes a base sample and a trace sample the same measurement (replaced by the trace's)."""
    p = s.params
    if s.op == "attention":
        return (
            "attention",
            p.get("heads"),
            p.get("seq"),
            p.get("qk_dim"),
            p.get("v_dim"),
            p.get("causal"),
            p.get("phase"),
        )
    if s.op == "memory":
        return ("memory", p.get("kernel"))
    return (id(s),)


def with_errors(profile: Profile) -> Profile:
    """The profile with the GEMM predictor's errors filled in: leave one sample out (``loso_error``:
    ``gemm`` all samples, ``gemm:m>=512``) and leave one shape family out (``lofo_error``)."""
    from sim.hardware.costmodel import CostModel

    model = CostModel(profile)
    loso: dict[str, float] = {}
    for key, min_m in (("gemm", 1), ("gemm:m>=512", 512)):
        value = model.loso_error(min_m=min_m)
        if value is not None:
            loso[key] = value
    return profile.model_copy(update={"loso_error": loso, "lofo_error": model.lofo_error()})
