"""The training step: the pipeline schedule of chunks, then ZeRO-1's data-parallel phase.

1. Pipeline: the schedule's actions (F, B, I, W, F&B) on every rank, each a chunk of that stage's
   layers from the chunk model (:mod:`sim.step.actions`), placed by the simpy engine
   (:mod:`sim.pipeline.execute`) with the stage-to-stage sends as flows on the cluster's fabric
   (rank ``d``'s GPU of the timed EP group to rank ``d+1``'s, max-min shared with the other sends).
   Representative fidelity runs one pipeline; per-GPU fidelity one per EP group of a rank (they
   differ by their routing), the step waiting for the slowest.
2. Data-parallel phase (:mod:`sim.step.zero1`): each rank reduce-scatters its gradients over its DP
   groups, from the end of the whole pipeline (``dp_overlap: none``) or from the end of its own last
   backward (``tail``); every rank then waits for the global gradient norm (gradient clipping needs
   all of them: a barrier at the last reduce-scatter's end), runs its optimizer shard on all its
   SMs, and all-gathers the updated parameters. The step ends when the last rank's all-gather ends.

Contention (``training.contention``). ``shared`` (the default): one event loop and one network for
every byte of the step. Each action's chunk runs as a process (:mod:`sim.chunk.plan`): its
DeepEP phases start as coflows on the shared network at the times the chunk reaches them (every EP
group of the rank, its bytes on each link), pipeline sends are coflows of all the rank's pipelines,
and the ZeRO-1 collectives are coflows of each replica set at the times they run, so all of them
share NICs, NVLink, leaf uplinks and spines max-min fairly; each coflow alone takes the time its
own per-flow model gives (the DeepEP channel limits, the collective's steps). ``isolated``: the
figures before that model, kept to measure its effect: every DeepEP phase takes its time alone,
pipeline sends are one flow each (one GPU per rank), and the collectives run after the pipeline,
each replica set alone (docs/step.md).

Everything reported comes from this timeline (:mod:`sim.step.accounting`).
"""

from __future__ import annotations

import time
from typing import Any

from sim.chunk.timer import ChunkTimer
from sim.engine.collector import collector_paused
from sim.moe.spec import MoESpec
from sim.network.context import SimContext
from sim.pipeline.execute import NetworkP2P, execute
from sim.step.actions import ChunkSource, Routing
from sim.step.shared import run_shared
from sim.step.spec import (
    CONTENTION,
    Counting,
    DeviceTimeline,
    PipelineRun,
    Progress,
    StepRun,
    StepSpec,
)
from sim.step.tied_embedding import embedding_groups, embedding_pair
from sim.step.zero1 import DpModel, ReplicaSet, SetPhase, stage_ready_times

__all__ = [
    "CONTENTION",
    "DeviceTimeline",
    "PipelineRun",
    "Progress",
    "StepRun",
    "StepSpec",
    "isolated_dp",
    "run_step",
    "setup",
]


def run_step(spec: StepSpec, progress: Progress | None = None) -> StepRun:
    """Simulate one training step."""
    if spec.contention not in CONTENTION:
        raise ValueError(f"contention must be one of {', '.join(CONTENTION)}, got {spec.contention!r}")
    t0 = time.perf_counter()
    lay = spec.inputs.layout
    ctx, routing, timers, sources, model = setup(spec)
    total = spec.schedule.num_actions() * len(sources)
    model.time_ahead(shared=spec.contention == "shared")  # on the second core, while the chunks are timed
    try:
        with collector_paused():  # the loop's garbage is short-lived: see sim/engine/collector.py
            if spec.contention == "isolated":
                pipelines, dp, timelines = _isolated(spec, ctx, sources, model, progress, total)
            else:
                pipelines, dp, timelines = run_shared(spec, ctx, sources, model, progress, total)
    finally:
        model.cancel_ahead()
    timed = sum(t.timed for t in timers.values())
    events = sum(len(p.run.recorder.spans) + len(p.run.recorder.transfers) for p in pipelines)
    net = ctx.network
    stats: dict[str, Any] = {
        "pipelines": len(pipelines),
        "actions": total,
        "events": events,
        "chunk_timings": timed,
        "routed_layers": routing.routed_layers,
        "flows": net.stats.flows,
        "network_recomputes": net.stats.recomputes,
    }
    if spec.contention == "shared":
        stats["coflow_delay_ms"] = {f"{t}@{b}": v * 1e3 for (t, b), v in sorted(net.stats.coflow_delay_s.items())}
        stats["coflow_GB"] = {f"{t}@{b}": v / 1e9 for (t, b), v in sorted(net.stats.coflow_bytes.items())}
    if lay.fsdp:  # per rank: counts and the time waiting for weights (inside the actions' spans or before them)
        stats["fsdp"] = {
            "all_gathers": [len(t.fsdp_gathers) for t in timelines],
            "reduce_scatters": [len(t.reduce_scatter) for t in timelines],
            "wait_s": [t.fsdp_wait_s for t in timelines],
        }
    return StepRun(spec, pipelines, dp, timelines, time.perf_counter() - t0, stats, net.carried())


def setup(spec: StepSpec) -> tuple[SimContext, Routing, dict[tuple[int, int], ChunkTimer], list[ChunkSource], DpModel]:
    """What a step's simulation starts from: its context (network), routing, chunk timers, one chunk
    source per pipeline it times (every EP group's with per-GPU fidelity, else one) and its DP model."""
    inp = spec.inputs
    lay = inp.layout
    ctx = SimContext(spec.topology, spec.completion_rtol)
    moe = MoESpec.of_model(
        inp.model,
        lay.ep,
        lay.etp,
        inp.combine_format,
        spec.topology.domain_gpus,  # (the NVLink domain DeepEP routes over as one node: not always 8 GPUs)
        inp.gating.dispatcher,
        inp.dispatch_format,
    )
    routing = Routing(inp, moe)
    groups = lay.ep_groups if inp.fidelity == "per-gpu" else 1
    timers: dict[tuple[int, int], ChunkTimer] = {}
    runs: dict[int, dict[tuple[object, ...], Any]] = {}  # DeepEP simulations shared by a rank's EP groups
    sources = [ChunkSource(inp, spec.schedule, ctx, routing, g, timers, runs) for g in range(groups)]
    model = DpModel(spec.dp, inp.model, lay, spec.schedule, spec.topology, inp.cost.memory_time, ctx)
    return ctx, routing, timers, sources, model


def _isolated(
    spec: StepSpec,
    ctx: SimContext,
    sources: list[ChunkSource],
    model: DpModel,
    progress: Progress | None,
    total: int,
) -> tuple[list[PipelineRun], list[SetPhase], list[DeviceTimeline]]:
    """Every DeepEP phase alone, each pipeline on its own (one flow per send), then the DP phase with
    each replica set's collectives alone."""
    lay = spec.inputs.layout
    pipelines: list[PipelineRun] = []
    for g, source in enumerate(sources):
        counting = Counting(source, progress, total, "timing chunks")
        counting.done = g * spec.schedule.num_actions()
        gpus = tuple(int(lay.ep_group(d, g)[0]) for d in range(lay.devices))
        p2p = NetworkP2P(spec.topology, gpus, spec.activation_bytes, spec.completion_rtol)
        pipelines.append(PipelineRun(g, execute(spec.schedule, counting, p2p, ctx), source))
    if progress is not None:
        progress("data-parallel phase", 0, lay.devices)
    finished = [(s.device, s.pos, s.end) for p in pipelines for s in p.run.recorder.spans]
    dp, timelines = isolated_dp(spec, model, finished)
    if progress is not None:
        progress("data-parallel phase", lay.devices, lay.devices)
    return pipelines, dp, timelines


def isolated_dp(
    spec: StepSpec, model: DpModel, finished: list[tuple[int, int, float]]
) -> tuple[list[SetPhase], list[DeviceTimeline]]:
    """The DP phase after the pipeline's actions ended at ``finished`` (device, pos, end), each replica
    set's collectives alone: reduce-scatters from each stage's gradients (``tail``) or from the whole
    pipeline's end (``none``), the barrier at the last one's end, the optimizer, the all-gathers."""
    lay = spec.inputs.layout
    ends = [0.0] * lay.devices
    for device, _, end in finished:
        ends[device] = max(ends[device], end)
    pipe_end = max(ends)
    ready = stage_ready_times(spec.schedule, lay, finished)
    phases: dict[tuple[int, ...], SetPhase] = {}
    dp: list[SetPhase] = []
    for d in range(lay.devices):
        rset = ReplicaSet.of(lay, spec.schedule, d)
        if rset.ranks not in phases:
            phases[rset.ranks] = model.phase(d, ready, pipe_end)
        dp.append(phases[rset.ranks])
    barrier = max(ph.reduce_scatter_end for ph in dp)
    # the shared embedding's all-reduce between the pipeline's ends, alone, once both have reduce-scattered
    pair = embedding_pair(spec.inputs.model, lay, spec.schedule)
    sync: tuple[float, float] | None = None
    if pair is not None:
        start = max(dp[r].reduce_scatter_end for r in pair)
        sync = (
            start,
            start + model.alone("allreduce", embedding_groups(spec.inputs.model, lay, pair, spec.dp.grad_reduce_bytes)),
        )
        barrier = max(barrier, sync[1])
    timelines = []
    for d in range(lay.devices):
        ph = dp[d]
        opt_end = barrier + max(dp[r].optimizer_s for r in ph.rset.ranks)
        timelines.append(
            DeviceTimeline(
                pipeline_end=ends[d],
                reduce_scatter=ph.reduce_scatter,
                optimizer=(barrier, barrier + ph.optimizer_s),
                all_gather=(opt_end, opt_end + ph.all_gather_s),
                embedding_sync=sync if pair is not None and d in pair else None,
            )
        )
    return dp, timelines
