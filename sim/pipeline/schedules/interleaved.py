"""Interleaved 1F1B (Narayanan et al., SC'21, "Efficient Large-Scale Language Model Training on GPU
Clusters Using Megatron-LM"): each device holds ``v`` virtual stages (model chunks).

The model's PP stages are each cut into ``v`` slices, giving ``PP*v`` virtual stages; virtual stage
``s`` lives on device ``s % PP`` and covers ``1/v`` of model stage ``s // v`` (so its op times are
``1/v`` of that stage's). Micro-batches advance in groups (Megatron's micro-batch groups): a device
runs chunk 0 for the group, then chunk 1, ...; backwards visit chunks in reverse. There are
``R = max(1, N // PP)`` groups whose sizes differ by at most one, larger groups first, so every
group but a lone short one holds at least PP micro-batches. Warm-up is ``(v-1)*G0 + 2*(PP-1-d)``
forwards (G0 = first group's size, capped at ``N*v``), then 1F1B, then cool-down.

With N a multiple of PP this is Megatron-LM's schedule; whenever R divides N it equals torch's
``ScheduleInterleaved1F1B`` ("flex" variant). For other N, torch refuses and a last short group
(Megatron's remainder group) deadlocks; balanced groups, larger first, keep the schedule valid and
the bubble at (PP-1)(F+B)/v for every N >= PP (checked by the property tests).
"""

from __future__ import annotations

from sim.errors import LayoutError
from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register


def group_sizes(pp: int, n: int) -> list[int]:
    """Sizes of the micro-batch groups: max(1, N // PP) groups, balanced, larger ones first."""
    rounds = max(1, n // pp)
    base, extra = divmod(n, rounds)
    return [base + 1] * extra + [base] * (rounds - extra)


def _chunk_order(sizes: list[int], v: int, reverse: bool) -> list[tuple[int, int]]:
    """(chunk, micro-batch) in the order a device visits them, forward or backward."""
    order: list[tuple[int, int]] = []
    g0 = 0
    for size in sizes:
        group = range(g0, g0 + size)
        g0 += size
        chunks = range(v - 1, -1, -1) if reverse else range(v)
        for c in chunks:
            order += [(c, m) for m in group]
    return order


@register(
    "interleaved-1f1b", "Megatron interleaved 1F1B with v virtual stages per device; bubble (PP-1)(F+B)/v", virtual=True
)
def interleaved_1f1b(pp: int, n: int, virtual_stages: int = 2) -> Schedule:
    v = virtual_stages
    if v < 1:
        raise LayoutError("virtual_stages", f"need at least 1 virtual stage per device, got {v}")
    sizes = group_sizes(pp, n)
    fwd = _chunk_order(sizes, v, reverse=False)
    bwd = _chunk_order(sizes, v, reverse=True)
    total = n * v
    per_device: list[list[Action]] = []
    for d in range(pp):
        warmup = min((v - 1) * sizes[0] + 2 * (pp - 1 - d), total)
        acts = [Action(Op.F, c * pp + d, m) for c, m in fwd[:warmup]]
        for k in range(total - warmup):
            c, m = fwd[warmup + k]
            cb, mb = bwd[k]
            acts += [Action(Op.F, c * pp + d, m), Action(Op.B, cb * pp + d, mb)]
        acts += [Action(Op.B, c * pp + d, m) for c, m in bwd[total - warmup :]]
        per_device.append(acts)
    return virtual_schedule("interleaved-1f1b", pp, n, v, per_device)


def virtual_schedule(name: str, pp: int, n: int, v: int, per_device: list[list[Action]]) -> Schedule:
    """Wrap per-device actions of a pipeline with ``v`` virtual stages per device (virtual stage ``s`` on
    device ``s % PP``, covering ``1/v`` of model stage ``s // v``) into a :class:`Schedule`."""
    num_stages = pp * v
    return Schedule(
        name=name,
        pp=pp,
        num_microbatches=n,
        stage_device=tuple(s % pp for s in range(num_stages)),
        stage_model=tuple(s // v for s in range(num_stages)),
        stage_weight=(1.0 / v,) * num_stages,
        routes=(tuple(range(num_stages)),),
        mb_route=(0,) * n,
        actions=tuple(tuple(a) for a in per_device),
    )
