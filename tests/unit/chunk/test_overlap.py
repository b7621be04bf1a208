"""The stream timing model: FIFO streams, dependencies, processor sharing, interference (closed forms)."""

from __future__ import annotations

import pytest

from sim.chunk.streams import DeadlockError, Task, run_streams


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
    with pytest.raises((DeadlockError, ValueError)):
        run_streams(blocked)
