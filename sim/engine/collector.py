"""Python's cyclic garbage collector paused while an event loop runs.

A step's event loop allocates some 100,000 short-lived objects (simpy events, heap entries, callback
tuples); each allocation burst past the collector's threshold makes it walk every live object of
the process, the loaded scenario, profile and memos included, to find almost no cycles: 6-8% of the
default step's time (``benchmarks/bench_step.py``, measured with and without). Reference counting
still frees everything that forms no cycle as the loop runs; what forms cycles (a simpy process and
its events) waits for the first collection after the loop, which :func:`collector_paused` leaves to
the collector's own schedule. Peak memory of the default step moved by less than 1% (measured with
``/usr/bin/time -v`` on ``twin run --format json``).

The chunk model pauses it too while it builds and times a chunk (:class:`sim.chunk.timer.ChunkTimer`):
a few thousand tasks and the DeepEP phases' simpy events, whose collections made a first chunk
pair 30 ms instead of 20 ms in a process holding a built scenario (``benchmarks/bench_chunk.py``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the ``with`` block, then restore it as it was (a caller that
    had disabled it keeps it disabled)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
