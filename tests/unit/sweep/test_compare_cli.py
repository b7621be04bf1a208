"""``twin compare`` in a narrow pipe: the ranked figure whole (other columns left out, and said so, or
the label wrapped first), a plot only when asked for, legend labels never cut inside a value."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from reports.compare_plot import legend_label, pareto_figure
from sim.cli import main
from sim.cli.sweep import _cell
from sim.sweep.compare import compare, load_results
from sim.sweep.point import METRICS, OK

LONG = "training.gpus=4096, training.global_batch=30720, comm.sms=12, cluster.nic_Gbps=800"


def _results(folder: Path) -> Path:
    """Sweep results as ``twin sweep`` writes them: six ok points with long labels and wide figures, one
    infeasible, one whose hardware has no price (no cost)."""
    n = 8
    rows: dict[str, list[object]] = {
        "point": list(range(n)),
        "point_id": [f"{i:016x}" for i in range(n)],
        "label": ["base"] + [f"{LONG}, training.microbatch_sequences={i}" for i in range(1, n)],
        "status": [OK] * 6 + ["infeasible", OK],
        "error": [None] * 6 + ["workload.ep: too big", None],
    }
    for k, m in enumerate(METRICS):
        rows[m.name] = [1234567.891 * (1 + 0.01 * ((i * 7 + k) % 5)) for i in range(n)]
    rows["step_time_s"] = [21.349, 20.943, 19.612, 25.399, 22.5, 20.1, math.nan, 19.05]
    rows["cost_per_T_usd"] = [410342.18, 427215.74, 376952.0, 480000.5, 433000.25, 401000.75, math.nan, math.nan]
    rows["cost_note"] = [None] * 7 + ["hardware cost not modelled: co-processor: no price"]
    path = folder / "r.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return (info.value.code if isinstance(info.value.code, int) else 1), captured.out


@pytest.mark.parametrize("by", ["cost_per_T_usd", "step_time_s", "memory_headroom_GiB", "tokens_per_day"])
def test_in_80_columns_the_ranked_figure_is_whole_and_what_is_left_out_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    path = _results(tmp_path)
    code, out = _run(["compare", str(path), "--by", by], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out  # nothing is cut with an ellipsis
    frame, _ = load_results(path)
    result = compare(frame, by, "step_time_s" if by == "cost_per_T_usd" else "cost_per_T_usd", 10)
    table = [line for line in lines if line.startswith("│")]
    header = next(line for line in lines if line.startswith("┃"))
    assert f" {by} " in header  # the ranked figure's name whole
    for row in result.best:  # each ranked value whole, on its point's first table line
        first = next(line for line in table if re.match(rf"│\s+{row['point']} │", line))
        assert f" {_cell(row[by])} " in first
    shown = [c.strip() for c in header.strip("┃").split("┃")]
    left = [c for c in result.columns if c not in shown]
    if left:
        assert f"not shown at 80 columns: {', '.join(left)}" in " ".join(out.split())
    assert ["point", "label", by] == [c for c in shown if c in ("point", "label", by)]


def test_a_wide_terminal_shows_every_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out = _run(["compare", str(_results(tmp_path)), "--by", "cost_per_T_usd"], capsys)
    assert code == 0 and "not shown" not in out and "memory_headroom_GiB" in out
    assert "have no cost_per_T_usd, hardware cost not modelled" in " ".join(out.split())  # point 7: no price


def test_the_plot_is_written_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    path = _results(tmp_path)
    before = set(tmp_path.iterdir())
    code, out = _run(["compare", str(path)], capsys)
    assert code == 0 and set(tmp_path.iterdir()) == before and "plot" not in out
    code, out = _run(["compare", str(path), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["plot"] is None and set(tmp_path.iterdir()) == before
    plot = tmp_path / "front.png"
    code, out = _run(["compare", str(path), "--plot", str(plot)], capsys)
    assert code == 0 and plot.stat().st_size > 1000 and f"plot written to {plot}" in " ".join(out.split())
    assert set(tmp_path.iterdir()) == before | {plot}


def test_legend_labels_break_between_parts_never_inside_a_value(tmp_path: Path) -> None:
    text = f"best by step_time_s: {LONG}, cluster.topology=../topologies/deepseek-v3-ft3.yaml"
    wrapped = legend_label(text)
    assert wrapped.replace(",\n", ", ") == text  # every character kept
    for line in wrapped.splitlines():
        assert len(line) <= 48 or ", " not in line  # broken where it could be
    assert "global_batch=30720" in wrapped.splitlines()[1] or "global_batch=30720" in wrapped.splitlines()[0]
    frame, _ = load_results(_results(tmp_path))
    result = compare(frame, "step_time_s", "cost_per_T_usd", 3)
    fig = pareto_figure(frame, result, "t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    best = next(t for t in texts if t.startswith("best by"))
    assert best.replace(",\n", ", ") == f"best by step_time_s: {result.best[0]['label']}"


def _serve_results(folder: Path) -> Path:
    """Results of a serving sweep as twin sweep writes them: no step time, the serving figures set."""
    rows: dict[str, list[object]] = {
        "point": [0, 1, 2],
        "point_id": ["a", "b", "c"],
        "label": ["serve.prefill.tbo=false", "cluster.nic_Gbps=200", "base"],
        "status": [OK, OK, OK],
        "error": [None, None, None],
    }
    for m in METRICS:
        rows[m.name] = [math.nan] * 3
    rows["goodput_requests_per_s"] = [305.7, 310.2, 290.0]
    rows["ttft_p99_s"] = [2.106, 1.268, 0.9]
    rows["tpot_p99_s"] = [0.024, 0.025, 0.03]
    path = folder / "s.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_a_serving_sweep_is_compared_by_its_own_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A serving sweep's ok points have no step time: they are read (they were refused, 'step_time_s:
    NaN in a point whose status is ok'), ranked by goodput against the TTFT's 99th percentile by
    default, with the serving figures beside; a serving figure asked of training steps is refused."""
    with pytest.raises(SystemExit) as info:
        main(["compare", str(_serve_results(tmp_path)), "--format", "json"])
    assert info.value.code == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["by"], d["against"]) == ("goodput_requests_per_s", "ttft_p99_s")
    assert [r["point"] for r in d["best"]] == [1, 0, 2] and set(d["best"][0]) >= {"ttft_p99_s", "tpot_p99_s"}
    assert {r["point"] for r in d["pareto_front"]} == {1, 2}  # 0 has less goodput and a worse TTFT than 1
    frame = pd.read_parquet(_results(tmp_path))
    frame["ttft_p99_s"] = math.nan
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(SystemExit) as info:
        main(["compare", str(tmp_path / "t.parquet"), "--by", "ttft_p99_s"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --by: no ok point has ttft_p99_s (the points are training steps)"


def test_large_figures_print_in_one_form() -> None:
    """A column mixed 8.36e+04 with 125,707: whole numbers with separators from 1,000."""
    assert [_cell(x) for x in (83600.4, 125707.3, 2.3198, 0.000123, 9999.7, 999.4)] == [
        "83,600",
        "125,707",
        "2.32",
        "0.000123",
        "10,000",
        "999.4",
    ]


def _rows_of(lines: list[str]) -> dict[int, list[list[str]]]:
    """The body lines of each table printed, by point: their cells (stripped), the first line's first."""
    tables: dict[int, list[list[str]]] = {}
    point = -1
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0]:
            point = int(cells[0])
            tables.setdefault(point, [])
        tables[point].append(cells)
    return tables


@pytest.mark.parametrize("width", [40, 60])
def test_in_40_and_60_columns_every_number_and_label_is_printed_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """A table wider than the terminal was cropped (the front's cost_per_T_usd cut to 'cost_per_' and
    408,122 to '40' at 60 columns) or its columns shrunk to nothing (the label at 40): the kept columns
    are printed whole, the label is broken at its spaces or a key's dots, never inside a value, and the
    table is wider than the terminal where it must be."""
    monkeypatch.setenv("COLUMNS", str(width))
    path = _results(tmp_path)
    code, out = _run(["compare", str(path)], capsys)
    assert code == 0 and "…" not in out
    frame, _ = load_results(path)
    result = compare(frame, "step_time_s", "cost_per_T_usd", 10)
    headers = [[c.strip() for c in line.strip().strip("┃").split("┃")] for line in out.splitlines() if "┃" in line]
    best_header, front_header = headers[0], headers[-1]
    assert {"point", "label", "step_time_s"} <= set(best_header)
    assert front_header == ["point", "label", "step_time_s", "cost_per_T_usd"]
    tables = out.split("Pareto front")
    for text, rows, header in ((tables[0], result.best, best_header), (tables[1], result.front, front_header)):
        printed = _rows_of(text.splitlines())
        assert sorted(printed) == sorted(int(r["point"]) for r in rows)
        for row in rows:
            lines = printed[int(row["point"])]
            for i, column in enumerate(header):
                if column == "label":  # every character; each value on one line
                    assert "".join(cells[i] for cells in lines).replace(" ", "") == row["label"].replace(" ", "")
                    for value in [w.rsplit("=", 1)[-1] for w in row["label"].split()]:
                        assert any(value in cells[i] for cells in lines), value
                elif column != "point":
                    assert lines[0][i] == _cell(row[column]), (column, lines[0])


def _partial(folder: Path, points: int) -> Path:
    """The results of :func:`_results` as the first rows of a sweep of ``points`` points (its metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sim.sweep.store import META_KEY

    table = pq.read_table(_results(folder))
    meta = {"name": "s", "points": points, "lower_bounds": False}
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), folder / "p.parquet")
    del pa
    return folder / "p.parquet"


def test_a_file_where_most_points_never_ran_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --best output (or a stopped sweep's file) holds only the points that ran: its front was printed
    as the sweep's, not saying most points never ran (the metadata's "points")."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out = _run(["compare", str(_partial(tmp_path, 100))], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "8 of 100 points ran (a twin sweep --best output, or a sweep stopped before its end): the points not run "
        "are in no table and on no front"
    )
    assert "best 7 of the 7 that ran by step time (lower is better)" in out
    assert "Pareto front of the points that ran: step_time_s vs cost_per_T_usd (1 points)" in out
    code, out = _run(["compare", str(_partial(tmp_path, 100)), "--format", "json"], capsys)
    assert code == 0 and (json.loads(out)["points"], json.loads(out)["ran"]) == (100, 8)
    code, out = _run(["compare", str(_partial(tmp_path, 8))], capsys)  # every point ran: nothing said
    assert code == 0 and "points ran" not in out and "Pareto front: step_time_s" in out


def test_the_cost_footnote_counts_only_the_rows_whose_cost_note_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ok points with no cost and an empty cost_note were said to have 'hardware cost not modelled
    (cost_note column)': only those whose note says so are; the others are said to have no cost."""
    monkeypatch.setenv("COLUMNS", "200")
    frame = pd.read_parquet(_results(tmp_path))
    frame.loc[frame["point"] == 5, "cost_per_T_usd"] = math.nan  # no cost, no note
    frame.to_parquet(tmp_path / "n.parquet")
    code, out = _run(["compare", str(tmp_path / "n.parquet")], capsys)
    assert code == 0
    assert (
        "1 ok point(s) have no cost_per_T_usd, hardware cost not modelled (cost_note column), and are not "
        "ranked or on a front by it: 7"
    ) in out
    assert (
        "1 ok point(s) have no cost_per_T_usd (no cost_note says why), and are not ranked or on a front by it: 5"
    ) in out


def test_ranking_by_the_reported_ranks_figure_points_to_its_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bubble_s`` and the three like it are the figures of the rank that ends each step, which jump where
    another rank ends a neighbouring point's; ranking by one says so and names the mean over the ranks (in
    the JSON too), ranking by the mean or another figure says nothing."""
    from sim.sweep.point import MEAN_OF

    monkeypatch.setenv("COLUMNS", "400")
    path = _results(tmp_path)
    for name, mean in MEAN_OF.items():
        code, out = _run(["compare", str(path), "--by", name], capsys)
        notes = [line for line in out.splitlines() if line.startswith("note: ")]
        assert code == 0 and len(notes) == 1 and f"note: {name} is the figure of the rank" in notes[0]
        assert f"{mean}, every rank's mean" in notes[0]
        code, out = _run(["compare", str(path), "--by", mean], capsys)
        assert code == 0 and "note: " not in out
    code, out = _run(["compare", str(path), "--by", "step_time_s", "--against", "bubble_s", "--format", "json"], capsys)
    assert code == 0 and len(json.loads(out)["notes"]) == 1
    code, out = _run(["compare", str(path), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["notes"] == []


def test_a_figure_the_file_was_written_without_is_refused_saying_to_run_the_sweep_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A results file from before the ``_mean`` columns (2026-12-06): ranking by one of them says that the
    file lacks the column and how to fill it (exit 2, one line), not that no point has it; the figures
    it holds still rank."""
    path = _results(tmp_path)
    frame = pd.read_parquet(path)
    frame.drop(columns=["bubble_mean_s", "bubble_ratio_mean"]).to_parquet(path)
    for flag in ("--by", "--against"):
        with pytest.raises(SystemExit) as info:
            main(["compare", str(path), flag, "bubble_mean_s"])
        err = capsys.readouterr().err
        assert info.value.code == 2
        assert err.splitlines() == [
            f"error: {flag}: {path} has no bubble_mean_s column: its sweep ran before the twin wrote it; run the "
            "sweep again into the same file (rows an older twin computed are run again) to fill it"
        ]
    code, out = _run(["compare", str(path), "--by", "ep_comm_exposed_mean_s"], capsys)  # (a column it has)
    assert code == 0 and "ep_comm_exposed_mean_s" in out


@pytest.mark.parametrize(
    ("by", "against", "listed"), [("cost_per_T_usd", "step_time_s", True), ("step_time_s", "tokens_per_day", None)]
)
def test_json_lists_the_points_without_a_cost_as_the_table_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], by: str, against: str, listed: bool | None
) -> None:
    """Point 7 has no price: the table says it is not ranked or on a front by the cost; ``--format json``
    said nothing (``missing: {}``). Where the cost is ranked, fronted or shown, JSON lists it under
    ``missing`` and, its cost_note saying why, ``cost_not_modelled``."""
    path = _results(tmp_path)
    code, out = _run(["compare", str(path), "--by", by, "--against", against, "--format", "json"], capsys)
    assert code == 0
    result = json.loads(out)
    frame, _ = load_results(path)
    costed = "cost_per_T_usd" in compare(frame, by, against, 10).columns
    assert (result["missing"].get("cost_per_T_usd"), result["cost_not_modelled"]) == (
        ([7], [7]) if listed or costed else (None, [])
    )
