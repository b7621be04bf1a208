"""``twin validate SCENARIO``: check a scenario file without running it (what a run would refuse,
validate refuses, with the same line); ``twin check NAME``: the twin beside DeepSeek's trace
(``trace``), every published figure (``published``), DeepEP's test setting (``deepep``) and the
trace's kernels (``kernels``), as tables (the data from :mod:`sim.experiments`, rendered by
:mod:`reports`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sim.assemble import assemble
from sim.cli.common import Format, checking_points, input_file_option, out, output_file_option, status
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.outputs import atomic_write_text

CHECKS = ("trace", "published", "deepep", "kernels")

check_app = typer.Typer(
    no_args_is_help=True,
    help="The twin beside measured and published figures: DeepSeek's trace, every published figure, "
    "DeepEP's test setting, the trace's kernels.",
)


def validate_cmd(
    scenario: Annotated[Path, typer.Argument(help="scenario, sweep, co-design or run YAML")],
) -> None:
    """Check a file without running it: everything its command would refuse is refused here, with the
    same one-line error; on success one line says what it would run. A scenario: the layout (a serve
    scenario: its pools); a sweep, co-design or run file (what ``twin sweep``, ``twin report`` and
    ``twin plan run`` take): its points, each checked against the scenario schema as they check it."""
    from sim.config import Scenario, scenario_data
    from sim.serve.spec import ServeScenario, is_serve_data
    from sim.yamlio import read_yaml

    raw = read_yaml(scenario, "scenario")
    # a plan file by its keys, unless it has a scenario's sections (then a stray key is the scenario's error)
    sections = (set(Scenario.model_fields) | set(ServeScenario.model_fields) | {"set"}) - {"name", "description"}
    if (
        isinstance(raw, dict)
        and any(k in raw for k in ("studies", "grid", "points", "phases"))
        and not any(k in raw for k in sections)
    ):
        _validate_plan(scenario, raw)
        return
    if is_serve_data(scenario_data(scenario)[0]):
        _validate_serve(scenario)
        return
    from sim.run import check_bound_finite

    asm = assemble(load_scenario(scenario))  # what twin run builds, without simulating: the same refusals
    check_bound_finite(asm)  # (its overflow, from a lower bound of the step)
    sc, lay = asm.scenario, asm.layout
    if lay is not None:
        split = (f"TP {lay.tp}, " if lay.tp > 1 else "") + (f"CP {lay.cp}, " if lay.cp > 1 else "")
        out.print(
            f"{scenario}: ok (training step {sc.name!r}: {lay.gpus} GPUs = {lay.devices} {sc.pipeline.schedules[0]} "
            f"ranks x {lay.gpus_per_rank}, {split}EP {lay.ep}, DP {lay.dp}, {lay.microbatches} micro-batches of "
            f"{lay.tokens} tokens)",
            soft_wrap=True,
            markup=False,  # one line, however long the name
        )
        return
    out.print(
        f"{scenario}: ok (scenario {sc.name!r}, {len(sc.pipeline.schedules)} schedule(s))", soft_wrap=True, markup=False
    )


def _validate_serve_bound(sc: Any, d: Any) -> None:
    """``twin serve``'s overflow refused here without the traffic, against :data:`sim.run.EDGE` as the
    run's figures are (a NIC of 1e-300 Gb/s): the decode floor as the run computes it (the first thing
    it does), and with traffic a lower bound of the forwards its capacity figures time at each pool's
    batch limit (:func:`sim.serve.capacity.capacity`): a prefill of half the pool's max_batch_tokens
    (the least a full rank holds: the budget, the whole prompts that fit it, or one longer prompt) for
    one request with nothing cached, and a decode step of one request."""
    from sim.run import check_finite
    from sim.serve.floor import decode_floor
    from sim.serve.forward import Shape

    figures: dict[str, Any] = {}
    if sc.serve.floor is not None:
        figures["decode_floor"] = decode_floor(sc, d)
    for role, pool in d.pools.items() if sc.serve.traffic is not None else ():
        m = pool.model
        if role in ("prefill", "colocated"):
            tokens = max(1, pool.spec.max_batch_tokens // 2)
            figures[f"{role} forward of {tokens} tokens (least)"] = m.forward(Shape("prefill", tokens, 1, 0)).time_s
        if role in ("decode", "colocated"):
            figures[f"{role} step of one request (least)"] = m.forward(Shape("decode", m.query_tokens, 1, 1)).time_s
    check_finite(sc, figures)


def _validate_plan(path: Path, raw: dict[str, object]) -> None:
    """A co-design (``studies``), run (``phases``) or sweep file (``grid``/``points``; of a run file or
    of a scenario), loaded as the command that runs it loads it: every point well formed. Whether a
    point fits its GPUs is decided when it runs (an infeasible point is a row, not an error of the file)."""
    if "studies" in raw:
        from sim.experiments.codesign import load_codesign

        cd = load_codesign(path)
        n = len(cd.sweep.points)
        what = f"co-design file {cd.name!r}: {len(cd.studies)} studies, {n} distinct points; twin report {path}"
    elif "phases" in raw:
        from sim.experiments.run_plan import load_run, plan_steps

        spec = load_run(path)
        plan = plan_steps(spec, path, layouts=True)
        what = (
            f"run file {spec.name!r}: {len(spec.phases)} phases, {len(plan.steps)} distinct steps; twin plan run {path}"
        )
    else:
        from sim.experiments.run_sweep import load_run_sweep, sweeps_a_run

        if sweeps_a_run(path):
            rs = load_run_sweep(path)
            what = (
                f"sweep {rs.name!r} of the run file {os.path.normpath(rs.run_path)}: {len(rs.points)} points, "
                f"{len(rs.steps())} distinct steps; twin plan run {path}"
            )
        else:
            from sim.sweep.spec import load_sweep

            with checking_points() as progress:
                sw = load_sweep(path, progress)
            keys = ", ".join(sw.keys) if sw.keys else "no keys"
            what = f"sweep {sw.name!r}: {len(sw.points)} points over {keys}; twin sweep {path}"
    out.print(f"{path}: ok ({what})", soft_wrap=True, markup=False)


def _validate_serve(path: Path) -> None:
    from sim.serve.deployment import build, check_files
    from sim.serve.spec import load_serve

    sc = load_serve(path)
    d = build(sc)  # what twin serve builds before the traffic: the same refusals
    check_files(sc)  # (and its trace read, as twin serve reads it)
    _validate_serve_bound(sc, d)
    pools = ", ".join(
        f"{role} {p.units} x {p.model.gpus} GPUs (EP {p.model.gpus}, attention TP {p.model.tp} x DP {p.model.dp}, "
        f"{p.placement.redundant} redundant experts, {p.spec.kernels} kernels)"
        for role, p in d.pools.items()
    )
    out.print(f"{path}: ok (serve scenario {sc.name!r}: {pools})", soft_wrap=True, markup=False)


def _markdown_file_option(ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` of a Markdown table's ``-o``: a writable ``.md`` file, checked before the table is built."""
    if value is not None and value.suffix != ".md":
        raise ScenarioError("--output", f"must be a Markdown file (.md), got {str(value)!r}")
    return output_file_option(ctx, param, value)


MarkdownOut = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="write the Markdown table to this .md file \\[default: stdout]",
        callback=_markdown_file_option,
    ),
]


def _write_markdown(name: str, output: Path | None, build: Callable[[Callable[[str], None]], str]) -> None:
    with status(f"checking {name}") as spinner:
        text = build(lambda what: spinner.update(f"checking {name}: {what}"))
    if output is None:
        print(text, end="")
    else:
        atomic_write_text(output, text)
        out.print(f"written to {output}", soft_wrap=True, markup=False)


@check_app.command("trace")
def check_trace(
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="calibration profile \\[default: calibrate/profiles/h800.json]",
            callback=input_file_option,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Predict DeepSeek's traced F&B chunk pair and print it beside the trace: span, the 10
    annotations, stream busy and hidden fractions."""
    from sim.cli.chunk import print_validation, trace_validation
    from sim.hardware.profile import DEFAULT_PROFILE

    if profile is not None:
        _refuse_other_gpu(profile)
    v = trace_validation(profile or DEFAULT_PROFILE)
    if fmt is Format.json:
        print(json.dumps(v))
    else:
        print_validation(v)


def _refuse_other_gpu(profile: Path) -> None:
    """DeepSeek's trace ran on H800s: a profile of another GPU (a B200's) would print that GPU's
    prediction as the twin's beside the H800's trace, so it is refused, naming --profile."""
    from sim.config import read_for
    from sim.hardware.gpu import H800, datasheet_for
    from sim.hardware.profile import load_profile

    with read_for("--profile", "calibration profile"):
        name = load_profile(profile).device.name
    if datasheet_for(name) is not H800:
        raise ScenarioError(
            "--profile",
            f"{profile.name} is a profile of the {name}, but DeepSeek's trace ran on {H800.name}s: its prediction "
            f"beside the trace would compare two GPUs; give an {H800.name} profile (calibrate/profiles/h800.json, "
            "h800-trace.json or h800-datasheet.json)",
        )


@check_app.command("published")
def check_published(output: MarkdownOut = None) -> None:
    """Every published figure beside the twin's: the table of docs/validation.md
    (twin check published -o docs/validation.md regenerates it)."""

    def build(progress: Callable[[str], None]) -> str:
        from calibrate.trace_figures import trace_figures
        from reports.validation import validation_document
        from sim.experiments.published import published_figures

        return validation_document(published_figures(trace_figures(), progress)).to_markdown()

    _write_markdown("published", output, build)


@check_app.command("deepep")
def check_deepep(output: MarkdownOut = None) -> None:
    """DeepEP's published test setting as the twin predicts it: the table of docs/deepep.md."""

    def build(progress: Callable[[str], None]) -> str:
        from reports.deepep_table import document as deepep_document
        from sim.experiments.deepep_table import rows

        return deepep_document(rows()).to_markdown()

    _write_markdown("deepep", output, build)


@check_app.command("kernels")
def check_kernels(output: MarkdownOut = None) -> None:
    """The trace's kernels beside the cost model's H100-based predictions: the table of
    docs/calibration.md."""

    def build(progress: Callable[[str], None]) -> str:
        from calibrate.trace_figures import kernel_means
        from reports.trace_kernels import document as kernel_document
        from sim.experiments.trace_validation import kernel_rows

        return kernel_document(kernel_rows(kernel_means())).to_markdown()

    _write_markdown("kernels", output, build)
