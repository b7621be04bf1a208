"""A sweep's points are each checked when it loads (about 1.3 ms a point: a million points took some 20
minutes with nothing on the screen). :func:`sim.sweep.spec.load_sweep` tells a ``progress(done, total)``
the points checked every ``CHECKED_EVERY`` and at the end; ``twin sweep`` and ``twin validate`` show it
as a spinner (:func:`sim.cli.common.checking_points`) only once some points are checked, never with -q."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console

import sim.cli.common as common
import sim.sweep.spec as spec_module
from sim.cli.common import checking_points
from sim.sweep.spec import load_sweep

BASE = Path(__file__).resolve().parents[3] / "scenarios" / "deepseek_v3_pretrain.yaml"


def _sweep(folder: Path, values: list[int]) -> Path:
    path = folder / "sw.yaml"
    path.write_text(f"base: {BASE}\ngrid:\n  comm.sms: {values}\n")
    return path


def test_progress_every_checked_every_and_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "CHECKED_EVERY", 4)
    calls: list[tuple[int, int]] = []
    sweep = load_sweep(_sweep(tmp_path, list(range(8, 18))), lambda done, total: calls.append((done, total)))
    assert len(sweep.points) == 10
    assert calls == [(0, 10), (4, 10), (8, 10), (10, 10)]


def test_no_progress_is_the_default(tmp_path: Path) -> None:
    assert len(load_sweep(_sweep(tmp_path, [10, 20])).points) == 2


def _live_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.is_alive() and t is not threading.main_thread())


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr's console as a terminal writing into a string."""
    text = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=text, force_terminal=True, width=100))
    return text


def test_the_spinner_shows_only_once_points_are_checked_and_leaves_no_thread(screen: io.StringIO) -> None:
    before = _live_threads()
    with checking_points() as progress:
        progress(0, 5000)  # the loader's first call: nothing checked yet, nothing shown
        assert _live_threads() == before and screen.getvalue() == ""
        progress(1024, 5000)
        assert "checking the points: 1,024 of 5,000" in screen.getvalue()
        assert _live_threads() == before  # no refresh thread: a sweep's worker processes fork without one
    assert "checking the points: 1,024 of 5,000" in screen.getvalue()


@pytest.mark.parametrize("quiet,calls", [(True, [(1024, 5000)]), (False, [(0, 300), (300, 300)])])
def test_quiet_or_a_small_sweep_shows_nothing(screen: io.StringIO, quiet: bool, calls: list[tuple[int, int]]) -> None:
    before = _live_threads()
    with checking_points(quiet) as progress:
        for done, total in calls:
            progress(done, total)
        assert _live_threads() == before
    assert screen.getvalue() == ""
