"""An MoE layer's token handling as Megatron-Core runs it, where DeepSeek's layer model
(:mod:`sim.model.layer`) has DeepSeek's: BF16 rows through the dispatch, and the NCCL all-to-all
dispatcher's sort by local expert.

Sources: Megatron-Core ``megatron/core/transformer/moe/token_dispatcher.py`` (``MoEAlltoAllTokenDispatcher``:
"permute -> A2A(EP) -> AG(TP) -> sort_chunk(if num_local_experts>1)", and the reverse for the combine)
and ``fused_a2a.py`` (its DeepEP path hands ``buffer.dispatch`` the hidden states as they are; its
HybridEP path: "Currently, we do not support fp8 dispatch").

* **BF16 rows** (``workload.dispatcher: alltoall``, or ``comm.dispatch_format: bf16`` under an FP8
  recipe). DeepSeek casts a token's hidden state to FP8 once, before the dispatch (``dispatch.cast``, on
  the GPU's ``t`` tokens), and dispatches the FP8 rows; the output gradients likewise (``grad.cast``
  before the backward's dispatch). Megatron's dispatchers move the BF16 hidden states as they are and
  Transformer Engine casts each GEMM's input inside the GEMM: the routed experts' inputs are cast where
  they arrive, on the GPU's ``r`` rows (``experts_up.cast``; in the backward ``experts_down.grad_cast``
  before the output gradients' GEMM), about top-k times the tokens. The token cast stays only for the
  shared experts (a model without them, Qwen3 and Mixtral, has none); the permutations move BF16 rows
  (2 bytes an element, not 1.03125). The dispatch's bytes follow :meth:`sim.moe.spec.MoESpec.of_model`.
* **The sort by local expert** (``alltoall`` with more than one expert on a GPU): the rows that arrive
  are sorted by expert after the all-to-all ("Permutation 2", ``sort_chunks_by_idxs``) and unsorted
  before the combine's, each pass reading and writing every row (``dim`` BF16 elements and its FP32
  gate); the backward runs the same two passes over the gradients. DeepEP's dispatch (DeepSeek's and
  Megatron's) lands the rows where one permutation sorts them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from sim.model.ops import Operator
from sim.model.spec import ModelSpec
from sim.units import BF16_BYTES, FP8_CAST_BYTES, FP8_TILE_BYTES, FP32_BYTES

if TYPE_CHECKING:
    from sim.model.layer import LayerWork

SORT_CHUNKS = {"permute": "sort_chunks", "unpermute": "unsort_chunks"}
"""Megatron's second permutation and its inverse, beside the one each names (both MoE annotations)."""

ROW_CASTS = {"mlp(F)": ("experts_up", "experts_up.cast"), "mlp(B)": ("experts_down.dgrad", "experts_down.grad_cast")}
"""Where Transformer Engine casts the arrived BF16 rows: before this GEMM, an op of this name."""

TOKEN_CASTS = {"attn(F)": "dispatch.cast", "combine(B)": "grad.cast"}
"""DeepSeek's casts of the GPU's tokens before a dispatch, kept only for the shared experts."""


def bf16_rows(dtype: str, dispatcher: str, dispatch_format: str) -> bool:
    """Whether the dispatched rows are BF16 where DeepSeek's recipe dispatches FP8: an FP8 recipe
    (``dtype``) under Megatron's NCCL all-to-all dispatcher, or with ``comm.dispatch_format: bf16``. The
    one rule for the layer's ops (:func:`megatron_dispatch`) and the dispatch's bytes
    (:meth:`sim.moe.spec.MoESpec.of_model`)."""
    return dtype == "fp8" and (dispatcher == "alltoall" or dispatch_format == "bf16")


def megatron_dispatch(
    ann: dict[str, tuple[Operator, ...]], s: ModelSpec, work: LayerWork
) -> dict[str, tuple[Operator, ...]]:
    """``ann`` (an MoE layer's ops by annotation, DeepSeek's) as Megatron runs them for ``work`` (its
    rows, the experts on the GPU, the dispatcher)."""
    rows = work.rows
    sort = work.dispatcher == "alltoall" and len(work.rows_per_expert) > 1
    # (a BF16 recipe's rows, casts and permutations are BF16 already: only the sorts are Megatron's)
    bf16 = bf16_rows(s.dtype, work.dispatcher, work.dispatch_format)
    shared = s.n_shared_experts > 0
    sort_bytes = 2.0 * rows * (s.dim * BF16_BYTES + FP32_BYTES)  # read and write: each row and its gate
    out: dict[str, tuple[Operator, ...]] = {}
    for a, ops in ann.items():
        new: list[Operator] = []
        for op in ops:
            if bf16 and op.name == TOKEN_CASTS.get(a) and not shared:
                continue
            if bf16 and a in ROW_CASTS and op.name == ROW_CASTS[a][0]:
                cast = Operator(ROW_CASTS[a][1], a, "memory", nbytes=FP8_CAST_BYTES * rows * s.dim, kernel="fp8-cast")
                new.append(cast)
            if op.kind != "memory" or op.name not in SORT_CHUNKS or not a.startswith("mlp("):
                new.append(op)
                continue
            if bf16 and op.kernel == "permute":
                op = replace(op, nbytes=op.nbytes * BF16_BYTES / FP8_TILE_BYTES)
            second = (Operator(SORT_CHUNKS[op.name], a, "memory", nbytes=sort_bytes, kernel="permute"),) if sort else ()
            new.extend((*second, op) if op.name == "unpermute" else (op, *second))
        out[a] = tuple(new)
    return out
