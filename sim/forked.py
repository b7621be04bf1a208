"""Work done in a forked child while this process goes on: the second core of a one-step run.

A step's critical path is its event loop; some of what it needs is independent of it (the ZeRO-1
collectives' times alone, a report's chart) and can be worked out beside it. :class:`Forked` forks
a child that computes a value (or writes files) from this process's memory as it is at the fork
(nothing is pickled on the way in), sends the value back pickled through a pipe, and leaves with
``os._exit`` (nothing of this process's cleanup runs twice, nothing it prints reaches the terminal).

It behaves as if the work had been done here, in this process, when the value is asked for:

* the child fails (an exception, a signal, a full disk): the work is done again here, so its error
  is raised here, with its traceback;
* forking is not safe or not wanted (not Linux; another thread is running, whose locks the child
  would inherit held: a live progress bar, a test runner's, a dask worker's; :func:`forking` turned
  it off, as the sweep's workers do, whose cores are already busy): no child, the work is done here;
* the value is never asked for, or the caller fails first: :meth:`Forked.cancel` kills and reaps the
  child (a context manager does it on the way out).

The value must be the same whichever process computes it: the work must not depend on state this
process changes between the fork and the request (the callers' docstrings say why theirs does not).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

_ALLOWED = [True]


def forking(allowed: bool) -> None:
    """Allow or forbid children for the rest of this process (a sweep's worker forbids them)."""
    _ALLOWED[0] = allowed


def can_fork() -> bool:
    """Whether a child may be forked now: on Linux, allowed, with no other thread running."""
    return _ALLOWED[0] and sys.platform == "linux" and threading.active_count() == 1


class Forked(Generic[T]):
    """``compute()`` in a forked child from now on; :meth:`result` waits for its value (see the
    module docstring for what happens where there is no child, or it fails)."""

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._pid: int | None = None
        self._fd = -1
        self._value: T | None = None
        self._done = False
        if not can_fork():
            return
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # (None: started with the stream closed, '>&-')
                stream.flush()  # what is buffered here is written once, by this process
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(read)
                sys.stdout = sys.stderr = open(os.devnull, "w")
                gc.disable()  # short-lived: a collection would walk (and copy) every page of the parent's heap
                data = pickle.dumps(compute(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._fd = pid, read

    @property
    def forked(self) -> bool:
        """Whether a child is computing it (False: it is computed here when asked for)."""
        return self._pid is not None

    def result(self) -> T:
        """The value: the child's once it has finished; computed here where there was no child or it
        failed. Asked again, the same value."""
        if not self._done:
            value: T | None = None
            ok = False
            if self._pid is not None:
                pipe = os.fdopen(self._fd, "rb")
                self._fd = -1  # the file object owns it now
                try:
                    with pipe:
                        data = pipe.read()
                    status = os.waitpid(self._pid, 0)[1]
                except BaseException:
                    self.cancel()  # interrupted while waiting: leave no child behind
                    raise
                self._pid = None
                if os.waitstatus_to_exitcode(status) == 0:
                    value, ok = pickle.loads(data), True
            if not ok:
                value = self._compute()
            self._value, self._done = value, True
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """Kill and reap the child if it is still there (its value is dropped)."""
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # pragma: no cover - already reaped elsewhere
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # pragma: no cover - already reaped elsewhere
            pass
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@contextmanager
def beside(compute: Callable[[], T]) -> Iterator[Forked[T]]:
    """``Forked(compute)`` for the ``with`` block: cancelled if the block raises or leaves without
    asking for the value."""
    job = Forked(compute)
    try:
        yield job
    finally:
        job.cancel()
