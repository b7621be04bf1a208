"""torch action-string notation: round trips for every schedule, clear errors otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.cli import main
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
    # read off the lines alone (twin schedules check --file): DualPipe's two directions are recognised
    read = schedule_from_actions(lists, name)
    assert read.routes == s.routes and read.mb_route == s.mb_route
    check_schedule(read)


def test_a_file_shown_by_twin_is_checkable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``twin schedules show dualpipe > f.txt; twin schedules check --file f.txt`` said its second
    direction's stages ran none of their micro-batches (the file read as one route through 2 PP stages)."""

    for name, routes in (("dualpipe", "; two directions, stages 0..3 and 4..7"), ("dualpipev", "")):
        with pytest.raises(SystemExit):
            main(["schedules", "show", name, "--pp", "4", "--microbatches", "8"])
        path = tmp_path / f"{name}.txt"
        path.write_text(capsys.readouterr().out)
        with pytest.raises(SystemExit) as info:
            main(["schedules", "check", "--file", str(path)])
        out = capsys.readouterr().out
        assert info.value.code in (0, None) and out.startswith(f"{name}: valid (") and out.endswith(f"{routes})\n")


def test_parse_lines_errors_name_source_and_line() -> None:
    with pytest.raises(ScenarioError, match=r"x\.txt: line 3: not a compute action"):
        parse_lines("0F0 0B0\n# comment\n1F0 junk\n", "x.txt")
    assert parse_lines("rank 0: 0F0 0B0\n") == [[Action(Op.F, 0, 0), Action(Op.B, 0, 0)]]


@pytest.mark.parametrize(
    ("bad", "char", "named"),
    [
        ("0F\u0660", "\u0660", "0F\u0660"),  # Arabic-Indic zero: read as 0F0
        ("\uff11B0", "\uff11", "\uff11B0"),  # full-width one: read as 1B0
        ("(0F1;1B\u0660)OVERLAP_F_B", "\u0660", "1B\u0660"),  # (the pair's part that holds it)
    ],
)
def test_stages_and_microbatches_are_ascii_digits(bad: str, char: str, named: str) -> None:
    """``0F٠`` was read as ``0F0`` (Python's int reads every script's digits; torch's notation holds
    only 0-9), so a schedule file with it was "valid": refused, naming the action and the character."""
    clause = f"holds {char!r} (U+{ord(char):04X}), not ASCII; write the digits 0-9"
    with pytest.raises(ValueError, match=re.escape(clause)):
        parse_action(bad)
    with pytest.raises(ScenarioError) as info:
        parse_lines(f"0F0 0B0\n1F0 {bad}\n", "x.txt")
    assert str(info.value) == (
        f"x.txt: line 2: not a compute action in torch notation: {named!r}: its stage or micro-batch {clause}"
    )


def test_a_file_with_other_scripts_digits_is_refused_by_schedules_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tester's file: ``0F٠ 0F1 0B0 0B1`` / ``1F0 1B0 1F1 1B1`` was reported valid (1F1B, PP 2)."""
    f = tmp_path / "f.txt"
    f.write_text("0F\u0660 0F1 0B0 0B1\n1F0 1B0 1F1 1B1\n")
    with pytest.raises(SystemExit) as info:
        main(["schedules", "check", "--file", str(f)])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == (
        f"error: {f}: line 1: not a compute action in torch notation: '0F\u0660': its stage or micro-batch holds "
        "'\u0660' (U+0660), not ASCII; write the digits 0-9\n"
    )
    f.write_text("0F0 0F1 0B0 0B1\n1F0 1B0 1F1 1B1\n")  # the same in ASCII digits: valid
    with pytest.raises(SystemExit) as info:
        main(["schedules", "check", "--file", str(f)])
    assert info.value.code == 0 and capsys.readouterr().out == "f: valid (2 devices, 8 actions)\n"


@pytest.mark.parametrize(
    ("text", "line", "said"),
    [
        (
            "rank 1: 0F0 0B0\nrank 0: 1F0 1B0\n",
            1,
            "labelled rank 1, but it is device 0",
        ),  # reversed: taken in line order
        ("rank 0: 0F0 0B0\nrank 0: 1F0 1B0\n", 2, "labelled rank 0, but it is device 1"),  # twice: devices 0 and 1
        ("device 7: 0F0 0B0\n", 1, "labelled device 7, but it is device 0"),  # a lone device 7: device 0
    ],
)
def test_a_rank_label_that_is_not_the_lines_device_is_refused(text: str, line: int, said: str) -> None:
    """Labels were dropped: lines ran as devices 0, 1 ... whatever they said."""
    with pytest.raises(ScenarioError) as info:
        parse_lines(text, "s.txt")
    assert str(info.value) == f"s.txt: line {line}: {said} (one line a device, in order from 0)"
    assert parse_lines("rank 0: 0F0 0B0\ndevice 1: 1F0 1B0\n")[1] == [Action(Op.F, 1, 0), Action(Op.B, 1, 0)]


@pytest.mark.parametrize(
    "lines",
    ["0F0 0B0\n1F0 1B0\n2F1 2B1\n3F1 3B1\n", "0F0 0B0\n1F1 1B1\n"],
    ids=["one-route-incomplete", "two-stages"],
)
def test_a_one_route_file_is_not_read_as_two_directions(
    lines: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each micro-batch's forwards in one half of the stages, but a stage per device (not DualPipe's layout):
    read as two directions it passed as valid, and with two stages crashed formatting them. Refused as
    incomplete, in one line."""
    path = tmp_path / "f.txt"
    path.write_text(lines)
    with pytest.raises(SystemExit) as info:
        main(["schedules", "check", "--file", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "runs 0 times, expected once" in err and "Traceback" not in err
