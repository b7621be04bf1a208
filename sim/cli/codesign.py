"""``twin report scenarios/codesign.yaml``: run a co-design study file's points (resumable, as a sweep)
and write its report (report.html, report.md, results.parquet) to ``DIR/<name>/``."""

from __future__ import annotations

import shutil
from pathlib import Path

from sim.cli.common import err, out, progress_bar


def codesign_report(path: Path, output: Path, quiet: bool, argv: list[str]) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from reports.codesign_report import codesign_document
    from reports.document import literal
    from reports.provenance import provenance, sha256
    from sim.cli.sweep import run_again
    from sim.config import load_scenario
    from sim.experiments.codesign import load_codesign
    from sim.outputs import claim_output_folder, owned_outputs
    from sim.paths import shown
    from sim.sweep.pool import default_workers
    from sim.sweep.runner import run_sweep
    from sim.sweep.store import CACHED, Store

    spec = load_codesign(path)
    base = load_scenario(spec.sweep.base_path)
    writes = ("report.html", "report.md", "figures/")
    target = claim_output_folder(output / spec.name, owner="report", keeps=("results.parquet",), writes=writes)
    results = target / "results.parquet"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress_bar(*columns, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task(f"{spec.name}: {len(spec.sweep.points)} points", total=None)
        outcome = run_sweep(
            spec.sweep,
            results,
            workers=default_workers(),
            progress=lambda done, total, failed: bar.update(task, completed=done, total=total),
            # the results are a cache of the study file as it is now (run_sweep releases it)
            store=Store(spec.sweep, results, drop_foreign=True, fix=CACHED),
        )
        bar.update(task, description="writing the report")
        store = Store(spec.sweep, results, drop_foreign=True, fix=CACHED)
        try:
            frame = store.frame()
        finally:
            store.release()
        rows = [
            ("study file", f"`{literal(shown(path))}` (sha256 `{sha256(path)}`)"),
            ("results", "`results.parquet` beside this report: one row per distinct point (twin compare reads it)"),
            *provenance(base, argv),
        ]
        doc = codesign_document(spec, frame, rows)
        with owned_outputs(target, "report") as tmp:
            shutil.copy2(results, tmp / "results.parquet")
            doc.write_html(tmp / "report.html")
            doc.write_markdown(tmp, figures="figures")
    if not quiet:
        not_ok = int((frame["status"] != "ok").sum())
        out.print(
            f"{spec.name}: {outcome.ran} of {outcome.total} points run ({outcome.skipped} kept from "
            f"results.parquet{run_again(outcome.stale, nested=True)}"
            f"); {not_ok} of the {len(frame)} not possible or failed",
            markup=False,  # a name or a path is text: '[/w]' is no closing tag
        )
        out.print(
            f"report written to {target / 'report.html'} (and report.md, results.parquet)", soft_wrap=True, markup=False
        )
