"""The shared embedding's gradient all-reduce between the first and the last pipeline stage.

A model whose last stage holds a second copy of the embedding table needs the two copies' gradients
summed every step: DeepSeek-V3's multi-token prediction module shares the embedding and the output
head with the main model (V3 report 2.2; ../shared/REFERENCE.md section 1), and a model with tied word
embeddings (``tie_word_embeddings``) uses the table as its output head. Megatron-Core does it in
``finalize_model_grads`` (``_allreduce_word_embedding_grads``), after the data-parallel gradient sync
and before the optimizer: an all-reduce of the table's whole gradient (its ``main_grad``, FP32)
over the embedding group, the first and the last pipeline rank of the same data-, tensor- and
context-parallel coordinates. So on every GPU ``i`` of the first stage's rank and GPU ``i`` of the
last stage's, a 2-GPU all-reduce of ``vocab_size x dim / tp`` gradient elements (the table is split
over TP; CP and DP replicate it).

Where one rank holds both (DualPipe and DualPipeV place the shallowest layers, with the embedding,
and the deepest, with the head and MTP, on one rank: REFERENCE.md section 2), nothing crosses:
:func:`embedding_pair` is None. Under FSDP the twin does not model it (the units' reduce-scatters
are :mod:`sim.step.fsdp`'s).
"""

from __future__ import annotations

import numpy as np

from sim.model.spec import ModelSpec
from sim.pipeline.ops import Schedule
from sim.step.layout import Layout
from sim.step.memory import Precision


def embedding_pair(model: ModelSpec, layout: Layout, schedule: Schedule) -> tuple[int, int] | None:
    """(the rank of the first stage, the rank of the last) where the last stage holds a copy of the
    embedding table (MTP or a tied head) on a rank that holds no first stage; else None. DualPipe's
    two directions put a first stage on each end's rank (stage 0 and the mirror's first on ranks 0 and
    PP-1): their copies are the ZeRO-1 group of the mirrored ranks' (sim.step.zero1), nothing more."""
    if not (model.mtp_depth > 0 or model.tie_word_embeddings) or layout.fsdp:
        return None
    first = sorted({d for s, d in enumerate(schedule.stage_device) if layout.stages[s].first})
    last = sorted({d for s, d in enumerate(schedule.stage_device) if layout.stages[s].last})
    apart = [d for d in last if d not in first]  # a last stage's copy on a rank without the table
    if not first or not apart:  # (DualPipe: each end's rank holds the other direction's first stage)
        return None
    return first[0], apart[0]


def embedding_grad_bytes(model: ModelSpec, layout: Layout, grad_bytes: float | None = None) -> float:
    """Bytes of the table's gradient on one GPU: ``vocab_size x dim / tp`` elements of ``grad_bytes``,
    the gradient buffer's element as the data-parallel reduction sends it (``training.grad_reduce_bytes``:
    Megatron all-reduces the same buffer); by default the buffer's precision (FP32,
    :class:`sim.step.memory.Precision`)."""
    per = Precision.of(model).grad_bytes if grad_bytes is None else grad_bytes
    return model.vocab_size * model.dim / layout.tp * per


def embedding_groups(
    model: ModelSpec, layout: Layout, pair: tuple[int, int], grad_bytes: float | None = None
) -> list[tuple[np.ndarray, float, str]]:
    """The all-reduces as (GPUs, bytes per GPU, algorithm): GPU ``i`` of one rank with GPU ``i`` of the
    other, a ring of two."""
    size = embedding_grad_bytes(model, layout, grad_bytes)
    a, b = (layout.rank_gpus(d) for d in pair)
    return [(np.array([x, y], dtype=np.int64), size, "ring") for x, y in zip(a, b, strict=True)]


__all__ = ["embedding_grad_bytes", "embedding_groups", "embedding_pair"]
