"""Five faults left over from the audits of ``docs/errors.md`` (its "found | now" table), each now an
exit status 0 or one line naming the file and the key (or the flag), exit status 2, no traceback and
nothing left behind. Before the fixes:

* a path or a name with rich markup (``-o '[/w]'``) in the line ``twin report`` of a co-design study,
  ``twin run``, ``validate``, ``sweep``, ``compare --plot``, ``serve``, ``plan``, ``chunk
  --trace-out``, ``schedules plot`` / ``trace`` and ``check ... -o`` print after their work: a
  ``rich.errors.MarkupError`` traceback, the files written;
* ``training.gpus: 10**400`` had no upper bound: a sweep of a run file setting it in a phase was an
  ``OverflowError`` traceback while its point was labelled (``sim.experiments.run_sweep._short``), a
  scenario ``... GPUs do not fit the cluster's 2048`` with 401 digits;
* a derived scenario (``base:`` + ``set:``) whose base is a folder, a device or missing named only
  that path (``/tmp: is a folder, not a scenario file``), not the derived file or its key;
* an output file name over 255 bytes: ``error: aaa….json: File name too long``, naming no flag;
* (the journal named where a sweep's foreign rows are only in its journal: the bad-input table of
  ``tests/unit/test_bad_inputs_newer.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.experiments.run_sweep import _short, short_label
from tests.unit.test_bad_inputs import ran_cleanly, refused_in_one_line

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
COMPARISON = REPO / "scenarios" / "schedule-comparison.yaml"
SMALL = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
RUN = REPO / "scenarios" / "runs" / "deepseek-v3.yaml"
SERVE = REPO / "scenarios" / "serve" / "decode-floor.yaml"
HUGE = 10**400
LONG = "a" * 300


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of small inputs; the test runs inside it."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "cd.yaml").write_text(
        f"name: cd-tiny\nbase: {SMALL}\nstudies:\n  - key: k\n    title: t\n"
        "    variants:\n      - {label: v, set: {comm.sms: 24}}\n"
    )
    (tmp_path / "[").mkdir()
    (tmp_path / "[" / "v].yaml").write_text(f"base: {SMALL}\nset: {{}}\n")  # validated as '[/v].yaml'
    (tmp_path / "[b].txt").write_text("0F0 0F1 0B0 0B1\n1F0 1B0 1F1 1B1\n")  # a schedule named [b]
    (tmp_path / "gpus.yaml").write_text(f"base: {DEFAULT}\nset: {{training.gpus: {HUGE}}}\n")
    (tmp_path / "gpus_over.yaml").write_text(f"base: {DEFAULT}\nset: {{training.gpus: {(1 << 20) + 1}}}\n")
    (tmp_path / "run_sweep.yaml").write_text(
        f"name: rs\nbase: {RUN}\npoints:\n  - {{phases.context-32k.set.training.gpus: {HUGE}}}\n"
    )
    for name, base in (("folder", "folder"), ("missing", "nope.yaml"), ("device", "/dev/null")):
        (tmp_path / f"d_{name}.yaml").write_text(f"base: {base}\nset: {{comm.sms: 20}}\n")
        (tmp_path / f"ds_{name}.yaml").write_text(f"base: {base}\nset: {{serve.duration_s: 5}}\n")
    (tmp_path / "d_chain.yaml").write_text("base: d_folder.yaml\nset: {comm.sms: 24}\n")
    (tmp_path / "sw_chain.yaml").write_text("base: d_folder.yaml\ngrid: {comm.sms: [20]}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------- 1. markup
MARKUP: list[tuple[list[str], str, str]] = [  # (args, printed, the file written)
    (["report", "cd.yaml", "-o", "[/w]"], "report written to [/w]/cd-tiny/report.html", "[/w]/cd-tiny/report.html"),
    (["validate", "[/v].yaml"], "[/v].yaml: ok (training step", "[/v].yaml"),
    (["run", str(COMPARISON), "-o", "[/r]"], "written to [/r]/schedule-comparison/", "[/r]/schedule-comparison"),
    (["schedules", "trace", "1f1b", "-o", "[/t].json"], "wrote [/t].json", "[/t].json"),
    (["schedules", "plot", "1f1b", "-o", "[/p].png"], "wrote [/p].png", "[/p].png"),
    (["chunk", "--trace-out", "[/c].json"], "wrote [/c].json", "[/c].json"),
    (["check", "deepep", "-o", "[/m].md"], "written to [/m].md", "[/m].md"),
    (["schedules", "check", "--file", "[b].txt"], "[b]: valid (2 devices, 8 actions)", "[b].txt"),  # '[b]' dropped
    (["serve", str(SERVE), "-o", "[/s]"], "written to [/s]/decode-floor/", "[/s]/decode-floor/summary.json"),
]


@pytest.mark.parametrize("args,printed,written", MARKUP, ids=[" ".join(a) for a, _, _ in MARKUP])
def test_a_path_with_markup_is_printed_as_it_is(
    args: list[str], printed: str, written: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'[/w]' in a path is text, not a closing tag of rich markup (a MarkupError traceback after the
    outputs were written)."""
    assert printed in ran_cleanly(args, capsys)
    assert (files / written).exists()


def test_a_sweep_and_its_plot_with_markup_in_their_paths(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "sw.yaml").write_text(f"name: sw\nbase: {SMALL}\ngrid: {{comm.sms: [20]}}\n")
    assert "sw: 1 point(s) run -> [/x].parquet" in ran_cleanly(["sweep", "sw.yaml", "-o", "[/x].parquet"], capsys)
    assert "plot written to [/y].png" in ran_cleanly(["compare", "[/x].parquet", "--plot", "[/y].png"], capsys)
    assert (files / "[" / "y].png").is_file()


def test_a_bracketed_string_in_a_sweep_table_is_shown_as_it_is() -> None:
    """The compare table's title and cells went through rich markup: a cell such as ``x=[bold]`` or an
    error naming a path ``[/x].yaml`` lost its brackets (read as a style tag) or raised MarkupError.
    The cells and title are text now."""
    from rich.console import Console

    from sim.cli.sweep import _table

    rows: list[dict[str, object]] = [{"label": "x=[bold]", "error": "[/x].yaml: no such file"}]
    console = Console(width=200, record=True)
    console.print(_table("sweep [red]s", ["label", "error"], rows, 20))
    shown = console.export_text()
    assert "x=[bold]" in shown and "[/x].yaml: no such file" in shown and "sweep [red]s" in shown, shown


# ------------------------------------------------------------------------------------- 2. training.gpus
def test_a_whole_number_past_a_float_labels_its_point() -> None:
    """``_short`` divided it by 1e12 (OverflowError: int too large to convert to float)."""
    assert _short(HUGE) == "~1e+400"
    assert _short(-HUGE) == "-~1e+400"
    assert short_label({"phases.p.set.training.gpus": HUGE}) == "p.set.training.gpus=~1e+400"
    assert (_short(469e9), _short(12), _short(50677)) == ("469B", "12", "50.677K")  # as before


# ------------------------------------------------------------------------------------------- the refusals
GPUS_BOUND = "Input should be less than or equal to 1048576"
CASES: list[tuple[list[str], str]] = [
    # 2. training.gpus at most 2^20 (sim.limits.MAX_GPUS), as every GPU count
    (["validate", "gpus.yaml"], f"gpus.yaml: training.gpus: {GPUS_BOUND} (got 1000000"),
    (["run", "gpus_over.yaml"], f"gpus_over.yaml: training.gpus: {GPUS_BOUND} (got 1048577)"),
    (["plan", "run", "run_sweep.yaml"], "run_sweep.yaml: points[0].phases.context-32k.set.training.gpus: 1000"),
    (["plan", "run", "run_sweep.yaml"], GPUS_BOUND),
    # 3. a derived scenario's base that is no scenario file: named at the derived file's base key
    (["run", "d_folder.yaml"], "d_folder.yaml: base: folder: is a folder, not a scenario file"),
    (["validate", "d_folder.yaml"], "d_folder.yaml: base: folder: is a folder, not a scenario file"),
    (["run", "d_missing.yaml"], "d_missing.yaml: base: nope.yaml: no such scenario file"),
    (["run", "d_device.yaml"], "d_device.yaml: base: /dev/null: not a regular file (a device, pipe or socket)"),
    (["serve", "ds_folder.yaml"], "ds_folder.yaml: base: folder: is a folder, not a scenario file"),
    (["serve", "ds_missing.yaml"], "ds_missing.yaml: base: nope.yaml: no such scenario file"),
    (["run", "d_chain.yaml"], "error: d_folder.yaml: base: folder: is a folder"),  # the file that names it
    (["sweep", "sw_chain.yaml", "-o", "x.parquet"], "error: d_folder.yaml: base: folder: is a folder"),
    # 4. a file or folder name over 255 bytes, refused naming the flag before any work
    (
        ["calibrate", "datasheet", "-o", f"{LONG}.json"],
        "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaa.json' is 305 bytes, over the 255 a file or folder name may have",
    ),
    (["calibrate", "datasheet", "-o", f"{LONG}/p.json"], "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaa' is 300"),
    (["calibrate", "datasheet", "-o", "é" * 128 + ".json"], "--output: 'éééééééééééééééééééé...ééééééé.json' is 261"),
    (["schedules", "trace", "1f1b", "-o", f"{LONG}.json"], "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaa.json' is 305"),
    (["schedules", "plot", "1f1b", "-o", f"{LONG}.png"], "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaaa.png' is 304"),
    (["run", str(COMPARISON), "-o", LONG], "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaa' is 300 bytes"),
    (["report", "cd.yaml", "-o", LONG], "--output: 'aaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaa' is 300 bytes"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[" ".join(a)[:90] for a, _ in CASES])
def test_refused_in_one_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_in_one_line(args, expected, files, capsys)


def test_a_file_name_of_255_bytes_is_written(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "ab" + "é" * 124 + ".json"  # 255 bytes: the longest a file name may have
    assert len(name.encode()) == 255
    ran_cleanly(["calibrate", "datasheet", "-o", name], capsys)
    assert (files / name).is_file()


def test_a_huge_value_is_quoted_short_in_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep value of 401 digits was repeated in full twice (once with its thousands separators) in the
    error: over 900 characters of one line. A quoted value is cut to ``sim.errors.SHOWN_CHARS``, with its
    length."""
    nines = "9" * 401
    base = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
    (tmp_path / "s.yaml").write_text(f"base: {base}\ngrid:\n  comm.sms: [{nines}]\n")
    monkeypatch.chdir(tmp_path)
    expected = (
        "grid.comm.sms: 9999999999999999999999999999... (401 characters): must be at most 1,024, "
        "got 99,999,999,999,999,999,999,9... (534 characters)"
    )
    refused_in_one_line(["sweep", "s.yaml", "-o", "x.parquet"], expected, tmp_path, capsys)
