"""``cluster.scale_up: nvl72``: each EP group inside one NVLink domain of an NVL72 rack. Within a
domain GPUs of different nodes reach each other over NVLink only; DeepEP sees the whole EP group as one
node, so every all-to-all byte moves over NVLink and none through a NIC, while the pipeline sends and
the ZeRO-1 rings keep theirs between domains (their edges inside a domain go over NVLink)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.network.routing import route
from sim.network.spec import ClusterSpec, parse_cluster
from sim.network.topology import build_topology
from sim.run import simulate_training
from sim.step.traffic_bytes import node_bytes
from tests.conftest import SMALL_STEP


def _step(tmp_path: Path, sets: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": str(SMALL_STEP), "set": sets}))
    return path


def test_a_domain_of_several_nodes_routes_over_nvlink_only() -> None:
    topo = build_topology(
        ClusterSpec.model_validate(
            {"name": "r", "nodes": 16, "node": {"scale_up_gpus": 64}, "fabric": {"kind": "mpft"}}
        )
    )
    nv = {topo.blocks["nv_up"], topo.blocks["nv_down"]}
    r = route(topo, np.array([0, 0, 63]), np.array([63, 64, 70]))
    in_nv = [all(any(b.offset <= x < b.offset + b.count for b in nv) for x in r.path(i)) for i in range(3)]
    assert in_nv == [True, False, False]  # node 0 to node 7: one domain; GPU 64 is the next rack's
    assert len(r.path(0)) == 2
    graph = topo.graph()
    assert ("nvswitch", 0) in graph and ("nvswitch", 2) not in graph  # one NVSwitch fabric per domain
    with pytest.raises(ScenarioError) as err:
        parse_cluster({"name": "r", "nodes": 16, "node": {"scale_up_gpus": 60}})
    assert err.value.key_path == "node.scale_up_gpus"


def test_nvl72_moves_every_all_to_all_byte_to_nvlink(tmp_path: Path) -> None:
    base = simulate_training(load_scenario(SMALL_STEP))
    rack = simulate_training(load_scenario(_step(tmp_path, {"cluster.scale_up": "nvl72"})))
    assert rack.step.spec.topology.domain_gpus == 32  # the small step's EP group: 4 nodes of 8
    b, r = node_bytes(base.step), node_bytes(rack.step)
    assert b.ib["ep"].sum() > 0 and r.ib["ep"].sum() == 0.0
    # DeepEP's IB hop and its NVLink forward become one NVLink message per (token, GPU): no more bytes
    # than the two hops moved together, and at least the forward alone
    assert b.nvlink["ep"].sum() <= r.nvlink["ep"].sum() <= b.nvlink["ep"].sum() + b.ib["ep"].sum()
    np.testing.assert_allclose(r.ib["pp"], b.ib["pp"])  # ranks hold disjoint domains: the same NIC bytes
    # a ZeRO-1 ring's edges between nodes of one domain move to NVLink: never more NIC bytes
    assert (r.ib["dp"] <= b.ib["dp"] * (1 + 1e-12)).all() and r.ib["dp"].sum() < b.ib["dp"].sum()
    assert rack.step.step_time < base.step.step_time


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        ({"workload.ep": 8}, "already fits one node"),
        ({"workload.ep": 128, "training.gpus": 1024}, "more than an NVL72 domain's 72"),
    ],
)
def test_ep_groups_that_do_not_need_or_fit_a_rack_are_refused(tmp_path: Path, sets: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ScenarioError, match=needle) as err:
        sc = load_scenario(_step(tmp_path, sets | {"cluster.scale_up": "nvl72"}))
        sc.cluster_spec()
    assert err.value.key_path == "cluster.scale_up"


def test_a_topologys_domains_that_cut_ep_groups_are_refused(tmp_path: Path) -> None:
    """A topology may set NVLink domains itself (node.scale_up_gpus); EP groups that straddle two of
    them would be timed as one node by DeepEP and routed through NICs: refused, naming the topology."""
    topo = tmp_path / "t.yaml"
    topo.write_text(
        yaml.safe_dump({"name": "t", "nodes": 96, "node": {"scale_up_gpus": 48}, "fabric": {"kind": "mpft"}})
    )
    with pytest.raises(ScenarioError, match="cut EP groups of 32") as err:
        from sim.assemble import assemble

        assemble(load_scenario(_step(tmp_path, {"cluster.topology": str(topo)})))
    assert err.value.key_path == "cluster.topology"
