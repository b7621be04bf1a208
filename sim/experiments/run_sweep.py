"""Sweeps of a training run (``twin plan run SWEEP.yaml``): a sweep file whose base is a run file
(:mod:`sim.experiments.run_plan`) and whose grid keys address the run file.

.. code-block:: yaml

    name: deepseek-v3-ramp
    base: ../runs/deepseek-v3.yaml               # a run file, relative to this file
    grid:                                        # every combination, the last key varying fastest
      phases.pretrain.ramp.over_tokens: [0, 469.0e9, 2.0e12]
    points:                                      # and these, after the grid
      - {failures: null}

The keys a point sets (``phases.NAME`` is the phase of that name):

* ``phases.NAME.tokens``, ``.steps``, ``.global_batch``, ``.published_gpu_hours``, ``.ramp`` (a mapping,
  or null for none), ``.ramp.batches`` (a list), ``.ramp.over_tokens`` (0: no ramp);
* ``phases.NAME.set.KEY``: a scenario key of the phase's steps (``phases.pretrain.set.comm.sms``), or
  ``phases.NAME.set`` whole; path values relative to the sweep file, as in any sweep;
* ``failures`` (a mapping, or null for none) and ``failures.KEY`` (``failures.mtbf_gpu_hours`` ...).

Each point is the base run with its keys set, checked as a run file and planned
(:func:`sim.experiments.run_plan.plan_steps`) before anything is simulated: a bad key or value is one
line naming the sweep file and the key (``grid.phases.pretrain.tokens: "x": Input should be a valid
number``). Then every distinct step of all the points (a step: the phase's overrides and a batch) is
simulated once, as the points of one sweep of the base scenario (:func:`sim.sweep.runner.run_sweep`:
local processes, a journal; given a results file, resumable: a rerun simulates only the steps not yet
there), or on one worker here, one after the other. Each point is then integrated from those rows
(:func:`sim.experiments.run_plan.integrate`): a sweep over a ramp's length or a token budget costs
the steps of one run. A point whose step does not fit is recorded as infeasible with the reason, as in
any sweep.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError
from sim.experiments.run_plan import (
    FailureSpec,
    PhaseSpec,
    RampSpec,
    RunPlan,
    Step,
    integrate,
    plan_steps,
    run_from_data,
    summary,
)
from sim.overrides import PATH_KEYS, check_key, only_keys, resolve_paths
from sim.sweep.spec import (
    MAX_POINTS,
    NAME,
    base_file,
    check_some_points,
    expand_grid,
    non_finite_error,
    point_key,
    point_place,
)
from sim.yamlio import read_yaml

_KEYS = ("name", "description", "base", "grid", "points")
PHASE_KEYS = tuple(k for k in PhaseSpec.model_fields if k != "name")
RAMP_KEYS = tuple(RampSpec.model_fields)
FAILURE_KEYS = tuple(FailureSpec.model_fields)
_ALLOWED = (
    "phases.NAME.{" + ", ".join(PHASE_KEYS) + "}, phases.NAME.ramp.{" + ", ".join(RAMP_KEYS) + "}, "
    "phases.NAME.set.KEY (a scenario key), failures, failures.{" + ", ".join(FAILURE_KEYS) + "}"
)

Progress = Callable[[int, int], None]  # (steps simulated now, steps to simulate)


@dataclass(frozen=True)
class RunPoint:
    """One run of a sweep: its place, its keys as written, a short label and its plan."""

    index: int
    overrides: dict[str, Any]
    where: str  # 'grid' or 'points[i]' (for error lines)
    label: str
    plan: RunPlan


@dataclass(frozen=True)
class RunSweep:
    """An expanded run sweep: the base run file and its points, each planned."""

    path: Path
    name: str
    description: str
    run_path: Path
    points: tuple[RunPoint, ...]
    keys: tuple[str, ...]  # every key the points set, in first-seen order

    def steps(self) -> dict[str, RunPlan]:
        """Every distinct step of all the points (by key, in the order first needed) and a plan that has it."""
        out: dict[str, RunPlan] = {}
        for p in self.points:
            for key in p.plan.steps:
                out.setdefault(key, p.plan)
        return out


def is_run_sweep(path: str | Path) -> bool:
    """Whether ``path`` is a sweep file rather than a run file: a mapping with ``grid`` or ``points`` and
    no ``phases`` (:func:`load_run_sweep` then checks that its base is a run file)."""
    try:
        data = read_yaml(path, "run")
    except ScenarioError:
        return False
    return isinstance(data, dict) and "phases" not in data and ("grid" in data or "points" in data)


def sweeps_a_run(path: str | Path) -> bool:
    """Whether ``path`` is a sweep file whose base is a run file (it has ``phases``): ``twin sweep`` sends
    it to ``twin plan run``."""
    if not is_run_sweep(path):
        return False
    try:
        data = read_yaml(base_file(read_yaml(path, "sweep"), Path(path), "run file"), "run")
    except ScenarioError:
        return False
    return isinstance(data, dict) and "phases" in data


def load_run_sweep(path: str | Path) -> RunSweep:
    """Read, expand, check and plan a run sweep; every problem is one line naming the file and key."""
    path = Path(path)
    file = str(path)
    data = read_yaml(path, "sweep")
    if not isinstance(data, dict):
        raise ScenarioError("", "a sweep file is a mapping with base, grid and/or points", file)
    only_keys(data, _KEYS, "", file)
    run_path = base_file(data, path, "run file")
    base = str(data["base"])
    run_data = read_yaml(run_path, "run")
    if not isinstance(run_data, dict) or "phases" not in run_data:
        raise ScenarioError(
            "base", f"{base} is not a run file (it has no phases); a sweep of a scenario runs with twin sweep", file
        )
    known: dict[str, Step] = {}
    plan_steps(run_from_data(run_data, run_path), run_path, known)  # the base itself: errors name the run file
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME.match(name) or set(name) == {"."}:
        raise ScenarioError("name", f"{name!r} is not a name; give letters, digits, '.', '_' or '-'", file)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description", "a string", file)
    grid = expand_grid(
        data.get("grid"),
        file,
        scenario_keys=False,
        example="run keys to lists of values, e.g. {phases.pretrain.tokens: [...]}",
    )
    sets = [(s, "grid") for s in grid]
    sets += [(s, f"points[{i}]") for i, s in enumerate(_points(data.get("points"), file))]
    check_some_points(sets, data, file)
    if len(sets) > MAX_POINTS:
        raise ScenarioError("points", f"{len(sets):,} points; at most {MAX_POINTS:,}", file)
    seen: dict[str, str] = {}
    keys: dict[str, None] = {}
    points = []
    for index, (overrides, where) in enumerate(sets):
        bad = non_finite_error(overrides, where, file)
        if bad is not None:
            raise bad
        try:
            same = point_key(overrides)
        except (TypeError, ValueError):
            raise ScenarioError(where, "values must be numbers, strings, booleans, lists or mappings", file) from None
        if same in seen:
            raise ScenarioError(where, f"repeats the point {seen[same]} ({json.dumps(overrides)})", file)
        seen[same] = point_place(where, index)
        point_data = apply_run_overrides(run_data, overrides, where, file, path.parent)
        try:
            plan = plan_steps(run_from_data(point_data, run_path), run_path, known)
        except ScenarioError as err:
            raise _owned(err, overrides, where, file, [p["name"] for p in run_data["phases"]]) from None
        keys.update(dict.fromkeys(overrides))
        points.append(RunPoint(index, overrides, where, short_label(overrides), plan))
    return RunSweep(path, name, description, run_path, tuple(points), tuple(keys))


def _points(points: Any, file: str) -> list[dict[str, Any]]:
    if points is None:
        return []
    if not isinstance(points, list):
        raise ScenarioError("points", "a list of mappings of run keys to values, e.g. [{failures: null}]", file)
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise ScenarioError(f"points[{i}]", "a mapping of run keys to values", file)
        out.append(p)
    return out


def apply_run_overrides(
    data: dict[str, Any], overrides: dict[str, Any], where: str, file: str, folder: Path
) -> dict[str, Any]:
    """A deep copy of the run mapping ``data`` with each key of ``overrides`` set (module docstring); an
    unknown key is one line naming ``where.KEY`` and what may be set. Path values of a phase's ``set``
    are made absolute against ``folder`` (the sweep file's)."""
    out = copy.deepcopy(data)
    phases: list[dict[str, Any]] = out["phases"]
    names = [str(p["name"]) for p in phases]
    for key, value in overrides.items():
        at = f"{where}.{key}"
        if not isinstance(key, str):
            raise ScenarioError(where, f"keys are text such as 'phases.pretrain.tokens', got {key!r}", file)
        head, _, rest = key.partition(".")
        if head == "failures":
            if not rest:
                out["failures"] = value
            elif rest in FAILURE_KEYS:
                given = out.get("failures")
                out["failures"] = {**(given if isinstance(given, dict) else {}), rest: value}
            else:
                raise ScenarioError(at, f"not a key of failures; a run sweep sets {_ALLOWED}", file)
            continue
        if head != "phases":
            raise ScenarioError(at, f"not a key a run sweep sets; it sets {_ALLOWED}", file)
        matches = [n for n in names if rest.startswith(n + ".")]
        if not matches and rest in names:
            raise ScenarioError(at, f"a phase is set key by key, not whole; a run sweep sets {_ALLOWED}", file)
        if not matches:
            got = rest.split(".")[0]
            raise ScenarioError(at, f"no phase is named {got!r}; the run's phases: {', '.join(names)}", file)
        name = max(matches, key=len)  # a name may hold dots: the longest that matches
        phase = phases[names.index(name)]
        top, _, sub = key[len("phases.") + len(name) + 1 :].partition(".")
        if top == "set" and sub:
            check_key(sub, at, file)
            phase["set"] = {**(phase.get("set") or {}), **resolve_paths({sub: value}, folder)}
        elif top == "set":
            phase["set"] = resolve_paths(value, folder) if isinstance(value, dict) else value
        elif top == "ramp" and sub:
            if sub not in RAMP_KEYS:
                raise ScenarioError(at, f"not a key of a ramp; a run sweep sets {_ALLOWED}", file)
            ramp = phase.get("ramp")
            phase["ramp"] = {**(ramp if isinstance(ramp, dict) else {}), sub: value}
        elif top in PHASE_KEYS and not sub:
            phase[top] = value
        else:
            raise ScenarioError(at, f"not a key of a phase; a run sweep sets {_ALLOWED}", file)
    return out


def _owned(err: ScenarioError, overrides: dict[str, Any], where: str, file: str, names: list[str]) -> ScenarioError:
    """A point's error as one line naming the key of the sweep file that caused it (its value, then why);
    an error at another key of the same section (a failure model the point completes) names that key too."""
    parts = err.key_path.split(".")
    if len(parts) >= 2 and parts[0] == "phases" and parts[1].isdigit() and int(parts[1]) < len(names):
        parts[1] = names[int(parts[1])]
    at = ".".join(parts)
    for key in sorted(overrides, key=lambda k: (k != at, -len(k))):  # the key itself, else the nearest
        if at == key or at.startswith(key + ".") or key.startswith(at + "."):
            return ScenarioError(f"{where}.{key}", f"{json.dumps(overrides[key])}: {err.message}", file)
    for key in overrides:  # the same phase, or failures
        section = 2 if key.startswith("phases.") else 1
        if at.split(".")[:section] == key.split(".")[:section]:
            return ScenarioError(f"{where}.{key}", f"{json.dumps(overrides[key])}: {at}: {err.message}", file)
    return ScenarioError(f"{where}: {at}" if at else where, err.message, file)


_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def _short(value: Any) -> str:
    """A value for a label: numbers of 10,000 and more with a suffix (469B, 14.8T, 50.677K); a whole
    number past a float's range (10**400, refused by its key when it has a bound) as its power of ten."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        # (value / div would raise OverflowError, and str() past 4,300 digits ValueError)
        return f"{'-' if value < 0 else ''}~1e+{int(abs(value).bit_length() * math.log10(2))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for div, suffix in _SUFFIXES:
            if abs(value) >= div and abs(value) >= 1e4:
                return f"{value / div:.6g}{suffix}"
        return f"{value:g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return json.dumps(value)


def short_label(overrides: dict[str, Any]) -> str:
    """``pretrain.ramp.over_tokens=469B``: each key less ``phases.``, numbers short; ``base`` for none."""
    if not overrides:
        return "base"
    return ", ".join(f"{key.removeprefix('phases.')}={_short(value)}" for key, value in overrides.items())


# --------------------------------------------------------------------------- running
def simulate_sweep_steps(
    rs: RunSweep,
    output: Path | None = None,
    workers: int = 1,
    restart: bool = False,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """(the row of every distinct step by key, how many were simulated now). With ``output`` (a Parquet
    file) the steps are the points of one sweep of the base scenario on ``workers`` local processes,
    their rows written there as they complete: resumable, the steps already there are not run again
    (``restart`` discards them). Without it, on one worker each is simulated here, one after the other;
    on more, as that sweep into a temporary folder."""
    import tempfile

    from sim.sweep.point import run_point

    steps = rs.steps()
    if output is None and workers <= 1:
        points, point_of = _one_point_each(rs, steps)
        done: dict[int, dict[str, Any]] = {}
        rows: dict[str, dict[str, Any]] = {}
        for key, plan in steps.items():
            i = point_of[key]
            if i not in done:
                done[i] = run_point(plan.scenario_data(key), str(plan.base_path), str(plan.base_folder))
                if progress is not None:
                    progress(len(done), len(points))
            rows[key] = done[i]
        return rows, len(done)
    if output is None:
        with tempfile.TemporaryDirectory(prefix="twin-run-sweep.") as tmp:
            return _as_sweep(rs, steps, Path(tmp) / "steps.parquet", workers, restart, progress)
    return _as_sweep(rs, steps, output, workers, restart, progress)


def _as_sweep(
    rs: RunSweep,
    steps: dict[str, RunPlan],
    output: Path,
    workers: int,
    restart: bool,
    progress: Progress | None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """The steps as the points of one sweep of the base scenario (:func:`sim.sweep.runner.run_sweep`)."""
    from sim.sweep.runner import run_sweep
    from sim.sweep.spec import sweep_from_data
    from sim.sweep.store import Store

    first = next(iter(steps.values()))
    points, point_of = _one_point_each(rs, steps)
    sweep = sweep_from_data({"name": f"{rs.name}-steps", "base": first.spec.base, "points": points}, rs.run_path)
    outcome = run_sweep(
        sweep, output, workers, restart=restart, drop_foreign=True, progress=lambda d, t, f: _call(progress, d, t)
    )
    store = Store(sweep, output, drop_foreign=True)
    try:
        records = store.frame().to_dict(orient="records")
    finally:
        store.release()
    rows = {int(r["point"]): {str(k): v for k, v in r.items()} for r in records}
    return {k: rows[i] for k, i in point_of.items() if i in rows}, outcome.ran


def _one_point_each(rs: RunSweep, steps: dict[str, RunPlan]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The steps as points of the base scenario (their overrides, paths as the run file writes them),
    one per scenario, and the point of each step: steps whose overrides differ but give one scenario (a
    phase's ``set.workload.ep: 32`` where the base has 32) are one point (the steps' sweep refused the
    second as a point repeated, naming the run file and a point in neither file)."""
    from sim.config import scenario_data
    from sim.sweep.spec import scenario_key

    folder = rs.run_path.resolve().parent  # the points as the run file names them: no checkout's path in the rows
    base, _ = scenario_data((folder / next(iter(steps.values())).spec.base).resolve())
    points: list[dict[str, Any]] = []
    place: dict[str, int] = {}  # the scenario's key -> its point
    point_of: dict[str, int] = {}  # a step's key -> its point
    for k, p in steps.items():
        sets = _relative(p.steps[k].sets, folder)
        same = scenario_key(base, sets, folder)
        if same not in place:
            place[same] = len(points)
            points.append(sets)
        point_of[k] = place[same]
    return points, point_of


def _relative(sets: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Path values made relative to ``folder`` (the run file's), as the run file would write them."""
    import os

    return {k: os.path.relpath(v, folder) if k in PATH_KEYS and isinstance(v, str) else v for k, v in sets.items()}


def _call(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def sweep_summary(rs: RunSweep, rows: dict[str, dict[str, Any]], simulated: int) -> dict[str, Any]:
    """Every point's run integrated from the steps' rows, as data (``sweep.json``, ``--format json``):
    per point its keys, status, totals, phases and groups (:func:`sim.experiments.run_plan.summary`)."""
    from sim.paths import shown
    from sim.sweep.point import OK

    points = []
    for p in rs.points:
        entry: dict[str, Any] = {"point": p.index, "label": p.label, "overrides": p.overrides}
        bad = next((s for s in p.plan.slices if rows[s.step]["status"] != OK), None)
        if bad is not None:
            row = rows[bad.step]
            phase = p.plan.spec.phases[bad.phase].name
            entry.update(status=str(row["status"]), error=f"phases.{phase}: {row['error']}")
            entry.update(total=None, phases=[], groups=[])
        else:
            try:
                results, groups = integrate(p.plan, rows)
            except ScenarioError as err:  # (a failure model whose run loses more than any time): the key that set it
                names = [ph.name for ph in p.plan.spec.phases]
                raise _owned(err, p.overrides, p.where, str(rs.path), names) from None
            run = summary(p.plan.spec, results, groups)
            entry.update(status=OK, error=None, total=run["total"], phases=run["phases"], groups=groups)
        points.append(entry)
    return {
        "sweep": rs.name,
        "description": rs.description,
        "base": shown(rs.run_path),
        "keys": list(rs.keys),
        "steps": len(rs.steps()),
        "simulated": simulated,
        "points": points,
    }


__all__ = [
    "RunPoint",
    "RunSweep",
    "apply_run_overrides",
    "is_run_sweep",
    "load_run_sweep",
    "short_label",
    "simulate_sweep_steps",
    "sweep_summary",
    "sweeps_a_run",
]
