"""Memory of a serving GPU: the weights it holds and the KV cache the rest of its HBM keeps.

Weights per GPU (elements from :mod:`sim.model.params`; under ``model.dtype: fp8`` the GEMM weights
1 byte plus one FP32 scale per 128 x 128 block and everything else BF16, as DeepSeek's released FP8
checkpoint; under ``bf16`` every weight BF16, as a BF16 checkpoint: :func:`weight_bytes`):

* every layer's attention, norms and router, split ``attention_tp`` ways for the parts Megatron-style
  TP splits (MLA's down-projections duplicated, :func:`sim.model.params.tp_duplicated`);
* dense layers' FFN (split over TP);
* ``experts_per_gpu`` routed-expert slots per MoE layer, and the shared expert (one copy per GPU);
* the embedding and the output head (vocabulary split over TP), and the MTP module when the pool
  decodes with it. A tied head (``model.tie_word_embeddings``) is the embedding table: counted once,
  its final norm only beside it (:func:`sim.model.params.unique_head_params`, as a training stage
  holding both counts it).

KV cache per token per layer: MLA keeps the compressed latent and the decoupled RoPE key
(``kv_lora_rank + qk_rope_head_dim`` = 576 elements for DeepSeek-V3, V3 section 2.1.1), the same on
every GPU of an attention TP group (the latent is shared by all heads, so TP does not split it: why
DeepSeek's decode runs DP attention); GQA keeps ``2 x kv_heads x head_dim`` split over TP.

Capacity: ``kv_memory_fraction x HBM - weights`` (SGLang's ``mem_fraction_static``: the rest is
left to activations, CUDA graphs and the allocator).

Decode admission (the one rule the event loop and the capacity figure both use): a request reserves
its prompt and its whole output on its DP rank when it joins a decode batch
(:func:`reserved_tokens`, so nothing is ever evicted); a unit's DP ranks are evenly loaded, so its
busiest rank holds ``ceil(n / DP ranks)`` of its ``n`` requests, each at their mean reservation, and
that must fit the rank's KV cache (:func:`requests_per_rank`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ScenarioError
from sim.model.params import embedding_params, layer_params, mtp_own_params, tp_duplicated, unique_head_params
from sim.model.spec import ModelSpec
from sim.units import BF16_BYTES, FP8_BLOCK, FP8_BYTES, FP32_BYTES, GiB

FP8_WEIGHT_BYTES = FP8_BYTES + FP32_BYTES / FP8_BLOCK**2  # FP8 element + its 128x128 block's FP32 scale share
KV_BYTES = {"bf16": 2.0, "fp8": 1.0}


def weight_bytes(s: ModelSpec) -> float:
    """Bytes per element of a GEMM weight (attention projections, dense FFNs, experts) in the served
    checkpoint of ``s.dtype``: FP8 with its block scale, or BF16. Norms, router, embedding, head and
    the MTP module's own weights are BF16 in both."""
    return FP8_WEIGHT_BYTES if s.dtype == "fp8" else BF16_BYTES


def kv_bytes_per_token(s: ModelSpec, kv_dtype: str, tp: int, mtp: bool) -> float:
    """KV-cache bytes one token keeps on one GPU, every layer (and the MTP block's) counted."""
    layers = s.n_layers + (s.mtp_depth if mtp else 0)
    if s.attention == "mla":
        per = s.kv_lora_rank + s.qk_rope_head_dim
    else:
        per = 2 * max(1, s.kv_heads // tp) * s.attn_head_dim
    return layers * per * KV_BYTES[kv_dtype]


@dataclass(frozen=True)
class GpuMemory:
    weights_bytes: float
    kv_bytes: float  # what is left for the KV cache
    kv_tokens: int  # tokens of KV cache the GPU holds
    kv_bytes_per_token: float


def weights_per_gpu(s: ModelSpec, tp: int, experts_per_gpu: int, mtp: bool) -> float:
    """Bytes of weights one GPU of the pool holds."""
    gemm = weight_bytes(s)
    total = 0.0
    layers = list(range(s.n_layers)) + ([s.n_layers] * s.mtp_depth if mtp else [])
    dup = tp_duplicated(s)
    for layer in layers:
        p = layer_params(s, layer)
        attention = dup + (p.attention - dup) / tp
        total += (attention + p.dense_ffn / tp) * gemm + (p.norms + p.router) * BF16_BYTES
        if p.n_routed:
            total += (experts_per_gpu * p.per_expert + p.shared_experts) * gemm
    total += (embedding_params(s) + unique_head_params(s)) / tp * BF16_BYTES
    if mtp:
        total += s.mtp_depth * mtp_own_params(s) * BF16_BYTES
    return total


def gpu_memory(
    s: ModelSpec, hbm_GiB: float, fraction: float, tp: int, experts_per_gpu: int, mtp: bool, kv_dtype: str, key: str
) -> GpuMemory:
    """What one GPU holds; refused (naming ``key``) when the weights leave no room for KV cache."""
    weights = weights_per_gpu(s, tp, experts_per_gpu, mtp)
    left = fraction * hbm_GiB * GiB - weights
    per = kv_bytes_per_token(s, kv_dtype, tp, mtp)
    if left < per:
        raise ScenarioError(
            key,
            f"weights take {weights / GiB:.1f} GiB of the {fraction:g} x {hbm_GiB:g} GiB a GPU may use: no room for "
            "KV cache; use more GPUs per unit (fewer experts per GPU) or more attention TP",
        )
    return GpuMemory(weights, left, int(left // per), per)


def reserved_tokens(input_tokens: float, output_tokens: float) -> float:
    """KV tokens a request reserves on its decode rank at admission: its prompt and its whole output
    (reserved up front, so no request is ever evicted)."""
    return input_tokens + output_tokens


def requests_per_rank(kv_tokens: int, reserved: float, requests: int = 1) -> int:
    """Requests one DP rank's KV cache of ``kv_tokens`` holds when ``requests`` requests reserve
    ``reserved`` tokens in all (:func:`reserved_tokens`), each at their mean reservation:
    ``floor(kv_tokens x requests / reserved)`` (exact in integers: the loop passes whole token counts;
    the capacity figure, a mean of one request)."""
    return int(kv_tokens * requests // reserved)
