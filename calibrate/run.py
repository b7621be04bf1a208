"""``twin calibrate run``: microbenchmarks -> a profile with provenance and the predictor's error."""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from calibrate.bench import (
    Bench,
    bench_attention,
    bench_gemm,
    bench_grouped_gemm,
    bench_memory,
    bench_sm_limited_gemm,
    device_description,
)
from calibrate.comm import run_local
from calibrate.profiles import git_revision
from calibrate.shapes import Preset
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import DeviceInfo, Peaks, Profile, Sample, Skipped

# Datasheet dense peaks (TFLOPS FP8, BF16; HBM TB/s) for the GPUs the twin targets (REFERENCE.md
# section 3 for H800 / H100 SXM; H200 keeps H100's compute with 4.8 TB/s HBM3e).
DATASHEET = {"H800": (1979.0, 989.0, 3.35), "H100": (1979.0, 989.0, 3.35), "H200": (1979.0, 989.0, 4.8)}


def _measured_peaks(samples: list[Sample]) -> Peaks:
    """Best measured throughput as the peak (CPUs and unknown GPUs have no datasheet entry here)."""

    def best(dtype: str) -> float:
        rates = [
            2 * s.params["m"] * s.params["n"] * s.params["k"] / s.time_s / 1e12  # type: ignore[operator]
            for s in samples
            if s.op == "gemm" and s.params.get("dtype") == dtype and "m" in s.params
        ]
        return max(rates, default=1e-6)

    hbm = [float(s.params["bytes"]) / s.time_s / 1e12 for s in samples if s.op == "memory"]
    return Peaks(fp8_dense_TFLOPS=best("fp8") or 1e-6, bf16_dense_TFLOPS=best("bf16"), hbm_TBps=max(hbm, default=1e-6))


def run_calibration(
    device: str = "cpu",
    preset: str = "tiny",
    world: int = 2,
    comm: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Run every available benchmark on ``device`` and return the profile (``progress`` is told
    what is being timed)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but torch sees no GPU")
    bench = Bench(device=device, preset=Preset.named(preset), progress=progress)
    torch.manual_seed(0)
    for step in (bench_gemm, bench_grouped_gemm, bench_attention, bench_memory, bench_sm_limited_gemm):
        step(bench)
    gpus = torch.cuda.device_count() if bench.cuda else 0
    if comm and world >= 2 and bench.cuda and gpus < world:
        # gloo on the host would put CPU numbers in a GPU profile
        why = f"{world} processes need {world} GPUs for NCCL, this machine has {gpus}; see docs/calibration.md"
        bench.skipped.append(Skipped(what="p2p and all-to-all", why=why))
    elif comm and world >= 2:
        bench.tell(f"p2p and all-to-all among {world} processes")
        with tempfile.TemporaryDirectory() as tmp:
            for s in run_local(world, str(Path(tmp) / "comm.json")):
                bench.samples.append(Sample.model_validate(s))
        bench.ran.append(f"p2p and all-to-all, {world} local processes")
    else:
        bench.skipped.append(Skipped(what="p2p and all-to-all", why="disabled or a single process"))
    name, sms, facts = device_description(device)
    peaks = DATASHEET.get(name)
    profile = Profile(
        device=DeviceInfo(name=name, sms=sms, **facts),
        source="measured",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        git_revision=git_revision(),
        tool=" ".join(["twin calibrate run", *sys.argv[1:]]) if sys.argv else "run_calibration",
        peaks=Peaks(fp8_dense_TFLOPS=peaks[0], bf16_dense_TFLOPS=peaks[1], hbm_TBps=peaks[2])
        if peaks
        else _measured_peaks(bench.samples),
        ran=bench.ran,
        skipped=bench.skipped,
        samples=bench.samples,
    )
    loso = CostModel(profile).loso_error()
    return profile.model_copy(update={"loso_error": {} if loso is None else {"gemm": loso}})


def merge_comm_samples(profile: Profile, path: str | Path) -> Profile:
    """Add samples written by ``torchrun -m calibrate.comm`` (multi-GPU or multi-node runs)."""
    extra = [Sample.model_validate(s) for s in json.loads(Path(path).read_text())]
    return profile.model_copy(update={"samples": [*profile.samples, *extra]})
