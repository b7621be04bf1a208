"""torch action-string notation: round trips for every schedule, clear errors otherwise."""

from __future__ import annotations

import pytest

from sim.errors import ScenarioError
from sim.pipeline.notation import format_schedule, parse_action, parse_lines, schedule_from_actions
from sim.pipeline.ops import Action, Op
from sim.pipeline.schedules import SCHEDULES, build_schedule
from sim.pipeline.validate import check_schedule


def test_parse_examples_from_torch() -> None:
    assert parse_action("0F3") == Action(Op.F, 0, 3)
    assert parse_action("7I0") == Action(Op.I, 7, 0)
    assert parse_action("7W0") == Action(Op.W, 7, 0)
    assert parse_action("7B6") == Action(Op.B, 7, 6)
    pair = parse_action("(0F7;7B3)OVERLAP_F_B")
    assert pair.op is Op.FB and pair.parts == (Action(Op.F, 0, 7), Action(Op.B, 7, 3))
    assert str(pair) == "(0F7;7B3)OVERLAP_F_B"


@pytest.mark.parametrize("bad", ["F3", "0X3", "0F", "(0F1)OVERLAP_F_B", "(0B1;1F2)OVERLAP_F_B", "0SEND_F1"])
def test_bad_actions(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_action(bad)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_round_trip(name: str) -> None:
    s = build_schedule(name, 8, 24, 2)
    lists = parse_lines(format_schedule(s))
    assert [tuple(a) for a in lists] == list(s.actions)
    back = schedule_from_actions(lists, name, routes=s.routes)
    assert back.stage_device == s.stage_device and back.mb_route == s.mb_route
    check_schedule(back)


def test_parse_lines_errors_name_source_and_line() -> None:
    with pytest.raises(ScenarioError, match=r"x\.txt: line 3: not a compute action"):
        parse_lines("0F0 0B0\n# comment\n1F0 junk\n", "x.txt")
    assert parse_lines("rank 0: 0F0 0B0\n") == [[Action(Op.F, 0, 0), Action(Op.B, 0, 0)]]
