"""simulate(scenario) -> RunResult: pure, no files, no plots.

Data flows one way: the scenario describes; :func:`assemble` builds from it the cost model
(profile), the topology, the routing and the chunk timing, which give every action its duration;
the engine places the actions; the results account for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sim.config import Scenario
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import GpuSpec, datasheet_for
from sim.hardware.profile import load_profile
from sim.keys import as_yaml_key
from sim.model.stages import layers_per_stage
from sim.moe.deepep import KernelSpec
from sim.moe.gating import Gating
from sim.network.context import SimContext
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology, build_topology
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, NetworkP2P, ScheduleRun, execute
from sim.pipeline.ops import Schedule
from sim.pipeline.schedules import build_schedule
from sim.pipeline.validate import check_schedule
from sim.results import ScheduleMetrics, metrics
from sim.training.balance import balanced_ranks, balanced_split, layer_costs, rank_positions
from sim.training.chunks import ChunkInputs, ChunkSource, Routing
from sim.training.dp import DpSpec
from sim.training.layout import StagePlacement
from sim.training.setup import ChunkConfig, ChunkSetup, build_chunk
from sim.training.step import Progress, StepRun, StepSpec, run_step
from sim.training.step_result import StepResult, account, check_memory
from sim.units import BF16_BYTES

ACTIVATION_BYTES = BF16_BYTES  # a stage-to-stage send carries the hidden states in BF16 (DeepSeek-V3 report 3.3)


@dataclass(frozen=True)
class ChunkTimes:
    """Where the op times came from when the chunk model gave them (ms, for reports)."""

    forward_ms: float
    backward_ms: float
    weight_ms: float
    overlapped_ms: float
    layers: int
    compute_sms: int


@dataclass(frozen=True)
class Assembly:
    """What a run needs, built from the scenario once."""

    times: OpTimes
    transport: P2P | NetworkP2P
    chunk: ChunkTimes | None = None


def _chunk_times(sc: Scenario) -> tuple[OpTimes, ChunkTimes]:
    """F, B (I + W), W and F&B of one stage's chunk from the chunk model (uniform stages)."""
    w = sc.workload
    config = ChunkConfig(
        model=sc.model,
        profile=sc.profile_path,
        layers=w.layers_per_stage,
        first_layer=w.first_layer,
        tokens=w.tokens,
        ep=w.ep,
        routing=Gating(w.routing),
        seed=sc.seed,
        comm_sms=sc.comm.sms,
        coprocessor=sc.comm.coprocessor,
        params=w.params(),
    )
    try:
        setup: ChunkSetup = build_chunk(config)
    except ScenarioError as err:
        raise as_yaml_key(err).with_file(str(sc.source_path)) from None
    timer, stage = setup.timer, setup.stage
    f = timer.forward(stage).span_s
    b = timer.backward(stage).span_s
    wgt = min(timer.backward(stage, "W").span_s, b)
    fb = timer.pair(stage, stage).span_s
    pp = sc.pipeline.pp
    info = ChunkTimes(f * 1e3, b * 1e3, wgt * 1e3, fb * 1e3, w.layers_per_stage, setup.compute_sms)
    return OpTimes.uniform(pp, f, b, wgt, fb), info


def _given_times(sc: Scenario) -> OpTimes:
    """Op times as the scenario gives them, rescaled to the SMs left to compute when the SM count they
    were measured at is given (by the profile's measured GEMM throughput against SMs)."""
    assert sc.ops is not None
    times = sc.ops.op_times(sc.pipeline.pp)
    measured = sc.ops.measured_at_compute_sms
    if measured is None:
        return times
    split = sc.comm.split()
    model = CostModel(load_profile(sc.profile_path))
    try:
        factor = split.throughput_at(measured, model) / split.gemm_throughput_fraction(model)
    except ScenarioError as err:
        raise ScenarioError("profile", err.message) from None
    return OpTimes(
        tuple(x * factor for x in times.f),
        tuple(x * factor for x in times.b),
        tuple(x * factor for x in times.w),
        None if times.fb is None else tuple(x * factor for x in times.fb),
    )


def assemble(sc: Scenario) -> Assembly:
    """Costs, topology and timing of a scenario."""
    if sc.ops is not None:
        times, chunk = _given_times(sc), None
    else:
        times, chunk = _chunk_times(sc)
    if sc.cluster is None:
        transport: P2P | NetworkP2P = sc.p2p.p2p()
    else:
        topo = build_topology(sc.cluster.spec)
        transport = NetworkP2P(
            topo, sc.cluster.placement(sc.devices()), sc.p2p.activation_bytes, sc.cluster.completion_rtol
        )
    return Assembly(times, transport, chunk)


@dataclass(frozen=True)
class RunResult:
    """Runs and metrics of every schedule in the scenario, in the scenario's order."""

    scenario: Scenario
    runs: tuple[ScheduleRun, ...]
    metrics: tuple[ScheduleMetrics, ...]
    times: OpTimes | None = None
    chunk: ChunkTimes | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"scenario": self.scenario.name, "schedules": [m.to_dict() for m in self.metrics]}
        if self.times is not None:
            t = self.times
            out["op_times_ms"] = {
                "forward": [x * 1e3 for x in t.f],
                "backward": [x * 1e3 for x in t.b],
                "weight": [x * 1e3 for x in t.w],
                "overlapped": None if t.fb is None else [x * 1e3 for x in t.fb],
                "source": "given" if self.chunk is None else "chunk model",
            }
        if self.chunk is not None:
            out["chunk"] = {
                "layers_per_stage": self.chunk.layers,
                "compute_sms": self.chunk.compute_sms,
                "profile": self.scenario.profile_path.name,
            }
        return out


def run_schedule(
    name: str,
    pp: int,
    microbatches: int,
    times: OpTimes,
    p2p: P2P | NetworkP2P | None = None,
    virtual_stages: int = 2,
) -> ScheduleRun:
    """Build, check and execute one schedule."""
    schedule = build_schedule(name, pp, microbatches, virtual_stages)
    check_schedule(schedule)
    return execute(schedule, times, p2p)


def compare(
    names: list[str],
    pp: int,
    microbatches: int,
    times: OpTimes,
    p2p: P2P | NetworkP2P | None = None,
    virtual_stages: int = 2,
    progress: Callable[[str], None] | None = None,
) -> tuple[tuple[ScheduleRun, ...], tuple[ScheduleMetrics, ...]]:
    """Run several schedules on the same layout and op times."""
    runs = []
    for name in names:
        if progress:
            progress(name)
        runs.append(run_schedule(name, pp, microbatches, times, p2p, virtual_stages))
    return tuple(runs), tuple(metrics(r) for r in runs)


def simulate(scenario: Scenario, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run every schedule of ``scenario`` and account for it (a schedule comparison; a scenario with
    a ``training`` section is a training step: :func:`simulate_training`)."""
    plan = scenario.pipeline
    assert plan.microbatches is not None, "parse_scenario requires micro-batches without a training section"
    if progress:
        progress("timing the chunks")
    parts = assemble(scenario)
    runs, mets = compare(
        list(plan.schedules),
        plan.pp,
        plan.microbatches,
        parts.times,
        parts.transport,
        plan.virtual_stages,
        progress,
    )
    return RunResult(scenario, runs, mets, parts.times, parts.chunk)


# ---------------------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class TrainingRun:
    """A simulated training step: its timeline and what it says."""

    scenario: Scenario
    step: StepRun
    result: StepResult
    gpu: GpuSpec

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario.name} | self.result.to_dict()


def step_spec(sc: Scenario) -> tuple[StepSpec, GpuSpec]:
    """Everything a training step needs, built from the scenario once."""
    t = sc.training
    assert t is not None
    w = sc.workload
    layout, schedule = sc.step_layout()
    profile = load_profile(sc.profile_path)
    cost = CostModel(profile)
    gpu = datasheet_for(profile.device.name)
    assert gpu is not None, "load_scenario refuses a training step on a GPU without a datasheet"
    split = sc.comm.split()
    params = w.params()
    kernel = KernelSpec(comm_sms=sc.comm.sms, notify_wait_us=params.notify_wait_us, coprocessor=sc.comm.coprocessor)
    gating = Gating(w.routing)
    samples = 1 if gating.routing == "balanced" else t.routing_samples
    inputs = ChunkInputs(
        model=sc.model,
        layout=layout,
        cost=cost,
        params=params,
        kernel=kernel,
        gating=gating,
        seed=sc.seed,
        compute_sms=split.compute_sms,
        fidelity=t.fidelity,
        routing_samples=samples,
    )
    cluster = sc.cluster_spec()
    rtol = sc.cluster.completion_rtol if sc.cluster is not None else COMPLETION_RTOL
    topology = build_topology(cluster)
    if t.layers_per_stage == "balanced":
        inputs, schedule = _balanced(sc, inputs, schedule, topology, gpu)
    spec = StepSpec(
        inputs=inputs,
        schedule=schedule,
        topology=topology,
        activation_bytes=float(layout.tokens * sc.model.dim * ACTIVATION_BYTES),
        dp=DpSpec(t.dp_overlap, t.dp_algorithm, t.grad_reduce_bytes, rtol),
        completion_rtol=rtol,
        contention=t.contention,
    )
    return spec, gpu


def _balanced(
    sc: Scenario, inputs: ChunkInputs, schedule: Schedule, topology: Topology, gpu: GpuSpec
) -> tuple[ChunkInputs, Schedule]:
    """The layout with layers split by predicted cost (:mod:`sim.training.balance`), memory checked."""
    t = sc.training
    assert t is not None
    probe = replace(inputs, fidelity="representative", routing_samples=1)
    source = ChunkSource(probe, schedule, SimContext(topology), Routing(probe, sc.moe_spec()))
    timer = source.timer(0)

    def pair_time(place: StagePlacement) -> float:
        stage = source.build(place)
        return timer.pair(stage, stage).span_s

    costs = layer_costs(sc.model, pair_time)
    stages = len(schedule.routes[0])
    even = layers_per_stage(sc.model.n_layers, stages)
    positions = rank_positions(schedule.routes, schedule.stage_device)
    split = balanced_ranks(sc.model, positions, stages, costs, [even, balanced_split(sc.model, stages, costs)])
    try:
        layout, schedule = sc.step_layout(split)
        if t.check_memory:
            check_memory(sc.model, layout, schedule, gpu)
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(sc.source_path))) from None
    return replace(inputs, layout=layout), schedule


def simulate_training(sc: Scenario, progress: Progress | None = None) -> TrainingRun:
    """Simulate the scenario's training step and account for it."""
    spec, gpu = step_spec(sc)
    step = run_step(spec, progress)
    return TrainingRun(sc, step, account(step, gpu), gpu)
