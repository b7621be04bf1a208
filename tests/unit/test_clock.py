"""sim.engine.clock: alarms land where simpy's timeouts would, and its loop runs simpy's queue as
``env.run(until=...)`` does (the same events, the same order, the same failures)."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from sim.engine import clock


def _note(seen: list[tuple], env: simpy.Environment, name: str) -> Callable[[Any], None]:
    return lambda _e: seen.append((name, -2, env.now))


def _start(chain: Callable[[str, int], None], name: str) -> Callable[[Any], None]:
    return lambda _e: chain(name, 0)


def _scenario(env: simpy.Environment, schedule: Callable[[float, Callable[[Any], None]], None]) -> list[tuple]:
    """Processes and callbacks that schedule at equal and nearby times (ties decided by the queue's
    ids), driven by ``schedule(delay, callback)``; returns what happened, in order."""
    seen: list[tuple] = []
    rng = random.Random(7)
    delays = [rng.choice([0.0, 0.1, 0.25, 1 / 3, 0.5]) for _ in range(200)]

    def chain(name: str, i: int) -> None:
        seen.append((name, i, env.now))
        if i < len(delays):
            schedule(delays[(i * 7 + len(name)) % len(delays)], lambda _e: chain(name, i + 1))

    def proc(name: str) -> Generator[simpy.Event, object, None]:
        for d in delays[:60]:
            yield env.timeout(d)
            seen.append((name, -1, env.now))
            schedule(d / 2, _note(seen, env, name))

    for name in ("a", "b", "c"):
        schedule(0.0, _start(chain, name))
        env.process(proc(name.upper()))
    return seen


def test_alarms_land_where_timeouts_would_in_the_same_order() -> None:
    env1 = simpy.Environment()
    seen1 = _scenario(env1, lambda d, cb: env1.timeout(d).callbacks.append(cb))
    env1.run()
    env2 = simpy.Environment()
    seen2 = _scenario(env2, lambda d, cb: clock.after(env2, d, cb))
    env2.run()
    assert len(seen1) == 3 * 201 + 3 * 60 * 2  # every chain link and every process step and callback
    assert seen1 == seen2  # times to the bit, ties in the same order


def test_the_loop_runs_the_queue_as_simpy_does() -> None:
    env1 = simpy.Environment()
    seen1 = _scenario(env1, lambda d, cb: env1.timeout(d).callbacks.append(cb))
    stop1 = env1.timeout(7.3)
    env1.run(until=stop1)
    env2 = simpy.Environment()
    seen2 = _scenario(env2, lambda d, cb: clock.after(env2, d, cb))
    stop2 = env2.timeout(7.3)
    assert clock.run(env2, stop2) is True
    assert seen1 == seen2 and env1.now == env2.now == 7.3
    # the rest of the queue is left as simpy leaves it: running on from there agrees too
    env1.run()
    env2.run()
    assert seen1 == seen2


def test_the_loop_stops_when_the_queue_is_empty_and_raises_failures() -> None:
    env = simpy.Environment()
    never = env.event()
    clock.after(env, 1.0, lambda _e: None)
    assert clock.run(env, never) is False and env.now == 1.0  # a deadlock: the caller reports it
    failing = env.event()
    failing.fail(KeyError("boom"))
    with pytest.raises(KeyError, match="boom"):
        clock.run(env, env.timeout(5.0))


def test_a_process_may_wait_on_an_alarm() -> None:
    env = simpy.Environment()
    out: list[float] = []

    def proc() -> Generator[Any, object, None]:
        alarm = clock.Alarm(env)  # triggered, put in the queue at 2.5 as at() does
        heapq.heappush(env._queue, (2.5, simpy.events.NORMAL, next(env._eid), alarm))
        value = yield alarm
        out.append(env.now)
        assert value is None and alarm.processed

    env.process(proc())
    env.run()
    assert out == [2.5]


def test_negative_delays_and_past_times_are_refused() -> None:
    env = simpy.Environment()
    env.run(until=1.0)
    with pytest.raises(ValueError, match="Negative delay"):
        clock.after(env, -1e-9, lambda _e: None)
    with pytest.raises(ValueError, match="before now"):
        clock.at(env, 0.5, lambda _e: None)
