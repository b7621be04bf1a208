"""DeepEP's published test setting as the twin predicts it (the table of docs/deepep.md).

Setting (DeepEP README, "Normal kernels with NVLink and RDMA forwarding", H800 + CX7 400 Gb/s):
4096 tokens per GPU, hidden 7168, top-8 of 256 experts, top-4 groups, FP8 dispatch, BF16 combine.
DeepEP's test draws random scores, so the twin uses ``random`` routing (seed 0). EP8 is one node
(NVLink only, no fabric); larger EP groups are whole nodes on a multi-plane fat tree. Every EP size
is run at DeepSeek's 20 SMs for DeepEP and at 24. The published figures (:data:`sim.moe.deepep.PUBLISHED`)
are the README's bottleneck bandwidths (NVLink for EP8, logical RDMA for EP16 to EP64), set beside the
twin's in the same accounting (:attr:`sim.moe.deepep.PhaseResult.deepep_GBps`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.hardware.gpu import DEEPSEEK_COMM_SMS
from sim.moe.alltoall import route_layer, run_alltoall
from sim.moe.deepep import PUBLISHED, KernelSpec
from sim.moe.spec import MoESpec
from sim.network.spec import ClusterSpec
from sim.network.topology import build_topology

__all__ = ["PUBLISHED", "SMS", "DeepEPRow", "predict", "rows"]

SMS = (DEEPSEEK_COMM_SMS, 24)  # SMs for DeepEP in each row pair: DeepSeek's split and 24


def predict(ep: int, sms: int, tokens: int = 4096, seed: int = 0) -> tuple[float, float, float, float]:
    """(dispatch GB/s, combine GB/s, dispatch us, combine us) for DeepEP's test setting."""
    spec = MoESpec(ep=ep)
    nodes = spec.nodes
    cluster = ClusterSpec.model_validate(
        {"name": f"h800-{nodes}", "nodes": nodes, "fabric": {"kind": "none" if nodes == 1 else "mpft"}}
    )
    result = run_alltoall(build_topology(cluster), route_layer(spec, tokens, "random", seed), KernelSpec(comm_sms=sms))
    d, c = result.dispatch, result.combine
    return d.deepep_GBps, c.deepep_GBps, d.time_s * 1e6, c.time_s * 1e6


@dataclass(frozen=True)
class DeepEPRow:
    """One EP size at one SM count: the twin's bandwidths and times beside DeepEP's published figures."""

    ep: int
    link: str  # NVLink (one node) or RDMA
    sms: int
    dispatch_GBps: float
    published_dispatch_GBps: float
    combine_GBps: float
    published_combine_GBps: float
    dispatch_us: float
    combine_us: float


def rows() -> list[DeepEPRow]:
    """Every published EP size at each of :data:`SMS`."""
    out = []
    for ep, (pub_d, pub_c) in PUBLISHED.items():
        for sms in SMS:
            d, c, td, tc = predict(ep, sms)
            out.append(DeepEPRow(ep, "NVLink" if ep == 8 else "RDMA", sms, d, pub_d, c, pub_c, td, tc))
    return out
