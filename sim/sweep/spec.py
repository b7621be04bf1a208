"""Sweep files: a base scenario and the points to run, each a set of dotted-key overrides.

.. code-block:: yaml

    name: comm-sms
    description: step time against the SMs given to DeepEP
    base: ../deepseek_v3_pretrain.yaml    # relative to this file
    grid:                                  # every combination, the last key varying fastest
      comm.sms: [8, 12, 16, 20, 24, 32]
      cluster.nic_Gbps: [200, 400]
    points:                                # and these, after the grid
      - {comm.coprocessor: true}

Every point is checked against the scenario schema before anything runs: a bad key or value stops the
sweep with one line naming it (``grid.comm.sms``, ``points[3].pipeline.pp``). Points that are well formed
but infeasible (a layout over the GPU's memory, EP beyond a rank) are not errors of the file: they run,
and are recorded as infeasible with the reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sim.config import expand_model_config, parse_scenario, scenario_data, scenario_from_data, unnamed
from sim.errors import ScenarioError, shown, shown_path
from sim.overrides import (
    NAMED_PATH_KEYS,
    PATH_KEYS,
    apply_overrides,
    canonical,
    check_key,
    check_nested,
    only_keys,
    resolve_paths,
)
from sim.paths import not_a_file
from sim.serve.spec import is_serve_data, parse_serve
from sim.yamlio import read_yaml

MAX_POINTS = 1_000_000
CHECKED_EVERY = 1024  # points between two calls of a loader's progress (about 1.3 s of checks)
Checked = Callable[[int, int], None]  # progress(points checked, points)
_KEYS = ("name", "description", "base", "grid", "points")
NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # a sweep's results go to out/<name>.parquet (a scenario's name likewise)


@dataclass(frozen=True)
class Point:
    """One scenario of a sweep: its place, its overrides as written and its identity."""

    index: int
    overrides: dict[str, Any]
    point_id: str  # sha256 of the base scenario's data and the overrides (16 hex digits)
    where: str  # 'grid' or 'points[i]' (for error lines)


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: the base scenario's data, and its points in order."""

    path: Path
    name: str
    description: str
    base_path: Path
    base_data: dict[str, Any]
    base_folder: Path  # where the base's relative paths resolve
    points: tuple[Point, ...]
    keys: tuple[str, ...]  # every override key, in first-seen order

    def scenario_data(self, point: Point) -> dict[str, Any]:
        """The scenario mapping of ``point`` (path values resolved against the sweep file; a point's
        ``model.config`` too where it names a file there, as the sweep's check reads it, not a shipped
        model's name: the run read it against the base's folder, another file or none)."""
        data = apply_overrides(self.base_data, resolve_paths(point.overrides, self.path.parent))
        given = "model.config" in point.overrides or isinstance(point.overrides.get("model"), dict)
        model = data.get("model")
        ref = model.get("config") if given and isinstance(model, dict) else None
        here = self.path.parent / ref if isinstance(ref, str) and ref and not Path(ref).is_absolute() else None
        if here is not None and here.is_file() and isinstance(model, dict):
            data = {**data, "model": {**model, "config": str(here.resolve())}}
        return data

    @cached_property
    def override_dtypes(self) -> dict[str, str]:
        """The column type of each override key, from the values the sweep gives it."""
        return {key: override_dtype([p.overrides.get(key) for p in self.points]) for key in self.keys}

    @property
    def base_hash(self) -> str:
        return _digest(canonical(self.base_data))

    def input_digest(self, point: Point, data: dict[str, Any] | None = None) -> str:
        """What the files ``point`` reads hold (its topology, profile, model config, serving trace and
        expert load, wherever they are): 16 hex digits of the sha256 of their contents, by key. A point's
        id is its base's keys and values and its overrides as written, so the same ``topology: t.yaml``
        in two folders, or a file edited between runs, kept its id: a row whose digest is not the
        point's now is computed again (:class:`sim.sweep.store.Store`), as another revision's is.
        ``data``: the point's :meth:`scenario_data` where the caller has built it already."""
        from sim.hardware.profile import DEFAULT_PROFILE

        if data is None:
            data = self.scenario_data(point)
        parts = []
        for key in INPUT_FILE_KEYS:
            node: Any = data
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if key == "profile" and node is None:  # (a point with no profile reads the default one)
                node = str(DEFAULT_PROFILE)
            if isinstance(node, str) and node:
                path = Path(node) if Path(node).is_absolute() else self.base_folder / node
                if path.is_file():
                    parts.append(f"{key}={file_digest(path)}")
        return _digest("\n".join(parts))[:16]


# the keys whose values name files a point reads (the paths a sweep resolves, and two that may name one)
INPUT_FILE_KEYS = (*PATH_KEYS, "model.config", *NAMED_PATH_KEYS)
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}  # (resolved path, mtime_ns, size) -> sha256


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, kept while its modification time and size stay (a sweep asks it
    for every point of the same few files)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    hit = _FILE_DIGESTS.get(key)
    if hit is None:
        hit = _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hit


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def override_dtype(values: list[Any]) -> str:
    """One dtype per override column, from the values the sweep gives it."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, int) and not isinstance(v, bool) and INT64_MIN <= v <= INT64_MAX for v in present):
        return "Int64"
    if present and all(
        isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53) for v in present
    ):
        return "float64"  # ints and floats mixed: exact as floats up to 2**53
    if present and all(isinstance(v, str) for v in present):
        return "string"
    return "json"  # lists, mappings or mixed types: the JSON text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def point_id(base_hash: str, overrides: dict[str, Any]) -> str:
    """A point's identity: 16 hex digits of the sha256 of its base scenario's hash and its overrides
    (canonical JSON), as results files record it (:attr:`Sweep.base_hash`)."""
    return _digest(base_hash + canonical(overrides))[:16]


def not_finite(value: Any) -> str | None:
    """The first NaN or infinity in ``value`` (nested lists and mappings too) as YAML writes it
    (``.nan``, ``.inf``, ``-.inf``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = not_finite(item)
        if found is not None:
            return found
    return None


def non_finite_error(overrides: dict[str, Any], where: str, file: str | None = None) -> ScenarioError | None:
    """A one-line error naming the override key (``grid.comm.sms``) whose value holds a NaN or an infinity."""
    for key, value in overrides.items():
        found = not_finite(value)
        if found is not None:
            return ScenarioError(f"{where}.{key}" if where else key, f"{found} is not a finite number", file)
    return None


def _same(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


def point_key(overrides: dict[str, Any]) -> str:
    """What makes two points one: their canonical text with whole floats as ints (``comm.sms: 20`` and
    ``20.0``). A point's id stays the digest of its text as written, so results already written keep theirs."""
    return canonical(_same(overrides))


def check_some_points(sets: list[Any], data: dict[str, Any], file: str) -> None:
    """Refuse a sweep (of a scenario or of a run) without a point, naming the key the file gives, if any."""
    if not sets:
        given = "grid" if "grid" in data else "points" if "points" in data else ""
        raise ScenarioError(given, "the sweep has no points: give grid and/or points", file)


def point_place(where: str, index: int) -> str:
    """How a repeat names the point it repeats: a listed point by its place (``points[0]``), a grid's by
    its number among the sweep's points (``grid #3``)."""
    return where if where != "grid" else f"grid #{index}"


def scenario_key(base: dict[str, Any], overrides: dict[str, Any], folder: Path) -> str:
    """The identity of the scenario a point runs on ``base``: the same however its overrides are written
    (``comm.sms: 20`` or ``20.0``, a key or its section given whole with the base's other values, a path
    relative to ``folder`` or absolute, a key given as null or left out: every key the schemas let be
    null defaults to null, tested). A malformed point keeps its own text (its checks name it)."""
    try:
        return point_key(_without_nulls(apply_overrides(base, resolve_paths(overrides, folder))))
    except ScenarioError:
        return point_key(overrides)


def _without_nulls(data: Any) -> Any:
    """``data`` with every mapping's null values left out (recursively; lists kept as they are)."""
    if isinstance(data, dict):
        return {k: _without_nulls(v) for k, v in data.items() if v is not None}
    return data


def expand_grid(
    grid: Any,
    file: str,
    where: str = "grid",
    scenario_keys: bool = True,
    example: str = "dotted keys to lists of values, e.g. {comm.sms: [8, 16]}",
) -> list[dict[str, Any]]:
    """Every combination of a grid's values, the last key varying fastest (errors name ``where``);
    ``scenario_keys``: each key checked as a dotted scenario key (a run sweep's keys name phases, whose
    names may hold dashes, and are checked where they are applied)."""
    if grid is None:
        return []
    if not isinstance(grid, dict) or not grid:
        raise ScenarioError(where, f"a mapping of {example}", file)
    axes = []
    if scenario_keys:
        check_nested(grid, f"{where}.", file)
    for key, values in grid.items():
        if scenario_keys:
            check_key(key, f"{where}.{key}")
            check_labelling(key, f"{where}.{key}", file)
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{where}.{key}", "give a non-empty list of values", file)
        axes.append(values)
    size = 1
    for values in axes:
        size *= len(values)
    if size > MAX_POINTS:
        raise ScenarioError(where, f"{size:,} combinations; at most {MAX_POINTS:,} points", file)
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


LABELLING = ("name", "description")  # a scenario's own labels: a point's label is its overrides


def check_labelling(key: str, where: str, file: str) -> None:
    """Refuse a point that sets the scenario's name or description: it changes no figure (two points
    that differ only there ran the same step twice) and the rows are labelled by their overrides."""
    if key in LABELLING:
        raise ScenarioError(
            where, f"a point's {key} changes nothing it simulates (its row is labelled by its overrides)", file
        )


def _points(points: Any, file: str) -> list[dict[str, Any]]:
    if points is None:
        return []
    if not isinstance(points, list):
        raise ScenarioError("points", "a list of override mappings, e.g. [{comm.coprocessor: true}]", file)
    out = []
    for i, p in enumerate(points):
        if p is None:
            p = {}
        if not isinstance(p, dict):
            raise ScenarioError(f"points[{i}]", "a mapping of dotted keys to values", file)
        for key in p:
            check_key(key, f"points[{i}]")
            check_labelling(key, f"points[{i}].{key}", file)
        check_nested(p, f"points[{i}].", file)
        out.append(p)
    return out


POINT = "<point>"  # the file a point's own errors name while it is checked (the sweep's handler names the sweep)


def _check(
    base: dict[str, Any], sets: dict[str, Any], folder: Path, base_folder: Path | None = None, files: bool = False
) -> None:
    """Check one point as its run would (types, ranges, unknown keys, the scenario's own checks);
    ScenarioError with the scenario key path. A ``model.config`` is read as a run reads it (a point's
    against the sweep's folder, the base's against its own); a serve point's files too (its topology,
    profile, trace: :func:`sim.serve.spec.parse_serve`, whose errors name :data:`POINT`). A training
    point's topology and profile are read (the fabric built) where the point names them, or with
    ``files`` (the sweep's first point: the base's files, once)."""
    data = apply_overrides(base, resolve_paths(sets, folder))
    data = expand_model_config(data, folder if "model.config" in sets else (base_folder or folder))
    for key in PATH_KEYS:  # a path the point gives (made absolute above) must name a file
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        given = any(key == k or key.startswith(k + ".") for k in sets)
        if given and isinstance(node, str) and Path(node).is_absolute() and not Path(node).is_file():
            missing = not Path(node).exists()  # (a folder or a device is there: said so)
            where = " (paths are relative to the sweep file)" if missing else ""
            raise ScenarioError(key, not_a_file(Path(node), node, "no such file") + where)
    if is_serve_data(data):  # the serve scenario's own checks, which read its files (about 2 ms a point)
        served = parse_serve(data, POINT, base_folder or folder)
        if served.serve.traffic is None:
            raise ScenarioError("serve.traffic", "a sweep point simulates traffic: give serve.traffic")
        from sim.serve.deployment import check_files

        check_files(served)  # (a trace's or an expert load's bad line: the sweep refused, not its points infeasible)
        return
    # the scenario's own checks too (keys that go together, keys used), and a topology or profile the
    # point names read as a run reads it (the base's with the first point: a base naming a missing
    # topology, or one whose price rule overflows when its fabric is built, ran every point as infeasible)
    reads = files or any(k in ("cluster", "profile") or k.startswith("cluster.topology") for k in sets)
    sc = scenario_from_data(data, POINT, base_folder or folder) if reads else parse_scenario(data)
    if files and sc.cluster is not None and not changes(sets, "cluster"):
        from sim.network.spec import build_cluster_spec  # the base's fabric as given (a point's, by its run)

        build_cluster_spec(sc.cluster_spec(), str(sc.cluster.path))
    from sim.assemble import check_training_step, chunk_params

    check_training_step(sc)  # (one schedule, a cluster: a point that breaks them is malformed, not infeasible)
    if sc.model.is_moe_model:
        chunk_params(sc.workload)  # (the DeepEP overheads a run would refuse)


def _base_passes(base: dict[str, Any], folder: Path, base_folder: Path | None) -> bool:
    """Whether the base scenario alone passes :func:`_check` (asked only once a point has failed it, at a
    key the point does not set)."""
    try:
        _check(base, {}, folder, base_folder, files=True)
    except ScenarioError:
        return False
    return True


def changes(sets: dict[str, Any], *sections: str) -> bool:
    """Whether ``sets`` (a point's overrides) sets one of the scenario's ``sections`` or a key inside one
    (``changes(sets, "cluster")`` for ``cluster`` itself or ``cluster.nic_Gbps``)."""
    return any(k.split(".")[0] in sections for k in sets)


def _owner(error_key: str, sets: dict[str, Any]) -> str | None:
    """The override key that an error at ``error_key`` comes from (itself, a parent or a child)."""
    for key in sets:
        if error_key == key or error_key.startswith(key + ".") or error_key.startswith(key + "["):
            return key
        if key.startswith(error_key + "."):
            return key
    return None


def load_sweep(path: str | Path, progress: Checked | None = None) -> Sweep:
    """Read, expand and check a sweep file; every problem is one line naming the file and key.
    ``progress(done, total)`` is told the points checked, every :data:`CHECKED_EVERY` (a point's check
    takes about 1.3 ms: a million points are some 20 minutes)."""
    try:
        return _load(Path(path), progress)
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(path))) from None


def _load(path: Path, progress: Checked | None = None) -> Sweep:
    return sweep_from_data(read_yaml(path, "sweep"), path, progress)


def base_file(data: dict[str, Any], path: Path, what: str) -> Path:
    """The file a sweep file's ``base`` names (``what``: a base scenario or a run file), relative to the
    sweep file's folder; not the sweep file itself (errors name ``base``)."""
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise ScenarioError("base", f"give the {what}, relative to the sweep file", str(path))
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    if base_path.resolve() == path.resolve():
        raise ScenarioError("base", f"names this sweep file itself; give the {what}", str(path))
    if base_path.is_dir():
        raise ScenarioError("base", f"{base}: is a folder; give the {what}", str(path))
    if not base_path.exists():
        raise ScenarioError("base", f"{base}: no such file; give the {what}", str(path))
    return base_path


def sweep_from_data(data: Any, path: Path, progress: Checked | None = None) -> Sweep:
    """A sweep from its mapping, as if read from ``path`` (relative paths resolve against its folder);
    ``progress``: as :func:`load_sweep`'s."""
    file = str(path)
    if not isinstance(data, dict):
        raise ScenarioError("", "a sweep file is a mapping with base, grid and/or points", file)
    only_keys(data, _KEYS, "", file)
    base_path = base_file(data, path, "base scenario file")
    base_data, base_folder = scenario_data(base_path)
    if not isinstance(base_data, dict):
        raise ScenarioError("", "the base scenario must be a mapping of keys", str(base_path))
    if base_data.get("training") is None and not is_serve_data(base_data):
        raise ScenarioError(  # (named at this file's key: it named the base file and a key it has not)
            "base",
            f"{shown_path(str(data['base']))} has no training or serve section: a sweep runs training steps or "
            "serving deployments",
            file,
        )
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError("name", "a non-empty string", file)
    if "name" in data and (not NAME.match(name) or set(name) == {"."}):
        allowed = "letters, digits, '.', '_' or '-'"
        raise ScenarioError("name", f"{name!r} is not a name; its outputs are named after it, so give {allowed}", file)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description", "a string", file)
    grid = expand_grid(data.get("grid"), file)
    listed = _points(data.get("points"), file)
    sets = [(s, "grid") for s in grid] + [(s, f"points[{i}]") for i, s in enumerate(listed)]
    check_some_points(sets, data, file)
    if len(sets) > MAX_POINTS:
        raise ScenarioError("points", f"{len(sets):,} points; at most {MAX_POINTS:,}", file)
    base_hash = _digest(canonical(base_data))
    seen: dict[str, str] = {}
    keys: dict[str, None] = {}
    points = []
    checked: set[str] = set()
    files_read = False  # the base's topology and profile, read with the first point
    for index, (overrides, where) in enumerate(sets):
        if progress is not None and index % CHECKED_EVERY == 0:
            progress(index, len(sets))
        try:
            text = canonical(overrides)
        except (TypeError, ValueError):
            bad = non_finite_error(overrides, where, file)
            if bad is not None:
                raise bad from None
            raise ScenarioError(where, "values must be numbers, strings, booleans, lists or mappings", file) from None
        same = scenario_key(base_data, overrides, path.parent)
        if same in seen:
            raise ScenarioError(where, f"repeats the point {seen[same]} ({text})", file)
        seen[same] = point_place(where, index)
        if text not in checked:
            try:
                _check(base_data, overrides, path.parent, base_folder, files=not files_read)
                # (the base's own: read with a point that changes neither its cluster nor its profile)
                files_read = files_read or not changes(overrides, "cluster", "profile")
            except ScenarioError as err:
                if err.file and err.file != POINT:  # in a file the point reads (a topology): named there,
                    owner = next(  # (the point's key that names the file)
                        (k for k in overrides for f in INPUT_FILE_KEYS if f == k or f.startswith(k + ".")), None
                    )
                    if owner is None:  # (and by the point's key that named it, where the point gave one)
                        raise err from None
                    at = f"{where}.{owner}" if where != "grid" else f"grid.{owner}"
                    note = unnamed(err.message) + f" (read for {file}: {at})"
                    raise ScenarioError(err.key_path, note, err.file) from None
                owner = _owner(err.key_path, overrides)
                if owner is None and _base_passes(base_data, path.parent, base_folder):
                    # the point's keys together (training: null leaves the base's pipeline without
                    # microbatches): the point named, with the key the error is at
                    value = shown(json.dumps(overrides))
                    raise ScenarioError(where, f"{value}: {err.key_path}: {err.message}", file) from None
                if owner is None:  # the base itself is wrong
                    raise err.with_file(str(base_path)) from None
                value = shown(json.dumps(overrides[owner]))
                key = f"{where}.{owner}" if where != "grid" else f"grid.{owner}"
                raise ScenarioError(key, f"{value}: {err.message}", file) from None
            checked.add(text)
        for key in overrides:
            keys[key] = None
        points.append(Point(index, overrides, point_id(base_hash, overrides), where))
    if progress is not None:
        progress(len(sets), len(sets))
    return Sweep(path, name, description, base_path, base_data, base_folder, tuple(points), tuple(keys))
