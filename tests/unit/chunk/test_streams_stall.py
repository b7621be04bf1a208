"""A chunk's stream loop that stops advancing is refused, not run for ever. Each step of
:func:`sim.chunk.streams.run_streams` runs to the end of the soonest task or launch gap, so in exact
arithmetic one ends at every step; a NIC of 1e-310 Gb/s (refused since by :data:`sim.limits.MIN_RATE`)
left the loop spinning, and with the compiled build not even SIGTERM stopped it. Here nothing can end
(the tolerance made negative): the loop gives up after its bound of steps with one user-facing line."""

from __future__ import annotations

import pytest

from sim.chunk import streams
from sim.chunk.streams import Task, run_streams
from sim.errors import TwinError


def test_a_loop_in_which_nothing_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "_EPS", -1.0)  # (no residue is ever small enough: nothing ends)
    tasks = [Task("a", "compute", "gemm", 1.0), Task("b", "comm", "comm", 2.0)]
    with pytest.raises(TwinError) as err:
        run_streams(tasks)
    assert str(err.value) == streams.STALLED


def test_the_bound_is_never_reached_by_a_chunk_that_ends() -> None:
    """Many tasks ending at once or one after another, and uneven works: no step is a stalled one for
    long (a stall counts only the steps in a row in which nothing ended)."""
    tasks = [Task(f"t{i}", ("compute", "wgrad", "comm")[i % 3], "gemm", 1.0 + (i % 7) * 1e-9) for i in range(5000)]
    assert run_streams(tasks) > 0
