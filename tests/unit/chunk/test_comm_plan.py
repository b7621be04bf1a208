"""A timed chunk read back as a max-plus function of its communication: it reproduces the chunk
model's schedule exactly, re-timing is monotone and 1-Lipschitz, and the vectorised forms equal the
plain recurrence they come from; the interval sweep equals the interval-union reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.intervals import exposed_comm
from sim.chunk.plan import comm_plan, exposed_comm_many, exposed_comm_of, exposed_time, retime
from sim.chunk.timer import ChunkResult

SMALL = ChunkConfig(layers=2, tokens=1024, ep=16)


@pytest.fixture(scope="module")
def chunks() -> list[ChunkResult]:
    s = build_chunk(SMALL)
    return [s.timer.forward(s.stage), s.timer.backward(s.stage), s.timer.pair(s.stage, s.stage)]


def _recurrence(chunk: ChunkResult, comm: dict[int, float]) -> tuple[list[float], list[float]]:
    """Reference: start = max(ends of dependencies and stream predecessor) + launch gap, one task
    after the other, comm data tasks taking ``comm[i]``."""
    last: dict[str, int] = {}
    starts, ends = [], []
    for i, t in enumerate(chunk.tasks):
        preds = list(t.deps) + ([last[t.stream]] if t.stream in last else [])
        last[t.stream] = i
        s = max((ends[p] for p in preds), default=0.0) + (t.start - t.queued)
        starts.append(s)
        ends.append(s + comm.get(i, t.end - t.start))
    return starts, ends


def test_the_plan_reproduces_the_chunk_exactly(chunks: list[ChunkResult]) -> None:
    for chunk in chunks:
        plan = comm_plan(chunk)
        assert plan.phases == sum(1 for t in chunk.tasks if t.kind == "comm")  # every DeepEP data task
        starts, ends = plan.times(plan.durations)
        assert np.allclose(starts, [t.start for t in chunk.tasks], rtol=0, atol=1e-12)
        assert np.allclose(ends, [t.end for t in chunk.tasks], rtol=0, atol=1e-12)
        assert plan.span(list(ends[list(plan.tasks)])) == pytest.approx(chunk.span_s, abs=1e-12)
        assert retime(chunk, plan, plan.durations) is chunk
        assert exposed_comm_of(plan, plan.durations) == pytest.approx(exposed_comm(chunk.stream_spans()), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_retiming_equals_the_recurrence_and_is_monotone_and_1_lipschitz(chunks: list[ChunkResult], data) -> None:  # type: ignore[no-untyped-def]
    chunk = chunks[data.draw(st.integers(0, len(chunks) - 1))]
    plan = comm_plan(chunk)
    factors = data.draw(st.lists(st.floats(1.0, 4.0), min_size=plan.phases, max_size=plan.phases))
    longer = tuple(d * f for d, f in zip(plan.durations, factors, strict=True))
    starts, ends = plan.times(longer)
    ref_s, ref_e = _recurrence(chunk, dict(zip(plan.tasks, longer, strict=True)))
    assert np.allclose(starts, ref_s, rtol=0, atol=1e-12)
    assert np.allclose(ends, ref_e, rtol=0, atol=1e-12)
    again = retime(chunk, plan, longer)
    assert again.span_s == pytest.approx(max(ref_e), abs=1e-12)
    added = sum(b - a for a, b in zip(plan.durations, longer, strict=True))
    # longer communication never shortens the chunk, and cannot lengthen it by more than it adds
    assert chunk.span_s - 1e-12 <= again.span_s <= chunk.span_s + added + 1e-12
    # the comm stream still runs one task at a time
    comm = sorted((t.start, t.end) for t in again.tasks if t.stream == "comm" and t.end > t.start)
    assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(comm))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_interval_sweep_equals_interval_unions(data) -> None:  # type: ignore[no-untyped-def]
    def intervals(n: int) -> list[tuple[float, float]]:
        out = []
        for _ in range(n):
            s = data.draw(st.floats(0.0, 10.0))
            out.append((s, s + data.draw(st.floats(0.0, 3.0))))
        return out

    comm, comp = intervals(data.draw(st.integers(0, 6))), intervals(data.draw(st.integers(0, 6)))
    spans = [("comm", s, e) for s, e in comm if e > s] + [("compute", s, e) for s, e in comp if e > s]
    arr = [np.array(x, dtype=float).reshape(-1) for x in ([s for s, e in comm if e > s], [e for s, e in comm if e > s])]
    arr += [
        np.array(x, dtype=float).reshape(-1) for x in ([s for s, e in comp if e > s], [e for s, e in comp if e > s])
    ]
    assert exposed_time(*arr) == pytest.approx(exposed_comm(spans), abs=1e-9)


def _forms_unpruned(chunk: ChunkResult) -> np.ndarray:
    """Reference: every task's form from all its dependencies and its stream predecessor, none left
    out (comm_plan leaves out what the stream predecessor already waited for)."""
    tasks = chunk.tasks
    comm = [i for i, t in enumerate(tasks) if t.kind == "comm" and t.moves is not None]
    first = np.full(len(comm) + 1, -np.inf)
    first[0] = 0.0
    ends, forms, last = [], [], {}
    for i, t in enumerate(tasks):
        preds = list(t.deps) + ([last[t.stream]] if t.stream in last else [])
        last[t.stream] = i
        form = first.copy()
        for p in preds:
            form = np.maximum(form, ends[p])
        form = form + (t.start - t.queued if t.queued >= 0 else 0.0)
        forms.append(form)
        if i in comm:
            end = np.full(len(comm) + 1, -np.inf)
            end[comm.index(i) + 1] = 0.0
            ends.append(end)
        else:
            ends.append(form + (t.end - t.start))
    return np.array(forms)


def test_pruned_predecessors_give_the_same_forms_bit_for_bit(chunks: list[ChunkResult]) -> None:
    """Leaving out the predecessors a task's stream predecessor already waited for changes no bit of
    any form, on the forward, backward and overlapped chunks and on DeepSeek's F&B pair."""
    s = build_chunk(ChunkConfig())
    for chunk in [*chunks, s.timer.pair(s.stage, s.stage)]:
        assert comm_plan(chunk).forms.tobytes() == _forms_unpruned(chunk).tobytes()


def test_a_comm_data_task_prunes_nothing_after_it() -> None:
    """A comm data task's end is its own term alone (-inf elsewhere), so what it waited for is kept in
    its stream successor's form: here the second phase still waits for the compute task's end (1.0)."""
    from sim.chunk.streams import Task, run_streams

    tasks = [
        Task("gemm", "compute", "gemm", 1.0),
        Task("dispatch", "comm", "comm", 0.5, (0,), moves=("t", "dispatch")),
        Task("combine", "comm", "comm", 0.25, (0,), moves=("t", "combine")),
    ]
    span = run_streams(tasks)
    plan = comm_plan(ChunkResult("F", span, tasks))
    assert plan.forms.tobytes() == _forms_unpruned(ChunkResult("F", span, tasks)).tobytes()
    assert plan.forms[2].tolist() == [1.0, 0.0, -np.inf]
    assert plan.times((2.0, 3.0))[1].tolist() == [1.0, 3.0, 6.0]


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_exposed_comm_of_many_retimings_equals_each_bit_for_bit(chunks: list[ChunkResult], data) -> None:  # type: ignore[no-untyped-def]
    """exposed_comm_many (every retiming of a plan at once, in blocks) gives exposed_comm_of's float
    for each, exactly: longer, shorter, equal and zero-length phases, blocks cut mid-list."""
    chunk = chunks[data.draw(st.integers(0, len(chunks) - 1))]
    plan = comm_plan(chunk)
    factor = st.sampled_from([0.0, 0.5, 1.0, 1.0, 1.7, 3.0])
    rows = [tuple(d * data.draw(factor) for d in plan.durations) for _ in range(data.draw(st.integers(0, 9)))]
    block = data.draw(st.integers(1, 4))
    assert exposed_comm_many(plan, rows, block) == [exposed_comm_of(plan, r) for r in rows]
