""" "When": run a schedule on the simpy engine.

Each device is one simpy process, a compute stream that runs its action list in order. Before an
action starts, every piece of data it needs (see :mod:`sim.pipeline.deps`) must have arrived on the
device; the action then holds the stream for the duration the cost model gives. When it ends, the
data it produced is published: at once to its own device, and to the device of the neighbouring
stage over the transport: either the simple point-to-point link model (:class:`P2P`: latency +
bytes / bandwidth, FIFO per directed link) or the flow-level cluster network (:class:`NetworkP2P`:
devices placed on GPUs, transfers share links max-min fairly with everything else on the network).

Same-time events are ordered by simpy's heap key (time, priority, insertion sequence); device
processes are started in device order and every publication happens in a fixed order, so the same
inputs always give the same spans, bit for bit.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from functools import partial

import simpy

from sim.engine import LinkSet, Recorder
from sim.errors import DeadlockError
from sim.network.flows import FlowNetwork
from sim.network.topology import Topology
from sim.pipeline.costs import Durations
from sim.pipeline.deps import Key, consumers, describe, needs, produces
from sim.pipeline.ops import Schedule


@dataclass(frozen=True)
class P2P:
    """The simple link model for activation/gradient sends between stages.

    ``nbytes`` per transfer (the activation of one micro-batch at a stage boundary; gradients are
    the same size), ``bandwidth_Bps`` in bytes/s, ``latency_s`` in seconds. Defaults cost nothing.
    """

    nbytes: float = 0.0
    bandwidth_Bps: float = float("inf")
    latency_s: float = 0.0


@dataclass(frozen=True)
class NetworkP2P:
    """Send stage-to-stage transfers over a cluster network: device ``d`` runs on ``device_gpus[d]``."""

    topology: Topology
    device_gpus: tuple[int, ...]
    nbytes: float = 0.0
    completion_rtol: float = 1e-2


@dataclass(frozen=True)
class ScheduleRun:
    """What happened: the schedule, its compute spans and transfers (times in seconds)."""

    schedule: Schedule
    recorder: Recorder


def execute(schedule: Schedule, times: Durations, p2p: P2P | NetworkP2P | None = None) -> ScheduleRun:
    """Run ``schedule`` with op ``times``; raise :class:`DeadlockError` if it cannot finish."""
    p2p = p2p or P2P()
    env = simpy.Environment()
    rec = Recorder()
    if isinstance(p2p, NetworkP2P):
        if len(p2p.device_gpus) < schedule.num_devices:
            raise ValueError(f"{schedule.num_devices} devices but only {len(p2p.device_gpus)} placed on GPUs")
        network: FlowNetwork | None = FlowNetwork(env, p2p.topology, completion_rtol=p2p.completion_rtol)
        links = LinkSet(float("inf"), 0.0)
        record_transfers = p2p.nbytes > 0
    else:
        network = None
        links = LinkSet(p2p.bandwidth_Bps, p2p.latency_s)
        record_transfers = p2p.nbytes > 0 or p2p.latency_s > 0  # free transfers are not worth a trace slice
    events: dict[tuple[Key, int], simpy.Event] = {}
    positions = [0] * schedule.num_devices
    waiting: list[tuple[Key, int] | None] = [None] * schedule.num_devices

    def event(key: Key, device: int) -> simpy.Event:
        ev = events.get((key, device))
        if ev is None:
            ev = events[(key, device)] = env.event()
        return ev

    def arrive(key: Key, device: int) -> None:
        event(key, device).succeed()

    def arrive_cb(key: Key, device: int, _fired: simpy.Event) -> None:
        arrive(key, device)

    def delivered_cb(key: Key, src: int, dst: int, start: float, _fired: simpy.Event) -> None:
        if record_transfers:
            rec.transfer(src, dst, f"{key[1]}{key[0]}{key[2]}", p2p.nbytes, start, env.now)
        arrive(key, dst)

    def publish(key: Key, src: int) -> None:
        now = env.now
        for dst in consumers(schedule, key):
            if dst == src:
                arrive(key, dst)
                continue
            if network is not None:
                assert isinstance(p2p, NetworkP2P)
                sent = network.send(p2p.device_gpus[src], p2p.device_gpus[dst], p2p.nbytes)
                sent.callbacks.append(partial(delivered_cb, key, src, dst, now))
                continue
            start, arrival = links.get(src, dst).transfer(now, p2p.nbytes)
            if record_transfers:
                rec.transfer(src, dst, f"{key[1]}{key[0]}{key[2]}", p2p.nbytes, start, arrival)
            if arrival <= now:
                arrive(key, dst)
            else:
                env.timeout(arrival - now).callbacks.append(partial(arrive_cb, key, dst))

    # Precompute per action: label, duration, keys to wait for, keys to publish.
    plans = []
    for acts in schedule.actions:
        plan = []
        for action in acts:
            atoms = action.atoms()
            plan.append(
                (
                    str(action),
                    times.duration(action, schedule),
                    [k for a in atoms for k in needs(schedule, a)],
                    [k for a in atoms for k in produces(a)],
                )
            )
        plans.append(plan)

    def stream(device: int) -> Generator[simpy.Event, object, None]:
        for index, (label, duration, wait_for, publishes) in enumerate(plans[device]):
            for key in wait_for:
                ev = event(key, device)
                if not ev.triggered:
                    waiting[device] = (key, index)
                    yield ev
            waiting[device] = None
            start = env.now
            if duration > 0:
                yield env.timeout(duration)
            rec.span(device, index, label, start, env.now)
            for key in publishes:
                publish(key, device)
            positions[device] = index + 1

    for device in range(schedule.num_devices):
        env.process(stream(device))
    env.run()

    if any(positions[d] < len(plans[d]) for d in range(schedule.num_devices)):
        waits = []
        for d, w in enumerate(waiting):
            if w is not None:
                key, index = w
                waits.append(
                    f"device {d} waits at action {index} ({plans[d][index][0]}) for {describe(key)}"
                    f" (device {schedule.stage_device[key[1]]})"
                )
        raise DeadlockError(f"schedule {schedule.name!r} deadlocks: " + "; ".join(waits))
    return ScheduleRun(schedule, rec)
