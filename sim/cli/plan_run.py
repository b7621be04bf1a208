"""``twin plan run FILE``: a whole training run (a run file), or a sweep of one (a sweep file whose base
is a run file), as a table, JSON, and with ``-o DIR`` its data and report.

A run writes ``run.json``, ``report.html``, ``report.md`` and ``figures/`` to ``DIR``; a sweep writes
``sweep.json``, ``steps.parquet`` (every distinct step's row: a rerun with the same ``-o`` simulates only
the steps not yet there), ``report.html``, ``report.md`` and ``figures/``. Written as the other
reports are (:func:`sim.outputs.owned_outputs`): all at once, replacing only what an earlier
``twin plan run`` wrote there, nothing on failure; a folder of files twin did not write is refused
before anything is simulated.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sim.cli.common import ARGV, Format, err, out

OWNER = "plan-run"  # the owner of the files in DIR (sim.outputs.owned_outputs)


def _provenance(files: list[tuple[str, Path]], base: Path) -> list[tuple[str, str]]:
    from reports.document import literal
    from reports.provenance import provenance, sha256
    from sim.config import load_scenario
    from sim.paths import shown

    rows = [(what, f"`{literal(shown(path))}` (sha256 `{sha256(path)}`)") for what, path in files]
    return rows + provenance(load_scenario(base), ["twin", *ARGV])


def run_file(path: Path, output: Path | None, fmt: Format, quiet: bool) -> None:
    """A run file: simulate its distinct steps, integrate, print, write (module docstring)."""
    from sim.experiments.run_plan import integrate, load_run, plan_steps, simulate_steps, summary
    from sim.outputs import check_output_folder
    from sim.run import check_figures_finite

    spec = load_run(path)
    if output is not None:
        check_output_folder(output, owner=OWNER, writes=("report.html", "report.md", "run.json", "figures/"))
    plan = plan_steps(spec, path, layouts=True)

    def progress(n: int) -> None:
        if not quiet:  # (stderr: JSON on stdout is untouched; -q silences it)
            err.print(f"{n} distinct step(s) simulated")

    results, groups = integrate(plan, simulate_steps(plan, progress))
    data = summary(spec, results, groups)
    check_figures_finite(str(path), spec.model_dump(), data)  # before anything is printed or written
    if output is not None:
        from reports.training_run_report import run_document

        doc = run_document(data, _provenance([("run file", path)], plan.base_path))
        _write(output, {"run.json": data}, doc)
    _show(data, fmt, quiet, output, _print_run, "run.json and the report")


def sweep_file(path: Path, output: Path | None, fmt: Format, quiet: bool, workers: int | None, restart: bool) -> None:
    """A sweep of a run: every point planned, every distinct step simulated once, each point integrated."""
    from sim.experiments.run_sweep import load_run_sweep, simulate_sweep_steps, sweep_summary
    from sim.outputs import claim_output_folder
    from sim.run import check_figures_finite
    from sim.sweep.pool import default_workers

    rs = load_run_sweep(path)
    if restart and output is None:
        from sim.errors import ScenarioError

        raise ScenarioError("--restart", "discards the steps kept in DIR/steps.parquet: give -o DIR")
    steps = None
    if output is not None:
        # the steps' results stay there while they run (resumable)
        writes = ("sweep.json", "report.html", "report.md", "figures/")
        claim_output_folder(output, owner=OWNER, keeps=("steps.parquet",), writes=writes)
        steps = output / "steps.parquet"

    def progress(done: int, total: int) -> None:
        if not quiet and total:
            err.print(f"{done}/{total} distinct step(s) simulated")

    rows, ran = simulate_sweep_steps(rs, steps, workers or default_workers(), restart, progress)
    data = sweep_summary(rs, rows, ran)
    check_figures_finite(str(path), {"points": [p.plan.spec.model_dump() for p in rs.points]}, data)
    if output is not None and steps is not None:
        from reports.training_run_report import sweep_document

        prov = _provenance([("sweep file", path), ("run file", rs.run_path)], rs.points[0].plan.base_path)
        _write(output, {"sweep.json": data}, sweep_document(data, prov), steps)
    _show(data, fmt, quiet, output, _print_sweep, "sweep.json, steps.parquet and the report")


def _show(
    data: dict[str, Any],
    fmt: Format,
    quiet: bool,
    output: Path | None,
    table: Callable[[dict[str, Any]], None],
    written: str,
) -> None:
    """The figures on stdout: JSON, or the table (none under -q when -o holds it) and where it went."""
    if fmt is Format.json:
        print(json.dumps(data))
        return
    if quiet and output is not None:
        return
    table(data)
    if output is not None:
        out.print(f"{written} written to {output / 'report.html'} (and report.md)", soft_wrap=True, markup=False)


def _write(output: Path, files: dict[str, Any], doc: Any, steps: Path | None = None) -> None:
    from sim.outputs import owned_outputs

    with owned_outputs(output, OWNER) as tmp:
        for name, data in files.items():
            (tmp / name).write_text(json.dumps(data, indent=1), encoding="utf-8")
        if steps is not None:
            shutil.copy2(steps, tmp / steps.name)
        doc.write_html(tmp / "report.html")
        doc.write_markdown(tmp, figures="figures")


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _usd(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x / 1e6:,.3f}M"


def _run_table(title: str, names: tuple[str, ...], shown: list[str], rows: list[tuple[Any, ...]]) -> Table:
    """The run's table with the columns ``shown``: numbers never wrapped nor cut, a phase's name and the
    published figure wrapped between words ('2,664K' over '(+8.2%)')."""
    table = Table(title=Text(f"{title}: the whole run"), box=box.SIMPLE_HEAD, show_edge=False)  # (Text: no markup)
    for col in shown:
        cells = [str(r[names.index(col)]) for r in rows]
        if col in ("phase", "published"):
            word = max(len(w) for c in [col, *cells] for w in c.split() or [""])
            table.add_column(col, justify="right" if col == "published" else "left", min_width=word)
        else:
            widest = max(map(len, [col, *cells]))
            table.add_column(col, justify="left" if col == "batch" else "right", no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*(row[names.index(col)] for col in shown))
    return table


def _print_run(data: dict[str, Any]) -> None:
    rows: list[tuple[Any, ...]] = []

    def published(value: float | None, got: float) -> str:
        return "-" if value is None else f"{value / 1e3:,.0f}K ({got / value - 1:+.1%})"

    for p in data["phases"]:
        rows.append(
            (
                Text(p["name"]),
                _span(p["batches"]),
                f"{p['steps']:,.0f}",
                f"{p['tokens'] / 1e12:.3f}T",
                f"{p['days']:.2f}",
                f"{p['gpu_hours'] / 1e3:,.1f}K",
                published(p.get("published_gpu_hours"), p["gpu_hours"]),
                _usd(p["usd"]),
                f"{p['mfu']:.1%}",
            )
        )
    for g in data["groups"]:
        gpu_hours = f"{g['gpu_hours'] / 1e3:,.1f}K"
        published_g = published(g["published_gpu_hours"], g["gpu_hours"])
        rows.append((Text(g["name"]), "", "", "", "", gpu_hours, published_g, "", ""))
    t = data["total"]
    tokens, days, gpu_hours = f"{t['tokens'] / 1e12:.3f}T", f"{t['days']:.2f}", f"{t['gpu_hours'] / 1e3:,.1f}K"
    rows.append(("total", "", "", tokens, days, gpu_hours, "", _usd(t["usd"]), ""))
    names = ("phase", "batch", "steps", "tokens", "days", "GPU-h", "published", "USD", "MFU")
    shown = list(names)
    table = _run_table(data["run"], names, shown, rows)

    def need(t: Table) -> int:  # the least width the table takes, however wide the terminal
        return Measurement.get(out, out.options.update(max_width=1 << 16), t).minimum

    for dropped in ("USD", "MFU", "published"):  # a number is never cut: a column that does not fit is left out
        if need(table) <= out.width:
            break
        shown.remove(dropped)
        table = _run_table(data["run"], names, shown, rows)
    if need(table) > out.width:  # (even the kept columns do not fit: wider than the terminal, nothing cut)
        table.width = need(table)
    out.print(table, crop=False)
    left = [c for c in names if c not in shown]
    if left:
        why = "a wider terminal, COLUMNS=N, or --format json shows them"
        out.print(f"not shown at {out.width} columns: {', '.join(left)} ({why})", highlight=False)
    if "lost_days" in t:
        out.print(
            f"failures (apart from the figures above): {t['lost_days']:.2f} days and "
            f"{t['lost_gpu_hours'] / 1e3:,.1f}K GPU-hours expected lost ({t['lost_days'] / t['days']:.1%} of the days)"
        )
    out.print("USD: GPU-hours at the base's price and the fabric's share (sim/economics.py)")


def _print_sweep(data: dict[str, Any]) -> None:
    """Every point's totals (per phase: --format json, or the report of -o DIR)."""
    lost = any("lost_days" in (p["total"] or {}) for p in data["points"])
    table = Table(title=Text(f"{data['sweep']}: {len(data['points'])} runs of {data['base']}"))
    words = [len(w) for p in data["points"] for w in p["label"].split()]
    for col in ("#", "run", "days", "GPU-h", "USD", *(("lost days",) if lost else ())):
        if col == "run":  # wrapped at its spaces, never inside a key=value
            table.add_column(col, overflow="fold", min_width=min(40, max(words, default=3)))
        else:
            table.add_column(col, justify="left" if col == "#" else "right", no_wrap=True)
    for p in data["points"]:
        t = p["total"]
        if t is None:
            table.add_row(str(p["point"]), Text(p["label"]), p["status"], Text(p["error"]), "", *([""] if lost else []))
            continue
        cells = [f"{t['days']:.2f}", f"{t['gpu_hours'] / 1e3:,.1f}K", _usd(t["usd"])]
        if lost:
            cells.append("-" if "lost_days" not in t else f"{t['lost_days']:.2f}")
        table.add_row(str(p["point"]), Text(p["label"]), *cells)
    out.print(table)
    out.print(
        f"{data['steps']} distinct step(s) for all the points, {data['simulated']} simulated now; "
        "USD: GPU-hours at the base's price and the fabric's share (sim/economics.py)"
    )
