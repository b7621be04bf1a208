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

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import simpy

from sim.engine import LinkSet, Recorder, clock
from sim.errors import DeadlockError
from sim.network.coflow import coflow_of_flows
from sim.network.context import SimContext
from sim.network.flows import FlowNetwork
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology
from sim.pipeline.costs import Durations, OpTimes
from sim.pipeline.deps import Key, action_keys, consumers, describe
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
    completion_rtol: float = COMPLETION_RTOL


@dataclass(frozen=True)
class RankP2P:
    """Send stage-to-stage transfers as one coflow per send over the cluster network: device ``d`` is
    a whole pipeline rank, ``device_gpus[d]`` its GPUs in chain order (GPU ``i`` of rank ``d`` sends
    to GPU ``i`` of the neighbour: every pipeline of the rank sends its micro-batch at once, as they run
    in lockstep). The coflow's time alone is the max-min time of those flows alone on the fabric; beside
    other traffic it shares links (:meth:`sim.network.flows.FlowNetwork.send_coflow`)."""

    topology: Topology
    device_gpus: tuple[np.ndarray, ...]
    nbytes: float = 0.0


@dataclass(frozen=True)
class ScheduleRun:
    """What happened: the schedule, its compute spans and transfers (times in seconds from the run's
    origin), and the op times it was given (``None`` where a chunk model timed the actions: a training
    step), which the trace's F&B slices quote for their parts."""

    schedule: Schedule
    recorder: Recorder
    op_times: OpTimes | None = None


ActionRunner = Callable[[int, int, float], Generator[simpy.Event, object, None]]
"""``runner(device, pos, duration)``: the process an action runs on its device's stream in place of a
plain ``duration`` timeout (a chunk whose communication goes through the shared network)."""


def _started() -> None:
    """What :meth:`Launched.start` leaves behind: its devices' processes are running."""


class Launched:
    """A schedule ready to run on a context: :meth:`start` starts its device processes at the
    context's current time (its origin), :meth:`finish` checks they all completed."""

    def __init__(self, schedule: Schedule, ctx: SimContext, recorder: Recorder) -> None:
        self.schedule = schedule
        self.ctx = ctx
        self.recorder = recorder
        self.positions = [0] * schedule.num_devices
        self.waiting: list[tuple[Key, int] | None] = [None] * schedule.num_devices
        self.labels: list[list[str]] = []
        self.done: simpy.Event = ctx.env.event()
        self.origin = 0.0
        self._start: Callable[[], None] = lambda: None

    def start(self) -> None:
        self.origin = self.ctx.env._now
        start, self._start = self._start, _started
        start()  # (dropped: its closure refers back to this handle, a cycle only the collector would free)

    def finish(self) -> ScheduleRun:
        schedule = self.schedule
        if any(self.positions[d] < len(self.labels[d]) for d in range(schedule.num_devices)):
            waits = []
            for d, w in enumerate(self.waiting):
                if w is not None:
                    key, index = w
                    waits.append(
                        f"device {d} waits at action {index} ({self.labels[d][index]}) for {describe(key)}"
                        f" (device {schedule.stage_device[key[1]]})"
                    )
            raise DeadlockError(f"schedule {schedule.name!r} deadlocks: " + "; ".join(waits))
        return ScheduleRun(schedule, self.recorder)


def execute(
    schedule: Schedule,
    times: Durations,
    p2p: P2P | NetworkP2P | RankP2P | None = None,
    ctx: SimContext | None = None,
) -> ScheduleRun:
    """Run ``schedule`` with op ``times`` on ``ctx`` (a new context when none is given: the network
    of ``p2p``'s topology, if any); raise :class:`DeadlockError` if it cannot finish."""
    if ctx is None:
        topo = p2p.topology if isinstance(p2p, NetworkP2P | RankP2P) else None
        rtol = p2p.completion_rtol if isinstance(p2p, NetworkP2P) else COMPLETION_RTOL
        ctx = SimContext(topo, rtol)
    launched = launch(schedule, times, p2p, ctx)
    ctx.start_main()
    launched.start()
    run_until(ctx, launched.done)
    done = launched.finish()
    return replace(done, op_times=times) if isinstance(times, OpTimes) else done


def run_until(ctx: SimContext, done: simpy.Event) -> None:
    """Run the context until ``done``; if the events run out first (a deadlock), return and let the
    caller's :meth:`Launched.finish` say who waits for what."""
    clock.run(ctx.env, done)


def launch(
    schedule: Schedule,
    times: Durations,
    p2p: P2P | NetworkP2P | RankP2P | None,
    ctx: SimContext,
    runner: ActionRunner | None = None,
    on_end: Callable[[int, int, float], None] | None = None,
    recorder: Recorder | None = None,
    prepare: ActionRunner | None = None,
) -> Launched:
    """Prepare ``schedule``'s device processes on ``ctx``: every action's duration is asked now (the
    chunk model may time phases alone on the context); :meth:`Launched.start` starts them, and the
    caller runs the environment.

    ``runner`` replaces each action's timeout by a process (see :data:`ActionRunner`); ``on_end(device,
    pos, end)`` is called as each action ends (times from the context's origin); ``prepare``, a process
    of the same form, runs once the action's inputs have arrived and before it starts (what it waits
    for is idle time of the device, not part of the action's span: FSDP's weights)."""
    p2p = p2p or P2P()
    rec = recorder if recorder is not None else Recorder()
    handle = Launched(schedule, ctx, rec)
    network: FlowNetwork | None = None
    if isinstance(p2p, NetworkP2P | RankP2P):
        if len(p2p.device_gpus) < schedule.num_devices:
            raise ValueError(f"{schedule.num_devices} devices but only {len(p2p.device_gpus)} placed on GPUs")
        network = ctx.network
        if network.topo is not p2p.topology:
            raise ValueError("the transport's topology is not the context's")
        links = LinkSet(float("inf"), 0.0)
        record_transfers = p2p.nbytes > 0
    else:
        links = LinkSet(p2p.bandwidth_Bps, p2p.latency_s)
        record_transfers = p2p.nbytes > 0 or p2p.latency_s > 0  # free transfers are not worth a trace slice
    # Precompute per action: label, duration, keys to wait for, keys to publish.
    plans = [
        [(str(action), times.duration(action, schedule), *action_keys(schedule, action)) for action in acts]
        for acts in schedule.actions
    ]
    handle.labels = [[p[0] for p in plan] for plan in plans]
    run = _Run(schedule, p2p, ctx, handle, rec, network, links, record_transfers, plans, runner, on_end, prepare)
    handle._start = run.start
    return handle


Plan = tuple[str, float, list[Key], list[Key]]  # per action: label, duration, waits, publishes


def _transfer_label(key: Key) -> str:
    """A transfer's name in the trace: the producing stage, the data's kind and the micro-batch (``3F5``:
    stage 3's activations of micro-batch 5)."""
    return f"{key[1]}{key[0]}{key[2]}"


class _Run:
    """The device processes and deliveries of one :func:`launch`, as methods of one object rather
    than closures: compiled, closures that call one another share one environment that refers back
    to them, a cycle that would hold the run's results until a collection (docs/sweeps.md, "The
    collector paused for a whole point"). Nothing refers back to this object once its processes and
    deliveries are over, so it is freed then.

    What has arrived where, and an event only for what a device waits for before it arrives: most
    data arrives before its consumer looks (an event succeeded then would be a trip through the queue
    that wakes nobody: 6,000 of the default step's)."""

    def __init__(
        self,
        schedule: Schedule,
        p2p: P2P | NetworkP2P | RankP2P,
        ctx: SimContext,
        handle: Launched,
        rec: Recorder,
        network: FlowNetwork | None,
        links: LinkSet,
        record_transfers: bool,
        plans: list[list[Plan]],
        runner: ActionRunner | None,
        on_end: Callable[[int, int, float], None] | None,
        prepare: ActionRunner | None,
    ) -> None:
        self.schedule = schedule
        self.p2p = p2p
        self.env = ctx.env
        self.handle = handle
        self.rec = rec
        self.network = network
        self.links = links
        self.record_transfers = record_transfers
        self.plans = plans
        self.runner = runner
        self.on_end = on_end
        self.prepare = prepare
        self.arrived: set[tuple[Key, int]] = set()
        self.events: dict[tuple[Key, int], simpy.Event] = {}
        self.coflow_sends: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, float, float]] = {}
        self.remaining = schedule.num_devices

    def arrive(self, key: Key, device: int) -> None:
        at = (key, device)
        if at in self.arrived:
            raise RuntimeError(f"{describe(key)} arrived twice at device {device}")
        self.arrived.add(at)
        ev = self.events.get(at)
        if ev is not None:
            ev.succeed()

    def arrive_cb(self, key: Key, device: int, _fired: object) -> None:
        self.arrive(key, device)

    def delivered_cb(self, key: Key, src: int, dst: int, start: float, _fired: object) -> None:
        if self.record_transfers:
            origin = self.handle.origin
            label = _transfer_label(key)
            self.rec.transfer(src, dst, label, self.p2p.nbytes, start - origin, self.env._now - origin)
        self.arrive(key, dst)

    def delivered_at(self, key: Key, src: int, dst: int, start: float, _at: float) -> None:
        self.delivered_cb(key, src, dst, start, None)

    def rank_send(self, key: Key, src: int, dst: int, now: float) -> None:
        """The send as a coflow that calls back on delivery (no event of its own in the queue)."""
        p2p, network = self.p2p, self.network
        assert isinstance(p2p, RankP2P) and network is not None
        hit = self.coflow_sends.get((src, dst))
        if hit is None:
            hit = self.coflow_sends[(src, dst)] = rank_coflow(
                p2p.topology, p2p.device_gpus[src], p2p.device_gpus[dst], p2p.nbytes, network.seed
            )
        network.start_coflow(*hit, "pipeline", partial(self.delivered_at, key, src, dst, now))

    def publish(self, key: Key, src: int) -> None:
        env, p2p, network = self.env, self.p2p, self.network
        now = env._now
        for dst in consumers(self.schedule, key):
            if dst == src:
                self.arrive(key, dst)
                continue
            if network is not None:
                if isinstance(p2p, RankP2P):
                    self.rank_send(key, src, dst, now)
                    continue
                assert isinstance(p2p, NetworkP2P)
                sent = network.send(p2p.device_gpus[src], p2p.device_gpus[dst], p2p.nbytes, "pipeline")
                sent.callbacks.append(partial(self.delivered_cb, key, src, dst, now))
                continue
            origin = self.handle.origin
            start, arrival = self.links.get(src, dst).transfer(now - origin, p2p.nbytes)
            if self.record_transfers:
                self.rec.transfer(src, dst, _transfer_label(key), p2p.nbytes, start, arrival)
            if arrival + origin <= now:
                self.arrive(key, dst)
            else:
                clock.after(env, arrival + origin - now, partial(self.arrive_cb, key, dst))

    def stream(self, device: int) -> Generator[simpy.Event, object, None]:
        env, handle, rec = self.env, self.handle, self.rec
        arrived, events = self.arrived, self.events
        runner, prepare, on_end = self.runner, self.prepare, self.on_end
        positions, waiting = handle.positions, handle.waiting
        for index, (label, duration, wait_for, publishes) in enumerate(self.plans[device]):
            for key in wait_for:
                at = (key, device)
                if at not in arrived:
                    ev = events.get(at)
                    if ev is None:
                        ev = events[at] = env.event()
                    waiting[device] = (key, index)
                    yield ev
            waiting[device] = None
            if prepare is not None:
                yield from prepare(device, index, duration)
            start = env._now
            if runner is not None:
                yield from runner(device, index, duration)
            elif duration > 0:
                yield env.timeout(duration)
            rec.span(device, index, label, start - handle.origin, env._now - handle.origin)
            if on_end is not None:
                on_end(device, index, env._now - handle.origin)
            for key in publishes:
                self.publish(key, device)
            positions[device] = index + 1
        self.remaining -= 1
        if self.remaining == 0:
            handle.done.succeed()

    def start(self) -> None:
        for device in range(self.schedule.num_devices):
            self.env.process(self.stream(device))
        if self.schedule.num_devices == 0:
            self.handle.done.succeed()


def rank_coflow(
    topo: Topology, src: np.ndarray, dst: np.ndarray, nbytes: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(links, bytes per link, time alone, latency) of ``nbytes`` from every GPU of ``src`` to the GPU
    at the same position of ``dst``: the flows routed, their bytes summed per link, and their max-min
    rates alone giving the time the last one needs."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    return coflow_of_flows(topo, src, dst, np.full(len(src), float(nbytes)), seed)
