"""One stage per device: 1F1B (PipeDream-flush / Megatron) and ZB1P (ZB-H1 of the zero-bubble paper).

Device ``d`` holds stage ``d``. Both schedules start with ``min(PP-1-d, N)`` warm-up forwards.
1F1B then alternates F and B and drains the remaining Bs; its order equals the compute order of
``torch.distributed.pipelining.Schedule1F1B``.
ZB1P (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, schedule ZB-H1) splits every B into
I and W, runs I on the critical path and delays device ``d``'s W passes by ``d`` steps so they fill the
cool-down bubbles; peak activations stay at PP as in 1F1B. Its order equals torch's
``ScheduleInterleavedZeroBubble`` with one stage per rank.
"""

from __future__ import annotations

from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register


def linear_schedule(name: str, pp: int, n: int, actions: list[list[Action]]) -> Schedule:
    """Wrap per-device actions of a one-stage-per-device pipeline into a :class:`Schedule`."""
    return Schedule(
        name=name,
        pp=pp,
        num_microbatches=n,
        stage_device=tuple(range(pp)),
        stage_model=tuple(range(pp)),
        stage_weight=(1.0,) * pp,
        routes=(tuple(range(pp)),),
        mb_route=(0,) * n,
        actions=tuple(tuple(a) for a in actions),
    )


@register("1f1b", "one forward, one backward (PipeDream-flush); bubble (PP-1)(F+B)")
def one_f_one_b(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    per_device: list[list[Action]] = []
    for d in range(pp):
        warmup = min(pp - 1 - d, n)
        acts = [Action(Op.F, d, m) for m in range(warmup)]
        for k in range(n - warmup):
            acts += [Action(Op.F, d, warmup + k), Action(Op.B, d, k)]
        acts += [Action(Op.B, d, k) for k in range(n - warmup, n)]
        per_device.append(acts)
    return linear_schedule("1f1b", pp, n, per_device)


@register(
    "zb1p",
    "zero-bubble ZB-H1: B split into I and W, W delayed to fill bubbles; bubble (PP-1)(F+B-2W)",
    splits_backward=True,
)
def zb1p(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    per_device: list[list[Action]] = []
    for d in range(pp):
        warmup = min(pp - 1 - d, n)
        acts = [Action(Op.F, d, m) for m in range(warmup)]
        next_w = 0
        for k in range(n):  # k-th backward-input pass, preceded by a forward while any remain
            if warmup + k < n:
                acts.append(Action(Op.F, d, warmup + k))
            acts.append(Action(Op.I, d, k))
            if k >= d:  # device d runs its W passes d steps late
                acts.append(Action(Op.W, d, next_w))
                next_w += 1
        acts += [Action(Op.W, d, m) for m in range(next_w, n)]
        per_device.append(acts)
    return linear_schedule("zb1p", pp, n, per_device)
