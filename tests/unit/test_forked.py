"""sim.forked: a value worked out in a forked child is the value the work gives here; a child
that fails, is not wanted, or cannot be forked safely leaves the work to this process; a cancelled
or interrupted child is killed and reaped.

Each case runs in a fresh interpreter (a test runner's process may have threads of its own, and the
cases count this process's children)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="children are forked on Linux only")


def _run(body: str) -> list[str]:
    script = "import os, signal, sys, threading, time\nfrom sim.forked import Forked, beside, forking\n"
    done = subprocess.run(
        [sys.executable, "-c", script + textwrap.dedent(body)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _no_child_left() -> str:
    return """
        try:
            os.wait()
            print("child-left")
        except ChildProcessError:
            print("none-left")
    """


def test_the_value_comes_from_a_child() -> None:
    out = _run(
        """
        job = Forked(lambda: (os.getpid(), [1.5, float("inf")], {"k": (2, "x")}))
        print(job.forked)
        pid, floats, mapping = job.result()
        print(pid != os.getpid(), floats == [1.5, float("inf")], mapping == {"k": (2, "x")})
        print(job.result()[0] == pid)  # asked again: the same value, no second child
        """
        + _no_child_left()
    )
    assert out == ["True", "True", "True", "True", "True", "none-left"]


def test_a_failing_child_leaves_the_work_and_its_error_here() -> None:
    out = _run(
        """
        parent = os.getpid()
        def work():
            if os.getpid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)  # the child dies without a word
            return "computed here"
        print(Forked(work).result())
        def fails():
            raise ValueError("no space left")
        try:
            Forked(fails).result()
        except ValueError as e:
            print("raised-here:", str(e).replace(" ", "-"))
        """
        + _no_child_left()
    )
    assert out == ["computed", "here", "raised-here:", "no-space-left", "none-left"]


def test_no_child_when_forbidden_or_with_threads() -> None:
    out = _run(
        """
        forking(False)
        job = Forked(os.getpid)
        print(job.forked, job.result() == os.getpid())
        forking(True)
        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        job = Forked(os.getpid)
        print(job.forked, job.result() == os.getpid())
        stop.set()
        """
    )
    assert out == ["False", "True", "False", "True"]


def test_cancel_kills_and_reaps_the_child() -> None:
    out = _run(
        """
        t0 = time.monotonic()
        try:
            with beside(lambda: time.sleep(30)) as job:
                print(job.forked)
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            print(time.monotonic() - t0 < 10)
        with beside(lambda: time.sleep(30)):
            pass  # left without asking: cancelled too
        print(time.monotonic() - t0 < 10)
        """
        + _no_child_left()
    )
    assert out == ["True", "True", "True", "none-left"]
