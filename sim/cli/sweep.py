"""``twin sweep`` (run a sweep file, resumable) and ``twin compare`` (best points and Pareto front)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sim.cli.common import Format, Int, err, input_file_option, out, output_file_option, plot_file_option
from sim.errors import ScenarioError
from sim.sweep.point import METRIC_BY_NAME, METRICS

MAX_WORKERS = 1024
Workers = Int(1, MAX_WORKERS)
Top = Int(1, 100_000)


def sweep_cmd(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML (base scenario + grid and/or points)")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="results Parquet [default: out/<sweep name>.parquet]", callback=output_file_option
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", parser=Workers, help="local processes [default: the CPUs]")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="dask.distributed scheduler address (tcp://host:8786) instead of local"),
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="discard the rows already in the output")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="run again the points recorded as errors")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run every point of a sweep (validated first), in parallel, appending each row as it completes;
    a rerun skips the points already done. Infeasible and failed points are recorded with their reason."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sim.sweep.runner import default_workers, run_sweep
    from sim.sweep.spec import load_sweep

    if scheduler is not None and workers is not None:
        raise ScenarioError("--workers", "local processes only; a dask cluster has its own workers")
    sweep = load_sweep(sweep_file)
    target = output or Path("out") / f"{sweep.name}.parquet"
    if target.suffix != ".parquet":
        raise ScenarioError("--output", f"must be a Parquet file (.parquet), got {str(target)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    n = workers or default_workers()
    where = f"dask at {scheduler}" if scheduler else f"{n} local process{'es' if n > 1 else ''}"
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    live = err.is_terminal and not quiet
    with Progress(*columns, console=err, transient=True, disable=not live) as bar:
        task = bar.add_task(f"{sweep.name} on {where}", total=None, rate="", failed="")
        step = [0]

        def progress(done: int, total: int, failed: int) -> None:
            t = bar.tasks[0]
            if not live and not quiet and total and done * 10 // total > step[0]:  # a log line per 10%
                step[0] = done * 10 // total
                err.print(f"{sweep.name}: {done}/{total} points ({failed} not ok)", highlight=False)
            rate = done / t.elapsed if t.elapsed and done else 0.0
            bar.update(
                task,
                completed=done,
                total=total,
                rate=f"{rate:.2f} points/s" if rate else "",
                failed=f"{failed} not ok" if failed else "",
            )

        outcome = run_sweep(sweep, target, n, scheduler, restart, retry_failed, progress)
    if not quiet:
        skipped = f", {outcome.skipped} already done" if outcome.skipped else ""
        failed = f" ({outcome.failed} infeasible or failed: see the status and error columns)" if outcome.failed else ""
        out.print(f"{sweep.name}: {outcome.ran} point(s) run{skipped}{failed} -> {target}")


def _metric(name: str, flag: str) -> str:
    if name not in METRIC_BY_NAME:
        raise ScenarioError(flag, f"unknown figure {name!r}; choose from {', '.join(m.name for m in METRICS)}")
    return name


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1e5:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def _table(title: str, columns: list[str], rows: list[dict[str, object]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col == "label" else "right")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    return table


def compare_cmd(
    results: Annotated[Path, typer.Argument(help="results of twin sweep (.parquet)", callback=input_file_option)],
    by: Annotated[str, typer.Option("--by", help="figure to rank by")] = "step_time_s",
    against: Annotated[
        str | None,
        typer.Option("--against", help="second figure of the Pareto front [default: cost_per_T_usd, or step time]"),
    ] = None,
    top: Annotated[int, typer.Option("--top", parser=Top, help="best points shown")] = 10,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="scatter of the two figures with the front [default: beside the results]",
            callback=plot_file_option,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """The best points of a sweep by one figure, and the Pareto front of two (step time, cost per
    trillion tokens, memory headroom ...); infeasible and failed points are counted, not ranked."""
    from sim.sweep.compare import compare, load_results

    _metric(by, "--by")
    second = _metric(against or ("cost_per_T_usd" if by != "cost_per_T_usd" else "step_time_s"), "--against")
    if second == by:
        raise ScenarioError("--against", f"must differ from --by ({by})")
    frame, meta = load_results(results)
    result = compare(frame, by, second, top)
    target = plot or results.with_name(f"{results.stem}-{by}-vs-{second}.png")
    from reports.compare_plot import plot_pareto

    plot_pareto(frame, result, target, title=str(meta.get("name", results.stem)))
    if fmt is Format.json:
        print(json.dumps(result.to_dict() | {"plot": str(target)}))
        return
    m = METRIC_BY_NAME[by]
    direction = "lower" if m.better == "min" else "higher"
    out.print(
        _table(
            f"best {len(result.best)} of {result.ok} by {m.label} ({direction} is better)", result.columns, result.best
        )
    )
    out.print(
        _table(f"Pareto front: {by} vs {second} ({len(result.front)} points)", result.front_columns, result.front)
    )
    if result.not_ok:
        out.print(f"{result.not_ok} point(s) infeasible or failed are not ranked (status and error columns)")
    out.print(f"plot written to {target}")
