"""``twin calibrate ...``: build, inspect and query calibration profiles (no torch needed here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sim.cli.common import Format, err, out
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import Profile, dump_profile, load_profile
from sim.outputs import atomic_write_text

calibrate_app = typer.Typer(no_args_is_help=True, help="Calibration profiles: import a trace, show, predict.")


@calibrate_app.command("import-trace")
def import_trace(
    trace: Annotated[Path, typer.Argument(help="PyTorch-profiler Chrome trace (JSON)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="profile JSON to write")] = Path("profile.json"),
    compute_sms: Annotated[int, typer.Option("--compute-sms", help="SMs the compute kernels ran on")] = 112,
    layers: Annotated[int, typer.Option("--layers", help="layers per chunk in the trace")] = 4,
) -> None:
    """Turn a profiler trace into a profile of per-annotation GPU times (H800 peaks)."""
    from calibrate.profiles import profile_from_trace

    if not trace.exists():
        raise ScenarioError("", "no such trace file", str(trace))
    try:
        profile = profile_from_trace(trace, compute_sms=compute_sms, layers_per_chunk=layers)
    except (KeyError, ValueError) as e:
        raise ScenarioError("traceEvents", f"not a PyTorch-profiler Chrome trace ({e})", str(trace)) from None
    atomic_write_text(output, dump_profile(profile))
    out.print(f"wrote {output}: {len(profile.samples)} samples from {trace.name}")


@calibrate_app.command("run")
def run_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="profile JSON to write")] = Path("profile.json"),
    device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="tiny (CPU, seconds), quick (GPU, minutes), full [default: tiny on cpu, full on cuda]"
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="same as --preset quick")] = False,
    world: Annotated[int, typer.Option("--world", help="local processes for p2p/all-to-all (0: skip)")] = 2,
    comm_samples: Annotated[
        Path | None, typer.Option("--comm-samples", help="JSON from torchrun -m calibrate.comm")
    ] = None,
    partial: Annotated[
        Path | None, typer.Option("--partial", help="also write the profile so far after each benchmark here")
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
    try:
        from calibrate.run import merge_comm_samples, run_calibration
    except ImportError as e:
        raise ScenarioError(
            "--device", f"torch is needed for microbenchmarks: pip install -e '.[calibrate]' ({e})"
        ) from None
    with err.status(f"benchmarking on {device} ({preset})") as status:

        def progress(what: str) -> None:
            status.update(f"benchmarking on {device} ({preset}): {what}")

        try:
            def checkpoint(p: Profile) -> None:
                if partial is not None:
                    atomic_write_text(partial, dump_profile(p))

            profile = run_calibration(device, preset, world, comm=world >= 2, progress=progress, checkpoint=checkpoint)
        except RuntimeError as e:
            raise ScenarioError("--device", str(e)) from None
    if comm_samples is not None:
        profile = merge_comm_samples(profile, comm_samples)
    atomic_write_text(output, dump_profile(profile))
    loso = profile.loso_error.get("gemm")
    out.print(
        f"wrote {output}: {len(profile.samples)} samples on {profile.device.name}"
        + (f", GEMM leave-one-shape-out median error {loso:.1%}" if loso is not None else "")
    )


@calibrate_app.command("datasheet")
def datasheet(
    output: Annotated[Path, typer.Option("--output", "-o", help="profile JSON to write")] = Path("profile.json"),
    name: Annotated[str, typer.Option("--name")] = "H800",
    sms: Annotated[int, typer.Option("--sms")] = 132,
    fp8_tflops: Annotated[float, typer.Option("--fp8-tflops", help="dense")] = 1979.0,
    bf16_tflops: Annotated[float, typer.Option("--bf16-tflops", help="dense")] = 989.0,
    hbm_tbps: Annotated[float, typer.Option("--hbm-tbps")] = 3.35,
    efficiency: Annotated[float, typer.Option("--efficiency", help="assumed fraction of peak")] = 0.7,
) -> None:
    """An analytical profile for any GPU from its datasheet (defaults: H800)."""
    from calibrate.profiles import datasheet_profile
    from sim.hardware.gpu import GpuSpec

    if not 0 < efficiency <= 1:
        raise ScenarioError("--efficiency", f"must be in (0, 1], got {efficiency}")
    gpu = GpuSpec(name=name, sms=sms, fp8_dense_TFLOPS=fp8_tflops, bf16_dense_TFLOPS=bf16_tflops, hbm_TBps=hbm_tbps)
    profile = datasheet_profile(gpu, efficiency, tool=f"twin calibrate datasheet --name {name}")
    atomic_write_text(output, dump_profile(profile))
    out.print(f"wrote {output}")


@calibrate_app.command("show")
def show(
    profile: Annotated[Path, typer.Argument(help="profile JSON")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Provenance, peaks, samples per op and the predictor's leave-one-shape-out error."""
    p = load_profile(profile)
    loso = CostModel(p).loso_error()
    counts: dict[str, int] = {}
    for s in p.samples:
        counts[s.op] = counts.get(s.op, 0) + 1
    summary = {
        "device": p.device.name,
        "sms": p.device.sms,
        "source": p.source,
        "created": p.created,
        "git_revision": p.git_revision,
        "samples": counts,
        "skipped": [s.what for s in p.skipped],
        "loso_error_gemm": p.loso_error.get("gemm", loso),
    }
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    table = Table(title=f"profile {profile}")
    table.add_column("field")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, "-" if value is None else f"{value:.2%}" if key.startswith("loso") else str(value))
    out.print(table)


@calibrate_app.command("predict")
def predict(
    profile: Annotated[Path, typer.Option("--profile", help="profile JSON")],
    op: Annotated[str, typer.Option("--op", help="gemm, attention, memory, alltoall or p2p")] = "gemm",
    dtype: Annotated[str, typer.Option("--dtype")] = "fp8",
    m: Annotated[int, typer.Option("--m")] = 4096,
    n: Annotated[int, typer.Option("--n")] = 4096,
    k: Annotated[int, typer.Option("--k")] = 7168,
    sms: Annotated[int | None, typer.Option("--sms", help="SMs the kernel gets [default: all]")] = None,
    nbytes: Annotated[float, typer.Option("--bytes", help="memory/alltoall/p2p: bytes moved")] = 0.0,
    heads: Annotated[int, typer.Option("--heads", help="attention heads")] = 128,
    seq: Annotated[int, typer.Option("--seq", help="attention sequence length")] = 4096,
    causal: Annotated[bool, typer.Option("--causal/--no-causal")] = True,
    phase: Annotated[str, typer.Option("--phase", help="attention: fwd or fwd+bwd")] = "fwd",
    kernel: Annotated[
        str | None, typer.Option("--kernel", help="memory: copy, fp8-cast or elementwise [default: any]")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Predicted time of one kernel from a profile."""
    model = CostModel(load_profile(profile))
    if op == "gemm":
        time_s = model.gemm_time(m, n, k, dtype, sms)
    elif op == "attention":
        time_s = model.attention_time(heads, seq, causal=causal, phase=phase)
    elif op in ("memory", "alltoall", "p2p"):
        if nbytes <= 0:
            raise ScenarioError("--bytes", f"a {op} op needs --bytes > 0")
        time_s = model.memory_time(nbytes, kernel) if op == "memory" else model.comm_time(op, nbytes)
    else:
        raise ScenarioError("--op", f"unknown op {op!r}; choose from gemm, attention, memory, alltoall, p2p")
    if fmt is Format.json:
        print(json.dumps({"time_s": time_s}))
    else:
        out.print(f"{op} time: {time_s * 1e6:.2f} us")
