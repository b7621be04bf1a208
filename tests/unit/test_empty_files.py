"""An empty input file (nothing, or only blanks and comments: YAML's null) is refused in one line naming
it as empty, by every command that reads YAML (sim/yamlio.py ``read_yaml``). Each reader said it in its
own words, and two as Python saw it: ``a scenario must be a mapping of keys, got NoneType``. A file that
is not a mapping is said in YAML's and JSON's words (``got a list``, ``got null``), not Python's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_bad_inputs import refused_in_one_line


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blank.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# a scenario to come\n\n   \n")
    (tmp_path / "derived.yaml").write_text("name: d\nbase: blank.yaml\nset: {comm.sms: 16}\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "text.yaml").write_text("just words\n")
    return tmp_path


EMPTY = "the file is empty: a {} file is a mapping of keys"
CASES: list[tuple[list[str], str]] = [
    (["run", "blank.yaml"], "blank.yaml: " + EMPTY.format("scenario")),
    (["run", "comments.yaml", "--format", "json"], "comments.yaml: " + EMPTY.format("scenario")),
    (["validate", "blank.yaml"], "blank.yaml: " + EMPTY.format("scenario")),
    (["report", "blank.yaml"], "blank.yaml: " + EMPTY.format("scenario")),
    (["serve", "comments.yaml"], "comments.yaml: " + EMPTY.format("scenario")),
    (["run", "derived.yaml"], "blank.yaml: " + EMPTY.format("scenario")),  # the base named, not the derived
    (["sweep", "blank.yaml"], "blank.yaml: " + EMPTY.format("sweep")),
    (["plan", "run", "comments.yaml"], "comments.yaml: " + EMPTY.format("run")),
    (["topology", "show", "blank.yaml"], "blank.yaml: " + EMPTY.format("topology")),
    # not empty, not a mapping: said in YAML's words (it was Python's: got list, got str)
    (["run", "list.yaml"], "list.yaml: a scenario must be a mapping of keys, got a list"),
    (["validate", "text.yaml"], "text.yaml: a scenario must be a mapping of keys, got a string"),
]


@pytest.mark.parametrize("args,expected", [pytest.param(a, e, id=" ".join(a)) for a, e in CASES])
def test_an_empty_file_is_named_empty_in_one_line(
    args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused_in_one_line(args, f"error: {expected}", files, capsys)
