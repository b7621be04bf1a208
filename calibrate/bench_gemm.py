"""GEMM microbenchmarks: FP8 in every scaling that runs here, BF16, grouped experts, SM sweeps.

FP8 (E4M3 inputs, BF16 output), each scaling timed where the installed torch and device allow it:

* ``blockwise``: DeepSeek's recipe, 1x128 activation tiles and 128x128 weight blocks, through
  ``torch.nn.functional.scaled_mm`` (SM90 cuBLAS);
* ``rowwise``: per-row / per-column FP32 scales through ``torch._scaled_mm``;
* ``tensorwise``: one FP32 scale per operand through ``torch._scaled_mm``.

A scaling that fails is recorded once in the profile's ``skipped`` with the first reason.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from calibrate.bench import Bench, GreenContexts
from calibrate.shapes import gemm_shapes
from sim.hardware.profile import Sample, Skipped

GemmFn = Callable[[int], object]


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


def fp8_gemm_fns(b: Bench, m: int, n: int, k: int) -> tuple[dict[str, GemmFn], dict[str, str]]:
    """Every FP8 scaling that runs for this shape here (scaling -> fn), and why the others did not."""
    fp8 = torch.float8_e4m3fn
    count = b.copies(m * k + k * n)
    a = [b.rand(m, k, dtype=fp8) for _ in range(count)]
    w = [b.rand(n, k, dtype=fp8).t() for _ in range(count)]  # column-major K x N
    attempts: dict[str, GemmFn] = {}
    failures: dict[str, str] = {}
    functional = getattr(torch.nn.functional, "scaled_mm", None)
    if functional is None or not b.cuda or k % 128 or m % 4:
        failures["blockwise"] = "needs torch.nn.functional.scaled_mm, a GPU, K % 128 == 0 and M % 4 == 0"
    else:
        from torch.nn.functional import ScalingType

        sa, sb = _blockwise_scales(b, m, n, k)

        def blockwise(i: int) -> object:
            return functional(
                a[i % count],
                w[i % count],
                sa,
                ScalingType.BlockWise1x128,
                sb,
                ScalingType.BlockWise128x128,
                output_dtype=torch.bfloat16,
            )

        attempts["blockwise"] = blockwise
    row_a = torch.rand(m, 1, device=b.device) + 0.5
    row_b = torch.rand(1, n, device=b.device) + 0.5
    attempts["rowwise"] = lambda i: torch._scaled_mm(a[i % count], w[i % count], row_a, row_b, out_dtype=torch.bfloat16)
    one = torch.tensor(1.0, device=b.device)
    attempts["tensorwise"] = lambda i: torch._scaled_mm(a[i % count], w[i % count], one, one, out_dtype=torch.bfloat16)
    ok: dict[str, GemmFn] = {}
    for name, fn in attempts.items():
        try:
            fn(0)
            b.sync()
            ok[name] = fn
        except Exception as err:  # any failure means: this scaling does not run here
            b.sync_quietly()
            failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
    return ok, failures


def bf16_gemm_fn(b: Bench, m: int, n: int, k: int) -> GemmFn:
    count = b.copies(2 * (m * k + k * n))
    a = [b.rand(m, k) for _ in range(count)]
    w = [b.rand(k, n) for _ in range(count)]
    return lambda i: a[i % count] @ w[i % count]


def best_fp8(fns: dict[str, GemmFn]) -> tuple[str, GemmFn] | None:
    """DeepSeek's scaling where it runs, else the next best."""
    for name in ("blockwise", "rowwise", "tensorwise"):
        if name in fns:
            return name, fns[name]
    return None


def _sample(family: str, m: int, n: int, k: int, dtype: str, scaling: str, sms: int, t: float) -> Sample:
    params = {"family": family, "m": m, "n": n, "k": k, "dtype": dtype, "scaling": scaling, "sms": sms}
    return Sample(op="gemm", params=params, time_s=t)


def bench_gemm(b: Bench) -> None:
    why_not: dict[str, str] = {}  # scaling -> first reason it did not run
    shapes = gemm_shapes(b.preset)
    sms = b.all_sms
    for i, (label, (m, n, k)) in enumerate(shapes):
        b.tell(f"fp8 gemm {label} {m}x{n}x{k} ({i + 1}/{len(shapes)})")
        fns, failures = fp8_gemm_fns(b, m, n, k)
        for scaling, reason in failures.items():
            why_not.setdefault(scaling, f"{label} {m}x{n}x{k}: {reason}")
        if not fns:
            b.skipped.append(
                Skipped(what=f"fp8 gemm {label} {m}x{n}x{k}", why="no scaled_mm path on this torch/device")
            )
        for scaling, fn in fns.items():
            b.samples.append(_sample(label, m, n, k, "fp8", scaling, sms, b.time(fn)))
        del fns
        b.tell(f"bf16 gemm {label} {m}x{n}x{k} ({i + 1}/{len(shapes)})")
        b.samples.append(_sample(label, m, n, k, "bf16", "none", sms, b.time(bf16_gemm_fn(b, m, n, k))))
    for scaling, reason in why_not.items():
        b.skipped.append(Skipped(what=f"fp8 {scaling} scaling (at least once)", why=reason[:300]))
    b.ran.append("gemm fp8 (every scaling that runs) and bf16")


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
            params={
                "experts": len(ms),
                "m_total": sum(ms),
                "n": n,
                "k": k,
                "dtype": "bf16",
                "family": "grouped-moe-up",
            },
            time_s=t,
        )
    )
    b.ran.append("grouped gemm")


def bench_sm_limited_gemm(b: Bench) -> None:
    """GEMM throughput against SMs on CUDA green contexts: a dense BF16 sweep (``sm-sweep``) and the
    MoE expert GEMMs in FP8 at the splits worth knowing (``sm-limited``)."""
    if not GreenContexts.available(b):
        b.skipped.append(Skipped(what="SM-limited gemm", why="needs CUDA green contexts (GPU)"))
        return
    green = GreenContexts()
    total = b.all_sms
    p = b.preset
    m, n, k = p.scale_m(4096), p.scale(4096), p.scale(7168)
    a, w = b.rand(m, k), b.rand(k, n)
    for sms in b.sm_counts(dense=not p.quick):
        b.tell(f"bf16 gemm on {sms} of {total} SMs (green context)")
        with green.on(b, sms):
            t = b.time(lambda _i: a @ w)
        b.samples.append(_sample("sm-sweep", m, n, k, "bf16", "none", sms, t))
    shapes = [(p.scale_m(8192), p.scale(4096), p.scale(7168)), (p.scale_m(8192), p.scale(7168), p.scale(2048))]
    if not p.quick:
        shapes += [(p.scale_m(2048), p.scale(4096), p.scale(7168))]
    for m, n, k in shapes:
        fns, _ = fp8_gemm_fns(b, m, n, k)
        found = best_fp8(fns)
        plans: list[tuple[str, str, GemmFn]] = [("bf16", "none", bf16_gemm_fn(b, m, n, k))]
        if found is not None:
            plans.insert(0, ("fp8", found[0], found[1]))
        for sms in b.sm_counts(dense=False):
            for dtype, scaling, fn in plans:
                b.tell(f"{dtype} gemm {m}x{n}x{k} on {sms} of {total} SMs (green context)")
                with green.on(b, sms):
                    t = b.time(fn)
                b.samples.append(_sample("sm-limited", m, n, k, dtype, scaling, sms, t))
    b.ran.append("SM-limited gemm (green contexts)")
