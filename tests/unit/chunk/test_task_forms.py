"""A chunk's max-plus forms on lists (:mod:`sim.chunk.forms`) against numpy's arithmetic, the plan's
until 2026-12-07: the same floats, bit for bit, on random task graphs (several streams, fan-in, comm
data tasks anywhere, zero durations and gaps) and on the chunks of DeepSeek's step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.forms import task_preds
from sim.chunk.plan import comm_plan
from sim.chunk.streams import STREAM_ORDER, Task, run_streams
from sim.chunk.timer import ChunkResult


def _numpy_forms(tasks: list[Task]) -> tuple[np.ndarray, np.ndarray]:
    """The plan's arithmetic as numpy did it: per task, the stream predecessor's end row or the
    maximum over the pruned predecessors' rows (``np.maximum.reduce``), then the maximum with the
    chunk's start and the launch gap added; the span as ``ends.max(axis=0)`` with the start."""
    comm = [i for i, t in enumerate(tasks) if t.kind == "comm" and t.moves is not None]
    index = {i: k for k, i in enumerate(comm)}
    preds = task_preds([t.stream for t in tasks], [t.deps for t in tasks], set(comm))
    n_k = len(comm)
    ends = np.full((len(tasks), n_k + 1), -np.inf)
    forms = np.full((len(tasks), n_k + 1), -np.inf)
    first = np.full(n_k + 1, -np.inf)
    first[0] = 0.0
    for i, t in enumerate(tasks):
        p, form = preds[i], forms[i]
        if len(p) == 1:
            np.maximum(ends[p[0]], first, out=form)
        elif p:
            np.maximum.reduce(ends[p], axis=0, out=form)
            np.maximum(form, first, out=form)
        else:
            form[:] = first
        np.add(form, t.start - t.queued if t.queued >= 0 else 0.0, out=form)
        k = index.get(i)
        if k is not None:
            ends[i, k + 1] = 0.0
        else:
            np.add(form, t.end - t.start, out=ends[i])
    end = np.maximum(ends.max(axis=0), first) if len(tasks) else first
    return forms, end


def _same_bits(tasks: list[Task]) -> None:
    plan = comm_plan(ChunkResult("F", max((t.end for t in tasks), default=0.0), tasks))
    forms, end = _numpy_forms(tasks)
    assert plan.forms.tobytes() == forms.tobytes()
    assert plan.end.tobytes() == end.tobytes()
    assert not np.signbit(plan.forms[np.isfinite(plan.forms)]).any()  # no -0.0 (the module's argument)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_forms_on_lists_equal_numpys_bit_for_bit_on_random_graphs(data) -> None:  # type: ignore[no-untyped-def]
    n = data.draw(st.integers(0, 40))
    work = st.sampled_from([0.0, 1e-6, 0.5, 1.0, 3.0, 7.25, 1e3])
    tasks = []
    for i in range(n):
        stream = data.draw(st.sampled_from(STREAM_ORDER))
        deps = tuple(sorted(set(data.draw(st.lists(st.integers(0, i - 1), max_size=4))))) if i else ()
        moves = ("t", i) if stream == "comm" and data.draw(st.booleans()) else None
        kind = "comm" if stream == "comm" else "gemm"
        tasks.append(Task(f"t{i}", stream, kind, data.draw(work), deps, moves=moves, delay=data.draw(work)))
    run_streams(tasks)
    _same_bits(tasks)


def test_forms_on_lists_equal_numpys_bit_for_bit_on_deepseeks_chunks() -> None:
    s = build_chunk(ChunkConfig())
    chunks = [s.timer.forward(s.stage), s.timer.backward(s.stage), s.timer.pair(s.stage, s.stage)]
    assert max(len(c.tasks) for c in chunks) > 100 and max(comm_plan(c).phases for c in chunks) >= 8
    for chunk in chunks:
        _same_bits(chunk.tasks)
