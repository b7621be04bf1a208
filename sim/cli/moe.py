"""``twin alltoall``: one MoE layer's dispatch and combine on the cluster, optionally swept over SMs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from sim.cli.common import (
    Float,
    Format,
    Int,
    as_flag,
    check_printed,
    flag_errors,
    given_on_command_line,
    input_file_option,
    int_list,
    out,
    plot_file_option,
    refuse_given,
    refuse_unbound_node_limit,
    require_routing_memory,
)
from sim.config import read_for
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import DEEPSEEK_COMM_SMS, H800, GpuSpec, SmSplit, datasheet_for
from sim.hardware.profile import load_profile
from sim.limits import (
    MAX_EXPERTS,
    MAX_GPUS,
    MAX_HIDDEN,
    MAX_RATE,
    MAX_SEED,
    MAX_SMS,
    MAX_STEPS,
    MAX_TOKENS,
    MIN_RATE,
    require_count,
    require_memory,
)
from sim.model.spec import DEEPSEEK_V3 as V3
from sim.moe.alltoall import route_layer, sm_sweep
from sim.moe.balance import run_balancing
from sim.moe.deepep import DERIVED_RDMA_GBps, KernelSpec, NVLINK_CHANNEL_GBps
from sim.moe.gating import GATES, Gating, popularity, skewed_scores
from sim.moe.multicast import nothing_to_merge
from sim.moe.spec import MoESpec
from sim.network.spec import ClusterSpec, build_cluster, load_cluster
from sim.network.topology import build_topology
from sim.outputs import atomic_write
from sim.step.layout import DEFAULT_EP

SmCount = Int(0, MAX_SMS)
EP = Int(1, MAX_GPUS)
Experts = Int(1, MAX_EXPERTS)
TopK = Int(1, MAX_EXPERTS)
NodeLimit = Int(1, MAX_GPUS)
Tokens = Int(1, MAX_TOKENS)
Seed = Int(0, MAX_SEED)
Alpha = Float(0, 50)
Concentration = Float(1e-3, 1e6)
ChannelRate = Float(MIN_RATE, MAX_RATE)  # (sim.limits.MIN_RATE: no denormal rate)


# skewed routing's popularity flags (twin alltoall, twin chunk)
SkewAlphaOpt = Annotated[
    float,
    typer.Option("--skew-alpha", parser=Alpha, help="Zipf exponent of skewed routing (--routing skewed only)"),
]
DirichletOpt = Annotated[
    float | None, typer.Option("--dirichlet", parser=Concentration, help="skewed: Dirichlet concentration")
]


def refuse_unused_skew(ctx: typer.Context, routing: str, dirichlet: float | None) -> None:
    """``--skew-alpha`` and ``--dirichlet`` act only on skewed routing, and ``--skew-alpha`` not beside
    ``--dirichlet`` (the popularity is drawn from one or the other): refused where given otherwise."""
    if routing != "skewed":
        why = f"not used by --routing {routing} (only skewed draws a popularity)"
        refuse_given(ctx, ("skew_alpha", "dirichlet"), why)
    if dirichlet is not None:
        refuse_given(ctx, ("skew_alpha",), "not used with --dirichlet (popularity is drawn from a Dirichlet, not Zipf)")


def refuse_unused_seed(ctx: typer.Context, routing: str) -> None:
    """``--seed`` acts only on the routings that draw (random and skewed): refused where given otherwise
    (one wording for every command that routes)."""
    from sim.moe.gating import DRAWING

    if routing not in DRAWING:
        drawn = " and ".join(DRAWING)
        refuse_given(ctx, ("seed",), f"not used by --routing {routing} (it draws nothing; {drawn} do)")


MAX_BALANCE_WORK = 1 << 36  # steps x tokens x experts: ~10 minutes


def _moe_spec(**kw: int) -> MoESpec:
    try:
        return MoESpec(**kw)
    except ScenarioError as e:
        if e.key_path == "experts" and "over EP" in e.message and kw["experts"] == V3.n_routed_experts:  # --ep changed
            raise ScenarioError("--ep", f"EP {kw['ep']} must divide the {kw['experts']} experts evenly") from None
        raise as_flag(e) from None


# The MoE layer's keys as flags, shared by alltoall and balance (named after the scenario keys).
ExpertsOpt = Annotated[
    int, typer.Option("--n-routed-experts", "--experts", parser=Experts, help="model.n_routed_experts")
]
TopKOpt = Annotated[int, typer.Option("--n-activated-experts", "--topk", parser=TopK, help="model.n_activated_experts")]
NodeLimitOpt = Annotated[
    int,
    typer.Option(
        "--n-limited-groups", "--node-limit", parser=NodeLimit, help="max nodes per token, M (model.n_limited_groups)"
    ),
]


def alltoall_cmd(
    ctx: typer.Context,
    ep: Annotated[int, typer.Option("--ep", parser=EP, help="expert-parallel group size (GPUs)")] = DEFAULT_EP,
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            parser=Int(1, MAX_GPUS),
            help="nodes of the MPFT cluster: the EP group's own (EP/8), as the default; no other changes a figure",
        ),
    ] = None,
    tokens: Annotated[
        int, typer.Option("--tokens", parser=Tokens, help="tokens per micro-batch per GPU (workload.tokens)")
    ] = V3.seq_len,
    hidden: Annotated[int, typer.Option("--dim", "--hidden", parser=Int(1, MAX_HIDDEN), help="model.dim")] = V3.dim,
    experts: ExpertsOpt = V3.n_routed_experts,
    topk: TopKOpt = V3.n_activated_experts,
    node_limit: NodeLimitOpt = V3.n_limited_groups,
    sms: Annotated[
        str, typer.Option("--sms", help="comm SMs, or a comma-separated list to sweep (e.g. 4,8,16,32)")
    ] = str(DEEPSEEK_COMM_SMS),
    routing: Annotated[str, typer.Option("--routing", help="balanced, random, skewed or replay")] = "balanced",
    routing_table: Annotated[
        Path | None, typer.Option("--routing-table", help="CSV/Parquet for replay", callback=input_file_option)
    ] = None,
    skew_alpha: SkewAlphaOpt = 1.0,
    dirichlet: DirichletOpt = None,
    seed: Annotated[
        int, typer.Option("--seed", parser=Seed, help="routing draws (random and skewed routing only)")
    ] = 0,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--topology",
            "--cluster",
            help="topology YAML, as cluster.topology \\[default: MPFT H800]",
            callback=input_file_option,
        ),
    ] = None,
    coprocessor: Annotated[bool, typer.Option("--coprocessor", help="communication off the SMs")] = False,
    multicast: Annotated[
        bool, typer.Option("--multicast", help="dispatch: one copy per token, copied in the switch (comm.multicast)")
    ] = False,
    in_network_reduce: Annotated[
        bool,
        typer.Option("--in-network-reduce", help="combine: partial sums added in the switch (comm.in_network_reduce)"),
    ] = False,
    rdma_channel_GBps: Annotated[
        float | None,
        typer.Option("--rdma-channel-GBps", parser=ChannelRate, help="per SM pair, every phase \\[default: derived]"),
    ] = None,
    nvlink_channel_GBps: Annotated[
        float | None,
        typer.Option(
            "--nvlink-channel-GBps", parser=ChannelRate, help="per SM pair, every phase \\[default: from the trace]"
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG/SVG/PDF of the SM sweep", callback=plot_file_option)
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="calibration profile: measured GEMM throughput vs SMs \\[default: linear]",
            callback=input_file_option,
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Dispatch and combine of one MoE layer: time, IB/NVLink bytes per GPU, DeepEP bandwidth."""
    cspec = None
    if cluster is not None:  # (read first: its NVLink domain is the node DeepEP routes over)
        if nodes is not None:
            raise ScenarioError("--nodes", "give --nodes or --topology, not both")
        with read_for("--topology", "topology"):
            cspec = load_cluster(cluster)
    domain = MoESpec.gpus_per_node if cspec is None else cspec.node.domain_gpus
    spec = _moe_spec(experts=experts, topk=topk, node_limit=node_limit, ep=ep, hidden=hidden, gpus_per_node=domain)
    refuse_unbound_node_limit(ctx, spec, V3.n_limited_groups)
    if routing not in (*GATES, "replay"):
        raise ScenarioError("--routing", f"unknown routing {routing!r}; choose from {', '.join(GATES)}, replay")
    refuse_unused_skew(ctx, routing, dirichlet)
    if routing != "replay":
        refuse_given(ctx, ("routing_table",), f"not used by --routing {routing} (only replay reads a table)")
    refuse_unused_seed(ctx, routing)
    counts = int_list(sms, "--sms", SmCount)
    if plot is not None and (len(counts) < 2 or coprocessor):  # (a chart of one point: an axis of -0.04..0.04 SMs)
        if coprocessor:
            raise ScenarioError("--plot", "not used with --coprocessor (no SM is set aside: one point, no sweep)")
        raise ScenarioError("--plot", f"draws an SM sweep: give two or more --sms values, not one ({sms})")
    if len(set(counts)) != len(counts):  # each row was printed twice (as --schedules refuses a name twice)
        twice = next(c for c in counts if counts.count(c) > 1)
        raise ScenarioError("--sms", f"{twice} is listed twice in {sms!r}; give each SM count once")
    if spec.nodes == 1:  # (DeepEP's intranode kernels: NVLink alone)
        why = f"not used: an EP group of {ep} GPUs is one node (NVLink domain), so no byte goes over RDMA"
        refuse_given(ctx, ("rdma_channel_GBps",), why)
    unmerged = nothing_to_merge(spec, "--n-activated-experts", "--n-limited-groups")  # (comm.multicast's rule too)
    if (multicast or in_network_reduce) and unmerged is not None:
        refuse_given(ctx, ("multicast", "in_network_reduce"), unmerged)
    if coprocessor:  # the co-processor moves the data: no SM is set aside, no SM channel caps a phase's rate
        if any(counts):  # (--sms 0 says the same)
            why = "not used with --coprocessor (communication runs off the SMs: all of them compute)"
            refuse_given(ctx, ("sms",), why)
        why = "not used with --coprocessor (the co-processor moves the data: no SM channel caps a phase's rate)"
        refuse_given(ctx, ("rdma_channel_GBps", "nvlink_channel_GBps"), why)
        why = "not used with --coprocessor (it times the GEMMs on the SMs DeepEP leaves: here all of them)"
        refuse_given(ctx, ("profile",), why)
        counts = [0]  # what the run uses (it said comm_sms 20 beside all 132 SMs computing)
    with read_for("--profile", "calibration profile"):
        model = None if profile is None else CostModel(load_profile(profile))
    # the GPU whose SMs are split: the profile's (its datasheet, or its SM count), else the H800
    gpu = H800 if model is None else datasheet_for(model.profile.device.name) or GpuSpec(name=model.profile.device.name)
    if model is not None and gpu.sms != model.all_sms:
        gpu = replace(gpu, sms=model.all_sms)
    for c in counts:
        try:
            SmSplit(gpu=gpu, comm_sms=c, coprocessor=coprocessor)
            KernelSpec(comm_sms=c, coprocessor=coprocessor)
        except ScenarioError as e:
            raise ScenarioError("--sms", f"{e.message} (in {sms!r})") from None
    if cspec is None:
        n = nodes if nodes is not None else spec.nodes
        kind = "none" if n == 1 else "mpft"
        cspec = ClusterSpec.model_validate({"name": f"h800-{n}-nodes", "nodes": n, "fabric": {"kind": kind}})
    if ep > cspec.gpus:
        if nodes is not None and "ep" not in given_on_command_line(ctx):  # (--nodes: smaller than the default EP)
            raise ScenarioError("--nodes", f"{nodes} node(s) hold {cspec.gpus} GPUs, fewer than EP {ep}; give --ep too")
        raise ScenarioError("--ep", f"EP {ep} is larger than the cluster ({cspec.gpus} GPUs)")
    if nodes is not None and nodes != spec.nodes:  # (the EP group's own nodes, the default, say the same)
        raise ScenarioError(
            "--nodes",
            f"not used: the all-to-all runs on the EP group's {spec.nodes} node(s) alone, and the multi-plane fat "
            f"tree carries it the same on a cluster of any size (only the table's title named {nodes} nodes); "
            "remove it, or give --topology for another fabric",
        )
    require_routing_memory(tokens, ep)
    try:
        topo = build_cluster(cluster) if cluster is not None else build_topology(cspec)
    except ScenarioError as e:
        if cluster is not None or e.file is not None or e.key_path != "nodes":
            raise
        # the cluster the flags make: name the flag that sized it, not the topology file's key
        why = f"EP {ep} spans {cspec.nodes} nodes of {cspec.node.gpus_per_node} GPUs: {e.message}"
        raise ScenarioError("--nodes" if nodes is not None else "--ep", why) from None
    rdma = dict(DERIVED_RDMA_GBps) if rdma_channel_GBps is None else dict.fromkeys(DERIVED_RDMA_GBps, rdma_channel_GBps)
    kernels = [
        KernelSpec(
            comm_sms=c,
            rdma_channel_GBps=rdma,
            nvlink_channel_GBps=nvlink_channel_GBps or NVLINK_CHANNEL_GBps,
            coprocessor=coprocessor,
            multicast=multicast,
            in_network_reduce=in_network_reduce,
        )
        for c in counts
    ]
    trees = multicast or in_network_reduce  # each token's set of remote nodes is counted (sim.moe.multicast)
    with flag_errors():
        gating = Gating(routing, routing_table, skew_alpha, dirichlet, node_sets=trees)
        traffic = route_layer(spec, tokens, gating, seed)
        results = sm_sweep(topo, traffic, kernels[0], counts, model, gpu)
    data: dict[str, object] = results[0].to_dict() if len(results) == 1 else {"sweep": [r.to_dict() for r in results]}
    flags = {"rdma_channel_GBps": rdma_channel_GBps, "nvlink_channel_GBps": nvlink_channel_GBps}
    check_printed(data, flags, topology=None if cluster is None else (cluster, cspec))
    if plot is not None:
        from reports.sm_sweep import plot_sm_sweep

        title = f"EP{ep}, {tokens} tokens/GPU, top-{topk} of {experts}, M={node_limit}, {routing}"
        atomic_write(plot, lambda p: plot_sm_sweep(results, p, title))
    if fmt is Format.json:
        print(json.dumps(data))
        return
    table = Table(title=Text(f"EP{ep} all-to-all on {topo.spec.name} ({routing} routing, {tokens} tokens/GPU)"))
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
    ctx: typer.Context,
    steps: Annotated[
        int, typer.Option("--steps", parser=Int(1, MAX_STEPS), help="training steps (bias updates)")
    ] = 100,
    gamma: Annotated[float, typer.Option("--gamma", parser=Float(0, 1e3), help="bias update speed (V3: 0.001)")] = 1e-3,
    tokens: Annotated[
        int, typer.Option("--tokens-per-step", parser=Tokens, help="tokens routed per training step")
    ] = V3.seq_len,
    ep: Annotated[int, typer.Option("--ep", parser=EP, help="expert-parallel group size (GPUs)")] = DEFAULT_EP,
    experts: ExpertsOpt = V3.n_routed_experts,
    topk: TopKOpt = V3.n_activated_experts,
    node_limit: NodeLimitOpt = V3.n_limited_groups,
    skew_alpha: Annotated[
        float, typer.Option("--skew-alpha", parser=Alpha, help="Zipf exponent of expert popularity")
    ] = 1.0,
    dirichlet: Annotated[
        float | None, typer.Option("--dirichlet", parser=Concentration, help="Dirichlet concentration instead")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", parser=Seed, help="seed of the popularity and the scores")] = 0,
    every: Annotated[int, typer.Option("--every", parser=Int(1, MAX_STEPS), help="print every N steps")] = 10,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Auxiliary-loss-free balancing on skewed routing: busiest expert's load / mean, step by step."""
    refuse_unused_skew(ctx, "skewed", dirichlet)  # (balancing is of skewed routing)
    if fmt is Format.json:
        refuse_given(ctx, ("every",), "not used with --format json (it prints every step)")
    if steps == 1:  # (run_balancing counts a step's loads, then moves the biases for the next)
        refuse_given(ctx, ("gamma",), "not used with --steps 1 (the biases move after a step's loads are counted)")
    spec = _moe_spec(experts=experts, topk=topk, node_limit=node_limit, ep=ep)
    refuse_unbound_node_limit(ctx, spec, V3.n_limited_groups)
    if not spec.limits_tokens:  # (EP reaches the balancing only through the node-limited selection)
        why = (
            f"not used: EP {ep} spans {spec.nodes} node(s), and M = {spec.node_limit} limits no token there, so the "
            "loads are unlimited routing's, the same at any such EP (an EP over more nodes than M is limited)"
        )
        refuse_given(ctx, ("ep",), why)
    require_memory(
        16 * tokens * experts,
        f"scores of {tokens:,} tokens x {experts} experts",
        "--tokens-per-step",
        "use fewer --tokens-per-step",
    )
    require_count(
        steps * tokens * experts,
        MAX_BALANCE_WORK,
        "--steps x --tokens-per-step x --n-routed-experts (about 10 minutes of work at the limit)",
        "--steps",
        "use fewer steps or tokens",
    )
    rng = np.random.default_rng(seed)
    popular = popularity(spec, rng, skew_alpha, dirichlet)
    trace = run_balancing(lambda _step: skewed_scores(tokens, spec, rng, popular), spec, steps, gamma)
    ratios = trace.max_over_mean
    if fmt is Format.json:
        run = {
            "steps": steps,
            "gamma": gamma,
            "tokens_per_step": tokens,
            "ep": ep,
            "experts": experts,
            "topk": topk,
            "node_limit": spec.node_limit,
            "popularity": {"dirichlet": dirichlet} if dirichlet is not None else {"zipf_alpha": skew_alpha},
            "seed": seed,
        }
        print(json.dumps({"max_over_mean": ratios.tolist(), **run}))
        return
    table = Table(title=f"aux-loss-free balancing, gamma {gamma:g}, {tokens} tokens/step")
    table.add_column("step", justify="right")
    table.add_column("max load / mean", justify="right")
    for step in sorted({*range(0, steps, every), steps - 1}):
        table.add_row(str(step), f"{ratios[step]:.2f}")
    out.print(table)
