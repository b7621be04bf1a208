"""Microbenchmark core: the timing policy, SM-limited streams and the device description.

The benchmarks themselves are in :mod:`calibrate.bench_gemm` (GEMMs by dtype and FP8 scaling, SM
sweeps) and :mod:`calibrate.bench_kernels` (attention, memory-bound kernels, FP8 cast and
compute/communication interference). Every sample they write uses the parameter names of
``docs/calibration.md`` ("Sample parameters"), the same names ``twin calibrate import-measurements``
writes, so a measured and an imported profile are the same kind of file.

Timing: warm-up, then bursts of back-to-back launches timed with CUDA events (``perf_counter`` on
CPU), median of the repeats; random data (never zeros); inputs rotated across enough copies that
the L2 cannot hold them between launches.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from calibrate.shapes import Preset
from sim.hardware.profile import Sample, Skipped

L2_BYTES = 60 * 2**20  # H100/H800 L2 is 50 MB, H200 60 MB; rotate inputs past it


@dataclass
class Bench:
    """Device, timing policy and what has been collected so far."""

    device: str = "cpu"
    preset: Preset = field(default_factory=lambda: Preset.named("tiny"))
    samples: list[Sample] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    progress: Callable[[str], None] | None = None  # told what is about to be timed

    def tell(self, what: str) -> None:
        if self.progress is not None:
            self.progress(what)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def all_sms(self) -> int:
        return torch.cuda.get_device_properties(0).multi_processor_count if self.cuda else 1

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[int], object], burst: int | None = None) -> float:
        """Median seconds per call of ``fn(i)`` (i = launch index, for input rotation)."""
        p = self.preset
        burst = burst or p.burst
        for i in range(p.warmup):
            fn(i)
        results = []
        for r in range(p.repeats):
            base = (r + 1) * burst
            results.append(self.time_burst(fn, burst, base))
        return statistics.median(results)

    def time_burst(self, fn: Callable[[int], object], burst: int, base: int = 0) -> float:
        """Seconds per call of one burst of ``burst`` back-to-back calls on the current stream."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(burst):
                fn(base + i)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3 / burst
        t0 = time.perf_counter()
        for i in range(burst):
            fn(base + i)
        return (time.perf_counter() - t0) / burst

    def copies(self, nbytes: int) -> int:
        """How many rotated input copies keep each launch's inputs out of the L2 (1 on CPU)."""
        return max(2, -(-2 * L2_BYTES // max(nbytes, 1))) if self.cuda else 1

    def rand(self, *shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, dtype=torch.float32).to(dtype)

    def sm_counts(self, dense: bool) -> list[int]:
        """SM counts a green context can take here (multiples of 8 on Hopper), below all SMs."""
        total = self.all_sms
        if dense:
            return list(range(8, total, 8))
        return [n for n in (16, 32, 64, 96, 112, 120) if n < total]

    def step(self, name: str, fn: Callable[[Bench], None]) -> None:
        """Run one benchmark; a failure is recorded in ``skipped`` instead of ending the run."""
        try:
            fn(self)
        except Exception as err:  # a broken benchmark must not lose the others' samples
            self.sync_quietly()
            first = str(err).splitlines()[0][:240] if str(err) else ""
            self.skipped.append(Skipped(what=name, why=f"failed: {type(err).__name__}: {first}"))

    def sync_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.sync()


class GreenContexts:
    """CUDA green contexts (SM partitions) by SM count, created once and kept for the run.

    ``torch.cuda.green_contexts.GreenContext.create(num_sms=N)`` restricts the kernels launched on its
    stream to N SMs (multiples of 8 on Hopper). Where the API is missing, :meth:`stream` raises.
    """

    def __init__(self) -> None:
        self._streams: dict[int, torch.cuda.Stream] = {}
        self._pairs: dict[int, tuple[torch.cuda.Stream, torch.cuda.Stream, int]] = {}
        self._contexts: list[object] = []

    @staticmethod
    def available(b: Bench) -> bool:
        return b.cuda and getattr(getattr(torch.cuda, "green_contexts", None), "GreenContext", None) is not None

    def stream(self, sms: int) -> torch.cuda.Stream:
        if sms not in self._streams:
            gc: Any = torch.cuda.green_contexts.GreenContext
            ctx = gc.create(num_sms=sms, device_id=0)
            self._contexts.append(ctx)  # keep it alive
            self._streams[sms] = ctx.Stream()
        return self._streams[sms]

    def disjoint_pair(self, a: int) -> tuple[torch.cuda.Stream, torch.cuda.Stream, int]:
        """Streams on two green contexts that share no SM: ``a`` SMs, and every other SM of the GPU
        (returned with its count: 132 - 112 = 20 on Hopper, DeepSeek's split).

        torch's ``GreenContext.create`` takes each context's SMs from the start of the device's SM
        list, so two contexts overlap (``calibrate.smid`` showed it on an H200 with torch 2.11). Here
        the CUDA driver splits the device's SMs instead (``cuDevSmResourceSplitByCount``: a group of
        ``a`` SMs and the remainder), through ``cuda.bindings``; raises where that is missing.
        """
        if a not in self._pairs:
            from cuda.bindings import driver as cu

            def check(result: tuple[Any, ...]) -> Any:
                if result[0] != cu.CUresult.CUDA_SUCCESS:
                    raise RuntimeError(f"CUDA driver error {result[0]}")
                return result[1] if len(result) == 2 else result[1:]

            torch.cuda.init()
            dev = check(cu.cuDeviceGet(torch.cuda.current_device()))
            whole = check(cu.cuDeviceGetDevResource(dev, cu.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM))
            groups, _, rest = check(cu.cuDevSmResourceSplitByCount(1, whole, 0, a))
            streams = []
            for group in (groups[0], rest):
                desc = check(cu.cuDevResourceGenerateDesc([group], 1))
                ctx = check(cu.cuGreenCtxCreate(desc, dev, cu.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM))
                raw = check(cu.cuGreenCtxStreamCreate(ctx, cu.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
                self._contexts.extend((ctx, raw))
                handle = int(raw) if hasattr(raw, "__int__") else int(raw.getPtr())
                stream = torch.cuda.get_stream_from_external(handle)
                with torch.cuda.stream(stream):  # a kernel must run there before we rely on it
                    torch.ones(8, device="cuda").sum().item()
                streams.append(stream)
            self._pairs[a] = (streams[0], streams[1], int(rest.sm.smCount))
        return self._pairs[a]

    @contextlib.contextmanager
    def on(self, b: Bench, sms: int | None) -> Iterator[None]:
        """Run the body's launches on ``sms`` SMs (None or all SMs: the default stream)."""
        if sms is None or sms >= b.all_sms:
            yield
            return
        stream = self.stream(sms)
        b.sync()  # inputs were made on the default stream
        with torch.cuda.stream(stream):
            yield
        b.sync()


def _nvidia_smi(index: int = 0) -> dict[str, str | float | None]:
    """Driver version and maximum SM clock from ``nvidia-smi`` (None where it is absent or fails)."""
    import shutil
    import subprocess

    facts: dict[str, str | float | None] = {"driver": None, "clock_mhz": None}
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return facts
    try:
        out = subprocess.run(
            [exe, f"--id={index}", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        driver, clock = (x.strip() for x in out.splitlines()[0].split(","))
        facts["driver"] = driver
        facts["clock_mhz"] = float(clock)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        pass
    return facts


def device_description(device: str) -> tuple[str, int, dict[str, str | float | None]]:
    """(name as the driver reports it, SM count or CPU cores, extra facts) of the device."""
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        return (
            props.name,
            props.multi_processor_count,
            {"cuda": torch.version.cuda, "torch": torch.__version__, **_nvidia_smi(0)},
        )
    import os

    return (
        f"cpu-{platform.machine()}",
        os.cpu_count() or 1,
        {"cuda": None, "torch": torch.__version__, "clock_mhz": None, "driver": None},
    )
