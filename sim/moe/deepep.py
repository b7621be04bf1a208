"""A DeepEP-style model of the dispatch and combine kernels, on the flow-level network.

DeepEP's normal kernels (REFERENCE.md section 4) run on ``comm_sms`` SMs grouped in
``channels = comm_sms / 2`` pairs. In dispatch, one SM of a pair holds the IB (RDMA) senders and the
NVLink receivers, the other forwards IB -> NVLink. The model:

* Messages are those of :mod:`sim.moe.traffic`: IB (source -> same-index GPU of each remote node)
  and NVLink (forwarder or source -> expert GPU), aggregated per GPU pair into flows that all start
  together (DeepEP pipelines the two hops in chunks, so they overlap).
* Each GPU's SMs cap what it can drive: a virtual link of ``channels x`` the phase's per-channel
  RDMA rate that its IB flows cross, and one of ``channels x`` the per-channel NVLink rate for its
  NVLink flows. Together with the real links (max-min fair sharing) they bound the achieved bandwidth.
* A notify phase first exchanges the per-rank token counts: an all-to-all of ``notify_bytes`` per
  peer on the same network, which starts only when the slowest rank is ready (``rank_ready_s``), and
  then waits ``notify_wait_us`` more (rank skew a single-GPU model cannot produce; 0 standalone).
* Combine reverses every message (NVLink to the forwarder, accumulated there, then IB back) with the
  combine payload and its own per-channel rates.

Per-channel RDMA rates (:data:`DERIVED_RDMA_GBps`) are derived, not assumed
(``calibrate.trace_calibration.derive_channel_rates``, which a test reruns): DeepEP's published
standalone EP64 figures (:data:`PUBLISHED`: 51 GB/s dispatch, 50 GB/s combine, logical RDMA) give
the standalone durations of the layer in DeepSeek's trace (balanced routing, EP64, 4096 tokens per
GPU); the GPU's IB bytes over that duration over 10 channels (20 SMs) is the rate: 4.46 GB/s for a
dispatch, 4.38 for a combine, so 20 SMs drive 44.6 GB/s, just short of the 50 GB/s NIC. A dispatch
reusing a cached layout (the backward's) ran 1.28x faster than a fresh one in the trace (3.41 against
4.35 ms): 5.70 GB/s. The per-channel NVLink rate is not derived: in EP64 the NIC binds, so the trace
does not constrain it, and it stays the assumption that 10 channels saturate 160 GB/s (16 GB/s per
channel). How much slower these kernels run beside GEMMs than alone is the communication slowdown of
:mod:`sim.chunk.overheads`, derived from the same trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from sim.errors import ScenarioError
from sim.hardware.gpu import DEEPSEEK_COMM_SMS
from sim.moe.multicast import NodeSets, set_members
from sim.moe.traffic import Traffic
from sim.network.context import SimContext
from sim.network.flows import FlowNetwork
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology

# deepseek-ai/DeepEP README (legacy V1 docs), H800 + CX7 400 Gb/s, after the 2025-04-22 update (PR #130):
# normal kernels, 4096 tokens, hidden 7168, top-4 groups, top-8 of 256; bottleneck bandwidth in GB/s
# (dispatch, combine): NVLink for EP8, logical RDMA for EP16..64.
PUBLISHED: dict[int, tuple[float, float]] = {8: (153.0, 158.0), 16: (43.0, 43.0), 32: (58.0, 57.0), 64: (51.0, 50.0)}


# Derived from DeepSeek's trace and DeepEP's published EP64 figures (see the module docstring).
DERIVED_RDMA_GBps = {"dispatch": 4.46, "dispatch-cached": 5.70, "combine": 4.38}
NVLINK_CHANNEL_GBps = 16.0  # assumption: 10 channels saturate 160 GB/s NVLink (the trace does not bind it)


@dataclass(frozen=True)
class KernelSpec:
    comm_sms: int = DEEPSEEK_COMM_SMS
    rdma_channel_GBps: dict[str, float] = field(default_factory=lambda: dict(DERIVED_RDMA_GBps))
    nvlink_channel_GBps: float = NVLINK_CHANNEL_GBps
    notify_bytes: float = 64.0
    notify_wait_us: float = 0.0
    coprocessor: bool = False
    completion_rtol: float = COMPLETION_RTOL
    dispatcher: str = "deepep"  # or "alltoall": NCCL's kernels, bounded by the links alone (sim.moe.nccl_a2a)
    multicast: bool = False  # dispatch-direction phases: one copy per token, replicated in the switch
    in_network_reduce: bool = False  # combine-direction phases: partial sums added in the switch

    def trees(self, phase: str) -> bool:
        """Whether ``phase``'s IB messages run as multicast or reduction trees (:mod:`sim.moe.multicast`)."""
        return self.multicast if phase == "dispatch" else self.in_network_reduce

    @property
    def sm_capped(self) -> bool:
        """Whether the phases' rates are capped by the SM channels driving them (DeepEP on SMs)."""
        return not self.coprocessor and self.dispatcher == "deepep"

    def __post_init__(self) -> None:
        if self.comm_sms < 0 or self.comm_sms % 2:
            raise ScenarioError("comm_sms", f"must be an even number >= 0 (SM pairs), got {self.comm_sms}")
        if self.comm_sms == 0 and self.sm_capped:
            raise ScenarioError("comm_sms", "0 SMs needs coprocessor mode (communication off the SMs)")
        if self.notify_wait_us < 0:
            raise ScenarioError("notify_wait_us", f"must be >= 0, got {self.notify_wait_us}")
        missing = {"dispatch", "dispatch-cached", "combine"} - set(self.rdma_channel_GBps)
        if missing:
            raise ScenarioError("rdma_channel_GBps", f"missing per-channel rates for {', '.join(sorted(missing))}")
        if min(self.rdma_channel_GBps.values()) <= 0 or self.nvlink_channel_GBps <= 0:
            raise ScenarioError("rdma_channel_GBps", "per-channel rates must be > 0")

    @property
    def channels(self) -> int:
        return self.comm_sms // 2

    def rdma_rate(self, phase: str, cached: bool) -> float:
        """Per-channel RDMA rate (GB/s) of this phase."""
        return self.rdma_channel_GBps["dispatch-cached" if phase == "dispatch" and cached else phase]

    def key(self) -> tuple[Any, ...]:
        """What determines a phase's time (for memoisation)."""
        return (
            self.comm_sms,
            tuple(sorted(self.rdma_channel_GBps.items())),
            self.nvlink_channel_GBps,
            self.notify_bytes,
            self.notify_wait_us,
            self.coprocessor,
            self.completion_rtol,
            self.dispatcher,
            self.multicast,
            self.in_network_reduce,
        )


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    time_s: float
    notify_s: float
    ib_bytes_per_gpu: float
    nvlink_bytes_per_gpu: float
    logical_rdma_bytes_per_gpu: float
    deepep_GBps: float

    def to_dict(self) -> dict[str, float]:
        return {
            "time_s": self.time_s,
            "notify_s": self.notify_s,
            "ib_bytes_per_gpu": self.ib_bytes_per_gpu,
            "nvlink_bytes_per_gpu": self.nvlink_bytes_per_gpu,
            "deepep_GBps": self.deepep_GBps,
        }


def _flows(
    traffic: Traffic, gpus: np.ndarray, phase: str, trees: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(src, dst, bytes, is_ib, tree) of the aggregated messages, in cluster GPU ids. ``trees``: the IB
    messages are those of :attr:`Traffic.node_sets`, one per node of each set, and ``tree[i]`` names
    the set (a multicast or reduction tree, :mod:`sim.moe.multicast`) message ``i`` belongs to (the
    NVLink messages each a tree of their own); else ``tree`` is None."""
    per = traffic.bytes_per_token(phase)
    g = traffic.spec.gpus_per_node
    tree = None
    if trees:
        sets = _node_sets(traffic)
        which, node = set_members(sets, traffic.spec.nodes)
        src_ib = sets.src[which]
        dst_ib = node * g + src_ib % g
        ib_tokens = sets.tokens[which]
    else:
        s_ib, n_ib = np.nonzero(traffic.ib)
        src_ib, dst_ib, ib_tokens = s_ib, n_ib * g + s_ib % g, traffic.ib[s_ib, n_ib]
    a, b = np.nonzero(traffic.nvlink)
    src = np.concatenate([src_ib, a])
    dst = np.concatenate([dst_ib, b])
    nbytes = np.concatenate([ib_tokens, traffic.nvlink[a, b]]).astype(np.float64) * per
    is_ib = np.r_[np.ones(len(src_ib), bool), np.zeros(len(a), bool)]
    if trees:
        tree = np.concatenate([which, len(sets.src) + np.arange(len(a))])
    if phase == "combine":
        src, dst = dst, src
    return gpus[src], gpus[dst], nbytes, is_ib, tree


def message_flows(
    traffic: Traffic, gpus: np.ndarray, phase: str, trees: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(source, destination, bytes, over IB, tree) of every aggregated message of one ``phase``
    (dispatch or combine) of ``traffic`` on the EP group ``gpus`` (cluster GPU ids): the flows a phase
    puts on the network, for byte accounting. ``trees``: as multicast or reduction trees, the messages
    of one ``tree`` id one flow along the union of their paths (:func:`sim.network.routing.merge_routes`)."""
    return _flows(traffic, np.asarray(gpus, dtype=np.int64), phase, trees)


def _tree_ib_bytes(traffic: Traffic, phase: str) -> float:
    """Mean IB bytes per GPU of its own tokens as trees: one copy per token with a remote node."""
    return float(_node_sets(traffic).tokens.sum()) / traffic.spec.ep * traffic.bytes_per_token(phase)


def _node_sets(traffic: Traffic) -> NodeSets:
    """The traffic's node sets, which trees need (counted where ``Gating.node_sets`` asks)."""
    if traffic.node_sets is None:
        raise ValueError("multicast or in-network reduction needs the traffic's node sets (Gating.node_sets)")
    return traffic.node_sets


def check_gpus(topo: Topology, traffic: Traffic, gpus: np.ndarray | None) -> np.ndarray:
    ep = traffic.spec.ep
    gpus = np.arange(ep) if gpus is None else np.asarray(gpus, dtype=np.int64)
    if len(gpus) != ep or gpus.max() >= topo.gpus:
        raise ScenarioError("ep", f"EP {ep} needs {ep} GPUs on the cluster, which has {topo.gpus}")
    return gpus


def phase_process(
    net: FlowNetwork,
    traffic: Traffic,
    kernel: KernelSpec,
    phase: str,
    gpus: np.ndarray,
    cached: bool = False,
    rank_ready_s: np.ndarray | None = None,
    times: dict[str, float] | None = None,
) -> simpy.events.ProcessGenerator:
    """A simpy process: one dispatch or combine of ``traffic`` on ``net`` (a shared network: other
    processes' flows contend with these). ``times`` receives ``notify`` and ``end`` (durations from
    the process's start)."""
    env = net.env
    t_start = env.now
    ep = traffic.spec.ep
    src, dst, nbytes, is_ib, tree = _flows(traffic, gpus, phase, kernel.trees(phase))
    extra = None
    if kernel.sm_capped:
        rdma = net.add_virtual_links(np.full(ep, kernel.channels * kernel.rdma_rate(phase, cached) * 1e9))
        nvl = net.add_virtual_links(np.full(ep, kernel.channels * kernel.nvlink_channel_GBps * 1e9))
        rank_of = np.full(net.topo.gpus, -1)
        rank_of[gpus] = np.arange(ep)
        # the SMs of the GPU that drives the message: its sender (dispatch) or receiver (combine
        # reverses the direction of the same messages, driven by the same SM roles)
        driver = rank_of[src]
        extra = np.where(is_ib, rdma[driver], nvl[driver])[:, None]
    ready = np.zeros(ep) if rank_ready_s is None else np.asarray(rank_ready_s, dtype=np.float64)
    yield env.timeout(float(ready.max()))  # stragglers: notify waits for the slowest rank
    t0 = env.now
    peers_s, peers_d = np.repeat(gpus, ep), np.tile(gpus, ep)
    off = peers_s != peers_d
    notify = net.routes_of(peers_s[off], peers_d[off])  # the same every phase: routes and rates alone memoised
    yield net.send_routes(notify, np.full(int(off.sum()), float(kernel.notify_bytes)), tag="deepep")
    if kernel.notify_wait_us:
        yield env.timeout(kernel.notify_wait_us * 1e-6)
    if times is not None:
        times["notify"] = env.now - t0
    yield net.send_batch(src, dst, nbytes, extra, tag="deepep", trees=tree)
    if times is not None:
        times["end"] = env.now - t_start
    if kernel.sm_capped:
        net.release_virtual_links(rdma)
        net.release_virtual_links(nvl)


def simulate_phase(
    topo: Topology,
    traffic: Traffic,
    kernel: KernelSpec,
    phase: str = "dispatch",
    gpus: np.ndarray | None = None,
    rank_ready_s: np.ndarray | None = None,
    cached: bool = False,
    ctx: SimContext | None = None,
) -> PhaseResult:
    """Time one dispatch or combine of ``traffic`` alone on ``topo`` (EP rank r on cluster GPU ``gpus[r]``),
    on the run's context ``ctx`` (a new one for ``topo`` when none is given)."""
    gpus = check_gpus(topo, traffic, gpus)
    ctx = ctx if ctx is not None else SimContext(topo, kernel.completion_rtol)
    times: dict[str, float] = {}
    ctx.run_alone([phase_process(ctx.network, traffic, kernel, phase, gpus, cached, rank_ready_s, times)])
    ready = float(0.0 if rank_ready_s is None else np.max(rank_ready_s))
    return phase_result(traffic, phase, times, ready, kernel.trees(phase))


def phase_result(
    traffic: Traffic, phase: str, times: dict[str, float], ready_s: float = 0.0, trees: bool = False
) -> PhaseResult:
    """The phase's figures; ``ib_bytes_per_gpu`` is what a GPU's NIC carries for its own tokens: a copy per
    (token, remote node), or under ``trees`` one per token (multicast's send, reduction's receive)."""
    time_s = times["end"]
    per_token = traffic.bytes_per_token(phase)
    logical = float(traffic.logical_rdma.mean()) * per_token
    nvl_bytes = float(traffic.nvlink_bytes_per_gpu(phase).mean())
    moving = time_s - ready_s
    bandwidth = (logical if traffic.spec.nodes > 1 else nvl_bytes) / moving if moving > 0 else float("inf")
    return PhaseResult(
        phase=phase,
        time_s=time_s,
        notify_s=times["notify"],
        ib_bytes_per_gpu=float(traffic.ib_bytes_per_gpu(phase).mean()) if not trees else _tree_ib_bytes(traffic, phase),
        nvlink_bytes_per_gpu=nvl_bytes,
        logical_rdma_bytes_per_gpu=logical,
        deepep_GBps=bandwidth / 1e9,
    )
