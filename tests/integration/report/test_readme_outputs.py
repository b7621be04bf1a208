"""The README in order: ``twin run`` then ``twin report`` into the same folder; every file the
README's table of ``twin run``'s outputs promises is there afterwards, beside the report's, and the
report did not touch a byte of the run's (the reverse, per owner: ``tests/unit/test_output_folder.py``).

Both commands run as a user runs them (``sim.cli.main``), with the step and its study those of the
session's ``twin report`` (:func:`tests.conftest.default_report_run`), so nothing is simulated twice:
what is tested is what each command writes where."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import sim.experiments.study as study_module
import sim.run as run_module
from sim.cli import main

REPO = Path(__file__).resolve().parents[3]


def _run_table() -> list[str]:
    """The file names in the README's table under "What `twin run` writes"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## What `twin run` writes") :]
    section = section[: section.index("\n## ", 4)]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _twin(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0


def test_run_then_report_as_the_readme_says_keeps_every_promised_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_report_run: tuple[Path, Any, Any]
) -> None:
    _, step, study = default_report_run
    monkeypatch.setattr(run_module, "simulate_training", lambda *a, **k: step)
    monkeypatch.setattr(study_module, "run_study", lambda *a, **k: study)
    # what the report says is tested on the session's report; here only which files go where, so its
    # document is a small one with one figure (rendering the real one again costs half a minute)
    import matplotlib.pyplot as plt

    import reports.training_report as report_module
    from reports.document import Document

    def small_document(*_a: Any, **_k: Any) -> Document:
        doc = Document("a report")
        fig, _ax = plt.subplots()
        doc.figure(fig, "one", "One figure.")
        return doc

    monkeypatch.setattr(report_module, "training_document", small_document)
    monkeypatch.chdir(tmp_path)  # the README's commands write to out/ in the working folder
    promised = _run_table()
    assert promised == ["summary.md", "summary.json", "spans.parquet", "gantt.png", "trace.json"]

    _twin(["run", "-q"])
    folder = tmp_path / "out" / "deepseek-v3-pretrain"
    after_run = _files(folder)
    assert set(promised) <= set(after_run)
    # the README's -1 where a span has none: no layer for the embedding, head and MTP ops and the
    # step's DP and optimizer spans, no micro-batch or stage for the latter
    import pandas as pd

    spans = pd.read_parquet(folder / "spans.parquet")
    whole_step = spans["kind"].isin(["dp", "optimizer"])
    outside = spans["op"].str.match(r"(embed|head|mtp)\(") | whole_step
    assert ((spans["layer"] == -1) == outside).all()
    assert ((spans["microbatch"] == -1) == whole_step).all() and ((spans["stage"] == -1) == whole_step).all()

    _twin(["report", "-q"])
    after_report = _files(folder)
    assert {k: after_report[k] for k in after_run if not k.startswith(".")} == {
        k: v for k, v in after_run.items() if not k.startswith(".")
    }
    md = (folder / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all(link.startswith("figures/") and link in after_report for link in links)
    assert "report.html" in after_report

    # the reverse (a run leaves a report's files alone): tests/unit/test_output_folder.py
