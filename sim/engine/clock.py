"""Events at a time on the simpy clock, cheaper than simpy's own, and the loop that runs them.

simpy schedules a timeout at ``now + delay``. In floating point ``now + (t - now)`` is not always ``t``
(it is when ``t <= 2 now``, by Sterbenz's lemma, and may round otherwise), so code that works out a
time ``t`` ahead and must reach it in the very bits another path would (a chain of timeouts, each
``now + delay`` from the previous one's time: :mod:`sim.step.chunk_comm`) cannot use a timeout from
an earlier ``now``. :func:`at` puts an already-triggered event (an :class:`Alarm`) in simpy's queue at ``t`` itself, as
``Environment.schedule`` does with its own sum (``simpy.core``: entries ``(time, priority, id,
event)``; the id keeps events at one time in the order they were scheduled).

A step schedules some 17,000 timeouts whose only use is their callbacks (the network's wake-ups, a
send's delivery after its latency, a phase's start). simpy's ``Timeout`` sets them up in interpreted
code; :func:`after` puts an :class:`Alarm` in the same queue, at the same ``now + delay``, with the
same priority and the next id of the same counter: simpy's loop (or :func:`run`) processes it exactly
where it would have processed the timeout. An :class:`Alarm` has what simpy's loop and a process
read of an event (``callbacks``, ``_ok``, ``_value``), so a process may also yield one (its value is
None, as a timeout's).

:func:`run` is ``env.run(until=event)`` as a plain loop over the same queue: the same events in the
same order, each one's callbacks in order, a failed event not defused raised as simpy raises it. It
stops once ``until`` has been processed (simpy stops at the stop callback it appends to ``until``
last, so the two differ only for callbacks added to ``until`` while it runs: none in this package).
With this module compiled (``twin compile``) the loop and the alarms run as C.

The modules on the step's loop read the time as ``env._now``, the attribute simpy's ``now`` property
returns: the property is an interpreted call, and a sweep point read it some 77,000 times.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Alarm:
    """An already-triggered event in simpy's queue (value None), read by simpy's loop and processes."""

    __slots__ = ("_ok", "_value", "callbacks", "env")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.callbacks: list[Callable[[Any], None]] | None = []
        self._ok = True
        self._value: object = None

    @property
    def triggered(self) -> bool:
        return True

    @property
    def processed(self) -> bool:
        return self.callbacks is None

    @property
    def value(self) -> object:
        return None


def at(env: simpy.Environment, when: float, callback: Callable[[Any], None]) -> None:
    """``callback(event)`` at exactly ``when`` (not before ``env.now``)."""
    if when < env._now:
        raise ValueError(f"cannot schedule at {when!r}, before now ({env._now!r})")
    event = Alarm(env)
    event.callbacks = [callback]
    queue: list[Any] = env._queue  # (entries of Alarms as of simpy's events: the loops read the same)
    heappush(queue, (when, NORMAL, next(env._eid), event))


def after(env: simpy.Environment, delay: float, callback: Callable[[Any], None]) -> None:
    """``env.timeout(delay).callbacks.append(callback)``: the same time (``now + delay``), priority
    and place among the events at that time."""
    if delay < 0:
        raise ValueError(f"Negative delay {delay}")
    at(env, env._now + delay, callback)


def run(env: simpy.Environment, until: simpy.Event) -> bool:
    """Process ``env``'s events until ``until`` has been processed (True), or until none is left
    (False: the caller says who waits for what)."""
    queue: list[Any] = env._queue  # Alarms among simpy's events
    stop: Any = until  # (simpy types an event's callbacks as a list; processed, they are None)
    while stop.callbacks is not None:
        if not queue:
            return False
        now, _, _, event = heappop(queue)
        env._now = now
        callbacks = event.callbacks
        event.callbacks = None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            failure = event._value
            exc = type(failure)(*failure.args)
            exc.__cause__ = failure
            raise exc
    return True


__all__ = ["Alarm", "after", "at", "run"]
