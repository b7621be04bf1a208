"""The table of docs/deepep.md: DeepEP's published test setting as the twin predicts it.

    python -m reports.deepep_table > docs/deepep-table.md

Setting (DeepEP README, "Normal kernels with NVLink and RDMA forwarding", H800 + CX7 400 Gb/s):
4096 tokens per GPU, hidden 7168, top-8 of 256 experts, top-4 groups, FP8 dispatch, BF16 combine.
DeepEP's test draws random scores, so the twin uses ``random`` routing (seed 0).
"""

from __future__ import annotations

from sim.hardware.gpu import DEEPSEEK_COMM_SMS
from sim.moe.alltoall import route_layer, run_alltoall
from sim.moe.deepep import PUBLISHED, KernelSpec
from sim.moe.spec import MoESpec
from sim.network.spec import ClusterSpec
from sim.network.topology import build_topology

__all__ = ["PUBLISHED", "predict", "table"]


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


def table() -> str:
    lines = [
        "| EP | link | SMs | dispatch GB/s (twin) | published | error | combine GB/s (twin) | published | error "
        "| dispatch us | combine us |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ep, (pub_d, pub_c) in PUBLISHED.items():
        for sms in (DEEPSEEK_COMM_SMS, 24):
            d, c, td, tc = predict(ep, sms)
            link = "NVLink" if ep == 8 else "RDMA"
            lines.append(
                f"| {ep} | {link} | {sms} | {d:.1f} | {pub_d:g} | {100 * (d / pub_d - 1):+.0f}% "
                f"| {c:.1f} | {pub_c:g} | {100 * (c / pub_c - 1):+.0f}% | {td:.0f} | {tc:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
