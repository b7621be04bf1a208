"""``twin calibrate ...``: build, inspect and query calibration profiles (no torch needed here)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from sim.cli.common import (
    Float,
    Format,
    Int,
    check_printed,
    err,
    flag_errors,
    given_on_command_line,
    input_file_option,
    input_files_option,
    json_file_option,
    out,
    output_file_option,
    refuse_given,
    status,
)
from sim.config import read_for
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel, fitted
from sim.hardware.gpu import DEEPSEEK_COMPUTE_SMS, DEFAULT_EFFICIENCY
from sim.hardware.profile import Profile, Sample, check_device_sms, dump_profile, load_profile
from sim.limits import MAX_BYTES, MAX_GPUS, MAX_LAYERS, MAX_SMS, MAX_TOKENS, MIN_RATE
from sim.outputs import atomic_write_text
from sim.yamlio import MAX_JSON_BYTES, read_json, read_text

if TYPE_CHECKING:
    from calibrate.nccl_tests import NcclLog

Rate = Float(MIN_RATE, 1e9)  # the profile schema's bounds on peaks (sim.limits.MIN_RATE)
Dim = Int(1, 1 << 31)
PROFILE_KEYS = ("schema_version", "device", "peaks", "samples")  # what every profile twin writes holds


def _is_profile(path: Path) -> bool:
    """Whether ``path`` holds a JSON object with the keys every profile twin writes (:data:`PROFILE_KEYS`)."""
    try:
        data = read_json(path, "profile")  # (as a profile is read: a file nested too deeply is no profile)
    except ScenarioError:
        return False
    return isinstance(data, dict) and all(k in data for k in PROFILE_KEYS)


def profile_output_option(ctx: typer.Context, param: typer.CallbackParam, value: Path) -> Path:
    """``callback=`` of a profile to write: a ``.json`` file that can be written (whether one already
    there may be replaced, :func:`_replaceable`, once the command has checked its inputs)."""
    output_file_option(ctx, param, value)
    if value.suffix.lower() != ".json":
        raise ScenarioError("--output", f"a profile is a .json file, got {value.name!r}")
    return value


def _replaceable(ctx: typer.Context, output: Path) -> None:
    """Before the work: a file already at ``output`` is replaced only if it is a profile and ``-o`` names
    it. The default name never replaces one (a measured profile was lost to ``twin calibrate datasheet``
    run in its folder), and a file that is no profile never is (a user's notes.json)."""
    if not output.exists():
        return
    if not _is_profile(output):
        raise ScenarioError("--output", f"{output} is not a twin profile; twin does not replace it: give another name")
    if "output" not in given_on_command_line(ctx):
        raise ScenarioError(
            "--output", f"{output} holds a profile already; give -o {output} to replace it, or another name"
        )


OutputProfile = Annotated[
    Path, typer.Option("--output", "-o", help="profile JSON to write", callback=profile_output_option)
]


def _write(output: Path, profile: Profile, where: str) -> None:
    """Write a profile atomically and say what it holds and how well its GEMM predictor does."""
    atomic_write_text(output, dump_profile(fitted(profile)))
    lofo = profile.lofo_error.get("gemm")
    loso = profile.loso_error.get("gemm")
    error = (
        f", GEMM leave-one-family-out median error {lofo:.1%} (M >= 512)"
        if lofo is not None
        else f", GEMM leave-one-shape-out median error {loso:.1%}"
        if loso is not None
        else ""
    )
    out.print(f"wrote {output}: {len(profile.samples)} samples {where}{error}", markup=False, highlight=False)


def _not_an_input(output: Path, inputs: list[Path], what: str) -> None:
    """Refuse an ``--output`` that is one of the files the command reads (writing the profile would
    replace it): ``--output: t.json is the trace read; give another file name``."""
    import os

    for path in inputs:
        try:
            same = os.path.samefile(output, path)
        except OSError:  # (the output does not exist yet)
            same = False
        if same:
            raise ScenarioError("--output", f"{output} is the {what} read ({path}); give another file name")


def _refuse_held(profile: Profile, files: dict[str, Path], flag: str, path: Path) -> None:
    """Refuse adding to ``profile`` (read from ``path``, given as ``flag``) a file it already holds the
    samples of (``files``: by their SHA-256): they would count twice in the fits. ``--base: already holds
    the samples of t.json (its sources list t.json)``."""
    for held in profile.sources:
        if held.sha256 in files:
            message = f"already holds the samples of {files[held.sha256]} (its sources list {held.name})"
            raise ScenarioError(flag, message, str(path))


def _reference_times(profile: Profile) -> dict[str, float]:
    """What ``profile`` times the kernels ``predict`` times by default (a 4096 x 4096 x 7168 GEMM in FP8
    and in BF16, a 1 GiB copy): each of its peaks, and its efficiency, divides one of them."""
    model = CostModel(profile)
    return {
        "fp8 GEMM time_s": model.gemm_time(4096, 4096, 7168, "fp8"),
        "bf16 GEMM time_s": model.gemm_time(4096, 4096, 7168, "bf16"),
        "1 GiB copy time_s": model.memory_time(float(1 << 30)),
    }


calibrate_app = typer.Typer(
    no_args_is_help=True,
    help="Calibration profiles: run microbenchmarks, import (a trace, measurements, nccl-tests logs), "
    "datasheet, show, predict.",
)


@calibrate_app.command("import-trace")
def import_trace(
    ctx: typer.Context,
    trace: Annotated[Path, typer.Argument(help="PyTorch-profiler Chrome trace (JSON)", callback=input_file_option)],
    output: OutputProfile = Path("profile.json"),
    compute_sms: Annotated[
        int, typer.Option("--compute-sms", parser=Int(1, MAX_SMS), help="SMs the compute kernels ran on")
    ] = DEEPSEEK_COMPUTE_SMS,
    layers: Annotated[
        int | None,
        typer.Option(
            "--layers",
            parser=Int(1, MAX_LAYERS),
            help="layers per chunk in the trace, checked against its annotations \\[default: as they show]",
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base",
            help="measured profile to add the trace's kernels to (e.g. the H100's)",
            callback=input_file_option,
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="GPU the trace ran on \\[default: the one its deviceProperties name, else H800]",
            show_default=False,
        ),
    ] = "H800",
) -> None:
    """Turn DeepSeek's profiler trace into a profile: per-op kernel times matched to the layer model
    (and per-annotation times), alone or on top of a measured --base profile."""
    from calibrate.profiles import profile_from_trace, trace_gpu, trace_source
    from sim.errors import shown
    from sim.hardware.gpu import datasheet_for, known_gpus

    if not trace.exists():
        raise ScenarioError("", "no such trace file", str(trace))
    _not_an_input(output, [trace], "trace")
    _replaceable(ctx, output)
    gpu = datasheet_for(device)
    if gpu is None:
        raise ScenarioError("--device", f"no datasheet for {device!r}; the twin knows {known_gpus()}")
    if compute_sms > gpu.sms:
        raise ScenarioError("--compute-sms", f"the {gpu.name} has {gpu.sms} SMs, got {compute_sms}")
    with read_for("--base", "calibration profile"):
        base_profile = load_profile(base) if base is not None else None
    source = None
    if base is not None and base_profile is not None:
        source = trace_source(trace)
        _refuse_held(base_profile, {source.sha256: trace}, "--base", base)
    # (the flags' own errors, then --base's, before the trace's contents are read)
    from calibrate.trace import read_trace

    data = read_trace(trace)  # (read and checked once, for all that follows)
    ran_on, ran_on_text = trace_gpu(trace, data)  # the GPU its deviceProperties name, if the twin knows it
    if ran_on is not None and "device" not in given_on_command_line(ctx):
        device = ran_on  # the GPU the trace ran on, not the default's
        gpu = datasheet_for(device) or gpu
        if compute_sms > gpu.sms:
            raise ScenarioError("--compute-sms", f"the {gpu.name} has {gpu.sms} SMs, got {compute_sms}")
    if ran_on is not None and gpu.name != ran_on:  # (its kernel times written as another GPU's profile)
        message = f"{device}, but the deviceProperties of {trace.name} name {shown(ran_on_text)!r}"
        raise ScenarioError("--device", f"{message}: give --device {ran_on} or leave it out")
    tool = f"twin calibrate import-trace {trace.name}" + (f" --base {base}" if base else "") + f" --device {device}"
    tool += f" --compute-sms {compute_sms}" if compute_sms != DEEPSEEK_COMPUTE_SMS else ""
    tool += f" --layers {layers}" if layers is not None else ""
    from calibrate.trace_calibration import TraceMismatch

    try:
        profile = profile_from_trace(
            trace, gpu, compute_sms, layers, tool=tool, base=base_profile, source=source, data=data
        )
    except TraceMismatch as e:  # an annotation the layer model cannot match: named by its event
        message = f"not DeepSeek's layer trace as the layer model knows it: {e.message}"
        raise ScenarioError(f"traceEvents[{e.event}]", message, str(trace)) from None
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, ZeroDivisionError) as e:
        raise ScenarioError(
            "traceEvents",
            f"not DeepSeek's layer trace as the layer model knows it ({type(e).__name__}: {e})",
            str(trace),
        ) from None
    atomic_write_text(output, dump_profile(fitted(profile)))
    out.print(f"wrote {output}: {len(profile.samples)} samples from {trace.name}", markup=False, highlight=False)


@calibrate_app.command("run")
def run_cmd(
    ctx: typer.Context,
    output: OutputProfile = Path("profile.json"),
    device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="tiny (CPU, seconds), quick (GPU, minutes), full \\[default: tiny on cpu, full on cuda]"
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="same as --preset quick")] = False,
    world: Annotated[
        int, typer.Option("--world", parser=Int(0, 64), help="local processes for p2p/all-to-all (0: skip)")
    ] = 2,
    comm_samples: Annotated[
        Path | None,
        typer.Option("--comm-samples", help="JSON from torchrun -m calibrate.comm", callback=input_file_option),
    ] = None,
    partial: Annotated[
        Path | None,
        typer.Option(
            "--partial", help="also write the profile so far after each benchmark here", callback=json_file_option
        ),
    ] = None,
) -> None:
    """Run the microbenchmarks through torch and write a profile (needs the calibrate extra)."""
    if quick and preset not in (None, "quick"):
        raise ScenarioError("--quick", f"conflicts with --preset {preset}")
    preset = "quick" if quick else preset or ("tiny" if device == "cpu" else "full")
    if preset not in ("tiny", "quick", "full"):
        raise ScenarioError("--preset", f"unknown preset {preset!r}; choose from tiny, quick, full")
    if device not in ("cpu", "cuda"):
        raise ScenarioError("--device", f"unknown device {device!r}; choose from cpu, cuda")
    _replaceable(ctx, output)
    if device == "cpu" and preset != "tiny":
        # the quick and full presets time GPU-sized kernels (DeepSeek-V3's GEMM shapes at up to 8,192
        # rows in the quick one, calibrate/shapes.py; tiny divides them by 64): on a CPU the whole run
        # takes far longer than anyone waits without being told (a 2-core host had not finished
        # --quick after 5 minutes)
        err.print(
            f"note: --preset {preset} times kernels sized for a GPU: on the CPU it runs for a long time; "
            "--preset tiny (the CPU's default) runs in seconds",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    try:
        from calibrate.run import merge_comm_samples, run_calibration
    except ImportError as e:
        raise ScenarioError(
            "--device", f"torch is needed for microbenchmarks: pip install -e '.[calibrate]' ({e})"
        ) from None
    with status(f"benchmarking on {device} ({preset})") as spinner:

        def progress(what: str) -> None:
            spinner.update(f"benchmarking on {device} ({preset}): {what}")

        try:

            def checkpoint(p: Profile) -> None:
                if partial is not None:
                    atomic_write_text(partial, dump_profile(fitted(p)))

            profile = run_calibration(device, preset, world, comm=world >= 2, progress=progress, checkpoint=checkpoint)
        except RuntimeError as e:
            raise ScenarioError("--device", str(e)) from None
    if comm_samples is not None:
        profile = merge_comm_samples(profile, comm_samples)
    _write(output, profile, f"on {profile.device.name}")


@calibrate_app.command("datasheet")
def datasheet(
    ctx: typer.Context,
    output: OutputProfile = Path("profile.json"),
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="a GPU with a datasheet (sim/hardware/gpu.py: H800, H100, H200, B200, GB200), or any name "
            "with every figure given",
        ),
    ] = "H800",
    sms: Annotated[
        int | None,
        typer.Option("--sms", parser=Int(1, MAX_SMS), help="the GPU's SMs, all of them \\[default: the datasheet's]"),
    ] = None,
    fp8_tflops: Annotated[
        float | None, typer.Option("--fp8-tflops", parser=Rate, help="dense \\[default: the datasheet's]")
    ] = None,
    bf16_tflops: Annotated[
        float | None, typer.Option("--bf16-tflops", parser=Rate, help="dense \\[default: the datasheet's]")
    ] = None,
    hbm_tbps: Annotated[
        float | None,
        typer.Option(
            "--hbm-tbps", "--hbm-TBps", parser=Rate, help="HBM bandwidth, TB/s (bytes) \\[default: the datasheet's]"
        ),
    ] = None,
    efficiency: Annotated[
        float, typer.Option("--efficiency", parser=Float(0, 1, lo_open=True), help="assumed fraction of peak")
    ] = DEFAULT_EFFICIENCY,
) -> None:
    """An analytical profile for any GPU from its datasheet (defaults: the named GPU's figures in
    sim.hardware.gpu)."""
    from calibrate.profiles import datasheet_profile
    from sim.hardware.gpu import GpuSpec, datasheet_for, known_gpus

    if not 0 < efficiency <= 1:
        raise ScenarioError("--efficiency", f"must be in (0, 1], got {efficiency}")
    _replaceable(ctx, output)
    if not name.strip() or name != name.strip():
        raise ScenarioError("--name", f"give a GPU name (no space around it), got {name!r}")
    known = datasheet_for(name)
    if known is not None and sms is not None and sms != known.sms:  # (a run refuses such a profile)
        message = f"the {known.name} has {known.sms} SMs (its datasheet, sim/hardware/gpu.py), got {sms}"
        raise ScenarioError("--sms", f"{message}; name another GPU, with every figure given, for another count")
    given = {"--sms": sms, "--fp8-tflops": fp8_tflops, "--bf16-tflops": bf16_tflops, "--hbm-tbps": hbm_tbps}
    if known is None and None in given.values():
        missing = next(k for k, v in given.items() if v is None)
        raise ScenarioError(
            missing, f"no datasheet for {name!r} (the twin knows {known_gpus()}): give {', '.join(given)}"
        )
    base = known or GpuSpec(name=name)
    gpu = GpuSpec(
        name=name,
        sms=sms or base.sms,
        fp8_dense_TFLOPS=fp8_tflops or base.fp8_dense_TFLOPS,
        bf16_dense_TFLOPS=bf16_tflops or base.bf16_dense_TFLOPS,
        hbm_TBps=hbm_tbps or base.hbm_TBps,
        hbm_GiB=base.hbm_GiB,
    )
    tool = f"twin calibrate datasheet --name {name}" + "".join(f" {k} {v:g}" for k, v in given.items() if v is not None)
    tool += f" --efficiency {efficiency:g}" if efficiency != DEFAULT_EFFICIENCY else ""
    profile = datasheet_profile(gpu, efficiency, tool=tool)
    check_printed(_reference_times(profile), flags={**given, "--efficiency": efficiency})
    atomic_write_text(output, dump_profile(fitted(profile)))
    out.print(f"wrote {output}", markup=False, highlight=False)


@calibrate_app.command("import-measurements")
def import_measurements_cmd(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="folder of measurement CSVs (with README.md), or one CSV")],
    output: OutputProfile = Path("profile.json"),
    device: Annotated[str, typer.Option("--device", help='GPU measured, e.g. "NVIDIA H100 80GB HBM3" (required)')] = "",
    sms: Annotated[
        int | None, typer.Option("--sms", parser=Int(1, MAX_SMS), help="SMs of that GPU \\[default: its datasheet]")
    ] = None,
) -> None:
    """Turn tables of timings taken elsewhere (GEMM, attention, HBM copy, FP8 cast, interference) into a
    profile with provenance and the predictor's errors (column names: docs/calibration.md)."""
    from calibrate.measurements import import_measurements

    if not device:
        raise ScenarioError("--device", 'name the GPU the measurements come from, e.g. "NVIDIA H100 80GB HBM3"')
    tables = [*sorted(source.glob("*.csv")), source / "README.md"] if source.is_dir() else [source]
    _not_an_input(output, tables, "measurement table")
    _replaceable(ctx, output)
    if source.is_dir() and output.resolve().is_relative_to(source.resolve()):  # (read as a table next time)
        message = f"{output} is inside the measurement folder {source}, which the next import reads; write it elsewhere"
        raise ScenarioError("--output", message)
    tool = f"twin calibrate import-measurements {source} --device {device!r}" + (f" --sms {sms}" if sms else "")
    profile = import_measurements(source, device, sms, tool=tool)
    _write(output, profile, f"from {len(profile.sources)} files")


def _check_lines(samples: list[Sample], logs: list[Path], read: list[NcclLog]) -> None:
    """Each collective at each scale the profile will hold gives an alpha-beta line to predict from
    (:func:`sim.hardware.costmodel.comm_line_problem`): rows all at one size, or times that fall as the
    size grows, were imported, and ``twin calibrate predict`` then gave a 1 GB all-reduce 21 s, or 1 TB
    the time of 1 B. Refused naming the last log with that collective and scale (else --profile)."""
    import numpy as np

    from sim.hardware.costmodel import comm_line, comm_line_problem

    groups: dict[tuple[object, ...], list[Sample]] = {}
    for s in samples:
        if s.op == "collective" and s.params.get("placement", "out-of-place") == "out-of-place":  # (as predicted)
            groups.setdefault((s.params["collective"], s.params["gpus"], s.params["nodes"]), []).append(s)
    for (collective, gpus, nodes), group in groups.items():
        sizes = np.array([float(s.params["bytes"]) for s in group])
        _, inv_beta = comm_line(sizes, np.array([s.time_s for s in group]))
        problem = comm_line_problem(sizes, inv_beta)
        if problem is None:
            continue
        log = next((str(log) for log, r in zip(logs, read, strict=True) if group[-1] in r.samples), "--profile")
        raise ScenarioError("LOGS", f"{log}: {collective} on {gpus} GPUs over {nodes} node(s): {problem}")


@calibrate_app.command("import-nccl-tests")
def import_nccl_tests_cmd(
    ctx: typer.Context,
    logs: Annotated[
        list[Path],
        typer.Argument(
            help="nccl-tests output files (all_reduce_perf, alltoall_perf, ...)", callback=input_files_option
        ),
    ],
    output: OutputProfile = Path("profile.json"),
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile", help="add the samples to this profile \\[default: a new one]", callback=input_file_option
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="GPU of a new profile \\[default: the one the logs' Rank lines name, else H800]",
            show_default=False,
        ),
    ] = "H800",
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus",
            parser=Int(1, MAX_GPUS),
            help="GPUs in the test, where the log has no Rank lines \\[default: from the Rank lines]",
        ),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            parser=Int(1, MAX_GPUS),
            help="nodes in the test, where the log has no Rank lines \\[default: from the Rank lines]",
        ),
    ] = None,
) -> None:
    """Read nccl-tests logs into communication samples (alpha-beta fitted per collective and scale)."""
    from calibrate.nccl_tests import read_log, sample_identity
    from calibrate.profiles import datasheet_profile
    from sim.hardware.gpu import datasheet_for, known_gpus

    for name, value in (("--gpus", gpus), ("--nodes", nodes)):
        if value is not None and value < 1:
            raise ScenarioError(name, f"must be >= 1, got {value}")
    if profile is not None:
        refuse_given(ctx, ("device",), "names the GPU of a new profile, not used with --profile (its device is kept)")
    _not_an_input(output, logs, "nccl-tests log")
    _replaceable(ctx, output)
    from calibrate.measurements import source_file

    read = [read_log(log, gpus, nodes) for log in logs]
    samples = [s for r in read for s in r.samples]
    sources = [source_file(log) for log in logs]
    seen: dict[str, Path] = {}
    for log, src in zip(logs, sources, strict=True):  # the same measurements twice would count twice in the fit
        if src.sha256 in seen:
            first = seen[src.sha256]
            again = "is given twice" if str(first) == str(log) else f"holds the same bytes as {first}"
            raise ScenarioError("LOGS", f"{log} {again}: give each log once")
        seen[src.sha256] = log
    named = [(log, r) for log, r in zip(logs, read, strict=True) if r.gpu is not None]  # the GPU of the Rank lines
    for log, r in named[1:]:
        if r.gpu != named[0][1].gpu:
            first, other = named[0]
            message = f"{first} ran on {other.gpu_text!r}, {log} on {r.gpu_text!r}: import each GPU's logs apart"
            raise ScenarioError("LOGS", message)
    if profile is not None:
        with read_for("--profile", "calibration profile"):
            base = load_profile(profile)
        _refuse_held(base, seen, "--profile", profile)
        held_gpu = datasheet_for(base.device.name)
        if named and (held_gpu is None or held_gpu.name != named[0][1].gpu):
            log, r = named[0]
            message = f"its device is {base.device.name!r}, but the Rank lines of {log} name {r.gpu_text!r}"
            raise ScenarioError("--profile", message + ": samples of another GPU", str(profile))
    else:
        if named and "device" not in given_on_command_line(ctx):
            device = str(named[0][1].gpu)  # the GPU the logs ran on, not the default's
        gpu = datasheet_for(device)
        if gpu is None:
            raise ScenarioError("--device", f"no datasheet for {device!r}; the twin knows {known_gpus()}")
        if named and gpu.name != named[0][1].gpu:
            log, r = named[0]
            message = f"{device}, but the Rank lines of {log} name {r.gpu_text!r}"
            message += f": give --device {r.gpu} or leave it out"
            raise ScenarioError("--device", message)
        base = datasheet_profile(gpu, tool="twin calibrate import-nccl-tests")
    # a row measured twice (a copy of a log with a byte changed, or rows the profile holds) counts twice
    first_of: dict[tuple[object, ...], str] = {}
    for held_sample in base.samples:
        if held_sample.op == "collective":
            where = str(held_sample.params.get("source", "an earlier import"))
            first_of.setdefault(sample_identity(held_sample), f"a sample the --profile holds (from {where})")
    for log, r in zip(logs, read, strict=True):
        for sample, line in zip(r.samples, r.lines, strict=True):
            identity = sample_identity(sample)
            if identity in first_of:
                message = f"repeats {first_of[identity]}: the same measurement ({sample.params['collective']}, "
                message += f"{sample.params['gpus']} GPUs on {sample.params['nodes']} nodes, "
                message += f"{sample.params['bytes']} bytes) would count twice"
                raise ScenarioError(f"line {line}", message, str(log))
        for sample, line in zip(r.samples, r.lines, strict=True):
            first_of.setdefault(sample_identity(sample), f"line {line} of {log}")

    _check_lines([*base.samples, *samples], logs, read)
    merged = base.model_copy(
        update={
            "samples": [*base.samples, *samples],
            "sources": [*base.sources, *sources],
            "ran": [*base.ran, *(f"nccl-tests {log.name}" for log in logs)],
        }
    )
    atomic_write_text(output, dump_profile(fitted(merged)))
    scales = sorted({(s.params["collective"], s.params["gpus"], s.params["nodes"]) for s in samples}, key=str)
    shown = ", ".join(f"{c} {g} GPUs/{n} nodes" for c, g, n in scales)
    out.print(f"wrote {output}: {len(samples)} samples ({shown})", markup=False, highlight=False)


@calibrate_app.command("show")
def show(
    profile: Annotated[Path, typer.Argument(help="profile JSON", callback=input_file_option)],
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Provenance, samples per op, the GEMM predictor's errors and the fitted models."""
    p = load_profile(profile)
    model = CostModel(p)
    counts: dict[str, int] = {}
    for s in p.samples:
        counts[s.op] = counts.get(s.op, 0) + 1
    summary: dict[str, object] = {
        "device": p.device.name,
        "sms": p.device.sms,
        "source": p.source,
        "created": p.created,
        "git_revision": p.git_revision,
        "tool": p.tool,
        "sources": [f"{s.name} sha256:{s.sha256[:12]}" for s in p.sources],
        "samples": counts,
        "skipped": [s.what for s in p.skipped],
        "loso_error": p.loso_error or {"gemm": model.loso_error()},
        "lofo_error": p.lofo_error or model.lofo_error(),
        "fit": model.describe(),
        "interference_rows": model.interference_mode,
    }
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    table = Table(title=Text(f"profile {profile}"))  # (Text: a path or a name is never read as markup)
    table.add_column("field")
    table.add_column("value")
    for key, value in summary.items():
        if isinstance(value, dict) and key.endswith("error"):
            value = ", ".join(f"{k} {v:.1%}" for k, v in value.items() if v is not None) or "-"
        elif isinstance(value, dict) and key == "fit":
            value = "\n".join(f"{k}: " + ", ".join(f"{a}={b:.3g}" for a, b in v.items()) for k, v in value.items())
        table.add_row(key, Text("-" if value in (None, [], {}) else str(value)))
    out.print(table)


class PredictFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


BATCH_COLUMNS = ("op", "dtype", "scaling", "M", "N", "K", "sms", "beside_comm_sms")
BATCH_PARAMS = {"m": "M", "n": "N", "k": "K"}  # CostModel.gemm_time's parameters named otherwise in the CSV


def time_text(seconds: float) -> str:
    """A kernel's time for the table: microseconds to two decimals, or nanoseconds to three significant
    digits below 0.1 us (a one-token attention's 7e-11 s printed as ``0.00 us``)."""
    text = f"{seconds * 1e6:.2f}"
    if float(text) >= 0.1 or seconds == 0:
        return f"{text} us"
    return f"{seconds * 1e9:.3g} ns"


def _batch(model: CostModel, path: Path) -> list[dict[str, object]]:
    """Predict every row of a shapes CSV (columns ``BATCH_COLUMNS``; sms and beside_comm_sms may be
    empty: all SMs, no communication beside)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(read_text(path, "batch CSV", MAX_JSON_BYTES), newline=""))
    try:
        table = [(reader.line_num, cells) for cells in reader if cells]  # (the line each row ends on)
    except csv.Error as e:
        raise ScenarioError("", f"malformed CSV: {e}", str(path)) from None
    header = table[0][1] if table else []
    if not header:
        raise ScenarioError("row 1", f"empty file; columns are {', '.join(BATCH_COLUMNS)}", str(path))
    twice = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if twice is not None:  # (a row read by column name would keep the last one's value)
        raise ScenarioError(f"row 1, column {twice}", "named twice", str(path))
    unknown = [c for c in header if c not in BATCH_COLUMNS]
    missing = [c for c in ("op", "dtype", "M", "N", "K") if c not in header]
    if unknown or missing:
        what = f"unknown column {unknown[0]!r}" if unknown else f"missing column {missing[0]!r}"
        raise ScenarioError("row 1", f"{what}; columns are {', '.join(BATCH_COLUMNS)}", str(path))
    if len(table) == 1:
        raise ScenarioError("", "no rows: a header and nothing to predict", str(path))
    results = []
    for line, cells in table[1:]:
        if len(cells) != len(header):
            raise ScenarioError(f"row {line}", f"has {len(cells)} fields; the header has {len(header)}", str(path))
        row = dict(zip(header, cells, strict=True))

        def num(col: str, default: int | None = None, row: dict[str, str] = row, line: int = line) -> int | None:
            text = (row.get(col) or "").strip()
            if not text:
                if default is None and col in ("M", "N", "K"):
                    raise ScenarioError(f"row {line}, column {col}", "missing value", str(path))
                return default
            try:
                return int(Dim(text) if col in ("M", "N", "K") else Int(0, MAX_SMS)(text))
            except ValueError as e:
                raise ScenarioError(f"row {line}, column {col}", str(e), str(path)) from None

        if row["op"].strip() != "gemm":
            raise ScenarioError(f"row {line}, column op", f"{row['op']!r}: batch rows are gemm", str(path))
        try:
            t = model.gemm_time(
                num("M") or 0,
                num("N") or 0,
                num("K") or 0,
                row["dtype"].strip(),
                num("sms"),
                (row.get("scaling") or "").strip() or None,
                num("beside_comm_sms", 0) or 0,
            )
        except ScenarioError as e:
            if e.file:
                raise
            column = BATCH_PARAMS.get(e.key_path, e.key_path)
            raise ScenarioError(f"row {line}, column {column}", e.message, str(path)) from None
        results.append({**{k: row.get(k, "") for k in header}, "time_s": t})
    return results


# The flags each kind of op reads (beside --profile, --format and, but for --batch, --op); one it does not
# read is refused.
PREDICT_FLAGS = {
    "gemm": ("dtype", "scaling", "m", "n", "k", "sms", "beside_comm_sms"),
    "attention": ("heads", "seq", "qk_dim", "v_dim", "causal", "phase", "sms"),
    "memory": ("nbytes", "kernel", "sms"),
    "communication": ("nbytes", "gpus", "nodes"),
    "batch": ("batch",),  # every kernel's parameters come from the file's rows
}


def _refuse_unread(ctx: typer.Context, reads: str, what: str) -> None:
    """Refuse the first flag given on the command line that ``reads`` (a :data:`PREDICT_FLAGS` key)
    does not read, naming it and ``what`` does not use it."""
    used = set(PREDICT_FLAGS[reads]) | {"profile", "fmt"} | ({"op"} if reads != "batch" else set())
    refuse_given(ctx, [str(p.name) for p in ctx.command.params if p.name not in used], f"not used by {what}")


@calibrate_app.command("predict")
def predict(
    ctx: typer.Context,
    profile: Annotated[Path, typer.Option("--profile", help="profile JSON", callback=input_file_option)],
    op: Annotated[
        str, typer.Option("--op", help="gemm, attention, memory, alltoall, p2p or an nccl-tests collective")
    ] = "gemm",
    dtype: Annotated[str, typer.Option("--dtype", help="fp8, bf16, fp16 or fp32")] = "fp8",
    scaling: Annotated[
        str | None, typer.Option("--scaling", help="fp8: blockwise, rowwise, tensorwise \\[default: blockwise]")
    ] = None,
    m: Annotated[int, typer.Option("--m", parser=Dim, help="GEMM M (rows)")] = 4096,
    n: Annotated[int, typer.Option("--n", parser=Dim, help="GEMM N (output features)")] = 4096,
    k: Annotated[int, typer.Option("--k", parser=Dim, help="GEMM K (input features)")] = 7168,
    sms: Annotated[
        int | None,
        typer.Option(
            "--sms", parser=Int(1, MAX_SMS), help="SMs the kernel gets \\[default: all, less --beside-comm-sms]"
        ),
    ] = None,
    beside_comm_sms: Annotated[
        int,
        typer.Option(
            "--beside-comm-sms",
            parser=Int(0, MAX_SMS),
            help="memory-bound communication kernels on this many other SMs",
        ),
    ] = 0,
    nbytes: Annotated[
        float | None,
        typer.Option(
            "--bytes",
            parser=Float(1, MAX_BYTES),
            help="memory/communication: bytes moved (at least 1, as twin collective)",
        ),
    ] = None,
    heads: Annotated[int, typer.Option("--heads", parser=Int(1, 1 << 16), help="attention heads")] = 128,
    seq: Annotated[int, typer.Option("--seq", parser=Int(1, MAX_TOKENS), help="attention sequence length")] = 4096,
    qk_dim: Annotated[int, typer.Option("--qk-dim", parser=Int(1, 1 << 16), help="attention q/k head dim")] = 192,
    v_dim: Annotated[int, typer.Option("--v-dim", parser=Int(1, 1 << 16), help="attention v head dim")] = 128,
    causal: Annotated[bool, typer.Option("--causal/--no-causal", help="attention: causal mask")] = True,
    phase: Annotated[str, typer.Option("--phase", help="attention: fwd, bwd or fwd+bwd")] = "fwd",
    kernel: Annotated[
        str | None,
        typer.Option(
            "--kernel",
            help="memory: a kernel the profile has samples of (copy, fp8-cast, elementwise, norm, ...) "
            "\\[default: any]",
        ),
    ] = None,
    gpus: Annotated[
        int | None, typer.Option("--gpus", parser=Int(1, MAX_GPUS), help="communication: GPUs of the measured scale")
    ] = None,
    nodes: Annotated[
        int | None, typer.Option("--nodes", parser=Int(1, MAX_GPUS), help="communication: nodes of the measured scale")
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help=f"CSV of GEMM rows ({', '.join(BATCH_COLUMNS)}) to predict at once",
            callback=input_file_option,
        ),
    ] = None,
    fmt: Annotated[
        PredictFormat,
        typer.Option(
            "--format",
            help="table, json or csv; --batch writes csv or json \\[default: table; with --batch: csv]",
            show_default=False,
        ),
    ] = PredictFormat.table,
) -> None:
    """Predicted time of one kernel (or of every row of --batch) from a profile."""
    from sim.hardware.gpu import datasheet_for
    from sim.network.collectives import KINDS

    with read_for("--profile", "calibration profile"):
        loaded = load_profile(profile)
        sheet = datasheet_for(loaded.device.name)
        if sheet is not None:  # (as a run refuses it: SM-limited times are worked out on the datasheet's SMs)
            check_device_sms(profile, loaded, sheet)
        model = CostModel(loaded)
    if batch is not None:
        _refuse_unread(ctx, "batch", "--batch (its rows give each kernel's parameters)")
        if fmt is PredictFormat.table and "fmt" in given_on_command_line(ctx):
            raise ScenarioError("--format", "--batch writes csv (the default) or json, not a table")
        rows = _batch(model, batch)
        check_printed({f"row {line} time_s": row["time_s"] for line, row in enumerate(rows, start=2)}, profile=profile)
        if fmt is PredictFormat.json:
            print(json.dumps(rows))
        else:
            import csv
            import sys

            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["time_s"])
            writer.writeheader()
            writer.writerows(rows)
        return
    comm = ("alltoall", "p2p", "collective")  # (interference and chunk samples are data, not predictable ops)
    measured = [str(s.params.get("collective", s.op)) for s in model.profile.samples if s.op in comm]
    known = ("gemm", "attention", "memory", "p2p", *KINDS, *measured)  # nccl-tests' names: all_gather, ...
    if op not in known:
        raise ScenarioError("--op", f"unknown op {op!r}; choose from {', '.join(dict.fromkeys(known))}")
    _refuse_unread(ctx, op if op in ("gemm", "attention", "memory") else "communication", f"the {op} op")
    if op not in ("gemm", "attention") and nbytes is None:
        raise ScenarioError("--bytes", f"a {op} op needs --bytes (at least 1)")
    with flag_errors():
        if op == "gemm":
            time_s = model.gemm_time(m, n, k, dtype, sms, scaling, beside_comm_sms)
        elif op == "attention":
            time_s = model.attention_time(heads, seq, qk_dim, v_dim, causal=causal, phase=phase, sms=sms)
        elif op == "memory":
            time_s = model.memory_time(nbytes or 0.0, kernel, sms)
        else:
            time_s = model.comm_time(op, nbytes or 0.0, gpus, nodes)
    # (after the prediction, which refuses a bad value first: an unknown scaling is named as such)
    if op == "gemm" and not model.gemm_model.has(dtype):  # (the datasheet roofline: no scaling)
        why = f"not used: {profile.name} has no measured {dtype} GEMMs, and its datasheet roofline has no scaling"
        refuse_given(ctx, ("scaling",), why)
    if op == "gemm" and sms is not None and model.interference_mode == "none":
        why = (
            f"not used with --sms: {profile.name} has no interference samples, so the SMs beside would only set the "
            "GEMM's SM count, which --sms gives"
        )
        refuse_given(ctx, ("beside_comm_sms",), why)
    check_printed({"time_s": time_s}, profile=profile)
    if fmt is PredictFormat.table:
        out.print(f"{op} time: {time_text(time_s)}", markup=False, highlight=False)
    elif fmt is PredictFormat.csv:
        print(f"op,time_s\n{op},{time_s!r}")
    else:
        print(json.dumps({"time_s": time_s}))
