"""Memory per GPU and the optimizer step's memory traffic for ZeRO-1 training (pure functions).

Units: bytes, elements (parameters), tokens; :meth:`Memory.to_dict` gives GB (1e9 bytes).

Precision recipe (DeepSeek-V3 report, arXiv 2412.19437, section 3.3, REFERENCE.md section 1):

* weights in BF16 on every GPU that computes with them; the FP8 GEMMs quantise them on the fly in
  128x128 blocks. Whether an FP8 copy is also kept is not published: ``Precision.fp8_weight_copy``
  (default False; True adds 1 byte and an FP32 scale per 128x128 block for every FP8-GEMM weight);
* gradients accumulated over micro-batches in FP32 ("master weights ... and gradients (used for
  batch size accumulation) are still retained in FP32", 3.3.2); ZeRO-1 does not shard them;
* AdamW state: FP32 master weights and BF16 first and second moments ("we adopt the BF16 data
  format instead of FP32 to track the first and second moments", 3.3.2), sharded over the
  data-parallel group under ZeRO-1: non-expert state over the non-expert DP group (``dp``), routed
  experts' state over the expert DP group (``expert_dp`` = GPUs / (PP x EP), 2 for DeepSeek-V3);
* the EMA of the parameters lives in CPU memory (3.2.3): 0 bytes on the GPU.

Saved activations of one layer, per token of the micro-batch (h = dim, nh = heads, k = top-k;
FP8 = 1 byte + one FP32 scale per 1x128 tile, 1.03125 B; bytes for DeepSeek-V3):

======================================  ==================  =========  =======  ====================================
tensor (kept for the backward)          elements per token  dtype      bytes    rule and source
======================================  ==================  =========  =======  ====================================
layer input x (residual stream)         h                   BF16       14336    attn RMSNorm recomputed from it [3.2.3]
q latent c_q (wq_a output, pre-norm)    q_lora              BF16        3072    q_norm and wq_b recomputed [3.2.3]
kv latent c_kv + k_rope (wkv_a output)  kv_lora + rope      BF16        1152    kv_norm, wkv_b, RoPE recomputed [3.2.3]
attention output (input of wo)          nh * v              E5M6       25088    "customized E5M6", also serves the
                                                            + scales            attention backward [3.3.3]; 12 bits
                                                                                + a 1x128 FP32 scale (assumption)
softmax log-sum-exp                     nh                  FP32         512    flash-attention backward (assumption)
residual after attention h1             h                   BF16       14336    ffn RMSNorm recomputed from it [3.2.3]
router scores (MoE)                     n_routed            FP32        1024    sigmoid scores, for the sequence-wise
                                                                                balance loss (assumption)
router top-k ids and weights (MoE)      k                   int32+FP32    64    assumption
dispatched tokens (MoE)                 k x h               FP8        59136    "quantize the activation before MoE
                                                                                up-projections into FP8 and then apply
                                                                                dispatch" [3.3.3]; wgrad input of the
                                                                                expert up-projections; k rows per token
                                                                                under balanced EP (assumption)
routed SwiGLU input (MoE)               k x 2 moe_inter     FP8        33792    "cache the inputs of the SwiGLU
                                                                                operator and recompute its output"
                                                                                in FP8 [3.3.3]
shared-expert SwiGLU input (MoE)        n_shared x 2 x i    FP8         4224    same rule [3.3.3]
dense SwiGLU input (dense layers)       2 inter             FP8        38016    same rule applied to the dense FFN
                                                                                (assumption: the report says MoE)
======================================  ==================  =========  =======  ====================================

Not kept: RMSNorm outputs and statistics, q/k/v of MLA, the FP8 copies of GEMM inputs other than the
above (re-quantised from what is kept), the SwiGLU outputs, the expert outputs (assumption: the gate
weights are applied to the SwiGLU output inside the expert, so their gradient comes from the
recomputed SwiGLU output; ``ActivationRecipe.store_expert_outputs`` adds k x h BF16 otherwise), the
combine's outputs (its backward is a dispatch of the gradients). Per token: 156,736 B for an MoE layer
and 96,512 B for a dense layer of DeepSeek-V3.

Stage extras: the embedding needs the token ids (int64, 8 B); the head its input (the last hidden
state, BF16 2h: the final norm is recomputed) and the loss its logits (vocab x ``logits_bytes``;
default FP32 softmax kept by the cross-entropy, an assumption: 517 KB per token); each MTP module the
next tokens' embeddings (BF16 h), its labels (8 B), the MoE block as a layer, its output (BF16 h) and
its own logits. The hidden state fed to the MTP module is the main model's last hidden state, already
counted.

DeepSeek-V3 default (PP16 DualPipe, rank r holds stages r and 15-r, EP64, DP128, expert DP 2, 4096
tokens per micro-batch, even layer split 3,4,...,4,3,3, in-flight micro-batches per stage at each
rank's peak from the DualPipe action lists, PP+1 = 17 in all; GB = 1e9 B):

==========  ===========  ======  =====  =========  ================  =====
rank        stages       params  grads  optimizer  activations_peak  total
==========  ===========  ======  =====  =========  ================  =====
0           0 and 15     10.69   21.37  3.11       25.96             61.12
7           7 and 8      6.55    13.09  5.75       43.66             69.05
==========  ===========  ======  =====  =========  ================  =====

Rank 0 holds at its peak 16 micro-batches of stage 0 (3 dense layers, 1.19 GB each) and 1 of stage
15 (3 MoE layers, the MTP block and two heads' logits: 6.98 GB); rank 7 holds 9 of stage 7 and 8 of
stage 8 (4 MoE layers, 2.57 GB each). Ranks 2 to 13 are like rank 7 (69.05 GB, the most), ranks 1 and
14 need 64.59 GB. All fit in the H800's 80 GB with 11 GB or more left for communication buffers
(DeepEP), workspace and fragmentation, which are not counted (``deepseek_v3_default``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sim.model.params import StageParams, device_params, pipeline_parts
from sim.model.spec import ModelSpec
from sim.pipeline.ops import Op, Schedule
from sim.units import BF16_BYTES, FP8_BLOCK, FP8_BYTES, FP8_TILE_BYTES, FP8_TILE_SCALE_BYTES, FP32_BYTES

GB = 1e9


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter of each copy (DeepSeek-V3 section 3.3; defaults are the recipe's)."""

    weight_bytes: float = BF16_BYTES  # BF16 working weights
    fp8_weight_copy: bool = False  # not published: an FP8 copy of the FP8-GEMM weights kept as well
    grad_bytes: float = FP32_BYTES  # FP32 accumulation over micro-batches
    master_bytes: float = FP32_BYTES  # FP32 master weights (optimizer state)
    moment_bytes: float = BF16_BYTES  # each of AdamW's m and v, BF16

    @property
    def optimizer_bytes(self) -> float:
        """Optimizer state per parameter before sharding: master + m + v."""
        return self.master_bytes + 2 * self.moment_bytes


@dataclass(frozen=True)
class ActivationRecipe:
    """What one layer keeps for its backward, in bytes per element (see the module table)."""

    hidden_bytes: float = BF16_BYTES  # residual stream (layer input, mid-layer residual): BF16
    latent_bytes: float = BF16_BYTES  # MLA compressed q and kv (+ k_rope) before their norms: BF16
    attn_out_bytes: float = 1.5 + FP8_TILE_SCALE_BYTES  # E5M6 (1+5+6 = 12 bits) with a 1x128 FP32 scale
    softmax_stats_bytes: float = FP32_BYTES  # per head and token, FP32 log-sum-exp
    fp8_bytes: float = FP8_TILE_BYTES  # dispatched tokens and SwiGLU inputs
    dense_swiglu_bytes: float = FP8_TILE_BYTES  # dense FFN's SwiGLU input (the report states FP8 for MoE)
    router_score_bytes: float = 4.0  # FP32 scores of every routed expert (0: not kept)
    router_choice_bytes: float = 8.0  # per chosen expert: int32 id + FP32 weight
    dispatched_rows_per_token: float | None = None  # None: top-k (balanced routing over EP)
    store_expert_outputs: bool = False  # True: keep k x h BF16 expert outputs for the gate gradient
    token_id_bytes: float = 8.0  # int64 token ids / labels
    logits_bytes: float = 4.0  # per vocabulary entry kept by the loss (FP32 softmax); 0 if fused


@dataclass(frozen=True)
class SavedTensor:
    name: str
    elements_per_token: float
    bytes_per_element: float

    @property
    def bytes_per_token(self) -> float:
        return self.elements_per_token * self.bytes_per_element


def saved_tensors(s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None) -> list[SavedTensor]:
    """The tensors layer ``layer`` keeps for its backward, per token (the module docstring's table)."""
    r = recipe or ActivationRecipe()
    h, nh = s.dim, s.n_heads
    out = [SavedTensor("layer input", h, r.hidden_bytes)]
    if s.q_lora_rank:
        out.append(SavedTensor("q latent", s.q_lora_rank, r.latent_bytes))
    out += [
        SavedTensor("kv latent + k_rope", s.kv_lora_rank + s.qk_rope_head_dim, r.latent_bytes),
        SavedTensor("attention output (E5M6)", nh * s.v_head_dim, r.attn_out_bytes),
        SavedTensor("softmax log-sum-exp", nh, r.softmax_stats_bytes),
        SavedTensor("residual after attention", h, r.hidden_bytes),
    ]
    if not s.is_moe(layer):
        return [*out, SavedTensor("dense SwiGLU input", 2 * s.inter_dim, r.dense_swiglu_bytes)]
    k = s.n_activated_experts
    rows = k if r.dispatched_rows_per_token is None else r.dispatched_rows_per_token
    out += [
        SavedTensor("router scores", s.n_routed_experts, r.router_score_bytes),
        SavedTensor("router top-k ids and weights", k, r.router_choice_bytes),
        SavedTensor("dispatched tokens (FP8)", rows * h, r.fp8_bytes),
        SavedTensor("routed SwiGLU input (FP8)", rows * 2 * s.moe_inter_dim, r.fp8_bytes),
        SavedTensor("shared SwiGLU input (FP8)", s.n_shared_experts * 2 * s.moe_inter_dim, r.fp8_bytes),
    ]
    if r.store_expert_outputs:
        out.append(SavedTensor("expert outputs", rows * h, r.hidden_bytes))
    return out


def layer_activation_bytes_per_token(s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None) -> float:
    return sum(t.bytes_per_token for t in saved_tensors(s, layer, recipe))


def activation_bytes(
    s: ModelSpec,
    layers: Iterable[int],
    tokens: int,
    *,
    embedding: bool = False,
    head: bool = False,
    mtp: bool = False,
    recipe: ActivationRecipe | None = None,
) -> float:
    """Bytes one micro-batch of ``tokens`` tokens keeps on a GPU of a stage holding ``layers`` (and
    the embedding, the output head and loss, the MTP modules) from its forward to its backward.

    Multiply by the schedule's in-flight micro-batches of the stage (``sim.results`` counts them in
    units of one model stage's activations for one micro-batch)."""
    r = recipe or ActivationRecipe()
    per_token = sum(layer_activation_bytes_per_token(s, layer, r) for layer in layers)
    if embedding:
        per_token += r.token_id_bytes
    if head:
        per_token += s.dim * r.hidden_bytes + s.vocab_size * r.logits_bytes + r.token_id_bytes
    if mtp:
        block = layer_activation_bytes_per_token(s, s.n_layers, r)
        own = 2 * s.dim * r.hidden_bytes + s.vocab_size * r.logits_bytes + r.token_id_bytes
        per_token += s.mtp_depth * (block + own)
    return per_token * tokens


def stage_activation_bytes(
    s: ModelSpec,
    stage: int,
    pp: int,
    tokens: int,
    layers_per_stage: list[int] | None = None,
    recipe: ActivationRecipe | None = None,
) -> float:
    """:func:`activation_bytes` of model stage ``stage`` of a ``pp``-stage layout (one micro-batch)."""
    p = pipeline_parts(s, pp, layers_per_stage)[stage]
    return activation_bytes(s, p.layers, tokens, embedding=stage == 0, head=p.head, mtp=p.mtp, recipe=recipe)


def inflight_at_peak(
    schedule: Schedule, device: int, stage_bytes: Mapping[int, float] | None = None
) -> dict[int, float]:
    """Micro-batches of each model stage held by ``device`` when its activations peak, by the rule
    of :mod:`sim.results` (allocated at F start, freed at the end of B, or of W when split). The
    device runs its list in order, so the order alone fixes the peak. Without ``stage_bytes`` the
    peak is in micro-batch units and the values add up to the device's ``peak_activations``; with
    the bytes of one micro-batch of each model stage, it is the peak in bytes (stages differ)."""

    def level(h: Mapping[int, float]) -> float:
        return sum(n * (1.0 if stage_bytes is None else stage_bytes[m]) for m, n in h.items())

    held: dict[int, float] = {}
    best: dict[int, float] = {}
    peak = 0.0
    for action in schedule.actions[device]:
        atoms = action.atoms()
        for a in atoms:
            if a.op is Op.F:
                m = schedule.stage_model[a.stage]
                held[m] = held.get(m, 0.0) + schedule.stage_weight[a.stage]
        if level(held) > peak * (1 + 1e-12):
            peak, best = level(held), dict(held)
        for a in atoms:
            if a.op in (Op.B, Op.W):
                m = schedule.stage_model[a.stage]
                held[m] -= schedule.stage_weight[a.stage]
    return {m: round(v, 9) for m, v in sorted(best.items()) if v > 1e-12}


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU."""

    params: float
    grads: float
    optimizer: float
    activations_peak: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations_peak

    def to_dict(self) -> dict[str, float]:
        """GB (1e9 bytes) under params, grads, optimizer, activations_peak, total."""
        return {
            "params": self.params / GB,
            "grads": self.grads / GB,
            "optimizer": self.optimizer / GB,
            "activations_peak": self.activations_peak / GB,
            "total": self.total / GB,
        }


def static_memory(p: StageParams, *, dp: int, expert_dp: int, precision: Precision | None = None) -> Memory:
    """Parameters, gradients and optimizer state of ``p`` on one GPU under ZeRO-1 (no activations)."""
    if dp < 1 or expert_dp < 1:
        raise ValueError(f"DP degrees must be >= 1, got dp={dp}, expert_dp={expert_dp}")
    pr = precision or Precision()
    weights = p.total * pr.weight_bytes
    if pr.fp8_weight_copy:
        weights += p.fp8_gemm * (FP8_BYTES + FP32_BYTES / FP8_BLOCK**2)
    optimizer = pr.optimizer_bytes * (p.non_expert / dp + p.expert / expert_dp)
    return Memory(params=weights, grads=p.total * pr.grad_bytes, optimizer=optimizer, activations_peak=0.0)


def memory_per_gpu(
    s: ModelSpec,
    stages: Sequence[int],
    *,
    pp: int,
    ep: int,
    dp: int,
    expert_dp: int,
    tokens: int,
    inflight: Mapping[int, float] | float,
    layers_per_stage: list[int] | None = None,
    precision: Precision | None = None,
    recipe: ActivationRecipe | None = None,
) -> Memory:
    """Memory of one GPU holding model stages ``stages`` of a ``pp``-stage layout (DualPipe rank r:
    ``[r, pp-1-r]``) under ZeRO-1 with DP degrees ``dp`` (non-expert) and ``expert_dp``.

    ``inflight``: micro-batches of ``tokens`` tokens held at the GPU's activation peak, either per
    model stage (:func:`inflight_at_peak`) or as one number in :mod:`sim.results` units
    (``peak_activations``), then charged at the largest held stage's activations (an upper bound).
    """
    static = static_memory(
        device_params(s, stages, pp=pp, ep=ep, layers_per_stage=layers_per_stage),
        dp=dp,
        expert_dp=expert_dp,
        precision=precision,
    )
    per_mb = {st: stage_activation_bytes(s, st, pp, tokens, layers_per_stage, recipe) for st in set(stages)}
    if isinstance(inflight, Mapping):
        unknown = set(inflight) - set(per_mb)
        if unknown:
            raise ValueError(f"in-flight micro-batches for stages {sorted(unknown)} the GPU does not hold")
        acts = sum(n * per_mb[st] for st, n in inflight.items())
    else:
        acts = inflight * max(per_mb.values())
    return Memory(static.params, static.grads, static.optimizer, acts)


# ---- the optimizer step ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerTraffic:
    """HBM bytes one AdamW step reads and writes on one GPU (its ZeRO-1 shard)."""

    shard_params: float  # parameters this GPU updates
    read: float
    written: float

    @property
    def total(self) -> float:
        return self.read + self.written


def optimizer_shard(p: StageParams, *, dp: int, expert_dp: int) -> float:
    """Parameters whose optimizer state one GPU owns: non-expert / dp + expert / expert_dp."""
    return p.non_expert / dp + p.expert / expert_dp


def optimizer_traffic(
    p: StageParams, *, dp: int, expert_dp: int, precision: Precision | None = None
) -> OptimizerTraffic:
    """One AdamW step over this GPU's shard: read the FP32 gradient shard, the FP32 master weights
    and the BF16 m and v; write the master weights, m, v and the BF16 weights (then all-gathered).
    22 bytes per shard parameter with the default precision (12 read, 10 written). An FP8 weight
    copy, if kept, is re-quantised after the all-gather and is not counted here."""
    pr = precision or Precision()
    n = optimizer_shard(p, dp=dp, expert_dp=expert_dp)
    read = n * (pr.grad_bytes + pr.master_bytes + 2 * pr.moment_bytes)
    written = n * (pr.master_bytes + 2 * pr.moment_bytes + pr.weight_bytes)
    return OptimizerTraffic(shard_params=n, read=read, written=written)


@dataclass(frozen=True)
class DpCollective:
    """One collective over a data-parallel group, in nccl-tests sizes (``sim.network.collectives``):
    ``size_bytes`` is the per-rank buffer (reduce-scatter: the input; all-gather: the output)."""

    kind: str  # "reduce_scatter" or "all_gather"
    group: int  # ranks in the group
    size_bytes: float

    @property
    def sent_bytes(self) -> float:
        """Bytes each rank sends (and receives) in a ring: (n-1)/n of the buffer."""
        return self.size_bytes * (self.group - 1) / self.group if self.group > 1 else 0.0


@dataclass(frozen=True)
class DpCollectives:
    """The ZeRO-1 step's gradient reduce-scatter and parameter all-gather, for the non-expert group
    (size ``dp``) and the expert group (size ``expert_dp``), per GPU."""

    grad_reduce_scatter: DpCollective
    param_all_gather: DpCollective
    expert_grad_reduce_scatter: DpCollective
    expert_param_all_gather: DpCollective

    def all(self) -> tuple[DpCollective, ...]:
        return (
            self.grad_reduce_scatter,
            self.param_all_gather,
            self.expert_grad_reduce_scatter,
            self.expert_param_all_gather,
        )


def dp_collectives(
    p: StageParams, *, dp: int, expert_dp: int, grad_comm_bytes: float = 4.0, precision: Precision | None = None
) -> DpCollectives:
    """Gradient reduce-scatter (``grad_comm_bytes`` per element: FP32 like the accumulated gradient
    by default; the wire precision is not published) and BF16 parameter all-gather of one GPU's
    non-expert and expert parameters."""
    pr = precision or Precision()
    return DpCollectives(
        grad_reduce_scatter=DpCollective("reduce_scatter", dp, p.non_expert * grad_comm_bytes),
        param_all_gather=DpCollective("all_gather", dp, p.non_expert * pr.weight_bytes),
        expert_grad_reduce_scatter=DpCollective("reduce_scatter", expert_dp, p.expert * grad_comm_bytes),
        expert_param_all_gather=DpCollective("all_gather", expert_dp, p.expert * pr.weight_bytes),
    )


def deepseek_v3_default(s: ModelSpec, rank: int, microbatches: int = 120) -> Memory:
    """Memory of DualPipe rank ``rank`` in DeepSeek-V3's published layout (PP16, EP64, DP128,
    expert DP 2, one 4096-token sequence per micro-batch, ``microbatches`` per step), with the
    in-flight micro-batches of each stage from the DualPipe action lists."""
    from sim.pipeline.schedules import build_schedule
    from sim.step.layout import DEFAULT_EP, DEFAULT_GPUS, DEFAULT_PP

    pp = DEFAULT_PP
    dp = DEFAULT_GPUS // pp  # 128
    stages = [rank, pp - 1 - rank]
    per_mb = {st: stage_activation_bytes(s, st, pp, s.seq_len) for st in stages}
    inflight = inflight_at_peak(build_schedule("dualpipe", pp, microbatches), rank, per_mb)
    return memory_per_gpu(
        s, stages, pp=pp, ep=DEFAULT_EP, dp=dp, expert_dp=dp // DEFAULT_EP, tokens=s.seq_len, inflight=inflight
    )
