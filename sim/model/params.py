"""Parameter counts of a DeepSeek-V3-family model, whole and per pipeline stage (pure functions).

Counts are elements (parameters), from the :class:`~sim.model.spec.ModelSpec` fields, following the
reference implementation's modules (``inference/model.py`` of deepseek-ai/DeepSeek-V3) and the
HuggingFace checkpoint's tensors (``README_WEIGHTS.md`` of the same repository):

=====================  =============================================================  ==========
part                   tensors                                                        per layer
=====================  =============================================================  ==========
MLA attention          wq_a [q_lora, dim], wq_b [heads*192, q_lora],                  187.1M
                       wkv_a [kv_lora+rope, dim], wkv_b [heads*(nope+v), kv_lora],
                       wo [dim, heads*v]
norms                  attn_norm, ffn_norm [dim], q_norm [q_lora], kv_norm [kv_lora]  16k
dense FFN (layers<3)   w1, w3 [inter, dim], w2 [dim, inter]                           396.4M
router (MoE)           gate weight [experts, dim] + bias [experts] (the bias of the   1.8M
                       auxiliary-loss-free balancing: a buffer, not trained by AdamW)
shared expert (MoE)    n_shared x 3 x dim x moe_inter                                 44.0M
routed experts (MoE)   n_routed x 3 x dim x moe_inter                                 11.27B
embedding              [vocab, dim]                                                   926.7M
output head            final norm [dim] + head [vocab, dim]                           926.7M
MTP module (depth 1)   enorm, hnorm [dim], eh_proj [dim, 2 dim], shared_head.norm     102.8M
                       [dim], one MoE transformer block; SHARES embedding and head    + block
=====================  =============================================================  ==========

DeepSeek-V3 (``twin``'s default spec): main model 671.03B parameters (published: 671B, DeepSeek-V3
report abstract and README); MTP module 11.61B unique (published: "11.5B unique parameters, excluding
the shared 0.9B Embedding and 0.9B output Head", README_WEIGHTS.md); checkpoint 684.5B (published:
"The total size of DeepSeek-V3 models on Hugging Face is 685B, which includes 671B of the Main Model
weights and 14B of the Multi-Token Prediction (MTP) Module weights", README.md): the checkpoint stores
the MTP module's own copies of the embedding and head (``model.layers.61.embed_tokens``,
``model.layers.61.shared_head.head``) and FP32 ``weight_scale_inv`` tensors (one per 128x128 block of
every FP8 weight), which HuggingFace counts as parameters. Activated per token: 36.62B counting the
routed top-k experts, the shared expert, every non-expert weight and the output head, but only the one
looked-up row of the embedding table (published: "37B activated" in the report; "36.7B (including 0.9B
for Embedding and 0.9B for the output Head)" in README_WEIGHTS.md; with the whole embedding table the
count is 37.55B, so the README's parenthesis does not reproduce; 36.62B is within 0.3% of 36.7B).

Pipeline stages: stage 0 holds the embedding, the last stage the output head and the MTP module.
The MTP module needs the embedding too: the last stage counts its own copy unless the same device
holds stage 0 (DualPipe puts stages 0 and PP-1 on ranks 0 and PP-1, "physical sharing of parameters
and gradients", V3 report section 3.2.3). Routed experts are split over EP: each GPU of a stage holds
``n_routed_experts / ep`` experts of every MoE layer of the stage; everything else is replicated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import ceil

from sim.model.spec import ModelSpec
from sim.model.stages import stage_layers
from sim.units import FP8_BLOCK  # weights are quantised in 128x128 blocks, one FP32 scale each (README_WEIGHTS.md)


@dataclass(frozen=True)
class LayerParams:
    """Parameters (elements) of one transformer layer, by part."""

    attention: int  # MLA projection weights
    norms: int  # attn_norm, ffn_norm and the q/kv latent norms
    dense_ffn: int  # dense layers only
    router: int  # MoE: gate weight and balancing bias
    shared_experts: int
    routed_experts: int  # all routed experts of the layer
    n_routed: int  # routed experts in the layer (0 for a dense layer)

    @property
    def non_expert(self) -> int:
        """Everything but the routed experts: replicated on every GPU of a stage."""
        return self.attention + self.norms + self.dense_ffn + self.router + self.shared_experts

    @property
    def total(self) -> int:
        return self.non_expert + self.routed_experts

    @property
    def per_expert(self) -> int:
        return self.routed_experts // self.n_routed if self.n_routed else 0

    def activated(self, top_k: int) -> int:
        """Parameters one token uses: the non-expert ones and ``top_k`` routed experts."""
        return self.non_expert + top_k * self.per_expert if self.n_routed else self.non_expert

    @property
    def high_precision(self) -> int:
        """Parameters outside the FP8 GEMMs (norms and router stay BF16/FP32, V3 section 3.3.1)."""
        return self.norms + self.router


def _attention_linears(s: ModelSpec) -> list[tuple[int, int]]:
    """(out, in) of every attention projection weight: MLA's (the query straight from the hidden
    state when ``q_lora_rank`` is 0) or GQA/MHA's (query, key, value, output)."""
    nh, h = s.n_heads, s.dim
    if s.attention != "mla":
        d, kv = s.attn_head_dim, s.kv_heads
        return [(nh * d, h), (kv * d, h), (kv * d, h), (h, nh * d)]
    out: list[tuple[int, int]] = []
    if s.q_lora_rank:
        out += [(s.q_lora_rank, h), (nh * s.qk_head_dim, s.q_lora_rank)]
    else:
        out.append((nh * s.qk_head_dim, h))
    out += [(s.kv_lora_rank + s.qk_rope_head_dim, h), (nh * (s.qk_nope_head_dim + s.v_head_dim), s.kv_lora_rank)]
    out.append((h, nh * s.v_head_dim))
    return out


def _fp8_linears(s: ModelSpec, layer: int) -> list[tuple[int, int]]:
    """(out, in) of every FP8 linear weight of a layer (the checkpoint's FP8 tensors)."""
    h = s.dim
    out = _attention_linears(s)
    if s.is_moe(layer):
        i = s.moe_inter_dim
        out += [(i, h), (i, h), (h, i)] * (s.n_routed_experts + s.n_shared_experts)
    else:
        out += [(s.inter_dim, h), (s.inter_dim, h), (h, s.inter_dim)]
    return out


def _attention_norms(s: ModelSpec) -> int:
    """The attention's own norms: MLA's latent norms (q_norm only with a query latent), or the
    per-head query and key norms of a GQA model with ``qk_norm`` (Qwen3: one weight of head width
    each, shared by the heads)."""
    if s.attention != "mla":
        return 2 * s.attn_head_dim if s.qk_norm else 0
    return s.q_lora_rank + s.kv_lora_rank


def layer_params(s: ModelSpec, layer: int) -> LayerParams:
    """Parameters of layer ``layer`` (0-based; ``s.n_layers`` is the MTP block, an MoE layer)."""
    h = s.dim
    attention = sum(o * i for o, i in _attention_linears(s))
    norms = 2 * h + _attention_norms(s)
    expert = 3 * h * s.moe_inter_dim
    if s.is_moe(layer):
        return LayerParams(
            attention=attention,
            norms=norms,
            dense_ffn=0,
            router=s.n_routed_experts * h + (s.n_routed_experts if s.router_bias else 0),
            shared_experts=s.n_shared_experts * expert,
            routed_experts=s.n_routed_experts * expert,
            n_routed=s.n_routed_experts,
        )
    return LayerParams(
        attention=attention,
        norms=norms,
        dense_ffn=3 * h * s.inter_dim,
        router=0,
        shared_experts=0,
        routed_experts=0,
        n_routed=0,
    )


def tp_duplicated(s: ModelSpec) -> int:
    """Attention weights a layer keeps whole on every GPU of a TP group: MLA's down-projections
    (``wq_a``, ``wkv_a``: Megatron-Core duplicates them), none for GQA/MHA."""
    if s.attention != "mla":
        return 0
    return s.dim * (s.q_lora_rank + s.kv_lora_rank + s.qk_rope_head_dim)


def embedding_params(s: ModelSpec) -> int:
    """The token embedding table [vocab, dim] (BF16, kept out of FP8)."""
    return s.vocab_size * s.dim


def head_params(s: ModelSpec) -> int:
    """The final RMSNorm and the output head [vocab, dim] (BF16): a device that holds the head holds
    its weight, tied to the embedding or not (Megatron keeps a copy on the last stage and all-reduces
    the two gradients)."""
    return s.dim + s.vocab_size * s.dim


def unique_head_params(s: ModelSpec) -> int:
    """The head's parameters the model counts once: only its norm when the head is the embedding
    table (``tie_word_embeddings``)."""
    return s.dim if s.tie_word_embeddings else head_params(s)


def mtp_own_params(s: ModelSpec) -> int:
    """One MTP module's parameters besides its transformer block and the shared embedding/head:
    enorm, hnorm, eh_proj [dim, 2 dim] and shared_head.norm (V3 section 2.2, README_WEIGHTS.md)."""
    return 2 * s.dim + 2 * s.dim * s.dim + s.dim


def mtp_params(s: ModelSpec) -> int:
    """Unique parameters of all MTP modules: own parameters and one MoE block each."""
    return s.mtp_depth * (mtp_own_params(s) + layer_params(s, s.n_layers).total)


@dataclass(frozen=True)
class ModelParams:
    """Whole-model parameter counts (elements)."""

    main: int  # embedding, 61 layers, final norm, head
    activated: int  # per token, only the looked-up embedding row counted
    activated_with_embedding_table: int
    mtp: int  # unique: without the shared embedding and head
    checkpoint: int  # the HuggingFace checkpoint's tensors (see module docstring)

    def to_dict(self) -> dict[str, float]:
        """Billions of parameters."""
        return {k: v / 1e9 for k, v in self.__dict__.items()}


def fp8_scale_params(s: ModelSpec) -> int:
    """FP32 ``weight_scale_inv`` elements of the checkpoint: one per 128x128 block of FP8 weight."""
    layers = range(s.n_layers + s.mtp_depth)
    return sum(ceil(o / FP8_BLOCK) * ceil(i / FP8_BLOCK) for layer in layers for o, i in _fp8_linears(s, layer))


def model_params(s: ModelSpec) -> ModelParams:
    layers = [layer_params(s, layer) for layer in range(s.n_layers)]
    body = sum(p.total for p in layers)
    body_active = sum(p.activated(s.n_activated_experts) for p in layers)
    main = embedding_params(s) + body + unique_head_params(s)
    # a token looks up one embedding row and multiplies by the whole head; a tied head is the table,
    # which holds that row (counted twice before: active above the total for a dense tied model)
    looked_up = 0 if s.tie_word_embeddings else s.dim
    active = looked_up + body_active + head_params(s)
    table = 0 if s.tie_word_embeddings else embedding_params(s) - s.dim  # the rest of an untied table
    mtp = mtp_params(s)
    duplicates = s.mtp_depth * (embedding_params(s) + s.vocab_size * s.dim)  # layer 61's embed_tokens and head
    return ModelParams(
        main=main,
        activated=active,
        activated_with_embedding_table=active + table,
        mtp=mtp,
        checkpoint=main + mtp + duplicates + fp8_scale_params(s),
    )


@dataclass(frozen=True)
class StageParams:
    """Parameters (elements) one GPU of a pipeline stage (or a device's set of stages) holds.

    ``non_expert`` is replicated on every GPU of the stage (data-parallel over the non-expert DP
    group); ``expert`` is this GPU's routed experts (``n_routed_experts / ep`` per MoE layer,
    data-parallel over the expert DP group); ``high_precision`` is the part of ``non_expert`` outside
    the FP8 GEMMs (embedding, head, norms, router), which an FP8 weight copy would not cover."""

    non_expert: int
    expert: int
    high_precision: int = 0

    @property
    def total(self) -> int:
        return self.non_expert + self.expert

    @property
    def fp8_gemm(self) -> int:
        """Parameters of the FP8 GEMMs (attention projections, FFNs, experts)."""
        return self.total - self.high_precision


def stage_params(
    s: ModelSpec,
    layers: Iterable[int],
    *,
    ep: int,
    embedding: bool = False,
    head: bool = False,
    mtp: bool = False,
    table_here: bool = False,
    tp: int = 1,
    etp: int = 1,
) -> StageParams:
    """Parameters on one GPU of a stage holding ``layers`` (and the embedding, the output head, the
    MTP modules without their shared embedding/head), with routed experts split over ``ep`` GPUs.
    ``table_here``: the GPU holds the embedding table in another of its stages (a tied head then
    adds only its norm). ``tp``: tensor parallelism splits the attention projections (but MLA's
    down-projections, :func:`tp_duplicated`), the dense FFNs, the embedding table and the output head
    (vocabulary-parallel) over ``tp`` GPUs; norms, the router and the shared experts stay whole on
    each. ``etp``: expert tensor parallelism splits each routed expert over ``etp`` GPUs."""
    if ep < 1 or s.n_routed_experts % ep:
        raise ValueError(f"EP ({ep}) must divide n_routed_experts ({s.n_routed_experts})")
    blocks = [layer_params(s, layer) for layer in layers]
    if mtp:
        blocks += [layer_params(s, s.n_layers)] * s.mtp_depth
    split = sum(p.attention + p.dense_ffn for p in blocks) - len(blocks) * tp_duplicated(s)  # what TP splits
    non_expert = sum(p.non_expert for p in blocks) - split + split // tp
    expert = sum(p.routed_experts for p in blocks) // ep // etp  # an expert's width split over expert TP
    high = sum(p.high_precision for p in blocks)
    if embedding:
        table = embedding_params(s) // tp
        non_expert += table
        high += table
    if head:
        beside = embedding or table_here  # a tied head beside its table: one copy
        own = unique_head_params(s) if beside else head_params(s)
        own = s.dim + (own - s.dim) // tp  # the norm whole, the weight's vocabulary shard
        non_expert += own
        high += own
    if mtp:
        own = s.mtp_depth * mtp_own_params(s)
        non_expert += own
        high += s.mtp_depth * 3 * s.dim  # its norms; eh_proj is an FP8 GEMM
    return StageParams(non_expert, expert, high)


@dataclass(frozen=True)
class StagePart:
    """What a pipeline stage holds: its layers and whether it has the embedding, head and MTP."""

    layers: range
    embedding: bool
    head: bool
    mtp: bool


def pipeline_parts(s: ModelSpec, pp: int, layers_per_stage: list[int] | None = None) -> list[StagePart]:
    """The parts of each of ``pp`` stages: layers from :func:`sim.model.stages.stage_layers`, the
    embedding on stage 0, the head and MTP modules on the last stage, which also counts the
    embedding when it has MTP modules (they use it; :func:`device_params` drops the copy where the
    device holds stage 0 too)."""
    ranges = stage_layers(s.n_layers, pp, layers_per_stage)
    last = pp - 1
    return [
        StagePart(
            layers=r,
            embedding=i == 0 or (i == last and s.mtp_depth > 0),
            head=i == last,
            mtp=i == last and s.mtp_depth > 0,
        )
        for i, r in enumerate(ranges)
    ]


def pipeline_stage_params(
    s: ModelSpec, pp: int, ep: int, layers_per_stage: list[int] | None = None
) -> list[StageParams]:
    """Parameters on one GPU of each stage when every stage is on its own device (1F1B layouts)."""
    return [
        stage_params(s, p.layers, ep=ep, embedding=p.embedding, head=p.head, mtp=p.mtp)
        for p in pipeline_parts(s, pp, layers_per_stage)
    ]


def device_params(
    s: ModelSpec, stages: Sequence[int], *, pp: int, ep: int, layers_per_stage: list[int] | None = None
) -> StageParams:
    """Parameters on one GPU that holds the model stages ``stages`` (e.g. DualPipe rank r: ``[r,
    pp-1-r]``): the union of their parts, the embedding counted once (physically shared by the first
    stage and the MTP module when both are on the device)."""
    parts = pipeline_parts(s, pp, layers_per_stage)
    held = [parts[i] for i in sorted(set(stages))]
    layers = sorted({layer for p in held for layer in p.layers})
    return stage_params(
        s,
        layers,
        ep=ep,
        embedding=any(p.embedding for p in held),
        head=any(p.head for p in held),
        mtp=any(p.mtp for p in held),
    )
