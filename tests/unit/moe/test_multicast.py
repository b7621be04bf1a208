"""Switch multicast for the dispatch and in-network reduction for the combine (sim.moe.multicast):
the node sets expand to DeepEP's unicast messages exactly; a tree is the union of its branches' links,
each once; a multicast dispatch sends one copy through the sender's NIC and delivers every copy the
unicast delivered; and the mechanism, on a fabric where it holds exactly: in a balanced all-to-all
every NIC receives as many copies as before, so without the SM cap a multicast dispatch takes the
receivers' time, the unicast's own."""

from __future__ import annotations

import numpy as np
import pytest

from sim.model.spec import DEEPSEEK_V3
from sim.moe.alltoall import route_layer
from sim.moe.deepep import KernelSpec, message_flows, simulate_phase
from sim.moe.gating import Gating
from sim.moe.multicast import node_sets, unicast_counts
from sim.moe.spec import MoESpec
from sim.network.coflow import link_loads
from sim.network.routing import Routes, merge_routes, route, route_trees
from tests.unit.network.conftest import ZERO_LATENCY, make

SPEC = MoESpec.of_model(DEEPSEEK_V3, 32)  # 4 nodes of 8


@pytest.mark.parametrize(
    "gating",
    [
        Gating("balanced", node_sets=True),
        Gating("random", node_sets=True),
        Gating("skewed", node_sets=True),
        Gating("random", capacity_factor=1.0, node_sets=True),  # dropped choices go nowhere
    ],
)
def test_node_sets_expand_to_deepeps_ib_counts(gating: Gating) -> None:
    t = route_layer(SPEC, 1024, gating, 3)
    assert t.node_sets is not None
    np.testing.assert_array_equal(unicast_counts(t.node_sets, SPEC), t.ib)
    per_src = np.bincount(t.node_sets.src, weights=t.node_sets.tokens, minlength=SPEC.ep)
    assert (per_src <= 1024).all()  # one copy per token with a remote node
    assert (per_src * 4 >= t.ib.sum(axis=1)).all()  # at most 3 remote nodes of 4, node limit M = 4


def test_node_sets_of_hand_made_tokens() -> None:
    spec = MoESpec.of_model(DEEPSEEK_V3, 32)
    per_node = spec.experts_per_gpu * spec.gpus_per_node
    # GPU 0 (node 0): token a -> nodes 0, 1, 2; token b -> nodes 1, 2; token c -> node 0 only
    choices = np.array([[0, per_node, 2 * per_node], [per_node + 1, 2 * per_node + 1, -1], [1, 2, 3]])
    sets = node_sets(choices, np.zeros(3, dtype=np.int64), spec)
    assert sets.src.tolist() == [0] and sets.mask.tolist() == [0b110] and sets.tokens.tolist() == [2.0]


def test_merge_routes_is_the_union_of_each_groups_links() -> None:
    topo = make(4)
    src = np.array([0, 0, 0, 9, 9])
    dst = np.array([8, 16, 24, 1, 17])
    routes = route(topo, src, dst)
    group = np.array([0, 0, 0, 1, 1])
    merged = merge_routes(routes, group, 2)
    for g in range(2):
        expected = set().union(*(routes.path(i) for i in np.flatnonzero(group == g)))
        assert sorted(merged.path(g)) == sorted(expected)
        assert len(merged.path(g)) == len(set(merged.path(g)))
        assert merged.latency[g] == routes.latency[group == g].max()
    empty = merge_routes(Routes(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)), np.zeros(0), 0)
    assert empty.num_flows == 0


@pytest.mark.parametrize("phase", ["dispatch", "combine"])
def test_a_tree_puts_one_copy_on_the_senders_nic_and_every_copy_on_the_receivers(phase: str) -> None:
    """Multicast: the source's NIC uplink carries each token once; every receiving NIC as much as the
    unicast delivered. Reduction (combine) mirrors it: the source's NIC downlink gets one copy, each
    forwarder's uplink what it sent before."""
    topo = make(4)
    t = route_layer(SPEC, 1024, Gating("random", node_sets=True), 5)
    gpus = np.arange(SPEC.ep)
    loads = {}
    for trees in (False, True):
        s, d, b, _, tree = message_flows(t, gpus, phase, trees)
        links, per_link, _ = link_loads(topo, s, d, b, trees=tree)
        loads[trees] = np.zeros(topo.num_links)
        loads[trees][links] = per_link
    up, down = topo.blocks["nic_up"], topo.blocks["nic_down"]
    one_copy = np.bincount(t.node_sets.src, weights=t.node_sets.tokens, minlength=SPEC.ep) * t.bytes_per_token(phase)
    unicast = t.ib.sum(axis=1) * t.bytes_per_token(phase)
    source_side, other_side = (up, down) if phase == "dispatch" else (down, up)
    sl = slice(source_side.offset, source_side.offset + SPEC.ep)
    ol = slice(other_side.offset, other_side.offset + SPEC.ep)
    np.testing.assert_allclose(loads[False][sl], unicast)
    np.testing.assert_allclose(loads[True][sl], one_copy)
    np.testing.assert_allclose(loads[True][ol], loads[False][ol])  # the far side: every copy, as before
    assert loads[True].sum() < loads[False].sum()


def test_without_the_sm_cap_a_balanced_dispatch_takes_the_receivers_time() -> None:
    """Balanced routing on a non-blocking fabric: every NIC receives the same copies with or without
    multicast, and they bind, so the times are equal; the data time is the received bytes over the NIC."""
    topo = make(4, latency=ZERO_LATENCY)
    t = route_layer(SPEC, 1024, Gating("balanced", node_sets=True), 0)
    times = {}
    for multicast in (False, True):
        k = KernelSpec(coprocessor=True, comm_sms=0, multicast=multicast, notify_wait_us=0.0)
        r = simulate_phase(topo, t, k, "dispatch")
        times[multicast] = r.time_s - r.notify_s
    nic = topo.capacity[topo.blocks["nic_down"].offset]
    per_gpu = t.ib.sum() / SPEC.ep * t.bytes_per_token("dispatch")  # balanced: every GPU receives this
    assert times[True] == pytest.approx(times[False], rel=1e-6)
    assert times[True] >= per_gpu / nic * (1 - 1e-9)


def test_with_the_sm_cap_multicast_frees_the_senders_channels() -> None:
    """DeepEP's SMs drive 44.6 GB/s of IB copies, short of the NIC: one copy per token lifts that cap,
    so the dispatch gets faster, down to the receivers' bound, never below it."""
    topo = make(4, latency=ZERO_LATENCY)
    t = route_layer(SPEC, 1024, Gating("balanced", node_sets=True), 0)
    r = {m: simulate_phase(topo, t, KernelSpec(multicast=m, notify_wait_us=0.0), "dispatch") for m in (False, True)}
    free = simulate_phase(topo, t, KernelSpec(coprocessor=True, comm_sms=0, notify_wait_us=0.0), "dispatch")
    assert r[True].time_s < r[False].time_s
    assert r[True].time_s >= free.time_s * (1 - 1e-6)


def test_on_an_oversubscribed_fabric_trees_cross_the_spines_once() -> None:
    """Two-layer fat tree, 4:1: each tree crosses a leaf's uplink once where the unicast crossed it
    per remote node behind it, so both phases get faster even without the SM cap."""
    topo = make(8, "ft2", switch_radix=16, oversubscription=4)
    spec = MoESpec.of_model(DEEPSEEK_V3, 64)
    t = route_layer(spec, 512, Gating("balanced", node_sets=True), 0)
    for phase, key in (("dispatch", "multicast"), ("combine", "in_network_reduce")):
        base = simulate_phase(topo, t, KernelSpec(coprocessor=True, comm_sms=0), phase)
        tree = simulate_phase(topo, t, KernelSpec(coprocessor=True, comm_sms=0, **{key: True}), phase)
        assert tree.time_s < base.time_s


def test_a_trees_branches_climb_to_one_spine() -> None:
    """route_trees: a multicast tree leaves its source's leaf by one uplink and a reduction tree enters
    its root's leaf by one downlink, whatever ECMP would pick for each branch alone."""
    topo = make(8, "ft2", switch_radix=16)  # 8 GPUs per leaf: a node per leaf
    up, down = topo.blocks["leaf_up"], topo.blocks["leaf_down"]
    dsts = np.array([8, 16, 24, 32, 40, 48, 56])
    for src, dst in ((np.zeros(7, dtype=np.int64), dsts), (dsts, np.zeros(7, dtype=np.int64))):
        tree = route_trees(topo, src, dst, np.zeros(7, dtype=np.int64))
        links = np.array(tree.path(0))
        leaf_up = links[(links >= up.offset) & (links < up.offset + up.count)]
        leaf_down = links[(links >= down.offset) & (links < down.offset + down.count)]
        spines = {int(x - up.offset) % topo.layout.up for x in leaf_up} | {
            int(x - down.offset) % topo.layout.up for x in leaf_down
        }
        assert len(spines) == 1  # one spine: copies split (or sums meet) there
        assert len(leaf_up) == (1 if src[0] == 0 else 7) and len(leaf_down) == (7 if src[0] == 0 else 1)


def test_twin_alltoall_takes_the_flags_and_counts_one_copy_per_token(capsys: pytest.CaptureFixture[str]) -> None:
    """``twin alltoall --multicast --in-network-reduce``: the dispatch's IB bytes per GPU are one copy per
    token with a remote node, and the dispatch is no slower than the unicast's."""
    import json

    from sim.cli import main

    runs = {}
    for flags in ([], ["--multicast", "--in-network-reduce"]):
        with pytest.raises(SystemExit) as info:
            main(["alltoall", "--ep", "32", "--tokens", "512", "--format", "json", *flags])
        assert info.value.code == 0
        runs[bool(flags)] = json.loads(capsys.readouterr().out)
    t = route_layer(SPEC, 512, Gating("balanced", node_sets=True), 0)
    one_copy = t.node_sets.tokens.sum() / SPEC.ep * t.bytes_per_token("dispatch")
    assert runs[True]["dispatch"]["ib_bytes_per_gpu"] == pytest.approx(one_copy)
    assert runs[False]["dispatch"]["ib_bytes_per_gpu"] == pytest.approx(
        t.ib.sum() / SPEC.ep * t.bytes_per_token("dispatch")
    )
    assert runs[True]["dispatch"]["time_s"] <= runs[False]["dispatch"]["time_s"]
