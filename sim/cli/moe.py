"""``twin alltoall``: one MoE layer's dispatch and combine on the cluster, optionally swept over SMs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from sim.cli.common import Format, as_flag, out
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile
from sim.moe.alltoall import route_layer, sm_sweep
from sim.moe.balance import run_balancing
from sim.moe.deepep import DERIVED_RDMA_GBps, KernelSpec, NVLINK_CHANNEL_GBps
from sim.moe.gating import Gating, popularity, skewed_scores
from sim.moe.spec import MoESpec
from sim.network.spec import ClusterSpec, load_cluster
from sim.network.topology import build_topology
from sim.outputs import atomic_write


def _sms(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ScenarioError("--sms", f"give SM counts like 20 or 4,8,16, got {text!r}") from None
    if not values:
        raise ScenarioError("--sms", "give at least one SM count")
    return values


def alltoall_cmd(
    ep: Annotated[int, typer.Option("--ep", help="expert-parallel group size (GPUs)")] = 64,
    nodes: Annotated[int | None, typer.Option("--nodes", help="nodes of the cluster [default: EP/8]")] = None,
    tokens: Annotated[int, typer.Option("--tokens", help="tokens per GPU")] = 4096,
    hidden: Annotated[int, typer.Option("--hidden")] = 7168,
    experts: Annotated[int, typer.Option("--experts")] = 256,
    topk: Annotated[int, typer.Option("--topk")] = 8,
    node_limit: Annotated[int, typer.Option("--node-limit", help="max nodes per token (M)")] = 4,
    sms: Annotated[str, typer.Option("--sms", help="comm SMs, or a list to sweep: 4,8,...,32")] = "20",
    routing: Annotated[str, typer.Option("--routing", help="balanced, random, skewed or replay")] = "balanced",
    routing_table: Annotated[Path | None, typer.Option("--routing-table", help="CSV/Parquet for replay")] = None,
    skew_alpha: Annotated[float, typer.Option("--skew-alpha", help="Zipf exponent of skewed routing")] = 1.0,
    dirichlet: Annotated[float | None, typer.Option("--dirichlet", help="skewed: Dirichlet concentration")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cluster: Annotated[Path | None, typer.Option("--cluster", help="topology YAML [default: MPFT H800]")] = None,
    coprocessor: Annotated[bool, typer.Option("--coprocessor", help="communication off the SMs")] = False,
    rdma_channel_GBps: Annotated[
        float | None, typer.Option("--rdma-channel-GBps", help="per SM pair, every phase [default: derived]")
    ] = None,
    nvlink_channel_GBps: Annotated[
        float | None, typer.Option("--nvlink-channel-GBps", help="per SM pair, every phase [default: from the trace]")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of the SM sweep")] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="calibration profile: measured GEMM throughput vs SMs [default: linear]"),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Dispatch and combine of one MoE layer: time, IB/NVLink bytes per GPU, DeepEP bandwidth."""
    try:
        spec = MoESpec(experts=experts, topk=topk, node_limit=node_limit, ep=ep, hidden=hidden)
    except ScenarioError as e:
        raise as_flag(e) from None
    if cluster is not None:
        cspec = load_cluster(cluster)
    else:
        n = nodes or spec.nodes
        kind = "none" if n == 1 else "mpft"
        cspec = ClusterSpec.model_validate({"name": f"h800-{n}-nodes", "nodes": n, "fabric": {"kind": kind}})
    topo = build_topology(cspec)
    if ep > topo.gpus:
        raise ScenarioError("--ep", f"EP {ep} is larger than the cluster ({topo.gpus} GPUs)")
    counts = _sms(sms)
    try:
        rdma = (
            dict(DERIVED_RDMA_GBps)
            if rdma_channel_GBps is None
            else dict.fromkeys(DERIVED_RDMA_GBps, rdma_channel_GBps)
        )
        kernels = [
            KernelSpec(
                comm_sms=c,
                rdma_channel_GBps=rdma,
                nvlink_channel_GBps=nvlink_channel_GBps or NVLINK_CHANNEL_GBps,
                coprocessor=coprocessor,
            )
            for c in counts
        ]
    except ScenarioError as e:
        raise ScenarioError("--sms", e.message) from None
    model = None if profile is None else CostModel(load_profile(profile))
    traffic = route_layer(spec, tokens, Gating(routing, routing_table, skew_alpha, dirichlet), seed)
    try:
        results = sm_sweep(topo, traffic, kernels[0], counts, model)
    except ScenarioError as e:
        raise ScenarioError("--profile", e.message, str(profile)) from None
    if plot is not None:
        from reports.sm_sweep import plot_sm_sweep

        title = f"EP{ep}, {tokens} tokens/GPU, top-{topk} of {experts}, M={node_limit}, {routing}"
        atomic_write(plot, lambda p: plot_sm_sweep(results, p, title))
    if fmt is Format.json:
        data = results[0].to_dict() if len(results) == 1 else {"sweep": [r.to_dict() for r in results]}
        print(json.dumps(data))
        return
    table = Table(title=f"EP{ep} all-to-all on {topo.spec.name} ({routing} routing, {tokens} tokens/GPU)")
    for col in (
        "comm SMs",
        "phase",
        "time (us)",
        "notify (us)",
        "IB MB/GPU",
        "NVLink MB/GPU",
        "DeepEP GB/s",
        "GEMM left",
    ):
        table.add_column(col, justify="left" if col == "phase" else "right", no_wrap=col == "phase")
    for r in results:
        for ph in (r.dispatch, r.combine):
            table.add_row(
                str(r.comm_sms),
                ph.phase,
                f"{ph.time_s * 1e6:.1f}",
                f"{ph.notify_s * 1e6:.1f}",
                f"{ph.ib_bytes_per_gpu / 1e6:.2f}",
                f"{ph.nvlink_bytes_per_gpu / 1e6:.2f}",
                f"{ph.deepep_GBps:.1f}",
                f"{100 * r.gemm_throughput_fraction:.0f}%",
            )
    out.print(table)
    npt = traffic.nodes_per_token
    out.print(f"nodes per token: mean {npt.mean():.3f}, max {npt.max()}")


def balance_cmd(
    steps: Annotated[int, typer.Option("--steps", help="training steps (bias updates)")] = 100,
    gamma: Annotated[float, typer.Option("--gamma", help="bias update speed (V3: 0.001)")] = 1e-3,
    tokens: Annotated[int, typer.Option("--tokens", help="tokens routed per step")] = 4096,
    ep: Annotated[int, typer.Option("--ep")] = 64,
    experts: Annotated[int, typer.Option("--experts")] = 256,
    topk: Annotated[int, typer.Option("--topk")] = 8,
    node_limit: Annotated[int, typer.Option("--node-limit")] = 4,
    skew_alpha: Annotated[float, typer.Option("--skew-alpha", help="Zipf exponent of expert popularity")] = 1.0,
    dirichlet: Annotated[float | None, typer.Option("--dirichlet", help="Dirichlet concentration instead")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    every: Annotated[int, typer.Option("--every", help="print every N steps")] = 10,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Auxiliary-loss-free balancing on skewed routing: busiest expert's load / mean, step by step."""
    try:
        spec = MoESpec(experts=experts, topk=topk, node_limit=node_limit, ep=ep)
    except ScenarioError as e:
        raise as_flag(e) from None
    if steps < 1:
        raise ScenarioError("--steps", f"must be >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    popular = popularity(spec, rng, skew_alpha, dirichlet)
    trace = run_balancing(lambda _step: skewed_scores(tokens, spec, rng, popular), spec, steps, gamma)
    ratios = trace.max_over_mean
    if fmt is Format.json:
        print(json.dumps({"max_over_mean": ratios.tolist(), "gamma": gamma}))
        return
    table = Table(title=f"aux-loss-free balancing, gamma {gamma:g}, {tokens} tokens/step")
    table.add_column("step", justify="right")
    table.add_column("max load / mean", justify="right")
    for step in [*range(0, steps, max(1, every)), steps - 1]:
        table.add_row(str(step), f"{ratios[step]:.2f}")
    out.print(table)
