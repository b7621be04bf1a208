"""Coflows on the flow network: weighted max-min with caps against progressive filling, a coflow
alone takes its time alone, closed forms of two coflows on one link, the incremental component
solver against re-solving everything, and the run's one context."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.coflow import coflow_of_flows, link_loads
from sim.network.context import SimContext
from sim.network.flows import FlowNetwork
from sim.network.link_classes import LinkClasses
from sim.network.maxmin import maxmin_rates
from tests.unit.network.conftest import ZERO_LATENCY, make

SIM = Path(__file__).resolve().parents[3] / "sim"
VECTOR_CLASSES = LinkClasses.VECTOR_CLASSES


def _progressive_filling(entry_flow, entry_link, weight, cap_link, cap_flow, nflows):  # type: ignore[no-untyped-def]
    """Textbook progressive filling with weights and caps (reference): raise every unfrozen flow's
    rate together; a link saturates at sum(w x rate) = capacity, a flow freezes at its cap."""
    rates = np.zeros(nflows)
    frozen = np.zeros(nflows, bool)
    rem = cap_link.astype(float).copy()
    while not frozen.all():
        wsum = np.zeros(len(cap_link))
        for e in range(len(entry_flow)):
            if not frozen[entry_flow[e]]:
                wsum[entry_link[e]] += weight[e]
        steps = [rem[j] / wsum[j] for j in range(len(cap_link)) if wsum[j] > 0]
        steps += [cap_flow[f] - rates[f] for f in range(nflows) if not frozen[f]]
        inc = max(0.0, min(steps))
        rates[~frozen] += inc
        rem -= wsum * inc
        full = {j for j in range(len(cap_link)) if wsum[j] > 0 and rem[j] <= 1e-9 * cap_link[j]}
        for f in range(nflows):
            if frozen[f]:
                continue
            links = set(entry_link[entry_flow == f].tolist())
            if links & full or rates[f] >= cap_flow[f] * (1 - 1e-12):
                frozen[f] = True
    return rates


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_weighted_capped_water_filling_equals_progressive_filling(data: st.DataObject) -> None:
    nlinks = data.draw(st.integers(1, 6))
    nflows = data.draw(st.integers(1, 8))
    cap = np.array(data.draw(st.lists(st.floats(0.5, 10.0), min_size=nlinks, max_size=nlinks)))
    flows, links, weights = [], [], []
    for f in range(nflows):
        path = sorted(data.draw(st.sets(st.integers(0, nlinks - 1), min_size=1, max_size=nlinks)))
        w = data.draw(st.lists(st.floats(0.05, 1.0), min_size=len(path), max_size=len(path)))
        flows += [f] * len(path)
        links += path
        weights += w
    caps = np.array(
        data.draw(st.lists(st.one_of(st.just(np.inf), st.floats(0.1, 20.0)), min_size=nflows, max_size=nflows))
    )
    ef, el, w = np.array(flows), np.array(links), np.array(weights)
    fast = maxmin_rates(ef, el, cap, nflows, weight=w, cap=caps)
    ref = _progressive_filling(ef, el, w, cap, caps, nflows)
    assert np.allclose(fast, ref, rtol=1e-7)
    load = np.bincount(el, weights=w * fast[ef], minlength=nlinks)
    assert (load <= cap * (1 + 1e-9)).all()  # feasible
    assert (fast <= caps * (1 + 1e-12)).all()


def test_unit_weights_and_no_caps_are_plain_maxmin() -> None:
    ef, el, cap = np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), np.array([10.0, 4.0])
    assert maxmin_rates(ef, el, cap, 3, weight=np.ones(4), cap=np.full(3, np.inf)).tolist() == [8.0, 2.0, 2.0]


def _nic_up(topo, gpu: int) -> int:  # type: ignore[no-untyped-def]
    return int(topo.blocks["nic_up"].offset + gpu)


def test_coflow_alone_takes_its_time_alone_plus_latency() -> None:
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    ctx = SimContext(topo)
    links = np.array([_nic_up(topo, 0), _nic_up(topo, 1)])
    nbytes = np.array([1e9, 0.5e9])
    # 1 GB at 50 GB/s would take 20 ms; its own channels allow only 25 ms: alone it takes 25 ms
    done: list[float] = []

    def proc():  # type: ignore[no-untyped-def]
        yield ctx.network.send_coflow(links, nbytes, 0.025, latency_s=1e-6)
        done.append(ctx.env.now)

    ctx.env.process(proc())
    ctx.env.run()
    assert done == [pytest.approx(0.025 + 1e-6, rel=1e-12)]


def test_two_coflows_on_one_nic_share_it_then_the_survivor_speeds_up() -> None:
    """Both have their most loaded link on GPU 0's NIC (50 GB/s) and caps above it: 25 GB/s each
    until the smaller ends, then the bigger runs alone at its cap."""
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    env = simpy.Environment()
    net = FlowNetwork(env, topo)
    nic = _nic_up(topo, 0)
    a = net.send_coflow(np.array([nic]), np.array([1e9]), 1e9 / 50e9)
    b_links, b_bytes = np.array([nic, _nic_up(topo, 1)]), np.array([3e9, 1.5e9])
    b = net.send_coflow(b_links, b_bytes, 3e9 / 40e9)  # alone: 40 GB/s on its most loaded link
    env.run()
    assert a.value == pytest.approx(1e9 / 25e9, rel=1e-12)
    assert b.value == pytest.approx(1e9 / 25e9 + 2e9 / 40e9, rel=1e-12)
    assert net.stats.link_bytes[nic] == pytest.approx(4e9)  # bytes conserved


def test_a_coflow_and_a_plain_flow_share_a_link_max_min_fairly() -> None:
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    co = net.send_coflow(np.array([_nic_up(topo, 0)]), np.array([1e9]), 1e9 / 50e9)
    flow = net.send(0, 8, 1e9)  # same NIC (GPU 8 is GPU 0's plane peer on node 1)
    env.run()
    assert co.value == pytest.approx(0.04, rel=1e-9)
    assert flow.value == pytest.approx(0.04, rel=1e-9)


def test_coflow_of_equal_flows_alone_equals_the_per_flow_simulation() -> None:
    """A rank's pipeline sends (every GPU of one node to its peer on the next, equal sizes): the coflow's
    time alone is what the per-flow network gives for the same flows."""
    topo = make(4, "ft2", switch_radix=8, node={"gpus_per_node": 4})
    src, dst = np.arange(4), np.arange(4) + 8
    links, per_link, alone, latency = coflow_of_flows(topo, src, dst, np.full(4, 2e8))
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    ev = net.send_batch(src, dst, np.full(4, 2e8))
    env.run()
    assert alone + latency == pytest.approx(ev.value, rel=1e-9)
    l2, b2, _ = link_loads(topo, src, dst, np.full(4, 2e8))
    assert (links == l2).all() and np.allclose(per_link, b2)
    assert per_link.sum() == pytest.approx(net.stats.link_bytes.sum())


@st.composite
def coflow_runs(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    topo = make(4, draw(st.sampled_from(["ft2", "mpft"])), switch_radix=8, node={"gpus_per_node": 4})
    kinds = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 6))
        src = np.array(draw(st.lists(st.integers(0, topo.gpus - 1), min_size=n, max_size=n)))
        dst = np.array(draw(st.lists(st.integers(0, topo.gpus - 1), min_size=n, max_size=n)))
        size = np.array(draw(st.lists(st.floats(1e6, 1e8), min_size=n, max_size=n)))
        links, per_link, alone, _ = coflow_of_flows(topo, src, dst, size)
        if len(links) and alone > 0:
            kinds.append((links, per_link, alone * draw(st.floats(1.0, 3.0))))
    starts = []
    if kinds:
        for _ in range(draw(st.integers(1, 12))):
            starts.append((draw(st.floats(0.0, 0.01)), draw(st.integers(0, len(kinds) - 1))))
    return topo, kinds, sorted(starts)


def _run_coflows(topo, kinds, starts, incremental: bool):  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    net = FlowNetwork(env, topo, incremental=incremental)
    done: list[tuple[int, float]] = []

    def one(i: int, at: float, kind: int):  # type: ignore[no-untyped-def]
        yield env.timeout(at)
        links, per_link, alone = kinds[kind]
        yield net.send_coflow(links, per_link, alone)
        done.append((i, env.now))

    for i, (at, kind) in enumerate(starts):
        env.process(one(i, at, kind))
    env.run()
    return sorted(done)


@settings(max_examples=60, deadline=None)
@given(coflow_runs())
def test_incremental_component_solver_equals_resolving_everything(run) -> None:  # type: ignore[no-untyped-def]
    topo, kinds, starts = run
    fast = _run_coflows(topo, kinds, starts, incremental=True)
    ref = _run_coflows(topo, kinds, starts, incremental=False)
    assert [i for i, _ in fast] == [i for i, _ in ref]
    assert np.allclose([t for _, t in fast], [t for _, t in ref], rtol=1e-9, atol=1e-15)
    for (_, t), (at, kind) in zip(fast, starts, strict=True):
        assert t - at >= kinds[kind][2] * (1 - 1e-9)  # never faster than alone


def _run_mixed(topo, kinds, starts, flows, **network):  # type: ignore[no-untyped-def]
    """:func:`_run_coflows` with plain flows ``(at, src, dst, bytes)`` among the coflows."""
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0, **network)
    done: list[tuple[str, int, float]] = []

    def one(i: int, at: float, kind: int):  # type: ignore[no-untyped-def]
        yield env.timeout(at)
        links, per_link, alone = kinds[kind]
        yield net.send_coflow(links, per_link, alone)
        done.append(("coflow", i, env.now))

    def flow(i: int, at: float, src: int, dst: int, nbytes: float):  # type: ignore[no-untyped-def]
        yield env.timeout(at)
        yield net.send(src, dst, nbytes)
        done.append(("flow", i, env.now))

    for i, (at, kind) in enumerate(starts):
        env.process(one(i, at, kind))
    for i, f in enumerate(flows):
        env.process(flow(i, *f))
    env.run()
    return sorted(done), net


@settings(max_examples=60, deadline=None)
@given(coflow_runs(), st.data())
def test_plain_flows_among_coflows_equal_resolving_everything(run, data) -> None:  # type: ignore[no-untyped-def]
    """Plain flows start among the coflows: every coflow running solo joins the table first (a plain
    flow is solved with every coflow), and when plain flows end the coflows they held back rise (and
    the other way round); the times equal the reference's. (Before, a coflow slowed by a plain flow
    kept its share after the flow ended: 49% late in one drawn case.) Running solo changes nothing:
    the same times as with every coflow in the table."""
    topo, kinds, starts = run
    n = data.draw(st.integers(1, 4))
    gpus = st.integers(0, topo.gpus - 1)
    flows = [
        (data.draw(st.floats(0.0, 0.01)), data.draw(gpus), data.draw(gpus), data.draw(st.floats(1e6, 1e8)))
        for _ in range(n)
    ]
    fast, _ = _run_mixed(topo, kinds, starts, flows)
    table, _ = _run_mixed(topo, kinds, starts, flows, solo=False)
    ref, _ = _run_mixed(topo, kinds, starts, flows, incremental=False)
    assert [(w, i) for w, i, _ in fast] == [(w, i) for w, i, _ in ref] == [(w, i) for w, i, _ in table]
    assert np.allclose([t for *_, t in fast], [t for *_, t in ref], rtol=1e-9, atol=1e-15)
    assert np.allclose([t for *_, t in fast], [t for *_, t in table], rtol=1e-12, atol=1e-18)


def test_coflows_that_meet_nobody_run_solo_and_one_that_meets_joins_the_table() -> None:
    """Two coflows on different NICs never enter the table (no solve, no slot); a third on the first's
    NIC, started while it runs, makes it join: both share the NIC from then on (25 GB/s each), as the
    closed form of two coflows on one link says."""
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    env = simpy.Environment()
    net = FlowNetwork(env, topo)
    a = net.send_coflow(np.array([_nic_up(topo, 0)]), np.array([1e9]), 1e9 / 50e9)  # 20 ms alone
    b = net.send_coflow(np.array([_nic_up(topo, 1)]), np.array([1e9]), 1e9 / 50e9)
    assert net.active_coflows == 2 and not net.coflows.active  # both solo
    env.run(until=0.01)
    c = net.send_coflow(np.array([_nic_up(topo, 0)]), np.array([1e9]), 1e9 / 50e9)  # meets a at 10 ms
    assert len(net.coflows.active) == 2 and net.active_coflows == 3  # a joined, b stays solo
    env.run()
    assert b.value == pytest.approx(0.02, rel=1e-12)
    assert a.value == pytest.approx(0.01 + 0.5e9 / 25e9, rel=1e-12)  # its last half at half the NIC
    assert c.value == pytest.approx(a.value + 0.5e9 / 50e9, rel=1e-12)  # then alone at the full NIC
    assert net.stats.completions == 3 and net.stats.link_bytes[_nic_up(topo, 0)] == pytest.approx(2e9)


def test_run_alone_takes_no_simulated_time_and_needs_an_idle_network() -> None:
    topo = make(2, "mpft")
    ctx = SimContext(topo)

    def send():  # type: ignore[no-untyped-def]
        yield ctx.network.send(0, 8, 1e9)

    first = ctx.run_alone([send()])
    assert ctx.env.now == 0.0
    again = ctx.run_alone([send()])
    assert first == again > 0  # same bits: every measurement starts at the same instant
    ctx.network.send(0, 8, 1e9)
    with pytest.raises(RuntimeError, match="idle"):
        ctx.run_alone([send()])


def test_run_alone_gives_the_same_bits_whatever_the_clock_reads() -> None:
    """A measurement alone does not depend on when it is taken: after 21.3 s of a run (where the
    isolated step times its collectives) it gives the same bits as at 0 (where the shared step does),
    not (21.3 + d) - 21.3 rounded at 21.3's magnitude; a memo of such times keeps one value whichever
    run computed it first. The clock is back where it was afterwards."""
    topo = make(2, "mpft")
    ctx = SimContext(topo)

    def sends():  # type: ignore[no-untyped-def]
        yield ctx.network.send(0, 8, 1.234567e9)
        yield ctx.network.send_coflow(np.array([_nic_up(topo, 0)]), np.array([7.654321e8]), 7.654321e8 / 41e9)

    at_zero = ctx.run_alone([sends()])
    ctx.env.run(until=21.3)
    later = ctx.run_alone([sends()])
    assert ctx.env.now == 21.3
    assert later == at_zero > 0


def test_one_simpy_environment_in_sim() -> None:
    """Every run's environment comes from SimContext (one context per run, passed to everything)."""
    found = [
        f"{p.relative_to(SIM)}:{i}"
        for p in sorted(SIM.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"simpy\.Environment\(|\bEnvironment\(\)", line)
    ]
    assert found == ["network/context.py:" + found[0].split(":")[1]] if found else False
    assert len(found) == 1


@settings(max_examples=60, deadline=None)
@given(coflow_runs(), st.data())
def test_loads_in_a_list_or_an_array_give_the_same_bits(run, data) -> None:  # type: ignore[no-untyped-def]
    """The link classes keep their loads in a list while kinds cross few classes and in an array
    beyond (LinkClasses.VECTOR_CLASSES); both do the same float operations in the same order, so a
    run is the same bits either way (here forced one way, then the other, from the first kind)."""
    topo, kinds, starts = run
    gpus = st.integers(0, topo.gpus - 1)
    flows = [
        (data.draw(st.floats(0.0, 0.01)), data.draw(gpus), data.draw(gpus), data.draw(st.floats(1e6, 1e8)))
        for _ in range(data.draw(st.integers(0, 3)))
    ]
    seen = []
    for threshold in (np.inf, 0.0):
        loads: list[tuple[float, list[float]]] = []  # every link's load after each solve
        LinkClasses.VECTOR_CLASSES = threshold
        try:
            done, net = _run_mixed(
                topo, kinds, starts, flows, on_rates=lambda now, load, cap, out=loads: out.append((now, load.tolist()))
            )
        finally:
            LinkClasses.VECTOR_CLASSES = VECTOR_CLASSES
        assert net.coflows.classes.vector == (threshold == 0.0 and bool(kinds))
        seen.append((done, dict(net.coflows.delay), loads))
    assert seen[0] == seen[1]
