"""Timing a graph of tasks on a GPU's streams, outside the event loop.

Three streams run their tasks in order (FIFO): ``compute`` and ``wgrad`` (DeepSeek's streams 7 and
23) share the compute SMs, ``comm`` (stream 27) drives DeepEP on its own SMs. A task starts when it
is first in its stream's queue and every task it depends on has finished. It carries ``work``: its
duration alone, in seconds. While tasks run together (a fluid model, exact for piecewise-constant
rates):

* the compute SMs are processor-shared: with a task on both ``compute`` and ``wgrad``, each
  progresses at half speed, so work is conserved (two GEMMs on one set of SMs take as long as
  both back to back);
* a compute task progresses ``1 / slow_beside_comm`` as fast while a communication data task runs
  (HBM and L2 shared with DeepEP), and a communication data task ``1 / slow_beside_compute`` as fast
  while any compute task runs (the interference of :mod:`sim.chunk.overheads`);
* ``wait`` tasks (DeepEP's notify: waiting for the other ranks) take their time whatever else runs;
* a task's ``delay`` (the launch gap before its kernels) passes first, at full speed, without using
  the SMs: ``start`` is when its kernels begin, ``queued`` when its delay began.

The result is every task's start and end; the events are processed in time order with ties broken by
stream order, so the same graph always gives the same spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.errors import StreamsDeadlock, TwinError

STREAM_ORDER = ("compute", "wgrad", "comm")
_EPS = 1e-12
# Each step runs to the end of the soonest task or launch gap, so one of them ends at every step but
# where rounding leaves a residue above _EPS; a residue the next step ends. A rate that lost its
# precision (a denormal, from a slowdown near the float maximum) leaves one at every step: the loop
# never ended (a NIC of 1e-310 Gb/s, before sim.limits.MIN_RATE). Refused after this many steps.
_STALLED = 1000
STALLED = (
    "a chunk's times do not advance: a rate or a slowdown is at the edge of floating point (a profile's "
    "interference samples, or a rate near its least, sim.limits.MIN_RATE); use values nearer to real ones"
)


@dataclass
class Task:
    """One unit of work on a stream. ``kind``: gemm | memory | small | attention | comm | wait."""

    name: str
    stream: str
    kind: str
    work: float
    deps: tuple[int, ...] = ()
    annotation: str = ""
    step: int = 0  # which layer step of the chunk (for reports)
    layer: int = -1
    slow_beside_comm: float = 1.0  # compute tasks
    slow_beside_compute: float = 1.0  # comm data tasks
    delay: float = 0.0  # idle before the kernels (launch gap); uses no SMs
    moves: Any = None  # comm data tasks: what they move (the step's shared network turns it into a coflow)
    queued: float = -1.0
    start: float = -1.0
    end: float = -1.0


def run_streams(tasks: list[Task]) -> float:
    """Fill in every task's start and end; returns the makespan (first start is 0).

    Streams are numbered in :data:`STREAM_ORDER` (ties between them are broken in that order); the
    arithmetic is :func:`_run_streams_reference`'s, operation for operation (a test compares their
    floats on random graphs), with its per-event dictionaries replaced by three slots."""
    index = {s: k for k, s in enumerate(STREAM_ORDER)}
    queues: tuple[list[int], list[int], list[int]] = ([], [], [])
    dependents: list[list[int]] = [[] for _ in tasks]
    unmet = [0] * len(tasks)  # dependencies not yet finished (each counted once)
    for i, t in enumerate(tasks):
        q = index.get(t.stream)
        if q is None:
            raise ValueError(f"task {t.name}: unknown stream {t.stream!r}")
        deps = t.deps
        if deps:
            if max(deps) >= i:
                raise ValueError(f"task {t.name}: depends on a later task")
            distinct = set(deps) if len(deps) > 1 else deps
            for d in distinct:
                dependents[d].append(i)
            unmet[i] = len(distinct)
        queues[q].append(i)
    head = [0, 0, 0]
    active = [-1, -1, -1]  # the running task of each stream, -1 for none
    remaining = [t.work for t in tasks]
    delay = [t.delay for t in tasks]
    moving = [t.kind == "comm" for t in tasks]
    now = 0.0
    left = len(tasks)
    eps = _EPS
    rates = [0.0, 0.0, 0.0]
    stalled = 0  # steps in a row in which no task or launch gap ended (in exact arithmetic: none)
    while left:
        before = left
        for s in (0, 1, 2):  # start what can start
            if active[s] >= 0:
                continue
            queue, h = queues[s], head[s]
            while h < len(queue):
                i = queue[h]
                if unmet[i]:
                    break
                task = tasks[i]
                task.queued = now
                task.start = now + delay[i]
                h += 1
                if remaining[i] <= eps and delay[i] <= eps:
                    task.start = task.end = now
                    for j in dependents[i]:
                        unmet[j] -= 1
                    left -= 1
                    continue
                active[s] = i
                break
            head[s] = h
        a0, a1, a2 = active
        if a0 < 0 and a1 < 0 and a2 < 0:
            if left < before:  # tasks that took no time ended and may have freed another stream's head
                continue
            waiting = [tasks[queues[s][head[s]]].name for s in (0, 1, 2) if head[s] < len(queues[s])]
            raise StreamsDeadlock(f"no task can start; waiting: {', '.join(waiting)}")
        # rates of the tasks past their launch gap (_rates)
        w0 = a0 >= 0 and delay[a0] <= 0.0
        w1 = a1 >= 0 and delay[a1] <= 0.0
        w2 = a2 >= 0 and delay[a2] <= 0.0
        comm_moving = w2 and moving[a2]
        n_compute = w0 + w1
        if w0:
            rates[0] = (1.0 / n_compute) / (tasks[a0].slow_beside_comm if comm_moving else 1.0)
        if w1:
            rates[1] = (1.0 / n_compute) / (tasks[a1].slow_beside_comm if comm_moving else 1.0)
        if w2:
            rates[2] = 1.0 / (tasks[a2].slow_beside_compute if n_compute and moving[a2] else 1.0)
        dt = float("inf")
        for s in (0, 1, 2):
            i = active[s]
            if i >= 0:
                until = delay[i] if delay[i] > 0.0 else remaining[i] / rates[s]
                if until < dt:
                    dt = until
        now += dt
        stalled += 1
        for s in (0, 1, 2):
            i = active[s]
            if i < 0:
                continue
            if delay[i] > 0.0:
                delay[i] = max(0.0, delay[i] - dt)
                if delay[i] <= eps:
                    delay[i] = 0.0
                    tasks[i].start = now
                    stalled = 0
                continue
            remaining[i] -= rates[s] * dt
            if remaining[i] <= eps * max(1.0, tasks[i].work):
                remaining[i] = 0.0
                tasks[i].end = now
                for j in dependents[i]:
                    unmet[j] -= 1
                left -= 1
                active[s] = -1
                stalled = 0
        if stalled > _STALLED:
            raise TwinError(STALLED)
    return now


def _run_streams_reference(tasks: list[Task]) -> float:
    """:func:`run_streams` written plainly (dictionaries per event): the reference its test compares with."""
    queues: dict[str, list[int]] = {s: [] for s in STREAM_ORDER}
    dependents: list[list[int]] = [[] for _ in tasks]
    unmet = [0] * len(tasks)  # dependencies not yet finished (each counted once)
    for i, t in enumerate(tasks):
        if t.stream not in queues:
            raise ValueError(f"task {t.name}: unknown stream {t.stream!r}")
        if any(d >= i for d in t.deps):
            raise ValueError(f"task {t.name}: depends on a later task")
        queues[t.stream].append(i)
        deps = set(t.deps)
        for d in deps:
            dependents[d].append(i)
        unmet[i] = len(deps)
    head = dict.fromkeys(STREAM_ORDER, 0)
    active: dict[str, int] = {}
    remaining = [t.work for t in tasks]
    delay = [t.delay for t in tasks]
    now = 0.0
    left = len(tasks)

    def finished(i: int) -> None:
        for j in dependents[i]:
            unmet[j] -= 1

    while left:
        before = left
        for s in STREAM_ORDER:  # start what can start
            while s not in active and head[s] < len(queues[s]):
                i = queues[s][head[s]]
                if unmet[i]:
                    break
                tasks[i].queued = now
                tasks[i].start = now + delay[i]
                if remaining[i] <= _EPS and delay[i] <= _EPS:
                    tasks[i].start = tasks[i].end = now
                    finished(i)
                    left -= 1
                    head[s] += 1
                    continue
                active[s] = i
                head[s] += 1
        if not active:
            if left < before:  # tasks that took no time ended and may have freed another stream's head
                continue
            waiting = [tasks[queues[s][head[s]]].name for s in STREAM_ORDER if head[s] < len(queues[s])]
            raise StreamsDeadlock(f"no task can start; waiting: {', '.join(waiting)}")
        working = {s: i for s, i in active.items() if delay[i] <= 0.0}
        rates = _rates(tasks, working)
        dt = min(delay[i] if delay[i] > 0.0 else remaining[i] / rates[s] for s, i in active.items())
        now += dt
        for s, i in list(active.items()):
            if delay[i] > 0.0:
                delay[i] = max(0.0, delay[i] - dt)
                if delay[i] <= _EPS:
                    delay[i] = 0.0
                    tasks[i].start = now
                continue
            remaining[i] -= rates[s] * dt
            if remaining[i] <= _EPS * max(1.0, tasks[i].work):
                remaining[i] = 0.0
                tasks[i].end = now
                finished(i)
                left -= 1
                del active[s]
    return now


def _rates(tasks: list[Task], active: dict[str, int]) -> dict[str, float]:
    compute = [s for s in ("compute", "wgrad") if s in active]
    comm = active.get("comm")
    comm_moving = comm is not None and tasks[comm].kind == "comm"
    rates: dict[str, float] = {}
    for s in compute:
        t = tasks[active[s]]
        rates[s] = (1.0 / len(compute)) / (t.slow_beside_comm if comm_moving else 1.0)
    if comm is not None:
        t = tasks[comm]
        rates["comm"] = 1.0 / (t.slow_beside_compute if compute and t.kind == "comm" else 1.0)
    return rates
