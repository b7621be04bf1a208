"""Screening rows (``twin sweep --best``'s lower bounds) from before a change must never screen the steps
after it, nor be resumed as steps:

* a ``--best --restart`` stopped in its screening gave the output's old steps back to the next run (only
  the screening file had been marked restarted; the output was opened after the screening);
* a plain ``twin sweep --restart`` of an output left the bounds ``--best`` had kept beside it, computed
  before the change the restart answers (an edited topology or profile, which no point id sees);
* a journal line with no kind mark (written before journal lines said whether they hold bounds or steps)
  was "taken as it is": a journal of bounds resumed as steps.

Each is reproduced on the store's files with rows written by the store itself, no step simulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli.sweep import _print_screened
from sim.code_digest import code_digest
from sim.errors import ScenarioError
from sim.sweep import screen
from sim.sweep.point import OK
from sim.sweep.runner import SweepOutcome
from sim.sweep.screen import Screened, best_of, screening_path, screening_sweep
from sim.sweep.spec import Sweep, load_sweep
from sim.sweep.store import BOUNDS_KEY, Store, journal_path
from tests.conftest import write_sweep

STEPS = (14.97, 7.95, 7.30)
BOUNDS = (13.0, 7.5, 7.1)  # each at most its step


def _sweep(folder: Path) -> Sweep:
    return load_sweep(write_sweep(folder, {"grid": {"cluster.nic_Gbps": [100, 400, 1600]}}))


def _fill(sweep: Sweep, out: Path, values: tuple[float, ...], write: bool = True) -> None:
    """Every point of ``sweep`` in ``out``, as this revision computes it (``write``: the Parquet file;
    else only the journal, as a sweep killed before its first write leaves it)."""
    store = Store(sweep, out)
    for p in sweep.points:
        row = {"point": p.index, "point_id": p.point_id, "label": "", "status": OK, "error": None}
        store.add(
            row | {"step_time_s": values[p.index], "twin_code": code_digest(), "twin_inputs": sweep.input_digest(p)}
        )
    if write:
        store.write()
    store.release()


def _done(sweep: Sweep, out: Path) -> set[str]:
    store = Store(sweep, out)
    try:
        return store.done()
    finally:
        store.release()


def _best_done(folder: Path) -> tuple[Sweep, Sweep, Path, Path]:
    """A --best run that ended: every point bounded and every step run."""
    sweep = _sweep(folder)
    out = folder / "X.parquet"
    bounds = screening_sweep(sweep)
    _fill(bounds, screening_path(out), BOUNDS)
    _fill(sweep, out, STEPS)
    return sweep, bounds, out, screening_path(out)


def test_a_best_restart_stopped_in_its_screening_never_gives_the_old_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, bounds, out, screened = _best_done(tmp_path)
    ids = {p.point_id for p in sweep.points}
    assert _done(sweep, out) == ids and _done(bounds, screened) == ids
    before = out.read_bytes()

    def stopped(*args: object, **kwargs: object) -> SweepOutcome:
        raise KeyboardInterrupt  # Ctrl-C before the first bound ended

    monkeypatch.setattr(screen, "run_sweep", stopped)
    with pytest.raises(KeyboardInterrupt):
        best_of(sweep, out, 1, restart=True)
    assert out.read_bytes() == before  # the old file stays until a write replaces it ...
    assert _done(bounds, screened) == set()
    assert _done(sweep, out) == set()  # ... but its rows are not the next run's (they were: every step)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.yaml", "X.parquet", "X.parquet.journal", "X.screening.parquet", "X.screening.parquet.journal"]
    )  # (no lock left behind)


def test_a_refused_best_restart_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    """The screening file is opened first: where it is refused (not a sweep's results), the output's rows
    are still the next run's."""
    sweep, _, out, screened = _best_done(tmp_path)
    screened.write_bytes(b"not parquet")
    with pytest.raises(ScenarioError, match="cannot read it as sweep results"):
        best_of(sweep, out, 1, restart=True)
    assert _done(sweep, out) == {p.point_id for p in sweep.points}
    assert not journal_path(out).exists()


@pytest.mark.parametrize("written", [True, False])
def test_a_plain_restart_discards_the_bounds_beside_its_output(tmp_path: Path, written: bool) -> None:
    """``twin sweep S -o X.parquet --restart`` (after editing a topology, say), then ``--best`` on X: the
    bounds of before the edit screened the steps of after it (a step could beat its stale bound, or a
    point not run be better than the answer). ``written``: the screening's Parquet file, or only its
    journal (a --best killed in its first seconds)."""
    sweep = _sweep(tmp_path)
    out = tmp_path / "X.parquet"
    bounds = screening_sweep(sweep)
    _fill(bounds, screening_path(out), BOUNDS, write=written)
    _fill(sweep, out, STEPS)
    Store(sweep, out, restart=True).release()  # (stopped before its first point)
    assert _done(sweep, out) == set()
    assert _done(bounds, screening_path(out)) == set()
    assert screening_path(out).exists() == written  # (a file stays until a screening's write replaces it)


def test_a_restart_leaves_a_file_of_steps_beside_it_alone(tmp_path: Path) -> None:
    """Only screening rows are discarded: a sweep of steps the user wrote to ``X.screening.parquet`` stays."""
    sweep = _sweep(tmp_path)
    out = tmp_path / "X.parquet"
    _fill(sweep, screening_path(out), STEPS)
    _fill(sweep, out, STEPS)
    Store(sweep, out, restart=True).release()
    assert _done(sweep, screening_path(out)) == {p.point_id for p in sweep.points}
    assert not journal_path(screening_path(out)).exists()


def test_a_journal_of_bounds_with_no_kind_mark_is_not_resumed_as_steps(tmp_path: Path) -> None:
    """A journal written before its lines said their kind: resumed by a sweep of steps (``twin sweep S -o
    Y.screening.parquet``) it gave every bound as a step time. Such lines are run again, as rows of another
    revision are (every such line is one's), and counted as such."""
    sweep = _sweep(tmp_path)
    out = tmp_path / "Y.screening.parquet"
    _fill(screening_sweep(sweep), out, BOUNDS, write=False)
    journal = journal_path(out)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k != BOUNDS_KEY}) + "\n" for r in lines))
    store = Store(sweep, out)
    try:
        assert store.done() == set() and store.stale == 3
    finally:
        store.release()
    marked = tmp_path / "marked" / "Z.parquet"  # lines that say they are steps are resumed as they were
    marked.parent.mkdir()
    _fill(sweep, marked, STEPS, write=False)
    assert _done(sweep, marked) == {p.point_id for p in sweep.points}


def test_best_says_how_many_bounds_and_steps_another_revision_computed(capsys: pytest.CaptureFixture[str]) -> None:
    """A plain sweep said `N run again (computed by another revision of the twin)`; --best said nothing of
    the bounds or steps it ran again for that reason."""

    def outcome(ran: int, stale: int) -> SweepOutcome:
        return SweepOutcome(3, 3 - ran, ran, 0, Path("X.parquet"), stale)

    bounds = {"a": 7.0, "b": 7.5, "c": 8.0}  # all 3 points bounded
    screened = Screened(outcome(3, 3), outcome(1, 1), [("a", 7.3)], 7.5, Path("X.screening.parquet"), bounds=bounds)
    _print_screened("s", screened, 1, "step_time_s", Path("X.parquet"))
    printed = " ".join(capsys.readouterr().out.split())
    assert (
        "3 of 3 points bounded, 3 bounds run again (computed by another revision of the twin or from other input files)"
        in printed
    )
    assert (
        "; 1 step run again, computed by another revision of the twin or from other input files) -> X.parquet"
        in printed
    )
