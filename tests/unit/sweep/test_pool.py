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


PARENT = """
import os, sys, time
from sim.sweep.pool import start_pool
pool = start_pool(1)
print(pool.submit(os.getpid).result(timeout=120), flush=True)
time.sleep(600)
"""


def test_a_worker_dies_with_its_parent() -> None:
    """A sweep's parent killed outright (SIGKILL, the OOM killer) left its workers and their resource
    tracker waiting for ever, holding the parent's stdout open (``twin sweep ... | grep`` hung)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # (the kernel signals it at once; reaped by init soon after)
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{worker}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":
                break  # killed, not yet reaped
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent")
