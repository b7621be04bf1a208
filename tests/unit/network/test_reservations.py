"""Reservations (sim/network/flows.py) and the chunk phases that use them (sim/step/chunk_comm.py):
when they are granted, what interrupts them, and that a chunk's phases end in the same bits with
and without them, beside coflows and plain flows that start at random times on shared links.

Exactness holds where no two events fall on the same instant (the phase-by-phase path orders such
ties by when each event was scheduled; a reservation takes its own events at an instant as first):
the property test draws its times from a continuous distribution, where such ties have probability 0."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chunk.plan import CommPlan
from sim.engine.clock import at
from sim.network.flows import FlowNetwork
from sim.network.linklog import LinkLog
from sim.step.chunk_comm import ChunkComm
from tests.unit.network.conftest import ZERO_LATENCY, make

TOPO = make(2, "mpft", latency=ZERO_LATENCY)


def _nic(gpu: int) -> int:
    return int(TOPO.blocks["nic_up"].offset + gpu)


def _arrays(*gpus: int, nbytes: float = 1e8) -> tuple[np.ndarray, np.ndarray]:
    return np.array([_nic(g) for g in gpus]), np.full(len(gpus), nbytes)


def _net() -> tuple[simpy.Environment, FlowNetwork]:
    env = simpy.Environment()  # a unit test of the network alone (a run's comes from SimContext)
    return env, FlowNetwork(env, TOPO)


def test_an_event_at_an_exact_time_where_a_timeout_would_round() -> None:
    env = simpy.Environment()
    env.run(until=0.0002565415294814475)
    when = 0.003154926223424269  # now + (when - now) rounds away from when (rare: ~1 in 10^5 such pairs)
    assert env.now + (when - env.now) != when
    seen: list[float] = []
    at(env, when, lambda _e: seen.append(env.now))
    env.run()
    assert seen == [when]
    with pytest.raises(ValueError, match="before now"):
        at(env, when / 2, lambda _e: None)


def test_a_reservation_is_granted_only_where_each_coflow_would_run_solo() -> None:
    env, net = _net()
    a, b, c = _arrays(0), _arrays(1), _arrays(0, 2)  # c shares GPU 0's NIC with a
    ka, kb, kc = (net.coflows.kind_of(*x) for x in (a, b, c))
    cap = 1e8 / 0.01  # 10 GB/s on a 50 GB/s NIC
    assert net.reserve([ka, kb], [cap, cap], lambda now: None)
    assert not net.reserve([kc], [cap], lambda now: None)  # shares a NIC with a reserved kind
    net.release([ka, kb])
    assert net.reserve([kc], [cap], lambda now: None)
    net.release([kc])
    assert not net.reserve([ka], [1e8 / 1e-3], lambda now: None)  # 100 GB/s: does not fit alone
    net.send_coflow(*c, 0.01)  # solo, on GPU 0's NIC
    assert not net.reserve([ka], [cap], lambda now: None)
    assert net.reserve([kb], [cap], lambda now: None)
    net.release([kb])
    net.send(0, 8, 1e8)  # a plain flow: coflows are then solved with it, none runs solo
    assert not net.reserve([kb], [cap], lambda now: None)
    env.run()
    net.reservations = False
    assert not net.reserve([kb], [cap], lambda now: None)


def test_a_kind_seen_after_a_reservation_of_the_same_lists_is_checked_too() -> None:
    """reserve() remembers, per (kinds list, caps list, first), the kinds they conflict with; a kind the
    network meets later may share their links, so what it remembers must not outlive it."""
    env, net = _net()
    kinds, caps = [net.coflows.kind_of(*_arrays(0)), net.coflows.kind_of(*_arrays(1))], [1e10, 1e10]
    assert net.reserve(kinds, caps, lambda now: None, 1)  # kinds[1:] only: GPU 1's NIC
    net.release(kinds[1:])
    net.send_coflow(*_arrays(1, 3), 0.01)  # a kind seen for the first time, on GPU 1's NIC: runs solo
    assert not net.reserve(kinds, caps, lambda now: None, 1)
    assert net.reserve(kinds, caps, lambda now: None, 0) is False  # kinds[0:] includes kinds[1]
    env.run()
    assert net.reserve(kinds, caps, lambda now: None, 0)


def test_a_conflicting_coflow_or_any_plain_flow_interrupts_first() -> None:
    env, net = _net()
    a, b, c = _arrays(0), _arrays(1), _arrays(0, 2)
    ka, kb, _ = (net.coflows.kind_of(*x) for x in (a, b, c))
    calls: list[tuple[str, float]] = []
    cap = 1e8 / 0.01
    assert net.reserve([ka], [cap], lambda now: (calls.append(("a", now)), net.release([ka])))
    assert net.reserve([kb], [cap], lambda now: (calls.append(("b", now)), net.release([kb])))
    assert net.active_coflows == 2
    env.run(until=0.003)
    net.send_coflow(*c, 0.01)  # meets a's kind only
    assert calls == [("a", 0.003)]
    env.run(until=0.004)
    net.send(4, 12, 1e8)  # a plain flow on other NICs interrupts what is left: b
    assert calls == [("a", 0.003), ("b", 0.004)]
    env.run()


def _plan(rng: np.random.Generator, phases: int) -> CommPlan:
    starts = np.full((phases, phases + 1), -np.inf)
    for k in range(phases):
        starts[k, 0] = rng.uniform(0.0, 4e-3)
        for j in range(k):
            if rng.random() < 0.6:
                starts[k, j + 1] = rng.uniform(0.0, 2e-3)
    durations = tuple(float(x) for x in rng.uniform(5e-4, 3e-3, phases))
    z = np.zeros(phases)
    return CommPlan(tuple(range(phases)), durations, starts, starts, np.zeros(phases + 1), z, z > 0, z > 0)


def _scenario(seed: int, reservations: bool) -> list[object]:
    """Chunks and background traffic on four NICs drawn from ``seed``; everything that can be
    observed: each chunk's starts, ends and finish, each background coflow's end, the counters."""
    rng = np.random.default_rng(seed)
    env, net = _net()
    net.reservations = reservations
    shapes = [_arrays(0), _arrays(1), _arrays(0, 2), _arrays(3), _arrays(2, 3, nbytes=5e7)]
    for arrays in shapes:
        net.coflows.kind_of(*arrays)  # known before the first phase, as after a chunk's first run
    seen: list[object] = []

    def chunk(t0: float, plan: CommPlan, pick: list[int]) -> Generator[simpy.Event, object, None]:
        yield env.timeout(t0)
        loads = [shapes[i] for i in pick]
        kinds = [net.coflows.kind_of(*shapes[i]) for i in pick]
        run = ChunkComm(env, net, plan, loads, kinds)
        yield run.done
        seen.append(("chunk", t0, tuple(run.starts), tuple(run.ends), env.now))

    def background(
        t0: float, i: int, plain: bool, draw: tuple[int, int, float]
    ) -> Generator[simpy.Event, object, None]:
        yield env.timeout(t0)
        src, dst, x = draw
        if plain:  # GPU src on node 0 to a GPU of node 1 (over NICs that the coflows load)
            done = yield net.send(src, 8 + dst, x * 1e8)
        else:
            done = yield net.send_coflow(*shapes[i], x * 4e-3)
        seen.append(("background", t0, i, plain, done, env.now))

    for _ in range(int(rng.integers(2, 6))):
        phases = int(rng.integers(1, 7))
        pick = [int(x) for x in rng.integers(0, len(shapes), phases)]
        env.process(chunk(float(rng.uniform(0, 0.02)), _plan(rng, phases), pick))
    for _ in range(int(rng.integers(0, 8))):
        draw = (int(rng.integers(0, 4)), int(rng.integers(0, 4)), float(rng.uniform(0.1, 1.0)))
        start, shape, plain = float(rng.uniform(0, 0.03)), int(rng.integers(0, len(shapes))), rng.random() < 0.2
        env.process(background(start, shape, plain, draw))
    net.log = LinkLog()
    env.run()
    stats = net.stats
    log = sorted(net.log.coflows, key=lambda r: r[1])  # as readers take it (ends in order; none tie here)
    return [sorted(seen, key=repr), stats.flows, stats.completions, dict(net.coflows.sent), net.active_coflows, log]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_chunk_phases_end_in_the_same_bits_with_and_without_reservations(seed: int) -> None:
    assert _scenario(seed, True) == _scenario(seed, False)


def test_reservations_are_taken_and_interrupted_in_the_property_scenarios() -> None:
    """The property test exercises both paths: over its first seeds, reservations are granted, some
    run to their end and some are interrupted (by coflows and by plain flows)."""
    granted = interrupted = 0
    original_reserve, original_interrupted = FlowNetwork.reserve, ChunkComm._interrupted

    def reserve(self, kinds, caps, holder, first=0):  # type: ignore[no-untyped-def]
        nonlocal granted
        ok = original_reserve(self, kinds, caps, holder, first)
        granted += ok
        return ok

    def on_interrupt(self, now):  # type: ignore[no-untyped-def]
        nonlocal interrupted
        interrupted += 1
        original_interrupted(self, now)

    FlowNetwork.reserve = reserve  # type: ignore[method-assign]
    ChunkComm._interrupted = on_interrupt  # type: ignore[method-assign]
    try:
        for seed in range(40):
            _scenario(seed, True)
    finally:
        FlowNetwork.reserve = original_reserve  # type: ignore[method-assign]
        ChunkComm._interrupted = original_interrupted  # type: ignore[method-assign]
    assert granted > interrupted > 0
