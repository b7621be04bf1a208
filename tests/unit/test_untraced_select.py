"""The choice of tests run untraced (``tests/untraced_select.py``): the listed tests together reach no line
that a traced test (or the collection) does not, whatever the lines and durations; and the list file
names tests of this checkout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, UNTRACED_LIST
from tests.untraced_select import durations, main, select

TESTS = [f"tests/t.py::t{i}" for i in range(6)]


def test_a_line_only_one_test_reaches_keeps_that_test_traced() -> None:
    lines = [{TESTS[0]}, {TESTS[0], TESTS[1]}, {TESTS[1], TESTS[2]}, {"", TESTS[3]}]
    seconds = Counter({TESTS[0]: 5.0, TESTS[1]: 4.0, TESTS[2]: 3.0, TESTS[3]: 2.0})
    # t0 alone reaches line 0; t1 goes (t0 and t2 still reach its lines); t2 then is the last on line 2;
    # t3's line is reached while the suite is collected ('')
    assert select(lines, seconds, min_s=0.0) == [TESTS[1], TESTS[3]]
    assert select(lines, seconds, min_s=3.5) == [TESTS[1]]  # shorter tests are not considered


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sets(st.sampled_from([*TESTS, ""]), min_size=1), max_size=30),
    st.lists(st.floats(0, 10), min_size=len(TESTS), max_size=len(TESTS)),
)
def test_the_listed_tests_reach_no_line_alone(lines: list[set[str]], times: list[float]) -> None:
    chosen = set(select(lines, Counter(dict(zip(TESTS, times, strict=True))), min_s=0.0))
    for tests in lines:
        assert "" in tests or tests - chosen, (tests, chosen)


def test_durations_are_summed_over_setup_call_and_teardown(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    log.write_text(
        "1.50s call     tests/a.py::t[run x.yaml -o [/r]]\n0.25s setup    tests/a.py::t[run x.yaml -o [/r]]\n"
        "0.10s teardown tests/a.py::u\n(3 durations < 0.005s hidden)\n"
    )
    assert durations(log) == {"tests/a.py::t[run x.yaml -o [/r]]": 1.75, "tests/a.py::u": 0.10}


def test_the_list_names_test_files_of_this_checkout() -> None:
    listed = [t for t in UNTRACED_LIST.read_text().splitlines() if t and not t.startswith("#")]
    assert listed and len(set(listed)) == len(listed)
    for test in listed:
        assert "::" in test and (REPO / test.split("::")[0]).is_file(), test
        assert str(REPO) not in test  # the checkout is written {REPO}


def test_durations_of_another_run_are_refused_before_the_list_is_written(tmp_path: Path) -> None:
    """Ids that match no coverage context (another checkout's run, a log without --durations=0) left every
    test traced and wrote an empty list without a word."""
    from coverage import CoverageData

    data = CoverageData(str(tmp_path / ".coverage"))
    for context in (TESTS[0] + "|run", TESTS[1] + "|run"):
        data.set_context(context)
        data.add_lines({str(tmp_path / "m.py"): [1, 2]})
    data.write()
    log = tmp_path / "d.log"
    before = UNTRACED_LIST.read_bytes()
    log.write_text("2.00s call     tests/other.py::x\n")
    with pytest.raises(SystemExit, match=r"d\.log: no test of its durations is a context of the coverage file"):
        main([str(tmp_path / ".coverage"), str(log)])
    log.write_text("== 3 passed in 1.00s ==\n")
    with pytest.raises(SystemExit, match=r"d\.log: no durations; give the log of the same run with --durations=0"):
        main([str(tmp_path / ".coverage"), str(log)])
    assert UNTRACED_LIST.read_bytes() == before
