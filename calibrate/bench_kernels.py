"""Attention, memory-bound kernels, FP8 cast and compute/communication interference through torch.

* attention: ``scaled_dot_product_attention`` (BF16, batch 1) at MLA head dims (q/k 192, v 128) and
  plain ones, causal and not; the forward, and the backward as (forward + backward) - forward, as
  the H100 measurements in ``shared/measurements`` were taken; also on fewer SMs (green context);
* memory: ``y.copy_(x)`` of uint8 tensors over a sweep of sizes and of SMs, ``addcmul``, and the
  per-token FP8 quantisation in 1x128 tiles written with torch ops (amax per tile, scale, cast);
* interference: a GEMM burst on ``compute_sms`` (one green context) while a loop of 256 MiB copies
  runs on ``comm_sms`` (another), each timed alone and then beside the other, plus a full-GPU GEMM
  beside a copy on another stream. Copies stand in for communication kernels, which are memory
  bound. The measured kernel's burst runs entirely inside the other kernel's longer burst.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable

import torch

from calibrate.bench import Bench, GreenContexts
from calibrate.bench_gemm import GemmFn, best_fp8, bf16_gemm_fn, fp8_gemm_fns
from sim.hardware.profile import TORCH_FP8_CAST, Sample, Skipped
from sim.units import BF16_BYTES, FP8_BYTES, FP8_TILE, FP32_BYTES

FP8_MAX = 448.0  # largest finite E4M3 value


def _attention_fns(
    b: Bench, heads: int, seq: int, qk: int, v: int, causal: bool
) -> tuple[Callable[[int], object], Callable[[int], object]]:
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q = b.rand(1, heads, seq, qk).requires_grad_(True)
    k = b.rand(1, heads, seq, qk).requires_grad_(True)
    val = b.rand(1, heads, seq, v).requires_grad_(True)
    grad = b.rand(1, heads, seq, v)

    def fwd(_i: int) -> object:
        with torch.no_grad():
            return sdpa(q, k, val, is_causal=causal)

    def fwd_bwd(_i: int) -> object:
        out = sdpa(q, k, val, is_causal=causal)
        return torch.autograd.grad(out, (q, k, val), grad)

    return fwd, fwd_bwd


def bench_attention(b: Bench) -> None:
    p = b.preset
    heads, seq = p.attn_heads, p.attn_seq
    dims = [(192, 128), (128, 128)] + ([] if p.quick else [(192, 192)])
    green = GreenContexts()
    cases: list[tuple[int, int, bool, int | None]] = [(qk, v, c, None) for qk, v in dims for c in (True, False)]
    if GreenContexts.available(b):
        cases += [(192, 128, True, sms) for sms in (112, 64)]
    for qk, v, causal, sms in cases:
        b.tell(f"attention {heads} heads x {seq} tokens, q/k {qk} v {v}{' causal' if causal else ''}")
        fwd, fwd_bwd = _attention_fns(b, heads, seq, qk, v, causal)
        with green.on(b, sms):
            t_fwd = b.time(fwd)
            t_both = b.time(fwd_bwd)
        base = {"heads": heads, "seq": seq, "qk_dim": qk, "v_dim": v, "causal": int(causal), "sms": sms or b.all_sms}
        b.samples.append(Sample(op="attention", params={**base, "phase": "fwd"}, time_s=t_fwd))
        if t_both > t_fwd:
            b.samples.append(Sample(op="attention", params={**base, "phase": "bwd"}, time_s=t_both - t_fwd))
    b.ran.append("attention fwd/bwd")


def fp8_quantise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token FP8 quantisation in 1x128 tiles with torch ops: amax per tile, scale, cast."""
    tokens, hidden = x.shape
    tiles = x.view(tokens, hidden // 128, 128).float()
    amax = tiles.abs().amax(dim=-1, keepdim=True).clamp(min=1e-4)
    scale = FP8_MAX / amax
    return (tiles * scale).to(torch.float8_e4m3fn).view(tokens, hidden), scale


def _quantise_call(x: torch.Tensor, _i: int) -> object:
    return fp8_quantise(x)


def bench_memory(b: Bench) -> None:
    p = b.preset
    green = GreenContexts() if GreenContexts.available(b) else None
    sizes = [p.memory_elems >> s for s in (8, 4, 2, 0)] + ([] if p.quick else [p.memory_elems << 2])
    for size in sizes:
        b.tell(f"copy {size} bytes")
        t = b.time(_copy_fn(b, size))
        b.samples.append(Sample(op="memory", params=_copy_params(size, b.all_sms), time_s=t))
    if green is not None:
        size = p.memory_elems
        fn = _copy_fn(b, size)
        for sms in b.sm_counts(dense=not p.quick):
            b.tell(f"copy {size} bytes on {sms} SMs (green context)")
            with green.on(b, sms):
                t = b.time(fn)
            b.samples.append(Sample(op="memory", params=_copy_params(size, sms), time_s=t))
    n = p.memory_elems // 4
    x, y, z = b.rand(n), b.rand(n), b.rand(n)
    out = torch.empty_like(x)
    t = b.time(lambda _i: torch.addcmul(z, x, y, out=out))
    b.samples.append(
        Sample(op="memory", params={"kernel": "elementwise", "bytes": 4 * 2 * n, "sms": b.all_sms}, time_s=t)
    )
    hidden = p.scale(7168) // 128 * 128 or 128
    for tokens in (p.scale_m(4096), p.scale_m(16384), p.scale_m(32768)):
        b.tell(f"fp8 cast {tokens} x {hidden}")
        xs = b.rand(tokens, hidden)
        t = b.time(functools.partial(_quantise_call, xs))
        elems = tokens * hidden  # BF16 in, FP8 and one FP32 scale per 1x128 tile out
        nbytes = BF16_BYTES * elems + FP8_BYTES * elems + FP32_BYTES * elems // FP8_TILE
        params = {"kernel": TORCH_FP8_CAST, "bytes": nbytes, "tokens": tokens, "hidden": hidden, "sms": b.all_sms}
        b.samples.append(Sample(op="memory", params=params, time_s=t))
    b.ran.append("memory-bound kernels (copy sweep, copy vs SMs, addcmul, fp8 cast)")


def _copy_fn(b: Bench, size: int) -> Callable[[int], object]:
    count = b.copies(2 * size)
    xs = [torch.randint(0, 255, (size,), dtype=torch.uint8, device=b.device) for _ in range(count)]
    ys = [torch.empty_like(xs[0]) for _ in range(count)]
    return lambda i: ys[i % count].copy_(xs[i % count])


def _copy_params(size: int, sms: int) -> dict[str, float | int | str]:
    return {"kernel": "copy", "bytes": 2 * size, "bytes_copied": size, "sms": sms}


def _pairs(b: Bench) -> list[tuple[int, int]]:
    total = b.all_sms
    pairs = [(112, 16), (96, 32)] if b.preset.quick else [(120, 8), (112, 16), (104, 24), (96, 32), (64, 64)]
    return [(c, m) for c, m in pairs if c + m <= total]


def _alone_and_beside(
    b: Bench,
    measured: tuple[GemmFn, torch.cuda.Stream, float],
    cover: tuple[GemmFn, torch.cuda.Stream, float],
    rounds: int = 5,
) -> tuple[float, float]:
    """Seconds per call of ``measured`` alone and while ``cover`` runs on its own stream for twice as
    long (so the measured burst runs entirely beside it): bursts of at least 5 ms, alone and beside
    alternating so that clock drift touches both alike; medians of ``rounds``."""
    fn, stream, estimate = measured
    cover_fn, cover_stream, cover_alone = cover
    n = max(5, math.ceil(5e-3 / estimate))
    n_cover = math.ceil((2 * n * estimate + 2e-3) / cover_alone)
    alone: list[float] = []
    beside: list[float] = []
    for r in range(2 * rounds):
        b.sync()
        if r % 2:
            with torch.cuda.stream(cover_stream):
                for i in range(n_cover):
                    cover_fn(i)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            start.record()
            for i in range(n):
                fn(r * n + i)
            end.record()
        b.sync()
        (beside if r % 2 else alone).append(float(start.elapsed_time(end)) / 1e3 / n)
    return statistics.median(alone), statistics.median(beside)


def _split(green: GreenContexts, a: int, c: int) -> tuple[int, torch.cuda.Stream, torch.cuda.Stream, str, str]:
    """Streams of ``a`` SMs and of the rest of the GPU, disjoint, where the driver API allows (else
    torch's contexts of ``a`` and ``c`` SMs, which overlap); the other stream's SM count, the mode,
    and a line for the profile with what ``%smid`` showed."""
    try:
        s_a, s_c, c = green.disjoint_pair(a)
        mode = "green-contexts"
    except Exception as err:  # cuda.bindings missing: torch's contexts, which overlap
        s_a, s_c = green.stream(a), green.stream(c)
        mode, why = "green-contexts-overlapping", f" (driver split failed: {type(err).__name__}: {str(err)[:80]})"
    else:
        why = ""
    try:
        from calibrate.smid import sm_ids

        ids_a, ids_c = sm_ids(s_a), sm_ids(s_c)
    except Exception as err:  # Triton missing or the check failed: say so, measure anyway
        return c, s_a, s_c, mode, f"green contexts {a}+{c} ({mode}): SM sets not checked ({type(err).__name__}){why}"
    both = len(ids_a & ids_c)
    if both:
        mode = "green-contexts-overlapping"
    line = (
        f"green contexts {a}+{c} ({mode}): kernels used {len(ids_a)} and {len(ids_c)} SMs, "
        + ("disjoint" if both == 0 else f"{both} SMs shared")
        + f" (checked with %smid){why}"
    )
    return c, s_a, s_c, mode, line


def bench_interference(b: Bench) -> None:
    if not GreenContexts.available(b):
        b.skipped.append(Skipped(what="interference", why="needs two CUDA green contexts (GPU)"))
        return
    p = b.preset
    green = GreenContexts()
    m = p.scale_m(8192)
    gemms: list[tuple[str, int, int, int, str, str, GemmFn]] = []
    for family, n, k in (("moe-up", 4096, 7168), ("moe-down", 7168, 2048)):
        fns, _ = fp8_gemm_fns(b, m, n, k)
        found = best_fp8(fns)
        if found is not None:
            gemms.append((family, m, n, k, "fp8", found[0], found[1]))
    gemms.append(("generic", m, 4096, 7168, "bf16", "none", bf16_gemm_fn(b, m, 4096, 7168)))
    copy_bytes = 256 * 2**20
    copy = _copy_fn(b, copy_bytes)
    b.sync()  # inputs were made on the default stream; the kernels run on others
    default = torch.cuda.current_stream()
    plans = [(a, *_split(green, a, c)) for a, c in _pairs(b)]
    if plans and plans[0][4] == "green-contexts":  # torch's overlapping contexts too, for comparison
        a, c = _pairs(b)[0]
        s_a, s_c = green.stream(a), green.stream(c)
        plans.append((a, c, s_a, s_c, "green-contexts-overlapping", f"green contexts {a}+{c} through torch"))
    plans.append((b.all_sms, 0, default, torch.cuda.Stream(), "shared-sms", "one context, two streams"))
    for compute_sms, comm_sms, s_gemm, s_copy, mode, line in plans:
        b.ran.append(line)
        shared = mode == "shared-sms"
        size = 4 * copy_bytes if shared else copy_bytes
        copy_fn = _copy_fn(b, size) if shared else copy
        b.sync()
        for family, mm, n, k, dtype, scaling, fn in gemms:
            if shared and not (dtype == "fp8" and family == "moe-up"):
                continue
            b.tell(f"interference: {dtype} {family} on {compute_sms} SMs beside a copy on {comm_sms or 'shared'} SMs")
            with torch.cuda.stream(s_gemm):
                g_estimate = b.time(fn)
            with torch.cuda.stream(s_copy):
                c_estimate = b.time(copy_fn, burst=4)
            g_alone, g_beside = _alone_and_beside(b, (fn, s_gemm, g_estimate), (copy_fn, s_copy, c_estimate))
            c_alone, c_beside = _alone_and_beside(b, (copy_fn, s_copy, c_estimate), (fn, s_gemm, g_estimate))
            base = {
                "compute_sms": compute_sms,
                "comm_sms": comm_sms,
                "mode": mode,
                "gemm": family,
                "m": mm,
                "n": n,
                "k": k,
                "dtype": dtype,
                "scaling": scaling,
                "copy_bytes": size,
            }
            b.samples.append(
                Sample(op="interference", params={**base, "kernel": "gemm", "alone_s": g_alone}, time_s=g_beside)
            )
            b.samples.append(
                Sample(op="interference", params={**base, "kernel": "copy", "alone_s": c_alone}, time_s=c_beside)
            )
    b.ran.append("interference: gemm beside copy on separate green contexts, and on shared SMs")
