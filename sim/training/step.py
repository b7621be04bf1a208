"""The training step: the pipeline schedule of chunks, then ZeRO-1's data-parallel phase.

1. Pipeline: the schedule's actions (F, B, I, W, F&B) on every rank, each a chunk of that stage's
   layers from the chunk model (:mod:`sim.training.chunks`), placed by the simpy engine
   (:mod:`sim.pipeline.execute`) with the stage-to-stage sends as flows on the cluster's fabric
   (rank ``d``'s GPU of the timed EP group to rank ``d+1``'s, max-min shared with the other sends).
   Representative fidelity runs one pipeline; per-GPU fidelity one per EP group of a rank (they
   differ by their routing), the step waiting for the slowest.
2. Data-parallel phase (:mod:`sim.training.dp`): each rank reduce-scatters its gradients over its DP
   groups, from the end of the whole pipeline (``dp_overlap: none``) or from the end of its own last
   backward (``tail``); every rank then waits for the global gradient norm (gradient clipping needs
   all of them: a barrier at the last reduce-scatter's end), runs its optimizer shard on all its
   SMs, and all-gathers the updated parameters. The step ends when the last rank's all-gather ends.

Everything reported comes from this timeline (:mod:`sim.training.step_result`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.moe.spec import MoESpec
from sim.network.shared import SharedNetwork
from sim.network.topology import Topology
from sim.pipeline.execute import NetworkP2P, ScheduleRun, execute
from sim.pipeline.ops import Action, Schedule
from sim.training.chunk import ChunkResult, ChunkTimer
from sim.training.chunks import ChunkInputs, ChunkSource, Routing
from sim.training.dp import DpModel, DpSpec, ReplicaSet, SetPhase, stage_ready_times

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class StepSpec:
    inputs: ChunkInputs
    schedule: Schedule
    topology: Topology
    activation_bytes: float  # per stage-to-stage send (one micro-batch's hidden states)
    dp: DpSpec
    completion_rtol: float = 1e-2


@dataclass
class PipelineRun:
    group: int
    run: ScheduleRun
    source: ChunkSource

    def chunk_at(self, device: int, pos: int) -> ChunkResult:
        return self.source.chunk(self.run.schedule.actions[device][pos])


@dataclass
class DeviceTimeline:
    """When a rank's phases happen (seconds from the step's start)."""

    pipeline_end: float
    reduce_scatter: tuple[tuple[float, float], ...]  # its replica set's reduce-scatters, in order
    optimizer: tuple[float, float]
    all_gather: tuple[float, float]

    @property
    def end(self) -> float:
        return self.all_gather[1]

    @property
    def dp_comm_exposed_s(self) -> float:
        """Reduce-scatter time after the rank's own pipeline work, and the all-gather: nothing computes
        on the rank while they run."""
        rs = sum(max(0.0, e - max(s, self.pipeline_end)) for s, e in self.reduce_scatter)
        return rs + self.all_gather[1] - self.all_gather[0]


@dataclass
class StepRun:
    spec: StepSpec
    pipelines: list[PipelineRun]
    dp: list[SetPhase]  # per rank: its replica set's DP phase
    timelines: list[DeviceTimeline]
    wall_s: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def step_time(self) -> float:
        return max(t.end for t in self.timelines)

    def reported_pipeline(self) -> PipelineRun:
        """The pipeline that ends last (the one the step waits for)."""
        return max(self.pipelines, key=lambda p: max((s.end for s in p.run.recorder.spans), default=0.0))


class _Counting:
    """Reports progress while the engine asks the chunk source for every action's duration."""

    def __init__(self, source: ChunkSource, progress: Progress | None, total: int, label: str) -> None:
        self.source = source
        self.progress = progress
        self.total = total
        self.done = 0
        self.label = label

    def duration(self, action: Action, schedule: Schedule) -> float:
        d = self.source.duration(action, schedule)
        self.done += 1
        if self.progress is not None and (self.done % 64 == 0 or self.done == self.total):
            self.progress(self.label, self.done, self.total)
        return d


def run_step(spec: StepSpec, progress: Progress | None = None) -> StepRun:
    """Simulate one training step."""
    t0 = time.perf_counter()
    inp = spec.inputs
    lay = inp.layout
    m = inp.model
    moe = MoESpec.of_model(m, lay.ep)
    shared = SharedNetwork(spec.topology, completion_rtol=spec.completion_rtol)
    routing = Routing(inp, moe)
    groups = lay.ep_groups if inp.fidelity == "per-gpu" else 1
    timers: dict[tuple[int, int], ChunkTimer] = {}
    runs: dict[int, dict[tuple[object, ...], Any]] = {}  # DeepEP simulations shared by a rank's EP groups
    pipelines: list[PipelineRun] = []
    total = spec.schedule.num_actions() * groups
    events = 0
    for g in range(groups):
        source = ChunkSource(inp, spec.schedule, shared, routing, g, timers, runs)
        counting = _Counting(source, progress, total, "timing chunks")
        counting.done = g * spec.schedule.num_actions()
        gpus = tuple(int(lay.ep_group(d, g)[0]) for d in range(lay.devices))
        p2p = NetworkP2P(spec.topology, gpus, spec.activation_bytes, spec.completion_rtol)
        run = execute(spec.schedule, counting, p2p)
        events += len(run.recorder.spans) + len(run.recorder.transfers)
        pipelines.append(PipelineRun(g, run, source))
    if progress is not None:
        progress("data-parallel phase", 0, lay.devices)
    ends = [0.0] * lay.devices
    for p in pipelines:
        for s in p.run.recorder.spans:
            ends[s.device] = max(ends[s.device], s.end)
    pipe_end = max(ends)
    finished = [(s.device, s.pos, s.end) for p in pipelines for s in p.run.recorder.spans]
    ready = stage_ready_times(spec.schedule, lay, finished)
    model = DpModel(spec.dp, m, lay, spec.schedule, spec.topology, inp.cost.memory_time)
    phases: dict[tuple[int, ...], SetPhase] = {}
    dp: list[SetPhase] = []
    for d in range(lay.devices):
        rset = ReplicaSet.of(lay, spec.schedule, d)
        if rset.ranks not in phases:
            phases[rset.ranks] = model.phase(d, ready, pipe_end)
        dp.append(phases[rset.ranks])
    barrier = max(ph.reduce_scatter_end for ph in dp)
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
            )
        )
    if progress is not None:
        progress("data-parallel phase", lay.devices, lay.devices)
    timed = sum(t.timed for t in timers.values())
    stats = {
        "pipelines": len(pipelines),
        "actions": total,
        "events": events,
        "chunk_timings": timed,
        "routed_layers": routing.routed_layers,
    }
    return StepRun(spec, pipelines, dp, timelines, time.perf_counter() - t0, stats)
