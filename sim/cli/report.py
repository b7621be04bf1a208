"""``twin report [SCENARIO] -o DIR``: one self-contained HTML report and its Markdown twin.

For a training step: the step, every schedule and the SM split as variants of it, the bytes per node
(:mod:`sim.experiments.study`), rendered by :mod:`reports.training_report`; for a schedule comparison
(no ``training`` section): the comparison against the closed forms and a timeline per schedule. It
writes ``report.html``, ``report.md`` and ``figures/`` in ``DIR/<scenario name>/``, replacing only
what an earlier report wrote there (a run's files beside them stay), and nothing on failure
(:func:`sim.outputs.owned_outputs`). ``docs/report.md`` explains every section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sim.cli.common import ARGV, err, out, output_dir_option, progress_bar
from sim.config import default_scenario_path, load_scenario
from sim.outputs import check_name_fits, check_output_folder, owned_outputs

if TYPE_CHECKING:
    from sim.config import Scenario
    from sim.experiments.study import Study


def study_figures(study: Study) -> dict[str, Any]:
    """The figures of a report's variants (schedules, SM split, bytes per node) as nested dicts and lists."""
    from dataclasses import asdict

    return {
        "schedules": [asdict(row) for row in study.schedules],
        "sms": [asdict(point) for point in study.sms],
        "bytes": {
            medium: {c: a.tolist() for c, a in getattr(study.bytes, medium).items()} for medium in ("ib", "nvlink")
        },
    }


def check_report_figures(sc: Scenario, figures: dict[str, Any]) -> None:
    """Every figure the report prints as it is finite and short of :data:`sim.run.EDGE` (a step of 1e153 s
    is an overflow in all but name: ``twin run`` checks only what its trace can hold), else one line
    naming the figure and the scenario's inputs at the edge (:func:`sim.run.check_figures_finite`),
    before anything is drawn or written."""
    from sim.run import EDGE, _read_files, check_figures_finite

    check_figures_finite(sc.source_path, sc.model_dump(), figures, files=_read_files(sc), huge=EDGE)


def report_cmd(
    scenario: Annotated[Path | None, typer.Argument(help="scenario YAML \\[default: the embedded default]")] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="folder; the report goes to DIR/<scenario name>/", callback=output_dir_option
        ),
    ] = Path("out"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress, no summary line")] = False,
) -> None:
    """Write the report of a scenario: report.html (self-contained: figures, styles and the zoomable
    timeline inline, nothing fetched) and report.md with its figures as PNG files in figures/ (a run's
    files in the same folder stay). A training step gets
    its summary, timeline, breakdown per rank, every schedule's bubble beside the closed forms, the
    SM-split curve, IB/NVLink bytes per node, memory per GPU and the provenance of every input. A
    co-design study file (scenarios/codesign.yaml) gets every study beside its base (results kept in
    DIR/<name>/results.parquet, so a rerun only runs what is missing)."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from reports.provenance import provenance
    from reports.training_report import schedules_document, training_document
    from sim.experiments.codesign import is_codesign
    from sim.experiments.study import run_study
    from sim.run import simulate, simulate_training

    if scenario is not None and is_codesign(scenario):
        from sim.cli.codesign import codesign_report
        from sim.yamlio import read_yaml

        name = read_yaml(scenario).get("name")  # (a mapping: is_codesign says so; the name checked as loaded)
        check_name_fits(name if isinstance(name, str) else "", output, "the report goes to", str(scenario))
        codesign_report(scenario, output, quiet, ["twin", *ARGV])
        return
    sc = load_scenario(scenario or default_scenario_path())
    check_name_fits(sc.name, output, "the report goes to", sc.source_path)
    check_output_folder(output / sc.name, owner="report", writes=("report.html", "report.md", "figures/"))
    prov = provenance(sc, ["twin", *ARGV])
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with progress_bar(*columns, TimeElapsedColumn(), disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("building the step", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        if sc.training is None:
            result = simulate(sc, progress=lambda name: progress(f"simulating {name}", 0, 1))
            check_report_figures(sc, result.to_dict())
            progress("drawing", 0, 1)
            doc = schedules_document(result, prov)
        else:
            run = simulate_training(sc, progress)
            check_report_figures(sc, run.to_dict())  # (before its variants run)
            study = run_study(run, lambda what, done, total: progress(f"variants: {what}", done, total))
            check_report_figures(sc, {"study": study_figures(study)})
            progress("drawing the figures", 0, 1)
            doc = training_document(run, study, prov)
        target = output / sc.name
        progress("writing the report", 0, 1)
        with owned_outputs(target, "report") as tmp:
            doc.write_html(tmp / "report.html")
            doc.write_markdown(tmp, figures="figures")
    if not quiet:  # (a path is never read as markup)
        out.print(f"report written to {target / 'report.html'} (and report.md)", soft_wrap=True, markup=False)
