"""ZeRO-1's data-parallel phase of a rank: gradient reduce-scatter, optimizer step, parameter all-gather.

Groups (:mod:`sim.training.layout`): the non-expert weights of a rank are data-parallel over all its
GPUs (DP = GPUs per rank; DeepSeek-V3: 128), each routed expert over its replicas (expert DP = GPUs
per rank / EP; DeepSeek-V3: 2), one group per EP rank. Every group's collective runs at the same
time on the flow-level fabric (:mod:`sim.network.collectives`: the non-expert one hierarchical by
default, NVLink inside nodes then one IB ring per local GPU index; the expert ones as rings, their
GPUs being one per node). Sizes follow nccl-tests: the reduce-scatter's input is the rank's
gradients (``grad_reduce_bytes`` per element: FP32, in which DeepSeek accumulate them [V3 3.3]; the
wire format is not published, so it is a parameter), the all-gather's output its parameters
(``param_gather_bytes``: BF16).

The optimizer (AdamW with FP32 master weights and BF16 moments [V3 3.3]) updates the GPU's shard of
the state; it is memory-bound, timed as one streaming kernel over the bytes
:func:`sim.training.memory.optimizer_traffic` gives, on every SM (communication kernels are idle by
then), with the profile's HBM efficiency for that size.

Not modelled (small, documented): the gradient-norm all-reduce for clipping (a few bytes; its
synchronisation is modelled as a barrier), reduction arithmetic, NCCL protocol overheads. Ranks hold
whole nodes of a non-blocking fabric, so each rank's collectives are simulated alone, memoised by
their sizes (identical ranks share one simulation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.model.params import StageParams, stage_params
from sim.model.spec import ModelSpec
from sim.network.collectives import collective_process
from sim.network.flows import FlowNetwork
from sim.network.topology import Topology
from sim.pipeline.ops import Schedule
from sim.training.chunks import ChunkInputs
from sim.training.layout import Layout
from sim.training.memory import dp_collectives, optimizer_traffic


@dataclass(frozen=True)
class DpSpec:
    overlap: str = "none"  # none | tail
    algorithm: str = "hierarchical"  # non-expert group: hierarchical | ring
    grad_reduce_bytes: int = 4


@dataclass(frozen=True)
class DpTimes:
    params: StageParams  # on one GPU of the rank
    reduce_scatter_s: float
    optimizer_s: float
    all_gather_s: float
    optimizer_bytes: float


def device_params(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> StageParams:
    """Parameters on one GPU of pipeline rank ``device``: the layers of every stage it holds, the
    embedding where it holds a first stage or the MTP module (which shares it), the output head where
    it holds a last stage."""
    m = model
    mine = [layout.stages[s] for s, d in enumerate(schedule.stage_device) if d == device]
    layers = sorted({i for p in mine for i in p.layers if i < m.n_layers})
    last = any(p.last for p in mine)
    first = any(p.first for p in mine)
    return stage_params(
        m,
        layers,
        ep=layout.ep,
        embedding=first or (last and m.mtp_depth > 0),
        head=last,
        mtp=last and m.mtp_depth > 0,
    )


def _collectives(topology: Topology, kind: str, groups: list[tuple[np.ndarray, float, str]], rtol: float) -> float:
    """Seconds until every (GPUs, per-rank bytes, algorithm) collective of ``kind`` has finished."""
    env = simpy.Environment()
    net = FlowNetwork(env, topology, completion_rtol=rtol)
    procs = [
        env.process(collective_process(net, kind, gpus, size, algo))
        for gpus, size, algo in groups
        if len(gpus) > 1 and size > 0
    ]
    if procs:
        env.run(until=env.all_of(procs))
    return float(env.now)


def dp_times(
    spec: DpSpec,
    inputs: ChunkInputs,
    schedule: Schedule,
    topology: Topology,
    device: int,
    memo: dict[tuple[object, ...], float] | None = None,
) -> DpTimes:
    """The DP phase of rank ``device``; ``memo`` shares collective timings between identical ranks."""
    memo = {} if memo is None else memo
    lay = inputs.layout
    p = device_params(inputs.model, lay, schedule, device)
    gpus = lay.rank_gpus(device)
    g = lay.gpus_per_node
    algo = spec.algorithm if len(gpus) % g == 0 and len(gpus) > g else "ring"
    sizes = dp_collectives(p, dp=lay.dp, expert_dp=lay.expert_dp, grad_comm_bytes=spec.grad_reduce_bytes)
    times = []
    for kind, mine, expert in (
        ("reducescatter", sizes.grad_reduce_scatter, sizes.expert_grad_reduce_scatter),
        ("allgather", sizes.param_all_gather, sizes.expert_param_all_gather),
    ):
        groups = [(gpus, mine.size_bytes, algo)]
        if lay.expert_dp > 1:
            groups += [(grp, expert.size_bytes, "ring") for grp in lay.expert_dp_groups(device)]
        key = (kind, mine.size_bytes, expert.size_bytes, algo)
        if key not in memo:
            memo[key] = _collectives(topology, kind, groups, 1e-2)
        times.append(memo[key])
    traffic = optimizer_traffic(p, dp=lay.dp, expert_dp=lay.expert_dp).total
    opt = inputs.cost.memory_time(traffic) if traffic > 0 else 0.0
    return DpTimes(p, times[0], opt, times[1], traffic)
