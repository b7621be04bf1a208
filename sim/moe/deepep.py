"""A DeepEP-style model of the dispatch and combine kernels, on the flow-level network.

DeepEP's normal kernels (REFERENCE.md section 4) run on ``comm_sms`` SMs grouped in
``channels = comm_sms / 2`` pairs. In dispatch, one SM of a pair holds the IB (RDMA) senders and the
NVLink receivers, the other forwards IB -> NVLink. The model:

* Messages are those of :mod:`sim.moe.traffic`: IB (source -> same-index GPU of each remote node)
  and NVLink (forwarder or source -> expert GPU), aggregated per GPU pair into flows that all start
  together (DeepEP pipelines the two hops in chunks, so they overlap).
* Each GPU's SMs cap what it can drive: a virtual link of ``channels x rdma_channel_GBps`` that its
  IB flows cross, and one of ``channels x nvlink_channel_GBps`` for its NVLink flows. Together with
  the real links (max-min fair sharing) they bound the achieved bandwidth.
* A notify phase first exchanges the per-rank token counts: an all-to-all of ``notify_bytes`` per
  peer on the same network, which starts only when the slowest rank is ready (``rank_ready_s``), so
  stragglers make everyone wait; its time grows with EP size through the message count.
* Combine reverses every message (NVLink to the forwarder, accumulated there, then IB back) with the
  combine payload and the same SM caps.

Defaults: ``rdma_channel_GBps`` = 5 and ``nvlink_channel_GBps`` = 16 are the smallest per-channel
rates for which DeepSeek's statement "20 SMs (10 channels) suffice to saturate IB (50 GB/s) and
NVLink (160 GB/s)" holds; they are parameters to be replaced by calibrated values. ``comm_sms: 0``
with ``coprocessor`` removes the SM caps (communication offloaded from the SMs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.errors import ScenarioError
from sim.moe.traffic import Traffic
from sim.network.flows import FlowNetwork
from sim.network.topology import Topology


@dataclass(frozen=True)
class KernelSpec:
    comm_sms: int = 20
    rdma_channel_GBps: float = 5.0
    nvlink_channel_GBps: float = 16.0
    notify_bytes: float = 64.0
    coprocessor: bool = False
    completion_rtol: float = 1e-2

    def __post_init__(self) -> None:
        if self.comm_sms < 0 or self.comm_sms % 2:
            raise ScenarioError("comm_sms", f"must be an even number >= 0 (SM pairs), got {self.comm_sms}")
        if self.comm_sms == 0 and not self.coprocessor:
            raise ScenarioError("comm_sms", "0 SMs needs coprocessor mode (communication off the SMs)")

    @property
    def channels(self) -> int:
        return self.comm_sms // 2


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


def _flows(traffic: Traffic, gpus: np.ndarray, phase: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, bytes, is_ib) of the aggregated messages, in cluster GPU ids."""
    per = traffic.bytes_per_token(phase)
    g = traffic.spec.gpus_per_node
    s_ib, n_ib = np.nonzero(traffic.ib)
    src_ib, dst_ib = s_ib, n_ib * g + s_ib % g
    a, b = np.nonzero(traffic.nvlink)
    src = np.concatenate([src_ib, a])
    dst = np.concatenate([dst_ib, b])
    nbytes = np.concatenate([traffic.ib[s_ib, n_ib], traffic.nvlink[a, b]]).astype(np.float64) * per
    is_ib = np.r_[np.ones(len(src_ib), bool), np.zeros(len(a), bool)]
    if phase == "combine":
        src, dst = dst, src
    return gpus[src], gpus[dst], nbytes, is_ib


def simulate_phase(
    topo: Topology,
    traffic: Traffic,
    kernel: KernelSpec,
    phase: str = "dispatch",
    gpus: np.ndarray | None = None,
    rank_ready_s: np.ndarray | None = None,
) -> PhaseResult:
    """Time one dispatch or combine of ``traffic`` on ``topo`` (EP rank r on cluster GPU ``gpus[r]``)."""
    ep = traffic.spec.ep
    gpus = np.arange(ep) if gpus is None else np.asarray(gpus, dtype=np.int64)
    if len(gpus) != ep or gpus.max() >= topo.gpus:
        raise ScenarioError("ep", f"EP {ep} needs {ep} GPUs on the cluster, which has {topo.gpus}")
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=kernel.completion_rtol)
    src, dst, nbytes, is_ib = _flows(traffic, gpus, phase)
    extra = None
    if not kernel.coprocessor:
        rdma = net.add_virtual_links(np.full(ep, kernel.channels * kernel.rdma_channel_GBps * 1e9))
        nvl = net.add_virtual_links(np.full(ep, kernel.channels * kernel.nvlink_channel_GBps * 1e9))
        rank_of = np.full(topo.gpus, -1)
        rank_of[gpus] = np.arange(ep)
        # the SMs of the GPU that drives the message: its sender (dispatch) or receiver (combine
        # reverses the direction of the same messages, driven by the same SM roles)
        driver = rank_of[src]
        extra = np.where(is_ib, rdma[driver], nvl[driver])[:, None]
    ready = np.zeros(ep) if rank_ready_s is None else np.asarray(rank_ready_s, dtype=np.float64)
    times: dict[str, float] = {}

    def run() -> simpy.events.ProcessGenerator:
        yield env.timeout(float(ready.max()))  # stragglers: notify waits for the slowest rank
        t0 = env.now
        peers_s, peers_d = np.repeat(gpus, ep), np.tile(gpus, ep)
        off = peers_s != peers_d
        yield net.send_batch(peers_s[off], peers_d[off], np.full(int(off.sum()), kernel.notify_bytes))
        times["notify"] = env.now - t0
        yield net.send_batch(src, dst, nbytes, extra)
        times["end"] = env.now

    env.process(run())
    env.run()
    time_s = times["end"]
    per_token = traffic.bytes_per_token(phase)
    logical = float(traffic.logical_rdma.mean()) * per_token
    nvl_bytes = float(traffic.nvlink_bytes_per_gpu(phase).mean())
    moving = time_s - float(ready.max())
    bandwidth = (logical if traffic.spec.nodes > 1 else nvl_bytes) / moving if moving > 0 else float("inf")
    return PhaseResult(
        phase=phase,
        time_s=time_s,
        notify_s=times["notify"],
        ib_bytes_per_gpu=float(traffic.ib_bytes_per_gpu(phase).mean()),
        nvlink_bytes_per_gpu=nvl_bytes,
        logical_rdma_bytes_per_gpu=logical,
        deepep_GBps=bandwidth / 1e9,
    )
