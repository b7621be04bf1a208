"""The local process pool a sweep's points run on (:func:`sim.sweep.runner.run_sweep` without dask).

A worker is a fresh ``spawn`` process (no fork of a parent with threads, such as rich's progress). What
it imports before its first point is this module (the initializer's) and the point function's: this
module imports nothing heavy, so a worker never loads pandas or pyarrow, which only the parent's store
needs (importing pandas took about 1 s of each worker's start-up, on a sweep of 4 small points about
as long as the points themselves).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def quiet_worker(children: bool = False, parent: int | None = None) -> None:
    """Workers leave Ctrl-C to the parent (which stops the pool) and run single-threaded numerics; they
    fork no children of their own (:mod:`sim.forked`) unless the pool leaves cores free. A worker is
    started with SIGINT blocked (:class:`_Pool`): a Ctrl-C while its interpreter started stays pending,
    and is dropped here, where it is ignored, instead of printing a KeyboardInterrupt traceback. It dies
    with ``parent`` (Linux): a parent killed outright (the OOM killer, SIGKILL) left its workers waiting
    for ever, holding the terminal's or a pipe's output open."""
    from sim.forked import forking

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if parent is not None:
        _die_with(parent)
    forking(children)


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``; Linux only,
    elsewhere nothing), and exit now if it died already (this process then has another parent)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        # PR_SET_PDEATHSIG = 1 (linux/prctl.h). It follows the thread that started this process: sweeps submit
        # from the main thread, which lives as long as the pool
        if libc.prctl(1, ctypes.c_ulong(int(signal.SIGKILL)), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


class _Pool(ProcessPoolExecutor):
    """A process pool whose workers are started with SIGINT blocked (see :func:`quiet_worker`): the spawn
    happens inside ``submit``, in the thread calling it; the parent's own Ctrl-C is delivered after."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        import threading

        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
            return super().submit(fn, *args, **kwargs)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (started lazily, as points are submitted)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    free = workers < default_workers()  # a core for each worker's children too
    return _Pool(max_workers=workers, mp_context=ctx, initializer=quiet_worker, initargs=(free, os.getpid()))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: a stop must not wait for the points in flight. Its workers are terminated,
    then its manager thread is waited for (a few ms once they are gone): that thread closes the pool's
    pipes, and a pool started while it still did (the next one, after a worker died) could be handed a
    descriptor closed under it (``ValueError: bad value(s) in fds_to_keep`` from the spawn)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None and manager.is_alive():
        manager.join(timeout=5)
