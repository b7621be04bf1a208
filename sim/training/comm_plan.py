"""A timed chunk as a function of how long its communication takes: the chunk model's result made
re-timeable, so the step's shared network can decide the DeepEP phases' durations.

The chunk model (:mod:`sim.training.overlap`) times a chunk with every DeepEP phase alone on the
network. Its result is a schedule of tasks on three FIFO streams. Read back as a graph, with each
task's observed duration ``d_i = end - start`` and launch gap ``delay_i = start - queued``, it is
exact: a task is queued when its stream predecessor and every dependency have ended, so

    start_i = max(end_p for p in preds_i) + delay_i,    end_i = start_i + d_i,

reproduces every start and end, and the span is the largest end. Holding the compute tasks' durations
fixed and letting the communication data tasks' durations ``D_k`` vary, each start is a max-plus
linear form in the communication tasks' end times ``E_k``:

    start_i = max(c_i0, max_k (E_k + c_ik)),

computed once per chunk (:func:`comm_plan`). The comm stream is FIFO, so the start of the ``k``-th
communication task depends only on ``E_1..E_{k-1}``: the step's chunk process starts each phase as a
coflow on the shared network at its form's value, learns its end from the network, and ends the chunk
at the span's form. With every ``D_k`` at its isolated value, the chunk takes exactly its isolated
span.

What this holds fixed: the compute tasks' durations (their processor sharing with each other and their
interference with communication, as observed alone). A phase slowed by contention therefore delays
what depends on it, and is hidden by compute where the chunk had slack, but the compute beside it is
not re-timed for the longer overlap (docs/step.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.training.chunk import ChunkResult
from sim.training.overlap import STREAM_ORDER, Task

_NEG = -np.inf


@dataclass(frozen=True)
class CommPlan:
    """``starts[k]``: the max-plus form of the ``k``-th comm data task's start (``[c0, c1..cK]``, the
    constant and the offset after each comm end); ``end``: the chunk span's form; ``tasks``: the comm
    data tasks' indices in stream order, ``durations`` their isolated durations."""

    tasks: tuple[int, ...]
    durations: tuple[float, ...]
    starts: np.ndarray  # K x (K + 1)
    end: np.ndarray  # K + 1

    @property
    def phases(self) -> int:
        return len(self.tasks)

    def start(self, k: int, ends: list[float]) -> float:
        """Start of comm task ``k`` given the ends of comm tasks ``0..k-1``."""
        return _eval(self.starts[k], ends)

    def span(self, ends: list[float]) -> float:
        return _eval(self.end, ends)


def _eval(form: np.ndarray, ends: list[float]) -> float:
    value = float(form[0])
    for k, e in enumerate(ends):
        c = form[k + 1]
        if c != _NEG and e + c > value:
            value = e + c
    return value


def _preds(tasks: list[Task]) -> list[list[int]]:
    """Each task's dependencies and its stream predecessor."""
    last: dict[str, int] = {}
    preds = []
    for i, t in enumerate(tasks):
        p = list(t.deps)
        if t.stream in last:
            p.append(last[t.stream])
        last[t.stream] = i
        preds.append(p)
    return preds


def comm_plan(chunk: ChunkResult) -> CommPlan:
    """The chunk's max-plus plan (see the module docstring)."""
    tasks = chunk.tasks
    comm = [i for i, t in enumerate(tasks) if t.kind == "comm" and t.moves is not None]
    index = {i: k for k, i in enumerate(comm)}
    n_k = len(comm)
    preds = _preds(tasks)
    ends = np.full((len(tasks), n_k + 1), _NEG)
    starts = np.full((n_k, n_k + 1), _NEG)
    for i, t in enumerate(tasks):
        form = np.full(n_k + 1, _NEG)
        form[0] = 0.0
        for p in preds[i]:
            np.maximum(form, ends[p], out=form)
        form = form + (t.start - t.queued if t.queued >= 0 else 0.0)
        if i in index:
            k = index[i]
            starts[k] = form
            ends[i] = _NEG
            ends[i, k + 1] = 0.0
        else:
            ends[i] = form + (t.end - t.start)
    end = np.full(n_k + 1, _NEG)
    end[0] = 0.0
    for i in range(len(tasks)):
        np.maximum(end, ends[i], out=end)
    durations = tuple(float(tasks[i].end - tasks[i].start) for i in comm)
    return CommPlan(tuple(comm), durations, starts, end)


def retime(chunk: ChunkResult, plan: CommPlan, durations: tuple[float, ...]) -> ChunkResult:
    """The chunk with its comm data tasks taking ``durations``: every task's start and end recomputed
    by the same recurrence (compute durations and launch gaps as observed alone)."""
    if durations == plan.durations:
        return chunk
    tasks = chunk.tasks
    preds = _preds(tasks)
    actual = dict(zip(plan.tasks, durations, strict=True))
    out: list[Task] = []
    end_of: list[float] = []
    for i, t in enumerate(tasks):
        ready = max((end_of[p] for p in preds[i]), default=0.0)
        delay = t.start - t.queued if t.queued >= 0 else 0.0
        start = ready + delay
        end = start + actual.get(i, t.end - t.start)
        out.append(dataclasses.replace(t, queued=ready, start=start, end=end))
        end_of.append(end)
    return ChunkResult(chunk.kind, max(end_of, default=0.0), out)


__all__ = ["STREAM_ORDER", "CommPlan", "comm_plan", "retime"]
