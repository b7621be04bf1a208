"""Benchmark shapes: DeepSeek-V3's GEMMs over a sweep of M (tokens), plus a generic grid.

DeepSeek-V3 (REFERENCE.md section 1; hidden 7168, expert intermediate 2048, MLA q_lora 1536,
kv_lora 512, 128 heads of q/k 192 and v 128, vocab 129,280), as (N, K) of ``x[M, K] @ W[K, N]``:

* MoE expert (routed and shared): up (gate+up) N = 2 x 2048, K = 7168; down N = 7168, K = 2048
* MLA: q_a 7168 -> 1536; q_b 1536 -> 128 x 192; kv_a 7168 -> 512 + 64; kv_b 512 -> 128 x (128 + 128);
  o 128 x 128 -> 7168
* output head: 7168 -> 129,280

Presets: ``full`` (M 256..16384), ``quick`` (minutes on a GPU) and ``tiny`` (dimensions divided by
``shrink``, for a CPU run of the whole pipeline in seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

V3_GEMMS: dict[str, tuple[int, int]] = {
    "moe-up": (2 * 2048, 7168),
    "moe-down": (7168, 2048),
    "mla-q-a": (1536, 7168),
    "mla-q-b": (128 * 192, 1536),
    "mla-kv-a": (512 + 64, 7168),
    "mla-kv-b": (128 * (128 + 128), 512),
    "mla-o": (7168, 128 * 128),
    "head": (129280, 7168),
}
GENERIC = (1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class Preset:
    name: str
    ms: tuple[int, ...]
    shrink: int = 1
    generic: bool = True
    warmup: int = 3
    repeats: int = 7
    burst: int = 10
    attn_heads: int = 128
    attn_seq: int = 4096
    memory_elems: int = 1 << 28
    quick: bool = False

    @staticmethod
    def named(name: str) -> Preset:
        if name == "full":
            return Preset("full", (256, 512, 1024, 2048, 4096, 8192, 16384))
        if name == "quick":
            return Preset("quick", (512, 2048, 8192), generic=False, repeats=5, burst=5, quick=True)
        if name == "tiny":
            return Preset(
                "tiny",
                (16, 32, 64),
                shrink=64,
                generic=False,
                warmup=1,
                repeats=3,
                burst=2,
                attn_heads=2,
                attn_seq=64,
                memory_elems=1 << 16,
                quick=True,
            )
        raise ValueError(f"unknown preset {name!r}; choose from full, quick, tiny")

    def scale(self, dim: int) -> int:
        return max(8, dim // self.shrink // 8 * 8)

    def scale_m(self, m: int) -> int:
        return max(8, m // self.shrink)


def gemm_shapes(preset: Preset) -> list[tuple[str, tuple[int, int, int]]]:
    """(label, (M, N, K)) of every GEMM to time."""
    out = []
    for label, (n, k) in V3_GEMMS.items():
        for m in preset.ms:
            out.append((label, (m, preset.scale(n), preset.scale(k))))
    if preset.generic:
        for m in preset.ms:
            for n in GENERIC:
                for k in GENERIC:
                    out.append(("generic", (m, n, k)))
    return out
