"""Run a sweep's points in parallel: a local process pool, or a dask.distributed cluster.

Both paths call the same pure :func:`sim.sweep.point.run_point` in separate processes and hand its
rows to the same :class:`~sim.sweep.store.Store`, so they give the same file, row for row. Rows are
recorded as they complete; Ctrl-C or SIGTERM stops the sweep after writing what has completed (the
points in flight are lost and rerun next time).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.code_digest import code_digest
from sim.errors import ScenarioError, TwinError
from sim.overrides import label
from sim.sweep.point import FAILED, OK, run_point
from sim.sweep.pool import start_pool, stop_pool
from sim.sweep.spec import Point, Sweep
from sim.sweep.store import Store, override_cells

Progress = Callable[[int, int, int], None]  # (completed now, total to run, failed so far)


@dataclass(frozen=True)
class SweepOutcome:
    total: int  # points in the sweep
    skipped: int  # already in the results
    ran: int
    failed: int  # rows with status other than ok, among those run now
    output: Path
    stale: int = 0  # rows another revision of the simulator computed, run again now


def _task(sweep: Sweep, point: Point) -> tuple[tuple[dict[str, Any], str, str], str]:
    """The arguments of ``point``'s task, and the digest of the files it reads (its row's ``twin_inputs``:
    :meth:`Sweep.input_digest`) as this process reads them when it sends the task, from the one scenario
    mapping built here: a file edited while the task runs leaves the row older than the file, so it is
    run again, never kept."""
    data = sweep.scenario_data(point)
    return (data, str(sweep.base_path), str(sweep.base_folder)), sweep.input_digest(point, data)


def _row(sweep: Sweep, point: Point, figures: dict[str, Any], inputs: str) -> dict[str, Any]:
    row: dict[str, Any] = {"point": point.index, "point_id": point.point_id, "label": label(point.overrides)}
    row.update(override_cells(sweep, point.overrides))
    row.update(figures)
    row["twin_code"] = code_digest()  # this process's: a worker elsewhere is taken to run the same code
    row["twin_inputs"] = inputs  # the files it read (_task)
    return row


def _probed_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes whose first worker has started (it cannot when the main module
    is not a file, e.g. stdin: one line then, not a traceback per point)."""
    from concurrent.futures.process import BrokenProcessPool

    pool = start_pool(workers)
    try:
        pool.submit(os.getpid).result()
    except BrokenProcessPool:
        stop_pool(pool)
        raise TwinError("the sweep's worker processes cannot start (see above)") from None
    except BaseException:
        stop_pool(pool)
        raise
    return pool


def _local(
    sweep: Sweep, todo: list[Point], workers: int, fn: Callable[..., dict[str, Any]] = run_point
) -> Generator[tuple[Point, str, dict[str, Any]], None, None]:
    """Run ``todo`` on a pool of ``workers`` processes, at most two points per process in flight (a stop
    loses only those); yield each point, its input digest (:func:`_task`) and its figures. A worker that
    dies (killed, out of memory, a crash) breaks the pool: the points that were in flight are then run
    again one at a time, each alone on a new worker, so that only a point that kills its worker when
    alone is recorded as an error; the others go on. ``fn`` is the point function (tests swap it)."""
    from concurrent.futures.process import BrokenProcessPool

    from sim.sweep.point import empty_figures

    queue = list(reversed(todo))
    suspects: list[Point] = []
    pool = _probed_pool(workers)  # the pool the points start on
    if not queue:
        stop_pool(pool)
        return
    probed: ProcessPoolExecutor | None = pool
    while queue or suspects:
        if suspects:
            point = suspects.pop()
            args, inputs = _task(sweep, point)
            pool = start_pool(1)
            try:
                row = pool.submit(fn, *args).result()
            except BrokenProcessPool:
                row = empty_figures()
                row.update(
                    status=FAILED, error="its worker process died while it ran alone (killed, out of memory or a crash)"
                )
            finally:
                stop_pool(pool)
            yield point, inputs, row
            continue
        pool, probed = probed or start_pool(workers), None  # the probed pool first, then new ones
        pending: dict[Future[dict[str, Any]], tuple[Point, str]] = {}
        try:
            while queue or pending:
                refused = False  # the pool broke between two submissions: it takes no more
                while queue and len(pending) < 2 * workers:
                    nxt = queue.pop()
                    args, inputs = _task(sweep, nxt)
                    try:
                        pending[pool.submit(fn, *args)] = (nxt, inputs)
                    except BrokenProcessPool:
                        queue.append(nxt)  # never started: back in line
                        refused = True
                        break
                done, _ = wait(pending, return_when=ALL_COMPLETED if refused else FIRST_COMPLETED)
                broken = refused
                for fut in done:
                    point, inputs = pending.pop(fut)
                    try:
                        row = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(point)
                        continue
                    yield point, inputs, row
                if broken:
                    suspects.extend(p for p, _ in pending.values())  # in flight when the pool broke: run alone next
                    pending.clear()
                    break
        finally:
            stop_pool(pool)


M_TRIM_THRESHOLD = -1  # glibc mallopt parameter
TRIM_THRESHOLD_BYTES = 64 << 20


def tune_allocator() -> bool:
    """Let glibc keep up to 64 MiB of freed memory before returning it to the system. dask's nanny
    starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes the twin's many short-lived numpy
    arrays cost system calls: a sweep point took 1.6x as long on such a worker. Results do not change."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def _dask_plugin() -> Any:
    from distributed import WorkerPlugin

    class TuneAllocator(WorkerPlugin):
        name = "clustertwin-allocator"

        def setup(self, worker: Any) -> None:
            tune_allocator()

    return TuneAllocator()


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")  # the transports a scheduler on another host is reached by


def check_scheduler(address: str) -> str:
    """``address`` if it is a dask scheduler's address (``[tcp://]host:port``); else one line naming
    ``--scheduler``. Checked before anything runs: dask's client, given a malformed address, fails and
    then prints a traceback as it is collected (and waits 10 s), and an empty one would run locally."""
    text = address.strip()
    example = "e.g. tcp://host:8786"
    if not text:
        raise ScenarioError("--scheduler", f"give the dask scheduler's address, {example}")
    scheme, sep, location = text.partition("://")
    if not sep:
        scheme, location = "tcp", text
    if scheme not in SCHEDULER_SCHEMES:
        raise ScenarioError(
            "--scheduler", f"{address!r}: the scheme is one of {', '.join(SCHEDULER_SCHEMES)}, got {scheme!r}"
        )
    host, colon, port = location.rpartition(":")
    if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError("--scheduler", f"{address!r} is not host:port with a port in [1, 65535]; {example}")
    return text


def connect(address: str) -> Any:
    """A dask.distributed client of the scheduler at ``address`` (one-line errors)."""
    address = check_scheduler(address)
    try:
        from distributed import Client
    except ImportError:
        raise ScenarioError(
            "--scheduler", "needs dask.distributed: pip install 'clustertwin[dask]' (or 'distributed')"
        ) from None
    import logging

    # dask's own logs (reconnect attempts, their tracebacks) are not the user's: errors reach them as
    # one line from here and from _dask
    for name in list(logging.root.manager.loggerDict):  # dask sets levels on its own child loggers
        if name.split(".")[0] in ("distributed", "asyncio", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    for name in ("distributed", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        client = Client(address, timeout="5s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ScenarioError("--scheduler", f"cannot reach a dask scheduler at {address!r}: {err}") from None
    client.register_plugin(_dask_plugin())  # on every worker, now and joining later
    return client


def _lost(client: Any) -> TwinError:
    return TwinError(
        f"--scheduler: lost the dask scheduler at {client.scheduler.address}; the points "
        "completed so far are kept: run again (with a running scheduler) to resume"
    )


def _dask(
    sweep: Sweep, todo: list[Point], client: Any, fn: Callable[..., dict[str, Any]] = run_point
) -> Generator[tuple[Point, str, dict[str, Any]], None, None]:
    import uuid

    from distributed import as_completed

    from sim.sweep.point import empty_figures

    run = uuid.uuid4().hex[:8]  # two runs of one sweep on one cluster must not share (or cancel) tasks
    futures = {}
    try:
        for point in todo:
            key = f"twin-{sweep.name}-{run}-{point.point_id}"
            args, inputs = _task(sweep, point)
            fut = client.submit(fn, *args, key=key, pure=False)
            futures[fut.key] = (fut, point, inputs)
        with client.as_current():
            for fut in as_completed([f for f, _, _ in futures.values()]):
                _, point, inputs = futures[fut.key]
                try:
                    row = fut.result()
                except CancelledError:  # the scheduler was lost (or restarted): every task in flight went
                    raise _lost(client) from None
                except Exception as err:  # the task raised inside dask (it killed its workers, say)
                    if client.status != "running":  # or the scheduler went while the result was fetched
                        raise _lost(client) from None
                    row = empty_figures()
                    row.update(status=FAILED, error=f"dask task failed: {type(err).__name__}: {err}")
                yield point, inputs, row
    finally:
        if client.status == "running":
            client.cancel([f for f, _, _ in futures.values()])


def run_sweep(
    sweep: Sweep,
    output: Path,
    workers: int = 1,
    scheduler: str | None = None,
    restart: bool = False,
    retry_failed: bool = False,
    progress: Progress | None = None,
    drop_foreign: bool = False,
    order: Sequence[Point] | None = None,
    until: Callable[[dict[str, dict[str, Any]]], bool] | None = None,
    fn: Callable[[dict[str, Any], str, str], dict[str, Any]] = run_point,
    store: Store | None = None,
) -> SweepOutcome:
    """Run the points of ``sweep`` not yet in ``output``; write every row to it (see :mod:`sim.sweep.store`).

    ``order``: the points to run, in the order to submit them [default: the sweep's]. ``until(rows)``,
    given every row of the output so far (by point id), before the first point and after each: True
    stops the sweep there (the points in flight are dropped, not recorded; :mod:`sim.sweep.screen`).
    ``fn``: what a worker computes of a point [default: :func:`run_point`, its step's row]. ``store``:
    the output's store, already opened by the caller for ``sweep`` and ``output`` (with its restart and
    retry taken); this call releases it. Otherwise one is opened here (``--best`` opens both of its
    stores before the first runs: its output is read once, and a restart marks both before any point)."""
    if store is not None and (store.sweep is not sweep or store.output != output):
        raise ValueError("the store given is not this sweep's output")
    try:
        client = connect(scheduler) if scheduler else None
    except BaseException:
        if store is not None:
            store.release()
        raise
    try:
        if store is None:
            store = Store(sweep, output, restart=restart, retry_failed=retry_failed, drop_foreign=drop_foreign)
        try:
            done = store.done()
            todo = [p for p in (sweep.points if order is None else order) if p.point_id not in done]
            if until is not None and until(store.rows):
                todo = []
            ran = failed = 0
            if progress:
                progress(0, len(todo), 0)
            if todo:
                source = _dask(sweep, todo, client, fn) if client is not None else _local(sweep, todo, workers or 1, fn)
                try:
                    for point, inputs, figures in source:
                        row = _row(sweep, point, figures, inputs)
                        store.add(row)
                        ran += 1
                        failed += row["status"] != OK
                        if progress:
                            progress(ran, len(todo), failed)
                        if until is not None and until(store.rows):
                            break
                finally:
                    try:
                        source.close()  # a stop by until: the pool (or the dask tasks) go now, not at collection
                    finally:
                        if store.rows:
                            store.write()  # what completed, whether the loop ended or was stopped
            elif store.rows:
                store.write()
            return SweepOutcome(len(sweep.points), len(done), ran, failed, output, store.stale)
        finally:
            store.release()
    finally:
        if client is not None:
            client.close()
