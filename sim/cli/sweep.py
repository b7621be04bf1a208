"""``twin sweep`` (run a sweep file, resumable) and ``twin compare`` (best points and Pareto front)."""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from sim import compiled
from sim.cli.common import (
    Format,
    Int,
    checking_points,
    err,
    file_name,
    input_file_option,
    one_printable_line,
    out,
    output_file_option,
    plot_file_option,
    progress_bar,
)
from sim.errors import ScenarioError
from sim.sweep.point import METRIC_BY_NAME, METRICS, reported_rank_note

if TYPE_CHECKING:
    from sim.sweep.compare import Comparison
    from sim.sweep.screen import Screened

MAX_WORKERS = 1024
Workers = Int(1, MAX_WORKERS)
Top = Int(1, 100_000)


def sweep_cmd(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML (base scenario + grid and/or points)")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            parser=file_name,
            metavar="<path>",
            help="results Parquet \\[default: out/<sweep name>.parquet]",
            callback=output_file_option,
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", parser=Workers, help="local processes \\[default: the CPUs]")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="dask.distributed scheduler address (tcp://host:8786) instead of local"),
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="discard the rows already in the output")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="run again the points recorded as errors")
    ] = False,
    best: Annotated[
        int | None,
        typer.Option(
            "--best",
            parser=Top,
            help="only the best K points, exactly: a lower bound of every point first (chunks alone, free "
            "sends), then the steps in order of it until no other can do better (docs/sweeps.md)",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="figure --best ranks by: step_time_s, gpu_hours_per_T or tokens_per_day \\[default: step_time_s]",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress, no summary line")] = False,
) -> None:
    """Run every point of a sweep (validated first), in parallel, appending each row as it completes;
    a rerun skips the points already done. Infeasible and failed points are recorded with their reason."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sim.experiments.run_sweep import sweeps_a_run
    from sim.sweep.pool import default_workers
    from sim.sweep.runner import run_sweep
    from sim.sweep.spec import load_sweep

    if scheduler is not None and workers is not None:
        raise ScenarioError("--workers", "local processes only; a dask cluster has its own workers")
    if scheduler is not None:
        from sim.sweep.runner import check_scheduler

        scheduler = check_scheduler(scheduler)  # before anything is read or run
    if by is not None and best is None:  # (given, even as the default: it would do nothing)
        raise ScenarioError("--by", "ranks the points of --best; give --best K (twin compare ranks a whole sweep)")
    by = "step_time_s" if by is None else by
    if restart and retry_failed:
        raise ScenarioError("--retry-failed", "nothing to retry: --restart discards every row, failed or not")
    if best is not None:
        from sim.sweep.screen import check_by

        check_by(by)
    if sweeps_a_run(sweep_file):
        raise ScenarioError(
            "base", "names a run file (it has phases): sweep a run with twin plan run SWEEP.yaml", str(sweep_file)
        )
    with checking_points(quiet) as progress:
        sweep = load_sweep(sweep_file, progress)
    if output is None:  # the default names its files by the sweep's name: refused naming that key
        import os

        from sim.outputs import NAME_BYTES
        from sim.sweep.store import journal_path, screening_path

        default = Path("out") / f"{sweep.name}.parquet"
        longest = journal_path(screening_path(default) if best is not None else default).name  # the longest beside
        if len(os.fsencode(longest)) > NAME_BYTES:
            journal = longest[len(sweep.name) :]
            message = (
                f"{len(os.fsencode(sweep.name)):,} bytes, too long for out/<name>.parquet and its journal "
                f"out/<name>{journal} (a file name has at most {NAME_BYTES} bytes); give a shorter name or -o FILE"
            )
            raise ScenarioError("name", message, str(sweep_file))
    target = output or Path("out") / f"{sweep.name}.parquet"
    if target.suffix != ".parquet":
        raise ScenarioError("--output", f"must be a Parquet file (.parquet), got {str(target)!r}")
    n = workers or default_workers()
    where = f"dask at {scheduler}" if scheduler else f"{n} local process{'es' if n > 1 else ''}"
    built = None if quiet or scheduler else compiled.stale()  # (dask workers load what their hosts have)
    if built is not None:
        err.print(
            f"{sweep.name}: its points run from the sources: the compiled builds in {built} are of other "
            "sources (twin compile builds these: the 1,000-point benchmark sweep about 1.5x faster)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    elif not quiet and not scheduler and compiled.missing(len(sweep.points)):
        err.print(
            f"{sweep.name}: its {len(sweep.points):,} points run from the sources; twin compile (once per version "
            "of the sources, about a minute and a half) runs them about 1.5x faster, with the same figures",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
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
    with (
        _folder_for(target),
        progress_bar(*columns, disable=not live) as bar,
    ):

        def stage(name: str, open_ended: bool = False) -> Callable[[int, int, int], None]:
            """A progress callback; ``open_ended``: the stage stops when it knows enough (--best's steps),
            so it shows a count, not a share of the points it might run."""
            task = bar.add_task(f"{name} on {where}", total=None, rate="", failed="")
            step = [0]

            def progress(done: int, total: int, failed: int) -> None:
                t = bar.tasks[task]
                if open_ended:
                    if not live and not quiet and done and done % 10 == 0:  # a log line per 10
                        err.print(f"{name}: {done} run ({failed} not ok)", highlight=False, markup=False)
                elif not live and not quiet and total and done * 10 // total > step[0]:  # a log line per 10%
                    step[0] = done * 10 // total
                    err.print(f"{name}: {done}/{total} points ({failed} not ok)", highlight=False, markup=False)
                rate = done / t.elapsed if t.elapsed and done else 0.0
                bar.update(
                    task,
                    completed=done,
                    total=None if open_ended else total,
                    rate=f"{rate:.2f} points/s" if rate else "",
                    failed=f"{failed} not ok" if failed else "",
                )

            return progress

        if best is not None:
            from sim.sweep.screen import best_of

            names = {"screening": f"{sweep.name} bounds", "shared": f"{sweep.name} steps"}
            screened = best_of(
                sweep, target, best, by, n, scheduler, restart, retry_failed, lambda s: stage(names[s], s == "shared")
            )
        else:
            outcome = run_sweep(sweep, target, n, scheduler, restart, retry_failed, stage(sweep.name))
    if best is not None:
        if not quiet:
            _print_screened(sweep.name, screened, best, by, target)
        return
    if not quiet:
        skipped = f", {outcome.skipped} already done" if outcome.skipped else ""
        skipped += run_again(outcome.stale)
        failed = f" ({outcome.failed} infeasible or failed: see the status and error columns)" if outcome.failed else ""
        shown = one_printable_line(str(target))  # (a newline or an escape code in the path: one line, inert)
        out.print(f"{sweep.name}: {outcome.ran} point(s) run{skipped}{failed} -> {shown}", soft_wrap=True, markup=False)


@contextmanager
def _folder_for(target: Path) -> Iterator[None]:
    """The output's folder, made if missing, and removed again (with the folders made for it) when the
    sweep stops with nothing written there: a refused sweep (an unreachable scheduler, another sweep's
    rows, a serving sweep given --best) leaves no empty folder behind."""
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # the deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # rows were written there (a stopped sweep keeps them), or it is gone
                break
        raise


def _print_screened(name: str, screened: Screened, k: int, by: str, target: Path) -> None:
    """What --best ran and why the rest need not run (sim.sweep.screen)."""
    from sim.sweep.screen import check_by

    smaller = check_by(by) > 0  # smaller is better
    total = screened.shared.total
    ran = screened.shared.ran + screened.shared.skipped  # points whose step is in the output, this run's and earlier
    unbounded = total - screened.bounded
    out.print(
        f"{name}: {screened.bounded} of {total} points bounded"
        + (f" ({unbounded} infeasible or failed: their steps run first)" if unbounded else "")
        + run_again(screened.screening.stale, "bound")
        + f" -> {one_printable_line(str(screened.screening_output))}",
        soft_wrap=True,
        markup=False,
    )
    not_ok = (
        f"; {screened.steps_not_ok} of their steps infeasible or failed, not ranked" if screened.steps_not_ok else ""
    )
    not_ok += run_again(screened.shared.stale, "step", nested=True)
    if not screened.best:
        shown = one_printable_line(str(target))
        out.print(f"{name}: no point's step ran ok ({ran} run{not_ok}) -> {shown}", soft_wrap=True, markup=False)
        return
    kth = screened.best[-1][1]
    if screened.next_bound is None:
        why = "every point ran"
    else:
        best_possible = "smallest" if smaller else "largest"
        side = "at least" if smaller else "at most"
        why = (
            f"the {total - ran} not run cannot do better: the {best_possible} {by} each could reach is {side} "
            f"{screened.next_bound:.6g}, the K-th best is {kth:.6g}"
        )
    out.print(
        f"{name}: the best {len(screened.best)} by {by}, exact: {ran} of {total} points' steps run ({why}{not_ok}) "
        f"-> {one_printable_line(str(target))}; twin compare {one_printable_line(str(target))} --by {by} --top {k}",
        soft_wrap=True,
        markup=False,
    )


def run_again(stale: int, what: str = "", nested: bool = False) -> str:
    """The clause saying how many rows read back another revision of the twin computed, or from other
    input files (run again: ``Store.stale``), or nothing: ``, 3 bounds run again (computed by ...)``;
    ``what`` the rows are [default: unnamed]; ``nested``: inside a parenthesis already (``twin sweep``
    and ``twin report``'s co-design study say it alike)."""
    if not stale:
        return ""
    why = "computed by another revision of the twin or from other input files"
    rows = f" {what}{'s' if stale > 1 else ''}" if what else ""
    return f"{';' if nested else ','} {stale}{rows} run again" + (f", {why}" if nested else f" ({why})")


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
        if 1e3 <= abs(value) < 1e15:  # whole numbers with separators (one form in a column: 83,600 and 125,707)
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


LABEL_MIN = 24  # the label column wraps (at its spaces) down to this width before a figure is left out
LABEL_WORD_MAX = 32  # or to its longest key=value part, up to this (a longer one, a path, is folded)
TABLE_EDGES = (3, 1)  # rich's table: each column adds its two padding spaces and a rule, plus the left rule


def _natural(column: str, rows: list[dict[str, object]]) -> int:
    return max([len(column)] + [len(_cell(r[column])) for r in rows])


def _label_word(rows: list[dict[str, object]]) -> int:
    """The label's longest word (a key=value part) up to LABEL_WORD_MAX, or its whole width if less."""
    words = [min(len(w), LABEL_WORD_MAX) for r in rows for w in _cell(r["label"]).split()]
    return min(_natural("label", rows), max([1, *words]))


def _pieces(word: str) -> list[str]:
    """A label's word in the pieces it may be broken into: after each dot of its key
    (``training.`` ``microbatch_sequences=7``), never inside a value."""
    return re.findall(r"[^.]*\.|[^.]+", word) or [word]


def _label_floor(rows: list[dict[str, object]]) -> int:
    """The narrowest the label goes where the kept columns leave it less than :func:`_label_min`: its
    longest piece (:func:`_pieces`) up to LABEL_WORD_MAX (a longer one, a path, is folded)."""
    pieces = [min(len(p), LABEL_WORD_MAX) for r in rows for w in _cell(r["label"]).split() for p in _pieces(w)]
    return min(_natural("label", rows), max([1, *pieces]))


def wrap_label(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters: broken at its spaces, a longer word after the
    dots of its key (:func:`_pieces`), a longer piece (a path) folded; every character kept."""
    lines: list[str] = []
    for line in textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [text]:
        if len(line) <= width:
            lines.append(line)
            continue
        current = ""
        for piece in _pieces(line):
            if current and len(current) + len(piece) > width:
                lines.append(current)
                current = ""
            while len(piece) > width:  # (a path, longer than LABEL_WORD_MAX)
                lines.append(piece[:width])
                piece = piece[width:]
            current += piece
        lines.append(current)
    return "\n".join(lines)


def _label_min(rows: list[dict[str, object]]) -> int:
    """The narrowest the label column goes before a figure is left out: LABEL_MIN, or its longest word
    (:func:`_label_word`), or its whole width if less."""
    return min(_natural("label", rows), max(LABEL_MIN, _label_word(rows)))


def _table_width(columns: list[str], rows: list[dict[str, object]], label: int) -> int:
    """The width of a table of ``columns`` with every figure whole and the label ``label`` wide."""
    per_column, edge = TABLE_EDGES
    widths = [label if c == "label" else _natural(c, rows) for c in columns]
    return sum(widths) + per_column * len(columns) + edge


def _label_width(columns: list[str], rows: list[dict[str, object]], width: int) -> int:
    """The label's width in a table of ``columns`` in ``width`` characters: what the other columns (each
    whole) leave it, up to its whole width, down to :func:`_label_floor`: narrower than that, the table
    is printed wider than the terminal instead."""
    if "label" not in columns:
        return 0
    left = width - _table_width([c for c in columns if c != "label"], rows, 0) - TABLE_EDGES[0]
    return min(_natural("label", rows), max(_label_floor(rows), left))


def fit_columns(columns: list[str], rows: list[dict[str, object]], keep: set[str], width: int) -> list[str]:
    """The columns of a table that fit in ``width`` characters, in their order: every column of ``keep``
    (the point and the ranked figures) whole, the label wrapped down to :func:`_label_min`, then each
    other figure, most important first, while it fits whole. A number is never cut: a column that does not
    fit is left out (and said so), never shortened; where even the kept ones do not fit, the label is
    broken further (:func:`_label_width`), and past that the table is wider than ``width``
    (:func:`_print_table`)."""
    label = _label_min(rows)
    chosen = [c for c in columns if c in keep or c == "label"]
    for col in columns:
        if col not in chosen:
            trial = [c for c in columns if c in chosen or c == col]
            if _table_width(trial, rows, label) <= width:
                chosen = trial
    return chosen


def _table(title: str, columns: list[str], rows: list[dict[str, object]], label: int) -> Table:
    """The table, each figure's column as wide as its widest cell (never wrapped), the label's ``label``
    wide (:func:`wrap_label`: every character kept, a value never broken)."""
    table = Table(title=Text(title))  # (Text: a name or a value such as [dualpipe] is never read as markup)
    for col in columns:
        if col == "label":
            table.add_column(col, justify="left", no_wrap=True, width=label)
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=_natural(col, rows))
    for row in rows:
        table.add_row(*(Text(wrap_label(_cell(row[c]), label) if c == "label" else _cell(row[c])) for c in columns))
    return table


def _print_table(title: str, columns: list[str], rows: list[dict[str, object]], keep: set[str]) -> None:
    """The table in the terminal's width, the columns of ``keep`` whole and the others left out where
    they do not fit (and named); where even the kept ones do not, the table is printed wider than the
    terminal, uncropped: rich would shrink every column to fit, cutting numbers (408,122 as 40)."""
    shown = fit_columns(columns, rows, keep, out.width)
    label = _label_width(shown, rows, out.width)
    table = _table(title, shown, rows, label)
    need = _table_width(shown, rows, label)
    if need > out.width:
        table.width = need
    out.print(table, crop=False)
    left = [c for c in columns if c not in shown]
    if left:
        out.print(
            f"not shown at {out.width} columns: {', '.join(left)} (a wider terminal, COLUMNS=N, or --format json "
            "shows them)",
            highlight=False,
        )


def plot_title(name: str, result: Comparison) -> str:
    """The title of ``twin compare --plot``: the sweep's name, and, where some of its points never ran
    (a ``--best`` output, a sweep stopped before its end: :attr:`Comparison.partial`), how many did, as
    the tables say: the plot shows only those."""
    if not result.partial:
        return name
    return f"{name}: only {result.ran} of {result.points} points ran\n(the points not run are not plotted)"


def compare_cmd(
    results: Annotated[Path, typer.Argument(help="results of twin sweep (.parquet)", callback=input_file_option)],
    by: Annotated[
        str | None,
        typer.Option(
            "--by", help="figure to rank by \\[default: step_time_s; a serving sweep's: goodput_requests_per_s]"
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="second figure of the Pareto front \\[default: cost_per_T_usd, or step time; serving: ttft_p99_s]",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", parser=Top, help="best points shown")] = 10,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="also draw the two figures of every ok point, the front and the best point (.png, .svg, .pdf)",
            callback=plot_file_option,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """The best points of a sweep by one figure, and the Pareto front of two (step time, cost per
    trillion tokens, memory headroom ...); infeasible and failed points are counted, not ranked."""
    from sim.sweep.compare import compare, load_results, points_in_sweep, serving

    for name, flag in ((by, "--by"), (against, "--against")):  # a misspelt figure before the file is read
        if name is not None:
            _metric(name, flag)
    frame, meta = load_results(results)
    served = serving(frame)
    by = _metric(by or ("goodput_requests_per_s" if served else "step_time_s"), "--by")
    if against is None:
        against = ("ttft_p99_s" if by != "ttft_p99_s" else "goodput_requests_per_s") if served else None
    second = _metric(against or ("cost_per_T_usd" if by != "cost_per_T_usd" else "step_time_s"), "--against")
    if second == by:
        raise ScenarioError("--against", f"must differ from --by ({by})")
    result = compare(frame, by, second, top, points_in_sweep(meta))
    if plot is not None:  # only when asked: a pipe or a script gets the tables and nothing else
        from reports.compare_plot import plot_pareto

        plot_pareto(frame, result, plot, title=plot_title(str(meta.get("name", results.stem)), result))
    notes = [n for n in (reported_rank_note(by), reported_rank_note(second)) if n is not None]
    if fmt is Format.json:
        print(json.dumps(result.to_dict() | {"plot": str(plot) if plot is not None else None, "notes": notes}))
        return
    m = METRIC_BY_NAME[by]
    direction = "lower" if m.better == "min" else "higher"
    if result.partial:  # a --best output or a stopped sweep: what is ranked is not the whole sweep
        out.print(
            f"{result.ran} of {result.points} points ran (a twin sweep --best output, or a sweep stopped before "
            "its end): the points not run are in no table and on no front",
            highlight=False,
        )
    of = f"the {result.ok} that ran" if result.partial else str(result.ok)
    title = f"best {len(result.best)} of {of} by {m.label} ({direction} is better)"
    _print_table(title, result.columns, result.best, {"point", by, second})
    front = "Pareto front of the points that ran" if result.partial else "Pareto front"
    front_title = f"{front}: {by} vs {second} ({len(result.front)} points)"
    _print_table(front_title, result.front_columns, result.front, {"point", by, second})
    if result.not_ok:
        out.print(f"{result.not_ok} point(s) infeasible or failed are not ranked (status and error columns)")
    costed = "cost_per_T_usd" in (by, second, *result.columns)
    for points, why in ((result.unpriced, "hardware cost not modelled (cost_note column)"), (result.uncosted, "")):
        if points and costed:
            out.print(
                f"{len(points)} ok point(s) have no cost_per_T_usd{', ' + why if why else ' (no cost_note says why)'}"
                f", and are not ranked or on a front by it: {', '.join(str(p) for p in points[:10])}"
                + (" ..." if len(points) > 10 else ""),
                highlight=False,
            )
    for name, points in result.missing.items():  # (dropped from the front without a word, before)
        where = "ranked last and on no front" if name == by else "on no front by it"
        out.print(
            f"{len(points)} ok point(s) have no {name}, {where}: {', '.join(str(p) for p in points[:10])}"
            + (" ..." if len(points) > 10 else ""),
            highlight=False,
        )
    for note in notes:
        out.print(f"note: {note}", highlight=False)
    if plot is not None:
        shown = one_printable_line(str(plot))  # (one line, inert)
        out.print(f"plot written to {shown}", highlight=False, soft_wrap=True, markup=False)  # a path is never folded
