"""``twin schedules ...``: show, check, compare, plot and trace pipeline schedules."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sim.cli.common import (
    Float,
    Format,
    Int,
    as_flag,
    check_printed,
    given_on_command_line,
    input_file_option,
    name_list,
    out,
    output_file_option,
    plot_file_option,
    refuse_given,
)
from sim.errors import DeadlockError, LayoutError, ScenarioError
from sim.limits import MAX_BYTES, MAX_MICROBATCHES, MAX_PP, MAX_RATE, MAX_TIME, MAX_VIRTUAL_STAGES, check_schedule_size
from sim.outputs import atomic_write, atomic_write_text
from sim.pipeline.costs import OpTimes, first_short_pair, takes_no_time
from sim.pipeline.execute import P2P, ScheduleRun
from sim.pipeline.notation import format_schedule, parse_lines, schedule_from_actions
from sim.pipeline.ops import Op
from sim.pipeline.schedules import COMPARED, SCHEDULES, build_schedule, most_devices, virtual_stages_used
from sim.pipeline.validate import InvalidSchedule, check_schedule
from sim.results import ScheduleMetrics, metrics
from sim.run import compare, run_schedule
from sim.yamlio import MAX_JSON_BYTES, read_text

schedules_app = typer.Typer(no_args_is_help=True, help="Pipeline schedules: list, show, check, compare, plot, trace.")


class ShowFormat(StrEnum):
    torch = "torch"
    text = "text"
    json = "json"


Name = Annotated[str, typer.Argument(help=f"schedule: {', '.join(SCHEDULES)}")]
PP = Annotated[
    int,
    typer.Option(
        "--pp", parser=Int(1, MAX_PP), help="model stages (devices = PP, or PP/2 for the V-shaped dualpipev and zbv)"
    ),
]
Micro = Annotated[
    int, typer.Option("--microbatches", "-n", parser=Int(1, MAX_MICROBATCHES), help="micro-batches per step")
]
VStages = Annotated[
    int,
    typer.Option(
        "--virtual-stages",
        parser=Int(1, MAX_VIRTUAL_STAGES),
        help="chunks per device for interleaved-1f1b, interleaved-zb, interleaved-1f1b-overlap and looped-bfs",
    ),
]
FTime = Annotated[
    float, typer.Option("--f", parser=Float(0, MAX_TIME), help="forward time of one stage (any unit; output uses it)")
]
BTime = Annotated[float, typer.Option("--b", parser=Float(0, MAX_TIME), help="full backward time of one stage")]
WTime = Annotated[float, typer.Option("--w", parser=Float(0, MAX_TIME), help="weight-gradient part of B (I = B - W)")]
FBTime = Annotated[
    float | None, typer.Option("--fb", parser=Float(0, MAX_TIME), help="overlapped F&B pair time \\[default: F + B]")
]
P2PBytes = Annotated[
    float, typer.Option("--p2p-bytes", parser=Float(0, MAX_BYTES), help="bytes per stage-to-stage transfer")
]
P2PBw = Annotated[
    float | None,
    typer.Option(
        "--p2p-bandwidth",
        parser=Float(0, MAX_BYTES * MAX_RATE, lo_open=True),
        help="link bandwidth, bytes per time unit \\[default: infinite]",
    ),
]
P2PLat = Annotated[float, typer.Option("--p2p-latency", parser=Float(0, MAX_TIME), help="link latency, time units")]


def _times(pp: int, f: float, b: float, w: float, fb: float | None, names: list[str], n: int, v: int) -> OpTimes:
    """Uniform op times; W (part of B, at most B) only where one of the schedules ``names`` splits B
    into I and W: elsewhere --w cannot be given, and its default does not bound --b. A step of no time
    (--f and --b both 0: every figure 0, the bubble ratio 0/0) is refused, and so is an F&B pair shorter
    than its longer part (--fb below max(--f, --b), as a scenario's ops.overlapped_ms; the two rules:
    :func:`sim.pipeline.costs.takes_no_time`, :func:`~sim.pipeline.costs.first_short_pair`)."""
    if takes_no_time((f,), (b,)):
        raise ScenarioError(
            "--f",
            "a step of no time: --f and --b are both 0, so the step time, bubbles and activations would all be 0 "
            "(the bubble ratio 0/0); give times above 0",
        )
    if fb is not None and first_short_pair((f,), (b,), (fb,)) is not None:
        raise ScenarioError(
            "--fb",
            f"an overlapped F&B pair cannot take less than its longer part: {fb:g} is below max(--f {f:g}, --b {b:g}); "
            f"give at least {max(f, b):g} (--f + --b, {f + b:g}: no overlap)",
        )
    if w > b and not any({Op.I, Op.W} & _ops(_build(name, pp, n, v)) for name in names):
        w = 0.0
    times = OpTimes.uniform(pp, f, b, w, fb)
    try:
        times.validate(pp)
    except ScenarioError as e:
        raise ScenarioError("--" + e.key_path, e.message) from None
    return times


# the least nonzero op time each picture can show, in time units: a trace writes microseconds to 3
# decimals (1 time unit = 1 ms: 1e-6 units is its 1 ns; below half of it a span's ts and dur round to
# 0); a chart cannot draw an axis across a step at the edge of floating point (matplotlib takes a range
# under about 1e-287 as empty), so times below 1 / sim.run.EDGE, the edge the run's checks name, are refused
TRACE_RESOLUTION = 1e-6
PLOT_RESOLUTION = 1e-100


def _refuse_unshown(
    f: float, b: float, w: float, fb: float | None, name: str, pp: int, n: int, v: int, least: float, why: str
) -> None:
    """Refuse a nonzero op time of schedule ``name`` below ``least`` time units, the least the picture
    shows (``why``), naming the flag that gives it: F, B, the F&B pair, and where the schedule splits B,
    W and I = B - W."""
    times = [("--f", f, f"{f:g}", ""), ("--b", b, f"{b:g}", "")]
    if {Op.I, Op.W} & _ops(_build(name, pp, n, v)):
        i_part = f"the input-gradient part I = --b - --w = {b - w:g}"
        times += [("--w", w, f"{w:g}", ""), ("--b", b - w, i_part, " (or --w equal to --b: no I)")]
    if fb is not None:
        times.append(("--fb", fb, f"{fb:g}", ""))
    for flag, time, shown, other in times:
        if 0 < time < least:
            raise ScenarioError(flag, f"{shown} is too short to show: {why}; give {least:g} or more{other}")


LOST = 2.0**-40  # an op time below this fraction of a transfer's keeps under 13 bits when added to the step's times


def _refuse_long_transfer(nbytes: float, bandwidth: float, latency: float, f: float, b: float) -> None:
    """Refuse a stage-to-stage transfer longer than any time may be (:data:`MAX_TIME`), or so long beside an
    op that the op is lost in floating point when added to the step's times: 1e18 bytes at 1 byte a time
    unit printed a step of 4.6e19 with every device's bubble 1.0 and no activation held at the last."""
    moving = nbytes / bandwidth if nbytes > 0 else 0.0
    transfer = moving + latency
    if transfer > MAX_TIME:
        flag, given = ("--p2p-latency", f"{latency:g}") if latency >= moving else ("--p2p-bytes", f"{nbytes:g} bytes")
        how = f" at --p2p-bandwidth {bandwidth:g}" if flag == "--p2p-bytes" else ""
        why = f"{given}{how}: a transfer of {transfer:g} time units, over the {MAX_TIME:g} a time may be"
        raise ScenarioError(flag, f"{why}; give values nearer to real ones")
    for op, time in (("--f", f), ("--b", b)):  # (the ops every schedule runs; --w and --fb: not all)
        if 0 < time < transfer * LOST:
            why = f"{time:g} is below 2^-40 of a transfer of {transfer:g} time units, so the step's sums keep"
            raise ScenarioError(op, f"{why} under 13 bits of it; give op and transfer times nearer to each other")


def _size(pp: int, n: int, v: int) -> None:
    """Refuse a schedule too large to build or run here (see sim.limits)."""
    check_schedule_size(pp, n, v, "--microbatches")


def _build(name: str, pp: int, n: int, v: int):  # type: ignore[no-untyped-def]
    _size(pp, n, virtual_stages_used(name, v))
    try:
        return build_schedule(name, pp, n, v)
    except LayoutError as e:
        raise as_flag(e) from None


def _run_one(name: str, pp: int, n: int, v: int, times: OpTimes, p2p: P2P) -> ScheduleRun:
    _size(pp, n, virtual_stages_used(name, v))
    try:
        return run_schedule(name, pp, n, times, p2p, v)
    except LayoutError as e:
        raise as_flag(e) from None


def _ops(sched) -> set[Op]:  # type: ignore[no-untyped-def]
    """The kinds of op a schedule runs (an overlapped pair's parts too)."""
    ops: set[Op] = set()
    for acts in sched.actions:
        for a in acts:
            ops.add(a.op)
            ops.update(p.op for p in a.parts or ())
    return ops


def _refuse_unused(ctx: typer.Context, names: list[str], pp: int, n: int, v: int) -> None:
    """A flag given on the command line that none of the schedules ``names`` uses is refused, naming
    it (as a scenario refuses such keys: sim.config): --virtual-stages where no schedule splits a device
    into virtual stages, --w where none splits B into I and W, --fb where none overlaps an F&B pair."""
    from sim.config import VIRTUAL_STAGE_SCHEDULES

    given = given_on_command_line(ctx)
    which = ", ".join(names)
    if "virtual_stages" in given and not VIRTUAL_STAGE_SCHEDULES & set(names):
        raise ScenarioError(
            "--virtual-stages",
            f"not used by {which} (only {', '.join(sorted(VIRTUAL_STAGE_SCHEDULES))} splits a device into virtual "
            "stages); remove it",
        )
    if not {"w", "fb"} & given:
        return
    ops: set[Op] = set()
    for name in names:
        ops |= _ops(_build(name, pp, n, v))
    if "w" in given and not {Op.I, Op.W} & ops:
        raise ScenarioError("--w", f"not used by {which} (no action splits B into I and W); remove it")
    if "fb" in given and Op.FB not in ops:
        raise ScenarioError("--fb", f"not used by {which} (no action overlaps a forward and a backward); remove it")


@schedules_app.command("list")
def list_schedules() -> None:
    """List the registered schedules."""
    for info in SCHEDULES.values():
        out.print(f"[bold]{info.name}[/bold]: {info.summary}")


@schedules_app.command()
def show(
    ctx: typer.Context,
    name: Name,
    pp: PP = 8,
    microbatches: Micro = 20,
    virtual_stages: VStages = 2,
    fmt: Annotated[ShowFormat, typer.Option("--format", help="torch (action lists), text or json")] = ShowFormat.torch,
) -> None:
    """Print a schedule's per-device action lists (torch notation: one line per device)."""
    sched = _build(name, pp, microbatches, virtual_stages)
    _refuse_unused(ctx, [name], pp, microbatches, virtual_stages)
    if fmt is ShowFormat.torch:
        print(format_schedule(sched))
    elif fmt is ShowFormat.text:
        for d, acts in enumerate(sched.actions):
            print(f"device {d:>2}: " + " ".join(str(a) for a in acts))
    else:
        print(
            json.dumps(
                {
                    "name": sched.name,
                    "pp": sched.pp,
                    "devices": sched.num_devices,
                    "microbatches": microbatches,
                    "stage_device": list(sched.stage_device),
                    "actions": [[str(a) for a in acts] for acts in sched.actions],
                }
            )
        )


@schedules_app.command()
def check(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="registered schedule (or use --file)")] = None,
    pp: PP = 8,
    microbatches: Micro = 20,
    virtual_stages: VStages = 2,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="action lists in torch notation, one line per device", callback=input_file_option),
    ] = None,
) -> None:
    """Prove a schedule valid: complete, dependencies respected, no deadlock."""
    if file is not None:
        refuse_given(
            ctx, ("name", "pp", "microbatches", "virtual_stages"), "not used with --file (its lines are the schedule)"
        )
        text = read_text(file, "schedule", MAX_JSON_BYTES)
        try:
            sched = schedule_from_actions(parse_lines(text, str(file)), name=file.stem)
        except ScenarioError as err:  # (the lines' stages: the file's, though read off all of it)
            raise (err if err.file else err.with_file(str(file))) from None
    elif name is not None:
        sched = _build(name, pp, microbatches, virtual_stages)
        _refuse_unused(ctx, [name], pp, microbatches, virtual_stages)
    else:
        raise ScenarioError("NAME", "give a schedule name or --file")
    try:
        check_schedule(sched)
    except (InvalidSchedule, DeadlockError) as err:  # a file's schedule: the error names the file
        if file is None:
            raise
        raise ScenarioError("", str(err), str(file)) from None
    routes = ""
    if file is not None and len(sched.routes) == 2:  # (read off the file: DualPipe's two directions)
        first, second = sched.routes
        routes = f"; two directions, stages {first[0]}..{first[-1]} and {second[0]}..{second[-1]}"
    out.print(f"{sched.name}: valid ({sched.num_devices} devices, {sched.num_actions()} actions{routes})", markup=False)


def _print_table(rows: tuple[ScheduleMetrics, ...], unit: str = "") -> None:
    table = Table(title="pipeline schedules")
    suffix = f" ({unit})" if unit else ""
    for col in (
        "schedule",
        "devices",
        f"step time{suffix}",
        f"max bubble{suffix}",
        "bubble ratio",
        "peak act.",
        "params",
    ):
        table.add_column(col, justify="left" if col == "schedule" else "right", no_wrap=col == "schedule")

    def num(x: float) -> str:  # exact values in abstract units (the DualPipe table), 4 decimals in seconds
        return f"{x:.4f}" if unit == "s" else f"{x:.6g}"

    for m in rows:
        table.add_row(
            m.name,
            str(m.devices),
            num(m.step_time),
            num(max(m.bubble)),
            f"{max(m.bubble_ratio):.3f}",
            f"{max(m.peak_activations):.6g}",
            f"{m.param_copies:g}x",
        )
    out.print(table)


@schedules_app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    pp: PP = 8,
    microbatches: Micro = 20,
    f: FTime = 1.0,
    b: BTime = 2.0,
    w: WTime = 1.0,
    fb: FBTime = None,
    virtual_stages: VStages = 2,
    schedules: Annotated[str, typer.Option("--schedules", help="comma-separated names")] = ",".join(COMPARED),
    p2p_bytes: P2PBytes = 0.0,
    p2p_bandwidth: P2PBw = None,
    p2p_latency: P2PLat = 0.0,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Run schedules on the same layout and op times; report step time, bubbles, memory."""
    names = name_list(schedules, "--schedules", SCHEDULES, "schedule")
    _size(pp, microbatches, max(virtual_stages_used(name, virtual_stages) for name in names))
    times = _times(pp, f, b, w, fb, names, microbatches, virtual_stages)
    if most_devices(names, pp) == 1:  # (no stage-to-stage send: no transfer; a scenario's p2p keys alike)
        why = f"not used: {', '.join(names)} at --pp {pp} run(s) on one device, so nothing is sent between stages"
        refuse_given(ctx, ("p2p_bytes", "p2p_bandwidth", "p2p_latency"), why)
    if p2p_bandwidth is not None and p2p_bytes == 0:
        why = "not used: no bytes are sent (--p2p-bytes is 0); give them, or remove it"
        raise ScenarioError("--p2p-bandwidth", why)
    if p2p_bytes > 0 and p2p_bandwidth is None:
        why = "not used: the link's bandwidth is infinite (no --p2p-bandwidth), so the bytes take no time; give it, or "
        why += "remove it"
        raise ScenarioError("--p2p-bytes", why)
    bandwidth = float("inf") if p2p_bandwidth is None else p2p_bandwidth
    _refuse_long_transfer(p2p_bytes, bandwidth, p2p_latency, f, b)
    try:
        _, rows = compare(names, pp, microbatches, times, P2P(p2p_bytes, bandwidth, p2p_latency), virtual_stages)
    except LayoutError as e:
        hint = " (leave that schedule out with --schedules)" if len(names) > 1 else ""
        raise ScenarioError("--" + e.key_path.replace("_", "-"), e.message + hint) from None
    _refuse_unused(ctx, names, pp, microbatches, virtual_stages)
    flags = {"f": f, "b": b, "w": w, "fb": fb, "p2p_bytes": p2p_bytes, "p2p_bandwidth": p2p_bandwidth}
    check_printed({"schedules": [m.to_dict() for m in rows]}, flags | {"p2p_latency": p2p_latency})
    if fmt is Format.json:
        print(json.dumps({"schedules": [m.to_dict() for m in rows]}))
    else:
        _print_table(rows)


@schedules_app.command()
def plot(
    ctx: typer.Context,
    name: Name,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG/SVG/PDF path", callback=plot_file_option)],
    pp: PP = 8,
    microbatches: Micro = 20,
    f: FTime = 1.0,
    b: BTime = 2.0,
    w: WTime = 1.0,
    fb: FBTime = None,
    virtual_stages: VStages = 2,
) -> None:
    """Draw the per-device timeline (Gantt chart) of a schedule."""
    from reports.gantt import plot_gantt

    _refuse_unused(ctx, [name], pp, microbatches, virtual_stages)
    times = _times(pp, f, b, w, fb, [name], microbatches, virtual_stages)
    why = "a chart's time axis cannot span a step at the edge of floating point (it drew an empty axis)"
    _refuse_unshown(f, b, w, fb, name, pp, microbatches, virtual_stages, PLOT_RESOLUTION, why)
    run = _run_one(name, pp, microbatches, virtual_stages, times, P2P())
    check_printed(metrics(run).to_dict(), {"f": f, "b": b, "w": w, "fb": fb})
    atomic_write(output, lambda p: plot_gantt(run, p, time_unit="time units"))
    out.print(f"wrote {output}", markup=False)


@schedules_app.command()
def trace(
    ctx: typer.Context,
    name: Name,
    output: Annotated[Path, typer.Option("--output", "-o", help="trace JSON path", callback=output_file_option)],
    pp: PP = 8,
    microbatches: Micro = 20,
    f: FTime = 1.0,
    b: BTime = 2.0,
    w: WTime = 1.0,
    fb: FBTime = None,
    virtual_stages: VStages = 2,
) -> None:
    """Write a Chrome/Perfetto trace (one process per pipeline rank, as ``twin run`` writes them); 1 time
    unit = 1 ms in the viewer."""
    from sim.step.spec import StepRun
    from sim.step.timeline import perfetto_trace, timeline

    if output.suffix.lower() != ".json":  # (plot draws by the extension; a trace is JSON whatever its name)
        raise ScenarioError(
            "--output", f"{output.name}: a trace is JSON: name it .json (a picture: twin schedules plot)"
        )
    _refuse_unused(ctx, [name], pp, microbatches, virtual_stages)
    times = _times(pp, f, b, w, fb, [name], microbatches, virtual_stages)
    why = (
        "the trace writes times in microseconds to 3 decimals (1 time unit = 1 ms), so a span under "
        f"{TRACE_RESOLUTION:g} time units (1 ns) is written with dur 0"
    )
    _refuse_unshown(f, b, w, fb, name, pp, microbatches, virtual_stages, TRACE_RESOLUTION, why)
    run = _run_one(name, pp, microbatches, virtual_stages, times, P2P())
    check_printed(metrics(run).to_dict(), {"f": f, "b": b, "w": w, "fb": fb})
    trace = perfetto_trace(timeline(StepRun.of_schedule(run)), f"{name} PP{pp} N{microbatches}", time_scale_us=1e3)
    atomic_write_text(output, json.dumps(trace))
    out.print(f"wrote {output} ({metrics(run).step_time:g} time units)", markup=False)
