"""``twin calibrate run``: microbenchmarks -> a profile with provenance and the predictor's error."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from calibrate.bench import Bench, device_description
from calibrate.bench_gemm import bench_gemm, bench_grouped_gemm, bench_sm_limited_gemm
from calibrate.bench_kernels import bench_attention, bench_interference, bench_memory
from calibrate.comm import run_local
from calibrate.profiles import git_revision, with_errors
from calibrate.shapes import Preset
from sim.hardware.gpu import datasheet_for
from sim.hardware.profile import DeviceInfo, Peaks, Profile, Sample, Skipped

STEPS = (
    ("gemm", bench_gemm),
    ("interference", bench_interference),
    ("SM-limited gemm", bench_sm_limited_gemm),
    ("memory-bound kernels", bench_memory),
    ("attention", bench_attention),
    ("grouped gemm", bench_grouped_gemm),
)


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


METHOD = (
    "twin calibrate run: torch microbenchmarks on random data (never zeros); CUDA events around bursts of "
    "back-to-back launches after warm-up, median of repeats; inputs rotated past the L2; SM-limited runs on "
    "CUDA green contexts; interference: the measured kernel's burst inside a longer burst of the other kernel "
    "on its own green context (docs/calibration.md)"
)


def run_calibration(
    device: str = "cpu",
    preset: str = "tiny",
    world: int = 2,
    comm: bool = True,
    progress: Callable[[str], None] | None = None,
    checkpoint: Callable[[Profile], None] | None = None,
) -> Profile:
    """Run every available benchmark on ``device`` and return the profile (``progress`` is told
    what is being timed; ``checkpoint`` gets the profile so far after each benchmark, so a run that
    is stopped keeps what it measured)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but torch sees no GPU")
    described = device_description(device)  # once: it asks nvidia-smi
    bench = Bench(device=device, preset=Preset.named(preset), progress=progress)
    torch.manual_seed(0)
    for name, step in STEPS:
        bench.step(name, step)
        if checkpoint is not None:
            checkpoint(_profile(bench, described, partial=True))
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
    return with_errors(_profile(bench, described))


def _profile(bench: Bench, described: tuple[str, int, dict[str, str | float | None]], partial: bool = False) -> Profile:
    name, sms, facts = described
    gpu = datasheet_for(name)
    return Profile(
        device=DeviceInfo.model_validate({"name": name, "sms": sms, **facts}),
        source="measured",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        git_revision=git_revision(),
        tool=_tool(),
        peaks=Peaks(
            fp8_dense_TFLOPS=gpu.fp8_dense_TFLOPS, bf16_dense_TFLOPS=gpu.bf16_dense_TFLOPS, hbm_TBps=gpu.hbm_TBps
        )
        if gpu is not None
        else _measured_peaks(bench.samples),
        ran=bench.ran,
        skipped=[*bench.skipped, *([Skipped(what="the rest", why="partial: written after a step")] if partial else [])],
        samples=bench.samples,
        method=METHOD,
    )


def _tool() -> str:
    """The command line that ran, as ``twin calibrate run ...`` however it was invoked."""
    args = sys.argv[1:]
    if args[:2] == ["calibrate", "run"]:
        args = args[2:]
    return " ".join(["twin calibrate run", *args])


def merge_comm_samples(profile: Profile, path: str | Path) -> Profile:
    """Add samples written by ``torchrun -m calibrate.comm`` (multi-GPU or multi-node runs)."""
    from pydantic import ValidationError

    from sim.errors import ScenarioError
    from sim.yamlio import read_json, validation_error

    data = read_json(path, "communication samples")
    if not isinstance(data, list):
        raise ScenarioError("", "give a JSON list of samples (torchrun -m calibrate.comm)", str(path))
    try:
        extra = [Sample.model_validate(s) for s in data]
    except ValidationError as err:
        e = validation_error(err, Sample)
        raise ScenarioError(e.key_path, e.message, str(path)) from None
    return profile.model_copy(update={"samples": [*profile.samples, *extra]})
