"""Building profiles without a GPU: from a datasheet, or from a PyTorch-profiler trace.

Both record provenance (source, date, the twin's git revision, the command) in the profile.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from calibrate.trace import annotation_timings, kernel_span_us, mean_by_name
from sim.hardware.gpu import DEFAULT_EFFICIENCY, H800, GpuSpec
from sim.hardware.profile import DeviceInfo, Peaks, Profile, Sample, Skipped


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


def profile_from_trace(
    trace: str | Path, gpu: GpuSpec = H800, compute_sms: int = 112, layers_per_chunk: int = 4, tool: str = ""
) -> Profile:
    """Per-annotation GPU times of a trace as ``chunk`` samples (per layer, mean over the trace).

    For DeepSeek's H800 trace the compute annotations ran their GEMMs on ``compute_sms`` = 112 SMs
    (132 - 20 for DeepEP) and one chunk holds ``layers_per_chunk`` = 4 MoE layers.
    """
    means = mean_by_name(annotation_timings(trace))
    samples = []
    stat = "mean per-layer wall"
    for name, t in sorted(means.items()):
        if t.compute_wall_us > 0:
            params = {"annotation": name, "stream": "compute", "compute_sms": compute_sms, "stat": stat}
            samples.append(Sample(op="chunk", params=params, time_s=t.compute_wall_us * 1e-6))
        if t.comm_wall_us > 0:
            params = {"annotation": name, "stream": "deepep", "comm_sms": gpu.sms - compute_sms, "stat": stat}
            samples.append(Sample(op="chunk", params=params, time_s=t.comm_wall_us * 1e-6))
    pair = {"annotation": "F&B chunk pair", "layers": layers_per_chunk, "stat": "kernel span"}
    samples.append(Sample(op="chunk", params=pair, time_s=kernel_span_us(trace) * 1e-6))
    return Profile(
        device=DeviceInfo(name=gpu.name, sms=gpu.sms),
        source="trace",
        created=dt.date.today().isoformat(),
        git_revision=git_revision(),
        tool=tool or f"twin calibrate import-trace {Path(trace).name}",
        peaks=_peaks(gpu),
        ran=[f"trace import of {Path(trace).name}"],
        skipped=[Skipped(what="GEMM shape sweep", why="a trace has kernel times but not their shapes")],
        samples=samples,
    )


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
