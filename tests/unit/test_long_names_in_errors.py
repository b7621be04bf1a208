"""A name of thousands of characters given on the command line (a path the system refuses as too long)
was repeated in full in the error line: 5,028 characters for ``twin model show`` of a 5,000-character
argument, and as many for ``twin run``, ``twin compare`` or ``--profile``. An error line now cuts any
word (a path, a name) past :data:`sim.errors.PATH_CHARS` in its middle, saying how long it was, and a
model argument too long for a file says why it is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import PATH_CHARS, ScenarioError, long_words_cut, shown_path
from tests.conftest import refused_line

LONG = "x" * 5000


def test_a_path_is_cut_in_its_middle_keeping_both_ends() -> None:
    path = "/a/" + "y" * 1000 + "/config.json"
    cut = shown_path(path)
    assert len(cut) <= PATH_CHARS
    assert cut.startswith("/a/yyy") and cut.endswith("/config.json (1,015 characters)") and "..." in cut
    assert shown_path("/a/b.yaml") == "/a/b.yaml"  # a path of an ordinary length is as given


def test_only_long_words_are_cut_and_their_punctuation_stays() -> None:
    line = f"cannot read {'z' * 400}.parquet: File name too long"
    cut = long_words_cut(line)
    assert cut.startswith("cannot read zzz") and cut.endswith(".parquet (408 characters): File name too long")
    assert long_words_cut("a short line, as it is") == "a short line, as it is"


def test_a_scenario_errors_file_is_cut() -> None:
    line = str(ScenarioError("", "cannot read: File name too long", f"/tmp/{LONG}.yaml"))
    assert len(line) < 2 * PATH_CHARS and line.endswith(".yaml (5,010 characters): cannot read: File name too long")


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["model", "show", LONG], "error: SPEC: 'xxxx"),
        (["run", f"{LONG}.yaml"], "error: xxxx"),
        (["compare", f"{LONG}.parquet"], "error: RESULTS: cannot read xxxx"),
        (["chunk", "--profile", f"{LONG}.json"], "error: --profile: cannot read xxxx"),
    ],
)
def test_the_line_of_a_name_too_long_is_short(
    args: list[str], start: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = refused_line(args, capsys)
    assert line.startswith(start) and "(5,0" in line and len(line) < 3 * PATH_CHARS, line[:400]
    assert "File name too long" in line
