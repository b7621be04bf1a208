"""``twin report``: the training-step report, its variants and the schedule-comparison report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reports.training_report import SECTIONS
from sim.cli import main
from sim.config import default_scenario_path, load_scenario
from sim.experiments.study import Study, run_variant
from sim.pipeline import theory
from sim.pipeline.schedules import COMPARED
from sim.run import TrainingRun
from tests.unit.report.test_document import external_refs

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "reports" / "examples" / "deepseek-v3-pretrain"
FIGURES = ["cost", "timeline", "breakdown", "bubbles", "sm-split", "bytes-per-node", "memory"]


def structure(folder: Path) -> tuple[list[str], list[str]]:
    """(section headings, figure files) of a report folder, from its Markdown."""
    md = (folder / "report.md").read_text()
    return re.findall(r"^## (.+)$", md, flags=re.M), re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


@pytest.fixture(scope="module")
def base(default_report_run: tuple[Path, TrainingRun, Study]) -> TrainingRun:
    """The default step, as the report command simulated it."""
    return default_report_run[1]


@pytest.fixture(scope="module")
def study(default_report_run: tuple[Path, TrainingRun, Study]) -> Study:
    """Its study, as the report command ran it."""
    return default_report_run[2]


def test_the_report_folder_holds_one_html_file_and_a_markdown_twin(default_report: Path) -> None:
    names = {p.name for p in default_report.iterdir()}
    assert names == {".clustertwin.json", ".clustertwin.lock", "report.html", "report.md", "figures"}
    assert {p.name for p in (default_report / "figures").iterdir()} == {f"{f}.png" for f in FIGURES}
    html = (default_report / "report.html").read_text()
    assert external_refs(html) == []
    assert len(html.encode()) < 3e6
    headings, figures = structure(default_report)
    assert headings == list(SECTIONS)
    assert figures == [f"figures/{f}.png" for f in FIGURES]
    for f in figures:
        assert (default_report / f).read_bytes().startswith(b"\x89PNG")
    # every figure inline (SVG, or the Gantt as a PNG data URI), the interactive timeline's canvas and data
    assert html.count("<figure") == len(FIGURES)
    assert html.count("<svg") == len(FIGURES) - 1 and html.count('<img src="data:image/png;base64,') == 1
    assert "<canvas" in html and 'id="tl-data"' in html
    for h in SECTIONS:
        assert f">{h.replace('&', '&amp;')}</h2>" in html


def test_the_committed_example_has_the_structure_the_command_writes(default_report: Path) -> None:
    """reports/examples/deepseek-v3-pretrain is what ``twin report -o reports/examples`` writes (dates,
    revisions and wall times aside): same sections, same figures, every one present."""
    assert structure(EXAMPLE) == structure(default_report)
    for f in structure(EXAMPLE)[1]:
        assert (EXAMPLE / f).read_bytes().startswith(b"\x89PNG")
    html = (EXAMPLE / "report.html").read_text()
    assert external_refs(html) == []
    assert (EXAMPLE / "report.html").stat().st_size < 3e6
    assert html.count("<figure") == (default_report / "report.html").read_text().count("<figure")
    assert "`twin report -o reports/examples`" in (EXAMPLE / "report.md").read_text()


def test_provenance_names_every_input_with_its_hash(default_report: Path) -> None:
    md = (default_report / "report.md").read_text()
    prov = md[md.index("## Provenance") :]
    for what in ("scenario file", "topology file", "profile file", "profile provenance", "twin version"):
        assert f"| {what} |" in prov
    assert "scenarios/deepseek_v3_pretrain.yaml" in prov and "topologies/deepseek-v3-mpft.yaml" in prov
    assert "calibrate/profiles/h800.json" in prov
    assert len(re.findall(r"sha256 `[0-9a-f]{64}`", prov)) == 3
    assert re.search(r"\| git revision \| `[0-9a-f]{7,}|unknown`", prov)
    assert "| command line | `twin report -q -o " in prov
    assert re.search(r"\| date \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|", prov)


def test_every_schedule_has_a_row_and_dualpipe_matches_the_closed_form(base: TrainingRun, study: Study) -> None:
    rows = {r.schedule: r for r in study.schedules}
    assert list(rows) == list(COMPARED)  # the five a comparison runs unless told
    dp = rows["dualpipe"]
    assert dp.step_time_s == base.result.step_time_s  # the scenario's own schedule is the base step
    c = dp.chunks
    assert c is not None and 0 < c.w < c.f < c.b < c.fb
    assert dp.closed_form_s == theory.bubble("dualpipe", 16, c.f, c.b, c.w, c.fb)
    assert dp.closed_form_s == pytest.approx((16 / 2 - 1) * (c.fb + c.b - 3 * c.w))
    for row in rows.values():
        assert row.ran and row.bubble_s is not None and row.pipeline_s is not None
        assert 0 < row.bubble_s < row.pipeline_s <= (row.step_time_s or 0.0)
    # 1F1B's bubble is (PP-1)(F+B): far above DualPipe's on the same chunk times
    assert rows["1f1b"].closed_form_s == pytest.approx(15 * (c.f + c.b), rel=0.02)
    assert rows["dualpipev"].ranks == 8 and rows["dualpipe"].ranks == 16
    zb = rows["zb1p"]
    assert not zb.fits and "does not fit" in zb.note and "training.check_memory: false" in zb.note
    assert (zb.peak_memory_GiB or 0.0) > base.gpu.hbm_GiB
    assert all(r.fits and r.note == "" for name, r in rows.items() if name != "zb1p")


def test_the_co_processor_beats_20_communication_sms(study: Study) -> None:
    line = {p.comm_sms: p for p in study.sms if not p.coprocessor}
    co = [p for p in study.sms if p.coprocessor]
    assert sorted(line) == [8, 12, 16, 20, 24, 32]
    assert len(co) == 1 and co[0].compute_sms == 132 and co[0].comm_sms == 20
    assert (co[0].step_time_s or 1e9) < (line[20].step_time_s or 0.0)
    # few SMs starve DeepEP: far more exposed communication at 8 than at 20, and a slower step
    assert (line[8].ep_exposed_s or 0.0) > 3 * (line[20].ep_exposed_s or 1e9)
    assert (line[8].step_time_s or 0.0) > (line[20].step_time_s or 1e9)
    assert all(line[s].compute_sms == 132 - s for s in line)


def test_an_impossible_variant_is_a_refusal_not_a_crash(base: TrainingRun) -> None:
    run, note = run_variant(base.scenario, {"pipeline.pp": 7})
    assert run is None and note == "refused: 2048 GPUs do not divide into 7 pipeline ranks"


def test_a_schedule_comparison_gets_the_smaller_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", str(REPO / "scenarios" / "dualpipe-table.yaml"), "-o", str(tmp_path)])
    assert info.value.code == 0
    folder = next(tmp_path.iterdir())
    assert "report written to" in capsys.readouterr().out
    headings, figures = structure(folder)
    assert headings == ["Schedules against the closed forms", "Timelines", "Provenance"]
    names = load_scenario(REPO / "scenarios" / "dualpipe-table.yaml").pipeline.schedules
    assert figures == [f"figures/gantt-{n}.png" for n in names]
    html = (folder / "report.html").read_text()
    assert external_refs(html) == [] and html.count('<img src="data:image/png;base64,') == len(names)
    md = (folder / "report.md").read_text()
    assert "closed-form bubble" in md


def test_nothing_is_written_when_the_scenario_is_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {default_scenario_path()}\nset: {{pipeline.pp: 15}}\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["report", str(bad), "-o", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("error: ") and 'bad.yaml: set: {"pipeline.pp": 15}: training.gpus' in err[0]
    )
    assert not out.exists() or not any(out.iterdir())


def test_a_step_on_a_schedule_not_compared_still_has_its_row(tmp_path: Path) -> None:
    """The schedule table holds the five compared schedules and, where the step runs another one
    (GPipe here; Megatron's interleaved-1f1b-overlap in a shipped scenario), the step's own: its row is
    the reported step, bubble and all (the table left it out, so no row matched the step above it)."""
    import yaml

    from sim.config import load_scenario as load
    from sim.experiments.study import schedule_study
    from sim.run import simulate_training

    body = {
        "name": "gpipe",
        "model": {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16"},
        "pipeline": {"pp": 4, "schedules": ["gpipe"]},
        "training": {"gpus": 64, "global_batch": 64},
        "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
        "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
    }
    path = tmp_path / "gpipe.yaml"
    path.write_text(yaml.safe_dump(body))
    run = simulate_training(load(path))
    rows = {r.schedule: r for r in schedule_study(run)}
    assert list(rows) == [*COMPARED, "gpipe"]
    own = rows["gpipe"]
    assert own.step_time_s == run.result.step_time_s and own.bubble_s == run.result.reported.bubble_s
