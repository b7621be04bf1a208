"""``twin sweep -o``'s refusals say what was given and what is wrong with it, and the paths it prints
stay one inert line (sim.cli.sweep, sim.outputs.check_output_file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from tests.conftest import write_sweep
from tests.unit.test_serve_plan_faults import _refused


def _sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, {"name": "sw1", "grid": {"comm.sms": [12, 20]}})


@pytest.mark.parametrize("given", [["-o", ""], ["--output="], ["--output", ""]])
def test_an_empty_output_name_is_refused_as_given(
    given: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o ''`` was refused as ``got '.'`` (``Path('')`` reads as the current folder), a name never given."""
    monkeypatch.chdir(tmp_path)
    sweep = _sweep(tmp_path)
    assert _refused(["sweep", str(sweep), *given], capsys) == "error: --output: give a file name, got ''"
    assert _refused(["sweep", str(sweep), "-o", "."], capsys) == "error: --output: give a file name, got '.'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written, no out/


def test_an_output_inside_a_file_says_the_file_is_not_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o notes.parquet/r.parquet`` where notes.parquet is a file said ``cannot write notes.parquet``
    (the file the user has, not the one twin would write)."""
    monkeypatch.chdir(tmp_path)
    sweep = _sweep(tmp_path)
    (tmp_path / "notes.parquet").write_text("mine")
    for given, target in (("notes.parquet/r.parquet", "notes.parquet/r.parquet"), ("notes.parquet/a/r.parquet", None)):
        line = _refused(["sweep", str(sweep), "-o", given], capsys)
        assert line == f"error: --output: notes.parquet is a file, not a folder; cannot write {target or given}"
    assert (tmp_path / "notes.parquet").read_text() == "mine"


def test_the_output_path_a_sweep_prints_is_one_inert_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newline or a terminal's escape code in ``-o``'s name was printed as it is (two lines, a
    coloured terminal): written as Python writes them in a string now, the file named as given."""
    sweep = _sweep(tmp_path)
    target = tmp_path / "a\nb\x1b[31m.parquet"
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(sweep), "-o", str(target), "-j", "1", "-q"])
    assert info.value.code in (0, None) and target.exists()
    capsys.readouterr()
    for args in (["-j", "1"], ["-j", "1", "--best", "1"]):
        with pytest.raises(SystemExit) as info:
            main(["sweep", str(sweep), "-o", str(target), *args])
        printed = capsys.readouterr().out
        shown = str(target).replace("\n", "\\n").replace("\x1b", "\\x1b")
        assert info.value.code in (0, None) and "\x1b" not in printed, printed
        lines = printed.splitlines()
        stem = shown.removesuffix(".parquet")  # (--best's bounds go beside it: NAME.screening.parquet)
        assert lines and all(f"-> {stem}." in line for line in lines) and f"-> {shown}" in lines[-1], printed
