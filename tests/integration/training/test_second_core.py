"""A step's ZeRO-1 collectives timed alone in a forked child (DpModel.time_ahead) give the step it gives
with everything in one process: the same figures, spans, transfers and network counters, bit for bit,
in both contention modes and both ZeRO-1 overlaps (``training.dp_overlap``). The child times exactly
what the step asks for, alone on a table of its own from clock 0, whatever the run's network did.

Each run empties the process-wide memo of collective times first, so both really time them."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pytest

import sim.forked as forked
from sim.config import load_scenario
from sim.run import simulate_training
from sim.step import zero1
from tests.integration.training.test_step import scenario_file

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="children are forked on Linux only"),
    pytest.mark.untraced,
]


def _run(tmp: pytest.TempPathFactory, allowed: bool, monkeypatch: pytest.MonkeyPatch, **over: Any) -> Any:
    forks: list[int] = []
    real = os.fork

    def counted() -> int:
        forks.append(1)
        return real()

    monkeypatch.setattr(os, "fork", counted)
    zero1._COLLECTIVES_MEMO.clear()
    forked.forking(allowed)
    try:
        run = simulate_training(load_scenario(scenario_file(tmp.mktemp("sc"), **over)))
    finally:
        forked.forking(True)
        monkeypatch.setattr(os, "fork", real)
    figures = run.to_dict()
    figures["stats"].pop("wall_s")
    spans = [
        (s.device, s.pos, s.start, s.end, tuple(p.run.recorder.transfers))
        for p in run.step.pipelines
        for s in p.run.recorder.spans
    ]
    return figures, spans, run.step.timelines, len(forks)


@pytest.mark.parametrize(
    "over",
    [
        {"training__contention": "isolated"},
        {"training__contention": "shared"},
        {"training__contention": "isolated", "training__dp_overlap": "tail"},
        {"training__contention": "shared", "training__dp_overlap": "tail"},
    ],
    ids=["isolated", "shared", "isolated-tail", "shared-tail"],
)
def test_the_collectives_timed_in_a_child_give_the_same_step(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, over: dict[str, Any]
) -> None:
    # a thread an earlier test in this worker left finishing (a pool's, a progress bar's): waited for, 5 s
    deadline = time.monotonic() + 5
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if not forked.can_fork():
        pytest.skip("another thread runs in this test process: no child would be forked")
    here = _run(tmp_path_factory, False, monkeypatch, **over)
    beside = _run(tmp_path_factory, True, monkeypatch, **over)
    assert here[3] == 0 and beside[3] == 1  # the second run really timed them in a child
    assert beside[:3] == here[:3]
