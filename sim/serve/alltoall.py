"""How long a serving forward's dispatch and combine take: DeepEP's normal and low-latency kernels.

A phase moves the copies of :class:`sim.serve.routing.BatchRouting`; every GPU sends and receives
at once, so a phase lasts as long as its busiest GPU's busiest link direction needs, plus one
end-to-end latency:

``t = latency + max over GPUs of max(IB copies x bytes / IB rate, NVLink copies x bytes / NVLink rate)``

with the IB and NVLink parts running concurrently (DeepEP pipelines them in chunks). This is the
bottleneck form of the flow model of :mod:`sim.moe.deepep` (each GPU's NIC and NVLink port its own
bottleneck, a non-blocking fabric between them); it does not see congestion inside the fabric. Rates:

* **normal kernels** (prefill) run on ``comm_sms`` SMs: ``comm_sms / 2`` channels of the derived
  per-channel RDMA rates of :data:`sim.moe.deepep.DERIVED_RDMA_GBps` (4.46 GB/s dispatch, 4.38
  combine) and NVLink rate (:data:`sim.moe.deepep.NVLINK_CHANNEL_GBps`), each capped by the link.
  Beside compute (two micro-batches overlapped) they run slower by the trace's communication
  slowdown (:mod:`sim.chunk.overheads`).
* **low-latency kernels** (decode) hold no SMs. Their rates are derived from DeepEP's published
  low-latency table (H800, CX7 400 Gb/s, 128 tokens per GPU, top-8, FP8 dispatch, BF16 combine;
  :data:`LL_PUBLISHED`): the rates at which this very model gives the published latency of its
  largest EP (256: IB) and of EP8 (one node: NVLink), by :func:`derive_ll_rates`. EP16 to EP128
  are held out and compared in ``docs/serving.md``.

Bytes per copy: dispatch FP8 with one FP32 scale per 128 elements, combine BF16
(:mod:`sim.units`). Latency: the topology's IB path (GPU-NIC, NIC-leaf, leaf-spine and back: 3.7 us
by default, ISCA'25 Table 5) or NVLink hop pair (3.33 us) when nothing leaves the domain.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from sim.chunk.overheads import COMM_BESIDE_COMPUTE
from sim.hardware.gpu import NIC_Gbps
from sim.model.spec import DEEPSEEK_V3
from sim.moe.deepep import DERIVED_RDMA_GBps, NVLINK_CHANNEL_GBps
from sim.network.spec import ClusterSpec, LatencySpec, NodeSpec
from sim.serve.placement import place
from sim.serve.routing import BatchRouting, route_batch
from sim.units import BF16_BYTES, FP8_TILE_BYTES, gbit_to_gbyte

# deepseek-ai/DeepEP docs/legacy.md, "Low-latency kernels with pure RDMA" (H800, CX7 400 Gb/s,
# 128 tokens per batch, hidden 7168, top-8, FP8 dispatch, BF16 combine):
# EP -> (dispatch latency us, dispatch RDMA GB/s, combine latency us, combine RDMA GB/s)
LL_PUBLISHED: dict[int, tuple[float, float, float, float]] = {
    8: (77.0, 98.0, 114.0, 127.0),
    16: (118.0, 63.0, 195.0, 74.0),
    32: (155.0, 48.0, 273.0, 53.0),
    64: (173.0, 43.0, 314.0, 46.0),
    128: (192.0, 39.0, 369.0, 39.0),
    256: (194.0, 39.0, 360.0, 40.0),
}
LL_TOKENS, LL_TOP_K, LL_HIDDEN, LL_GPUS_PER_NODE = 128, 8, 7168, 8
LL_IB_FROM, LL_NVLINK_FROM = 256, 8  # the rows the rates are derived from
LL_NIC_GBps = gbit_to_gbyte(NIC_Gbps)  # the measured machine's CX7 (50 GB/s)
LL_NVLINK_GBps = NodeSpec().nvlink_GBps  # and its achievable H800 NVLink (160 GB/s)


def ib_latency_s(lat: LatencySpec) -> float:
    """One end-to-end IB message across the leaf layer: GPU-NIC, NIC-leaf, leaf-spine, back down
    (ISCA'25 Table 5: 3.7 us with the defaults)."""
    return 2 * (lat.pcie_nic_us + lat.nic_leaf_us + lat.switch_hop_us) * 1e-6


def nvlink_latency_s(lat: LatencySpec) -> float:
    """One NVLink message through the NVSwitch (3.33 us, ISCA'25 Table 5)."""
    return 2 * lat.nvlink_hop_us * 1e-6


def copy_bytes(phase: str, dim: int, dtype: str = "fp8") -> float:
    """Bytes of one token copy: FP8 + scales in dispatch (BF16 under a BF16 recipe, ``model.dtype``,
    as the training step's dispatch: :meth:`sim.moe.spec.MoESpec.of_model`), BF16 in combine."""
    return dim * (FP8_TILE_BYTES if phase == "dispatch" and dtype == "fp8" else BF16_BYTES)


def ll_case(ep: int, seed: int = 0) -> BatchRouting:
    """DeepEP's low-latency benchmark case on ``ep`` GPUs: 128 tokens per GPU, 256 experts spread
    evenly, each token's top-8 of random scores (no group limit, no shared expert), uniform load."""
    experts = DEEPSEEK_V3.n_routed_experts
    load = np.full(experts, 1.0 / experts)
    placement = place(load, ep, experts // ep)
    rng = np.random.default_rng([seed, ep])
    return route_batch(load, placement, LL_TOKENS * ep, LL_TOP_K, 1, 1, LL_GPUS_PER_NODE, False, "low_latency", rng)


@functools.cache
def derive_ll_rates() -> dict[str, tuple[float, float]]:
    """phase -> (IB GB/s, NVLink GB/s) of the low-latency kernels, such that :func:`phase_time`
    gives DeepEP's published latency for its own benchmark case (:func:`ll_case`, routed the same
    way as any forward here, so the busiest GPU's share is in both): the IB rate from EP256 (31 of
    every 32 copies leave the node), the NVLink rate from EP8 (one node)."""
    rates = {}
    for i, phase in enumerate(("dispatch", "combine")):
        b = copy_bytes(phase, LL_HIDDEN, "fp8")  # the published case dispatches FP8
        r = ll_case(LL_IB_FROM)
        ib = float(max(r.ib_send.max(), r.ib_recv.max())) * b
        t_ib = LL_PUBLISHED[LL_IB_FROM][2 * i] * 1e-6 - ib_latency_s(LatencySpec())
        r = ll_case(LL_NVLINK_FROM)
        nv = float(max(r.nvl_send.max(), r.nvl_recv.max())) * b
        t_nv = LL_PUBLISHED[LL_NVLINK_FROM][2 * i] * 1e-6 - nvlink_latency_s(LatencySpec())
        rates[phase] = (ib / t_ib / 1e9, nv / t_nv / 1e9)
    return rates


@dataclass(frozen=True)
class Links:
    """The rates a unit's phases see."""

    nic_GBps: float
    nvlink_GBps: float
    ib_latency_s: float
    nvlink_latency_s: float
    domain: int  # GPUs per NVLink domain

    @classmethod
    def of(cls, spec: ClusterSpec) -> Links:
        node = spec.node
        return cls(
            gbit_to_gbyte(node.nic_Gbps),
            node.nvlink_GBps,
            ib_latency_s(spec.latency),
            nvlink_latency_s(spec.latency),
            node.domain_gpus,
        )


def phase_time(
    r: BatchRouting,
    phase: str,
    dim: int,
    links: Links,
    kernels: str,
    comm_sms: int,
    beside_compute: bool,
    dtype: str = "fp8",
) -> float:
    """Seconds one dispatch or combine of ``r`` takes (combine: the copies reversed), the dispatch's
    copies of a ``dtype`` model (:func:`copy_bytes`)."""
    b = copy_bytes(phase, dim, dtype)
    ib_send, ib_recv = (r.ib_send, r.ib_recv) if phase == "dispatch" else (r.ib_recv, r.ib_send)
    nv_send, nv_recv = (r.nvl_send, r.nvl_recv) if phase == "dispatch" else (r.nvl_recv, r.nvl_send)
    ib = float(max(ib_send.max(initial=0), ib_recv.max(initial=0))) * b
    nv = float(max(nv_send.max(initial=0), nv_recv.max(initial=0))) * b
    if kernels == "low_latency":
        ib_rate, nv_rate = derive_ll_rates()[phase]
        ib_rate *= links.nic_GBps / LL_NIC_GBps  # the same share of this cluster's links
        nv_rate *= links.nvlink_GBps / LL_NVLINK_GBps
        slowdown = 1.0
    else:
        channels = comm_sms // 2
        ib_rate = min(links.nic_GBps, channels * DERIVED_RDMA_GBps[phase])
        nv_rate = min(links.nvlink_GBps, channels * NVLINK_CHANNEL_GBps)
        slowdown = COMM_BESIDE_COMPUTE[phase] if beside_compute else 1.0
    if ib == 0 and nv == 0:
        return 0.0
    latency = links.ib_latency_s if ib > 0 else links.nvlink_latency_s
    return latency + slowdown * max(ib / (ib_rate * 1e9), nv / (nv_rate * 1e9))
