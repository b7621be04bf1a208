"""The best points of a sweep, exactly, without running every point on the shared network: screening
by lower bounds (``twin sweep FILE --best K``).

**Why it is exact.** A training point timed with every DeepEP phase, pipeline send and ZeRO-1
collective alone (``training.contention: isolated``) is never slower than the same point on one shared
network (``shared``, the default):

* each coflow alone takes exactly the time its per-flow model gives the isolated step, and beside
  others no less (max-min sharing with its rate capped at that; :mod:`sim.network.coflow`);
* a pipeline send is a coflow whose flows keep the proportions they had alone, so it ends no earlier
  than its flows would (the isolated step's one flow per send, which its flow-completion grouping may
  even end up to ``completion_rtol`` early);
* the step is a fixed-order max-plus system of those durations (FIFO streams, the schedule's order, the
  barrier before the optimizer): its times are monotone in them.

So a point's isolated step time ``L`` is a lower bound on its step time ``T``
(``tests/integration/training/test_contention.py`` asserts ``T >= L``; on the 1,000 points of
``scenarios/sweeps/thousand.yaml`` ``L`` is 0.02% to 11.7% below ``T``, never above). Run the points on
the shared network in increasing order of ``L``. Once ``K`` have run and the K-th best ``T`` is at most
the smallest ``L`` of the points not run, none of those can do better than it (``T >= L``): the best
``K`` run are the best ``K`` of the sweep. A point whose ``L`` equals the K-th best could only tie it.

The same holds for a figure that is a monotone function of the step time within a point, with the
scenario fixed: GPU-hours per trillion tokens (proportional to it) and tokens per day (inversely
proportional). Nothing else is offered: memory does not depend on contention, the cost per token adds
prices some points lack.

**Checked as it runs.** Every point run on the shared network is compared with its bound; a point
faster there than alone (beyond rounding, :data:`RTOL`) stops the sweep with one line: the answer
would not be exact.

Points with no bound (infeasible or failed when timed alone) run first: nothing says they cannot be
best. Both stages are ordinary resumable sweeps: the screening rows go to ``<output>.screening.parquet``,
the shared rows to the output, so a rerun continues where either stopped.
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
from sim.sweep.point import OK
from sim.sweep.runner import Progress, SweepOutcome, run_sweep
from sim.sweep.spec import Point, Sweep, point_id

CONTENTION = "training.contention"
# figure -> +1 (smaller is better) or -1 (larger is better): monotone in the step time within a point
BOUNDED: dict[str, int] = {"step_time_s": 1, "gpu_hours_per_T": 1, "tokens_per_day": -1}
RTOL = 1e-9  # a shared-network figure beyond its bound by more than this fraction stops the sweep


@dataclass(frozen=True)
class Screened:
    """What ``--best`` did: the screening sweep's outcome, the shared one's, and the certificate."""

    screening: SweepOutcome
    shared: SweepOutcome
    best: list[tuple[str, float]]  # (point id, figure) of the best K run, best first (fewer: the sweep has fewer)
    next_bound: float | None  # the best bound among the points not run (None: every point ran)
    screening_output: Path


def screening_path(output: Path) -> Path:
    """Where the screening rows of ``output`` go: ``NAME.screening.parquet`` beside it."""
    return output.with_name(f"{output.stem}.screening{output.suffix}")


def screening_sweep(sweep: Sweep) -> Sweep:
    """``sweep`` with every point timed alone: the same points plus ``training.contention: isolated``."""
    if sweep.base_data.get("training") is None:
        raise ScenarioError("--best", "screens training steps; this sweep's base scenario has no training section")
    if CONTENTION in sweep.keys:
        raise ScenarioError("--best", f"screens by timing each point alone; the sweep's points set {CONTENTION}")
    if (sweep.base_data.get("training") or {}).get("contention") == "isolated":
        raise ScenarioError("--best", "the base scenario already times every phase alone (contention: isolated)")
    points = []
    for p in sweep.points:
        overrides = {**p.overrides, CONTENTION: "isolated"}
        points.append(Point(p.index, overrides, point_id(sweep.base_hash, overrides), p.where))
    return dataclasses.replace(
        sweep, name=f"{sweep.name}-screening", points=tuple(points), keys=(*sweep.keys, CONTENTION)
    )


def check_by(by: str) -> int:
    """+1 if smaller ``by`` is better, -1 if larger; a figure with no bound is refused (``--by``)."""
    if by not in BOUNDED:
        raise ScenarioError("--by", f"--best ranks by {', '.join(BOUNDED)} (monotone in the step time); got {by!r}")
    return BOUNDED[by]


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
) -> Screened:
    """The best ``k`` points of ``sweep`` by ``by`` (see the module docstring); ``progress(stage)`` gives
    the progress callback of each stage (``screening``, ``shared``)."""
    sign = check_by(by)
    screen = screening_sweep(sweep)
    screen_out = screening_path(output)
    first = run_sweep(
        screen, screen_out, workers, scheduler, restart, retry_failed, progress("screening") if progress else None
    )
    bounds = _bounds(screen_out, screen, sweep, by)
    # unbounded first (they might be best), then by bound, best first; the sweep's order breaks ties
    order = sorted(sweep.points, key=lambda p: (p.point_id in bounds, sign * bounds.get(p.point_id, 0.0), p.index))
    ids = [p.point_id for p in order]
    where = {p.point_id: p for p in sweep.points}
    state: dict[str, Any] = {"best": [], "next": None}

    def certified(rows: dict[str, dict[str, Any]]) -> bool:
        got = []
        for pid, row in rows.items():
            if pid not in where or row.get("status") != OK:
                continue
            value = float(row[by])
            bound = bounds.get(pid)
            if bound is not None and sign * value < sign * bound - RTOL * abs(bound):
                p = where[pid]
                raise TwinError(
                    f"point {p.index} ({p.where}: {canonical(p.overrides)}) has {by} {value:.9g} on the shared "
                    f"network, better than alone ({bound:.9g}): the screening bound does not hold for it, so "
                    "--best cannot be exact here; run the sweep without --best"
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
        return got[k - 1][0] <= sign * bounds[pending]

    second = run_sweep(
        sweep,
        output,
        workers,
        scheduler,
        restart,
        retry_failed,
        progress("shared") if progress else None,
        order=order,
        until=certified,
    )
    return Screened(first, second, state["best"], state["next"], screen_out)


def _bounds(path: Path, screen: Sweep, sweep: Sweep, by: str) -> dict[str, float]:
    """Each point's bound (by the shared sweep's point id) from the screening rows that are ok."""
    import pandas as pd

    frame = pd.read_parquet(path, columns=["point_id", "status", by])
    of = {s.point_id: p.point_id for s, p in zip(screen.points, sweep.points, strict=True)}
    out: dict[str, float] = {}
    for pid, status, value in frame.itertuples(index=False):
        if pid in of and status == OK and value is not None and math.isfinite(float(value)):
            out[of[pid]] = float(value)
    return out


__all__ = ["BOUNDED", "Screened", "best_of", "check_by", "screening_path", "screening_sweep"]
