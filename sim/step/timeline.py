"""The one timeline of a run, as data, and its one Perfetto trace: a training step's and a schedule
comparison's (each schedule a step whose op times were given, :meth:`StepRun.of_schedule`).

* **Spans** (:func:`spans_frame`): every span with its pipeline, rank, stream, layer, op, kind (the
  pipeline op it belongs to: F, B, I, W, the two parts of an F&B pair told apart as F and B; ``dp``
  and ``optimizer`` for the data-parallel phase), micro-batch, stage and action. A training step
  expands each pipeline action into its chunk's annotations on each stream (one span per annotation
  instance and stream: first kernel start to last kernel end, as DeepSeek's trace reader measures
  them), shifted to the action's start; the data-parallel phase adds its reduce-scatters and
  all-gather (stream ``dp``) and the optimizer (stream ``compute``). An action with given op times is
  one span on ``compute`` named by its op (``F``, ``B``, ``I``, ``W``, ``F&B``; an F&B span's
  micro-batch and stage are its forward's).
* **Parts** (:func:`parts_frame`, given op times only): each part of an F&B pair, its op (``F``, and
  ``B`` or ``I``), micro-batch, stage and the time it was given for that op on that stage.
* **Transfers**: every stage-to-stage send (pipeline, source and destination rank, bytes, start and
  arrival).
* **Link counters** (:mod:`sim.network.linklog`): the bytes the run's network carried on each link
  block (NVLink, PCIe, NIC, leaf and spine ports), per tag (``deepep``, ``pipeline``, ``zero1``),
  in equal time bins. With ``training.contention: isolated`` only the pipeline sends ran on the
  step's network (DeepEP phases and collectives were timed alone), so only they are counted.

Perfetto (:func:`perfetto_trace`): one process per pipeline rank, one track per stream (DeepSeek's
stream ids 7, 23, 27 for compute, weight gradients, DeepEP), a ``send`` and a ``recv`` track with a
flow arrow from each send to its arrival on the neighbour, and one process ``network`` with a counter
per link block (GB/s, one series per tag). A slice's args are its micro-batch, stage, action (and
layer); an F&B slice with given op times, which runs both parts at once, has instead its action and
one entry per part (``F``, and ``B`` or ``I``: micro-batch, stage and ``dur``, the part's given time
in the trace's microseconds), the slice itself lasting the pair as simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim.chunk.export import STREAM_TID as CHUNK_STREAM_TID
from sim.chunk.streams import Task
from sim.network.linklog import COUNTER_COLUMNS
from sim.outputs import JSON_COMPACT, QuotedStrings, trace_when
from sim.pipeline.ops import Op
from sim.step.spec import StepRun

FSDP_STREAM = "fsdp"  # FSDP's per-unit all-gathers (its reduce-scatters are on ``dp``, one at a time too)
STREAM_TID = {**CHUNK_STREAM_TID, "dp": 99, FSDP_STREAM: 100, "send": 101, "recv": 102}
RANK_STREAMS = ("dp", FSDP_STREAM)  # a rank's own, whichever pipeline (EP group) is shown

NETWORK_PID = 1_000_000  # the network's counters: one process after every rank
COLUMNS = ["pipeline", "device", "stream", "layer", "op", "kind", "microbatch", "stage", "action", "start_s", "end_s"]
# Under FSDP an action ends when its chunk and the walk over its units (each waiting for its gathered
# weights) have both ended (sim.step.fsdp): the time past the chunk's own last kernel is this slice.
FSDP_WAIT = "waiting for weights (FSDP)"
TRANSFER_COLUMNS = ["pipeline", "src", "dst", "label", "bytes", "start_s", "end_s"]
COUNTER_BINS = 2000  # link counter bins over the run (a 21 s step: 10.5 ms each); a rank's NICs: a quarter
MEMORY_COLUMNS = ["device", "start_s", "end_s", "high_bytes", "low_bytes", "static_bytes"]
PART_COLUMNS = ["pipeline", "device", "action", "part", "microbatch", "stage", "duration_s"]
GiB = float(1 << 30)

Segment = tuple[str, int, str, str, float, float]  # stream, layer, annotation, direction, start, end


@dataclass(frozen=True)
class Timeline:
    """A run's spans, transfers and link counters (columns :data:`COLUMNS`, :data:`TRANSFER_COLUMNS`,
    :data:`sim.network.linklog.COUNTER_COLUMNS`), seconds from the run's start."""

    spans: pd.DataFrame
    transfers: pd.DataFrame
    links: pd.DataFrame
    memory: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({c: [] for c in MEMORY_COLUMNS}))
    nics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({c: [] for c in COUNTER_COLUMNS}))
    parts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({c: [] for c in PART_COLUMNS}))


def _segments(tasks: list[Task], starts: list[float], ends: list[float]) -> list[Segment]:
    """Annotation instances of a chunk's ``tasks`` timed ``starts``/``ends``, per stream, in start order
    (seconds from the chunk's start): the plain form :class:`SegmentPlan` is tested against."""
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


class SegmentPlan:
    """:func:`_segments` for one chunk's tasks, vectorised over re-timings: the grouping of tasks into
    annotation instances is fixed by the chunk, only the times change (one plan serves every action the
    shared network re-timed; :func:`_segments` stays the plain reference, tied by a property test)."""

    def __init__(self, tasks: list[Task]) -> None:
        index: dict[tuple[str, str, int, int], int] = {}
        group = np.array(
            [index.setdefault((t.stream, t.annotation or t.name, t.step, t.layer), len(index)) for t in tasks],
            dtype=np.int64,
        )
        self._order = np.argsort(group, kind="stable")
        self._bounds = np.searchsorted(group[self._order], np.arange(len(index)))
        self._keys = list(index)
        streams = sorted({k[0] for k in index})
        self._stream_rank = np.array([streams.index(k[0]) for k in index], dtype=np.int64)
        self._position = np.arange(len(tasks), dtype=np.int64)
        # each group's columns (a spans frame takes them by the kept groups' indices)
        self.streams = np.array([k[0] for k in index], dtype=object)
        self.annotations = np.array([k[1] for k in index], dtype=object)
        self.layers = np.array([k[3] for k in index], dtype=np.int64)
        self.forward = np.array([k[1].endswith("(F)") for k in index], dtype=bool)

    def kept(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`segments` as arrays: the groups that ran, in segment order, and their starts and ends."""
        if not self._keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
        valid = ends > starts
        order, bounds = self._order, self._bounds
        first = np.minimum.reduceat(np.where(valid, starts, np.inf)[order], bounds)
        last = np.maximum.reduceat(np.where(valid, ends, -np.inf)[order], bounds)
        # a group's place among equal (start, stream): where its first task that ran stands
        seen = np.minimum.reduceat(np.where(valid, self._position, len(valid))[order], bounds)
        kept = np.flatnonzero(np.isfinite(first))
        kept = kept[np.lexsort((seen[kept], self._stream_rank[kept], first[kept]))]
        return kept, first[kept], last[kept]

    def segments(self, starts: np.ndarray, ends: np.ndarray) -> list[Segment]:
        """The segments of the tasks timed ``starts``/``ends`` (arrays in task order)."""
        kept, first, last = self.kept(starts, ends)
        out: list[Segment] = []
        for g, s, e in zip(kept.tolist(), first.tolist(), last.tolist(), strict=True):
            stream, ann, _, layer = self._keys[g]
            out.append((stream, layer, ann, "F" if self.forward[g] else "B", s, e))
        return out


def timeline(step: StepRun, bins: int = COUNTER_BINS) -> Timeline:
    """The run's :class:`Timeline` (link counters in ``bins`` bins over the run)."""
    links = (
        step.links.counters(step.step_time, bins)
        if step.links is not None
        else pd.DataFrame({c: [] for c in COUNTER_COLUMNS})
    )
    tl = Timeline(spans_frame(step), transfers_frame(step), links, parts=parts_frame(step))
    if step.given_spec is None:
        return tl
    nics = nic_counters(step, max(1, bins // 4))
    return Timeline(tl.spans, tl.transfers, tl.links, memory_frame(step), nics, tl.parts)


def parts_frame(step: StepRun) -> pd.DataFrame:
    """Each part of every F&B pair run with given op times (columns :data:`PART_COLUMNS`): its action's
    label, its op (``F``, and ``B`` or ``I``), micro-batch, stage and the time given for that op on that
    stage (a pair runs both at once, for its own F&B time: the span). Empty for a training step, whose
    F&B actions are chunks with spans of their own for each part."""
    rows = []
    for pipe in step.pipelines:
        times = pipe.run.op_times
        if pipe.chunks is not None or times is None:
            continue
        sched = pipe.run.schedule
        for span in pipe.run.recorder.spans:
            action = sched.actions[span.device][span.pos]
            if action.op is not Op.FB:
                continue
            for part in action.parts:
                duration = times.duration(part, sched)
                rows.append((pipe.group, span.device, span.label, part.op.value, part.mb, part.stage, duration))
    return pd.DataFrame(rows, columns=PART_COLUMNS)


def memory_frame(step: StepRun) -> pd.DataFrame:
    """Per action of the reported pipeline's ranks: when it ran, the bytes per GPU it holds while it
    runs and after it ends (activations by :func:`sim.step.accounting.memory_levels`) and the rank's
    parameters, gradients and optimizer shard."""
    from sim.step.accounting import memory_levels

    spec = step.spec
    pipe = step.reported_pipeline()
    rows = []
    levels = {}
    for d in range(spec.inputs.layout.devices):
        levels[d] = memory_levels(spec.inputs.model, spec.inputs.layout, spec.schedule, d)
    for span in pipe.run.recorder.spans:
        static, per_pos = levels[span.device]
        high, low = per_pos[span.pos]
        rows.append((span.device, span.start, span.end, high, low, static))
    frame = pd.DataFrame(rows, columns=MEMORY_COLUMNS)
    return frame.sort_values(["device", "start_s"], kind="stable", ignore_index=True)


def nic_counters(step: StepRun, bins: int = COUNTER_BINS) -> pd.DataFrame:
    """Bytes through each pipeline rank's NICs (both directions, every GPU of the rank) per bin and tag,
    the ``block`` column naming the rank (``rank 3``); empty without a network log."""
    if step.links is None or not step.links.kind_links:
        return pd.DataFrame({c: [] for c in COUNTER_COLUMNS})
    spec = step.spec
    topo, lay = spec.topology, spec.inputs.layout
    group = np.full(topo.num_links, -1, dtype=np.int64)
    for name in ("nic_up", "nic_down"):
        block = topo.blocks.get(name)
        if block is None:
            continue
        for d in range(lay.devices):
            group[block.offset + np.asarray(lay.rank_gpus(d), dtype=np.int64)] = d
    names = tuple(f"rank {d}" for d in range(lay.devices))
    return step.links.group_counters(group, names, step.step_time, bins)


def spans_frame(step: StepRun) -> pd.DataFrame:
    """Every span of the run (all pipelines; per-GPU fidelity has one per EP group of a rank). Built
    column by column: an action's segments come as arrays from its chunk's :class:`SegmentPlan`."""
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}

    def row(*values: Any) -> None:
        for c, v in zip(COLUMNS, values, strict=True):
            cols[c].append(v)

    fsdp = step.given_spec is not None and step.spec.inputs.layout.fsdp
    plans: dict[int, SegmentPlan] = {}
    as_timed: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # a chunk's segments as it timed itself
    as_retimed: dict[tuple[int, tuple[float, ...]], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for pipe in step.pipelines:
        sched = pipe.run.schedule
        for span in pipe.run.recorder.spans:
            action = sched.actions[span.device][span.pos]
            atoms = action.atoms()
            label = span.label
            if pipe.chunks is None:  # op times given: the action is one span
                head, op = atoms[0], action.op.value
                row(pipe.group, span.device, "compute", -1, op, op, head.mb, head.stage, label, span.start, span.end)
                continue
            chunk = pipe.chunks.chunk(action)
            plan = plans.get(id(chunk))
            if plan is None:
                plan = plans[id(chunk)] = SegmentPlan(chunk.tasks)
            retimed = pipe.comm_durations.get((span.device, span.pos))
            if retimed is not None:  # its phases as long as the shared network made them
                key = (id(retimed[0]), retimed[1])  # steady state repeats them
                hit = as_retimed.get(key)
                if hit is None:
                    starts, ends = retimed[0].times(retimed[1])
                    hit = as_retimed[key] = plan.kept(
                        np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
                    )
                kept, first, last = hit
            else:
                hit = as_timed.get(id(chunk))
                if hit is None:
                    timed = ([t.start for t in chunk.tasks], [t.end for t in chunk.tasks])
                    hit = as_timed[id(chunk)] = plan.kept(np.array(timed[0]), np.array(timed[1]))
                kept, first, last = hit
            n = len(kept)
            f_atom = next((a for a in atoms if a.op is Op.F), None)
            b_atom = next((a for a in atoms if a.op is not Op.F), None)
            f = (f_atom.mb, f_atom.stage, f_atom.op.value) if f_atom is not None else (-1, -1, "")
            b = (b_atom.mb, b_atom.stage, b_atom.op.value) if b_atom is not None else (-1, -1, "")
            forward = plan.forward[kept].tolist()
            cols["pipeline"] += [pipe.group] * n
            cols["device"] += [span.device] * n
            cols["stream"] += plan.streams[kept].tolist()
            cols["layer"] += plan.layers[kept].tolist()
            cols["op"] += plan.annotations[kept].tolist()
            cols["kind"] += [f[2] if x else b[2] for x in forward]
            cols["microbatch"] += [f[0] if x else b[0] for x in forward]
            cols["stage"] += [f[1] if x else b[1] for x in forward]
            cols["action"] += [label] * n
            cols["start_s"] += (span.start + first).tolist()
            cols["end_s"] += (span.start + last).tolist()
            chunk_end = span.start + (float(last.max()) if n else 0.0)
            if fsdp and span.end > chunk_end:  # its units waited for their weights past the chunk's end
                head = atoms[0]
                row(
                    pipe.group,
                    span.device,
                    "compute",
                    -1,
                    FSDP_WAIT,
                    head.op.value,
                    head.mb,
                    head.stage,
                    label,
                    chunk_end,
                    span.end,
                )
    for d, t in enumerate(step.timelines):
        phases = [("dp", "reduce-scatter", iv) for iv in t.reduce_scatter]
        phases += [("dp", "embedding all-reduce", t.embedding_sync)] if t.embedding_sync else []
        phases += [("compute", "optimizer", t.optimizer), ("dp", "all-gather", t.all_gather)]
        # FSDP: each unit's all-gather, on a track of its own (they run beside the reduce-scatters)
        phases += [(FSDP_STREAM, "all-gather", iv) for iv in t.fsdp_gathers]
        for stream, op, (s, e) in phases:
            if e > s:
                kind = op if stream == "compute" else stream
                row(0, d, stream, -1, op, kind, -1, -1, op, s, e)
    frame = pd.DataFrame(cols, columns=COLUMNS)
    return frame.astype(
        {"pipeline": "int16", "device": "int16", "layer": "int16", "microbatch": "int32", "stage": "int16"}
    )


def transfers_frame(step: StepRun) -> pd.DataFrame:
    """Every stage-to-stage send of the run."""
    rows = [
        (pipe.group, t.src, t.dst, t.label, t.nbytes, t.start, t.arrival)
        for pipe in step.pipelines
        for t in pipe.run.recorder.transfers
    ]
    frame = pd.DataFrame(rows, columns=TRANSFER_COLUMNS)
    return frame.astype({"pipeline": "int16", "src": "int16", "dst": "int16", "bytes": "float64"})


def perfetto_trace(tl: Timeline, title: str, pipeline: int = 0, time_scale_us: float = 1e6) -> dict[str, Any]:
    """A Chrome/Perfetto trace of ``tl``: one pipeline's ranks (per-GPU fidelity has one per EP group of a
    rank; give the one the step waits for), its sends, the DP phase and the link counters.
    ``time_scale_us`` converts the run's time unit to microseconds (1e6 for seconds, 1e3 for op times
    given in milliseconds). :func:`perfetto_json` writes the same trace as JSON text, faster."""
    head, spans, tail = _trace_parts(tl, pipeline, time_scale_us)
    events = head + [
        {
            "ph": "X",
            "pid": rank,
            "tid": tid,
            "name": op,
            "ts": ts,
            "dur": dur,
            "args": _span_args(mb, stage, action, layer) if given is None else given,
        }
        for rank, tid, op, ts, dur, mb, stage, action, layer, given in spans
    ]
    return {"traceEvents": events + tail, "displayTimeUnit": "ms", "otherData": {"title": title}}


def perfetto_json(tl: Timeline, title: str, pipeline: int = 0, time_scale_us: float = 1e6) -> str:
    """``json.dumps(perfetto_trace(...), separators=(",", ":"))``, byte for byte (a test checks it),
    without building a dict per slice: a step's 85,000 slices are formatted as text directly (numbers
    by ``repr``, as ``json`` writes them; strings through ``json.dumps``, once per distinct string)."""
    head, spans, tail = _trace_parts(tl, pipeline, time_scale_us)
    quoted, compact = QuotedStrings(), JSON_COMPACT
    parts = [json.dumps(head, separators=compact)[1:-1]] if head else []  # one call: the C encoder's loop
    for rank, tid, op, ts, dur, mb, stage, action, layer, given in spans:
        if given is not None:  # an F&B pair's parts (few: formatted by json)
            args = json.dumps(given, separators=compact)
        else:
            at = f',"layer":{layer!r}' if layer >= 0 else ""
            args = f'{{"microbatch":{mb!r},"stage":{stage!r},"action":{quoted(action)}{at}}}'
        parts.append(
            f'{{"ph":"X","pid":{rank!r},"tid":{tid!r},"name":{quoted(op)},"ts":{ts!r},"dur":{dur!r},"args":{args}}}'
        )
    if tail:
        parts.append(json.dumps(tail, separators=compact)[1:-1])
    rest = json.dumps({"displayTimeUnit": "ms", "otherData": {"title": title}}, separators=compact)
    return '{"traceEvents":[' + ",".join(parts) + "]," + rest[1:]


def _span_args(mb: int, stage: int, action: str, layer: int) -> dict[str, Any]:
    args: dict[str, Any] = {"microbatch": mb, "stage": stage, "action": action}
    if layer >= 0:
        args["layer"] = layer
    return args


# pid, tid, name, ts, dur, mb, stage, action, layer, and the slice's args where not those (an F&B pair's parts)
SpanSlice = tuple[int, int, str, float, float, int, int, str, int, dict[str, Any] | None]


def _trace_parts(
    tl: Timeline, pipeline: int, time_scale_us: float
) -> tuple[list[dict[str, Any]], list[SpanSlice], list[dict[str, Any]]]:
    """The trace's events before the span slices (process and thread names), the slices as plain
    values, and the events after them (sends, counters)."""
    frame = tl.spans
    mine = frame[(frame["pipeline"] == pipeline) | frame["stream"].isin(RANK_STREAMS) | (frame["op"] == "optimizer")]
    sends = tl.transfers[tl.transfers["pipeline"] == pipeline]
    head: list[dict[str, Any]] = []
    ranks_of, streams_of = mine["device"].tolist(), mine["stream"].tolist()
    ranks = sorted(set(ranks_of) | set(sends["src"].tolist()) | set(sends["dst"].tolist()))
    streams_of_rank: dict[int, set[str]] = {}
    for rank, stream in set(zip(ranks_of, streams_of, strict=True)):
        streams_of_rank.setdefault(rank, set()).add(stream)
    for rank in ranks:
        pid = int(rank)
        head.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": f"PP rank {pid}"}})
        head.append({"ph": "M", "pid": pid, "name": "process_sort_index", "args": {"sort_index": pid}})
        for stream in sorted(streams_of_rank.get(rank, ()), key=STREAM_TID.__getitem__):
            tid = STREAM_TID[stream]
            head.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": stream}})
            head.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    # plain Python values column by column (a slice per span: numpy scalars would cost a conversion each)
    tids = [STREAM_TID[str(stream)] for stream in streams_of]
    ops = [str(op) for op in mine["op"].tolist()]
    mbs, stages, layers = mine["microbatch"].tolist(), mine["stage"].tolist(), mine["layer"].tolist()
    actions = [str(action) for action in mine["action"].tolist()]
    # as trace_when (sim.outputs) over arrays: the end rounded like the next start (numpy rounds x * 1000 to the
    # nearest integer, Python's round the exact decimal: they can differ by 1 ns on an exact half)
    ts = np.round(mine["start_s"].to_numpy(dtype=np.float64) * time_scale_us, 3)
    dur = np.round(np.round(mine["end_s"].to_numpy(dtype=np.float64) * time_scale_us, 3) - ts, 3)
    given = _pair_args(tl.parts, pipeline, time_scale_us)
    args: list[dict[str, Any] | None] = [None] * len(ops)
    if given:  # (a step has none: its F&B actions are chunks, each part with spans of its own)
        for k, (rank, op, action) in enumerate(zip(ranks_of, ops, actions, strict=True)):
            if op == "F&B":
                args[k] = given.get((rank, action))
    spans = list(zip(ranks_of, tids, ops, ts.tolist(), dur.tolist(), mbs, stages, actions, layers, args, strict=True))
    tail = _send_events(sends, time_scale_us)
    tail += _counter_events(tl.links, time_scale_us)
    tail += _memory_events(tl.memory, time_scale_us)
    tail += _rank_counter_events(tl.nics, time_scale_us)
    return head, spans, tail


def _pair_args(parts: pd.DataFrame, pipeline: int, scale: float) -> dict[tuple[int, str], dict[str, Any]]:
    """The args of each F&B slice with given op times, by (rank, action): its action and per part (``F``,
    ``B`` or ``I``) the part's micro-batch, stage and given time (``dur``, microseconds as the slice's)."""
    args: dict[tuple[int, str], dict[str, Any]] = {}
    mine = parts[parts["pipeline"] == pipeline]
    columns = ("device", "action", "part", "microbatch", "stage", "duration_s")
    for device, action, part, mb, stage, duration in zip(*(mine[c].tolist() for c in columns), strict=True):
        entry = args.setdefault((int(device), str(action)), {"action": str(action)})
        entry[str(part)] = {"microbatch": int(mb), "stage": int(stage), "dur": round(float(duration) * scale, 3)}
    return args


def _send_events(sends: pd.DataFrame, scale: float) -> list[dict[str, Any]]:
    """Each send as a slice on its source's ``send`` track and its destination's ``recv`` track (from
    its start to its arrival), joined by a flow arrow. Sends that overlap in time (a rank sends forward
    and backward at once, or a slow send meets the next) take the next lane (``send 2``, ...), so every
    track's slices follow one another."""
    events: list[dict[str, Any]] = []
    lanes: dict[tuple[int, str], list[float]] = {}  # (rank, send | recv) -> each lane's last end

    def lane(rank: int, kind: str, ts: float, end: float) -> int:
        ends = lanes.setdefault((rank, kind), [])
        for i, last in enumerate(ends):
            if last <= ts:
                ends[i] = end
                break
        else:
            i = len(ends)
            ends.append(end)
            name = kind if i == 0 else f"{kind} {i + 1}"
            tid = STREAM_TID[kind] + 1000 * i
            meta = {"ph": "M", "pid": rank, "tid": tid}
            events.append({**meta, "name": "thread_name", "args": {"name": name}})
            events.append({**meta, "name": "thread_sort_index", "args": {"sort_index": tid}})
        return STREAM_TID[kind] + 1000 * i

    cols = [sends[c].to_numpy() for c in ("src", "dst", "label", "bytes", "start_s", "end_s")]
    order = np.argsort(cols[4], kind="stable")
    for k in order.tolist():
        src, dst, label, nbytes, s, e = (
            int(cols[0][k]),
            int(cols[1][k]),
            str(cols[2][k]),
            *map(float, (c[k] for c in cols[3:])),
        )
        when = trace_when(s, e, scale)
        ts, dur = when["ts"], when["dur"]
        end = round(ts + dur, 3)
        out_tid, in_tid = lane(src, "send", ts, end), lane(dst, "recv", ts, end)
        common = {"name": label, "cat": "p2p", "ts": ts}
        args = {"bytes": nbytes, "from": src, "to": dst}
        events.append({**common, "ph": "X", "pid": src, "tid": out_tid, "dur": dur, "args": args})
        events.append({**common, "ph": "X", "pid": dst, "tid": in_tid, "dur": dur, "args": args})
        events.append({**common, "ph": "s", "id": int(k), "pid": src, "tid": out_tid})
        events.append({**common, "ph": "f", "bp": "e", "id": int(k), "pid": dst, "tid": in_tid})
    return events


def _counter_events(links: pd.DataFrame, scale: float) -> list[dict[str, Any]]:
    """One counter per link block: GB/s in each bin, one series per tag (a value only where it changes)."""
    if not len(links):
        return []
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": NETWORK_PID, "name": "process_name", "args": {"name": "network (whole cluster)"}},
        {"ph": "M", "pid": NETWORK_PID, "name": "process_sort_index", "args": {"sort_index": NETWORK_PID}},
    ]
    tags = sorted(set(links["tag"].tolist()))
    width = float((links["end_s"] - links["start_s"]).iloc[0])  # every bin is as wide
    zero = dict.fromkeys(tags, 0.0)  # a bin where nothing moved (read, never written)
    for block, rows in links.groupby("block", sort=True):
        index = np.rint(rows["start_s"].to_numpy() / width).astype(np.int64)
        rate = rows["bytes"].to_numpy() / width / 1e9
        table: dict[int, dict[str, float]] = {}
        for b, tag, value in zip(index.tolist(), rows["tag"].tolist(), rate.tolist(), strict=True):
            row = table.get(b)
            if row is None:
                row = table[b] = dict(zero)
            row[str(tag)] = value
        last: dict[str, float] | None = None
        name = f"{block} GB/s"
        shown: dict[int, dict[str, float]] = {}  # each bin's rounded rates, once (a bin is shown twice at most)
        for b in sorted(table):
            for at in (b, b + 1):  # the bin's rates, then the next bin's (zeros when nothing moved)
                values = table.get(at, zero)
                if values == last:
                    continue
                args = shown.get(id(values))
                if args is None:
                    args = shown[id(values)] = {t: round(v, 6) for t, v in values.items()}
                ts = round(at * width * scale, 3)
                events.append({"ph": "C", "pid": NETWORK_PID, "name": name, "ts": ts, "args": args})
                last = values
    return events


def _memory_events(memory: pd.DataFrame, scale: float) -> list[dict[str, Any]]:
    """Per rank, a counter ``memory GiB`` per GPU: parameters, gradients and optimizer shard
    (``static``) and activations, raised when an action starts (its allocations) and lowered when it
    ends (its frees)."""
    events: list[dict[str, Any]] = []
    for _, rows in memory.groupby("device", sort=True):
        pid = int(rows["device"].iloc[0])
        points: list[tuple[float, float, float]] = []
        for s, e, hi, lo, st in rows[["start_s", "end_s", "high_bytes", "low_bytes", "static_bytes"]].itertuples(
            index=False
        ):
            points += [(float(s), float(hi), float(st)), (float(e), float(lo), float(st))]
        last = None
        for t, act, static in sorted(points, key=lambda x: x[0]):
            value = (round(static / GiB, 3), round(act / GiB, 3))
            if value == last:
                continue
            last = value
            events.append(
                {
                    "ph": "C",
                    "pid": pid,
                    "name": "memory GiB",
                    "ts": round(t * scale, 3),
                    "args": {"static": value[0], "activations": value[1]},
                }
            )
    return events


def _rank_counter_events(nics: pd.DataFrame, scale: float) -> list[dict[str, Any]]:
    """Per rank, a counter ``NICs GB/s``: the bytes through the rank's NICs per bin, one series per tag."""
    if not len(nics):
        return []
    events = []
    for e in _counter_events(nics, scale):
        if e.get("ph") != "C":
            continue
        rank = int(str(e["name"]).split()[1])
        events.append({**e, "pid": rank, "name": "NICs GB/s"})
    return events
