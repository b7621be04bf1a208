"""An event at an exact time on the simpy clock.

simpy schedules a timeout at ``now + delay``. In floating point ``now + (t - now)`` is not always ``t``
(it is when ``t <= 2 now``, by Sterbenz's lemma, and may round otherwise), so code that works out a
time ``t`` ahead and must reach it in the very bits another path would (a chain of timeouts, each
``now + delay`` from the previous one's time: :mod:`sim.step.chunk_comm`) cannot use a timeout from
an earlier ``now``. :func:`at` puts an already-triggered event in simpy's queue at ``t`` itself, as
``Environment.schedule`` does with its own sum (``simpy.core``: entries ``(time, priority, id,
event)``; the id keeps events at one time in the order they were scheduled).
"""

from __future__ import annotations

from heapq import heappush

import simpy
from simpy.events import NORMAL


def at(env: simpy.Environment, when: float) -> simpy.Event:
    """An event processed at exactly ``when`` (not before ``env.now``), value None."""
    if when < env.now:
        raise ValueError(f"cannot schedule at {when!r}, before now ({env.now!r})")
    event = simpy.Event(env)
    event._ok = True
    event._value = None
    heappush(env._queue, (when, NORMAL, next(env._eid), event))
    return event


__all__ = ["at"]
