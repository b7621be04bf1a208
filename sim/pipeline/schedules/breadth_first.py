"""Fill-drain schedules: GPipe (Huang et al., NeurIPS 2019) and Looped BFS (Lamy-Poirier,
"Breadth-First Pipeline Parallelism", MLSys 2023, arXiv 2211.05953).

GPipe: one stage per device; every device runs the forwards of all N micro-batches, then their
backwards in the same order. Its bubble is 1F1B's, (PP-1)(F+B), but every device holds all N
micro-batches' activations at its peak (1F1B holds at most PP). Equal to the compute order of
``torch.distributed.pipelining.ScheduleGPipe`` (``_get_pipeline_order``, no-ops and the final
gradient reduction left out).

Looped BFS: ``v`` virtual stages per device (virtual stage ``s`` on device ``s % PP``, as interleaved
1F1B); a device runs the forwards of all micro-batches on its first chunk, then on its next, and the
backwards chunk by chunk in reverse, each chunk's micro-batches last first. It trades interleaved
1F1B's N-independent memory for fewer, larger sends between chunks. Equal to torch's
``ScheduleLoopedBFS`` for every PP, v and N.
"""

from __future__ import annotations

from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register
from sim.pipeline.schedules.interleaved import virtual_schedule
from sim.pipeline.schedules.linear import linear_schedule


@register("gpipe", "GPipe fill-drain: all forwards, then all backwards; bubble (PP-1)(F+B), N micro-batches held")
def gpipe(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    per_device = [[Action(Op.F, d, m) for m in range(n)] + [Action(Op.B, d, m) for m in range(n)] for d in range(pp)]
    return linear_schedule("gpipe", pp, n, per_device)


@register(
    "looped-bfs", "breadth-first: every micro-batch through a device's chunk before its next; v chunks", virtual=True
)
def looped_bfs(pp: int, n: int, virtual_stages: int = 2) -> Schedule:
    v = virtual_stages
    per_device: list[list[Action]] = []
    for d in range(pp):
        stages = range(d, pp * v, pp)
        acts = [Action(Op.F, s, m) for s in stages for m in range(n)]
        acts += [Action(Op.B, s, m) for s in reversed(stages) for m in reversed(range(n))]
        per_device.append(acts)
    return virtual_schedule("looped-bfs", pp, n, v, per_device)
