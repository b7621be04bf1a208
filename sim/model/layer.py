"""The operators of one layer, in the order DeepSeek's training code launches them.

Per micro-batch on one GPU: ``tokens`` tokens (``tokens / seq_len`` sequences) enter the layer; an
MoE layer's experts on this GPU compute ``rows_per_expert`` token rows each (from the routing: their
sum is the M of the grouped expert GEMMs, ``tokens x top-k`` when routing is balanced over EP).

Annotations are DeepSeek's (REFERENCE.md section 6): ``attn(F)`` (norms, MLA projections, attention,
output projection, router), ``dispatch(F)``, ``mlp(F)`` (shared and routed experts), ``combine(F)``;
backward ``combine(B)`` (a dispatch of the output gradients), ``mlp(B)`` (input gradients),
``mlp(W)`` (weight gradients, split over two streams), ``dispatch(B)`` (a combine), ``attn(B)``,
``attn(W)``. Recipe (REFERENCE.md section 1): FP8 GEMMs with 1x128 activation and 128x128 weight
scales for forward, dgrad and wgrad; attention core, router gate and output head in BF16; norms and
MLA up-projections recomputed in the backward; SwiGLU input kept in FP8 and its output recomputed;
the attention output kept in a custom E5M6 format; dispatch in FP8, combine in BF16.

Byte counts of memory-bound ops are what they read and write (BF16 2 bytes, FP8 1 byte plus one
FP32 scale per 128 elements). ``kernels`` follows DeepSeek's implementation as its trace shows it
(``shared/reference/deepseek-v3/profile-data-train.json``): the trace calibration matches kernels to
these ops by order, and the count per annotation equals the trace's (tests check both).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.model.compute_whatifs import NO_WHATIFS, ComputeWhatIfs
from sim.model.megatron_dispatch import bf16_rows, megatron_dispatch
from sim.model.ops import Operator
from sim.model.spec import ModelSpec
from sim.units import BF16_BYTES, FP8_CAST_BYTES, FP8_TILE_BYTES

FP8_CAST = FP8_CAST_BYTES  # bytes per element: read BF16, write FP8 and its 1x128 tile's scale share (sim.units)


@dataclass(frozen=True)
class LayerWork:
    """What one micro-batch brings to a layer on one GPU: ``tokens`` of the micro-batch (a TP group's
    whole sequence), ``tp`` the tensor-parallel degree (with sequence parallelism each GPU holds
    ``tokens / tp`` of them outside the TP regions, the MoE part included)."""

    tokens: int
    rows_per_expert: tuple[int, ...] = ()  # MoE: token rows of each expert on this GPU
    tp: int = 1
    cp: int = 1  # context parallelism: ``tokens`` are this CP rank's share of the micro-batch
    recompute: str = "selective"  # activation recomputation: selective | none | full (RECOMPUTE)
    etp: int = 1  # expert tensor parallelism: routed experts split over etp GPUs (rows: the ETP group's)
    compute: ComputeWhatIfs = NO_WHATIFS  # the compute-side hardware what-ifs (sim.model.compute_whatifs)
    dispatcher: str = "deepep"  # how MoE rows travel: deepep, or alltoall (Megatron's NCCL dispatcher)
    dispatch_format: str = "fp8"  # the dispatched rows under an FP8 recipe: fp8 (DeepSeek's) or bf16 (Megatron's)

    @property
    def sp_tokens(self) -> int:
        """Tokens one GPU holds in the sequence-parallel regions (norms, residual, router, experts)."""
        return self.tokens // self.tp

    @property
    def rows(self) -> int:
        return sum(self.rows_per_expert)


def _linear(
    prefix: str, ann: str, m: int, n: int, k: int, recompute: bool = False, cast: bool = True
) -> list[Operator]:
    """An FP8 linear: cast the BF16 input to FP8 (1x128 tiles), transpose the scales, GEMM."""
    ops = []
    if cast:
        ops.append(
            Operator(f"{prefix}.cast", ann, "memory", nbytes=FP8_CAST * m * k, kernel="fp8-cast", recompute=recompute)
        )
    ops.append(Operator(f"{prefix}.scales", ann, "small"))
    ops.append(Operator(prefix, ann, "gemm", m=m, n=n, k=k, recompute=recompute))
    return ops


def _norm(name: str, ann: str, t: int, width: int, recompute: bool = False) -> Operator:
    return Operator(name, ann, "memory", nbytes=4.0 * t * width, kernel="norm", recompute=recompute)


def _norm_bwd(name: str, ann: str, t: int, width: int, kernels: int) -> Operator:
    return Operator(name, ann, "memory", kernels=kernels, nbytes=6.0 * t * width, kernel="norm-bwd")


def _channel_cast(name: str, ann: str, elements: float, kernels: int = 1) -> Operator:
    """Per-channel FP8 cast and transpose of a wgrad operand (K-major for the weight gradient)."""
    return Operator(name, ann, "memory", kernels=kernels, nbytes=FP8_CAST * elements, kernel="fp8-cast-channel")


TP_KINDS = (  # the collectives of TP, CP and expert TP
    "tp-allgather",
    "tp-reducescatter",
    "tp-allreduce",
    "cp-allgather",
    "cp-reducescatter",
    "etp-allgather",
    "etp-reducescatter",
)


def _tp(name: str, ann: str, kind: str, t: int, width: int, group: str = "tp") -> Operator:
    """A collective of ``t x width`` BF16 elements over the TP group (sequence parallelism: an
    all-gather into, or a reduce-scatter out of, a TP region) or the CP group (``group="cp"``: the keys
    and values of every CP rank), on the communication stream; what comes after it waits for it
    (:mod:`sim.chunk.timer`). ``t x width x 2`` bytes is nccl-tests' size: the all-gather's output,
    the reduce-scatter's input."""
    return Operator(name, ann, "comm", stream="comm", comm=f"{group}-{kind}", nbytes=BF16_BYTES * t * width)


def attention_forward(s: ModelSpec, t: int, moe: bool, tp: int = 1, cp: int = 1) -> list[Operator]:
    """``attn(F)``: norm, attention projections (MLA's or GQA's, :func:`_mla_forward`,
    :func:`_gqa_forward`), attention, output projection, FFN norm and, in an MoE layer, the router
    and the FP8 cast of the dispatched tokens."""
    a = "attn(F)"
    h, nh, ts = s.dim, s.n_heads // tp, t // tp
    ops = [_norm("attn_norm", a, ts, h)]
    if tp > 1:
        ops.append(_tp("tp.attn_in", a, "allgather", t, h))
    ops += _mla_forward(s, t, tp, cp) if s.attention == "mla" else _gqa_forward(s, t, tp, cp)
    ops += [
        Operator(
            "attention",
            a,
            "attention",
            heads=nh,
            seq=s.seq_len,
            qk_dim=s.qk_head_dim,
            v_dim=s.value_head_dim,
            sequences=max(1, t * cp // s.seq_len),
            cp=cp,
        ),
        Operator("attn_out.store", a, "memory", nbytes=3.0 * t * nh * s.value_head_dim, kernel="fp8-cast-e5m6"),
    ]
    ops += _linear("o_proj", a, t, h, nh * s.value_head_dim)
    if tp > 1:
        ops.append(_tp("tp.attn_out", a, "reducescatter", t, h))
    ops += [Operator("residual", a, "memory", nbytes=4.0 * ts * h, kernel="elementwise"), _norm("ffn_norm", a, ts, h)]
    if moe:
        e = s.n_routed_experts
        ops += [
            Operator("gate", a, "gemm", m=ts, n=e, k=h, dtype="bf16", scaling="none"),
            Operator("router", a, "memory", kernels=33, nbytes=8.0 * ts * e, kernel="router"),
            Operator("dispatch.cast", a, "memory", nbytes=FP8_CAST * ts * h, kernel="fp8-cast"),
        ]
    return ops


def _mla_forward(s: ModelSpec, t: int, tp: int = 1, cp: int = 1) -> list[Operator]:
    """MLA's projections (V3 section 2.1.1): the query through its latent (``wq_a``, norm, ``wq_b``;
    straight ``wq`` when ``q_lora_rank`` is 0, as DeepSeek-V2-Lite), the key/value latent and the
    decoupled RoPE key (``wkv_a``), the latent's norm, its up-projection (``wkv_b``), RoPE. Under TP
    (Megatron-Core's MLA) the down-projections are duplicated on every GPU of the group, computed on
    the gathered sequence; the up-projections (and ``wq``) are split by heads. Under CP the keys and
    values, as the attention kernel reads them (each head's ``qk_head_dim`` key and ``v_head_dim``
    value, BF16: Megatron-Core's MLA hands them to Transformer Engine's context-parallel attention),
    are all-gathered over the CP group, as GQA's are."""
    a = "attn(F)"
    h, q, c, p, nh = s.dim, s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim, s.n_heads // tp
    ops = _linear("q_a", a, t, q, h) if q else []
    ops += _linear("kv_a", a, t, c + p, h)
    if q:
        ops += [
            Operator("split", a, "small", kernels=2),
            _norm("q_norm", a, t, q),
            Operator("q_norm.out", a, "memory", nbytes=4.0 * t * q, kernel="elementwise"),
        ]
    else:
        ops.append(Operator("split", a, "small", kernels=2))
    ops += [_norm("kv_norm", a, t, c), Operator("k_rope", a, "memory", nbytes=4.0 * t * p, kernel="elementwise")]
    ops += _linear("q_b", a, t, nh * s.qk_head_dim, q) if q else _linear("q", a, t, nh * s.qk_head_dim, h)
    ops += _linear("kv_b", a, t, nh * (s.qk_nope_head_dim + s.v_head_dim), c)
    ops.append(Operator("rope", a, "memory", nbytes=8.0 * t * nh * p, kernel="rope"))
    if cp > 1:
        ops.append(_tp("cp.kv", a, "allgather", t * cp, nh * (s.qk_head_dim + s.v_head_dim), "cp"))
    return ops


def _gqa_forward(s: ModelSpec, t: int, tp: int = 1, cp: int = 1) -> list[Operator]:
    """GQA/MHA projections: one fused QKV linear (``n_heads`` query and ``kv_heads`` key and value
    heads of ``attn_head_dim``, each split over TP), Qwen3's per-head RMSNorm of queries and keys where
    the model has it, RoPE on queries and keys (read and written in BF16)."""
    a = "attn(F)"
    h, nh, kv, d = s.dim, s.n_heads // tp, s.kv_heads // tp, s.attn_head_dim
    ops = _linear("qkv", a, t, (nh + 2 * kv) * d, h)
    if s.qk_norm:
        ops.append(_norm("qk_norm", a, t, (nh + kv) * d))
    ops.append(Operator("rope", a, "memory", nbytes=4.0 * t * (nh + kv) * d, kernel="rope"))
    if cp > 1:  # context parallelism by all-gathered keys and values (as the Llama 3 paper's)
        ops.append(_tp("cp.kv", a, "allgather", t * cp, 2 * kv * d, "cp"))
    return ops


def _shared_kept(shared_width: int, ops: list[Operator]) -> list[Operator]:
    """``ops`` without the shared experts' (``shared*``) where the model has none (Qwen3, Mixtral)."""
    return ops if shared_width else [op for op in ops if not op.name.startswith("shared")]


def moe_forward(s: ModelSpec, w: LayerWork) -> list[Operator]:
    """``mlp(F)``: shared expert, expert mapping, permutation, grouped expert GEMMs, SwiGLU,
    un-permutation weighted by the gates, FP8 copies of the SwiGLU inputs kept for the backward. Under
    expert TP (``w.etp``, Megatron-Core's ``--expert-tensor-parallel-size``) the routed experts' width
    is split over the ETP group, which all-gathers its dispatched rows before them and
    reduce-scatters their outputs after (:func:`_etp`); ``w.rows_per_expert`` are then the group's."""
    a, t, r, h = "mlp(F)", w.tokens, w.rows, s.dim
    si = s.n_shared_experts * s.moe_inter_dim
    i = s.moe_inter_dim // w.etp  # a routed expert's width on this GPU
    g = len(w.rows_per_expert)
    return _shared_kept(
        si,
        [
            Operator("shared_up.scales", a, "small"),
            Operator("shared_up", a, "gemm", m=t, n=2 * si, k=h),
            *_etp(s, w, "etp.in", a, "allgather"),
            Operator("expert_map", a, "memory", kernels=2, nbytes=16.0 * r, kernel="expert-map"),
            Operator("permute", a, "memory", kernels=3, nbytes=2.0 * r * h * FP8_TILE_BYTES, kernel="permute"),
            Operator("experts_up", a, "gemm", m=r, n=2 * i, k=h, groups=g),
            Operator("swiglu", a, "memory", kernels=3, nbytes=r * (2 * i * 2 + i * FP8_CAST / 3), kernel="swiglu"),
            Operator("experts_down.prep", a, "small"),
            Operator("experts_down", a, "gemm", m=r, n=h, k=i, groups=g),
            Operator("unpermute", a, "memory", nbytes=3.0 * r * h, kernel="unpermute"),
            *_etp(s, w, "etp.out", a, "reducescatter"),
            Operator("shared_swiglu", a, "memory", nbytes=t * (2 * si * 2 + si * FP8_CAST / 3), kernel="swiglu"),
            Operator("shared_down.scales", a, "small"),
            Operator("shared_down", a, "gemm", m=t, n=h, k=si),
            Operator("experts_up.store", a, "memory", nbytes=FP8_CAST * r * 2 * i, kernel="fp8-cast"),
            Operator("shared_up.store", a, "memory", nbytes=FP8_CAST * t * 2 * si, kernel="fp8-cast"),
        ],
    )


def _etp(s: ModelSpec, w: LayerWork, name: str, ann: str, kind: str) -> list[Operator]:
    """An expert-TP collective of the ETP group's ``w.rows`` token rows of ``s.dim`` (none without
    expert TP), on the communication stream: the all-gathers move what the dispatch carried (FP8 in
    the FP8 recipe, BF16 otherwise), the reduce-scatters BF16 partial sums; nccl-tests' sizes (the
    all-gather's output, the reduce-scatter's input)."""
    if w.etp == 1:
        return []
    per = FP8_TILE_BYTES if kind == "allgather" and s.dtype == "fp8" else BF16_BYTES
    return [Operator(name, ann, "comm", stream="comm", comm=f"etp-{kind}", nbytes=per * w.rows * s.dim)]


def moe_backward_input(s: ModelSpec, w: LayerWork) -> list[Operator]:
    """``mlp(B)``: input gradients of the shared and routed experts, SwiGLU recomputed, the FFN norm
    recomputed, FP8 operands for the weight gradients prepared. Under expert TP the output gradients'
    rows are all-gathered over the ETP group before the routed experts' backward and their input
    gradients reduce-scattered after it."""
    a, t, r, h = "mlp(B)", w.tokens, w.rows, s.dim
    si = s.n_shared_experts * s.moe_inter_dim
    i = s.moe_inter_dim // w.etp
    g = len(w.rows_per_expert)
    return _shared_kept(
        si,
        [
            Operator("shared_swiglu.restore", a, "memory", nbytes=FP8_CAST * t * 2 * si, kernel="cast-back"),
            Operator("shared_down.scales", a, "small", kernels=2),
            Operator("shared_down.dgrad", a, "gemm", m=t, n=si, k=h),
            _channel_cast("shared_down.grad_t", a, t * h),
            Operator(
                "shared_swiglu.recompute", a, "memory", nbytes=t * (2 * si * 2 + si), kernel="swiglu", recompute=True
            ),
            Operator(
                "shared_swiglu.bwd", a, "memory", nbytes=t * (2 * si * 2 + si * 2 + 2 * si * 2), kernel="swiglu-bwd"
            ),
            *_etp(s, w, "etp.out.grad", a, "allgather"),
            Operator("experts_swiglu.restore", a, "memory", nbytes=FP8_CAST * r * 2 * i, kernel="cast-back"),
            Operator("permute", a, "memory", kernels=2, nbytes=2.0 * r * h * FP8_TILE_BYTES, kernel="permute"),
            Operator("experts_down.dgrad", a, "gemm", m=r, n=i, k=h, groups=g),
            Operator(
                "experts_swiglu.bwd",
                a,
                "memory",
                kernels=2,
                nbytes=r * (2 * i * 2 + i * 2 + 2 * i * 2),
                kernel="swiglu-bwd",
            ),
            _channel_cast("experts_down.grad_t", a, r * i),
            Operator("misc", a, "small"),
            _norm("ffn_norm.recompute", a, t, h, recompute=True),
            Operator("ffn_norm.cast", a, "memory", nbytes=FP8_CAST * t * h, kernel="fp8-cast", recompute=True),
            Operator("experts_up.grad_cast", a, "memory", nbytes=FP8_CAST * r * 2 * i, kernel="fp8-cast"),
            Operator("misc2", a, "small"),
            Operator("experts_up.dgrad", a, "gemm", m=r, n=h, k=2 * i, groups=g),
            Operator("unpermute", a, "memory", nbytes=3.0 * r * h, kernel="unpermute"),
            *_etp(s, w, "etp.in.grad", a, "reducescatter"),
            _channel_cast("experts_up.grad_t", a, r * 2 * i),
            Operator("shared_up.restore", a, "memory", nbytes=FP8_CAST * t * h, kernel="cast-back"),
            Operator("shared_up.scales", a, "small"),
            Operator("shared_up.grad_cast", a, "memory", nbytes=FP8_CAST * t * 2 * si, kernel="fp8-cast"),
            Operator("shared_up.scales2", a, "small"),
            Operator("shared_up.dgrad", a, "gemm", m=t, n=h, k=2 * si),
            _channel_cast("shared.grad_t", a, t * (2 * si + h), kernels=2),
        ],
    )


def moe_backward_weight(s: ModelSpec, w: LayerWork) -> list[Operator]:
    """``mlp(W)``: weight gradients; the routed experts' alternate between the two compute streams
    (DeepSeek runs every other one on a second stream)."""
    a, t, h = "mlp(W)", w.tokens, s.dim
    si = s.n_shared_experts * s.moe_inter_dim
    i = s.moe_inter_dim // w.etp
    ops = [
        Operator("shared_down.wgrad", a, "gemm", m=h, n=si, k=t),
        _channel_cast("experts_down.prep", a, w.rows * i),
    ]
    streams = ("compute", "wgrad")
    ops += [
        Operator(f"expert{e}_down.wgrad", a, "gemm", stream=streams[e % 2], m=h, n=i, k=max(rows, 1))
        for e, rows in enumerate(w.rows_per_expert)
    ]
    ops.append(_channel_cast("experts_up.prep", a, w.rows * 2 * i))
    ops += [
        Operator(f"expert{e}_up.wgrad", a, "gemm", stream=streams[e % 2], m=h, n=2 * i, k=max(rows, 1))
        for e, rows in enumerate(w.rows_per_expert)
    ]
    ops.append(Operator("shared_up.wgrad", a, "gemm", m=h, n=2 * si, k=t))
    return _shared_kept(si, ops)


def attention_backward_input(s: ModelSpec, t: int, moe: bool, tp: int = 1, cp: int = 1) -> list[Operator]:
    """``attn(B)``: router backward, FFN-norm backward, output projection dgrad, the attention
    projections' recomputation and backward (:func:`_mla_backward`, :func:`_gqa_backward`), the
    attention norm's recomputation and backward. Under TP the output gradient is all-gathered before
    the output projection's dgrad (the backward of its reduce-scatter)."""
    a = "attn(B)"
    h, nh, v, ts = s.dim, s.n_heads // tp, s.value_head_dim, t // tp
    ops: list[Operator] = []
    if moe:
        e = s.n_routed_experts
        ops += [
            Operator("router.bwd", a, "small", kernels=25),
            Operator("gate.dgrad", a, "gemm", m=ts, n=h, k=e, dtype="bf16", scaling="none"),
            Operator("gate.wgrad", a, "gemm", m=e, n=h, k=ts, dtype="bf16", scaling="none"),
            Operator("gate.grad_add", a, "memory", nbytes=4.0 * ts * h, kernel="elementwise"),
        ]
    ops += [
        _norm_bwd("ffn_norm.bwd", a, ts, h, kernels=3),
        Operator("residual.grad", a, "memory", nbytes=4.0 * ts * h, kernel="elementwise"),
    ]
    if tp > 1:
        ops.append(_tp("tp.attn_out.grad", a, "allgather", t, h))
    ops += [
        Operator("attn_out.restore", a, "memory", nbytes=3.0 * t * nh * v, kernel="cast-back-e5m6"),
        Operator("o_proj.grad_cast", a, "memory", nbytes=FP8_CAST * t * h, kernel="fp8-cast"),
        Operator("o_proj.grad_t", a, "memory", nbytes=2.0 * t * h, kernel="transpose"),
        Operator("o_proj.scales", a, "small"),
        Operator("o_proj.dgrad", a, "gemm", m=t, n=nh * v, k=h),
        _channel_cast("o_proj.wgrad_prep", a, t * (nh * v + h), kernels=2),
    ]
    ops += _mla_backward(s, t, tp, cp) if s.attention == "mla" else _gqa_backward(s, t, tp, cp)
    ops += [
        Operator("residual.grad2", a, "memory", nbytes=4.0 * ts * h, kernel="elementwise"),
        _norm_bwd("attn_norm.bwd", a, ts, h, kernels=3),
    ]
    return ops


def _attention_bwd(s: ModelSpec, t: int, tp: int = 1, cp: int = 1) -> Operator:
    return Operator(
        "attention.bwd",
        "attn(B)",
        "attention",
        kernels=3,
        heads=s.n_heads // tp,
        seq=s.seq_len,
        qk_dim=s.qk_head_dim,
        v_dim=s.value_head_dim,
        phase="bwd",
        sequences=max(1, t * cp // s.seq_len),
        cp=cp,
    )


def _mla_backward(s: ModelSpec, t: int, tp: int = 1, cp: int = 1) -> list[Operator]:
    """MLA's backward: the latent norms and up-projections recomputed (V3 section 3.2.3), attention
    backward, the up- and down-projections' input gradients with their FP8 operands. Under TP the
    latents' gradients from each GPU's heads are all-reduced before the duplicated down-projections'
    backward (whose input gradient is then whole on every GPU: each keeps its sequence-parallel share,
    except without a query latent, where the query's part is reduce-scattered), and the gathered input
    is gathered again for their weight gradients. Under CP the keys and values are gathered again for
    the attention's backward and their gradients reduce-scattered after it (as GQA's)."""
    a = "attn(B)"
    h, q, c, p, nh = s.dim, s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim, s.n_heads // tp
    qk, v = s.qk_head_dim, s.v_head_dim
    ops: list[Operator] = []
    if q:
        ops += [
            _norm("q_norm.recompute", a, t, q, recompute=True),
            Operator("q_norm.out", a, "memory", nbytes=4.0 * t * q, kernel="elementwise", recompute=True),
        ]
    ops.append(_norm("kv_norm.recompute", a, t, c, recompute=True))
    if q:
        ops += _linear("q_b.recompute", a, t, nh * qk, q, recompute=True)
    ops += _linear("kv_b.recompute", a, t, nh * (s.qk_nope_head_dim + v), c, recompute=True)
    ops.append(Operator("rope.recompute", a, "memory", nbytes=8.0 * t * nh * p, kernel="rope", recompute=True))
    kv = nh * (qk + v)  # a token's keys and values over the GPU's heads
    if cp > 1:
        ops.append(_tp("cp.kv.again", a, "allgather", t * cp, kv, "cp"))
    ops.append(_attention_bwd(s, t, tp, cp))
    if cp > 1:
        ops.append(_tp("cp.kv.grad", a, "reducescatter", t * cp, kv, "cp"))
    ops.append(Operator("attention.grad_t", a, "small"))
    ops += _linear("kv_b.dgrad", a, t, c, nh * (s.qk_nope_head_dim + v))
    if tp > 1:
        ops.append(_tp("tp.kv_latent.grad", a, "allreduce", t, c + p))
    ops += [Operator("k_rope.grad", a, "memory", nbytes=2.0 * t * nh * p * 2, kernel="elementwise")]
    if q:
        ops += [Operator("q_b.grad_t", a, "small")]
        ops += _linear("q_b.dgrad", a, t, q, nh * qk)
        if tp > 1:
            ops.append(_tp("tp.q_latent.grad", a, "allreduce", t, q))
        ops += [
            _channel_cast("mla_up.wgrad_prep", a, t * (nh * (s.qk_nope_head_dim + v) + c + nh * qk + q), kernels=4),
            _norm_bwd("qkv_norm.bwd", a, t, q + c, kernels=6),
        ]
    else:
        ops += [
            _channel_cast("mla_up.wgrad_prep", a, t * (nh * (s.qk_nope_head_dim + v) + c), kernels=2),
            _norm_bwd("kv_norm.bwd", a, t, c, kernels=3),
        ]
    ops += [Operator("rope.bwd", a, "small", kernels=5), _norm("attn_norm.recompute", a, t // tp, h, recompute=True)]
    if tp > 1:
        ops.append(_tp("tp.attn_in.again", a, "allgather", t, h))
    ops += [
        Operator("kv_a.grad_cast", a, "memory", nbytes=FP8_CAST * t * (c + p), kernel="fp8-cast"),
        Operator("kv_a.scales", a, "small", kernels=2),
        Operator("kv_a.dgrad", a, "gemm", m=t, n=h, k=c + p),
        _channel_cast("kv_a.wgrad_prep", a, t * (h + c + p), kernels=2),
    ]
    if q:
        ops += [
            Operator("q_a.grad_cast", a, "memory", nbytes=FP8_CAST * t * q, kernel="fp8-cast"),
            Operator("q_a.scales", a, "small", kernels=2),
            Operator("q_a.dgrad", a, "gemm", m=t, n=h, k=q),
            _channel_cast("q_a.wgrad_prep", a, t * (h + q), kernels=2),
        ]
    else:
        ops += [
            Operator("q.grad_cast", a, "memory", nbytes=FP8_CAST * t * nh * qk, kernel="fp8-cast"),
            Operator("q.scales", a, "small", kernels=2),
            Operator("q.dgrad", a, "gemm", m=t, n=h, k=nh * qk),
            _channel_cast("q.wgrad_prep", a, t * (h + nh * qk), kernels=2),
        ]
        if tp > 1:
            ops.append(_tp("tp.attn_in.grad", a, "reducescatter", t, h))
    return ops


def _gqa_backward(s: ModelSpec, t: int, tp: int = 1, cp: int = 1) -> list[Operator]:
    """GQA/MHA backward: attention backward (queries, keys and values were kept), RoPE and the
    query/key norm backward, the QKV input gradient with its FP8 operands, the attention norm
    recomputed for the QKV weight gradient's FP8 input. Under TP the input gradient is
    reduce-scattered and the recomputed norm output all-gathered again for the weight gradient (as
    Megatron's sequence parallelism does)."""
    a = "attn(B)"
    h, nh, kv, d, ts = s.dim, s.n_heads // tp, s.kv_heads // tp, s.attn_head_dim, t // tp
    qkv = (nh + 2 * kv) * d
    ops = [_tp("cp.kv.again", a, "allgather", t * cp, 2 * kv * d, "cp")] if cp > 1 else []
    ops.append(_attention_bwd(s, t, tp, cp))
    if cp > 1:  # the keys' and values' gradients go back to the CP ranks that hold them
        ops.append(_tp("cp.kv.grad", a, "reducescatter", t * cp, 2 * kv * d, "cp"))
    ops.append(Operator("rope.bwd", a, "memory", nbytes=4.0 * t * (nh + kv) * d, kernel="rope"))
    if s.qk_norm:
        ops.append(_norm_bwd("qk_norm.bwd", a, t, (nh + kv) * d, kernels=3))
    ops.append(_norm("attn_norm.recompute", a, ts, h, recompute=True))
    if tp > 1:
        ops.append(_tp("tp.attn_in.again", a, "allgather", t, h))
    ops += [
        Operator("qkv.grad_cast", a, "memory", nbytes=FP8_CAST * t * qkv, kernel="fp8-cast"),
        Operator("qkv.scales", a, "small", kernels=2),
        Operator("qkv.dgrad", a, "gemm", m=t, n=h, k=qkv),
    ]
    if tp > 1:
        ops.append(_tp("tp.attn_in.grad", a, "reducescatter", t, h))
    ops.append(_channel_cast("qkv.wgrad_prep", a, t * (h + qkv), kernels=2))
    return ops


def attention_backward_weight(s: ModelSpec, t: int, tp: int = 1) -> list[Operator]:
    """``attn(W)``: weight gradients of the output and input projections (this GPU's TP shard)."""
    a = "attn(W)"
    h, q, c, p, nh = s.dim, s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim, s.n_heads // tp
    ops = [Operator("o_proj.wgrad", a, "gemm", m=h, n=nh * s.value_head_dim, k=t)]
    if s.attention != "mla":
        qkv = (nh + 2 * s.kv_heads // tp) * s.attn_head_dim
        return [*ops, Operator("qkv.wgrad", a, "gemm", m=h, n=qkv, k=t)]
    ops.append(Operator("kv_b.wgrad", a, "gemm", m=c, n=nh * (s.qk_nope_head_dim + s.v_head_dim), k=t))
    if q:
        ops.append(Operator("q_b.wgrad", a, "gemm", m=q, n=nh * s.qk_head_dim, k=t))
    ops.append(Operator("kv_a.wgrad", a, "gemm", m=h, n=c + p, k=t))
    ops.append(
        Operator("q_a.wgrad", a, "gemm", m=h, n=q, k=t)
        if q
        else Operator("q.wgrad", a, "gemm", m=h, n=nh * s.qk_head_dim, k=t)
    )
    return ops


def dense_forward(s: ModelSpec, t: int, tp: int = 1) -> list[Operator]:
    """``mlp(F)`` of a dense layer: SwiGLU FFN of ``inter_dim`` (its TP shard: a column-parallel up
    projection after an all-gather, a row-parallel down projection before a reduce-scatter)."""
    a, h, f = "mlp(F)", s.dim, s.inter_dim // tp
    ops = [_tp("tp.mlp_in", a, "allgather", t, h)] if tp > 1 else []
    ops += _linear("ffn_up", a, t, 2 * f, h)
    ops += [Operator("swiglu", a, "memory", nbytes=t * (2 * f * 2 + f * FP8_CAST / 3), kernel="swiglu")]
    ops += _linear("ffn_down", a, t, h, f, cast=False)
    if tp > 1:
        ops.append(_tp("tp.mlp_out", a, "reducescatter", t, h))
    ops += [Operator("ffn_up.store", a, "memory", nbytes=FP8_CAST * t * 2 * f, kernel="fp8-cast")]
    return ops


def dense_backward_input(s: ModelSpec, t: int, tp: int = 1) -> list[Operator]:
    """``mlp(B)`` of a dense layer; under TP the output gradient is all-gathered first, the input
    gradient reduce-scattered and the recomputed norm output all-gathered for the weight gradients."""
    a, h, f, ts = "mlp(B)", s.dim, s.inter_dim // tp, t // tp
    grad_in = [_tp("tp.mlp_out.grad", a, "allgather", t, h)] if tp > 1 else []
    again = [_tp("tp.mlp_in.again", a, "allgather", t, h)] if tp > 1 else []
    scatter = [_tp("tp.mlp_in.grad", a, "reducescatter", t, h)] if tp > 1 else []
    return [
        *grad_in,
        Operator("swiglu.restore", a, "memory", nbytes=FP8_CAST * t * 2 * f, kernel="cast-back"),
        Operator("ffn_down.grad_cast", a, "memory", nbytes=FP8_CAST * t * h, kernel="fp8-cast"),
        Operator("ffn_down.scales", a, "small"),
        Operator("ffn_down.dgrad", a, "gemm", m=t, n=f, k=h),
        Operator("swiglu.bwd", a, "memory", nbytes=t * (2 * f * 2 + f * 2 + 2 * f * 2), kernel="swiglu-bwd"),
        Operator("ffn_up.grad_cast", a, "memory", nbytes=FP8_CAST * t * 2 * f, kernel="fp8-cast"),
        Operator("ffn_up.scales", a, "small"),
        Operator("ffn_up.dgrad", a, "gemm", m=t, n=h, k=2 * f),
        *scatter,
        _norm("ffn_norm.recompute", a, ts, h, recompute=True),
        *again,
        _channel_cast("ffn.wgrad_prep", a, t * (h + 2 * f + f), kernels=3),
    ]


def dense_backward_weight(s: ModelSpec, t: int, tp: int = 1) -> list[Operator]:
    a, h, f = "mlp(W)", s.dim, s.inter_dim // tp
    return [
        Operator("ffn_down.wgrad", a, "gemm", m=h, n=f, k=t),
        Operator("ffn_up.wgrad", a, "gemm", stream="wgrad", m=h, n=2 * f, k=t),
    ]


def comm_ops(s: ModelSpec, t: int) -> dict[str, list[Operator]]:
    """The four communication annotations of an MoE layer (stream 27 of the trace): a dispatch in the
    forward (fresh layout) and its backward twin (a combine); a combine in the forward and its
    backward twin (a dispatch with the cached layout). The output gradients are cast to FP8 on the
    communication stream before their dispatch."""
    h = s.dim
    return {
        "dispatch(F)": [
            Operator("dispatch.layout", "dispatch(F)", "small", stream="comm"),
            Operator("dispatch", "dispatch(F)", "comm", stream="comm", kernels=2, comm="dispatch"),
        ],
        "combine(F)": [
            Operator("combine", "combine(F)", "comm", stream="comm", kernels=2, comm="combine", cached=True)
        ],
        "combine(B)": [
            Operator("grad.cast", "combine(B)", "memory", stream="comm", nbytes=FP8_CAST * t * h, kernel="fp8-cast"),
            Operator("dispatch", "combine(B)", "comm", stream="comm", kernels=2, comm="dispatch", cached=True),
        ],
        "dispatch(B)": [
            Operator("combine", "dispatch(B)", "comm", stream="comm", kernels=2, comm="combine", cached=True)
        ],
    }


@dataclass(frozen=True)
class LayerOps:
    """Every op of one layer, by annotation (communication annotations only for MoE layers)."""

    layer: int
    moe: bool
    annotations: dict[str, tuple[Operator, ...]]

    def ops(self, annotation: str) -> tuple[Operator, ...]:
        return self.annotations.get(annotation, ())


def layer_signature(s: ModelSpec, layer: int) -> tuple[object, ...]:
    """Everything about a layer's index that :func:`layer_ops` depends on: two layers with the same
    signature and the same work have equal ops (``tests/unit/model/test_layer_signature.py`` checks it
    on every layer of every reference model), so a stage's layers can share one op list."""
    return (s.is_moe(layer),)


def layer_ops(s: ModelSpec, layer: int, work: LayerWork) -> LayerOps:
    """The ops of layer ``layer`` (0-based) for ``work``; an MoE layer needs ``rows_per_expert``."""
    t, tp, cp = work.tokens, work.tp, work.cp
    moe = s.is_moe(layer)
    if moe and not work.rows_per_expert:
        raise ValueError(f"layer {layer} is an MoE layer: give rows_per_expert")
    ann: dict[str, tuple[Operator, ...]] = {
        "attn(F)": tuple(attention_forward(s, t, moe, tp, cp)),
        "attn(B)": tuple(attention_backward_input(s, t, moe, tp, cp)),
        "attn(W)": tuple(attention_backward_weight(s, t, tp)),
    }
    if moe:  # experts see the GPU's sequence-parallel tokens; split over expert TP, not TP
        sp = work if tp == 1 else LayerWork(work.sp_tokens, work.rows_per_expert, etp=work.etp)
        ann |= {
            "mlp(F)": tuple(moe_forward(s, sp)),
            "mlp(B)": tuple(moe_backward_input(s, sp)),
            "mlp(W)": tuple(moe_backward_weight(s, sp)),
        }
        ann |= {k: tuple(v) for k, v in comm_ops(s, work.sp_tokens).items()}
    else:
        ann |= {
            "mlp(F)": tuple(dense_forward(s, t, tp)),
            "mlp(B)": tuple(dense_backward_input(s, t, tp)),
            "mlp(W)": tuple(dense_backward_weight(s, t, tp)),
        }
    if s.dtype == "bf16":
        ann = {a: bf16_recipe(ops) for a, ops in ann.items()}
    if moe and (work.dispatcher == "alltoall" or bf16_rows(s.dtype, work.dispatcher, work.dispatch_format)):
        ann = megatron_dispatch(ann, s, work)
    if work.compute.any:
        ann = {a: work.compute.apply(ops) for a, ops in ann.items()}
    return LayerOps(layer, moe, recomputed(ann, work.recompute))


RECOMPUTE = ("selective", "none", "full")
"""Activation recomputation, Megatron-Core's ``--recompute-granularity`` (``training.recompute``):

- ``selective`` (the default): the recipe's own, DeepSeek-V3's [V3 3.2.3] and Megatron-Core's
  ``--recompute-modules layernorm mla_up_proj``: the backward recomputes the RMSNorm outputs and
  MLA's up-projections and RoPE (the ``recompute=True`` ops of ``*(B)``); SwiGLU outputs are
  recomputed inside their fused backward kernel either way.
- ``none``: nothing recomputed. The ``recompute=True`` ops leave the backward; what they made is kept
  from the forward instead (:func:`sim.step.activations.saved_tensors`).
- ``full``: Megatron's ``--recompute-granularity full --recompute-method uniform
  --recompute-num-layers 1``: each layer keeps only its input; its backward first runs its whole
  forward again (annotations ``attn(R)``, ``dispatch(R)``, ``mlp(R)``, ``combine(R)``: the MoE
  layer's all-to-alls included, as Megatron's checkpointed layer re-runs its token dispatcher), then
  the backward without recomputation (what the re-run made is at hand)."""

REPLAY = {"attn(F)": "attn(R)", "dispatch(F)": "dispatch(R)", "mlp(F)": "mlp(R)", "combine(F)": "combine(R)"}
"""The forward annotations a ``full`` recomputation re-runs in the backward, and their names there."""


def recomputed(ann: dict[str, tuple[Operator, ...]], mode: str) -> dict[str, tuple[Operator, ...]]:
    """``ann`` (a layer's ops by annotation, built with the selective recipe) under recomputation
    ``mode`` (:data:`RECOMPUTE`)."""
    if mode == "selective":
        return ann
    if mode not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE)}, got {mode!r}")
    out = {a: tuple(op for op in ops if not op.recompute) for a, ops in ann.items()}
    if mode == "full":
        for forward, replay in REPLAY.items():
            if forward in ann:
                out[replay] = tuple(replace(op, annotation=replay, recompute=True) for op in ann[forward])
    return out


# the FP8 recipe's own kernels: activation casts (1x128 and per-channel), restores of FP8 copies, the
# E5M6 attention output's store and restore; a BF16 recipe has none of them
FP8_KERNELS = frozenset({"fp8-cast", "fp8-cast-channel", "cast-back", "fp8-cast-e5m6", "cast-back-e5m6"})


def bf16_recipe(ops: tuple[Operator, ...] | list[Operator]) -> tuple[Operator, ...]:
    """A layer's ops under a BF16 recipe (``model.dtype: bf16``, as Megatron-Core and torchtitan
    train Llama and Qwen): DeepSeek's FP8 ops without the FP8 machinery. Every FP8 GEMM becomes a
    BF16 GEMM without scaling; the FP8 casts, restores and the scale transposes (``*.scales``) are
    dropped; the token permutations move BF16 rows (2 bytes per element, not 1.03125). What stays
    DeepSeek's: the recomputation of norms and SwiGLU outputs, the attention kernels, the launch
    counts of the other kernels (the SwiGLU kernels' byte counts keep their FP8 output share, under
    1% of a layer's bytes)."""
    out = []
    for op in ops:
        if op.kind == "memory" and op.kernel in FP8_KERNELS:
            continue
        if op.kind == "small" and "scales" in op.name:
            continue
        if op.kind == "gemm" and op.dtype == "fp8":
            op = replace(op, dtype="bf16", scaling="none")
        elif op.kind == "memory" and op.kernel == "permute":
            op = replace(op, nbytes=op.nbytes * BF16_BYTES / FP8_TILE_BYTES)
        out.append(op)
    return tuple(out)


def head_ops(s: ModelSpec, t: int, tp: int = 1) -> dict[str, tuple[Operator, ...]]:
    """The last stage's extra work: final norm, output head (BF16) and loss, and their backward.
    Under TP the head is vocabulary-parallel (``vocab / tp`` rows per GPU, after an all-gather of the
    sequence-parallel hidden states; its input gradient reduce-scattered back)."""
    h, vocab, ts = s.dim, s.vocab_size // tp, t // tp
    gather = (_tp("tp.head_in", "head(F)", "allgather", t, h),) if tp > 1 else ()
    scatter = (_tp("tp.head_in.grad", "head(B)", "reducescatter", t, h),) if tp > 1 else ()
    return {
        "head(F)": (
            _norm("final_norm", "head(F)", ts, h),
            *gather,
            Operator("head", "head(F)", "gemm", m=t, n=vocab, k=h, dtype="bf16", scaling="none"),
            Operator("loss", "head(F)", "memory", kernels=3, nbytes=4.0 * t * vocab * 2, kernel="elementwise"),
        ),
        "head(B)": (
            Operator("loss.bwd", "head(B)", "memory", nbytes=4.0 * t * vocab * 2, kernel="elementwise"),
            Operator("head.dgrad", "head(B)", "gemm", m=t, n=h, k=vocab, dtype="bf16", scaling="none"),
            *scatter,
            _norm_bwd("final_norm.bwd", "head(B)", ts, h, kernels=2),
        ),
        "head(W)": (Operator("head.wgrad", "head(W)", "gemm", m=h, n=vocab, k=t, dtype="bf16", scaling="none"),),
    }


def embedding_ops(s: ModelSpec, t: int, tp: int = 1) -> dict[str, tuple[Operator, ...]]:
    """The first stage's embedding lookup and its gradient (a scatter-add into the table); under TP
    each GPU looks up its vocabulary shard for the whole sequence and the partial rows are
    reduce-scattered into the sequence-parallel layout."""
    h = s.dim
    scatter = (_tp("tp.embed_out", "embed(F)", "reducescatter", t, h),) if tp > 1 else ()
    return {
        "embed(F)": (Operator("embedding", "embed(F)", "memory", nbytes=4.0 * t * h, kernel="elementwise"), *scatter),
        "embed(W)": (Operator("embedding.wgrad", "embed(W)", "memory", nbytes=6.0 * t * h, kernel="elementwise"),),
    }


def mtp_ops(s: ModelSpec, t: int) -> dict[str, tuple[Operator, ...]]:
    """One multi-token-prediction module's own ops besides its transformer block (which is an MoE
    layer built by :func:`layer_ops`) and its use of the shared head: two norms and the projection of
    the concatenated [hidden, next-token embedding] (2 x dim -> dim)."""
    h = s.dim
    ops = {
        "mtp(F)": (
            _norm("mtp.norms", "mtp(F)", t, 2 * h),
            *_linear("mtp.proj", "mtp(F)", t, h, 2 * h),
        ),
        "mtp(B)": (
            *_linear("mtp.proj.dgrad", "mtp(B)", t, 2 * h, h),
            _norm_bwd("mtp.norms.bwd", "mtp(B)", t, 2 * h, 2),
        ),
        "mtp(W)": (Operator("mtp.proj.wgrad", "mtp(W)", "gemm", m=2 * h, n=h, k=t),),
    }
    return {a: bf16_recipe(o) for a, o in ops.items()} if s.dtype == "bf16" else ops
