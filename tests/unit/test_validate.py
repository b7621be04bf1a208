"""The validity checker catches each kind of broken schedule and names what is wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.errors import DeadlockError
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import execute
from sim.pipeline.ops import Action, Op
from sim.pipeline.schedules import SCHEDULES, build_schedule
from sim.pipeline.schedules.linear import linear_schedule
from sim.pipeline.validate import InvalidSchedule, check_schedule, find_problems


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_builtin_schedules_are_valid(name: str) -> None:
    for pp in (2, 4, 6, 8):
        check_schedule(build_schedule(name, pp, 3 * pp, 2))


def _two_stage(dev0: list[Action], dev1: list[Action], n: int = 1):  # type: ignore[no-untyped-def]
    return linear_schedule("hand", 2, n, [dev0, dev1])


F, B, I, W = Op.F, Op.B, Op.I, Op.W  # noqa: E741


def test_missing_backward_is_reported() -> None:
    s = _two_stage([Action(F, 0, 0)], [Action(F, 1, 0), Action(B, 1, 0)])
    with pytest.raises(InvalidSchedule, match="stage 0 micro-batch 0: B x0"):
        check_schedule(s)


def test_duplicate_forward_is_reported() -> None:
    s = _two_stage([Action(F, 0, 0), Action(F, 0, 0), Action(B, 0, 0)], [Action(F, 1, 0), Action(B, 1, 0)])
    assert any("0F0 runs 2 times" in p for p in find_problems(s))


def test_action_on_wrong_device_is_reported() -> None:
    s = _two_stage([Action(F, 0, 0), Action(B, 0, 0), Action(F, 1, 0)], [Action(B, 1, 0)])
    assert any("stage 1 lives on device 1" in p for p in find_problems(s))


def test_split_backward_needs_both_halves() -> None:
    s = _two_stage([Action(F, 0, 0), Action(I, 0, 0)], [Action(F, 1, 0), Action(B, 1, 0)])
    assert any("I x1, W x0" in p for p in find_problems(s))


def test_overlapped_pair_cannot_depend_on_itself() -> None:
    pair = Action.overlap(Action(F, 1, 0), Action(B, 1, 0))
    s = _two_stage([Action(F, 0, 0), Action(B, 0, 0)], [pair])
    assert any("backward needs its own forward" in p for p in find_problems(s))


def test_deadlock_names_waiting_devices_and_data() -> None:
    # device 0 waits for the gradient of mb 0 before sending mb 1's forward, but device 1 wants mb 1 first
    s = _two_stage(
        [Action(F, 0, 0), Action(B, 0, 0), Action(F, 0, 1), Action(B, 0, 1)],
        [Action(F, 1, 1), Action(F, 1, 0), Action(B, 1, 0), Action(B, 1, 1)],
        n=2,
    )
    with pytest.raises(DeadlockError) as info:
        check_schedule(s)
    msg = str(info.value)
    assert "device 0 waits at action 1 (0B0) for gradient of 1B0/1I0 (device 1)" in msg
    assert "device 1 waits at action 0 (1F1) for activation of 0F1 (device 0)" in msg
    # the engine, run without the checker, reports the same deadlock
    with pytest.raises(DeadlockError, match="device 1 waits at action 0"):
        execute(s, OpTimes.uniform(2, 1.0, 2.0, 1.0))


def test_swapping_two_actions_of_a_valid_schedule_can_break_it() -> None:
    good = build_schedule("1f1b", 4, 8)
    acts = [list(a) for a in good.actions]
    acts[3][0], acts[3][1] = acts[3][1], acts[3][0]  # last stage: B before its F
    with pytest.raises(DeadlockError):
        check_schedule(replace(good, actions=tuple(tuple(a) for a in acts)))
