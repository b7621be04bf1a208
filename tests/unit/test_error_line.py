"""An error is one line of plain text whatever the input holds: a newline in a file name or a key
split it over two lines, and a terminal's escape codes in a name were printed for the terminal to act
on (``sim.cli.common.one_printable_line``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli.common import one_printable_line
from tests.unit.test_bad_inputs import refused_in_one_line

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain: text, unicode é and 'quotes'", "plain: text, unicode é and 'quotes'"),
        ("a\nb.log: no such file", "a\\nb.log: no such file"),
        ("x\r\ny", "x\\r\\ny"),
        ("\x1b[31mred\x1b[0m.yaml", "\\x1b[31mred\\x1b[0m.yaml"),
        ("tab\there", "tab\\there"),
        ("line\u2028separator", "line\\u2028separator"),
    ],
)
def test_control_characters_are_written_as_escapes(text: str, shown: str) -> None:
    assert one_printable_line(text) == shown
    assert one_printable_line(shown) == shown  # (what it gives is printable: unchanged a second time)


def test_a_newline_in_a_file_name_stays_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a\nb.log").write_text("not a log\n")
    refused_in_one_line(
        ["calibrate", "import-nccl-tests", "a\nb.log"], "a\\nb.log: no nccl-tests column", tmp_path, capsys
    )
    (tmp_path / "\x1b[31mred.log").write_text("not a log\n")
    refused_in_one_line(["calibrate", "import-nccl-tests", "\x1b[31mred.log"], "\\x1b[31mred.log: no", tmp_path, capsys)


def test_a_newline_in_a_sweep_key_stays_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
    (tmp_path / "s.yaml").write_text(f'name: s\nbase: {base}\ngrid:\n  "comm.sms\\n": [20]\n')
    refused_in_one_line(["sweep", "s.yaml", "-o", "r.parquet"], "s.yaml: grid.comm.sms\\n", tmp_path, capsys)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run", "s.yaml", "-q", "-o", "p\udcfe"], "error: -o: b'p\\xfe' holds the byte 0xFE, which is not UTF-8"),
        (["run", "s.yaml", "--output=p\udcfe"], "error: --output: b'p\\xfe' holds the byte 0xFE, which is not UTF-8"),
        (["report", "\udcff.yaml", "-o", "rp"], "error: argument: b'\\xff.yaml' holds the byte 0xFF, which is not"),
        (["run", "-q", "x\udcfe.yaml"], "error: argument: b'x\\xfe.yaml' holds"),  # (-q takes no value)
        (["run", "s.yaml", "-op\udcfe"], "error: -o: b'p\\xfe' holds the byte 0xFE"),
        (["calibrate", "predict", "--profile", "\udcfe.json"], "error: --profile: b'\\xfe.json' holds"),
    ],
)
def test_a_name_that_is_not_utf8_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    """A byte that is not UTF-8 in a name (``$'p\\xfe'`` in a shell) reaches Python as a lone surrogate,
    which no output can hold: twin run -o, report, serve and plan run broke with a UnicodeEncodeError
    traceback after the work, leaving an empty folder (sim.cli.common.utf8_arguments)."""
    from sim.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("name: s\npipeline: {pp: 4, microbatches: 8}\n")
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith(line), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_an_eof_error_inside_a_command_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """click turns an ``EOFError`` raised anywhere in a command into ``Abort``: the line was ``error:
    aborted`` alone. A ``.pyc`` cut short (Python 3.11 writes one with a single ``write`` and a full disk
    returns short) raised ``EOF read where object expected`` at every later import of its module."""
    import sim.cli.validate
    from sim.cli import main

    def cut_short(*_: object) -> None:
        raise EOFError("EOF read where object expected")

    monkeypatch.setattr(sim.cli.validate, "load_scenario", cut_short)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(REPO / "scenarios" / "deepseek_v3_pretrain.yaml")])
    assert info.value.code == 1
    # (click writes a newline to stderr before its Abort, for the line a Ctrl-C leaves)
    assert capsys.readouterr().err.strip() == "error: aborted: EOFError: EOF read where object expected"
