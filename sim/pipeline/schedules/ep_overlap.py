"""Interleaved 1F1B with the expert-parallel all-to-alls of one micro-batch hidden under another's
compute ("combined 1F1B": Megatron-Core's ``--overlap-moe-expert-parallel-comm``, which asks for
virtual stages; DeepSeek's F&B chunk pair, DeepSeek-V3 report section 3.2.1, applied to 1F1B).

In the steady state of 1F1B a device runs the forward of one micro-batch and then the backward of
another; these schedules run each such (F, B) as one overlapped F&B pair (:class:`Action` ``F&B``,
the chunk model's layer-by-layer pair, :mod:`sim.chunk.timer`), so one's dispatch and combine run
under the other's attention and MLP. A pair whose backward needs its own forward (the last stage's
F(k), B(k)) stays two actions, as do warm-up and cool-down. Both parts' outputs leave at the pair's
end. Built on ``interleaved-1f1b``; valid for every PP, v and N tried (``tests/theory``).

Why not plain 1F1B: there a pair's forward feeds the next device's pair directly, so holding its
output until the pair ends adds a backward to every hop of the steady state, and the step gets slower
(measured: a Qwen3-30B-A3B step of PP4, 16 micro-batches, 0.88 s -> 1.22 s); with virtual stages the
forward paired on a device belongs to another chunk than the one the next device waits for.
"""

from __future__ import annotations

from dataclasses import replace

from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register
from sim.pipeline.schedules.interleaved import interleaved_1f1b
from sim.pipeline.validate import progress


def paired(schedule: Schedule, name: str) -> Schedule:
    """``schedule`` with every F directly followed by a B of another (stage, micro-batch) merged into
    one overlapped F&B action, except the pairs that would wait for themselves: a pair holds its
    forward's output until it ends, so where the backward's gradient needs that output first (the
    boundary of warm-up and cool-down when the micro-batches barely fill the pipeline), the pair is
    split again, one at a time where the merged lists stop, until every device runs to its end."""
    lists: list[list[Action]] = []
    for acts in schedule.actions:
        merged: list[Action] = []
        i = 0
        while i < len(acts):
            a = acts[i]
            b = acts[i + 1] if i + 1 < len(acts) else None
            if a.op is Op.F and b is not None and b.op is Op.B and (b.stage, b.mb) != (a.stage, a.mb):
                merged.append(Action.overlap(a, b))
                i += 2
            else:
                merged.append(a)
                i += 1
        lists.append(merged)
    while True:
        out = replace(schedule, name=name, actions=tuple(tuple(a) for a in lists))
        pos, _ = progress(out)
        stuck = [d for d in range(out.num_devices) if pos[d] < len(lists[d]) and lists[d][pos[d]].op is Op.FB]
        if not stuck:
            return out
        for d in stuck:
            lists[d][pos[d] : pos[d] + 1] = list(lists[d][pos[d]].parts)


@register(
    "interleaved-1f1b-overlap",
    "interleaved 1F1B with each steady-state F and B overlapped (combined 1F1B); v virtual stages",
    virtual=True,
    pairs=True,
)
def interleaved_overlap(pp: int, n: int, virtual_stages: int = 2) -> Schedule:
    return paired(interleaved_1f1b(pp, n, virtual_stages), "interleaved-1f1b-overlap")
