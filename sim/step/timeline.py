"""The training step's timeline as data: every span with its rank, stream, layer, op and micro-batch.

Each pipeline action is expanded into its chunk's annotations on each stream (one span per
annotation instance and stream: first kernel start to last kernel end, as DeepSeek's trace reader
measures them), shifted to the action's start. The data-parallel phase adds its reduce-scatter and
all-gather (stream ``dp``) and the optimizer (stream ``compute``). Perfetto: one process per rank,
one track per stream (DeepSeek's stream ids 7, 23, 27 for compute, weight gradients, DeepEP).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sim.chunk.streams import Task
from sim.chunk.timer import ChunkResult
from sim.pipeline.ops import Op
from sim.step.simulate import StepRun

STREAM_TID = {"compute": 7, "wgrad": 23, "comm": 27, "dp": 99}
COLUMNS = ["pipeline", "device", "stream", "layer", "op", "microbatch", "action", "start_s", "end_s"]

Segment = tuple[str, int, str, str, float, float]  # stream, layer, annotation, direction, start, end


def chunk_segments(chunk: ChunkResult) -> list[Segment]:
    """Annotation instances of a chunk per stream, in start order (seconds from the chunk's start)."""
    return _segments(chunk.tasks, [t.start for t in chunk.tasks], [t.end for t in chunk.tasks])


def _segments(tasks: list[Task], starts: list[float], ends: list[float]) -> list[Segment]:
    """:func:`chunk_segments` of ``tasks`` taking ``starts`` and ``ends`` (a chunk re-timed by the shared
    network needs no copy of its tasks)."""
    groups: dict[tuple[str, str, int, int], list[float]] = {}
    for t, start, end in zip(tasks, starts, ends, strict=True):
        if end <= start:
            continue
        key = (t.stream, t.annotation or t.name, t.step, t.layer)
        span = groups.get(key)
        if span is None:
            groups[key] = [start, end]
        else:
            span[0] = min(span[0], start)
            span[1] = max(span[1], end)
    out = []
    for (stream, ann, _, layer), (s, e) in groups.items():
        direction = "F" if ann.endswith("(F)") else "B"
        out.append((stream, layer, ann, direction, s, e))
    out.sort(key=lambda x: (x[4], x[0]))
    return out


def spans_frame(step: StepRun) -> pd.DataFrame:
    """Every span of the step (all pipelines; per-GPU fidelity has one per EP group of a rank)."""
    rows: list[tuple[Any, ...]] = []
    cache: dict[int, list[Segment]] = {}
    for pipe in step.pipelines:
        sched = pipe.run.schedule
        for span in pipe.run.recorder.spans:
            action = sched.actions[span.device][span.pos]
            atoms = action.atoms()
            mb_f = next((a.mb for a in atoms if a.op is Op.F), -1)
            mb_b = next((a.mb for a in atoms if a.op is not Op.F), -1)
            chunk = pipe.source.chunk(action)
            retimed = pipe.comm_durations.get((span.device, span.pos))
            if retimed is not None:  # its phases as long as the shared network made them
                starts, ends = retimed[0].times(retimed[1])
                segs = _segments(chunk.tasks, starts.tolist(), ends.tolist())
            else:
                hit = cache.get(id(chunk))
                if hit is None:
                    hit = cache[id(chunk)] = chunk_segments(chunk)
                segs = hit
            label = span.label
            for stream, layer, ann, direction, s, e in segs:
                mb = mb_f if direction == "F" else mb_b
                rows.append((pipe.group, span.device, stream, layer, ann, mb, label, span.start + s, span.start + e))
    for d, t in enumerate(step.timelines):
        phases = [("dp", "reduce-scatter", iv) for iv in t.reduce_scatter]
        phases += [("compute", "optimizer", t.optimizer), ("dp", "all-gather", t.all_gather)]
        for stream, op, (s, e) in phases:
            if e > s:
                rows.append((0, d, stream, -1, op, -1, op, s, e))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"pipeline": "int16", "device": "int16", "layer": "int16", "microbatch": "int32"})


def perfetto_trace(frame: pd.DataFrame, title: str, pipeline: int = 0) -> dict[str, Any]:
    """A Chrome/Perfetto trace of :func:`spans_frame`: one pipeline's ranks (per-GPU fidelity has one
    per EP group of a rank; give the one the step waits for) and the DP phase; times in microseconds."""
    mine = frame[(frame["pipeline"] == pipeline) | (frame["stream"] == "dp") | (frame["op"] == "optimizer")]
    events: list[dict[str, Any]] = []
    for rank in sorted(mine["device"].unique()):
        events.append({"ph": "M", "pid": int(rank), "name": "process_name", "args": {"name": f"PP rank {rank}"}})
        events.append({"ph": "M", "pid": int(rank), "name": "process_sort_index", "args": {"sort_index": int(rank)}})
        for stream, tid in STREAM_TID.items():
            events.append({"ph": "M", "pid": int(rank), "tid": tid, "name": "thread_name", "args": {"name": stream}})
    cols = [mine[c].to_numpy() for c in ("device", "stream", "layer", "op", "microbatch", "action", "start_s", "end_s")]
    for rank, stream, layer, op, mb, action, s, e in zip(*cols, strict=True):
        events.append(
            {
                "ph": "X",
                "pid": int(rank),
                "tid": STREAM_TID[str(stream)],
                "name": str(op),
                "ts": round(float(s) * 1e6, 3),
                "dur": round(float(e - s) * 1e6, 3),
                "args": {"layer": int(layer), "microbatch": int(mb), "action": str(action)},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"title": title}}
