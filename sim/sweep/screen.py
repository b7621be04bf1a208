"""The best points of a sweep, exactly, without running every point's step: screening by lower
bounds (``twin sweep FILE --best K``).

**Why it is exact.** Each point's step has a lower bound that costs a fraction of the step
(:mod:`sim.step.bound`: every action's chunk alone, free sends, the DP phase's collectives alone):
the step's times are a fixed-order max-plus system, monotone in its durations and delays, and either
contention mode only adds delays (sends on the fabric; DeepEP phases, sends and collectives stretched
where they share links). So ``bound <= T`` for every point, in both modes
(``tests/integration/training/test_bound.py``). Run the points' steps in increasing order of their
bounds. Once ``K`` have run and the K-th best ``T`` is at most the smallest bound among the points not
run, none of those can do better (``T >= bound``): the best ``K`` run are the best ``K`` of the sweep.
A point whose bound equals the K-th best could only tie it: the sweep goes on while such a point would
win the tie (a lower point index, as ``twin compare`` ranks ties), so the ``K`` are the whole sweep's
row for row. For tokens per day (larger is better) the bound is an upper one, and every comparison turns
round.

The same holds for a figure that is a monotone function of the step time within a point, with the
scenario fixed: GPU-hours per trillion tokens (proportional to it) and tokens per day (inversely
proportional). Nothing else is offered: memory does not depend on the step's timing, the cost per token
adds prices some points lack.

**Checked as it runs.** Every point's step is compared with its bound; a step better than its bound
(beyond rounding, :data:`RTOL`) stops the sweep with one line: the answer would not be exact.

Points with no bound (infeasible or failed when bounded) run first: nothing says they cannot be best.
Both stages are ordinary resumable sweeps: the bounds go to ``<output>.screening.parquet`` (a row per
point, only the bounded figures filled), the steps to the output, so a rerun continues where either
stopped. Both files are opened before the first bound (each read once, both locked), so ``--restart``
marks both before any point runs: a restart stopped in its screening never gives the output's old steps
back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError, TwinError
from sim.overrides import canonical
from sim.sweep.point import METRIC_BY_NAME, OK, bound_point
from sim.sweep.runner import Progress, SweepOutcome, run_sweep
from sim.sweep.spec import Sweep
from sim.sweep.store import BoundsSweep, Store, check_name_room, screening_path

# the figures monotone in the step time within a point (which way is better: sim.sweep.point.METRICS)
BOUNDED = ("step_time_s", "gpu_hours_per_T", "tokens_per_day")
# a step's figure beyond its bound by more than this fraction stops the sweep: above the network's own
# rounding (a coflow ends with up to 1e-9 of its bytes left, sim/network/coflow.py), below any real gap
RTOL = 1e-6


@dataclass(frozen=True)
class Screened:
    """What ``--best`` did: the screening sweep's outcome, the shared one's, and the certificate."""

    screening: SweepOutcome
    shared: SweepOutcome
    best: list[tuple[str, float]]  # (point id, figure) of the best K run, best first (fewer: the sweep has fewer)
    next_bound: float | None  # the best bound among the points not run (None: every point ran)
    screening_output: Path
    steps_not_ok: int = 0  # points whose step ran and is infeasible or failed (not ranked)
    certified: bool = True  # False: stopped at the limit of steps before the best K were settled
    bounds: dict[str, float] = dataclasses.field(default_factory=dict)  # each bounded point's bound, by point id

    @property
    def bounded(self) -> int:
        """Points with a bound (the others, infeasible or failed alone, ran first)."""
        return len(self.bounds)


def screening_sweep(sweep: Sweep) -> Sweep:
    """The sweep whose rows are ``sweep``'s points' lower bounds (:func:`bound_point`): the same points,
    a :class:`BoundsSweep` (its file says it holds bounds, and no sweep of steps resumes into it)."""
    if sweep.base_data.get("training") is None:
        raise ScenarioError("--best", "screens training steps; this sweep's base scenario has no training section")
    fields = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(sweep)}
    return BoundsSweep(**(fields | {"name": f"{sweep.name}-screening"}))


def check_by(by: str) -> int:
    """+1 if smaller ``by`` is better, -1 if larger; a figure with no bound is refused (``--by``)."""
    if by not in BOUNDED:
        raise ScenarioError("--by", f"--best ranks by {', '.join(BOUNDED)} (monotone in the step time); got {by!r}")
    return 1 if METRIC_BY_NAME[by].better == "min" else -1


def best_of(
    sweep: Sweep,
    output: Path,
    k: int,
    by: str = "step_time_s",
    workers: int = 1,
    scheduler: str | None = None,
    restart: bool = False,
    retry_failed: bool = False,
    progress: Callable[[str], Progress] | None = None,
    limit: int | None = None,
    drop_foreign: bool = False,
) -> Screened:
    """The best ``k`` points of ``sweep`` by ``by`` (see the module docstring); ``progress(stage)`` gives
    the progress callback of each stage (``screening``, ``shared``). ``limit``: the most steps of bounded
    points to run (the output's rows from an earlier run count; the points with no bound run first, apart);
    a sweep that reaches it first stops there, its best ``k`` so far not certified (the steps run are the
    most promising: the least bounds, whatever the workers). ``drop_foreign``: rows of points
    not in the sweep are dropped from both files instead of stopping it (a search that caches the
    candidates of its current inputs, ``twin plan layouts``)."""
    if limit is not None and limit < 1:
        raise ValueError(f"a limit of {limit} steps: give at least 1")
    check_by(by)
    check_name_room(output, ".screening.journal", "the screening rows' journal beside it (--best)")
    screen = screening_sweep(sweep)
    screen_out = screening_path(output)
    # Both files are opened (read once, locked) before any point is bounded: the output's rows of another
    # sweep are refused first, and a --restart marks both, so a restart stopped in its screening never gives
    # the output's old steps back to the next run. The screening's first: a refusal of that file (not a
    # sweep's results) leaves the output as it was.
    screen_store = Store(screen, screen_out, restart=restart, retry_failed=retry_failed, drop_foreign=drop_foreign)
    try:
        store = Store(
            sweep,
            output,
            restart=restart,
            retry_failed=retry_failed,
            drop_foreign=drop_foreign,
            restart_screening=False,
        )
    except BaseException:
        screen_store.release()
        raise
    try:
        return _screen(store, screen_store, k, by, workers, scheduler, progress, limit)
    finally:  # (each run releases its store; these are for a stop before or between them)
        screen_store.release()
        store.release()


def _screen(
    store: Store,
    screen_store: Store,
    k: int,
    by: str,
    workers: int,
    scheduler: str | None,
    progress: Callable[[str], Progress] | None,
    limit: int | None = None,
) -> Screened:
    """:func:`best_of`'s two stages, on the stores it opened (the output's, the screening's)."""
    sweep, sign = store.sweep, check_by(by)
    first = run_sweep(
        screen_store.sweep,
        screen_store.output,
        workers,
        scheduler,
        progress=progress("screening") if progress else None,
        fn=bound_point,
        store=screen_store,
    )
    bounds = _bounds(screen_store.rows, by)  # (the rows just written: the file is not read again)
    # unbounded first (they might be best), then by bound, best first; the sweep's order breaks ties
    order = sorted(sweep.points, key=lambda p: (p.point_id in bounds, sign * bounds.get(p.point_id, 0.0), p.index))
    ids = [p.point_id for p in order]
    where = {p.point_id: p for p in sweep.points}
    state: dict[str, Any] = {"best": [], "next": None, "not_ok": 0, "certified": True}
    submit = order
    if limit is not None:  # only the most promising bounded points up to the limit are handed out: a pool
        # of several workers finishes them in any order, and one beyond the limit would be wasted work
        done = store.rows
        left = limit - sum(1 for pid in done if pid in bounds and pid in where)
        fresh = [p for p in order if p.point_id in bounds and p.point_id not in done]
        submit = [p for p in order if p.point_id not in bounds or p.point_id in done] + fresh[: max(0, left)]

    def stop(rows: dict[str, dict[str, Any]]) -> bool:
        """Settled, or (not settled) at the limit of steps of bounded points."""
        if certified(rows):
            state["certified"] = True
            return True
        state["certified"] = False
        return limit is not None and sum(1 for pid in rows if pid in bounds and pid in where) >= limit

    def certified(rows: dict[str, dict[str, Any]]) -> bool:
        got = []
        state["not_ok"] = sum(1 for pid, row in rows.items() if pid in where and row.get("status") != OK)
        for pid, row in rows.items():
            if pid not in where or row.get("status") != OK:
                continue
            value = float(row[by])
            if not math.isfinite(value):  # not a figure to rank (twin compare leaves it out alike)
                continue
            bound = bounds.get(pid)
            if bound is not None and sign * value < sign * bound - RTOL * abs(bound):
                p = where[pid]
                raise TwinError(
                    f"point {p.index} ({p.where}: {canonical(p.overrides)}) has {by} {value:.9g}, better than its "
                    f"bound {bound:.9g}: the bound does not hold for it, so --best cannot be exact here; "
                    "run the sweep without --best"
                )
            got.append((sign * value, where[pid].index, pid, value))
        got.sort()
        state["best"] = [(pid, value) for _, _, pid, value in got[:k]]
        pending = next((pid for pid in ids if pid not in rows), None)
        state["next"] = None if pending is None else bounds.get(pending, -sign * math.inf)
        if pending is None:
            return True
        if len(got) < k or pending not in bounds:
            return False
        # the pending point ranks first among those not run (by bound, then index); it could at best tie
        # the K-th on its bound, and a tie goes to the lower point index (as twin compare ranks)
        kth, kth_index = got[k - 1][0], got[k - 1][1]
        return (kth, kth_index) < (sign * bounds[pending], where[pending].index)

    second = run_sweep(
        sweep,
        store.output,
        workers,
        scheduler,
        progress=progress("shared") if progress else None,
        order=submit,
        until=stop,
        store=store,
    )
    return Screened(
        first,
        second,
        state["best"],
        state["next"],
        screen_store.output,
        state["not_ok"],
        state["certified"],
        bounds,
    )


def _bounds(rows: dict[str, dict[str, Any]], by: str) -> dict[str, float]:
    """Each point's bound (by point id) from the screening rows that are ok."""
    out: dict[str, float] = {}
    for pid, row in rows.items():
        value = row.get(by)
        if row.get("status") == OK and value is not None and math.isfinite(float(value)):
            out[str(pid)] = float(value)
    return out


__all__ = ["BOUNDED", "Screened", "best_of", "check_by", "screening_path", "screening_sweep"]
