"""Zero-bubble schedules with several stages per device (Qi et al., "Zero Bubble Pipeline
Parallelism", ICLR 2024): interleaved ZB and ZB-V.

Interleaved zero bubble: interleaved 1F1B's chunk order (:mod:`sim.pipeline.schedules.interleaved`:
micro-batch groups, chunk by chunk, backwards in reverse) with every backward split into I and W.
Device ``d`` warms up with ``(v-1) G0 + (PP-1-d)`` forwards (one per hop, not interleaved 1F1B's
two: I is shorter than a whole backward), then alternates F and I; from its ``d``-th I on, each I is
followed by the W of the oldest I still waiting, so device ``d`` runs its W passes ``d`` steps late
and they fill the cool-down bubbles; the rest of the Ws end the step. With ``v = 1`` this is ZB1P
(ZB-H1). Where torch builds it (N a multiple of its rounds, ``max(1, N // PP)``), it equals
``torch.distributed.pipelining.ScheduleInterleavedZeroBubble``; other N use interleaved 1F1B's
balanced groups, larger first.

ZB-V (the paper's section 6): two chunks per device in a V, stages ``d`` and ``2D-1-d`` of ``2D`` on
device ``d`` (as DualPipeV, so ``D = PP/2`` devices); warm-up ``2(D-d)-1`` forwards of chunk 0, ``d``
pairs of chunk-1 and chunk-0 forwards, ``D-d`` triples of chunk 1's F, I and W; a steady phase of
chunk 0's F, I, W and chunk 1's F, I, W; a cool-down of Is, each chunk-0 I followed by its W for the
last ``D-d``, then the remaining Ws, chunk 1's first. Equal to ``ScheduleZBVZeroBubble`` for every D
and N; for N below ``2D-1`` torch plans ``2D-1`` micro-batches and drops the missing ones, and so
does this.
"""

from __future__ import annotations

from sim.errors import LayoutError
from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register
from sim.pipeline.schedules.dualpipe import v_schedule
from sim.pipeline.schedules.interleaved import _chunk_order, group_sizes, virtual_schedule


@register(
    "interleaved-zb",
    "interleaved zero bubble: interleaved 1F1B with B split into I and W, W delayed",
    virtual=True,
    splits_backward=True,
)
def interleaved_zero_bubble(pp: int, n: int, virtual_stages: int = 2) -> Schedule:
    v = virtual_stages
    if v < 1:
        raise LayoutError("virtual_stages", f"need at least 1 virtual stage per device, got {v}")
    sizes = group_sizes(pp, n)
    fwd = _chunk_order(sizes, v, reverse=False)
    bwd = _chunk_order(sizes, v, reverse=True)
    total = n * v
    per_device: list[list[Action]] = []
    for d in range(pp):
        warmup = min((v - 1) * sizes[0] + (pp - 1 - d), total)
        acts = [Action(Op.F, c * pp + d, m) for c, m in fwd[:warmup]]
        w = 0
        for k in range(total):
            if warmup + k < total:
                c, m = fwd[warmup + k]
                acts.append(Action(Op.F, c * pp + d, m))
            c, m = bwd[k]
            acts.append(Action(Op.I, c * pp + d, m))
            if k >= d:
                c, m = bwd[w]
                acts.append(Action(Op.W, c * pp + d, m))
                w += 1
        acts += [Action(Op.W, c * pp + d, m) for c, m in bwd[w:]]
        per_device.append(acts)
    return virtual_schedule("interleaved-zb", pp, n, v, per_device)


def _zbv_device(devices: int, d: int, n: int) -> list[Action]:
    """Device ``d``'s actions (torch's phases, counted per chunk), micro-batches beyond ``n`` dropped."""
    planned = max(2 * devices - 1, n)
    s0, s1 = d, 2 * devices - 1 - d
    acts: list[Action] = []
    f0 = f1 = b0 = b1 = 0
    for _ in range(2 * (devices - d) - 1):
        acts.append(Action(Op.F, s0, f0))
        f0 += 1
    for _ in range(d):
        acts += [Action(Op.F, s1, f1), Action(Op.F, s0, f0)]
        f1 += 1
        f0 += 1
    for _ in range(devices - d):
        acts += [Action(Op.F, s1, f1), Action(Op.I, s1, b1), Action(Op.W, s1, b1)]
        f1 += 1
        b1 += 1
    while f1 < f0 or f0 < planned:
        if f0 < planned:
            acts.append(Action(Op.F, s0, f0))
            f0 += 1
        acts += [Action(Op.I, s0, b0), Action(Op.W, s0, b0), Action(Op.F, s1, f1)]
        acts += [Action(Op.I, s1, b1), Action(Op.W, s1, b1)]
        b0 += 1
        f1 += 1
        b1 += 1
    w0, w1 = b0, b1
    for _ in range(d):
        acts += [Action(Op.I, s0, b0), Action(Op.I, s1, b1)]
        b0 += 1
        b1 += 1
    for _ in range(devices - d):
        acts += [Action(Op.I, s0, b0), Action(Op.W, s0, w0)]
        b0 += 1
        w0 += 1
    acts += [Action(Op.W, s1, m) for m in range(w1, b1)]
    acts += [Action(Op.W, s0, m) for m in range(w0, b0)]
    return [a for a in acts if a.mb < n]


@register(
    "zbv",
    "ZB-V: zero bubble in a V, two chunks per device on PP/2 devices (F, I, W of equal time)",
    lambda pp: pp // 2,
    splits_backward=True,
)
def zbv(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    if pp < 2 or pp % 2:
        raise LayoutError("pp", f"zbv needs an even PP >= 2 (two stages per device), got {pp}")
    devices = pp // 2
    return v_schedule("zbv", pp, n, [_zbv_device(devices, d, n) for d in range(devices)])
