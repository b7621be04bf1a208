"""sim.outputs.written_beside: a task that writes files runs in a forked child beside the ``with``
block, and behaves as if it had run here: its files are there when the block ends, its error is
raised here, and an error of the block kills it first.

Each case runs in a fresh interpreter: forking is only used with no other thread running, and a test
runner's worker has threads of its own (there the task runs in-process: the last case)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the child is forked on Linux only")


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = "import os, sys, threading, time\nfrom pathlib import Path\nfrom sim.outputs import written_beside\n"
    script += f"out = Path({str(tmp_path)!r})\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_task_runs_in_a_child_beside_the_block(tmp_path: Path) -> None:
    done = _run(
        """
        def task():
            (out / "task").write_text(str(os.getpid()))
        with written_beside(task):
            (out / "block").write_text(str(os.getpid()))
        print((out / "task").read_text() != (out / "block").read_text())
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # written by another process, and there when the block ended


def test_a_task_that_fails_in_the_child_raises_here(tmp_path: Path) -> None:
    done = _run(
        """
        calls = []
        parent = os.getpid()
        def task():
            calls.append(os.getpid())
            if os.getpid() != parent:
                print("from the child", flush=True)
            raise ValueError("the disk is full")
        try:
            with written_beside(task):
                pass
        except ValueError as e:
            print("raised:", e, calls == [os.getpid()])
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # the child's attempt printed nothing and left no trace; the one here raised, with its message
    assert done.stdout.strip() == "raised: the disk is full True"
    assert "Traceback" not in done.stderr


def test_an_error_of_the_block_kills_the_child_first(tmp_path: Path) -> None:
    done = _run(
        """
        def task():
            time.sleep(30)
            (out / "late").write_text("written after the error")
        t0 = time.monotonic()
        try:
            with written_beside(task):
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            print(time.monotonic() - t0 < 10)
        try:
            os.wait()
        except ChildProcessError:
            print("no child left")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "no", "child", "left"]
    assert not (tmp_path / "late").exists()


def test_with_other_threads_the_task_runs_here_after_the_block(tmp_path: Path) -> None:
    done = _run(
        """
        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        order = []
        def task():
            order.append(("task", os.getpid()))
        with written_beside(task):
            order.append(("block", os.getpid()))
        stop.set()
        print(order == [("block", os.getpid()), ("task", os.getpid())])
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
