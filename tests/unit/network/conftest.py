"""Small topologies built in code for the network tests."""

from __future__ import annotations

from typing import Any

from sim.network.spec import ClusterSpec
from sim.network.topology import Topology, build_topology


def make(nodes: int, kind: str = "mpft", **fabric: Any) -> Topology:
    node = fabric.pop("node", {})
    latency = fabric.pop("latency", {})
    return build_topology(
        ClusterSpec.model_validate(
            {"name": "t", "nodes": nodes, "node": node, "latency": latency, "fabric": {"kind": kind, **fabric}}
        )
    )


ZERO_LATENCY = {"nvlink_hop_us": 0.0, "pcie_nic_us": 0.0, "nic_leaf_us": 0.0, "switch_hop_us": 0.0}
