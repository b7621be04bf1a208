"""``twin run``'s report of a schedule comparison: a Document written as report.md and one Gantt PNG
per schedule; the SM split read from the run's assembly; the scenario's description kept literal."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.schedule_report import schedule_document
from sim.config import load_scenario
from sim.run import simulate

REPO = Path(__file__).resolve().parents[3]
DESCRIPTION = "A <img src=x onerror=alert(1)> test: [a link](http://x.y), _emphasis_ | pipe"


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: small_1\n"
        f"description: '{DESCRIPTION}'\n"
        "pipeline: {pp: 4, microbatches: 8, schedules: [1f1b, dualpipe]}\n"
        "ops: {forward_ms: 1, backward_ms: 2, weight_ms: 1, overlapped_ms: 3}\n"
        f"cluster: {{topology: {REPO / 'topologies' / 'h800-node.yaml'}, device_gpus: [0, 1, 2, 3]}}\n"
        "p2p: {activation_bytes: 1000000}\n"
    )
    return path


def test_schedule_document(tmp_path: Path) -> None:
    result = simulate(load_scenario(_scenario(tmp_path)))
    doc = schedule_document(result)
    assert doc.title == "Scenario `small_1`" and doc.subtitle == DESCRIPTION
    assert doc.headings() == [(2, "Results"), (2, "Timelines"), (3, "1f1b"), (3, "dualpipe")]
    assert doc.figures() == ["gantt-1f1b", "gantt-dualpipe"]
    out = tmp_path / "out"
    out.mkdir()
    written = doc.write_markdown(out)
    assert {p.name for p in written} == {"report.md", "gantt-1f1b.png", "gantt-dualpipe.png"}
    md = (out / "report.md").read_text()
    assert result.assembly is not None
    split = result.assembly.split
    assert f"Compute SMs: {split.compute_sms} of {split.gpu.sms}." in md
    # the comparison table: one row per schedule
    rows = [line.strip("|").split("|") for line in md.splitlines() if line.startswith("| ") and "schedule" not in line]
    assert [r[0].strip() for r in rows] == ["1f1b", "dualpipe"]
    # the description is literal text: no tag, link or emphasis in the Markdown
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<img") == 2 and "<a " not in html and "<em>" not in html  # the two Gantt charts only
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[a link](http://x.y)" in html
