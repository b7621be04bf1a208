"""Rail-optimised wiring (``fabric.rail_optimised``) and oversubscription between the pods of a
three-layer fat tree (``fabric.core_oversubscription``), against what each means.

- Rails: NIC ``i`` of every node sits under the same first-layer switches, so a flow between two GPUs
  of one index on different nodes turns at its leaf (no spine hop), while one between different
  indices climbs; every switch still has its ports; a node's NICs are spread over the rails' leaves.
- Core oversubscription k: an aggregation switch keeps radix/2 ports to its pod's edges and gets
  ``ceil(radix/2 / k)`` uplinks carrying radix/2 / k links' bandwidth together (exactly k:1); flows
  between pods then take at least k times the non-blocking time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim.errors import ScenarioError
from sim.network.flows import FlowNetwork
from sim.network.routing import route
from sim.network.spec import ClusterSpec
from sim.network.topology import Topology, build_topology
from tests.unit.network.conftest import ZERO_LATENCY, make
from tests.unit.network.test_oversubscription import _ports

NIC_Bps = 400e9 / 8
G = 8


def _hops(topo: Topology, src: int, dst: int, block: str) -> int:
    b = topo.blocks[block]
    links = route(topo, np.array([src]), np.array([dst])).links
    return int(((links >= b.offset) & (links < b.offset + b.count)).sum())


@pytest.mark.parametrize(("kind", "up_block"), [("ft2", "leaf_up"), ("ft3", "edge_up")])
def test_a_rail_turns_at_its_leaf(kind: str, up_block: str) -> None:
    nodes, radix = 8, 16  # first-layer switches of 8 NICs: one node's (by node), or one rail's (by rail)
    by_node = make(nodes, kind, node={"gpus_per_node": G}, switch_radix=radix)
    by_rail = make(nodes, kind, node={"gpus_per_node": G}, switch_radix=radix, rail_optimised=True)
    same_rail = (0 * G + 3, 5 * G + 3)
    other_rail = (0 * G + 3, 5 * G + 4)
    assert _hops(by_node, *same_rail, up_block) == 1 and _hops(by_rail, *same_rail, up_block) == 0
    assert _hops(by_rail, *other_rail, up_block) == 1
    # the same switches and links, wired differently: every switch has its ports, each leaf one rail
    assert np.array_equal(by_node.capacity, by_rail.capacity) and by_node.switches == by_rail.switches
    ports = _ports(by_rail)
    assert ports == _ports(by_node)
    first = "leaf" if kind == "ft2" else "edge"
    nics: dict[object, set[int]] = {}
    for u, v in by_rail.graph().edges():
        if isinstance(v, tuple) and v[0] == first and u[0] == "nic":
            nics.setdefault(v, set()).add(u[1] % G)
    assert sorted(len(r) for r in nics.values()) == [1] * len(nics)  # one rail per first-layer switch


def test_rails_where_there_are_none_are_refused() -> None:
    with pytest.raises(ScenarioError, match="rails already") as err:
        make(8, "mpft", node={"gpus_per_node": G}, rail_optimised=True)
    assert err.value.key_path == "fabric.rail_optimised"
    with pytest.raises(ScenarioError, match="fat tree") as err:
        make(1, "none", node={"gpus_per_node": G}, rail_optimised=True)
    assert err.value.key_path == "fabric.rail_optimised"


@pytest.mark.parametrize(
    ("kind", "nodes", "key", "value"),
    [
        # accepted, and the network the same as without them
        ("ft2", 8, "planes", 4),
        ("ft3", 8, "planes", 2),
        ("none", 1, "switch_radix", 128),
        ("none", 1, "link_Gbps", 800),
        ("none", 1, "ecmp_seed", 5),
        ("none", 1, "planes", 2),
    ],
)
def test_fabric_keys_another_kind_has_are_refused(kind: str, nodes: int, key: str, value: int) -> None:
    with pytest.raises(ScenarioError) as err:
        make(nodes, kind, node={"gpus_per_node": G}, **{key: value})
    assert err.value.key_path == f"fabric.{key}"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        # accepted on one node with no fabric, and nothing changed (no byte leaves the node)
        ("node", "nic_Gbps", 100),
        ("node", "pcie_GBps", 1),
        ("latency", "nic_leaf_us", 1e6),
        ("latency", "pcie_nic_us", 3),
        ("prices", "switch_usd", 5),
    ],
)
def test_keys_of_what_leaves_the_node_are_refused_without_a_fabric(section: str, key: str, value: float) -> None:
    spec = {"name": "t", "nodes": 1, "node": {"gpus_per_node": G}, "fabric": {"kind": "none"}}
    spec.setdefault(section, {}).update({key: value})  # type: ignore[attr-defined]
    with pytest.raises(ScenarioError, match="nothing leaves the node") as err:
        build_topology(ClusterSpec.model_validate(spec))
    assert err.value.key_path == f"{section}.{key}"


@pytest.mark.parametrize("ko", [1, 2, 3, 4])
def test_core_oversubscription_thins_what_leaves_a_pod(ko: int) -> None:
    radix = 8
    half = radix // 2
    topo = make(4, "ft3", node={"gpus_per_node": G}, switch_radix=radix, core_oversubscription=ko, latency=ZERO_LATENCY)
    lay = topo.layout
    assert lay is not None and lay.pods == 2 and lay.agg_up == math.ceil(half / ko)
    up = topo.blocks["agg_up"]
    per_agg = topo.capacity[up.offset : up.offset + up.count].reshape(-1, lay.agg_up).sum(axis=1)
    assert per_agg == pytest.approx(np.full(len(per_agg), half * NIC_Bps / ko), rel=1e-12)
    for name, row in _ports(topo).items():
        if name[0] == "agg":
            assert row == {"edge": half, "core": lay.agg_up}
    # pod 0's GPUs each send to one GPU of pod 1: at least the pod's bytes over its uplinks' bandwidth
    per_pod = topo.gpus // 2
    nbytes = 1e8
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    net.send_batch(np.arange(per_pod), np.arange(per_pod) + per_pod, np.full(per_pod, nbytes))
    env.run()
    uplinks = lay.up * half * NIC_Bps / ko  # the pod's aggregation switches' uplinks together
    assert env.now >= per_pod * nbytes / uplinks * (1 - 1e-12)
    assert env.now >= nbytes / NIC_Bps * (1 - 1e-12)
    if ko == half:  # one uplink per aggregation switch, of one NIC's rate: the busiest binds, exactly
        links = route(topo, np.arange(per_pod), np.arange(per_pod) + per_pod).links
        on_up = links[(links >= up.offset) & (links < up.offset + up.count)] - up.offset
        flows = np.bincount(on_up, minlength=up.count)
        assert flows.sum() == per_pod  # every flow leaves its pod once
        assert env.now == pytest.approx(flows.max() * nbytes / NIC_Bps, rel=1e-9)


def test_core_oversubscription_outside_ft3_is_refused() -> None:
    with pytest.raises(ScenarioError, match="ft3 only") as err:
        make(8, "ft2", node={"gpus_per_node": G}, switch_radix=16, core_oversubscription=2)
    assert err.value.key_path == "fabric.core_oversubscription"
    with pytest.raises(ScenarioError, match="at most the 4 uplinks") as err:
        make(4, "ft3", node={"gpus_per_node": G}, switch_radix=8, core_oversubscription=5)
    assert err.value.key_path == "fabric.core_oversubscription"


@pytest.mark.parametrize("ko", [1, 2, 3, 4])
def test_the_bisection_sees_the_pods_uplinks(ko: int) -> None:
    from tests.unit.network.test_topology import _max_flow_across_halves

    topo = make(4, "ft3", node={"gpus_per_node": G}, switch_radix=8, core_oversubscription=ko)
    assert topo.bisection_Bps() == pytest.approx(_max_flow_across_halves(topo), rel=1e-9)
    assert topo.bisection_Bps() == pytest.approx(16 * NIC_Bps / ko, rel=1e-12)  # a pod's 4 aggs x 4 links / k_o
