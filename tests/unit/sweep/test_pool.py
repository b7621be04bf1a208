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


def test_a_worker_is_started_with_sigint_blocked_and_ends_up_ignoring_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C while a worker's interpreter started printed its KeyboardInterrupt traceback: the spawn (inside
    ``submit``) runs with SIGINT blocked, which the worker inherits, and the worker ignores SIGINT, then
    unblocks it (a pending one is dropped)."""
    import os
    import signal
    from concurrent.futures import ProcessPoolExecutor

    masks: list[set[int]] = []
    real = ProcessPoolExecutor.submit

    def seen(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, set())))
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", seen)
    pool = start_pool(1)
    try:
        pid = pool.submit(os.getpid).result(timeout=120)
        status = open(f"/proc/{pid}/status").read() if os.path.exists(f"/proc/{pid}/status") else ""
    finally:
        stop_pool(pool)
    assert masks and all(signal.SIGINT in m for m in masks)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # (the parent's mask restored)
    if status:  # Linux: the worker ignores SIGINT and no longer blocks it
        fields = (line.split(":\t") for line in status.splitlines())
        bits = {k: int(v, 16) for k, v in fields if k in ("SigIgn", "SigBlk")}
        assert bits["SigIgn"] >> (signal.SIGINT - 1) & 1 and not bits["SigBlk"] >> (signal.SIGINT - 1) & 1
