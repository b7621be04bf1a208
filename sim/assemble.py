"""assemble(scenario) -> Assembly: everything a run needs, built once; ``twin validate`` stops here.

The scenario describes (:mod:`sim.config`: the schema and the files it names); this module builds
from it, in one place and once, what either kind of run needs:

* both kinds: the SM split, the cost model of the profile (its device checked against the split),
  the chunk model's parameters, DeepEP's kernel spec, the gating, the cluster's fabric (built once,
  with the scenario's what-ifs);
* a training step (``training:``): the layout and its schedule (layers balanced by predicted cost when
  asked), the GPU's datasheet, the memory check, and the :class:`~sim.step.spec.StepSpec`;
* a schedule comparison: every schedule built and checked, the stage-to-stage transport, and the op
  times: given (``ops:``, rescaled to the SM split) or the chunk model, routed and ready to time.

Whatever a run would refuse is refused here, as one :class:`~sim.errors.ScenarioError` naming the
scenario file and key, so ``twin validate`` (load + assemble) and ``twin run`` (load + assemble +
simulate) refuse the same inputs with the same line. :mod:`sim.run` only simulates an assembly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sim.chunk.build import ChunkConfig, ChunkSetup, build_chunk
from sim.chunk.overheads import COMM_BESIDE_COMPUTE, ChunkParams
from sim.config import CommSpec, OpsSpec, P2PSpec, Scenario, TrainingSpec, WorkloadSpec, load_scenario
from sim.errors import LayoutError, ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import H800, GpuSpec, SmSplit, datasheet_for, known_gpus
from sim.hardware.interference import unfit_profile_source
from sim.hardware.profile import check_device_sms, load_profile
from sim.keys import as_yaml_key
from sim.model.compute_whatifs import ComputeWhatIfs
from sim.model.spec import ModelSpec
from sim.model.stages import layers_per_stage
from sim.moe.deepep import KernelSpec
from sim.moe.gating import Gating
from sim.moe.multicast import nothing_to_merge
from sim.moe.spec import MoESpec, unused_node_limit
from sim.network.context import SimContext
from sim.network.spec import ClusterSpec, build_cluster_spec
from sim.network.topology import Topology
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, NetworkP2P
from sim.pipeline.ops import Schedule
from sim.pipeline.schedules import build_schedule
from sim.pipeline.validate import check_schedule
from sim.step.accounting import Relayout, check_memory
from sim.step.actions import ChunkInputs, ChunkSource, Routing
from sim.step.layer_split import balanced_ranks, balanced_split, layer_costs, rank_positions
from sim.step.layout import Layout, StagePlacement, build_layout
from sim.step.spec import StepSpec
from sim.step.zero1 import DpSpec, ReplicaSet, pieces, replica_set, takes_algorithm
from sim.units import BF16_BYTES

ACTIVATION_BYTES = BF16_BYTES  # a stage-to-stage send carries the hidden states in BF16 (DeepSeek-V3 report 3.3)


@dataclass(frozen=True)
class Assembly:
    """What a run needs, built from ``scenario`` once (:func:`assemble`).

    A training step has ``layout`` and ``step`` (``schedules`` is its one schedule, ``gpu`` its
    datasheet); a schedule comparison has ``transport`` and either ``times`` (given) or ``chunk`` (the
    chunk model, timed by :func:`sim.run.op_times`; its timer memoises, so timing twice gives the same
    times)."""

    scenario: Scenario
    split: SmSplit  # SMs for communication and for compute
    cost: CostModel  # the scenario's profile
    params: ChunkParams  # the chunk model's interference, launch gap, notify wait
    kernel: KernelSpec  # DeepEP's kernels on the split's communication SMs
    gating: Gating  # the routing of the routed experts
    schedules: tuple[Schedule, ...]  # built and checked; a training step's one (balanced when asked)
    topology: Topology | None  # the cluster's fabric with the scenario's what-ifs; None: the p2p link
    gpu: GpuSpec | None = None  # the profile's datasheet (a training step's HBM and peak)
    layout: Layout | None = None  # training step
    step: StepSpec | None = None  # training step
    transport: P2P | NetworkP2P | None = None  # schedule comparison: stage-to-stage sends
    times: OpTimes | None = None  # schedule comparison: op times given in the scenario (rescaled)
    chunk: ChunkSetup | None = None  # schedule comparison without ops: the chunk model, routed

    @property
    def training(self) -> bool:
        """A training step (else a schedule comparison)."""
        return self.step is not None


# --------------------------------------------------------------------- the description, built


def kernel_spec(sc: Scenario, notify_wait_us: float) -> KernelSpec:
    """DeepEP's kernels as the scenario sets them; a dense model dispatches nothing, so its spec (never
    used) is DeepEP's default whatever ``comm.sms`` (which may then be 0 without a co-processor)."""
    if not sc.model.is_moe_model or sc.workload.ep == 1:  # (EP 1: every expert on the GPU)
        return KernelSpec(notify_wait_us=notify_wait_us)
    return KernelSpec(
        comm_sms=sc.comm.sms,
        notify_wait_us=notify_wait_us,
        coprocessor=sc.comm.coprocessor,
        dispatcher=sc.workload.dispatcher,
        multicast=sc.comm.multicast,
        in_network_reduce=sc.comm.in_network_reduce,
    )


def sm_split(
    comm: CommSpec, model: ModelSpec | None = None, gpu: GpuSpec = H800, dispatcher: str = "deepep"
) -> SmSplit:
    """The SM split of ``comm`` on ``gpu`` (errors name ``comm.*``); a dense ``model``, NCCL's
    all-to-all ``dispatcher``, or none (an EP group of one GPU dispatches nothing) runs no DeepEP
    kernel, so it may leave communication no SM without a co-processor."""
    try:
        deepep = (model is None or model.is_moe_model) and dispatcher == "deepep"
        return SmSplit(gpu=gpu, comm_sms=comm.sms, coprocessor=comm.coprocessor, sm_kernels=deepep)
    except ScenarioError as err:
        raise as_yaml_key(err) from None


def chunk_params(workload: WorkloadSpec) -> ChunkParams:
    """The chunk model's parameters: the trace-derived defaults, overridden where the workload gives them."""
    given: dict[str, object] = {
        k: v
        for k, v in {
            "gemm_beside_comm": workload.gemm_beside_comm,
            "memory_beside_comm": workload.memory_beside_comm,
            "launch_gap_us": workload.launch_gap_us,
            "notify_wait_us": workload.notify_wait_us,
            "nccl_sms": workload.nccl_sms,
        }.items()
        if v is not None
    }
    if workload.comm_beside_compute is not None:
        unknown = set(workload.comm_beside_compute) - set(COMM_BESIDE_COMPUTE)
        if unknown:
            raise ScenarioError(
                "workload.comm_beside_compute",
                f"unknown phase {sorted(unknown)[0]!r}; choose from {', '.join(COMM_BESIDE_COMPUTE)}",
            )
        given["comm_beside_compute"] = {**COMM_BESIDE_COMPUTE, **workload.comm_beside_compute}
    try:
        return ChunkParams(interference=workload.interference, **given)  # type: ignore[arg-type]
    except ScenarioError as err:
        raise as_yaml_key(err) from None


def given_op_times(ops: OpsSpec, pp: int) -> OpTimes:
    """The op times ``ops`` gives (ms -> s), one per model stage (errors name ``ops.*``)."""

    def per_stage(key: str, values: list[float]) -> tuple[float, ...]:
        if len(values) == 1:
            values = values * pp
        if len(values) != pp:
            raise ScenarioError(f"ops.{key}", f"give one value or one per model stage ({pp}), got {len(values)}")
        for i, v in enumerate(values):
            if not v >= 0:
                raise ScenarioError(f"ops.{key}[{i}]", f"times must be >= 0, got {v}")
        return tuple(v * 1e-3 for v in values)

    fb = None if ops.overlapped_ms is None else per_stage("overlapped_ms", ops.overlapped_ms)
    times = OpTimes(
        per_stage("forward_ms", ops.forward_ms),
        per_stage("backward_ms", ops.backward_ms),
        per_stage("weight_ms", ops.weight_ms),
        fb,
    )
    try:
        times.validate(pp)
    except ScenarioError as err:
        names = {"f": "forward_ms", "b": "backward_ms", "w": "weight_ms", "fb": "overlapped_ms"}
        raise ScenarioError(f"ops.{names.get(err.key_path, err.key_path)}", err.message) from None
    return times


def p2p_link(p2p: P2PSpec) -> P2P:
    """The alpha-beta link of ``p2p`` in SI units."""
    return P2P(p2p.activation_bytes, p2p.bandwidth_GBps * 1e9, p2p.latency_us * 1e-6)


def moe_spec(sc: Scenario) -> MoESpec:
    """The model's MoE layer over the workload's EP group (experts not dividing over EP name
    ``workload.ep``, as the layout does)."""
    try:
        etp = sc.training.etp if sc.training is not None else 1
        cluster = sc.cluster_spec() if sc.cluster is not None and sc.training is not None else None
        domain = None if cluster is None else cluster.node.domain_gpus  # (DeepEP's node, as the step takes it)
        span = sc.workload.ep * etp  # the consecutive GPUs of an EP group (sim.step.layout.Layout.ep_group)
        if domain is not None and domain % span and span % domain:
            raise ScenarioError(
                "cluster.topology",
                f"its NVLink domains of {domain} GPUs (node.scale_up_gpus, else a node) cut EP groups of {span} GPUs: "
                "an EP group "
                "must lie in one domain or span whole domains",
            )
        w = sc.workload
        c = sc.comm
        return MoESpec.of_model(sc.model, w.ep, etp, c.combine_format, domain, w.dispatcher, c.dispatch_format)
    except ScenarioError as err:
        raise as_yaml_key(ScenarioError("ep" if err.key_path == "experts" else err.key_path, err.message)) from None


def _check_set_keys(t: TrainingSpec) -> None:
    """Keys written in the file (whatever their value) that the layout would not read are refused."""
    given = t.model_fields_set
    unread = [
        ("tp_comm_overlap", t.tp == 1, "overlaps TP collectives: needs training.tp > 1"),
        ("cp_comm", t.cp == 1, "exchanges keys and values over CP: needs training.cp > 1"),
        ("fsdp_reshard_after_forward", not t.fsdp, "an FSDP setting: needs training.fsdp: true"),
    ]
    for key, unused, why in unread:
        if key in given and unused:
            raise ScenarioError(f"training.{key}", why)


def _check_layout_keys(sc: Scenario, layout: Layout, schedule: Schedule) -> None:
    """Keys of the layout that this layout leaves nothing to do are refused: a layer split where a
    route has one stage, ZeRO-1's tail where one rank holds one stage, a DP algorithm no group runs."""
    t = sc.training
    assert t is not None
    given = t.model_fields_set
    stages = len(schedule.routes[0])
    if "layers_per_stage" in given and t.layers_per_stage != "even" and stages == 1:
        raise ScenarioError(
            "training.layers_per_stage",
            f"not used: {schedule.name} on PP {sc.pipeline.pp} has one stage, which holds every layer; remove it",
        )
    if t.dp_overlap == "tail" and layout.devices == 1 and len(pieces(sc.model, layout, schedule, 0)) == 1:
        raise ScenarioError(
            "training.dp_overlap",
            "not used: one pipeline rank holding one stage ends its backward when the pipeline does, so tail "
            "reduce-scatters when none does; remove it",
        )
    mbs = schedule.num_microbatches
    if sc.workload.routing != "balanced" and t.routing_samples > mbs:  # (balanced: refused in sim.config)
        raise ScenarioError(
            "training.routing_samples",
            f"{t.routing_samples} samples, but a pipeline runs {mbs} micro-batches and micro-batch m routes with "
            f"sample m mod {t.routing_samples}: only the first {mbs} are ever used; give at most {mbs}",
        )
    rsets = [ReplicaSet.of(layout, schedule, d) for d in range(layout.devices)]
    moe = sc.model.is_moe_model  # (a dense model's expert_dp counts nothing)
    if all(r.dp == 1 and (r.expert_dp == 1 or not moe) for r in rsets):  # no copy of any weight to synchronise
        # (fsdp alone: it would gather and scatter over groups of one GPU, and count a gathered unit's
        # memory on top; grad_reduce_bytes and dp_overlap then change nothing, which a search's points
        # reaching DP 1 from a base that sets them must be free to leave as they are)
        if t.fsdp:
            raise ScenarioError(
                "training.fsdp",
                "not used: every weight has one copy (data parallelism 1, expert DP 1), so there is nothing to "
                "shard; remove it",
            )
    if "dp_algorithm" in given:
        sizes = {len(ReplicaSet.of(layout, schedule, d).gpus(layout)) for d in range(layout.devices)}
        if not any(takes_algorithm(layout, n) for n in sizes):
            why = (
                f"each TP rank's DP group is a ring (training.tp {layout.tp})"
                if layout.tp > 1
                else f"no DP group spans more than one whole node of {layout.gpus_per_node} GPUs "
                f"(groups of {', '.join(map(str, sorted(sizes)))}), so each is a ring"
            )
            raise ScenarioError("training.dp_algorithm", f"not used: {why}; remove it")


def _check_node_limit(sc: Scenario, moe: MoESpec) -> None:
    """A node limit M the scenario writes in place of its model's (``model.n_limited_groups``) is held
    to the rule ``--n-limited-groups`` is (:func:`sim.moe.spec.unused_node_limit`): refused where it
    changes nothing, or is above the EP group's nodes (it routes as M = the node count); the model's
    own M (its config's: top-k for no limit) is not the scenario's to refuse."""
    default = sc.node_limit_written
    if default is None or not sc.model.is_moe_model:
        return
    why = unused_node_limit(moe, default)
    if why is not None:
        raise ScenarioError("model.n_limited_groups", why)


def _check_node_sets(sc: Scenario, moe: MoESpec) -> None:
    """Switch multicast and in-network reduction merge a token's copies to several remote nodes: refused
    where no token reaches two (an EP group of under three nodes, a node limit of one, or top-1 routing:
    :func:`sim.moe.multicast.nothing_to_merge`)."""
    why = nothing_to_merge(moe, "model.n_activated_experts", "model.n_limited_groups")
    for key in ("multicast", "in_network_reduce"):
        if getattr(sc.comm, key) and why is not None:
            raise ScenarioError(f"comm.{key}", why + "; remove it")


def _check_fsdp(sc: Scenario, layout: Layout, schedule: Schedule) -> None:
    """FSDP as :mod:`sim.step.fsdp` models it: on the shared network, one copy of each stage."""
    assert sc.training is not None
    if sc.training.contention != "shared":
        raise ScenarioError("training.fsdp", "FSDP's collectives run beside the pipeline: needs contention: shared")
    if sc.training.dp_overlap != "none":  # none, the default scenario's, asks for nothing FSDP does not do
        raise ScenarioError(
            "training.dp_overlap", "ZeRO-1's: under training.fsdp each unit is reduce-scattered as its backward ends"
        )
    if any(len(replica_set(layout, schedule, d)) > 1 for d in range(layout.devices)):
        raise ScenarioError(
            "training.fsdp",
            f"{schedule.name} keeps two copies of a stage, whose FSDP group is not modelled; use another schedule",
        )


def compute_of(sc: Scenario) -> ComputeWhatIfs:
    """The scenario's compute-side hardware what-ifs (section ``compute``)."""
    c = sc.compute
    return ComputeWhatIfs(c.online_quantization, c.transposed_reads, c.fp8_scaling, c.fp8_accumulation)


def gating_of(sc: Scenario) -> Gating:
    """The routing of the scenario's MoE layers, with their capacity (errors name the key)."""
    w = sc.workload
    if "pad_to_capacity" in w.model_fields_set and w.capacity_factor is None:
        raise ScenarioError("workload.pad_to_capacity", "pads to an expert's capacity: give workload.capacity_factor")
    return Gating(
        w.routing,
        capacity_factor=w.capacity_factor,
        pad_to_capacity=w.pad_to_capacity,
        dispatcher=w.dispatcher,
        node_sets=sc.comm.multicast or sc.comm.in_network_reduce,
    )


def check_training_step(sc: Scenario) -> None:
    """What a training step refuses of the scenario itself, whatever its layout: one schedule, and a
    cluster. A sweep's points are checked by it before any runs (:mod:`sim.sweep.spec`): a point that
    sets two schedules or ``cluster: null`` is malformed, not an infeasible layout."""
    if sc.training is None:
        raise ScenarioError("training", "not a training scenario")
    if len(sc.pipeline.schedules) != 1:
        raise ScenarioError("pipeline.schedules", "a training step runs one schedule; sweep to compare several")
    if sc.cluster is None:
        sc.cluster_spec()  # (which refuses it: a training step needs a cluster)


def step_layout(sc: Scenario, split: list[int] | None = None) -> tuple[Layout, Schedule]:
    """The layout and schedule of a training scenario (errors name the key to change); ``split``, the
    layers of each stage along a route, overrides the scenario's (a 'balanced' one, once computed)."""
    check_training_step(sc)
    t = sc.training
    assert t is not None
    spec = sc.cluster_spec()
    return build_layout(
        sc.model,
        sc.pipeline.schedules[0],
        sc.pipeline.pp,
        sc.pipeline.virtual_stages,
        t.gpus,
        spec.node.gpus_per_node,
        spec.gpus,
        sc.workload.ep,
        t.global_batch,
        sc.pipeline.microbatches,
        t.microbatch_sequences,
        split or (t.layers_per_stage if isinstance(t.layers_per_stage, list) else None),
        t.tp,
        t.cp,
        t.recompute,
        t.tp_comm_overlap,
        t.cp_comm,
        t.fsdp,
        t.fsdp_reshard_after_forward,
        t.etp,
    )


Rebuild = Callable[[list[int] | None], tuple[Layout, Schedule]]  # a layout with this layer split


def relayout(
    sc: Scenario,
    layout: Layout,
    balance: Callable[[Layout, Schedule, Rebuild], tuple[Layout, Schedule]] | None = None,
) -> Relayout:
    """Layouts of ``sc`` with another schedule, PP or sequences per micro-batch and the rest as
    ``layout`` has it (its GPUs and global batch; the scenario's layer list, else the even split, then
    ``balance`` when the scenario balances layers by cost), for the memory check's advice."""
    t = sc.training
    assert t is not None
    spec = sc.cluster_spec()
    given = t.layers_per_stage if isinstance(t.layers_per_stage, list) else None

    def build(schedule: str, pp: int, microbatch_sequences: int) -> tuple[Layout, Schedule]:
        def at(split: list[int] | None) -> tuple[Layout, Schedule]:
            return build_layout(
                sc.model,
                schedule,
                pp,
                sc.pipeline.virtual_stages,
                layout.gpus,
                spec.node.gpus_per_node,
                spec.gpus,
                layout.ep,
                layout.global_batch,
                None,
                microbatch_sequences,
                split,
                layout.tp,
                layout.cp,
            )

        changed, sched = at(given)
        return (changed, sched) if balance is None else balance(changed, sched, at)

    return build


def _topology(sc: Scenario, cluster: ClusterSpec) -> Topology:
    """The cluster's fabric, built once; a what-if oversubscription it cannot take names its key."""
    assert sc.cluster is not None
    try:
        topo: Topology = build_cluster_spec(cluster, str(sc.cluster.path))
    except ScenarioError as err:
        if sc.cluster.oversubscription is None or err.key_path != "fabric.oversubscription":
            raise
        where = f"(topology {sc.cluster.topology})"
        raise ScenarioError("cluster.oversubscription", f"{err.message} {where}") from None
    return topo


def _cost(sc: Scenario) -> tuple[CostModel, GpuSpec | None]:
    """The cost model of the scenario's profile and the profile's GPU (its datasheet entry, or None
    for a GPU the twin has none of)."""
    cost = CostModel(load_profile(sc.profile_path))
    return cost, datasheet_for(cost.profile.device.name)


def _split(sc: Scenario, cost: CostModel, gpu: GpuSpec | None) -> SmSplit:
    """The SM split on the profile's GPU (an H800 where the profile's GPU has no datasheet entry, whose
    SM count it must then have). Interference from the profile needs its measured pairs: without
    them the model's slowdowns are none, which ``workload.interference: none`` says."""
    unfit = unfit_profile_source(cost.interference_mode, sc.profile_path.name)
    if sc.workload.interference == "profile" and unfit is not None:
        raise ScenarioError("workload.interference", unfit)
    dispatcher = sc.workload.dispatcher if sc.workload.ep > 1 else "none"  # (EP 1: nothing is dispatched)
    split = sm_split(sc.comm, sc.model, gpu or H800, dispatcher)
    check_device_sms(sc.profile_path, cost.profile, split.gpu)
    nccl = sc.workload.nccl_sms
    if dispatcher == "alltoall" and nccl is not None and nccl >= split.compute_sms:
        raise ScenarioError(
            "workload.nccl_sms",
            f"{nccl} SMs for NCCL's all-to-all leave none of the {split.compute_sms} compute SMs to compute "
            "beside it; give fewer",
        )
    return split


# ------------------------------------------------------------------------------------ assemble


def assemble(scenario: Scenario) -> Assembly:
    """Build everything a run of ``scenario`` needs, refusing what a run would refuse (one line naming
    the scenario file and key)."""
    try:
        return _training(scenario) if scenario.training is not None else _comparison(scenario)
    except ScenarioError as err:
        raise (err if err.file else scenario.named(err, _assemble_error)) from None


def _assemble_error(path: str) -> ScenarioError | None:
    """The error loading and building the scenario file ``path`` alone meets, or None (a derived
    scenario's error is named on the base that meets it alone: :func:`sim.config.where_it_starts`)."""
    try:
        assemble(load_scenario(path))
    except ScenarioError as err:
        return err
    return None


def _training(sc: Scenario) -> Assembly:
    t = sc.training
    assert t is not None
    cost, gpu = _cost(sc)
    if gpu is None:
        raise ScenarioError(
            "device.name",
            f"no datasheet for {cost.profile.device.name!r} (a training step needs its HBM size and BF16 peak); "
            f"known: {known_gpus()} (sim/hardware/gpu.py)",
            str(sc.profile_path),
        )
    split = _split(sc, cost, gpu)
    params = chunk_params(sc.workload)
    cluster = sc.cluster_spec()
    topology = _topology(sc, cluster)
    _check_set_keys(t)
    layout, schedule = step_layout(sc)
    _check_layout_keys(sc, layout, schedule)
    if layout.fsdp:
        _check_fsdp(sc, layout, schedule)
    if t.fidelity == "per-gpu" and layout.etp > 1:
        raise ScenarioError(
            "training.fidelity",
            "per-gpu gives each EP group its own routing, and an ETP group gathers rows from several; "
            "with training.etp use representative",
        )
    if t.fidelity == "per-gpu" and layout.ep % (layout.tp * layout.cp):
        raise ScenarioError(
            "training.fidelity",
            f"per-gpu runs a pipeline per EP group, and TP {layout.tp} x CP {layout.cp} groups must lie inside one "
            f"(EP {layout.ep}); use representative",
        )
    moe = moe_spec(sc)
    _check_node_limit(sc, moe)
    _check_node_sets(sc, moe)
    kernel = kernel_spec(sc, params.notify_wait_us)
    gating = gating_of(sc)
    if sc.compute.fp8_accumulation == "full":
        cost.promotion()  # refused here, before any step runs, for a profile that cannot measure it
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
        routing_samples=1 if gating.routing == "balanced" else t.routing_samples,
        compute=compute_of(sc),
        combine_format=sc.comm.combine_format,
        dispatch_format=sc.comm.dispatch_format,
    )
    if t.layers_per_stage == "balanced":
        inputs, schedule = _balanced(sc, inputs, schedule, topology, moe)
        layout = inputs.layout
    if t.check_memory:  # the layout that runs: balanced when asked, and so are the changes it advises
        balance = None
        if t.layers_per_stage == "balanced":

            def balance(lay: Layout, sched: Schedule, rebuild: Rebuild) -> tuple[Layout, Schedule]:
                got, sched = _balanced(sc, replace(inputs, layout=lay), sched, topology, moe, rebuild)
                return got.layout, sched

        check_memory(sc.model, layout, schedule, gpu, relayout(sc, layout, balance))
    assert sc.cluster is not None  # cluster_spec() refuses a step without one
    rtol = sc.cluster.completion_rtol
    step = StepSpec(
        inputs=inputs,
        schedule=schedule,
        topology=topology,
        activation_bytes=float(layout.sp_tokens * sc.model.dim * ACTIVATION_BYTES),  # each GPU sends its SP share
        dp=DpSpec(t.dp_overlap, t.dp_algorithm, t.grad_reduce_bytes, rtol),
        completion_rtol=rtol,
        contention=t.contention,
    )
    return Assembly(sc, split, cost, params, kernel, gating, (schedule,), topology, gpu=gpu, layout=layout, step=step)


def _balanced(
    sc: Scenario,
    inputs: ChunkInputs,
    schedule: Schedule,
    topology: Topology,
    moe: MoESpec,
    rebuild: Rebuild | None = None,
) -> tuple[ChunkInputs, Schedule]:
    """The layout with layers split by predicted cost (:mod:`sim.step.layer_split`): every kind of
    layer's F&B pair timed by the chunk model on a probe network of its own (``rebuild``: the layout
    of a split, else the scenario's)."""
    probe = replace(inputs, fidelity="representative", routing_samples=1)
    source = ChunkSource(probe, schedule, SimContext(topology), Routing(probe, moe))
    timer = source.timer(0)

    def pair_time(place: StagePlacement) -> float:
        stage = source.build(place)
        return timer.pair(stage, stage).span_s

    costs = layer_costs(sc.model, pair_time)
    stages = len(schedule.routes[0])
    even = layers_per_stage(sc.model.n_layers, stages)
    positions = rank_positions(schedule.routes, schedule.stage_device)
    split = balanced_ranks(sc.model, positions, stages, costs, [even, balanced_split(sc.model, stages, costs)])
    layout, schedule = step_layout(sc, split) if rebuild is None else rebuild(split)
    return replace(inputs, layout=layout), schedule


def _comparison(sc: Scenario) -> Assembly:
    plan = sc.pipeline
    assert plan.microbatches is not None, "load_scenario requires micro-batches without a training section"
    schedules = []
    for name in plan.schedules:
        try:
            schedule = build_schedule(name, plan.pp, plan.microbatches, plan.virtual_stages)
        except LayoutError as err:
            raise err.with_prefix("pipeline") from None
        check_schedule(schedule)
        schedules.append(schedule)
    given = None if sc.ops is None else given_op_times(sc.ops, plan.pp)
    cost, gpu = _cost(sc)
    split = _split(sc, cost, gpu)
    params = chunk_params(sc.workload)
    if sc.ops is None:  # the chunk model routes the workload
        moe = moe_spec(sc)
        _check_node_limit(sc, moe)
        _check_node_sets(sc, moe)
    topology = None
    transport: P2P | NetworkP2P = p2p_link(sc.p2p)
    if sc.cluster is not None:
        topology = _topology(sc, sc.cluster_spec())
        gpus = sc.cluster.placement(sc.devices())
        transport = NetworkP2P(topology, gpus, sc.p2p.activation_bytes, sc.cluster.completion_rtol)
    kernel = kernel_spec(sc, params.notify_wait_us)
    gating = gating_of(sc)
    chunk = None
    if given is not None:
        given = _rescaled(sc, given, split, cost)
    else:
        chunk = _chunk_model(sc, params, gating)
    return Assembly(
        sc,
        split,
        cost,
        params,
        kernel,
        gating,
        tuple(schedules),
        topology,
        gpu=datasheet_for(cost.profile.device.name),
        transport=transport,
        times=given,
        chunk=chunk,
    )


def _rescaled(sc: Scenario, times: OpTimes, split: SmSplit, cost: CostModel) -> OpTimes:
    """Given op times rescaled to the SMs left to compute when the SM count they were measured at is
    given (by the profile's measured GEMM throughput against SMs)."""
    measured = sc.ops.measured_at_compute_sms if sc.ops is not None else None
    if measured is None:
        return times
    if measured > cost.all_sms:
        raise ScenarioError(
            "ops.measured_at_compute_sms", f"must be at most the profile GPU's {cost.all_sms} SMs, got {measured}"
        )
    try:
        factor = split.throughput_at(measured, cost) / split.gemm_throughput_fraction(cost)
    except ScenarioError as err:
        raise ScenarioError("profile", err.message) from None
    return OpTimes(
        tuple(x * factor for x in times.f),
        tuple(x * factor for x in times.b),
        tuple(x * factor for x in times.w),
        None if times.fb is None else tuple(x * factor for x in times.fb),
    )


def _chunk_model(sc: Scenario, params: ChunkParams, gating: Gating) -> ChunkSetup:
    """One stage's chunk of the workload's layers (uniform stages): cost model, EP network, routing,
    timer; timed by :func:`sim.run.op_times`."""
    w = sc.workload
    config = ChunkConfig(
        model=sc.model,
        profile=sc.profile_path,
        layers=w.layers_per_stage,
        first_layer=w.first_layer,
        tokens=w.tokens,
        ep=w.ep,
        routing=gating,
        seed=sc.seed,
        comm_sms=sc.comm.sms,
        coprocessor=sc.comm.coprocessor,
        params=params,
        dispatcher=w.dispatcher,
        compute=compute_of(sc),
        combine_format=sc.comm.combine_format,
        dispatch_format=sc.comm.dispatch_format,
        multicast=sc.comm.multicast,
        in_network_reduce=sc.comm.in_network_reduce,
    )
    try:
        return build_chunk(config)
    except ScenarioError as err:
        raise as_yaml_key(err) from None
