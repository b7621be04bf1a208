"""Oversubscribed fat trees (``fabric.oversubscription`` k, scenario key ``cluster.oversubscription``).

Convention (sim/network/topology.py): a first-layer switch keeps radix/2 endpoint ports and gets
radix/(2k) uplinks; the layers above are sized by the uplinks they serve. Every expected value below is
derived from that and the radix, not read back from the builder.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import simpy
import yaml

from sim.cli import main
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.network.flows import FlowNetwork
from sim.network.routing import route
from sim.network.spec import ClusterSpec, load_cluster
from sim.network.topology import SWITCH, Topology, build_topology
from tests.unit.network.conftest import ZERO_LATENCY, make
from tests.unit.network.test_topology import _max_flow_across_halves

REPO = Path(__file__).resolve().parents[3]
TOPOLOGIES = REPO / "topologies"
NIC_Bps = 400e9 / 8  # the default NIC (and switch link): 400 Gb/s


def _with(spec: ClusterSpec, k: int) -> ClusterSpec:
    return spec.model_copy(update={"fabric": spec.fabric.model_copy(update={"oversubscription": k})})


def _shipped(name: str, k: int) -> Topology:
    return build_topology(_with(load_cluster(TOPOLOGIES / f"deepseek-v3-{name}.yaml"), k))


def _digest(topo: Topology) -> str:
    h = hashlib.sha256()
    for array in (topo.capacity, topo.latency, topo.kind):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(repr(sorted((n, b.offset, b.count) for n, b in topo.blocks.items())).encode())
    lay = topo.layout
    shape = None if lay is None else (lay.kind, lay.planes, lay.endpoints, lay.k, lay.down, lay.up)
    more = None if lay is None else (lay.leaves, lay.spines, lay.pods, lay.edges_per_pod, lay.cores)
    h.update(repr((topo.switches, shape, more)).encode())
    return h.hexdigest()[:16]


# Link arrays, blocks and switch counts of the shipped files built by the fat-tree builders as they were
# before oversubscription was an integer ratio (commit ba6ef94). k = 1 must build exactly these. If a
# later change to the link arrays is intended, recompute the digests with _digest.
BEFORE = {
    "deepseek-v3-ft2.yaml": "01d86d8d0a49df14",
    "deepseek-v3-ft3.yaml": "c39fc90641b03fbc",
    "deepseek-v3-mpft.yaml": "92d26a1a1b68b875",
    "isca-ft3-65536.yaml": "c50d81e60c1ad645",
    "isca-mpft-16384.yaml": "3035215076ca4e6c",
}


@pytest.mark.parametrize("file", BEFORE)
def test_one_to_one_builds_the_same_link_arrays_as_before(file: str) -> None:
    spec = load_cluster(TOPOLOGIES / file)
    assert spec.fabric.oversubscription == 1
    assert _digest(build_topology(spec)) == _digest(build_topology(_with(spec, 1)))
    assert _digest(build_topology(spec)) == BEFORE[file]


def _expected_2048(kind: str, k: int) -> tuple[int, int]:
    """(switches, switch links) of 2048 endpoints on radix-64 switches at k:1, from the convention."""
    radix, endpoints = 64, 2048
    down = radix // 2  # endpoint ports of a first-layer switch, whatever k
    up = down // k  # its uplinks
    if kind == "ft2":
        leaves = endpoints // down
        spines = leaves * up // radix  # every spine port used
        return leaves + spines, leaves * up
    if kind == "mpft":
        planes = 8
        leaves = endpoints // planes // down  # per plane
        spines = max(1, math.ceil(leaves * up / radix))
        return planes * (leaves + spines), planes * leaves * up
    pods = endpoints // (radix // 2 * down)  # radix/2 edges of `down` endpoints per pod
    aggs = up  # per pod: one per edge uplink
    cores = pods * aggs * (radix // 2) // radix  # each aggregation switch has radix/2 uplinks
    edge_links = pods * (radix // 2) * up
    agg_links = pods * aggs * (radix // 2)
    return pods * (radix // 2 + aggs) + cores, edge_links + agg_links


@pytest.mark.parametrize("kind", ["ft2", "ft3", "mpft"])
def test_counts_cost_and_bisection_at_2048_follow_the_ports(kind: str) -> None:
    costs, base = [], _shipped(kind, 1)
    for k in (1, 2, 4, 8):
        topo = _shipped(kind, k)
        switches, links = _expected_2048(kind, k)
        assert (topo.switches, topo.switch_links, topo.nic_links) == (switches, links, 2048)
        p = topo.spec.prices
        cost = switches * p.switch_usd + links * p.switch_link_usd + 2048 * p.endpoint_link_usd
        assert topo.cost_usd == pytest.approx(cost, rel=1e-12)
        assert topo.bisection_Bps() == pytest.approx(base.bisection_Bps() / k, rel=1e-12)
        costs.append(topo.cost_usd)
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == 4  # each step cheaper
    # by hand, FT2: 64 leaves + 32/k spines, 2048/k leaf-spine cables
    assert kind != "ft2" or [_expected_2048("ft2", k) for k in (1, 2, 4)] == [(96, 2048), (80, 1024), (72, 512)]
    # FT3: 2 pods x (32 edges + 32/k aggregation switches) + 32/k cores, 4096/k cables
    assert kind != "ft3" or [_expected_2048("ft3", k) for k in (1, 2, 4)] == [(160, 4096), (112, 2048), (88, 1024)]


@pytest.mark.parametrize(
    "nodes,kind,fabric,k",
    [
        (8, "ft2", {"switch_radix": 16}, 2),
        (8, "ft2", {"switch_radix": 16}, 4),
        (16, "ft3", {"switch_radix": 8}, 2),
        (16, "ft3", {"switch_radix": 8}, 4),
        (8, "mpft", {"switch_radix": 8, "planes": 4}, 2),
        (8, "mpft", {"switch_radix": 8, "planes": 4}, 4),
    ],
)
def test_bisection_is_divided_by_k_and_equals_max_flow(nodes: int, kind: str, fabric: dict, k: int) -> None:
    full = make(nodes, kind, node={"gpus_per_node": 8}, **fabric)
    thin = make(nodes, kind, node={"gpus_per_node": 8}, oversubscription=k, **fabric)
    assert thin.bisection_Bps() == pytest.approx(full.bisection_Bps() / k, rel=1e-12)
    assert thin.bisection_Bps() == pytest.approx(_max_flow_across_halves(thin), rel=1e-9)


def _ports(topo: Topology) -> dict[object, dict[str, int]]:
    """Per switch vertex: physical ports to NICs and to each switch layer (one out-edge per link end)."""
    ports: dict[object, dict[str, int]] = {}
    for u, v in topo.graph().edges():
        if isinstance(u, tuple) and u[0] in ("leaf", "spine", "edge", "agg", "core"):
            row = ports.setdefault(u, {})
            row[v[0]] = row.get(v[0], 0) + 1
    return ports


@pytest.mark.parametrize(
    "nodes,kind,radix,k",
    [(8, "ft2", 16, 1), (8, "ft2", 16, 2), (8, "ft2", 16, 8), (16, "ft3", 8, 2), (16, "ft3", 8, 4), (8, "mpft", 8, 2)],
)
def test_ports_are_conserved(nodes: int, kind: str, radix: int, k: int) -> None:
    topo = make(nodes, kind, node={"gpus_per_node": 8}, switch_radix=radix, oversubscription=k)
    down, up = radix // 2, radix // 2 // k
    ports = _ports(topo)
    assert len(ports) == topo.switches
    assert all(sum(row.values()) <= radix for row in ports.values())  # no switch uses more than its radix
    # every link end is a port: NIC links once, switch links at both ends
    assert sum(sum(row.values()) for row in ports.values()) == topo.nic_links + 2 * topo.switch_links
    first = "leaf" if kind in ("ft2", "mpft") else "edge"
    for name, row in ports.items():
        if name[0] == first:  # every first-layer switch here is full: radix/2 NICs, radix/(2k) uplinks
            assert row == {"nic": down, "spine" if first == "leaf" else "agg": up}
        if name[0] == "agg":  # one port per edge of its pod below, radix/2 to the cores above
            assert row == {"edge": radix // 2, "core": radix // 2}
    # what the first layer sends up, the next layer takes in
    upper = "spine" if first == "leaf" else "agg"
    assert sum(r.get(upper, 0) for n, r in ports.items() if n[0] == first) == sum(
        r.get(first, 0) for n, r in ports.items() if n[0] == upper
    )


@pytest.mark.parametrize("kind,up_block", [("ft2", "leaf_up"), ("ft3", "edge_up"), ("mpft", "leaf_up")])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_uplink_capacity_of_a_first_layer_switch_is_its_downlink_capacity_over_k(
    kind: str, up_block: str, k: int
) -> None:
    topo = _shipped(kind, k)
    lay = topo.layout
    assert lay is not None and (lay.down, lay.up) == (32, 32 // k)
    block = topo.blocks[up_block]
    cap = topo.capacity[block.offset : block.offset + block.count]
    assert np.all(topo.kind[block.offset : block.offset + block.count] == SWITCH)
    per_switch = cap.reshape(-1, lay.up).sum(axis=1)  # uplinks are numbered switch by switch
    assert per_switch == pytest.approx(np.full(len(per_switch), lay.down * NIC_Bps / k), rel=1e-12)


def _cross_leaf_alltoall(topo: Topology, nbytes: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Every GPU of the first half sends ``nbytes`` to every GPU of the second half and back, alone on the
    network (exact completion); returns the time and the flows' (src, dst)."""
    half = topo.gpus // 2
    a, b = np.repeat(np.arange(half), half), np.tile(np.arange(half, topo.gpus), half)
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    net.send_batch(src, dst, np.full(len(src), nbytes))
    env.run()
    return env.now, src, dst


@pytest.mark.parametrize("radix,nodes", [(16, 2), (32, 4)])
def test_alltoall_across_leaves_is_bound_by_the_thinner_uplinks(radix: int, nodes: int) -> None:
    """Two leaves, all traffic between them. Expected time: the bytes ECMP puts on the busiest leaf uplink
    over its capacity (the uplinks bind: every one carries more flows than a NIC does), which is at least
    the leaf's bytes over its k-times-smaller total uplink capacity, i.e. k times the NIC-bound time."""
    nbytes = 1e8
    nic_bound = None
    for k in (1, 2, 4, radix // 2):
        topo = make(nodes, "ft2", switch_radix=radix, oversubscription=k, latency=ZERO_LATENCY)
        lay = topo.layout
        assert lay is not None and lay.leaves == 2 and lay.up == radix // 2 // k
        time_s, src, dst = _cross_leaf_alltoall(topo, nbytes)
        leaf_bytes = (topo.gpus // 2) ** 2 * nbytes  # each way, all through the leaf's uplinks
        nic_bound = nic_bound or (topo.gpus // 2) * nbytes / NIC_Bps  # each NIC sends to half the GPUs
        up = topo.blocks["leaf_up"]
        links = route(topo, src, dst).links
        on_up = links[(links >= up.offset) & (links < up.offset + up.count)] - up.offset
        per_uplink = np.bincount(on_up, minlength=up.count) * nbytes
        assert per_uplink.sum() == pytest.approx(2 * leaf_bytes)  # every flow climbs exactly once
        expected = per_uplink.max() / NIC_Bps
        if k > 1:  # the uplinks bind: more flows on each than on a NIC
            assert per_uplink.min() / nbytes > topo.gpus // 2
            assert time_s == pytest.approx(expected, rel=1e-9)
        assert time_s >= leaf_bytes / (lay.up * NIC_Bps) * (1 - 1e-12)  # = k x NIC-bound time
        assert leaf_bytes / (lay.up * NIC_Bps) == pytest.approx(k * nic_bound, rel=1e-12)
        if lay.up == 1:  # one uplink: no ECMP spread, exactly k times the non-blocking NIC bound
            assert time_s == pytest.approx(k * nic_bound, rel=1e-9)


def _topology_file(tmp_path: Path, fabric: dict) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "nodes": 256, "fabric": {"kind": "ft2", **fabric}}))
    return path


@pytest.mark.parametrize(
    "value,needle",
    [
        (0, "fabric.oversubscription: Input should be greater than or equal to 1"),
        (1.5, "fabric.oversubscription: Input should be a valid integer"),
        (2.0, "fabric.oversubscription: Input should be a valid integer"),
        ("2", "fabric.oversubscription: Input should be a valid integer"),
        (3, "fabric.oversubscription: must divide the 32 endpoint ports of a radix-64 first-layer switch"),
        (64, "one of 1, 2, 4, 8, 16, 32; got 64"),
    ],
)
def test_bad_values_in_a_topology_file(tmp_path: Path, value: object, needle: str) -> None:
    path = _topology_file(tmp_path, {"switch_radix": 64, "oversubscription": value})
    with pytest.raises(ScenarioError) as info:
        load_cluster(path)
    assert str(info.value).startswith(f"{path}: ") and needle in str(info.value) and "\n" not in str(info.value)


def test_no_fabric_has_nothing_to_oversubscribe(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "one", "nodes": 1, "fabric": {"kind": "none", "oversubscription": 2}}))
    with pytest.raises(ScenarioError, match=r"fabric\.oversubscription: only a fat tree"):
        load_cluster(path)


def _scenario(tmp_path: Path, cluster: dict) -> Path:
    path = tmp_path / "s.yaml"
    base = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
    topo = cluster.pop("topology", str(TOPOLOGIES / "deepseek-v3-ft2.yaml"))
    path.write_text(yaml.safe_dump({"base": str(base), "set": {"cluster": {"topology": topo, **cluster}}}))
    return path


def test_scenario_key_overrides_the_topology_file(tmp_path: Path) -> None:
    for kind in ("ft2", "ft3", "mpft"):
        sc = load_scenario(
            _scenario(tmp_path, {"topology": str(TOPOLOGIES / f"deepseek-v3-{kind}.yaml"), "oversubscription": 4})
        )
        assert sc.cluster is not None and sc.cluster.spec.fabric.oversubscription == 1  # the file as written
        spec = sc.cluster_spec()
        assert spec.fabric.oversubscription == 4 and spec.fabric.kind == kind
        assert _digest(build_topology(spec)) == _digest(_shipped(kind, 4))
    plain = load_scenario(_scenario(tmp_path, {}))
    assert plain.cluster_spec().fabric.oversubscription == 1


@pytest.mark.parametrize(
    "value,needle",
    [
        (0, "cluster.oversubscription: Input should be greater than or equal to 1"),
        (2.5, "cluster.oversubscription: Input should be a valid integer"),
        (3, "cluster.oversubscription: must divide the 32 endpoint ports of a radix-64 first-layer switch"),
    ],
)
def test_bad_scenario_values_are_one_line_and_exit_2(
    tmp_path: Path, value: object, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario(tmp_path, {"oversubscription": value})
    with pytest.raises(SystemExit) as info:
        main(["validate", str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err and str(path) in err


def test_the_sweep_file_loads(tmp_path: Path) -> None:
    from sim.sweep.spec import load_sweep

    sweep = load_sweep(REPO / "scenarios" / "sweeps" / "oversubscription.yaml")
    assert [p.overrides["cluster.oversubscription"] for p in sweep.points] == [1, 2, 4] * 2
    assert {Path(p.overrides["cluster.topology"]).name for p in sweep.points} == {
        "deepseek-v3-ft2.yaml",
        "deepseek-v3-ft3.yaml",
    }


@pytest.mark.parametrize("kind,fabric", [("ft2", {"switch_radix": 16}), ("ft3", {"switch_radix": 8}), ("mpft", {})])
def test_one_node_under_a_fabric_has_its_nvlink_bisection(kind: str, fabric: dict) -> None:
    """A fabric of one node reported a bisection of 0 (no half of the nodes to cut), where the same 8 GPUs
    with no fabric report half their NVLink: its halves meet on NVLink either way."""
    one = make(1, kind, node={"gpus_per_node": 8}, **fabric)
    assert one.bisection_Bps() == pytest.approx(8 / 2 * one.spec.node.nvlink_GBps * 1e9, rel=1e-12)
    assert one.bisection_Bps() == make(1, "none", node={"gpus_per_node": 8}).bisection_Bps()
