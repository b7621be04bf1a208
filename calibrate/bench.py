"""Microbenchmarks through torch (the only module family that imports torch).

What runs, where the installed torch and device allow it (each path is guarded; what does not run
is recorded in the profile's ``skipped`` with the reason):

* GEMM: FP8 with DeepSeek's block scaling (1x128 activation tiles, 128x128 weight blocks) through
  ``torch.nn.functional.scaled_mm``, falling back to row-wise then tensor-wise scaled
  ``torch._scaled_mm`` (the sample records which ran); BF16 ``@``; grouped expert GEMMs with uneven M.
* Attention forward and forward+backward at MLA shapes (q/k head dim 192, v 128), causal and not,
  through ``scaled_dot_product_attention``.
* Memory-bound kernels: copy, FP8 cast, elementwise ``a * b + c``.
* GEMM with SMs withheld through CUDA green contexts (multiples of 8 on Hopper; GPU only).
* Point-to-point and all-to-all through ``torch.distributed`` (:mod:`calibrate.comm`).

Timing: warm-up, then bursts of back-to-back launches timed with CUDA events (``perf_counter`` on
CPU), median of the repeats; random data (never zeros); inputs rotated across enough copies that
the L2 cannot hold them between launches.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from calibrate.shapes import Preset, gemm_shapes
from sim.hardware.profile import Sample, Skipped

L2_BYTES = 50 * 2**20  # H100/H800 L2 is 50 MB; rotate inputs past it


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

    def time(self, fn: Callable[[int], object]) -> float:
        """Median seconds per call of ``fn(i)`` (i = launch index, for input rotation)."""
        p = self.preset
        for i in range(p.warmup):
            fn(i)
        results = []
        for r in range(p.repeats):
            base = (r + 1) * p.burst
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for i in range(p.burst):
                    fn(base + i)
                end.record()
                torch.cuda.synchronize()
                results.append(start.elapsed_time(end) / 1e3 / p.burst)
            else:
                t0 = time.perf_counter()
                for i in range(p.burst):
                    fn(base + i)
                results.append((time.perf_counter() - t0) / p.burst)
        return statistics.median(results)

    def copies(self, nbytes: int) -> int:
        """How many rotated input copies keep each launch's inputs out of the L2 (1 on CPU)."""
        return max(2, -(-2 * L2_BYTES // max(nbytes, 1))) if self.cuda else 1

    def rand(self, *shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, dtype=torch.float32).to(dtype)


def _blockwise_scales(b: Bench, m: int, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales in the layouts cuBLAS wants (as torch's own scaled-mm tests build them).

    Activations, 1x128 tiles: ``(M, K/128)`` float32, outer-dim-major (stride 1 along M).
    Weights, 128x128 blocks: ``(ceil(N/128), L)`` with ``L = K/128`` padded to a multiple of 4,
    passed transposed, i.e. ``(L4, ceil(N/128))`` K-major.
    """
    blocks_k = k // 128
    sa = (torch.rand(m, blocks_k, device=b.device) + 0.5).t().contiguous().t()
    sb = torch.rand(-(-n // 128), blocks_k, device=b.device) + 0.5
    if blocks_k % 4:
        sb = torch.nn.functional.pad(sb, (0, 4 - blocks_k % 4))
    return sa, sb.t()


def _fp8_gemm_fn(b: Bench, m: int, n: int, k: int) -> tuple[tuple[Callable[[int], object], str] | None, dict[str, str]]:
    """The best available FP8 GEMM for this torch/device (blockwise, rowwise or tensorwise), and why
    the better ones did not run."""
    fp8 = torch.float8_e4m3fn
    count = b.copies(m * k + k * n)
    a = [b.rand(m, k, dtype=fp8) for _ in range(count)]
    w = [b.rand(n, k, dtype=fp8).t() for _ in range(count)]  # column-major K x N
    attempts: list[tuple[str, Callable[[int], object]]] = []
    failures: dict[str, str] = {}
    functional = getattr(torch.nn.functional, "scaled_mm", None)
    if functional is None or not b.cuda or k % 128 or m % 4:
        failures["blockwise"] = "needs torch.nn.functional.scaled_mm, a GPU, K % 128 == 0 and M % 4 == 0"
    else:
        from torch.nn.functional import ScalingType

        sa, sb = _blockwise_scales(b, m, n, k)
        attempts.append(
            (
                "blockwise",
                lambda i: functional(
                    a[i % count],
                    w[i % count],
                    sa,
                    ScalingType.BlockWise1x128,
                    sb,
                    ScalingType.BlockWise128x128,
                    output_dtype=torch.bfloat16,
                ),
            )
        )
    row_a = torch.rand(m, 1, device=b.device) + 0.5
    row_b = torch.rand(1, n, device=b.device) + 0.5
    attempts.append(
        ("rowwise", lambda i: torch._scaled_mm(a[i % count], w[i % count], row_a, row_b, out_dtype=torch.bfloat16))
    )
    one = torch.tensor(1.0, device=b.device)
    attempts.append(
        ("tensorwise", lambda i: torch._scaled_mm(a[i % count], w[i % count], one, one, out_dtype=torch.bfloat16))
    )
    for name, fn in attempts:
        try:
            fn(0)
            return (fn, name), failures
        except Exception as err:  # any failure means: try the next scaling
            failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    return None, failures


def _bf16_gemm_fn(b: Bench, m: int, n: int, k: int) -> Callable[[int], object]:
    count = b.copies(2 * (m * k + k * n))
    a = [b.rand(m, k) for _ in range(count)]
    w = [b.rand(k, n) for _ in range(count)]
    return lambda i: a[i % count] @ w[i % count]


def bench_gemm(b: Bench) -> None:
    why_not: dict[str, str] = {}  # scaling -> first reason it did not run
    shapes = gemm_shapes(b.preset)
    for dtype in ("fp8", "bf16"):
        for i, (label, (m, n, k)) in enumerate(shapes):
            b.tell(f"{dtype} gemm {label} {m}x{n}x{k} ({i + 1}/{len(shapes)})")
            if dtype == "fp8":
                found, failures = _fp8_gemm_fn(b, m, n, k)
                for scaling, reason in failures.items():
                    why_not.setdefault(scaling, f"{label} {m}x{n}x{k}: {reason}")
                if found is None:
                    b.skipped.append(Skipped(what=f"fp8 gemm {label}", why="no scaled_mm path on this torch/device"))
                    continue
                fn, scaling = found
            else:
                fn, scaling = _bf16_gemm_fn(b, m, n, k), "none"
            t = b.time(fn)
            params = {"m": m, "n": n, "k": k, "dtype": dtype, "shape": label, "scaling": scaling}
            b.samples.append(Sample(op="gemm", params=params, time_s=t))
    for scaling, reason in why_not.items():
        b.skipped.append(Skipped(what=f"fp8 {scaling} scaling (at least once)", why=reason[:300]))
    b.ran.append("gemm fp8/bf16")


def bench_grouped_gemm(b: Bench) -> None:
    """Several experts' GEMMs back to back with uneven token counts (the MoE layer's pattern)."""
    b.tell("grouped expert gemms")
    n, k = b.preset.scale(2 * 2048), b.preset.scale(7168)
    ms = [b.preset.scale_m(x) for x in (64, 128, 96, 256, 32, 160, 224, 48)]
    xs = [b.rand(m, k) for m in ms]
    ws = [b.rand(k, n) for _ in ms]
    t = b.time(lambda i: [x @ w for x, w in zip(xs, ws, strict=True)])
    b.samples.append(
        Sample(
            op="gemm",
            params={"experts": len(ms), "m_total": sum(ms), "n": n, "k": k, "dtype": "bf16", "shape": "grouped-moe-up"},
            time_s=t,
        )
    )
    b.ran.append("grouped gemm")


def _attention_fns(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> tuple[Callable[[int], object], Callable[[int], object]]:
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def fwd(_i: int) -> object:
        with torch.no_grad():
            return sdpa(q, k, v, is_causal=causal)

    def fwd_bwd(_i: int) -> object:
        out = sdpa(q, k, v, is_causal=causal)
        out.sum().backward()
        return out

    return fwd, fwd_bwd


def bench_attention(b: Bench) -> None:
    heads, seq = b.preset.attn_heads, b.preset.attn_seq
    b.tell(f"attention {heads} heads x {seq} tokens")
    for causal in (True, False):
        q = b.rand(1, heads, seq, 192).requires_grad_(True)
        k = b.rand(1, heads, seq, 192).requires_grad_(True)
        v = b.rand(1, heads, seq, 128).requires_grad_(True)
        fwd, fwd_bwd = _attention_fns(q, k, v, causal)
        for phase, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            params = {"heads": heads, "seq": seq, "qk_dim": 192, "v_dim": 128, "causal": int(causal), "phase": phase}
            b.samples.append(Sample(op="attention", params=params, time_s=b.time(fn)))
    b.ran.append("attention fwd/bwd")


def bench_memory(b: Bench) -> None:
    n = b.preset.memory_elems
    b.tell("memory-bound kernels")
    x, y, z = b.rand(n), b.rand(n), b.rand(n)
    out = torch.empty_like(x)
    cases: list[tuple[str, Callable[[int], object], int]] = [
        ("copy", lambda _i: out.copy_(x), 2 * 2 * n),
        ("fp8-cast", lambda _i: x.to(torch.float8_e4m3fn), 2 * n + n),
        ("elementwise", lambda _i: torch.addcmul(z, x, y, out=out), 4 * 2 * n),
    ]
    for name, fn, nbytes in cases:
        b.samples.append(Sample(op="memory", params={"kernel": name, "bytes": nbytes}, time_s=b.time(fn)))
    b.ran.append("memory-bound kernels")


def bench_sm_limited_gemm(b: Bench) -> None:
    gc = getattr(getattr(torch.cuda, "green_contexts", None), "GreenContext", None)
    if not b.cuda or gc is None:
        b.skipped.append(Skipped(what="SM-limited gemm", why="needs CUDA green contexts (GPU)"))
        return
    m, n, k = b.preset.scale_m(4096), b.preset.scale(4096), b.preset.scale(7168)
    a, w = b.rand(m, k), b.rand(k, n)
    total = torch.cuda.get_device_properties(0).multi_processor_count
    for sms in range(8, total + 1, 8) if not b.preset.quick else (total - total % 8 - 16, total - total % 8):
        b.tell(f"gemm on {sms} of {total} SMs (green context)")
        try:
            ctx = gc.create(num_sms=sms, device_id=0)
            stream = ctx.Stream()
        except (RuntimeError, TypeError) as err:
            b.skipped.append(Skipped(what=f"green context {sms} SMs", why=str(err)[:200]))
            continue
        torch.cuda.synchronize()  # inputs were made on the default stream
        with torch.cuda.stream(stream):
            t = b.time(lambda _i: a @ w)
        b.samples.append(
            Sample(
                op="gemm", params={"m": m, "n": n, "k": k, "dtype": "bf16", "sms": sms, "shape": "sm-sweep"}, time_s=t
            )
        )
    b.ran.append("SM-limited gemm")


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
    """(name, SM count or CPU cores, extra facts) of the device."""
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        name = props.name.replace("NVIDIA ", "").split()[0]
        return (
            name,
            props.multi_processor_count,
            {"cuda": torch.version.cuda, "torch": torch.__version__, **_nvidia_smi(0)},
        )
    import os

    return (
        f"cpu-{platform.machine()}",
        os.cpu_count() or 1,
        {"cuda": None, "torch": torch.__version__, "clock_mhz": None, "driver": None},
    )
