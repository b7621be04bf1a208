"""Flow-level network: closed forms, max-min examples, capacity and conservation invariants."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sim.errors import ScenarioError
from sim.network.flows import FlowNetwork
from sim.network.maxmin import maxmin_rates
from sim.network.routing import route
from tests.unit.network.conftest import ZERO_LATENCY, make


def _run(topo, batches, rtol: float = 0.0, on_rates=None):  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=rtol, on_rates=on_rates)
    events = [net.send_batch(np.asarray(s), np.asarray(d), np.asarray(b, dtype=float)) for s, d, b in batches]
    env.run()
    return env, net, events


def test_one_flow_pays_latency_plus_bytes_over_bottleneck() -> None:
    topo = make(2, "mpft")  # GPU 0 -> GPU 8: same plane, same leaf; NIC 50 GB/s is the bottleneck
    env, _, (ev,) = _run(topo, [([0], [8], [1e9])])
    assert env.now == pytest.approx(2.8e-6 + 1e9 / 50e9)
    assert ev.value == env.now


def test_n_flows_through_one_bottleneck_each_get_one_nth() -> None:
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    for n in (2, 3, 7):
        # n flows from GPU 0's NIC (PXN-free: same plane) to GPU 8: the NIC link carries all of them
        env, _net, _ = _run(topo, [([0] * n, [8] * n, [1e9] * n)])
        assert env.now == pytest.approx(n * 1e9 / 50e9)


def test_textbook_maxmin() -> None:
    # Bertsekas & Gallager style: link A (10) carries flows 0 and 1; link B (4) carries 1 and 2
    rates = maxmin_rates(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), np.array([10.0, 4.0]), 3)
    assert rates.tolist() == [8.0, 2.0, 2.0]
    # a flow limited elsewhere (demand 1 via its own access link) leaves the rest to the others
    rates = maxmin_rates(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), np.array([1.0, 9.0]), 3)
    assert rates.tolist() == [1.0, 4.0, 4.0]


def _progressive_filling(entry_flow, entry_link, cap, nflows):  # type: ignore[no-untyped-def]
    """The textbook algorithm, one small step per saturated link (reference)."""
    paths = [set(entry_link[entry_flow == f].tolist()) for f in range(nflows)]
    rates, frozen, rem = np.zeros(nflows), np.zeros(nflows, bool), cap.astype(float).copy()
    while not frozen.all():
        count = np.zeros(len(cap))
        for f in range(nflows):
            if not frozen[f]:
                count[list(paths[f])] += 1
        inc = min(rem[j] / count[j] for j in range(len(cap)) if count[j])
        rates[~frozen] += inc
        rem -= count * inc
        full = {j for j in range(len(cap)) if count[j] and rem[j] <= 1e-9 * cap[j]}
        for f in range(nflows):
            if paths[f] & full:
                frozen[f] = True
    return rates


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_parallel_water_filling_equals_progressive_filling(data: st.DataObject) -> None:
    nlinks = data.draw(st.integers(1, 7))
    nflows = data.draw(st.integers(1, 9))
    cap = np.array(data.draw(st.lists(st.floats(0.5, 10.0), min_size=nlinks, max_size=nlinks)))
    flows, links = [], []
    for f in range(nflows):
        path = sorted(data.draw(st.sets(st.integers(0, nlinks - 1), min_size=1, max_size=nlinks)))
        flows += [f] * len(path)
        links += path
    ef, el = np.array(flows), np.array(links)
    assert np.allclose(maxmin_rates(ef, el, cap, nflows), _progressive_filling(ef, el, cap, nflows), rtol=1e-7)


def test_unequal_sizes_speed_up_the_survivor() -> None:
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    _env, _, (small, big) = _run(topo, [([0], [8], [1e9]), ([0], [8], [3e9])])
    assert small.value == pytest.approx(2 * 1e9 / 50e9)  # shared: 25 GB/s each
    assert big.value == pytest.approx(0.04 + 2e9 / 50e9)  # then alone at 50 GB/s


def test_uniform_alltoall_across_nodes_is_ib_bound() -> None:
    """EP64 on 8 nodes: every NIC carries 56 of the 64 per-peer shares of its node's data."""
    topo = make(8, "mpft", latency=ZERO_LATENCY)
    gpus = np.arange(64)
    src, dst = np.repeat(gpus, 64), np.tile(gpus, 64)
    off = src != dst
    share = 1e6
    env, net, _ = _run(topo, [(src[off], dst[off], [share] * int(off.sum()))])
    assert env.now == pytest.approx(56 * share / 50e9, rel=1e-9)
    # bytes conserved: every NIC-up link carries exactly its 56 shares, every NIC-down link too
    nic_up = net.stats.link_bytes[topo.blocks["nic_up"].offset : topo.blocks["nic_up"].offset + 64]
    assert np.allclose(nic_up, 56 * share)


@st.composite
def small_networks(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    kind = draw(st.sampled_from(["ft2", "mpft", "ft3"]))
    radix = draw(st.sampled_from([4, 8]))
    nodes = draw(st.integers(2, 6))
    g = draw(st.sampled_from([2, 4, 8]))
    nic = draw(st.sampled_from([200.0, 400.0]))
    try:
        topo = make(nodes, kind, switch_radix=radix, node={"gpus_per_node": g, "nic_Gbps": nic})
    except ScenarioError:
        assume(False)  # too many endpoints for this radix
    nflows = draw(st.integers(1, 40))
    src = np.array(draw(st.lists(st.integers(0, topo.gpus - 1), min_size=nflows, max_size=nflows)))
    dst = np.array(draw(st.lists(st.integers(0, topo.gpus - 1), min_size=nflows, max_size=nflows)))
    sizes = np.array(draw(st.lists(st.floats(1e3, 1e8), min_size=nflows, max_size=nflows)))
    split = draw(st.integers(0, nflows))
    return topo, src, dst, sizes, split


@settings(max_examples=80, deadline=None)
@given(small_networks())
def test_random_networks_respect_capacity_and_finish_every_flow(case) -> None:  # type: ignore[no-untyped-def]
    topo, src, dst, sizes, split = case
    worst = [0.0]

    def check(_t: float, load: np.ndarray, cap: np.ndarray) -> None:
        worst[0] = max(worst[0], float((load / cap).max()))

    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0, on_rates=check)
    first = net.send_batch(src[:split], dst[:split], sizes[:split])

    def later():  # type: ignore[no-untyped-def]
        yield env.timeout(1e-4)
        yield net.send_batch(src[split:], dst[split:], sizes[split:])

    second = env.process(later())
    env.run()
    assert first.triggered and second.triggered and net.active_flows == 0
    assert worst[0] <= 1 + 1e-9
    # conservation: bytes on each link = bytes of the flows whose route crosses it
    r = route(topo, src, dst)
    expect = np.bincount(r.links, weights=np.repeat(sizes, np.diff(r.indptr)), minlength=topo.num_links)
    assert np.allclose(net.stats.link_bytes, expect)


def test_same_seed_same_result_and_rtol_bounds_the_error() -> None:
    topo = make(16, "ft2", switch_radix=16)
    rng = np.random.default_rng(7)
    src, dst = rng.integers(0, topo.gpus, 400), rng.integers(0, topo.gpus, 400)
    sizes = rng.uniform(1e5, 1e7, 400)
    exact = [_run(topo, [(src, dst, sizes)])[0].now for _ in range(2)]
    assert exact[0] == exact[1]
    approx = _run(topo, [(src, dst, sizes)], rtol=1e-2)[0].now
    assert approx == pytest.approx(exact[0], rel=1e-2)


@st.composite
def plain_runs(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    """Batches of plain flows started at drawn times: single flows (a pipeline send), small batches,
    some repeating the same routes (a collective's ring steps), often link-disjoint."""
    topo = make(4, draw(st.sampled_from(["ft2", "mpft"])), switch_radix=8, node={"gpus_per_node": 4})
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 4))
        src = draw(st.lists(st.integers(0, topo.gpus - 1), min_size=n, max_size=n))
        dst = draw(st.lists(st.integers(0, topo.gpus - 1), min_size=n, max_size=n))
        pairs.append((np.array(src), np.array(dst)))
    sends = []
    for _ in range(draw(st.integers(1, 14))):
        at = draw(st.sampled_from([0.0, 0.001, 0.002]) | st.floats(0.0, 0.01))
        sends.append((at, draw(st.integers(0, len(pairs) - 1)), draw(st.floats(1e6, 1e8))))
    return topo, pairs, sorted(sends)


def _run_plain(topo, pairs, sends, incremental: bool):  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0, incremental=incremental)
    routes = [net.route(s, d) for s, d in pairs]  # one Routes per pair: repeats key memoised solves
    done: list[tuple[int, float]] = []

    def one(i: int, at: float, pair: int, size: float):  # type: ignore[no-untyped-def]
        yield env.timeout(at)
        yield net.send_routes(routes[pair], np.full(len(pairs[pair][0]), size))
        done.append((i, env.now))

    for i, (at, pair, size) in enumerate(sends):
        env.process(one(i, at, pair, size))
    env.run()
    return sorted(done), net.stats.link_bytes


@settings(max_examples=80, deadline=None)
@given(plain_runs())
def test_plain_flow_fast_paths_equal_resolving_everything(run) -> None:  # type: ignore[no-untyped-def]
    """A send whose links no active flow crosses is solved alone, an end that frees only its own links
    re-solves nothing, a set of whole batches seen before reuses its rates: max-min fairness decomposes
    over link-disjoint groups and depends on paths only, so every rate is the same float as when every
    change re-solves every flow (``incremental=False``). Delivery times agree to rounding: the reference
    re-derives every wake-up from remainders advanced to each event (``t + (r - x dt) / x`` against
    ``t0 + r / x``), a few ulps apart."""
    topo, pairs, sends = run
    fast, fast_bytes = _run_plain(topo, pairs, sends, incremental=True)
    ref, ref_bytes = _run_plain(topo, pairs, sends, incremental=False)
    assert len(fast) == len(ref) == len(sends)  # every send delivered, once
    assert np.allclose([t for _, t in fast], [t for _, t in ref], rtol=1e-12, atol=0.0)
    assert np.allclose(fast_bytes, ref_bytes, rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from([0.0, 1e-6, 2.5e-6, 3.3e-6])), max_size=60), st.booleans())
def test_ended_flows_grouped_by_batch_equal_flow_by_flow(flows: list[tuple[int, float]], shuffled: bool) -> None:
    """_ended_batches gives, for the flows that ended, what the flow-by-flow loop did: each batch's
    count of ended flows, its latest delivery (now + max latency, as the max of now + each), and the
    order in which batches are completed (by their last ended flow); batch ids out of order (never
    so in the network: flows stay in send order) take the flow-by-flow path."""
    from sim.network.flows import _ended_batches

    flows = sorted(flows, key=lambda f: f[0]) if not shuffled else flows
    batch = np.array([b for b, _ in flows], dtype=np.int64)
    latency = np.array([lat for _, lat in flows])
    now = 0.123456789

    def replay(items: list[tuple[int, int, float]]) -> tuple[dict[int, tuple[int, float]], list[int]]:
        state: dict[int, tuple[int, float]] = {}
        last: dict[int, int] = {}
        for i, (b, n, lat) in enumerate(items):
            count, at = state.get(b, (0, 0.0))
            state[b] = (count + n, max(at, now + lat))
            last[b] = i
        return state, sorted(last, key=last.__getitem__)

    grouped = _ended_batches(batch, latency)
    one_by_one = [(b, 1, lat) for b, lat in zip(batch.tolist(), latency.tolist(), strict=True)]
    assert replay(grouped) == replay(one_by_one)
    assert all(isinstance(b, int) and isinstance(n, int) and isinstance(lat, float) for b, n, lat in grouped)


def test_routes_of_is_route_memoised_by_content_and_repeats_hit_the_solve_memo() -> None:
    """The same flows give the same Routes object (equal to route()'s), so a batch sent again along them
    alone takes its rates from the memo: the same delivery times, one max-min solve for the lot."""
    topo = make(4, "ft2")
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    gpus = np.arange(16)
    src, dst = np.repeat(gpus, 16), np.tile(gpus, 16)
    off = src != dst
    a = net.routes_of(src[off], dst[off])
    assert net.routes_of(src[off].copy(), dst[off].copy()) is a  # by content, not by array identity
    ref = route(topo, src[off], dst[off], net.seed)
    assert np.array_equal(a.indptr, ref.indptr) and np.array_equal(a.links, ref.links)
    assert net.routes_of(dst[off], src[off]) is not a  # the reverse flows are other flows
    ends = []

    def sender():  # type: ignore[no-untyped-def]
        for _ in range(3):  # fresh arrays each time, as a caller builds them
            start = env.now
            yield net.send_batch(src[off].copy(), dst[off].copy(), np.full(int(off.sum()), 1e6))
            ends.append(env.now - start)

    env.process(sender())
    env.run()
    assert ends[0] > 0 and ends[1] == pytest.approx(ends[0], rel=1e-12) and ends[2] == pytest.approx(ends[0], rel=1e-12)
    assert len(net._alone_memo) == 1  # one solve, found again for the two repeats


def test_a_flow_ending_closer_than_the_clock_resolves_still_ends() -> None:
    """Far from the origin the clock's spacing (one ulp: 1.2e-4 s at 1e12 s) exceeds a short flow's
    time (100 bytes at 50 GB/s: 2 ns). ``now + 2 ns`` rounds to ``now``, so a wake-up there would find
    nothing advanced and wake at the same time for ever (what ``cluster.nic_Gbps: 1e-300`` or a notify
    wait of 1e18 us did to a step); the network wakes at the next time the clock can hold instead, and
    the flow ends there."""
    topo = make(2, "mpft", latency=ZERO_LATENCY)
    start = 1e12
    env = simpy.Environment(initial_time=start)
    net = FlowNetwork(env, topo, completion_rtol=0.0)
    assert start + 100 / 50e9 == start  # the flow's time is below the clock's resolution here
    ev = net.send_batch(np.asarray([0]), np.asarray([8]), np.asarray([100.0]))
    for _ in range(100):  # a livelock would process events at `start` without end
        if ev.triggered or not env._queue:
            break
        env.step()
    assert ev.triggered
    assert env.now == np.nextafter(start, np.inf)


def test_an_empty_batch_with_virtual_links_and_trees_is_delivered_at_once() -> None:
    """An EP group of one GPU sends DeepEP nothing: a batch of no flows, with its (empty) virtual-link
    table and trees, is delivered at once (was: a reshape of zero rows raised ValueError, a traceback of
    ``twin chunk --ep 1``)."""
    topo = make(2, "mpft")
    env = simpy.Environment()
    net = FlowNetwork(env, topo)
    none = np.zeros(0, dtype=np.int64)
    links = net.add_virtual_links(np.full(1, 1e9))
    ev = net.send_batch(none, none, np.zeros(0), links[none][:, None], trees=none)
    env.run()
    assert ev.triggered and env.now == 0.0
