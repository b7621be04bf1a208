"""The free-send max-plus pass (:mod:`sim.pipeline.maxplus`) against the engine with the free transport:
the same ends, bit for bit, on every registered schedule and random uneven op times; deadlocks reported
alike."""

from __future__ import annotations

import random

import pytest

from sim.errors import DeadlockError, LayoutError
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, execute
from sim.pipeline.maxplus import free_send_ends
from sim.pipeline.ops import Action, Op
from sim.pipeline.schedules import SCHEDULES, build_schedule
from sim.pipeline.schedules.linear import linear_schedule


def _times(pp: int, rng: random.Random) -> OpTimes:
    f = tuple(rng.uniform(0.5, 2.0) for _ in range(pp))
    b = tuple(rng.uniform(0.5, 3.0) for _ in range(pp))
    w = tuple(rng.uniform(0.0, 1.5) for _ in range(pp))  # I = B - W may be <= 0: the engine takes no time
    fb = tuple(rng.uniform(0.8, 1.0) * (x + y) for x, y in zip(f, b, strict=True))
    return OpTimes(f, b, w, fb)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_same_ends_as_the_engine_with_free_sends(name: str) -> None:
    rng = random.Random(name)
    for pp in (2, 4, 8):
        for n in (pp, 2 * pp + 2, 3 * pp):
            try:
                schedule = build_schedule(name, pp, n, 2)
            except (ValueError, LayoutError):  # a (pp, n) the schedule does not take
                continue
            times = _times(pp, rng)
            durations = [[times.duration(a, schedule) for a in acts] for acts in schedule.actions]
            run = execute(schedule, times, P2P())
            engine = [[0.0] * len(acts) for acts in schedule.actions]
            for span in run.recorder.spans:
                engine[span.device][span.pos] = span.end
            assert free_send_ends(schedule, durations) == engine


def test_a_deadlock_is_reported_like_the_engine() -> None:
    # device 0 waits for the gradient of mb 0 before sending mb 1's forward; device 1 wants mb 1 first
    F, B = Op.F, Op.B
    s = linear_schedule(
        "hand",
        2,
        2,
        [
            [Action(F, 0, 0), Action(B, 0, 0), Action(F, 0, 1), Action(B, 0, 1)],
            [Action(F, 1, 1), Action(B, 1, 1), Action(F, 1, 0), Action(B, 1, 0)],
        ],
    )
    with pytest.raises(DeadlockError, match=r"device 0 waits at action 1 .* device 1 waits at action 0"):
        free_send_ends(s, [[1.0] * 4, [1.0] * 4])


def test_one_duration_per_action() -> None:
    s = build_schedule("1f1b", 2, 2, 2)
    with pytest.raises(ValueError, match="one per action"):
        free_send_ends(s, [[1.0], [1.0]])
