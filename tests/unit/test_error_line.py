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
