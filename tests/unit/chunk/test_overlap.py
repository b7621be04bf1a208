"""The stream timing model: FIFO streams, dependencies, processor sharing, interference (closed forms)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chunk.streams import Task, _run_streams_reference, run_streams
from sim.errors import StreamsDeadlock


def test_two_compute_streams_share_the_sms_and_conserve_work() -> None:
    """Two kernels of 3 and 5 s on the two compute streams: both at half speed until the first ends at
    6 s, the second alone after: it ends at 8 s = 3 + 5 (processor sharing conserves work)."""
    tasks = [Task("a", "compute", "gemm", 3.0), Task("b", "wgrad", "gemm", 5.0)]
    assert run_streams(tasks) == pytest.approx(8.0)
    assert tasks[0].end == pytest.approx(6.0) and tasks[1].end == pytest.approx(8.0)


def test_fifo_order_and_dependencies_are_respected() -> None:
    tasks = [
        Task("f1", "compute", "gemm", 2.0),
        Task("send", "comm", "comm", 3.0, deps=(0,)),
        Task("f2", "compute", "gemm", 1.0),
        Task("f3", "compute", "gemm", 1.0, deps=(1,)),
    ]
    span = run_streams(tasks)
    assert tasks[1].start == pytest.approx(2.0)  # waits for f1
    assert tasks[2].start == pytest.approx(2.0)  # FIFO after f1, independent of the send
    assert tasks[3].start == pytest.approx(5.0)  # waits for the send although the stream is free at 3
    assert span == pytest.approx(6.0)
    for t in tasks:
        assert all(tasks[d].end <= t.start + 1e-12 for d in t.deps)


def test_interference_slows_both_sides_only_while_they_overlap() -> None:
    """A 4 s GEMM slowed 1.25x beside a 2 s transfer slowed 2x beside compute: the transfer progresses
    at 1/2 until it ends at 4 s; the GEMM did 4/1.25 = 3.2 s of work by then and finishes at 4.8 s."""
    tasks = [
        Task("gemm", "compute", "gemm", 4.0, slow_beside_comm=1.25),
        Task("xfer", "comm", "comm", 2.0, slow_beside_compute=2.0),
    ]
    assert run_streams(tasks) == pytest.approx(4.8)
    assert tasks[1].end == pytest.approx(4.0)


def test_waits_and_launch_delays_use_no_sms() -> None:
    """A notify wait neither slows nor is slowed; a launch delay is idle time before the kernel and does
    not share the SMs with the other compute stream."""
    tasks = [
        Task("gemm", "compute", "gemm", 2.0, slow_beside_comm=1.5),
        Task("notify", "comm", "wait", 1.0),
        Task("late", "wgrad", "gemm", 1.0, delay=2.0),
    ]
    run_streams(tasks)
    assert tasks[1].end == pytest.approx(1.0)
    assert tasks[0].end == pytest.approx(2.0)  # alone on the SMs while 'late' waits for its launch
    assert tasks[2].queued == pytest.approx(0.0) and tasks[2].start == pytest.approx(2.0)
    assert tasks[2].end == pytest.approx(3.0)


def test_same_graph_same_spans_and_deadlocks_are_named() -> None:
    def graph() -> list[Task]:
        return [Task(f"t{i}", ("compute", "wgrad", "comm")[i % 3], "gemm", 1.0 + i % 4) for i in range(30)]

    a, b = graph(), graph()
    run_streams(a)
    run_streams(b)
    assert [(t.start, t.end) for t in a] == [(t.start, t.end) for t in b]
    blocked = [Task("x", "compute", "gemm", 1.0), Task("y", "comm", "comm", 1.0, deps=(0,))]
    blocked[0].deps = (1,)  # a cycle the constructor order would have refused
    with pytest.raises((StreamsDeadlock, ValueError)):
        run_streams(blocked)


def _random_graph(data: st.DataObject) -> list[Task]:
    n = data.draw(st.integers(1, 40))
    tasks = []
    for i in range(n):
        stream = data.draw(st.sampled_from(["compute", "wgrad", "comm"]))
        kind = data.draw(st.sampled_from(["comm", "wait"])) if stream == "comm" else "gemm"
        deps = tuple(data.draw(st.lists(st.integers(0, i - 1), max_size=4))) if i else ()
        tasks.append(
            Task(
                f"t{i}",
                stream,
                kind,
                data.draw(st.sampled_from([0.0, 1e-13, 0.25, 1.0, 3.7])),
                deps,
                slow_beside_comm=data.draw(st.sampled_from([1.0, 1.13, 1.5])),
                slow_beside_compute=data.draw(st.sampled_from([1.0, 1.21])),
                delay=data.draw(st.sampled_from([0.0, 0.0, 1e-13, 0.05, 0.4])),
            )
        )
    return tasks


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fast_stream_timing_equals_the_reference_bit_for_bit(data: st.DataObject) -> None:
    """run_streams against its plain reference on random graphs (every stream, shared SMs, interference,
    zero-length tasks, launch gaps, tasks below the tolerance, repeated dependencies): the same span,
    queued, start and end of every task, as floats."""
    a = _random_graph(data)
    b = [copy.copy(t) for t in a]
    assert run_streams(a) == _run_streams_reference(b)
    assert [(t.queued, t.start, t.end) for t in a] == [(t.queued, t.start, t.end) for t in b]


def test_fast_stream_timing_equals_the_reference_on_the_trace_chunk() -> None:
    """The same on DeepSeek's F&B pair as the chunk model builds it (564 tasks)."""
    from sim.chunk.build import ChunkConfig, build_chunk

    setup = build_chunk(ChunkConfig())
    tasks = setup.timer.pair(setup.stage, setup.stage).tasks
    a = [copy.copy(t) for t in tasks]
    b = [copy.copy(t) for t in tasks]
    assert run_streams(a) == _run_streams_reference(b)
    assert [(t.queued, t.start, t.end) for t in a] == [(t.queued, t.start, t.end) for t in b]
    assert len(a) > 500 and any(t.delay > 0 for t in a) and any(t.stream == "wgrad" for t in a)


def test_tasks_that_take_no_time_never_look_like_a_deadlock() -> None:
    """A zero-length task ending in a later stream's turn frees an earlier stream's head while nothing
    runs: the heads are looked at again at the same time (this raised StreamsDeadlock before); a graph
    of zero-length tasks ends at 0."""
    tasks = [Task("free", "wgrad", "gemm", 0.0), Task("next", "compute", "gemm", 1.0, (0,))]
    for timing in (run_streams, _run_streams_reference):
        ran = [copy.copy(t) for t in tasks]
        assert timing(ran) == 1.0
        assert (ran[1].start, ran[1].end) == (0.0, 1.0)
        assert timing([Task("a", "compute", "gemm", 0.0), Task("b", "comm", "wait", 0.0, (0,))]) == 0.0
