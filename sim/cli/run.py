"""``twin run [SCENARIO]``: simulate a scenario and write its outputs to ``DIR/<scenario name>/``
(a training step: summary, spans, trace, Gantt chart; a schedule comparison: its table, spans, and a
trace and a Gantt chart per schedule). Only the files a run writes are replaced there
(:func:`sim.outputs.owned_outputs`): a report's files in the same folder stay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from sim import __version__
from sim.assemble import Assembly, assemble
from sim.cli.common import Format, Quiet, RunFormat, RunOutput, err, out, progress_bar, status
from sim.cli.schedules import _print_table
from sim.config import default_scenario_path, load_scenario
from sim.outputs import check_name_fits, check_output_folder, owned_outputs, write_parquet, written_beside
from sim.run import simulate


def run_cmd(
    scenario: Annotated[Path | None, typer.Argument(help="scenario YAML \\[default: the embedded default]")] = None,
    output: RunOutput = None,
    fmt: RunFormat = Format.table,
    quiet: Quiet = False,
) -> None:
    """Simulate a scenario and write its outputs: a training step (the default: DeepSeek-V3 on 2048
    H800s) or a schedule comparison (Markdown, JSON, Parquet of every span, Gantt PNG, Perfetto trace).
    With --format json the figures go to stdout and files are written only where -o says."""
    asm = assemble(load_scenario(scenario or default_scenario_path()))  # refuses what twin validate refuses
    sc = asm.scenario
    if output is None and fmt is not Format.json:
        output = Path("out")
    if output is not None:  # (a name too long for a folder: refused naming the key, not -o)
        check_name_fits(sc.name, output, "the outputs go to", sc.source_path)
        check_output_folder(output / sc.name, owner="run", writes=_writes(asm))
    if asm.training:
        _run_training(asm, output, fmt, quiet)
        return
    from reports.schedule_report import schedule_document

    with status("simulating", quiet) as spinner:
        result = simulate(asm, progress=lambda name: spinner.update(f"simulating {name}"))
    if output is None:  # (printed once the spinner is cleared, not under it)
        print(json.dumps(result.to_dict()))
        return
    with status("writing the outputs", quiet) as spinner:
        from sim.step.timeline import perfetto_json, timeline

        target = output / sc.name
        with owned_outputs(target, "run") as tmp:
            frames, parts = [], []
            for step in result.steps:
                name = step.pipelines[0].run.schedule.name
                tl = timeline(step)
                (tmp / f"trace-{name}.json").write_text(perfetto_json(tl, f"{sc.name}: {name}"))
                frames.append(tl.spans.assign(schedule=name))
                parts.append(tl.parts.assign(schedule=name))
            import pandas as pd

            meta = {"twin_version": __version__, "scenario": sc.name}
            write_parquet(pd.concat(frames, ignore_index=True), tmp / "spans.parquet", meta)
            # an F&B span is one row (its forward's micro-batch and stage); its two parts are here
            write_parquet(pd.concat(parts, ignore_index=True), tmp / "parts.parquet", meta)
            (tmp / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
            spinner.update("drawing the timelines")
            schedule_document(result).write_markdown(tmp, "summary.md")  # and gantt-<schedule>.png
    if fmt is Format.json:
        print(json.dumps(result.to_dict()))
    elif not quiet:
        _print_table(result.metrics, unit="s")
        out.print(
            f"written to {target}/ (summary.md, summary.json, spans.parquet, parts.parquet, traces, timelines)",
            soft_wrap=True,
            markup=False,
        )


def _writes(asm: Assembly) -> tuple[str, ...]:
    """The files ``twin run`` writes in DIR/<name>/ (checked before the work, :func:`check_output_folder`):
    a training step's summary, spans, trace and Gantt chart; a comparison's, a trace and a chart per
    schedule."""
    if asm.training:
        return ("summary.json", "summary.md", "spans.parquet", "trace.json", "gantt.png")
    per = [f"{kind}-{s.name}.{ext}" for s in asm.schedules for kind, ext in (("trace", "json"), ("gantt", "png"))]
    return ("summary.json", "summary.md", "spans.parquet", "parts.parquet", *per)


def _run_training(asm: Assembly, output: Path | None, fmt: Format, quiet: bool) -> None:
    """Simulate the assembled training step with a progress bar, then write its outputs (none when
    ``output`` is None)."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from sim.run import simulate_training

    sc = asm.scenario
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    # Refreshed by hand, at most 10 times a second: no refresh thread, so the report can be written in
    # a forked child (sim.outputs.written_beside forks only with no other thread running).
    shown = [0.0]
    with progress_bar(*columns, TimeElapsedColumn(), disable=quiet or not err.is_terminal, auto_refresh=False) as bar:
        task = bar.add_task("building the step", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)
            now = time.monotonic()
            if now - shown[0] >= 0.1 or done >= total:
                shown[0] = now
                bar.refresh()

        result = simulate_training(asm, progress)
        if output is None:
            bar.stop()  # (the bar is cleared before the figures are printed, not over them)
            print(json.dumps(result.to_dict()))
            return
        from sim.step.timeline import perfetto_json, timeline

        target = output / sc.name
        bar.update(task, description="writing the report", completed=0, total=3)
        bar.refresh()
        with owned_outputs(target, "run") as tmp:

            def document() -> None:
                from reports.step_report import step_document  # matplotlib: only where it is drawn

                step_document(result).write_markdown(tmp, "summary.md")  # and gantt.png

            with written_beside(document):  # the report and its chart beside the trace (two cores)
                tl = timeline(result.step)
                write_parquet(tl.spans, tmp / "spans.parquet", {"twin_version": __version__, "scenario": sc.name})
                bar.advance(task)
                bar.refresh()
                (tmp / "trace.json").write_text(perfetto_json(tl, sc.name, result.step.reported_pipeline().group))
                bar.advance(task)
                bar.refresh()
                summary = result.to_dict()
                (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
            bar.advance(task)
            bar.refresh()
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    if quiet:
        return
    r = result.result
    b = r.reported
    c = result.costs
    cost = "" if c.note else f" (${c.priced.usd_per_T / 1e3:,.0f}K)"  # (summary.md says why where there is none)
    out.print(
        f"{sc.name}: step {r.step_time_s:.3f} s | {r.tokens_per_day / 1e9:,.1f}B tokens/day | "
        f"{r.gpu_hours_per_trillion_tokens / 1e3:,.1f}K GPU-hours per trillion tokens{cost} | "
        f"MFU {r.mfu(True):.1%} causal, {r.mfu(False):.1%} non-causal",
        markup=False,  # the scenario's name is text
    )
    out.print(
        f"rank {r.reported_rank}: F {b.forward_only_s:.3f} s, B/I {b.backward_only_s:.3f}, W {b.weight_only_s:.3f}, "
        f"F&B {b.overlapped_fb_s:.3f}, bubble {b.bubble_s:.3f}, optimizer {b.optimizer_s:.3f}, "
        f"DP comm {b.dp_comm_exposed_s:.3f}, wait {b.wait_s:.3f} (comm exposed inside chunks {b.ep_comm_exposed_s:.3f})"
    )
    # the rank that ends the step can change between two runs that hardly differ, and its figures with it:
    # every rank's, as a mean and the worst (what a sweep's _mean columns hold, docs/sweeps.md)
    over = r.over_ranks()

    def spread(key: str) -> str:
        o = over[key]
        return f"{o['mean']:.3f} (worst {o['worst']:.3f}, rank {o['worst_rank']})"

    out.print(
        f"over the {len(r.ranks)} ranks, mean: bubble {spread('bubble_s')}, DP comm {spread('dp_comm_exposed_s')}, "
        f"comm exposed inside chunks {spread('ep_comm_exposed_s')}"
    )
    out.print(
        f"written to {target}/ (summary.md, summary.json, spans.parquet, trace.json, gantt.png)",
        soft_wrap=True,
        markup=False,
    )
