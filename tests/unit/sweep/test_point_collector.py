"""A sweep point runs with Python's cyclic collector paused from start to end (``run_point``), so
that the objects a step leaves for its accounting are freed by reference counting when the point
returns, not walked by a collection while still alive (docs/sweeps.md, "The collector paused for a
whole point"); the collector is left as the point found it, whatever the point's outcome."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import sim.sweep.point as point_module
from sim.errors import TwinError
from sim.sweep.point import FAILED, INFEASIBLE, OK, run_point


def _spy(outcome: BaseException | None, seen: list[bool]) -> Any:
    def figures(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
        seen.append(gc.isenabled())
        if outcome is not None:
            raise outcome
        return {"step_time_s": 1.0}

    return figures


@pytest.mark.parametrize(
    ("outcome", "status"),
    [(None, OK), (TwinError("x.yaml: does not fit"), INFEASIBLE), (RuntimeError("boom"), FAILED)],
)
def test_a_point_runs_with_the_collector_paused_and_restores_it(
    monkeypatch: pytest.MonkeyPatch, outcome: BaseException | None, status: str
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(point_module, "_figures", _spy(outcome, seen))
    assert gc.isenabled()
    row = run_point({}, "x.yaml", ".")
    assert row["status"] == status
    assert seen == [False]  # paused while the point ran
    assert gc.isenabled()  # and on again after, also when the point failed


def test_a_caller_that_turned_the_collector_off_keeps_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(point_module, "_figures", _spy(None, seen))
    gc.disable()
    try:
        assert run_point({}, "x.yaml", ".")["status"] == OK
        assert seen == [False] and not gc.isenabled()
    finally:
        gc.enable()
