"""The vectorised grouping of a re-timed chunk's tasks into annotation segments
(:class:`sim.step.timeline.SegmentPlan`) equals the plain one (``_segments``) on the same times:
the same segments in the same order, including tasks that take no time (left out) and ties of start
and stream (kept in the order their first task ran)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.chunk.build import ChunkConfig, build_chunk
from sim.step.timeline import SegmentPlan, _segments


@pytest.fixture(scope="module")
def tasks():  # type: ignore[no-untyped-def]
    setup = build_chunk(ChunkConfig())
    return setup.timer.pair(setup.stage, setup.stage).tasks


def test_the_chunk_as_timed_gives_the_plain_segments(tasks) -> None:  # type: ignore[no-untyped-def]
    starts = np.array([t.start for t in tasks])
    ends = np.array([t.end for t in tasks])
    assert SegmentPlan(tasks).segments(starts, ends) == _segments(tasks, starts.tolist(), ends.tolist())


@pytest.mark.parametrize("seed", range(20))
def test_any_retiming_gives_the_plain_segments(tasks, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n = len(tasks)
    # coarse times make ties of start common; a third of the tasks take no time
    starts = rng.integers(0, 20, n).astype(np.float64)
    ends = starts + rng.integers(0, 3, n) * (rng.random(n) < 0.67)
    plan = SegmentPlan(tasks)
    assert plan.segments(starts, ends) == _segments(tasks, starts.tolist(), ends.tolist())


def test_nothing_ran_no_segments(tasks) -> None:  # type: ignore[no-untyped-def]
    zeros = np.zeros(len(tasks))
    assert SegmentPlan(tasks).segments(zeros, zeros) == []
    assert SegmentPlan([]).segments(np.zeros(0), np.zeros(0)) == []
