"""A schedule's times with free sends, without the event loop: a max-plus pass.

With transfers that cost nothing, each device runs its actions in order and an action starts when
the previous one on its device has ended and every key it needs (:mod:`sim.pipeline.deps`) has been
produced, wherever:

    start(a) = max(end(previous action on a's device), end(producer of k) for k in needs(a))
    end(a)   = start(a) + duration(a)     (start(a) for a duration <= 0, as the engine takes it)

That is what :func:`sim.pipeline.execute.execute` computes with the free transport (``P2P()``), and
with the same floating-point operations (a maximum, then one addition), so the ends are the same
bits (``tests/unit/test_maxplus.py`` compares them on every registered schedule). It takes no simpy
events: a pass over the actions, each device advanced as far as its inputs allow, until all are
placed; a device that can never advance is a deadlock (:class:`DeadlockError`, naming each waiting
device, its action and the data it lacks).

Why it exists: every time a transfer or a shared link adds only delays (a send takes at least
nothing, a phase on a shared network at least its time alone), these ends are lower bounds on the
real ones (the times are monotone in the durations and the delays), at a fraction of the cost of the
event loop (:mod:`sim.step.bound`).

A schedule comparison's lower bound (:func:`comparison_lower_bound`, ``twin validate``) is the larger
of two times its run cannot beat: these ends at the op times, and the fastest of the schedule's sends
alone (every stage-to-stage transfer is waited for by the action that consumes it, so the step lasts
at least as long as any one of them, which takes at least its time alone: the alpha-beta link's
latency + bytes / bandwidth, or one flow with nothing else on the cluster network).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sim.errors import DeadlockError
from sim.pipeline.deps import Key, action_keys, consumers, describe
from sim.pipeline.ops import Schedule

if TYPE_CHECKING:
    from sim.pipeline.costs import OpTimes
    from sim.pipeline.execute import P2P, NetworkP2P


def free_send_ends(schedule: Schedule, durations: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each action's end (``durations[d][i]``: device ``d``'s ``i``-th action) with free sends, from 0."""
    devices = schedule.num_devices
    if len(durations) != devices or any(len(durations[d]) != len(schedule.actions[d]) for d in range(devices)):
        raise ValueError("durations: one per action of every device")
    plans = [[action_keys(schedule, action) for action in acts] for acts in schedule.actions]
    ready: dict[Key, float] = {}
    ends: list[list[float]] = [[] for _ in range(devices)]
    free = [0.0] * devices
    pos = [0] * devices
    left = sum(len(a) for a in schedule.actions)
    while left:
        moved = False
        for d in range(devices):
            plan, mine, dur = plans[d], ends[d], durations[d]
            i, t = pos[d], free[d]
            while i < len(plan):
                wanted, made = plan[i]
                start = t
                for key in wanted:
                    at = ready.get(key)
                    if at is None:
                        break
                    if at > start:
                        start = at
                else:
                    t = start + dur[i] if dur[i] > 0 else start  # as the engine: no time, no timeout
                    mine.append(t)
                    for key in made:
                        ready[key] = t
                    i += 1
                    continue
                break
            if i != pos[d]:
                left -= i - pos[d]
                pos[d], free[d] = i, t
                moved = True
        if not moved:
            waits = [
                f"device {d} waits at action {pos[d]} ({schedule.actions[d][pos[d]]}) for "
                + ", ".join(describe(k) for k in plans[d][pos[d]][0] if k not in ready)
                for d in range(devices)
                if pos[d] < len(plans[d])
            ]
            raise DeadlockError(f"schedule {schedule.name!r} deadlocks: " + "; ".join(waits))
    return ends


def send_pairs(schedule: Schedule) -> set[tuple[int, int]]:
    """The (source, destination) devices of every transfer the schedule makes."""
    pairs: set[tuple[int, int]] = set()
    for device, acts in enumerate(schedule.actions):
        for action in acts:
            for key in action_keys(schedule, action)[1]:
                pairs.update((device, dst) for dst in consumers(schedule, key) if dst != device)
    return pairs


def _send_alone(transport: P2P | NetworkP2P, src: int, dst: int) -> float:
    """One transfer of ``transport`` from device ``src`` to ``dst`` with nothing else under way."""
    from sim.pipeline.execute import P2P

    if isinstance(transport, P2P):
        moving = transport.nbytes / transport.bandwidth_Bps if transport.nbytes else 0.0
        return moving + transport.latency_s
    if transport.nbytes <= 0:
        return 0.0
    import simpy

    from sim.network.context import SimContext

    ctx = SimContext(transport.topology, transport.completion_rtol)
    a, b = transport.device_gpus[src], transport.device_gpus[dst]

    def send() -> simpy.events.ProcessGenerator:
        yield ctx.network.send(a, b, transport.nbytes, "pipeline")

    return ctx.run_alone([send()])


def comparison_lower_bound(schedule: Schedule, times: OpTimes, transport: P2P | NetworkP2P) -> float:
    """A lower bound on the step time in seconds of ``schedule`` at op times ``times`` with sends on
    ``transport`` (see the module docstring)."""
    durations = [[times.duration(a, schedule) for a in acts] for acts in schedule.actions]
    compute = max((end for ends in free_send_ends(schedule, durations) for end in ends), default=0.0)
    sends = min((_send_alone(transport, s, d) for s, d in send_pairs(schedule)), default=0.0)
    return max(compute, sends)


__all__ = ["comparison_lower_bound", "free_send_ends", "send_pairs"]
