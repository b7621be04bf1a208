"""``twin topology show`` and ``twin collective``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sim.cli.common import Float, Format, Int, flag_errors, out
from sim.errors import ScenarioError
from sim.limits import MAX_BYTES, MAX_GPUS, MAX_SEED, require_memory
from sim.network.collectives import ALGORITHMS, KINDS, run_collective
from sim.network.spec import build_cluster, load_cluster
from sim.network.tolerance import COMPLETION_RTOL

FLOW_BYTES = 512  # memory per simultaneous flow (route, rates, bookkeeping), measured at 1-4 M flows


def max_alltoall_gpus() -> int:
    """The largest all-to-all whose flow table fits in 80% of the memory available now."""
    from sim.limits import available_memory

    return int((0.8 * available_memory() / FLOW_BYTES) ** 0.5)


topology_app = typer.Typer(no_args_is_help=True, help="Cluster topologies: counts, bisection, cost.")


@topology_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="topology YAML (see topologies/)")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Counts of GPUs, nodes, switches and links, bisection bandwidth and cost."""
    topo = build_cluster(file)
    title = f"{topo.spec.name} ({topo.layout.kind if topo.layout else 'single node'})"
    _emit(topo.summary(), fmt, title, "{:,.0f}")


def collective_cmd(
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(KINDS)}")],
    cluster: Annotated[Path, typer.Option("--cluster", help="topology YAML")],
    gpus: Annotated[int, typer.Option("--gpus", parser=Int(2, MAX_GPUS), help="ranks: GPUs 0..N-1 of the cluster")],
    size_bytes: Annotated[
        float,
        typer.Option(
            "--size-bytes", parser=Float(0, MAX_BYTES, lo_open=True), help="per-rank buffer, nccl-tests convention"
        ),
    ],
    algorithm: Annotated[str, typer.Option("--algorithm", help=f"one of {', '.join(ALGORITHMS)}")] = "ring",
    seed: Annotated[
        int | None, typer.Option("--seed", parser=Int(0, MAX_SEED), help="ECMP hash seed [default: the topology's]")
    ] = None,
    completion_rtol: Annotated[
        float,
        typer.Option(
            "--completion-rtol",
            parser=Float(0, 1, hi_open=True),
            help="flows within this fraction of their age finish together; 0 = exact",
        ),
    ] = COMPLETION_RTOL,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Simulate one collective on the flow-level network: time, algbw, busbw, busiest link."""
    spec = load_cluster(cluster)
    if gpus > spec.gpus:
        raise ScenarioError("--gpus", f"need 2..{spec.gpus} GPUs on this cluster ({cluster}), got {gpus}")
    flows = gpus * (gpus - 1) if kind == "alltoall" else 64 * gpus
    require_memory(
        flows * FLOW_BYTES,
        f"this {kind} of {gpus:,} GPUs has {flows:,} flows at once; its flow table",
        "--gpus",
        f"use fewer GPUs (at most about {max_alltoall_gpus():,} for an all-to-all here)",
    )
    topo = build_cluster(cluster)
    with flag_errors():
        result = run_collective(topo, kind, gpus, size_bytes, algorithm, seed, completion_rtol)
    _emit(result.to_dict(), fmt, f"{kind} ({algorithm}) on {gpus} GPUs of {topo.spec.name}", "{:.6g}")


def _emit(data: Mapping[str, object], fmt: Format, title: str, float_format: str) -> None:
    """Print a flat mapping as JSON or as a two-column table."""
    if fmt is Format.json:
        print(json.dumps(data))
        return
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, float_format.format(value) if isinstance(value, float) else f"{value}")
    out.print(table)
