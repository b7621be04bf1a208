"""A timed chunk as a Chrome/Perfetto trace in the layout of DeepSeek's profiler trace.

Process ``GPU 0``; threads ``stream 7`` (compute), ``stream 23`` (the second compute stream, weight
gradients) and ``stream 27`` (DeepEP), as in ``shared/reference/deepseek-v3/profile-data-train.json``;
every op is a slice named after it, inside a slice named after its annotation (``attn(F)``,
``dispatch(F)``, ...) on the stream of its first op, so both traces open side by side in
ui.perfetto.dev. Times in microseconds from the chunk's first kernel.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sim.chunk.timer import ChunkResult

STREAM_TID = {"compute": 7, "wgrad": 23, "comm": 27}


def chunk_trace(result: ChunkResult, title: str = "clustertwin chunk") -> dict[str, Any]:
    busy = [t for t in result.tasks if t.end > t.start]
    t0 = min((t.start for t in busy), default=0.0)
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": f"GPU 0 ({title})"}},
    ]
    for tid in STREAM_TID.values():
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": tid, "args": {"name": f"stream {tid}"}})
    groups: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for t in busy:
        groups[(t.annotation, t.step)].append(t)
        events.append(
            {
                "ph": "X",
                "cat": "kernel",
                "name": t.name,
                "pid": 0,
                "tid": STREAM_TID[t.stream],
                "ts": (t.start - t0) * 1e6,
                "dur": (t.end - t.start) * 1e6,
                "args": {"annotation": t.annotation, "layer": t.layer, "kind": t.kind},
            }
        )
    for (annotation, step), ts in groups.items():
        if not annotation:
            continue
        first = min(ts, key=lambda t: t.start)
        start, end = first.start, max(t.end for t in ts)
        events.append(
            {
                "ph": "X",
                "cat": "gpu_user_annotation",
                "name": annotation,
                "pid": 0,
                "tid": STREAM_TID[first.stream],
                "ts": (start - t0) * 1e6,
                "dur": (end - start) * 1e6,
                "args": {"step": step},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
