"""``twin topology show`` and ``twin collective``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sim.cli.common import out
from sim.network.collectives import ALGORITHMS, KINDS, run_collective
from sim.network.spec import load_cluster
from sim.network.topology import build_topology

topology_app = typer.Typer(no_args_is_help=True, help="Cluster topologies: counts, bisection, cost.")


class Format(StrEnum):
    table = "table"
    json = "json"


@topology_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="topology YAML (see topologies/)")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Counts of GPUs, nodes, switches and links, bisection bandwidth and cost."""
    topo = build_topology(load_cluster(file))
    summary = topo.summary()
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    table = Table(title=f"{topo.spec.name} ({topo.layout.kind if topo.layout else 'single node'})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:,.0f}" if isinstance(value, float) else f"{value:,}")
    out.print(table)


def collective_cmd(
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(KINDS)}")],
    cluster: Annotated[Path, typer.Option("--cluster", help="topology YAML")],
    gpus: Annotated[int, typer.Option("--gpus", help="ranks: GPUs 0..N-1 of the cluster")],
    size_bytes: Annotated[float, typer.Option("--size-bytes", help="per-rank buffer, nccl-tests convention")],
    algorithm: Annotated[str, typer.Option("--algorithm", help=f"one of {', '.join(ALGORITHMS)}")] = "ring",
    seed: Annotated[int | None, typer.Option("--seed", help="ECMP hash seed [default: the topology's]")] = None,
    completion_rtol: Annotated[
        float,
        typer.Option("--completion-rtol", help="flows within this fraction of their age finish together; 0 = exact"),
    ] = 1e-2,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Simulate one collective on the flow-level network: time, algbw, busbw, busiest link."""
    topo = build_topology(load_cluster(cluster))
    result = run_collective(topo, kind, gpus, size_bytes, algorithm, seed, completion_rtol)
    data = result.to_dict()
    if fmt is Format.json:
        print(json.dumps(data))
        return
    table = Table(title=f"{kind} ({algorithm}) on {gpus} GPUs of {topo.spec.name}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    out.print(table)
