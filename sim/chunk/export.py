"""A timed chunk as a Chrome/Perfetto trace in the layout of DeepSeek's profiler trace.

Process ``GPU 0``; threads ``stream 7`` (compute), ``stream 23`` (the second compute stream, weight
gradients) and ``stream 27`` (DeepEP), as in ``shared/reference/deepseek-v3/profile-data-train.json``;
every op is a slice named after it, inside a slice named after its annotation (``attn(F)``,
``dispatch(F)``, ...) on each stream its ops ran on, spanning that stream's ops of it (one slice over
every stream's ops, on the stream of the first, overlapped the next annotation's there: ``mlp(W)``'s
weight-gradient kernels on stream 23 run past ``mlp(F)``'s start on stream 7, and Perfetto draws
partial overlaps wrongly), so both traces open side by side in ui.perfetto.dev. Times in microseconds
from the chunk's first kernel, rounded to the nanosecond, a slice's end as the next one's start would
be (as :mod:`sim.step.timeline` writes them: touching slices never overlap by a rounding).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sim.chunk.timer import ChunkResult
from sim.outputs import trace_when

STREAM_TID = {"compute": 7, "wgrad": 23, "comm": 27}


def chunk_trace(result: ChunkResult, title: str = "clustertwin chunk") -> dict[str, Any]:
    busy = [t for t in result.tasks if t.end > t.start]
    t0 = min((t.start for t in busy), default=0.0)
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": f"GPU 0 ({title})"}},
    ]
    for tid in STREAM_TID.values():
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": tid, "args": {"name": f"stream {tid}"}})

    def when(start: float, end: float) -> tuple[float, float]:
        span = trace_when(start - t0, end - t0, 1e6)
        return span["ts"], span["dur"]

    groups: dict[tuple[str, int, str], list[Any]] = defaultdict(list)
    for t in busy:
        groups[(t.annotation, t.step, t.stream)].append(t)
        ts, dur = when(t.start, t.end)
        events.append(
            {
                "ph": "X",
                "cat": "kernel",
                "name": t.name,
                "pid": 0,
                "tid": STREAM_TID[t.stream],
                "ts": ts,
                "dur": dur,
                "args": {"annotation": t.annotation, "layer": t.layer, "kind": t.kind},
            }
        )
    for (annotation, step, stream), tasks in groups.items():
        if not annotation:
            continue
        ts, dur = when(min(t.start for t in tasks), max(t.end for t in tasks))
        events.append(
            {
                "ph": "X",
                "cat": "gpu_user_annotation",
                "name": annotation,
                "pid": 0,
                "tid": STREAM_TID[stream],
                "ts": ts,
                "dur": dur,
                "args": {"step": step},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
