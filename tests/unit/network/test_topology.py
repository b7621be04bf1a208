"""Topology builders: ISCA'25 Table 3 counts and costs, bisection against networkx max-flow, files."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.network.routing import route
from sim.network.spec import load_cluster
from sim.network.topology import SWITCH, build_topology
from tests.unit.network.conftest import make

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"

# ISCA'25 ("Insights into DeepSeek-V3"), Table 3: endpoints, switches, links, cost ($M), cost/endpoint ($k)
ISCA_TABLE3 = {
    "isca-ft2-2048.yaml": (2048, 96, 2048, 9.0, 4.39),
    "isca-mpft-16384.yaml": (16384, 768, 16384, 72.0, 4.39),
    "isca-ft3-65536.yaml": (65536, 5120, 131072, 491.0, 7.5),
}


@pytest.mark.parametrize("file,row", ISCA_TABLE3.items())
def test_isca_table3_counts_and_cost(file: str, row: tuple[int, int, int, float, float]) -> None:
    endpoints, switches, links, cost_musd, per_endpoint_kusd = row
    s = build_topology(load_cluster(TOPOLOGIES / file)).summary()
    assert (s["nic_links"], s["switches"], s["switch_links"]) == (endpoints, switches, links)
    # unit prices are a 3-parameter fit to Table 3's five rows: each row within 1%
    assert s["cost_usd"] / 1e6 == pytest.approx(cost_musd, rel=0.01)
    assert s["cost_per_endpoint_usd"] / 1e3 == pytest.approx(per_endpoint_kusd, rel=0.01)


def test_shipped_topology_files_load() -> None:
    files = sorted(TOPOLOGIES.glob("*.yaml"))
    assert len(files) >= 7
    unbuildable = TOPOLOGIES / "ft2-16384.yaml"  # kept to show the refusal (ISCA'25 Table 3: FT2 stops at 2048)
    for f in files:
        if f == unbuildable:
            with pytest.raises(ScenarioError, match="at most 2048 endpoints per plane"):
                load_cluster(f)
            continue
        build_topology(load_cluster(f))
    ds = build_topology(load_cluster(TOPOLOGIES / "deepseek-v3-mpft.yaml"))
    assert (ds.gpus, ds.nodes, ds.layout.planes if ds.layout else 0) == (2048, 256, 8)


def _max_flow_across_halves(topo) -> float:  # type: ignore[no-untyped-def]
    """Max flow from the NICs of the first half of the nodes to those of the second half."""
    graph = nx.DiGraph()
    for u, v, data in topo.graph().edges(data=True):
        if data["kind"] in ("nic", "switch"):
            cap = graph.get_edge_data(u, v, {"capacity": 0.0})["capacity"]
            graph.add_edge(u, v, capacity=cap + data["capacity"])
    half = topo.nodes // 2 * topo.gpus_per_node
    for gpu in range(topo.gpus):
        if gpu < half:
            graph.add_edge("S", ("nic", gpu), capacity=float("inf"))
        else:
            graph.add_edge(("nic", gpu), "T", capacity=float("inf"))
    return nx.maximum_flow_value(graph, "S", "T")


@pytest.mark.parametrize(
    "nodes,kind,fabric",
    [
        (8, "ft2", {"switch_radix": 16}),
        (8, "mpft", {"switch_radix": 4, "planes": 8}),
        (6, "ft2", {"switch_radix": 16, "oversubscription": 2}),
        (16, "ft3", {"switch_radix": 8}),
        (8, "mpft", {"switch_radix": 8, "planes": 4}),
        (4, "ft2", {"switch_radix": 64}),  # one leaf, no spines
        (32, "mpft", {"switch_radix": 64}),  # a leaf per plane, no spines
    ],
)
def test_bisection_equals_max_flow(nodes: int, kind: str, fabric: dict) -> None:
    topo = make(nodes, kind, node={"gpus_per_node": 8}, **fabric)
    assert topo.bisection_Bps() == pytest.approx(_max_flow_across_halves(topo), rel=1e-9)


def test_single_node_and_errors() -> None:
    one = build_topology(load_cluster(TOPOLOGIES / "h800-node.yaml"))
    assert one.summary()["switches"] == 0 and one.summary()["bisection_GBps"] == pytest.approx(4 * 160)
    with pytest.raises(ScenarioError, match="at most 2048 endpoints per plane"):
        make(512, "ft2")
    with pytest.raises(ScenarioError, match="must divide gpus_per_node"):
        make(4, "mpft", planes=3)
    with pytest.raises(ScenarioError, match="unknown fabric 'torus'"):
        make(4, "torus")


def test_bad_topology_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nnodes: 4\nfabric: {kind: ft2, radix: 64}\n")
    with pytest.raises(ScenarioError) as info:
        load_cluster(bad)
    assert str(info.value).startswith(f"{bad}: fabric.radix: unknown key; allowed: kind, switch_radix")


def test_graph_has_one_edge_per_directed_link() -> None:
    topo = make(4, "mpft", switch_radix=4)
    graph = topo.graph()
    assert graph.number_of_edges() == topo.num_links
    assert sorted(k for _, _, k in graph.edges(keys=True)) == list(range(topo.num_links))


@pytest.mark.parametrize(
    "nodes,kind,fabric,planes",
    [
        (32, "mpft", {"switch_radix": 64}, 8),  # 256 GPUs: each plane's 32 NICs on one leaf of 32 down ports
        (4, "ft2", {"switch_radix": 64}, 1),  # 32 GPUs on one leaf
        (6, "ft2", {"switch_radix": 16, "oversubscription": 2}, 1),  # 48 GPUs on 6 leaves: spines (the control)
    ],
)
def test_a_plane_of_one_leaf_has_no_spines_and_no_uplinks(nodes: int, kind: str, fabric: dict, planes: int) -> None:
    """No route leaves a lone leaf (every pair of endpoints of the plane meets on it), so its spines and
    leaf-spine cables carried nothing and were priced: a 256-GPU MPFT paid 8 spines and 256 cables. Where
    the plane has two leaves or more, the spines stay (the last case)."""
    topo = make(nodes, kind, **fabric)
    lay = topo.layout
    assert lay is not None and lay.planes == planes
    one_leaf = lay.leaves == 1
    assert one_leaf == (nodes * 8 // planes <= lay.down)
    s = topo.summary()
    if one_leaf:
        assert (lay.spines, s["switches"], s["switch_links"]) == (0, planes, 0)
    else:
        assert lay.spines > 0 and s["switch_links"] == planes * lay.leaves * lay.up
    # every GPU pair's route: through a switch-to-switch link only between two leaves
    gpus = np.arange(topo.gpus)
    src, dst = np.repeat(gpus, topo.gpus), np.tile(gpus, topo.gpus)
    keep = src // 8 != dst // 8  # (inside a node: NVLink)
    routes = route(topo, src[keep], dst[keep])
    crossing = np.add.reduceat(topo.kind[routes.links] == SWITCH, routes.indptr[:-1]) > 0
    assert crossing.any() != one_leaf
