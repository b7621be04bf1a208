"""The sweep's local pool (:mod:`sim.sweep.pool`): a worker starts without the parent's heavy imports.

pandas and pyarrow are the parent's (the store); a worker that imported them spent about 1 s of its
start-up on it, as long as a small point takes. The simulation's own modules come with the first point.
"""

from __future__ import annotations

from sim.sweep.pool import start_pool, stop_pool
from tests.unit.sweep.loaded import loaded

HEAVY = ["pandas", "pyarrow", "scipy", "matplotlib", "torch", "dask", "distributed"]


def test_a_worker_starts_without_the_stores_imports() -> None:
    pool = start_pool(1)
    try:
        assert pool.submit(loaded, HEAVY).result(timeout=120) == []
    finally:
        stop_pool(pool)
