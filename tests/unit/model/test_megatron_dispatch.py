"""Megatron-Core's token handling in the layer model (:mod:`sim.model.megatron_dispatch`) and in the
traffic (:meth:`sim.moe.spec.MoESpec.of_model`), against DeepSeek's (DeepEP with FP8 rows).

What must hold, from Megatron-Core's dispatchers (``token_dispatcher.py``: "permute -> A2A(EP) ->
AG(TP) -> sort_chunk(if num_local_experts>1)"; ``fused_a2a.py``: DeepEP gets the hidden states as they
are): under an FP8 recipe the rows travel in BF16, so the dispatch carries 2 bytes an element, the
permutations move BF16 rows, and the FP8 casts run on the rows where they arrive (before the experts'
up-projection, and before the output gradients' GEMM in the backward) instead of on the GPU's tokens
before the dispatch, whose casts stay only for the shared experts. The NCCL all-to-all dispatcher with
more than one expert on a GPU also sorts the arrived rows by expert after the permutation and unsorts
them before the unpermutation, forward and backward, each pass reading and writing every row (``dim``
BF16 elements and an FP32 gate). Nothing else of DeepSeek's layer changes.
"""

from __future__ import annotations

import pytest

from sim.model.layer import LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.moe.spec import MoESpec
from sim.units import BF16_BYTES, FP8_CAST_BYTES, FP8_TILE_BYTES, FP32_BYTES

LAYER = DEEPSEEK_V3.n_dense_layers  # the first MoE layer
ROWS = (3000, 0, 7000, 2048)  # four experts on the GPU, one idle
NO_SHARED = DEEPSEEK_V3.model_copy(update={"n_shared_experts": 0})  # as Qwen3 and Mixtral
CASTS = {"mlp(F)": ("experts_up", "experts_up.cast"), "mlp(B)": ("experts_down.dgrad", "experts_down.grad_cast")}
TOKEN_CASTS = {"attn(F)": "dispatch.cast", "combine(B)": "grad.cast"}


Ops = dict[str, list[tuple[str, float]]]  # (name, bytes) of each op, by annotation


def _ops(model: ModelSpec, rows: tuple[int, ...], dispatcher: str, fmt: str = "fp8") -> Ops:
    work = LayerWork(4096, rows, dispatcher=dispatcher, dispatch_format=fmt)
    return {a: [(op.name, op.nbytes) for op in ops] for a, ops in layer_ops(model, LAYER, work).annotations.items()}


def _expected(model: ModelSpec, rows: tuple[int, ...], sort: bool) -> Ops:
    """DeepSeek's ops with Megatron's changes, written out op by op."""
    deepseek, r = _ops(model, rows, "deepep"), sum(rows)
    fp8 = model.dtype == "fp8"
    out: Ops = {}
    for a, ops in deepseek.items():
        new: list[tuple[str, float]] = []
        for name, nbytes in ops:
            if fp8 and TOKEN_CASTS.get(a) == name and not model.n_shared_experts:
                continue
            if fp8 and a in CASTS and name == CASTS[a][0]:
                new.append((CASTS[a][1], FP8_CAST_BYTES * r * model.dim))
            if a.startswith("mlp(") and name in ("permute", "unpermute"):
                if name == "permute" and fp8:
                    nbytes *= BF16_BYTES / FP8_TILE_BYTES
                sort_bytes = 2.0 * r * (model.dim * BF16_BYTES + FP32_BYTES)
                second = [(f"{'sort' if name == 'permute' else 'unsort'}_chunks", sort_bytes)] if sort else []
                new += [(name, nbytes), *second] if name == "permute" else [*second, (name, nbytes)]
                continue
            new.append((name, nbytes))
        out[a] = new
    return out


@pytest.mark.parametrize("model", [DEEPSEEK_V3, NO_SHARED, DEEPSEEK_V3.model_copy(update={"dtype": "bf16"})])
def test_the_all_to_all_dispatcher_moves_bf16_rows_and_sorts_them(model: ModelSpec) -> None:
    assert _ops(model, ROWS, "alltoall") == _expected(model, ROWS, sort=True)


def test_megatrons_deepep_path_moves_bf16_rows_without_sorting() -> None:
    assert _ops(DEEPSEEK_V3, ROWS, "deepep", "bf16") == _expected(DEEPSEEK_V3, ROWS, sort=False)


def test_one_expert_on_a_gpu_needs_no_sort() -> None:
    assert _ops(NO_SHARED, (4096,), "alltoall") == _expected(NO_SHARED, (4096,), sort=False)


def test_the_casts_follow_the_rows() -> None:
    """Where the hidden states were cast once per token, the arrived rows are cast (top-k times as many);
    with shared experts the token cast stays for them."""
    for model, kept in ((DEEPSEEK_V3, True), (NO_SHARED, False)):
        ops = _ops(model, ROWS, "alltoall")
        assert ("dispatch.cast" in dict(ops["attn(F)"])) == kept and ("grad.cast" in dict(ops["combine(B)"])) == kept
        assert dict(ops["mlp(F)"])["experts_up.cast"] == FP8_CAST_BYTES * sum(ROWS) * model.dim


def test_deepseeks_layer_and_a_dense_layer_are_untouched() -> None:
    assert layer_ops(DEEPSEEK_V3, LAYER, LayerWork(4096, ROWS)) == layer_ops(
        DEEPSEEK_V3, LAYER, LayerWork(4096, ROWS, dispatcher="deepep", dispatch_format="fp8")
    )
    for dispatcher, fmt in (("alltoall", "fp8"), ("deepep", "bf16")):
        dense = LayerWork(4096, dispatcher=dispatcher, dispatch_format=fmt)
        assert layer_ops(DEEPSEEK_V3, 0, dense) == layer_ops(DEEPSEEK_V3, 0, LayerWork(4096))


@pytest.mark.parametrize(
    ("dtype", "dispatcher", "fmt", "per_elem"),
    [
        ("fp8", "deepep", "fp8", FP8_TILE_BYTES),
        ("fp8", "deepep", "bf16", BF16_BYTES),
        ("fp8", "alltoall", "fp8", BF16_BYTES),
        ("bf16", "deepep", "fp8", BF16_BYTES),
    ],
)
def test_the_dispatch_carries_fp8_tiles_only_from_deepseeks_deepep(
    dtype: str, dispatcher: str, fmt: str, per_elem: float
) -> None:
    model = DEEPSEEK_V3.model_copy(update={"dtype": dtype})
    spec = MoESpec.of_model(model, 64, dispatcher=dispatcher, dispatch_format=fmt)
    assert spec.dispatch_bytes_per_elem == per_elem and spec.combine_bytes_per_elem == BF16_BYTES
