"""Reading a PyTorch-profiler Chrome trace: GPU time of each CPU annotation.

Each ``user_annotation`` (e.g. ``attn(F)``) covers the CUDA launches the CPU made inside it; each
launch carries a correlation id shared with the GPU kernel it started. For every annotation we
collect its kernels and report, per stream class, the *wall* time (first kernel start to last
kernel end) and the *busy* time (sum of kernel durations). In DeepSeek's H800 trace
(``shared/reference/deepseek-v3/profile-data-train.json``) streams 7 and 23 compute and stream 27
runs DeepEP; the defaults say so.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.limits import MAX_TIME

COMPUTE_STREAMS = (7, 23)
COMM_STREAMS = (27,)


@dataclass(frozen=True)
class AnnotationTiming:
    """GPU times of one annotation instance, in microseconds."""

    name: str
    compute_wall_us: float
    compute_busy_us: float
    comm_wall_us: float
    kernels: int


def _wall(kernels: list[dict[str, Any]]) -> float:
    if not kernels:
        return 0.0
    return float(max(k["ts"] + k["dur"] for k in kernels) - min(k["ts"] for k in kernels))


def read_trace(trace: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A trace's JSON (read safely: regular UTF-8 file, bounded size, no NaN, no duplicate keys), every
    event the import reads checked; a dict is taken as already read. Read once and pass the dict to the
    functions here (each takes either): DeepSeek's 3 MB trace takes about 0.1 s to parse and check."""
    if isinstance(trace, dict):
        return trace
    from sim.errors import ScenarioError
    from sim.yamlio import MAX_TRACE_BYTES, read_json

    data = read_json(trace, "trace", MAX_TRACE_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise ScenarioError("traceEvents", "a profiler trace is a JSON object with a traceEvents list", str(trace))
    for i, event in enumerate(data["traceEvents"]):
        if not isinstance(event, dict):
            raise ScenarioError(f"traceEvents[{i}]", f"an event is a JSON object, got {event!r:.40}", str(trace))
        _check_event(event, f"traceEvents[{i}]", str(trace))
    return data


MAX_TS_US = float(1 << 53)  # a timestamp in microseconds (epoch-based ones are ~1.7e15): whole microseconds exact
MAX_DUR_US = MAX_TIME  # an event's duration, microseconds (11.6 days: sim.limits' bound on any time)
_READ = {  # the events the import reads, and what it reads of them
    "kernel": ("name", "ts", "dur", "args", "correlation", "stream"),
    "user_annotation": ("name", "ts", "dur"),
    "cuda_runtime": ("ts", "args", "correlation"),
}


def _check_event(event: dict[str, Any], where: str, file: str) -> None:
    """The keys an event of a kind the import reads (:data:`_READ`) must have, of the types it reads them
    as: a name, a finite timestamp and a duration of 0 or more (microseconds), a correlation id and a
    stream (whole numbers); else one line naming the event and the key."""
    import math

    from sim.errors import ScenarioError

    reads = _READ.get(str(event.get("cat")))
    if reads is None:
        return

    def number(key: str, lo: float, hi: float) -> None:
        value = event.get(key)
        if value is None:
            raise ScenarioError(f"{where}.{key}", f"required key is missing (a {event['cat']} event has it)", file)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}.{key}", f"must be a number (microseconds), got {value!r:.40}", file)
        if not (math.isfinite(value) and lo <= value <= hi):
            allowed = f"in [0, {hi:g}]" if lo == 0 else "of magnitude at most 2^53"
            raise ScenarioError(
                f"{where}.{key}", f"must be a finite number of microseconds {allowed}, got {value!r}", file
            )

    if "name" in reads and not isinstance(event.get("name"), str):
        raise ScenarioError(f"{where}.name", f"must be text, got {event.get('name')!r:.40}", file)
    number("ts", -MAX_TS_US, MAX_TS_US)
    if "dur" in reads:
        number("dur", 0.0, MAX_DUR_US)
    args = event.get("args")
    if args is None and event["cat"] == "cuda_runtime":
        return
    if not isinstance(args, dict):
        raise ScenarioError(f"{where}.args", f"must be a JSON object with the correlation id, got {args!r:.40}", file)
    for key in ("correlation", "stream"):
        value = args.get(key)
        if key not in reads or (value is None and (key == "stream" or event["cat"] == "cuda_runtime")):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}.args.{key}", f"must be a whole number, got {value!r:.40}", file)


def annotation_timings(
    trace: str | Path | dict[str, Any],
    compute_streams: tuple[int, ...] = COMPUTE_STREAMS,
    comm_streams: tuple[int, ...] = COMM_STREAMS,
    skip: tuple[str, ...] = ("ProfilerStep", "1F1B"),
) -> list[AnnotationTiming]:
    """Timings of every annotation in order (annotations whose name starts with ``skip`` excluded)."""
    data = read_trace(trace)
    events = data["traceEvents"]
    annotations = sorted(
        (e for e in events if e.get("cat") == "user_annotation" and not e["name"].startswith(skip)),
        key=lambda e: e["ts"],
    )
    launches = sorted((e for e in events if e.get("cat") == "cuda_runtime"), key=lambda e: e["ts"])
    starts = [e["ts"] for e in launches]
    kernels = {e["args"]["correlation"]: e for e in events if e.get("cat") == "kernel"}
    out = []
    for a in annotations:
        lo = bisect.bisect_left(starts, a["ts"])
        hi = bisect.bisect_right(starts, a["ts"] + a["dur"])
        mine = [kernels[c] for e in launches[lo:hi] if (c := e.get("args", {}).get("correlation")) in kernels]
        compute = [k for k in mine if k["args"].get("stream") in compute_streams]
        comm = [k for k in mine if k["args"].get("stream") in comm_streams]
        out.append(
            AnnotationTiming(a["name"], _wall(compute), float(sum(k["dur"] for k in compute)), _wall(comm), len(mine))
        )
    return out


def mean_by_name(timings: list[AnnotationTiming]) -> dict[str, AnnotationTiming]:
    """Mean timing of each annotation name (e.g. over the 4 layers of DeepSeek's trace)."""
    groups: dict[str, list[AnnotationTiming]] = defaultdict(list)
    for t in timings:
        groups[t.name].append(t)
    return {
        name: AnnotationTiming(
            name,
            statistics.fmean(t.compute_wall_us for t in ts),
            statistics.fmean(t.compute_busy_us for t in ts),
            statistics.fmean(t.comm_wall_us for t in ts),
            round(statistics.fmean(t.kernels for t in ts)),
        )
        for name, ts in groups.items()
    }


def kernel_span_us(trace: str | Path | dict[str, Any]) -> float:
    """First kernel start to last kernel end over the whole trace."""
    data = read_trace(trace)
    return _wall([e for e in data["traceEvents"] if e.get("cat") == "kernel"])
