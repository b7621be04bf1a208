"""Assembling a chunk model from its description: model, profile, cluster, EP group, routing, SMs.

Data flows one way: a :class:`ChunkConfig` (from command-line flags or a scenario) -> the cost model
(profile), the cluster network (topology), the routing of every layer (traffic) -> a
:class:`~sim.chunk.timer.ChunkTimer` and the :class:`~sim.chunk.timer.Stage` it times.

Defaults are the configuration of DeepSeek's trace: DeepSeek-V3, 4 MoE layers, EP64 on 8 H800 nodes
of the multi-plane fat tree, 4096 tokens per micro-batch, balanced routing, 20 SMs for DeepEP, the
H800 profile (H100 measurements plus the trace's kernels), interference derived from the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.phases import CommModel
from sim.chunk.timer import ChunkTimer, Stage
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import DEEPSEEK_COMM_SMS, H800, SmSplit, datasheet_for
from sim.hardware.profile import DEFAULT_PROFILE, check_device_sms, load_profile
from sim.layout_defaults import DEFAULT_EP
from sim.model.compute_whatifs import NO_WHATIFS, ComputeWhatIfs
from sim.model.layer import LayerOps, LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.moe.alltoall import route_layers
from sim.moe.deepep import KernelSpec
from sim.moe.gating import Gating
from sim.moe.spec import MoESpec
from sim.moe.traffic import Traffic
from sim.network.context import SimContext
from sim.network.spec import ClusterSpec
from sim.network.topology import Topology, build_topology


@dataclass(frozen=True)
class ChunkConfig:
    model: ModelSpec = DEEPSEEK_V3
    profile: str | Path = DEFAULT_PROFILE
    layers: int = 4  # layers of the stage, from ``first_layer``
    first_layer: int | None = None  # default: the first MoE layer
    tokens: int = DEEPSEEK_V3.seq_len  # per micro-batch per GPU: one sequence
    ep: int = DEFAULT_EP
    routing: Gating | str = "balanced"
    seed: int = 0
    comm_sms: int = DEEPSEEK_COMM_SMS
    coprocessor: bool = False
    params: ChunkParams = field(default_factory=ChunkParams)
    cluster: ClusterSpec | None = None  # default: ep / 8 H800 nodes on the multi-plane fat tree
    first_stage: bool = False  # the stage holds the embedding
    last_stage: bool = False  # the stage holds the output head and the MTP module
    recompute: str = "selective"  # activation recomputation (sim.model.layer.RECOMPUTE)
    dispatcher: str = "deepep"  # or alltoall: NCCL's all-to-all (sim.moe.nccl_a2a)
    compute: ComputeWhatIfs = NO_WHATIFS  # the compute-side hardware what-ifs (sim.model.compute_whatifs)
    combine_format: str = "bf16"  # the combine's payload (sim.moe.spec.COMBINE_FORMATS)
    dispatch_format: str = "fp8"  # the dispatched rows under an FP8 recipe (sim.model.megatron_dispatch)
    multicast: bool = False  # switch multicast for the dispatch (sim.moe.multicast); routing needs node_sets
    in_network_reduce: bool = False  # in-network reduction for the combine

    def moe_spec(self) -> MoESpec:
        """The MoE layer of the chunk; an expert count that does not divide over EP names ``ep``."""
        try:
            return MoESpec.of_model(
                self.model,
                self.ep,
                combine_format=self.combine_format,
                dispatcher=self.dispatcher,
                dispatch_format=self.dispatch_format,
            )
        except ScenarioError as err:
            raise ScenarioError("ep" if err.key_path == "experts" else err.key_path, err.message) from None


@dataclass
class ChunkSetup:
    """Everything a chunk needs, built once."""

    config: ChunkConfig
    cost: CostModel
    topology: Topology
    network: SimContext
    timer: ChunkTimer
    stage: Stage
    traffic: list[Traffic | None]
    compute_sms: int


def _cluster(config: ChunkConfig, moe: MoESpec) -> ClusterSpec:
    """The given cluster, else the EP group's nodes of H800s on the multi-plane fat tree."""
    if config.cluster is not None:
        return config.cluster
    nodes = moe.nodes
    kind = "none" if nodes == 1 else "mpft"
    return ClusterSpec.model_validate({"name": f"h800-{nodes}-nodes", "nodes": nodes, "fabric": {"kind": kind}})


def build_chunk(config: ChunkConfig) -> ChunkSetup:
    """Build the cost model, network, routing and stage of ``config`` (errors name the setting)."""
    path = Path(config.profile)
    if not path.is_file():
        raise ScenarioError("profile", f"no such profile: {path}")
    cost = CostModel(load_profile(path))
    gpu = datasheet_for(cost.profile.device.name) or H800  # the profile's GPU
    split = SmSplit(
        gpu=gpu,
        comm_sms=config.comm_sms,
        coprocessor=config.coprocessor,
        sm_kernels=config.model.is_moe_model and config.dispatcher == "deepep",
    )
    check_device_sms(path, cost.profile, split.gpu)
    model = config.model
    first = model.n_dense_layers if config.first_layer is None else config.first_layer
    if config.layers < 1 or first < 0 or first + config.layers > model.n_layers + model.mtp_depth:
        raise ScenarioError(
            "layers", f"layers {first}..{first + config.layers - 1} are not in the model's {model.n_layers} layers"
        )
    if config.tokens < 1:
        raise ScenarioError("tokens", f"must be >= 1, got {config.tokens}")
    moe = config.moe_spec()
    topo = build_topology(_cluster(config, moe))
    if config.ep > topo.gpus:
        raise ScenarioError("ep", f"EP {config.ep} is larger than the cluster ({topo.gpus} GPUs)")
    network = SimContext(topo)
    kernel = KernelSpec(
        comm_sms=config.comm_sms,
        notify_wait_us=config.params.notify_wait_us,
        coprocessor=config.coprocessor,
        dispatcher=config.dispatcher,
        multicast=config.multicast,
        in_network_reduce=config.in_network_reduce,
    )
    comm = CommModel(network, kernel, [np.arange(config.ep)])
    layer_ids = list(range(first, first + config.layers))
    is_moe = {layer: layer >= model.n_layers or model.is_moe(layer) for layer in layer_ids}  # MTP block: MoE
    moe_layers = [layer for layer in layer_ids if is_moe[layer]]
    gating = Gating.of(config.routing)
    if config.multicast or config.in_network_reduce:
        gating = replace(gating, node_sets=True)
    if gating.routing == "balanced" and moe_layers:  # every layer routes alike: one traffic, shared timings
        routed = route_layers(moe, config.tokens, 1, gating, config.seed) * len(moe_layers)
    else:
        routed = route_layers(moe, config.tokens, len(moe_layers), gating, config.seed) if moe_layers else []
    traffic: list[Traffic | None] = []
    ops: list[LayerOps] = []
    it = iter(routed)
    for layer in layer_ids:
        if is_moe[layer]:
            t = next(it)
            rows = tuple(int(x) for x in t.expert_rows[: moe.experts_per_gpu])
            work = LayerWork(
                config.tokens,
                rows,
                recompute=config.recompute,
                compute=config.compute,
                dispatcher=config.dispatcher,
                dispatch_format=config.dispatch_format,
            )
            ops.append(layer_ops(model, min(layer, model.n_layers - 1), work))
            traffic.append(t)
        else:
            ops.append(
                layer_ops(model, layer, LayerWork(config.tokens, recompute=config.recompute, compute=config.compute))
            )
            traffic.append(None)
    compute_sms = split.compute_sms
    timer = ChunkTimer(OpCoster(cost, compute_sms, config.params), comm, config.params)
    stage = Stage(tuple(ops), tuple(traffic), config.first_stage, config.last_stage, model, config.tokens)
    return ChunkSetup(config, cost, topo, network, timer, stage, traffic, compute_sms)
