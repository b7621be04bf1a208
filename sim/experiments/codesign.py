"""Co-design studies: named groups of what-ifs of one base scenario, run as one sweep and reported
side by side (``twin report scenarios/codesign.yaml``).

.. code-block:: yaml

    name: deepseek-v3-codesign
    base: deepseek_v3_pretrain.yaml          # relative to this file; every study compares against it
    studies:
      - key: coprocessor
        title: Communication on a co-processor
        question: What if DeepEP ran on dedicated hardware and all 132 SMs computed?
        variants:
          - scenario: codesign/coprocessor.yaml      # a derived scenario of the same base (its ``set``)
      - key: node-limit
        title: Node limit M
        grid: {model.n_limited_groups: [1, 2, 4, 8]} # or a grid, as in a sweep file
        label: "M={model.n_limited_groups}"          # grid labels [default: the varying keys' last parts]
      - key: fabric
        metrics: [step_time_s, fabric_cost_usd, cost_per_T_usd]
        variants:
          - {label: FT2, set: {cluster.topology: ../topologies/deepseek-v3-ft2.yaml}}

Every distinct set of overrides runs once (the base is point 0), through :mod:`sim.sweep`, so a study
file is resumable like a sweep; its rows are mapped back to the studies here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config import MAX_BASE_DEPTH, Scenario, scenario_data, scenario_from_data
from sim.errors import ScenarioError
from sim.overrides import PATH_KEYS, check_key, label, only_keys, resolve_paths
from sim.sweep.point import METRIC_BY_NAME, SERVE_METRICS
from sim.sweep.spec import Sweep, base_file, expand_grid, not_finite, point_key, scenario_key, sweep_from_data
from sim.yamlio import read_yaml

BASE_LABEL = "base scenario (as built)"
STUDY_KEY = re.compile(r"[a-z0-9_-]+")  # a study's key names its figure's file
DEFAULT_METRICS = ("step_time_s", "tokens_per_day", "cost_per_T_usd", "memory_peak_GiB")
_KEYS = ("name", "description", "base", "studies")
_STUDY_KEYS = ("key", "title", "question", "metrics", "variants", "grid", "label")
_VARIANT_KEYS = ("label", "set", "scenario")


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: dict[str, Any]  # as written (paths relative to the study file)
    point: int  # index of its point in the sweep


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    question: str
    metrics: tuple[str, ...]
    variants: tuple[Variant, ...]  # the base first
    base_sets: dict[str, Any] = field(default_factory=dict)  # the base's values of the keys the variants set

    @property
    def base_keys(self) -> str:
        """The base's values of the study's keys: 'sms=20' ('' when the study sets none)."""
        return _short_label(self.base_sets, []) if self.base_sets else ""

    @property
    def base_label(self) -> str:
        """The base as this study sees it: 'base scenario (as built): sms=20'."""
        return f"{BASE_LABEL}: {self.base_keys}" if self.base_keys else BASE_LABEL


@dataclass(frozen=True)
class Codesign:
    path: Path
    name: str
    description: str
    sweep: Sweep
    studies: tuple[Study, ...]


def is_codesign(path: str | Path) -> bool:
    """Whether ``path`` is a co-design study file (a mapping with ``studies``)."""
    try:
        data = read_yaml(path, "scenario")
    except ScenarioError:
        return False
    return isinstance(data, dict) and "studies" in data


def _relative(sets: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Path values made relative to ``folder`` (the study file's): point ids stay the same in any checkout."""
    out = dict(sets)
    for key in PATH_KEYS:
        if isinstance(out.get(key), str):
            out[key] = os.path.relpath(out[key], folder.resolve())
    return out


def _short_label(sets: dict[str, Any], varying: list[str]) -> str:
    """``schedules=dualpipe, pp=8``: the grid's varying keys by their last part, one-item lists bare."""
    parts = []
    for key in varying or list(sets):
        value = sets[key]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        shown = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key.rsplit('.', 1)[-1]}={shown}")
    return ", ".join(parts)


def _text(value: Any, key: str, file: str, optional: bool = False) -> str:
    """A text of the study file that the report shows (a heading, a table cell, a paragraph): a string
    with something besides whitespace (a blank one leaves an empty heading or cell). ``optional``: the
    key may be left out, but a value given must be such a string."""
    if not isinstance(value, str) or not value.strip():
        leave = " (or leave the key out)" if optional else ""
        got = "blank" if isinstance(value, str) else f"got {json.dumps(value, default=str)}"
        raise ScenarioError(key, f"a non-empty string{leave}; {got}", file)
    return value


def _scenario_sets(ref: Any, folder: Path, where: str, file: str, base: Path) -> tuple[str, dict[str, Any]]:
    """(name, overrides) of a derived scenario named by a variant: the ``set`` of every file along its
    chain of bases down to the study's ``base`` (a chain that does not reach it is refused); paths
    relative to the study file."""
    if not isinstance(ref, str) or not ref:
        raise ScenarioError(where, "give a derived scenario file (base + set), relative to this file", file)
    path = folder / ref
    chain: list[dict[str, Any]] = []
    current = path
    name = path.stem
    for depth in range(MAX_BASE_DEPTH + 1):
        data = read_yaml(current, "scenario")
        if not isinstance(data, dict) or "base" not in data or not isinstance(data["base"], str):
            raise ScenarioError(where, f"{ref} does not derive from the study's base {base.name}", file)
        if depth == 0:
            name = str(data.get("name", path.stem))
        sets = data.get("set") or {}
        if not isinstance(sets, dict):
            raise ScenarioError("set", "a mapping of dotted keys to values", str(current))
        for key in sets:
            check_key(key, "set", str(current))
        chain.append(resolve_paths(sets, current.parent))
        parent = (current.parent / data["base"]).resolve()
        if parent == base.resolve():
            break
        current = parent
    else:
        raise ScenarioError(where, f"{ref}: more than {MAX_BASE_DEPTH} levels of base scenarios", file)
    merged: dict[str, Any] = {}
    for sets in reversed(chain):  # the base-most file first, the variant's own keys last
        merged.update(sets)
    return name, _relative(merged, folder)


def _variants(
    study: dict[str, Any], where: str, folder: Path, file: str, base: Path
) -> list[tuple[str, dict[str, Any], str]]:
    """(label, overrides, origin) of each of a study's variants, the grid's first. ``origin`` is where the
    overrides are written, as the prefix of their keys' paths in errors: ``studies[0].grid.``,
    ``studies[0].variants[1].set.`` (0-based, like every list index in an error), or
    ``studies[0].variants[2].scenario: `` (the keys are in the derived file it names)."""
    out: list[tuple[str, dict[str, Any], str]] = []
    grid = study.get("grid")
    if grid is None and study.get("label") is not None:
        raise ScenarioError(
            f"{where}.label",
            "a label template names the grid's keys; this study has no grid (give each variant a label)",
            file,
        )
    if grid is not None:
        combos = expand_grid(grid, file, f"{where}.grid")
        varying = [k for k, values in grid.items() if len(values) > 1]
        template = study.get("label")
        if template is not None and (not isinstance(template, str) or not template.strip()):
            raise ScenarioError(f"{where}.label", "a string such as 'M={model.n_limited_groups}', not blank", file)
        for name in re.findall(r"\{([^}]*)\}", template or ""):
            if name not in grid:
                raise ScenarioError(f"{where}.label", f"{{{name}}} is not a key of the grid ({', '.join(grid)})", file)
        for sets in combos:
            text = _short_label(sets, varying)
            if template:
                text = template
                for key, value in sets.items():
                    shown = value[0] if isinstance(value, list) and len(value) == 1 else value
                    text = text.replace("{" + key + "}", shown if isinstance(shown, str) else json.dumps(shown))
            out.append((text, sets, f"{where}.grid."))
    variants = study.get("variants") or []
    if not isinstance(variants, list):
        raise ScenarioError(f"{where}.variants", "a list of {label, set} or {scenario}", file)
    for j, v in enumerate(variants):
        at = f"{where}.variants[{j}]"
        if not isinstance(v, dict):
            raise ScenarioError(at, "a mapping: {label, set} or {scenario}", file)
        only_keys(v, _VARIANT_KEYS, at, file)
        if "scenario" in v:
            if "set" in v:
                raise ScenarioError(at, "give either scenario or set, not both", file)
            name, sets = _scenario_sets(v["scenario"], folder, f"{at}.scenario", file, base)
            if not sets:  # (dropped from the study without a word)
                raise ScenarioError(
                    f"{at}.scenario", "its derived scenario sets nothing: the base is every study's first row", file
                )
            origin = f"{at}.scenario: "
        else:
            sets = v.get("set") or {}
            if not isinstance(sets, dict):
                raise ScenarioError(f"{at}.set", "a mapping of dotted keys to values", file)
            if not sets:
                raise ScenarioError(f"{at}.set", "sets nothing: the base is every study's first row already", file)
            for key in sets:
                check_key(key, f"{at}.set", file)
            name = label(sets)
            origin = f"{at}.set."
        text = _text(v["label"], f"{at}.label", file) if "label" in v else name
        out.append((text, sets, origin))
    if not out:
        raise ScenarioError(where, "a study needs variants and/or a grid", file)
    seen: dict[str, str] = {BASE_LABEL: "the base"}
    for text, _, origin in out:
        at = re.sub(r"\.(grid|set|scenario)$", "", _bare(origin))  # the study's, or the variant's own path
        if not text.strip():  # a grid's template filled in with blank values, a derived scenario's blank name
            raise ScenarioError(f"{at}.label", f"{text!r} is blank: give each row a label that shows", file)
        if text.strip() in seen:  # two rows of the table nobody could tell apart (a cell shows no edge spaces)
            key = f"{at}.label"
            raise ScenarioError(key, f"{text!r} is the label of {seen[text.strip()]} too; give each row its own", file)
        seen[text.strip()] = at
    return out


def load_codesign(path: str | Path) -> Codesign:
    """Read a co-design study file; its points are checked like a sweep's (one line naming the key)."""
    try:
        return _load_codesign(Path(path))
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(path))) from None


def _load_codesign(path: Path) -> Codesign:
    file = str(path)
    data = read_yaml(path, "scenario")
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list) or not data["studies"]:
        raise ScenarioError("studies", "a co-design file lists its studies: [{key, title, variants | grid}]", file)
    only_keys(data, _KEYS, "", file)
    if "description" in data:
        _text(data["description"], "description", file, optional=True)
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise ScenarioError("base", "give the base scenario file, relative to this file", file)
    folder = path.parent
    base_path = Path(base) if Path(base).is_absolute() else folder / base
    points: list[dict[str, Any]] = [{}]
    origins = ["base: "]  # each point's origin (:func:`_variants`), the prefix of its keys in errors
    base_data, _ = scenario_data(base_file(data, path, "base scenario file"))

    def same(sets: dict[str, Any]) -> str:
        """A point's identity: the scenario it runs, as the sweep counts points."""
        return scenario_key(base_data, sets, folder) if isinstance(base_data, dict) else point_key(sets)

    index: dict[str, int] = {same({}): 0}
    raw: list[tuple[dict[str, Any], list[tuple[str, dict[str, Any], str]], str]] = []
    keys_seen: set[str] = set()
    for i, study in enumerate(data["studies"]):
        where = f"studies[{i}]"
        if not isinstance(study, dict):
            raise ScenarioError(where, "a mapping with key, title and variants or grid", file)
        only_keys(study, _STUDY_KEYS, where, file)
        skey = study.get("key")
        if not isinstance(skey, str) or not skey or skey in keys_seen:
            raise ScenarioError(f"{where}.key", "a unique, non-empty name for the study", file)
        if not STUDY_KEY.fullmatch(skey):  # it names the study's figure file
            raise ScenarioError(f"{where}.key", f"{skey!r}: give lower-case letters, digits, '-' or '_'", file)
        keys_seen.add(skey)
        if "title" in study:
            _text(study["title"], f"{where}.title", file, optional=True)
        if "question" in study:
            _text(study["question"], f"{where}.question", file, optional=True)
        variants = _variants(study, where, folder, file, base_path)
        ran: dict[str, str] = {}  # (a variant may run the base itself, a grid's value of it: its own row)
        for _, sets, origin in variants:
            for key, value in sets.items():
                found = not_finite(value)
                if found is not None:
                    raise ScenarioError(origin + key, f"{found} is not a finite number", file)
            try:
                text = same(sets)  # comm.sms: 20 and 20.0 are one point
            except (TypeError, ValueError):
                raise ScenarioError(
                    _bare(origin), "values must be finite numbers, strings, booleans, lists or mappings", file
                ) from None
            if text in ran:  # one study's two rows of one scenario
                raise ScenarioError(_bare(origin), f"runs the same scenario as {ran[text]}", file)
            ran[text] = _bare(origin) if not origin.endswith("grid.") else f"{_bare(origin)} {json.dumps(sets)}"
            if text not in index:
                index[text] = len(points)
                points.append(sets)
                origins.append(origin)
        raw.append((study, variants, where))
    body: dict[str, Any] = {"base": base, "points": points}
    if "name" in data:  # checked as a sweep's: the report goes to DIR/<name>/
        body["name"] = data["name"]
    sweep = _sweep_from(body, path, origins)
    base_sc = scenario_from_data(sweep.base_data, sweep.base_path, sweep.base_folder)
    studies = []
    for study, variants, where in raw:
        metrics = study.get("metrics", list(DEFAULT_METRICS))
        if not isinstance(metrics, list) or not metrics:
            raise ScenarioError(f"{where}.metrics", "a list of figures", file)
        for j, m in enumerate(metrics):
            if not isinstance(m, str) or m not in METRIC_BY_NAME:  # (a list is no dict key: a TypeError)
                raise ScenarioError(
                    f"{where}.metrics", f"unknown figure {m!r}; choose from {', '.join(METRIC_BY_NAME)}", file
                )
            if m in metrics[:j]:  # its columns would show twice
                raise ScenarioError(f"{where}.metrics", f"{m} is listed twice; give it once", file)
            if m in SERVE_METRICS:  # a figure no row has (a study's base is a training step): a table of '-'
                raise ScenarioError(
                    f"{where}.metrics", f"{m}: a serving figure; the base is a training step, which has none", file
                )
        rows = [Variant(BASE_LABEL, {}, 0)]
        rows += [Variant(text, sets, index[same(sets)]) for text, sets, _ in variants if sets]
        keys = list(dict.fromkeys(k for _, sets, _ in variants for k in sets))
        studies.append(
            Study(
                str(study["key"]),
                str(study.get("title", study["key"])),
                str(study.get("question", "")),
                tuple(metrics),
                tuple(rows),
                base_values(base_sc, keys),
            )
        )
    return Codesign(path, sweep.name, str(data.get("description", "")), sweep, tuple(studies))


def base_values(sc: Scenario, keys: list[str]) -> dict[str, Any]:
    """The value of each dotted key in the scenario as built: a key left to its default takes the
    default's value, a cluster what-if left unset the topology's (``cluster.nic_Gbps`` -> its NICs'
    rate), a file its name; keys with no value (an optional section absent) are left out."""
    data = sc.model_dump()
    cluster = sc.cluster_spec() if sc.cluster is not None and sc.training is not None else None
    topology = {
        "cluster.nic_Gbps": cluster.node.nic_Gbps if cluster else None,
        "cluster.nvlink_GBps": cluster.node.nvlink_GBps if cluster else None,
        "cluster.oversubscription": cluster.fabric.oversubscription if cluster else None,
    }
    out: dict[str, Any] = {}
    for key in keys:
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            value = topology.get(key)
        if key == "profile" and value is None:
            value = sc.profile_path.name
        if isinstance(value, str) and key in PATH_KEYS:
            value = Path(value).name
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 400, as a study file writes it, not 400.0
        if value is not None and not isinstance(value, dict):
            out[key] = value
    return out


def _bare(origin: str) -> str:
    """An origin (:func:`_variants`) as a key path of its own: ``studies[0].variants[1].set``."""
    return origin.rstrip(" :.")


def _sweep_from(body: dict[str, Any], path: Path, origins: list[str]) -> Sweep:
    """The points as a sweep file at ``path`` would give them (errors name the study that gave the point)."""
    try:
        return sweep_from_data(body, path)
    except ScenarioError as err:
        m = re.match(r"^points\[(\d+)\]\.?(.*)$", err.key_path)
        key = err.key_path
        if m:
            origin = origins[int(m.group(1))]
            key = origin + m.group(2) if m.group(2) else _bare(origin)
        raise ScenarioError(key, err.message, str(path) if err.file in (None, str(path)) else err.file) from None
