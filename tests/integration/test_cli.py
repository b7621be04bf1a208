"""``twin run`` end to end: whole runs that write their report folder (summary, spans, Gantt charts,
traces) and the report's figures against the closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    code = info.value.code if isinstance(info.value.code, int) else 1
    return code, captured.out, captured.err


def test_run_writes_report_and_bad_scenario_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: small\npipeline: {pp: 4, microbatches: 8}\nops: {forward_ms: 1, backward_ms: 2, weight_ms: 1}\n"
    )
    out_dir = tmp_path / "out"
    code, _out, _ = _run(["run", str(scenario), "-o", str(out_dir), "-q"], capsys)
    assert code == 0
    written = {p.name for p in (out_dir / "small").iterdir()}
    assert {"summary.md", "summary.json", "spans.parquet", "gantt-dualpipe.png", "trace-zb1p.json"} <= written
    summary = json.loads((out_dir / "small" / "summary.json").read_text())
    assert [s["name"] for s in summary["schedules"]] == ["1f1b", "zb1p", "interleaved-1f1b", "dualpipe", "dualpipev"]
    # each F&B span's two parts: a forward and a backward, each with its own micro-batch and given time
    import pandas as pd

    spans, parts = (pd.read_parquet(out_dir / "small" / f) for f in ("spans.parquet", "parts.parquet"))
    fb = spans[spans["kind"] == "F&B"]
    assert set(fb["schedule"]) == set(parts["schedule"]) == {"dualpipe", "dualpipev"}
    key = ["schedule", "device", "action"]
    assert sorted(fb[key].values.tolist() * 2) == sorted(parts[key].values.tolist())
    assert sorted(set(parts["part"])) == ["B", "F"]
    assert set(parts.loc[parts["part"] == "F", "duration_s"]) == {0.001}
    assert set(parts.loc[parts["part"] == "B", "duration_s"]) == {0.002}
    bad = tmp_path / "bad.yaml"
    bad.write_text(scenario.read_text().replace("pp: 4", "pp: 5"))
    code, _, err = _run(["run", str(bad), "-o", str(tmp_path / "out2")], capsys)
    assert code == 2 and "pipeline.pp" in err
    assert not (tmp_path / "out2").exists()


def test_report_of_the_table_scenario_shows_matching_closed_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    code, _, _ = _run(["run", str(repo / "scenarios" / "dualpipe-table.yaml"), "-o", str(tmp_path), "-q"], capsys)
    assert code == 0
    rows = [
        line.strip("|").split("|")
        for line in (tmp_path / "dualpipe-table" / "summary.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| schedule")
    ]
    assert len(rows) == 5
    for row in rows:
        simulated, closed_form = float(row[4]), float(row[5])
        assert simulated == pytest.approx(closed_form), row[0]
