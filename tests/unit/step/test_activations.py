"""What one micro-batch keeps: the saved activations of the V3 recipe, and what a deferred W reads,
derived from the layer's op list and checked here against closed forms in the model's dimensions."""

from __future__ import annotations

import pytest

from sim.model.layer import LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3
from sim.step.activations import (
    ActivationRecipe,
    activation_bytes,
    layer_activation_bytes_per_token,
    layer_wgrad_bytes_per_token,
    saved_tensors,
    stage_activation_bytes,
    wgrad_activation_bytes,
    wgrad_tensors,
)
from sim.units import BF16_BYTES, FP8_TILE_BYTES

S = DEEPSEEK_V3
H, Q, C, P, NH = S.dim, S.q_lora_rank, S.kv_lora_rank, S.qk_rope_head_dim, S.n_heads
QK, NOPE, V, FI, K = S.qk_head_dim, S.qk_nope_head_dim, S.v_head_dim, S.moe_inter_dim, S.n_activated_experts
# every attention linear: (input, output) elements per token
ATTN = [(H, Q), (H, C + P), (Q, NH * QK), (C, NH * (NOPE + V)), (NH * V, H)]


def test_saved_tensors_per_token() -> None:
    moe = {t.name: t.bytes_per_token for t in saved_tensors(S, 3)}
    assert moe["attention output (E5M6)"] == pytest.approx(16384 * (1.5 + 4 / 128))
    assert moe["dispatched tokens (FP8)"] == pytest.approx(8 * 7168 * (1 + 4 / 128))
    assert moe["routed SwiGLU input (FP8)"] == pytest.approx(8 * 4096 * (1 + 4 / 128))
    assert layer_activation_bytes_per_token(S, 3) == 156_736
    assert layer_activation_bytes_per_token(S, 0) == 96_512
    more = ActivationRecipe(store_expert_outputs=True)
    assert layer_activation_bytes_per_token(S, 3, more) - 156_736 == 8 * 7168 * 2


def test_activations_linear_in_tokens_and_layers() -> None:
    one = activation_bytes(S, range(3, 5), 1)
    assert activation_bytes(S, range(3, 5), 4096) == pytest.approx(4096 * one)
    assert activation_bytes(S, range(3, 7), 7) == pytest.approx(2 * activation_bytes(S, range(3, 5), 7))
    head = activation_bytes(S, [], 1, head=True)
    assert head == 7168 * 2 + 129280 * 4 + 8
    assert stage_activation_bytes(S, 15, 16, 1) == pytest.approx(
        activation_bytes(S, range(58, 61), 1)
        + head
        + layer_activation_bytes_per_token(S, 61)
        + 2 * 7168 * 2
        + 129280 * 4
        + 8
    )


def test_w_reads_the_input_and_output_gradient_of_every_linear_of_its_op_list() -> None:
    """One input and one output gradient per W GEMM of the op list, as wide as the forward GEMM."""
    t = 4096
    ann = layer_ops(S, 3, LayerWork(t, (t * K,))).annotations
    forward = {op.name: op for a in ("attn(F)", "mlp(F)") for op in ann[a] if op.kind == "gemm"}
    tensors = {x.name: x for x in wgrad_tensors(S, 3)}
    linears = {n.removesuffix(" input").removesuffix(" output gradient") for n in tensors}
    assert linears == {"q_a", "kv_a", "q_b", "kv_b", "o_proj", "shared_up", "shared_down", "experts_up", "experts_down"}
    for name in linears:
        rows = K if name.startswith("experts") else 1
        assert tensors[f"{name} input"].elements_per_token == rows * forward[name].k
        assert tensors[f"{name} output gradient"].elements_per_token == rows * forward[name].n
    assert len(tensors) == 2 * len(linears)


def test_wgrad_bytes_closed_form() -> None:
    """FP8 copies (1 B + a 128x1 tile's FP32 scale) of every operand, but the two the routed experts'
    W casts itself (down-projection input, up-projection output gradient), which wait in BF16."""
    attn = sum(i + o for i, o in ATTN)
    shared = (H + 2 * FI) + (FI + H)
    fp8 = attn + shared + K * H + K * H
    bf16 = K * 2 * FI + K * FI
    assert layer_wgrad_bytes_per_token(S, 3) == pytest.approx(fp8 * FP8_TILE_BYTES + bf16 * BF16_BYTES)
    assert layer_wgrad_bytes_per_token(S, 3) == 340_194
    early = ActivationRecipe(wgrad_cast_in_i=True)
    assert layer_wgrad_bytes_per_token(S, 3, early) == pytest.approx((fp8 + bf16) * FP8_TILE_BYTES)
    dense = attn + (H + 2 * S.inter_dim) + (S.inter_dim + H)
    assert layer_wgrad_bytes_per_token(S, 0) == pytest.approx(dense * FP8_TILE_BYTES) == 174_306


def test_wgrad_of_the_stage_extras() -> None:
    """The head's W reads its input and the logits' gradient in BF16, once per use (main model and
    MTP); the FP32 logits are not kept. The embedding's W reads the ids and its output gradient."""
    head = (H + S.vocab_size) * BF16_BYTES
    assert wgrad_activation_bytes(S, [], 1, head=True) == pytest.approx(head)
    assert wgrad_activation_bytes(S, [], 1, embedding=True) == 8 + H * BF16_BYTES
    mtp = layer_wgrad_bytes_per_token(S, S.n_layers) + 3 * H * FP8_TILE_BYTES + head
    assert wgrad_activation_bytes(S, [], 1, mtp=True) == pytest.approx(mtp)
    assert wgrad_activation_bytes(S, range(3, 5), 10) == pytest.approx(20 * layer_wgrad_bytes_per_token(S, 3))
    # the loss's FP32 logits (517 KB a token) go at I; W keeps the BF16 gradient of the head's output
    assert activation_bytes(S, [], 1, head=True) - wgrad_activation_bytes(S, [], 1, head=True) == pytest.approx(
        S.vocab_size * (4 - 2) + 8
    )


def test_the_v3_recipe_keeps_more_for_w_than_for_the_backward() -> None:
    """The forward saves little besides the linears' inputs (the rest is recomputed, FP8-cached); W
    also needs every output gradient, which alone exceeds what the forward saved."""
    for layer in (0, 3):
        grads = sum(x.bytes_per_token for x in wgrad_tensors(S, layer) if x.name.endswith("output gradient"))
        assert grads > layer_activation_bytes_per_token(S, layer)
    assert layer_wgrad_bytes_per_token(S, 3) / layer_activation_bytes_per_token(S, 3) > 2
