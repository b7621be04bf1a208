"""Which tests run without coverage's tracer: the list in ``tests/untraced.txt``, chosen from a measured run.

Why: under coverage's tracer (Python 3.11's C tracer, the README's ``pytest --cov=sim``) the twin's own
code runs some 3.3 times slower (``tests/integration/training/test_what_ifs.py`` in one process: 22 s
without coverage, 74 s traced), and the suite passed CI's 15 minutes on slow days (1,282 s, 1,290 s).
Most of that time is tests that simulate steps the rest of the suite reaches too. A test on the list
runs its setup, call and teardown untraced (``tests/conftest.py``'s ``untraced`` plugin); the coverage
report is what it was, line for line, when the list was made:

A test is listed only if every line of ``sim/`` it reaches is reached by a test left traced (or while
the suite is collected). Greedy, longest first: a test goes on the list when each line it reaches is
still reached by another traced test, and its lines' counts then drop by one. So the listed tests
reach, together, no line the traced ones do not (the check at the end recounts it from scratch).

When the code changes, a line that only a listed test reaches shows as not covered (the report can
only be pessimistic), and a test renamed since is traced again (slower, never wrong). Remake the list
after a large change of tests or code, from a run of the whole suite with per-test contexts::

    pytest -n auto --dist loadscope --cov=sim --cov-context=test -p no:untraced --durations=0 > durations.log
    python -m tests.untraced_select out/.coverage durations.log

``-p no:untraced`` traces every test (listed or marked), so that each reaches its own lines. The list
holds tests that took at least :data:`MIN_S` traced; node ids name the checkout as ``{REPO}`` (a
parametrised id that holds a path), which the plugin puts back.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIST = REPO / "tests" / "untraced.txt"
MIN_S = 0.3  # a test's traced setup, call and teardown at least this long: shorter ones gain little
DURATION = re.compile(r"^([0-9.]+)s (?:call|setup|teardown)\s+(\S.*?)\s*$")
HEADER = (
    "# Tests that run without coverage's tracer (tests/conftest.py): each line of sim/ they reach is reached\n"
    "# by a traced test. Made by tests/untraced_select.py (its docstring says how); {REPO} is the checkout.\n"
)


def durations(log: Path) -> Counter[str]:
    """Seconds of each test (setup, call and teardown together) in ``pytest --durations=0``'s output."""
    seconds: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = DURATION.match(line)
        if m is not None:
            seconds[m.group(2)] += float(m.group(1))
    return seconds


def reached(coverage_file: Path) -> list[set[str]]:
    """For each line of ``sim/`` the run reached, the tests that reached it ('' for the suite's collection)."""
    from coverage import CoverageData

    data = CoverageData(str(coverage_file))
    data.read()
    if len(data.measured_contexts()) < 2:
        raise SystemExit(f"{coverage_file}: no per-test contexts; run the suite with --cov-context=test")
    lines = []
    for file in data.measured_files():
        for contexts in (data.contexts_by_lineno(file) or {}).values():
            lines.append({c.rsplit("|", 1)[0] for c in contexts})
    return lines


def select(lines: list[set[str]], seconds: Counter[str], min_s: float = MIN_S) -> list[str]:
    """The tests to run untraced (module docstring): longest first, each only where every line it reaches
    is still reached by a traced test (or by the collection, context '')."""
    by_test: dict[str, list[int]] = {}
    for i, tests in enumerate(lines):
        for t in tests:
            by_test.setdefault(t, []).append(i)
    traced = [len(tests) if "" not in tests else len(tests) + 10**9 for tests in lines]
    chosen = []
    for test, s in seconds.most_common():
        if s < min_s or test not in by_test:
            continue
        mine = by_test[test]
        if all(traced[i] >= 2 for i in mine):
            for i in mine:
                traced[i] -= 1
            chosen.append(test)
    listed = set(chosen)
    lost = sum(1 for tests in lines if tests and tests <= listed)
    assert lost == 0, f"{lost} lines reached only by listed tests"  # the recount from scratch
    return chosen


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m tests.untraced_select COVERAGE_FILE DURATIONS_LOG")
    lines = reached(Path(argv[0]))
    seconds = durations(Path(argv[1]))
    known = {t for tests in lines for t in tests}
    if not seconds or known.isdisjoint(seconds):  # (else the list would be written empty, without a word)
        why = "no durations" if not seconds else "no test of its durations is a context of the coverage file"
        raise SystemExit(f"{argv[1]}: {why}; give the log of the same run with --durations=0")
    chosen = select(lines, seconds)
    root = str(REPO)
    body = "".join(t.replace(root, "{REPO}") + "\n" for t in sorted(chosen))
    LIST.write_text(HEADER + body, encoding="utf-8")
    traced_s = sum(seconds.values())
    print(
        f"{len(chosen)} tests listed in {LIST.relative_to(REPO)}: {sum(seconds[t] for t in chosen):.0f} s of the "
        f"run's {traced_s:.0f} s of tests, traced; {len(lines)} lines of sim/ reached, none only by them"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
