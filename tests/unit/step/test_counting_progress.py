"""The step's progress while its chunks are timed (:class:`sim.step.spec.Counting`): every 64 actions and
the last, and any action that ends a quarter of a second or more after the last report, so that a run
whose chunks are slow (a routing sample's first chunks under random routing take seconds each) moves
its bar. The clock is a stand-in that each action advances by a fixed step: no sleeping."""

from __future__ import annotations

from typing import Any, cast

import pytest

import sim.step.spec as spec_module
from sim.step.spec import Counting


class _Source:
    """A chunk source whose every action takes ``step_s`` of the stand-in clock."""

    def __init__(self, clock: list[float], step_s: float) -> None:
        self.clock = clock
        self.step_s = step_s

    def duration(self, action: Any, schedule: Any) -> float:
        self.clock[0] += self.step_s
        return 1.0


def _reports(monkeypatch: pytest.MonkeyPatch, step_s: float, total: int) -> list[int]:
    clock = [100.0]
    monkeypatch.setattr(spec_module.time, "monotonic", lambda: clock[0])
    seen: list[int] = []
    counting = Counting(
        cast(Any, _Source(clock, step_s)), lambda what, done, total: seen.append(done), total, "timing chunks"
    )
    for _ in range(total):
        counting.duration(None, None)  # type: ignore[arg-type]
    return seen


def test_fast_actions_report_every_64_and_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1 ms an action: 64 actions are 0.064 s, under the quarter second, so only the count reports
    assert _reports(monkeypatch, 0.001, 200) == [64, 128, 192, 200]


def test_slow_actions_report_each_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.3 s an action: each ends more than a quarter second after the report before it
    assert _reports(monkeypatch, 0.3, 5) == [1, 2, 3, 4, 5]


def test_a_report_restarts_the_quarter_second(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.1 s an action: the third ends 0.3 s after the start, the sixth 0.3 s after the third
    assert _reports(monkeypatch, 0.1, 7) == [3, 6, 7]


def test_no_progress_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's point passes no progress: the clock is read only at construction, never per action."""
    reads = [0]

    def monotonic() -> float:
        reads[0] += 1
        return 0.0

    monkeypatch.setattr(spec_module.time, "monotonic", monotonic)
    counting = Counting(cast(Any, _Source([0.0], 0.0)), None, 10, "timing chunks")
    for _ in range(10):
        counting.duration(None, None)  # type: ignore[arg-type]
    assert reads[0] == 1 and counting.done == 10
