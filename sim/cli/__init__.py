"""The ``twin`` command: thin commands over sim.run / sim.results and reports.

Every user error (bad scenario, impossible layout, invalid schedule) prints one line
``error: <file>: <key>: <what is allowed>`` to stderr and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.calibrate import calibrate_app
from sim.cli.chunk import chunk_cmd, print_validation, validate_trace
from sim.cli.common import Format, err, input_file_option, invoke, out, output_dir_option
from sim.cli.moe import alltoall_cmd, balance_cmd
from sim.cli.network import collective_cmd, topology_app
from sim.cli.schedules import _print_table, schedules_app
from sim.config import default_scenario_path, load_scenario
from sim.errors import ScenarioError
from sim.outputs import atomic_dir
from sim.results import chrome_trace, spans_frame
from sim.run import simulate

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="clustertwin: a discrete-event twin of a GPU training cluster.",
)
app.add_typer(schedules_app, name="schedules")
app.add_typer(topology_app, name="topology")
app.add_typer(calibrate_app, name="calibrate")
app.command("collective")(collective_cmd)
app.command("alltoall")(alltoall_cmd)
app.command("balance")(balance_cmd)
app.command("chunk")(chunk_cmd)


@app.command()
def run(
    scenario: Annotated[Path | None, typer.Argument(help="scenario YAML [default: the embedded default]")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the report")] = Path("out"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Simulate a scenario and write its report (Markdown, JSON, Parquet, Gantt PNGs, Perfetto traces)."""
    from reports.gantt import plot_gantt
    from reports.markdown import schedule_report

    sc = load_scenario(scenario or default_scenario_path())
    with err.status("simulating") as status:
        result = simulate(sc, progress=lambda name: status.update(f"simulating {name}"))
        target = output / sc.name
        with atomic_dir(target) as tmp:
            figures = {}
            for r in result.runs:
                status.update(f"drawing {r.schedule.name}")
                png = f"gantt-{r.schedule.name}.png"
                plot_gantt(r, tmp / png, time_unit="s")
                figures[r.schedule.name] = png
                (tmp / f"trace-{r.schedule.name}.json").write_text(json.dumps(chrome_trace(r)))
            frames = [spans_frame(r).assign(schedule=r.schedule.name) for r in result.runs]
            import pandas as pd

            pd.concat(frames, ignore_index=True).to_parquet(tmp / "spans.parquet", index=False)
            (tmp / "summary.json").write_text(json.dumps(result.to_dict(), indent=2))
            (tmp / "report.md").write_text(schedule_report(result, figures))
    if not quiet:
        _print_table(result.metrics, unit="s")
        out.print(f"report written to {target / 'report.md'}")


@app.command()
def validate(
    scenario: Annotated[
        Path, typer.Argument(help="scenario YAML, or 'trace' to check the twin against DeepSeek's trace")
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
) -> None:
    """Check a scenario file without running it; ``twin validate trace`` predicts DeepSeek's F&B chunk
    pair and prints it beside the trace (span, the 10 annotations, stream busy and hidden fractions)."""
    if str(scenario) == "trace" and not scenario.exists():
        from sim.hardware.profile import DEFAULT_PROFILE

        v = validate_trace(profile or DEFAULT_PROFILE)
        if fmt is Format.json:
            print(json.dumps(v))
        else:
            print_validation(v)
        return
    if profile is not None:
        raise ScenarioError("--profile", "only for 'twin validate trace'")
    sc = load_scenario(scenario)
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
