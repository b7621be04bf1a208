"""Megatron's NCCL all-to-all dispatcher (``workload.dispatcher: alltoall``) in the layer model
(:func:`sim.model.layer.alltoall_recipe`) and in the traffic (:meth:`sim.moe.spec.MoESpec.of_model`).

What must hold, from Megatron-Core's ``MoEAlltoAllTokenDispatcher`` (permute -> A2A(EP) -> AG(ETP) ->
sort_chunk if more than one local expert; the reverse for the combine): the rows travel as the layer's
BF16 hidden states whatever the recipe (FP8 is cast inside the expert GEMMs), so the token
permutations and the dispatch move 2 bytes an element; with more than one expert on a GPU one more
pass sorts the arrived rows by expert after the permutation and one unsorts them before the
unpermutation, in the forward and again in the backward, each reading and writing every row (``dim``
BF16 elements and its FP32 gate). DeepEP's layer is untouched.
"""

from __future__ import annotations

import pytest

from sim.model.layer import LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.moe.spec import MoESpec
from sim.units import BF16_BYTES, FP8_TILE_BYTES, FP32_BYTES

LAYER = DEEPSEEK_V3.n_dense_layers  # the first MoE layer
ROWS = (3000, 0, 7000, 2048)  # four experts on the GPU, one idle


def _ops(model: ModelSpec, rows: tuple[int, ...], dispatcher: str) -> dict[str, list[tuple[str, float]]]:
    work = LayerWork(4096, rows, dispatcher=dispatcher)
    ann = layer_ops(model, LAYER, work).annotations
    return {a: [(op.name, op.nbytes) for op in ops if op.kind == "memory"] for a, ops in ann.items()}


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_sorts_beside_each_permutation_with_bf16_rows(dtype: str) -> None:
    model = DEEPSEEK_V3.model_copy(update={"dtype": dtype})
    deepep, a2a = _ops(model, ROWS, "deepep"), _ops(model, ROWS, "alltoall")
    sort_bytes = 2.0 * sum(ROWS) * (model.dim * BF16_BYTES + FP32_BYTES)
    for ann in ("mlp(F)", "mlp(B)"):
        names = [n for n, _ in a2a[ann]]
        p, u = names.index("permute"), names.index("unpermute")
        assert names[p + 1] == "sort_chunks" and names[u - 1] == "unsort_chunks"
        assert dict(a2a[ann])["sort_chunks"] == dict(a2a[ann])["unsort_chunks"] == sort_bytes
        # the rest is DeepEP's, the permutation's rows in BF16 (an FP8 recipe's were FP8 tiles)
        rest = [x for x in a2a[ann] if x[0] not in ("sort_chunks", "unsort_chunks")]
        scale = BF16_BYTES / FP8_TILE_BYTES if dtype == "fp8" else 1.0
        assert rest == [(n, b * scale if n == "permute" else b) for n, b in deepep[ann]]
    for ann in set(deepep) - {"mlp(F)", "mlp(B)"}:
        assert a2a[ann] == deepep[ann], ann


def test_one_expert_on_a_gpu_needs_no_sort() -> None:
    a2a = _ops(DEEPSEEK_V3, (4096,), "alltoall")
    assert not any(n.endswith("sort_chunks") for ops in a2a.values() for n, _ in ops)
    assert "permute" in dict(a2a["mlp(F)"])


def test_a_dense_layer_is_the_same_under_either_dispatcher() -> None:
    dense = LayerWork(4096, dispatcher="alltoall")
    assert layer_ops(DEEPSEEK_V3, 0, dense) == layer_ops(DEEPSEEK_V3, 0, LayerWork(4096))


@pytest.mark.parametrize(
    ("dtype", "dispatcher", "per_elem"),
    [("fp8", "deepep", FP8_TILE_BYTES), ("fp8", "alltoall", BF16_BYTES), ("bf16", "deepep", BF16_BYTES)],
)
def test_the_dispatch_carries_fp8_tiles_only_through_deepep(dtype: str, dispatcher: str, per_elem: float) -> None:
    spec = MoESpec.of_model(DEEPSEEK_V3.model_copy(update={"dtype": dtype}), 64, dispatcher=dispatcher)
    assert spec.dispatch_bytes_per_elem == per_elem and spec.combine_bytes_per_elem == BF16_BYTES
