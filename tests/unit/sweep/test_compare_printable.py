"""``twin compare`` prints a label's control characters escaped (``\\x1b``, never the escape code a
terminal would act on); ``--format json`` gives the label as the results file holds it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.errors import one_printable_line as printable
from sim.sweep.compare import compare, load_results
from sim.sweep.point import METRICS, OK

LABELS = ["base", "cluster.topology=t\x1b[31mred.yaml", "x=\x07bell\ttab\nline\u202eRLO"]
SHOWN = ["base", "cluster.topology=t\\x1b[31mred.yaml", "x=\\x07bell\\ttab\\nline\\u202eRLO"]


def _results(folder: Path) -> Path:
    n = len(LABELS)
    rows: dict[str, list[object]] = {
        "point": list(range(n)),
        "point_id": [f"{i:016x}" for i in range(n)],
        "label": list(LABELS),
        "status": [OK] * n,
        "error": [None] * n,
    }
    for m in METRICS:
        rows[m.name] = [1.0 + i for i in range(n)]
    rows["cost_per_T_usd"] = [3.0 - i for i in range(n)]  # every point on the front
    rows["cluster.topology"] = ["a.yaml", "t\x1b[31mred.yaml", "b.yaml"]
    path = folder / "r.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)
    return capsys.readouterr().out


def test_printable_escapes_control_characters_only() -> None:
    assert [printable(label) for label in LABELS] == SHOWN
    assert printable("a*b, snake_case, é, 東京 and spaces") == "a*b, snake_case, é, 東京 and spaces"
    assert printable(SHOWN[1]) == SHOWN[1]  # printable already: unchanged


def test_compare_prints_no_control_character_of_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = _run(["compare", str(_results(tmp_path))], capsys)
    assert not any(c in out for c in "\x1b\x07\t\u202e")
    for shown in SHOWN:
        assert out.count(shown) == 2  # in the best points and on the front


def test_json_keeps_the_labels_as_in_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _results(tmp_path)
    data = json.loads(_run(["compare", str(path), "--format", "json"], capsys))
    assert [r["label"] for r in data["best"]] == LABELS
    assert sorted(r["label"] for r in data["pareto_front"]) == sorted(LABELS)
    result = compare(load_results(path)[0], "step_time_s", "cost_per_T_usd", 10)
    assert [r["label"] for r in result.best] == SHOWN  # the rows as the tables show them
