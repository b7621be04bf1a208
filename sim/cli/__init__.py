"""The ``twin`` command: thin commands over sim.run / sim.results and reports.

Every user error (bad scenario, impossible layout, invalid schedule) prints one line
``error: <file>: <key>: <what is allowed>`` to stderr and exits with status 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sim import __version__
from sim.assemble import Assembly, assemble
from sim.cli.calibrate import calibrate_app
from sim.cli.chunk import chunk_cmd, print_validation, trace_validation
from sim.cli.common import Format, err, input_file_option, invoke, out, output_dir_option
from sim.cli.moe import alltoall_cmd, balance_cmd
from sim.cli.network import collective_cmd, topology_app
from sim.cli.report import report_cmd
from sim.cli.schedules import _print_table, schedules_app
from sim.cli.sweep import compare_cmd, sweep_cmd
from sim.config import default_scenario_path, load_scenario
from sim.errors import ScenarioError
from sim.outputs import atomic_write_text, check_output_folder, owned_outputs, write_parquet
from sim.run import simulate
from sim.step.timeline import perfetto_trace, timeline

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="clustertwin: a discrete-event twin of a GPU training cluster.",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"clustertwin {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", is_eager=True, callback=_version)
    ] = False,
) -> None:
    """clustertwin: a discrete-event twin of a GPU training cluster."""


app.add_typer(schedules_app, name="schedules")
app.add_typer(topology_app, name="topology")
app.add_typer(calibrate_app, name="calibrate")
app.command("collective")(collective_cmd)
app.command("alltoall")(alltoall_cmd)
app.command("balance")(balance_cmd)
app.command("chunk")(chunk_cmd)
app.command("sweep")(sweep_cmd)
app.command("compare")(compare_cmd)
app.command("report")(report_cmd)


@app.command()
def run(
    scenario: Annotated[Path | None, typer.Argument(help="scenario YAML [default: the embedded default]")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the report")] = Path("out"),
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Simulate a scenario and write its report: a training step (the default: DeepSeek-V3 on 2048
    H800s) or a schedule comparison (Markdown, JSON, Parquet of every span, Gantt PNG, Perfetto trace)."""
    asm = assemble(load_scenario(scenario or default_scenario_path()))  # refuses what twin validate refuses
    sc = asm.scenario
    check_output_folder(output / sc.name)
    if asm.training:
        _run_training(asm, output, fmt, quiet)
        return
    from reports.schedule_report import schedule_document

    with err.status("simulating") as status:
        result = simulate(asm, progress=lambda name: status.update(f"simulating {name}"))
        target = output / sc.name
        with owned_outputs(target, "run") as tmp:
            frames = []
            for step in result.steps:
                name = step.pipelines[0].run.schedule.name
                tl = timeline(step)
                trace = perfetto_trace(tl, f"{sc.name}: {name}")
                (tmp / f"trace-{name}.json").write_text(json.dumps(trace, separators=(",", ":")))
                frames.append(tl.spans.assign(schedule=name))
            import pandas as pd

            meta = {"twin_version": __version__, "scenario": sc.name}
            write_parquet(pd.concat(frames, ignore_index=True), tmp / "spans.parquet", meta)
            (tmp / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
            status.update("drawing the timelines")
            schedule_document(result).write_markdown(tmp, "summary.md")  # and gantt-<schedule>.png
    if fmt is Format.json:
        print(json.dumps(result.to_dict()))
    elif not quiet:
        _print_table(result.metrics, unit="s")
        out.print(f"written to {target}/ (summary.md, summary.json, spans.parquet, traces, timelines)")


def _run_training(asm: Assembly, output: Path, fmt: Format, quiet: bool) -> None:
    """Simulate the assembled training step with a progress bar, then write its report folder."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from reports.step_report import step_document
    from sim.run import simulate_training

    sc = asm.scenario
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task("building the step", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        result = simulate_training(asm, progress)
        target = output / sc.name
        bar.update(task, description="writing the report", completed=0, total=3)
        with owned_outputs(target, "run") as tmp:
            tl = timeline(result.step)
            write_parquet(tl.spans, tmp / "spans.parquet", {"twin_version": __version__, "scenario": sc.name})
            bar.advance(task)
            trace = perfetto_trace(tl, sc.name, result.step.reported_pipeline().group)
            (tmp / "trace.json").write_text(json.dumps(trace, separators=(",", ":")))
            bar.advance(task)
            summary = result.to_dict()
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
            step_document(result).write_markdown(tmp, "summary.md")  # and gantt.png
            bar.advance(task)
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    if quiet:
        return
    r = result.result
    b = r.reported
    out.print(
        f"{sc.name}: step {r.step_time_s:.3f} s | {r.tokens_per_day / 1e9:,.1f}B tokens/day | "
        f"{r.gpu_hours_per_trillion_tokens / 1e3:,.1f}K GPU-hours per trillion tokens | "
        f"MFU {r.mfu(True):.1%} causal, {r.mfu(False):.1%} non-causal"
    )
    out.print(
        f"rank {r.reported_rank}: F {b.forward_only_s:.3f} s, B/I {b.backward_only_s:.3f}, W {b.weight_only_s:.3f}, "
        f"F&B {b.overlapped_fb_s:.3f}, bubble {b.bubble_s:.3f}, optimizer {b.optimizer_s:.3f}, "
        f"DP comm {b.dp_comm_exposed_s:.3f}, wait {b.wait_s:.3f} (EP exposed inside chunks {b.ep_comm_exposed_s:.3f})"
    )
    out.print(f"written to {target}/ (summary.md, summary.json, spans.parquet, trace.json, gantt.png)")


# ``twin validate NAME``: Markdown tables of the twin beside published or traced figures (the data from
# sim.experiments, rendered by reports; the trace read by calibrate).
MARKDOWN_CHECKS = ("published", "deepep", "kernels")


def _markdown_check(name: str, progress: Callable[[str], None]) -> str:
    """The Markdown of one of :data:`MARKDOWN_CHECKS`."""
    if name == "published":
        from calibrate.trace_figures import trace_figures
        from reports.validation import validation_document
        from sim.experiments.published import published_figures

        return validation_document(published_figures(trace_figures(), progress)).to_markdown()
    if name == "deepep":
        from reports.deepep_table import document as deepep_document
        from sim.experiments.deepep_table import rows

        return deepep_document(rows()).to_markdown()
    from calibrate.trace_figures import kernel_means
    from reports.trace_kernels import document as kernel_document
    from sim.experiments.trace_validation import kernel_rows

    return kernel_document(kernel_rows(kernel_means())).to_markdown()


@app.command()
def validate(
    scenario: Annotated[
        Path,
        typer.Argument(
            help="scenario YAML; 'trace': the twin against DeepSeek's trace; 'published': every published "
            "figure (docs/validation.md); 'deepep': DeepEP's test setting (docs/deepep.md); 'kernels': the "
            "trace's kernels against H100-based predictions (docs/calibration.md)"
        ),
    ],
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="trace: calibration profile [default: calibrate/profiles/h800.json]",
            callback=input_file_option,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="published, deepep, kernels: write the Markdown here [default: stdout]"),
    ] = None,
) -> None:
    """Check a scenario file without running it; ``twin validate trace`` predicts DeepSeek's F&B chunk
    pair and prints it beside the trace (span, the 10 annotations, stream busy and hidden fractions);
    ``twin validate published -o docs/validation.md`` regenerates the table of every published figure;
    ``twin validate deepep`` and ``twin validate kernels`` print the tables of docs/deepep.md and
    docs/calibration.md."""
    if str(scenario) in MARKDOWN_CHECKS and not scenario.exists():
        if output is not None and output.suffix != ".md":
            raise ScenarioError("--output", f"must be a Markdown file (.md), got {str(output)!r}")
        with err.status("validating") as status:
            text = _markdown_check(str(scenario), lambda name: status.update(f"validating: {name}"))
        if output is None:
            print(text, end="")
        else:
            atomic_write_text(output, text)
            out.print(f"written to {output}")
        return
    if output is not None:
        raise ScenarioError("--output", "only for 'twin validate published', 'deepep' or 'kernels'")
    if str(scenario) == "trace" and not scenario.exists():
        from sim.hardware.profile import DEFAULT_PROFILE

        v = trace_validation(profile or DEFAULT_PROFILE)
        if fmt is Format.json:
            print(json.dumps(v))
        else:
            print_validation(v)
        return
    if profile is not None:
        raise ScenarioError("--profile", "only for 'twin validate trace'")
    asm = assemble(load_scenario(scenario))  # what twin run builds, without simulating: the same refusals
    sc, lay = asm.scenario, asm.layout
    if lay is not None:
        out.print(
            f"{scenario}: ok (training step {sc.name!r}: {lay.gpus} GPUs = {lay.devices} {sc.pipeline.schedules[0]} "
            f"ranks x {lay.gpus_per_rank}, EP {lay.ep}, DP {lay.dp}, {lay.microbatches} micro-batches of "
            f"{lay.tokens} tokens)"
        )
        return
    out.print(f"{scenario}: ok (scenario {sc.name!r}, {len(sc.pipeline.schedules)} schedule(s))")


def _prepare(command: object) -> None:
    """Checks attached to the click command before parsing: ``twin run -o`` must be a writable
    folder (until ``run`` declares ``callback=output_dir_option`` itself)."""
    run_cmd = getattr(command, "commands", {}).get("run")
    for param in getattr(run_cmd, "params", []):
        if param.name == "output" and param.callback is None:
            param.callback = output_dir_option


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit status 2 (sim.cli.common.invoke)."""
    raise SystemExit(invoke(app, argv, _prepare))
