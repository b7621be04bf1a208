"""What one micro-batch keeps on a GPU of a stage: its saved activations, from its forward to its
backward, and under W-deferral what its deferred weight-gradient pass reads (pure functions).

Units: bytes, elements, tokens. Sources: **[V3]** DeepSeek-V3 Technical Report (arXiv 2412.19437),
section numbers in brackets; REFERENCE.md sections 1 and 10. How many micro-batches a GPU holds at
once, and the memory per GPU, are :mod:`sim.step.memory`.

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

Under W-deferral the backward is split into I (input gradients, on the critical path) and W (weight
gradients), run later: ZB1P, DualPipe's zero-bubble and last phases. I consumes the saved tensors
above and releases them; what waits for W is what W reads and nothing else. For a linear Y = X Wt, W
computes dWt = X^T dY: it reads the linear's input X and the gradient of its output dY (the
zero-bubble reference implementation, sail-sg/zero-bubble-pipeline-parallelism, queues exactly these:
``WeightGradStore.put(total_input, grad_output, weight, func)``). They are derived from the layer's
op list (:mod:`sim.model.layer`): every GEMM of ``attn(W)`` / ``mlp(W)`` (``head(W)``, ``mtp(W)``) is
one linear; its operands are as wide as that linear's forward GEMM (input ``k``, output ``n``), with
the W GEMM's ``k`` / tokens rows per token (top-k for the routed experts). In the V3 recipe the Wgrad
GEMMs run in FP8 [3.3] and the I pass stores their operands as FP8 copies, transposed and re-quantised
to 128x1 tiles ("activations are read, dequantised, transposed, re-quantised to 128x1 tiles and
stored", REFERENCE.md section 10; the ``*wgrad_prep`` and ``*.grad_t`` casts of the op list's I part):
1.03125 B each. Two operands DeepSeek's W casts itself (``experts_*.prep`` in ``mlp(W)``, as the trace
shows) wait in BF16 (``ActivationRecipe.wgrad_cast_in_i`` casts them in I instead). The output head's
Wgrad is a BF16 GEMM: its input and the logits' gradient wait in BF16, once per use of the head (the
main model and each MTP module); the FP32 logits themselves are consumed by the loss's backward in I.
Per token (elements; bytes for DeepSeek-V3):

==========================  ===============  =================  ========  ==========================
linear (W GEMM)             input X          output gradient    bytes     kept as
==========================  ===============  =================  ========  ==========================
q_a (wq_a)                  h                q_lora             8976      FP8 copies
kv_a (wkv_a)                h                kv_lora + rope     7986      FP8 copies
q_b (wq_b)                  q_lora           nh x qk_head       26928     FP8 copies
kv_b (wkv_b)                kv_lora          nh x (nope + v)    34320     FP8 copies
o_proj (wo)                 nh x v           h                  24288     FP8 copies
shared_up / shared_down     h / i            2i / h             21120     FP8 copies
experts_up (k rows)         k x h            k x 2 moe_inter    124672    X FP8 (the dispatched
                                                                          tokens), dY BF16
experts_down (k rows)       k x moe_inter    k x h              91904     X BF16, dY FP8
dense ffn_up / ffn_down     h / inter        2 inter / h        71808     FP8 copies
output head (per use)       h                vocab              272896    BF16
MTP eh_proj                 2h               h                  22176     FP8 copies
embedding (scatter-add)     token id         h                  14344     int64 + BF16 (assumption)
==========================  ===============  =================  ========  ==========================

An MoE layer keeps 340,194 B per token for its deferred W, 2.17 times its forward's 156,736 B; a
dense layer 174,306 B (1.81 times); the last stage of PP16 (3 MoE layers, head, MTP) 1.13 times. W
needs more than the forward saved because the recipe saves little besides the linears' inputs (norms,
up-projections and SwiGLU outputs are recomputed) while W also needs every output gradient. The
zero-bubble paper's ZB-H1 (Qi et al., ICLR 2024, section 2.1) keeps 1F1B's peak on the premise that
W needs less memory than B: a BF16 GPT layer without recomputation saves 34sbh + 5as^2b bytes
(Korthikanti et al. 2022) while its linears' inputs and output gradients are 14sbh + 18sbh = 32sbh
(*derived*: QKV, projection, fc1, fc2 inputs 2 + 2 + 2 + 8, output gradients 6 + 2 + 8 + 2, bytes
per token over h). With this recipe the premise fails: ZB1P's last rank, which holds up to PP
micro-batches awaiting W, needs PP r whole micro-batches' worth for W/whole = r > 1, against Table
2's PP (``tests/theory/test_memory_table.py`` gives the exact peaks of every schedule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sim.model.layer import FP8_CAST, LayerWork, head_ops, layer_ops, mtp_ops
from sim.model.ops import Operator
from sim.model.params import pipeline_parts
from sim.model.spec import ModelSpec
from sim.units import BF16_BYTES, FP8_TILE_BYTES, FP8_TILE_SCALE_BYTES, FP32_BYTES


@dataclass(frozen=True)
class ActivationRecipe:
    """What one layer keeps for its backward and, for a deferred W, from I to W, in bytes per element
    (the module tables)."""

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
    wgrad_fp8_bytes: float = FP8_TILE_BYTES  # an operand of an FP8 weight-gradient GEMM kept for a deferred W
    wgrad_cast_in_i: bool = False  # True: operands DeepSeek's W casts to FP8 itself are cast in I and wait in FP8
    expert_tp: int = 1  # expert TP: a GPU keeps its ETP group's gathered rows, each 1/etp of an expert wide

    @staticmethod
    def of(s: ModelSpec) -> ActivationRecipe:
        """The recipe of ``s.dtype``: DeepSeek's FP8 one, or under ``bf16`` the same tensors kept in
        BF16 (the attention output, the dispatched tokens, the SwiGLU inputs; a W's operands follow its
        GEMM's dtype, BF16 there)."""
        if s.dtype == "fp8":
            return _FP8
        return _BF16


_FP8 = ActivationRecipe()
_BF16 = ActivationRecipe(
    attn_out_bytes=BF16_BYTES, fp8_bytes=BF16_BYTES, dense_swiglu_bytes=BF16_BYTES, wgrad_fp8_bytes=BF16_BYTES
)


@dataclass(frozen=True)
class SavedTensor:
    name: str
    elements_per_token: float
    bytes_per_element: float

    @property
    def bytes_per_token(self) -> float:
        return self.elements_per_token * self.bytes_per_element


def saved_tensors(
    s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None, recompute: str = "selective"
) -> list[SavedTensor]:
    """The tensors layer ``layer`` keeps for its backward, per token (the module docstring's table),
    under activation recomputation ``recompute`` (:data:`sim.model.layer.RECOMPUTE`): ``selective``
    the table; ``none`` the table and what the selective backward recomputes
    (:func:`unrecomputed_tensors`); ``full`` the layer input alone (the rest exists only while the
    layer's backward runs: :func:`replay_bytes_per_token`)."""
    r = recipe or ActivationRecipe.of(s)
    h, nh = s.dim, s.n_heads
    if recompute == "full":
        return [SavedTensor("layer input", h, r.hidden_bytes)]
    if recompute == "none":
        return saved_tensors(s, layer, r) + unrecomputed_tensors(s, layer, r)
    if recompute != "selective":
        raise ValueError(f"recompute must be selective, none or full, got {recompute!r}")
    out = [SavedTensor("layer input", h, r.hidden_bytes)]
    if s.attention != "mla":  # the attention backward reads q, k, v: GQA's are kept, not recomputed
        out.append(SavedTensor("q, k, v (after RoPE)", (nh + 2 * s.kv_heads) * s.attn_head_dim, r.hidden_bytes))
    else:
        if s.q_lora_rank:
            out.append(SavedTensor("q latent", s.q_lora_rank, r.latent_bytes))
        else:  # no latent: the query is kept as the attention backward reads it
            out.append(SavedTensor("q", nh * s.qk_head_dim, r.hidden_bytes))
        out.append(SavedTensor("kv latent + k_rope", s.kv_lora_rank + s.qk_rope_head_dim, r.latent_bytes))
    out += [
        SavedTensor(
            f"attention output ({'E5M6' if s.dtype == 'fp8' else 'BF16'})", nh * s.value_head_dim, r.attn_out_bytes
        ),
        SavedTensor("softmax log-sum-exp", nh, r.softmax_stats_bytes),
        SavedTensor("residual after attention", h, r.hidden_bytes),
    ]
    if not s.is_moe(layer):
        return [*out, SavedTensor("dense SwiGLU input", 2 * s.inter_dim, r.dense_swiglu_bytes)]
    k = s.n_activated_experts
    rows = k if r.dispatched_rows_per_token is None else r.dispatched_rows_per_token
    kept = "FP8" if s.dtype == "fp8" else "BF16"
    out += [
        SavedTensor("router scores", s.n_routed_experts, r.router_score_bytes),
        SavedTensor("router top-k ids and weights", k, r.router_choice_bytes),
        SavedTensor(f"dispatched tokens ({kept})", rows * r.expert_tp * h, r.fp8_bytes),  # gathered over ETP
        SavedTensor(f"routed SwiGLU input ({kept})", rows * 2 * s.moe_inter_dim, r.fp8_bytes),
        SavedTensor(f"shared SwiGLU input ({kept})", s.n_shared_experts * 2 * s.moe_inter_dim, r.fp8_bytes),
    ]
    if r.store_expert_outputs:
        out.append(SavedTensor("expert outputs", rows * h, r.hidden_bytes))
    return out


def unrecomputed_tensors(s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None) -> list[SavedTensor]:
    """What a backward without recomputation (``recompute: none``) keeps beyond the table: the outputs
    of the ops the selective recipe recomputes (the ``recompute=True`` ops of
    :func:`sim.model.layer.layer_ops`), per token. The norm outputs are kept as the GEMMs that read
    them take them (FP8 copies in the FP8 recipe, BF16 otherwise); MLA's queries, keys and values
    after up-projection and RoPE in BF16, as the attention kernel reads them; the shared experts'
    SwiGLU output as the down-projection reads it. The routed and dense SwiGLU outputs are recomputed
    inside their fused backward kernel under every mode (the op lists have no separate recompute)."""
    r = recipe or ActivationRecipe.of(s)
    h, nh = s.dim, s.n_heads
    out = [SavedTensor("attention norm output", h, r.fp8_bytes)]
    if s.attention == "mla":
        if s.q_lora_rank:
            out.append(SavedTensor("q latent norm output", s.q_lora_rank, r.fp8_bytes))
            out.append(SavedTensor("q (after up-projection and RoPE)", nh * s.qk_head_dim, r.hidden_bytes))
        out += [
            SavedTensor("kv latent norm output", s.kv_lora_rank, r.fp8_bytes),
            SavedTensor("k (after up-projection and RoPE)", nh * s.qk_head_dim, r.hidden_bytes),
            SavedTensor("v (after up-projection)", nh * s.value_head_dim, r.hidden_bytes),
        ]
    out.append(SavedTensor("FFN norm output", h, r.fp8_bytes))
    if s.is_moe(layer) and s.n_shared_experts:
        out.append(SavedTensor("shared SwiGLU output", s.n_shared_experts * s.moe_inter_dim, r.fp8_bytes))
    return out


def replay_bytes_per_token(s: ModelSpec, layers: Iterable[int], recipe: ActivationRecipe | None = None) -> float:
    """Under ``recompute: full``, the most a layer of ``layers`` holds while its backward runs, per
    token, beyond the input it keeps anyway: its re-run forward keeps everything a backward without
    recomputation reads (``recompute: none``'s tensors), freed as its backward ends, one layer at a time."""
    r = recipe or ActivationRecipe.of(s)
    kept = s.dim * r.hidden_bytes  # the layer input, saved under full
    return max((layer_activation_bytes_per_token(s, layer, r, "none") - kept for layer in layers), default=0.0)


def layer_activation_bytes_per_token(
    s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None, recompute: str = "selective"
) -> float:
    return sum(t.bytes_per_token for t in saved_tensors(s, layer, recipe, recompute))


def activation_bytes(
    s: ModelSpec,
    layers: Iterable[int],
    tokens: int,
    *,
    embedding: bool = False,
    head: bool = False,
    mtp: bool = False,
    recipe: ActivationRecipe | None = None,
    recompute: str = "selective",
) -> float:
    """Bytes one micro-batch of ``tokens`` tokens keeps on a GPU of a stage holding ``layers`` (and
    the embedding, the output head and loss, the MTP modules) from its forward to its backward, under
    activation recomputation ``recompute`` (the MTP modules' transformer blocks as the layers; the head,
    the loss and the MTP modules' own projections are not recomputed: Megatron checkpoints transformer
    layers only).

    Multiply by the schedule's in-flight micro-batches of the stage (``sim.results`` counts them in
    units of one model stage's activations for one micro-batch)."""
    r = recipe or ActivationRecipe.of(s)
    per_token = sum(layer_activation_bytes_per_token(s, layer, r, recompute) for layer in layers)
    if embedding:
        per_token += r.token_id_bytes
    if head:
        per_token += s.dim * r.hidden_bytes + s.vocab_size * r.logits_bytes + r.token_id_bytes
    if mtp:  # its transformer block recomputed as a layer is; its own projections and the head not
        block = layer_activation_bytes_per_token(s, s.n_layers, r, recompute)
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


# ---- what a deferred W keeps ----------------------------------------------------------------------

_PROBE_TOKENS = 1 << 16  # tokens of the micro-batch the op lists are built for; the counts are per token


def wgrad_operands(
    annotations: Mapping[str, Sequence[Operator]], tokens: int, r: ActivationRecipe
) -> list[SavedTensor]:
    """Per token, the operands of the weight-gradient GEMMs of ``annotations`` (an op list built for
    ``tokens`` tokens): for every linear, its input and the gradient of its output, each as wide as
    the linear's forward GEMM says (``k`` and ``n`` of the ``(F)`` GEMM of the same name), times its
    rows per token (the W GEMM's ``k`` over ``tokens``: top-k for the routed experts). An FP8 W GEMM
    reads FP8 operands (``wgrad_fp8_bytes``), a BF16 one BF16; an operand the W part itself casts to
    FP8 (an ``fp8-cast-channel`` op in ``(W)``) waits in BF16 (in FP8 with ``wgrad_cast_in_i``)."""
    forward = {op.name: op for a, ops in annotations.items() if a.endswith("(F)") for op in ops if op.kind == "gemm"}
    rows: dict[str, float] = {}
    dtype: dict[str, str] = {}
    cast_in_w: dict[str, float] = {}
    for a, ops in annotations.items():
        if not a.endswith("(W)"):
            continue
        for op in ops:
            if op.kind == "memory" and op.kernel == "fp8-cast-channel":
                cast_in_w[op.name.removesuffix(".prep")] = op.nbytes / FP8_CAST
            if op.kind != "gemm":
                continue
            linear = re.sub(r"^expert\d+_", "experts_", op.name.removesuffix(".wgrad"))
            f = forward[linear]
            if {op.m, op.n} != {f.k, f.n}:
                raise ValueError(f"{op.name}: W GEMM {op.m}x{op.n} is not the shape of {linear} ({f.k} -> {f.n})")
            rows[linear] = rows.get(linear, 0.0) + op.k / tokens
            dtype[linear] = op.dtype
    late: dict[tuple[str, str], bool] = {}  # (linear, operand) the W part casts itself
    for linear, elements in cast_in_w.items():
        f = forward[linear]
        per_row = elements / tokens / rows[linear]
        what = "input" if math.isclose(per_row, f.k) else "output gradient" if math.isclose(per_row, f.n) else ""
        if not what:
            raise ValueError(f"{linear}.prep casts {per_row:g} elements per row, neither its input nor its output")
        late[(linear, what)] = True
    out = []
    for linear, per_token in rows.items():
        f = forward[linear]
        width = r.wgrad_fp8_bytes if dtype[linear] == "fp8" else BF16_BYTES
        for what, elements in (("input", f.k), ("output gradient", f.n)):
            waits_bf16 = late.get((linear, what), False) and not r.wgrad_cast_in_i
            out.append(SavedTensor(f"{linear} {what}", per_token * elements, BF16_BYTES if waits_bf16 else width))
    return out


@lru_cache(maxsize=256)
def _layer_wgrad(s: ModelSpec, moe: bool, r: ActivationRecipe) -> tuple[SavedTensor, ...]:
    """:func:`wgrad_operands` of a dense (``moe`` false) or MoE layer: a layer's ops depend on its
    index only through that (:func:`sim.model.layer.layer_ops`), so one build serves every layer of a kind."""
    t = _PROBE_TOKENS
    k = s.n_activated_experts if r.dispatched_rows_per_token is None else r.dispatched_rows_per_token
    work = LayerWork(t, (round(k * t * r.expert_tp),) if moe else (), etp=r.expert_tp)
    layer = s.n_dense_layers if moe else 0
    return tuple(wgrad_operands(layer_ops(s, layer, work).annotations, t, r))


def wgrad_tensors(s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None) -> list[SavedTensor]:
    """What layer ``layer`` keeps from its input-gradient pass (I) to its deferred weight-gradient
    pass (W), per token: the operands of its W GEMMs (:func:`wgrad_operands`, the module table)."""
    return list(_layer_wgrad(s, s.is_moe(layer), recipe or ActivationRecipe.of(s)))


def layer_wgrad_bytes_per_token(s: ModelSpec, layer: int, recipe: ActivationRecipe | None = None) -> float:
    return sum(t.bytes_per_token for t in wgrad_tensors(s, layer, recipe))


def wgrad_activation_bytes(
    s: ModelSpec,
    layers: Iterable[int],
    tokens: int,
    *,
    embedding: bool = False,
    head: bool = False,
    mtp: bool = False,
    recipe: ActivationRecipe | None = None,
) -> float:
    """Bytes one micro-batch of ``tokens`` tokens keeps on a GPU of a stage (as :func:`activation_bytes`)
    from its input-gradient pass (I) to its deferred weight-gradient pass (W): what W reads, and
    nothing else (the module table). The embedding's W, a scatter-add into the table, reads the token
    ids and the gradient of its output (BF16 h); each use of the output head (the main model's and
    each MTP module's) its input and the gradient of its logits (BF16)."""
    r = recipe or ActivationRecipe.of(s)
    t = _PROBE_TOKENS
    per_token = sum(layer_wgrad_bytes_per_token(s, layer, r) for layer in layers)
    if embedding:
        per_token += r.token_id_bytes + s.dim * r.hidden_bytes
    head_use = sum(x.bytes_per_token for x in wgrad_operands(head_ops(s, t), t, r)) if head or mtp else 0.0
    if head:
        per_token += head_use
    if mtp:
        own = sum(x.bytes_per_token for x in wgrad_operands(mtp_ops(s, t), t, r))
        per_token += s.mtp_depth * (layer_wgrad_bytes_per_token(s, s.n_layers, r) + own + head_use)
    return per_token * tokens


def stage_wgrad_bytes(
    s: ModelSpec,
    stage: int,
    pp: int,
    tokens: int,
    layers_per_stage: list[int] | None = None,
    recipe: ActivationRecipe | None = None,
) -> float:
    """:func:`wgrad_activation_bytes` of model stage ``stage`` of a ``pp``-stage layout (one micro-batch)."""
    p = pipeline_parts(s, pp, layers_per_stage)[stage]
    return wgrad_activation_bytes(s, p.layers, tokens, embedding=stage == 0, head=p.head, mtp=p.mtp, recipe=recipe)
