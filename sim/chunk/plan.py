"""A timed chunk as a function of how long its communication takes: the chunk model's result made
re-timeable, so the step's shared network can decide the DeepEP phases' durations.

The chunk model (:mod:`sim.chunk.streams`) times a chunk with every DeepEP phase alone on the
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

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.chunk.forms import evaluate, task_forms, task_preds
from sim.chunk.streams import STREAM_ORDER, Task
from sim.chunk.timer import ChunkResult

_NEG = -np.inf


@dataclass(frozen=True, eq=False)
class CommPlan:
    """``forms[i]``: the max-plus form of task ``i``'s start (``[c0, c1..cK]``: the constant and the
    offset after each comm end); ``starts`` those of the comm data tasks, ``end`` the span's form;
    ``tasks``: the comm data tasks' indices in stream order, ``durations`` their isolated durations;
    ``base``: every task's isolated duration; ``is_comm``: the tasks on the comm stream that move
    data or wait (the communication of the chunk, for exposure)."""

    tasks: tuple[int, ...]
    durations: tuple[float, ...]
    forms: np.ndarray  # N x (K + 1)
    starts: np.ndarray  # K x (K + 1)
    end: np.ndarray  # K + 1
    base: np.ndarray  # N
    is_comm: np.ndarray  # N, bool
    is_compute: np.ndarray  # N, bool

    @property
    def phases(self) -> int:
        return len(self.tasks)

    @functools.cached_property
    def start_forms(self) -> list[tuple[float, tuple[tuple[int, float], ...]]]:
        """Each comm task's start form as its constant and its finite offsets ``(j, c)`` after the
        end of comm task ``j``, only ``j < k`` for task ``k`` (what :meth:`start` reads)."""
        out = []
        for k, row in enumerate(self.starts):
            c0, terms = _sparse(row)
            out.append((c0, tuple((j, c) for j, c in terms if j < k)))
        return out

    @functools.cached_property
    def _columns(self) -> list[tuple[int, np.ndarray]]:
        """The forms' columns that hold a finite offset, each contiguous: ``(k, forms[:, k])`` (a column of
        -inf only never wins a maximum)."""
        return [(k, np.ascontiguousarray(col)) for k, col in enumerate(self.forms.T) if np.isfinite(col).any()]

    @functools.cached_property
    def _end_coef(self) -> tuple[float, tuple[tuple[int, float], ...]]:
        return _sparse(self.end)

    def start(self, k: int, ends: list[float]) -> float:
        """Start of comm task ``k`` given the ends of comm tasks ``0..k-1``."""
        return evaluate(self.start_forms[k], ends)

    def span(self, ends: list[float]) -> float:
        return evaluate(self._end_coef, ends)

    def times(self, durations: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Every task's (start, end) with the comm data tasks taking ``durations``."""
        ends: list[float] = []
        for k, d in enumerate(durations):
            ends.append(self.start(k, ends) + d)
        vec = np.array([0.0, *ends])
        starts = (self.forms + vec).max(axis=1)
        dur = self.base.copy()
        if self.tasks:
            dur[self._task_index] = durations
        return starts, starts + dur

    @functools.cached_property
    def _task_index(self) -> np.ndarray:
        return np.array(self.tasks, dtype=np.intp)


def _sparse(form: np.ndarray) -> tuple[float, tuple[tuple[int, float], ...]]:
    """A form ``[c0, c1..cK]`` as its constant and its finite offsets ``(k, c_k+1)`` (-inf never wins)."""
    coef = form.tolist()
    return coef[0], tuple((k, c) for k, c in enumerate(coef[1:]) if c != _NEG)


def comm_plan(chunk: ChunkResult) -> CommPlan:
    """The chunk's max-plus plan (see the module docstring), its forms worked out on lists
    (:mod:`sim.chunk.forms`: numpy's floats, bit for bit)."""
    tasks = chunk.tasks
    comm = [i for i, t in enumerate(tasks) if t.kind == "comm" and t.moves is not None]
    slot = [-1] * len(tasks)
    for k, i in enumerate(comm):
        slot[i] = k
    n_k = len(comm)
    preds = task_preds([t.stream for t in tasks], [t.deps for t in tasks], set(comm))
    delays = [t.start - t.queued if t.queued >= 0 else 0.0 for t in tasks]
    taken = [t.end - t.start for t in tasks]
    rows, span = task_forms(preds, delays, taken, slot, n_k)
    forms = np.array(rows, dtype=np.float64).reshape(len(tasks), n_k + 1)
    end = np.array(span, dtype=np.float64)
    durations = tuple(taken[i] for i in comm)
    base = np.array(taken, dtype=np.float64)
    is_comm = np.array([t.stream == "comm" for t in tasks], dtype=bool)
    return CommPlan(
        tuple(comm), durations, forms, forms[comm] if comm else np.zeros((0, 1)), end, base, is_comm, ~is_comm
    )


def retime(chunk: ChunkResult, plan: CommPlan, durations: tuple[float, ...]) -> ChunkResult:
    """The chunk with its comm data tasks taking ``durations``: every task's start and end recomputed
    by the same recurrence (compute durations and launch gaps as observed alone)."""
    if durations == plan.durations:
        return chunk
    starts, ends = plan.times(durations)
    out: list[Task] = []
    new = object.__new__
    for t, s, e in zip(chunk.tasks, starts.tolist(), ends.tolist(), strict=True):
        c = new(Task)
        c.__dict__.update(t.__dict__)
        c.queued = s - (t.start - t.queued if t.queued >= 0 else 0.0)
        c.start = s
        c.end = e
        out.append(c)
    return ChunkResult(chunk.kind, float(ends.max()) if len(ends) else 0.0, out)


def exposed_comm_of(plan: CommPlan, durations: tuple[float, ...]) -> float:
    """Communication time not under compute of the chunk retimed with ``durations`` (the figure
    :func:`sim.chunk.intervals.exposed_comm` gives for its spans), from the plan's arrays."""
    starts, ends = plan.times(durations)
    moving = ends > starts
    comm, compute = moving & plan.is_comm, moving & plan.is_compute
    return exposed_time(starts[comm], ends[comm], starts[compute], ends[compute])


def exposed_comm_many(plan: CommPlan, durations: Sequence[tuple[float, ...]], block: int = 64) -> list[float]:
    """:func:`exposed_comm_of` of ``plan`` for each of ``durations``, bit for bit, the retimings worked
    out ``block`` at a time: the phases' ends by the same additions and maxima, column by column; every
    start as the max of the same sums; the rows' sweeps as :func:`exposed_time`'s, the rows whose same
    tasks move at once (:func:`_exposed_rows`: the same sorts, counts and gaps, and each row's gaps
    summed on their own, so the same gaps add in the same order)."""
    out: list[float] = []
    n_k = plan.phases
    for lo in range(0, len(durations), block):
        rows = len(durations[lo : lo + block])
        d = np.array(durations[lo : lo + block], dtype=np.float64).reshape(rows, n_k)
        vec = np.zeros((rows, n_k + 1))
        for k, (c0, terms) in enumerate(plan.start_forms):  # CommPlan.times' loop, for every row at once
            start = np.full(rows, c0)
            for j, c in terms:
                np.maximum(start, vec[:, j + 1] + c, out=start)
            vec[:, k + 1] = start + d[:, k]
        # every task's start: the max over the columns of offset + end, one column at a time (the same
        # sums; a maximum is exact, so taken in any order it is the same float)
        columns = plan._columns
        if columns:
            k0, col0 = columns[0]
            starts = col0[None, :] + vec[:, k0 : k0 + 1]
            for k, col in columns[1:]:
                np.maximum(starts, col[None, :] + vec[:, k : k + 1], out=starts)
        else:
            starts = np.full((rows, len(plan.base)), _NEG)
        dur = np.repeat(plan.base[None, :], rows, axis=0)
        if n_k:
            dur[:, plan._task_index] = d
        ends = starts + dur
        moving = ends > starts
        comm, compute = moving & plan.is_comm, moving & plan.is_compute
        if bool((comm == comm[0]).all() and (compute == compute[0]).all()):  # (most blocks: one pattern)
            groups = [list(range(rows))]
        else:  # rows by which of their tasks move
            by_pattern: dict[bytes, list[int]] = {}
            for r in range(rows):
                by_pattern.setdefault(comm[r].tobytes() + compute[r].tobytes(), []).append(r)
            groups = list(by_pattern.values())
        values = [0.0] * rows
        for group in groups:
            c, k = comm[group[0]], compute[group[0]]
            s, e = starts[group], ends[group]
            for r, v in zip(group, _exposed_rows(s[:, c], e[:, c], s[:, k], e[:, k]), strict=True):
                values[r] = v
        out.extend(values)
    return out


def _exposed_rows(cs: np.ndarray, ce: np.ndarray, ks: np.ndarray, ke: np.ndarray) -> list[float]:
    """:func:`exposed_time` of each row of these 2-D arrays (rows of as many intervals each): the sorts,
    counts and gaps of every row at once (a stable sort of a row is the one permutation that sorts it
    with ties in their first order, however it is found), then each row's open gaps summed on their own
    (numpy's sum of the same values in the same order, whatever rows are swept with it)."""
    rows, n = cs.shape
    if n == 0:
        return [0.0] * rows
    at = np.concatenate([cs, ce, ks, ke], axis=1)
    order = np.argsort(at, axis=1, kind="stable")
    at = np.take_along_axis(at, order, axis=1)
    count = np.cumsum(_steps(n, ks.shape[1])[order], axis=1)[:, :-1]
    gaps = np.diff(at, axis=1)
    open_ = (count > 0) & (count < _COMPUTE)
    return [float(g[m].sum()) for g, m in zip(gaps, open_, strict=True)]


_STEPS: dict[tuple[int, int], np.ndarray] = {}
_COMPUTE = 1 << 32  # a compute boundary's step in the combined count: the comm count stays below it


def _steps(n_comm: int, n_compute: int) -> np.ndarray:
    """What each boundary of :func:`exposed_time` adds to the combined count ``comm + 2**32 compute``
    (comm starts +1, ends -1; compute starts and ends +-2**32), memoised by the two counts."""
    key = (n_comm, n_compute)
    hit = _STEPS.get(key)
    if hit is None:
        if len(_STEPS) >= 4096:
            _STEPS.clear()
        hit = _STEPS[key] = np.repeat(
            np.array([1, -1, _COMPUTE, -_COMPUTE], dtype=np.int64), [n_comm, n_comm, n_compute, n_compute]
        )
    return hit


def exposed_time(cs: np.ndarray, ce: np.ndarray, ks: np.ndarray, ke: np.ndarray) -> float:
    """Length of the time covered by the intervals ``[cs, ce)`` and by none of ``[ks, ke)`` (a sweep
    over the sorted boundaries: a gap counts where at least one comm interval and no compute interval
    is open). Both counts are carried in one integer, ``comm + 2**32 compute``: at a tie a start comes
    before an end of its kind (stable sort of starts listed first), so neither count goes below 0
    and the gap is open exactly where ``0 < count < 2**32``."""
    return _exposed_rows(cs[None, :], ce[None, :], ks[None, :], ke[None, :])[0]


__all__ = ["STREAM_ORDER", "CommPlan", "comm_plan", "exposed_comm_many", "exposed_comm_of", "exposed_time", "retime"]
