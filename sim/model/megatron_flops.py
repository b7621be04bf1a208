"""Training FLOPs per token as Megatron-LM counts them (``num_floating_point_operations``).

Teams that publish Megatron-Core or NeMo throughput quote "model TFLOP/s per GPU" from this formula
(NVIDIA/Megatron-LM ``megatron/training/training.py``, ``transformer_flops``, read at commit
001b00c2734d; REFERENCE.md section 12). The twin reports the same convention beside its own count
(:mod:`sim.model.flops`) so a prediction and a published figure are compared like for like. Per token
(``B x s`` tokens in the formula), with h the hidden size, every term times 3 (forward, dgrad, wgrad)
and 2 (FLOPs per multiply-add):

* MLP: ``h x ffn x 3`` per dense layer (SwiGLU: up, gate, down); per MoE layer ``h x moe_ffn x topk x
  3`` for the routed experts plus ``h x shared_ffn x 3`` for the shared ones;
* GQA/MHA attention per layer: ``h (q + k + v) + q s / 2 x 2 + q h`` with ``q = heads x kv_channels``
  and ``k = v = groups x kv_channels`` (the causal half of QK^T and of its product with V);
* MLA attention per layer: ``q_lora (h + heads (nope + rope) + 1)`` (or ``h heads (nope + rope)``
  without a query latent), ``kv_lora (h + heads (nope + v) + 1) + h rope``, ``heads v h``, and
  ``s heads (nope + rope) / 2 + s heads v / 2``; the ``+ 1`` terms are Megatron's (its norms);
* MTP: each module adds a layer (MoE when the last layer is), ``3 h + 2 h^2`` and one more logit term;
* logits: ``h x padded_vocab x (mtp + 1)``; Megatron pads the vocabulary to a multiple of
  ``make_vocab_size_divisible_by`` (128) x TP.

Where it differs from the twin's own count (:func:`sim.model.flops.training_flops_per_token`, which
counts the ops the simulator times): Megatron leaves out the router's gate GEMM (``6 h E`` per MoE
layer and token), counts the vocabulary padding and MLA's ``+ 1`` norm terms, and puts the MTP
modules in (the twin's ``main`` figure leaves them out; DeepSeek's ~250 GFLOP per token of ISCA'25
Table 2 is the main model's). For a dense GQA model with an unpadded vocabulary the two are equal
(``tests/unit/model/test_megatron_flops.py``).
"""

from __future__ import annotations

from math import ceil

from sim.model.spec import ModelSpec

VOCAB_DIVISOR = 128  # Megatron's --make-vocab-size-divisible-by default


def padded_vocab(s: ModelSpec, tp: int = 1) -> int:
    """The vocabulary Megatron builds: rounded up to a multiple of 128 x TP."""
    step = VOCAB_DIVISOR * tp
    return ceil(s.vocab_size / step) * step


def _attention(s: ModelSpec, seq: int) -> float:
    h, nh = s.dim, s.n_heads
    if s.attention != "mla":
        q = nh * s.attn_head_dim
        kv = s.kv_heads * s.attn_head_dim
        return h * (q + 2 * kv) + q * seq / 2 * 2 + q * h
    nope, rope, v = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim
    if s.q_lora_rank:
        q_term = s.q_lora_rank * (h + nh * (nope + rope) + 1)
    else:
        q_term = h * nh * (nope + rope)
    return (
        q_term
        + s.kv_lora_rank * (h + nh * (nope + v) + 1)
        + h * rope
        + nh * v * h
        + seq * nh * (nope + rope) / 2
        + seq * nh * v / 2
    )


def megatron_flops_per_token(s: ModelSpec, seq_len: int | None = None, tp: int = 1) -> float:
    """Megatron's training FLOPs per token at ``seq_len`` [default: the model's], TP ``tp`` (for the
    vocabulary padding), MTP modules included (Megatron counts them)."""
    seq = seq_len or s.seq_len
    h = s.dim
    moe = s.moe_layers
    dense = s.n_layers - moe
    mtp = s.mtp_depth
    if mtp:
        last_is_moe = s.is_moe(s.n_layers - 1)
        moe += last_is_moe * mtp
        dense += (1 - last_is_moe) * mtp
    layers = s.n_layers + mtp
    ffn = 3  # SwiGLU
    mlp = h * (
        s.inter_dim * ffn * dense
        + s.moe_inter_dim * s.n_activated_experts * ffn * moe
        + s.n_shared_experts * s.moe_inter_dim * ffn * moe
    )
    mtp_own = mtp * (3 * h + 2 * h * h)
    logits = h * padded_vocab(s, tp) * (mtp + 1)
    return 6.0 * (mlp + _attention(s, seq) * layers + mtp_own + logits)
