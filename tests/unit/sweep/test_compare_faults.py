"""``twin compare`` refuses, in one line, results it would have ranked wrongly or read without a word: a
figure that cannot be negative (a time, a rate, a cost, a size) below zero in an ok point, and a step
time of zero (it ranked that point best); a status that is not ok, infeasible or error (counted as
failed); a file of no points; the sweep's metadata that is not JSON. Real results still pass: a
training sweep's (ok, infeasible and unpriced rows), a serving sweep's, and the example in reports/."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim.cli import main
from sim.sweep.compare import compare, load_results
from sim.sweep.point import ABSOLUTE, INFEASIBLE, METRICS, OK, POINTS, RELATIVE, STATUSES
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep
from sim.sweep.store import META_KEY, _bad_cell
from tests.conftest import write_sweep

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "reports" / "examples" / "deepseek-v3-codesign" / "results.parquet"
SERVE_BASE = ROOT / "scenarios" / "serve" / "deepseek-v3-h800.yaml"


def _rows(**changes: list[Any]) -> dict[str, list[Any]]:
    """Three ok training points as twin sweep writes them (every figure positive), with ``changes``."""
    rows: dict[str, list[Any]] = {
        "point": [0, 1, 2],
        "point_id": ["a", "b", "c"],
        "label": ["comm.sms=20", "comm.sms=24", "comm.sms=28"],
        "status": [OK, OK, OK],
        "error": [None, None, None],
    }
    for m in METRICS:
        rows[m.name] = [1.0, 2.0, 3.0]
    return rows | changes


def _write(folder: Path, rows: dict[str, list[Any]], metadata: dict[bytes, bytes] | None = None) -> Path:
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path = folder / "r.parquet"
    pq.write_table(table, path)
    return path


def _refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line ``twin compare`` prints for ``path`` (exit 2, nothing on stdout)."""
    with pytest.raises(SystemExit) as info:
        main(["compare", str(path)])
    captured = capsys.readouterr()
    assert info.value.code == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    return lines[0].replace(f"{path}: ", "FILE: ", 1)


# ------------------------------------------------------------------------ figures that are never negative


@pytest.mark.parametrize("value", [-1.0, 0.0, -0.0, -1e-300])
def test_a_step_time_that_is_not_positive_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float
) -> None:
    """A step time of -1 s (or 0 s) in an ok point was ranked the best point, exit 0."""
    path = _write(tmp_path, _rows(step_time_s=[2.0, value, 3.0]))
    assert _refused(path, capsys) == (
        f"error: FILE: point 1: step_time_s: must be > 0 (a duration) in an ok point, got {value}"
    )


@pytest.mark.parametrize("name", [m.name for m in METRICS if m.change == RELATIVE])
def test_every_relative_figure_below_zero_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A relative figure is a positive extensive quantity (its change a percentage of the base)."""
    line = _refused(_write(tmp_path, _rows(**{name: [1.0, 2.0, -5.0]})), capsys)
    assert line.startswith(f"error: FILE: point 2: {name}: must be ") and line.endswith("in an ok point, got -5.0")


@pytest.mark.parametrize("name", ["step_time_s", "gpu_hours_per_T", "ttft_p50_s", "ttft_p99_s", "tpot_p99_s"])
def test_a_duration_of_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    line = _refused(_write(tmp_path, _rows(**{name: [1.0, 0.0, 3.0]})), capsys)
    assert line == f"error: FILE: point 1: {name}: must be > 0 (a duration) in an ok point, got 0.0"


def test_zero_prices_and_rates_signed_figures_and_fractions_pass(tmp_path: Path) -> None:
    """Zero is a price (a free GPU-hour: economics.gpu_hour_usd >= 0), a fabric cost, a goodput (no
    request meets the SLOs); headroom, a bubble and exposed communication are signed; a fraction is not
    bounded here. None is refused."""
    zero = [m.name for m in METRICS if m.change == RELATIVE and m.unit not in ("s", "GPU-h")]
    signed = [m.name for m in METRICS if m.change in (ABSOLUTE, POINTS)]
    rows = _rows(**{n: [0.0, 1.0, 2.0] for n in zero}, **{n: [-1.0, 0.0, 2.0] for n in signed})
    frame, _ = load_results(_write(tmp_path, rows))
    assert compare(frame, "step_time_s", "cost_per_T_usd", 3).ok == 3


def test_only_ok_points_are_checked_and_nan_is_unknown(tmp_path: Path) -> None:
    """An infeasible point's figures are not read (NaN there, as twin sweep writes them); NaN in an ok
    point is an unknown figure (a cost not priced), not a negative one."""
    rows = _rows(
        status=[OK, INFEASIBLE, OK],
        step_time_s=[1.0, -1.0, 3.0],
        cost_per_T_usd=[math.nan, -2.0, 5.0],
        tokens_per_day=[math.nan, math.nan, 1.0],
    )
    frame, _ = load_results(_write(tmp_path, rows))
    assert compare(frame, "step_time_s", "cost_per_T_usd", 3).ok == 2


def test_an_old_files_peak_memory_in_gb_is_checked_as_the_figure_in_gib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: dict[str, list[Any]] = {"point": [0, 1], "status": [OK, OK], "step_time_s": [21.0, 22.0]}
    rows["memory_peak_GB"] = [69.98, -1.0]
    rows |= {"memory_headroom_GB": [10.02, -10.0], "memory_capacity_GB": [80.0, 80.0]}  # headroom: signed
    line = _refused(_write(tmp_path, rows), capsys)
    assert line == "error: FILE: point 1: memory_peak_GB: must be >= 0 in an ok point, got -1.0"


# ------------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("word", ["OK", "Ok", "failed", "", " ok"])
def test_a_status_that_is_not_one_of_the_three_is_refused_as_a_journal_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], word: str
) -> None:
    """'OK' was counted as infeasible or failed without a word."""
    line = _refused(_write(tmp_path, _rows(status=[OK, OK, word])), capsys)
    assert line == f"error: FILE: point 2: status: {word!r} is not one of {', '.join(STATUSES)}"
    assert line.endswith(str(_bad_cell("status", "string", word)))  # the journal's words


def test_a_long_status_word_is_quoted_short_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(_write(tmp_path, _rows(status=[OK, "x\n" * 10_000, OK])), capsys)
    assert line.startswith("error: FILE: point 1: status: 'x\\nx\\n")
    assert line.endswith("... (30,002 characters) is not one of ok, infeasible, error")


# ------------------------------------------------------------------------------- no points; metadata


def test_a_file_of_no_points_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """twin sweep writes its file once a point has run; a file of none ranked nothing, exit 0."""
    empty = {k: v[:0] for k, v in _rows().items()}
    assert _refused(_write(tmp_path, empty), capsys) == (
        "error: FILE: holds no points (twin sweep writes a row for each point that ran)"
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "is not JSON (twin sweep writes a JSON mapping)"),
        (b"", "is not JSON (twin sweep writes a JSON mapping)"),
        (b"\xff\xfe", "is not JSON (twin sweep writes a JSON mapping)"),
        (b"[1, 2]", "is not a JSON mapping, got a list"),
        (b"null", "is not a JSON mapping, got null"),
    ],
)
def test_metadata_that_is_not_a_json_mapping_is_refused_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, why: str
) -> None:
    """It says whether the rows are --best's lower bounds and how many points the sweep has: unread,
    a screening file's bounds were ranked as steps."""
    line = _refused(_write(tmp_path, _rows(), {META_KEY: raw}), capsys)
    assert line == f"error: FILE: clustertwin.sweep: the file's metadata {why}"


def test_a_file_without_the_metadata_is_read(tmp_path: Path) -> None:
    frame, meta = load_results(_write(tmp_path, _rows()))
    assert meta == {} and len(frame) == 3
    _, meta = load_results(_write(tmp_path, _rows(), {META_KEY: json.dumps({"name": "s", "points": 5}).encode()}))
    assert meta == {"name": "s", "points": 5}


# --------------------------------------------------------------------------------- real results pass


def test_a_real_training_sweep_passes(tmp_path: Path) -> None:
    """ok rows, an infeasible one (its figures NaN) and one whose hardware has no price (no cost)."""
    points = [{"comm.sms": 20}, {"comm.sms": 24}, {"workload.ep": 7}, {"comm.coprocessor": True}]
    out = tmp_path / "r.parquet"
    run_sweep(load_sweep(write_sweep(tmp_path, {"name": "real", "points": points})), out, workers=1)
    frame, meta = load_results(out)
    assert meta["points"] == 4 and sorted(frame["status"]) == [INFEASIBLE, OK, OK, OK]
    assert compare(frame, "step_time_s", "cost_per_T_usd", 10).ok == 3


def test_a_real_serving_sweep_passes(tmp_path: Path) -> None:
    points = [{"serve.duration_s": 5, "serve.traffic.rate_per_s": 20}]
    out = tmp_path / "s.parquet"
    run_sweep(load_sweep(write_sweep(tmp_path, {"base": str(SERVE_BASE), "name": "serve", "points": points})), out)
    frame, _ = load_results(out)
    assert compare(frame, "goodput_requests_per_s", "ttft_p99_s", 10).ok == 1


def test_the_example_results_in_reports_pass() -> None:
    frame, meta = load_results(EXAMPLE)
    assert meta["points"] == len(frame) and compare(frame, "step_time_s", "cost_per_T_usd", 10).ok > 0


def test_a_file_without_labels_names_its_points(tmp_path: Path) -> None:
    """It was a KeyError traceback (``['label'] not in index``) when the ranked table was built."""
    rows = _rows()
    del rows["label"]
    result = compare(load_results(_write(tmp_path, rows))[0], "step_time_s", "gpu_hours_per_T", 3)
    assert [r["label"] for r in result.best] == ["point 0", "point 1", "point 2"]


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"step_time_s": [1.0, 1e308, 3.0]}, "point 1: step_time_s: 1e+308 is past 1e+100, which no figure"),
        ({"memory_headroom_GiB": [1.0, 2.0, -1e308]}, "point 2: memory_headroom_GiB: -1e+308 is past 1e+100"),
        ({"point": [-1, 1, 2]}, "point: -1 is not a point number (0, 1, 2 ...)"),
        ({"label": ["a", None, "c"]}, "point 1: label: nan is not text"),
    ],
)
def test_results_no_sweep_writes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, list[Any]], line: str
) -> None:
    """A figure past sim.run.EDGE (a sweep refuses its point as an overflow: it was ranked, and drawn with
    matplotlib's overflow warning), a negative point number and a label that is not text were taken."""
    path = _write(tmp_path, _rows(**changes))
    assert _refused(path, capsys).startswith(f"error: FILE: {line}")


@pytest.mark.parametrize("value", [1e101, -1e300, 10**200])
def test_a_figure_past_the_edge_is_refused_in_the_same_words_by_a_journal_and_by_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float
) -> None:
    """One rule (sim.sweep.point.past_edge) for a row read back and a file twin compare reads: the
    reason a resumed sweep gives for the cell is the end of compare's line."""
    why = _bad_cell("step_time_s", "float64", value)
    assert why is not None and "is past 1e+100" in why
    path = _write(tmp_path, _rows(step_time_s=[1.0, float(value), 3.0]))
    assert _refused(path, capsys).endswith(f"point 1: step_time_s: {why}")
    assert _bad_cell("step_time_s", "float64", 1e100) is None  # the edge itself is a figure


def test_points_without_the_fronts_second_figure_are_named_and_the_figure_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ok point with no figure for --against (a serving point whose requests all had one output token
    has no TPOT) was left off the front without a word, and at 80 columns the --against column itself was
    left out of the table of the best. Both are said now."""
    monkeypatch.setenv("COLUMNS", "80")
    path = _write(tmp_path, _rows(mfu_causal=[0.3, None, 0.5]))
    with pytest.raises(SystemExit) as info:
        main(["compare", str(path), "--against", "mfu_causal"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert "1 ok point(s) have no mfu_causal, on no front by it: 1" in text
    best = text.split("Pareto front")[0]
    header = next(line for line in best.splitlines() if "point" in line and "label" in line)
    assert "mfu_causal" in header, best


# ------------------------------------------------------------------------ rows past the sweep's points


@pytest.mark.parametrize("points", [1, 2])
def test_rows_past_the_points_the_metadata_gives_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], points: int
) -> None:
    """The metadata says the sweep has ``points`` points; the file holds points 0, 1 and 2. Before, the
    JSON said ``"points": 1, "ran": 2`` (more ran than the sweep has) and exit 0."""
    path = _write(tmp_path, _rows(), {META_KEY: json.dumps({"points": points}).encode()})
    line = _refused(path, capsys)
    past = f"point {points} is past the sweep's {points} point(s) (its metadata's points): rows of another sweep?"
    assert line == f"error: FILE: point: {past}"


def test_rows_within_the_points_the_metadata_gives_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(), {META_KEY: json.dumps({"points": 5}).encode()})
    frame, meta = load_results(path)
    assert list(frame["point"]) == [0, 1, 2] and meta["points"] == 5
