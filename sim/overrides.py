"""Dotted-key overrides of a scenario: ``comm.sms: 12`` sets ``data["comm"]["sms"] = 12``.

Used by derived scenario files (``base:`` + ``set:``, :func:`sim.config.load_scenario`), by sweeps
(:mod:`sim.sweep`) and by the co-design study. Paths given as override values (``cluster.topology``,
``profile``) are resolved against the file that gives them and made absolute, so a sweep under
``scenarios/sweeps/`` can name ``../../topologies/deepseek-v3-ft2.yaml`` as written beside it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError

# values that are file paths, relative to the file giving them
PATH_KEYS = ("cluster.topology", "profile", "serve.traffic.trace")
# values that are a file path unless they are one of the names listed (resolved as PATH_KEYS otherwise)
EXPERT_LOADS = ("balanced", "skewed")  # serve.expert_load's names (sim/serve/deployment.py: expert_load)
NAMED_PATH_KEYS: dict[str, tuple[str, ...]] = {"serve.expert_load": EXPERT_LOADS}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_key(key: Any, where: str, file: str | None = None) -> str:
    """A dotted key (``a.b.c``, identifiers only); anything else names ``file`` and ``where``."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ScenarioError(where, f"an override key is a dotted scenario key such as 'comm.sms', got {key!r}", file)
    return key


def only_keys(data: dict[Any, Any], allowed: tuple[str, ...], where: str, file: str) -> None:
    """Refuse a key of ``data`` not in ``allowed``: one line naming ``where.key`` and the allowed keys."""
    for key in data:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            raise ScenarioError(at, f"unknown key; allowed: {', '.join(allowed)}", file)


def resolve_paths(overrides: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``overrides`` with path values (:data:`PATH_KEYS`, and :data:`NAMED_PATH_KEYS` where not one of their
    names) made absolute against ``folder`` and normalised (``a//b``, ``a/../a/b`` and a link are the file
    they name: two points naming one file so were two points of a sweep), whether given as the dotted key
    (``cluster.topology: t.yaml``) or inside a mapping (``cluster: {topology: t.yaml}``)."""

    def resolved(value: Any, names: tuple[str, ...] = ()) -> Any:
        if isinstance(value, str) and value and value not in names:
            return str((folder / value).resolve())
        return value

    out = dict(overrides)
    for key, value in overrides.items():
        for path_key in (*PATH_KEYS, *NAMED_PATH_KEYS):
            names = NAMED_PATH_KEYS.get(path_key, ())
            if key == path_key:
                out[key] = resolved(value, names)
            elif path_key.startswith(key + ".") and isinstance(value, dict):
                inner = copy.deepcopy(out[key])
                node = inner
                *parents, leaf = path_key[len(key) + 1 :].split(".")
                for part in parents:
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict) and leaf in node:
                    node[leaf] = resolved(node[leaf], names)
                out[key] = inner
    return out


def nested_key(keys: Any) -> tuple[str, str] | None:
    """(a key, the key of a section holding it) among ``keys`` (``comm.sms`` and ``comm``), or None.
    Setting both is ambiguous: the section given whole replaces the other's value or is overwritten by
    it, depending on the order, and drops the base's other keys of that section."""
    given = sorted(str(k) for k in keys)
    for i, outer in enumerate(given):
        for inner in given[i + 1 :]:
            if inner.startswith(outer + "."):
                return inner, outer
            if not inner.startswith(outer):
                break
    return None


def check_nested(keys: Any, where: str, file: str | None = None) -> None:
    """Refuse two keys of one override set where one holds the other (:func:`nested_key`)."""
    both = nested_key(keys)
    if both is not None:
        inner, outer = both
        raise ScenarioError(
            f"{where}{inner}",
            f"also set by {where}{outer} (the whole section): give the key once, in one of the two forms",
            file,
        )


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted key set; missing sections are created. A key whose
    parent is not a mapping (``pipeline.pp.x``) is an error naming ``where`` + the key, and so are two
    keys where one is a section holding the other (``comm`` and ``comm.sms``)."""
    check_nested(overrides, where)
    out = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ScenarioError(
                    f"{where}{key}" if where else key,
                    f"{prefix} is a value ({json.dumps(child)}), not a section with keys",
                )
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def canonical(overrides: dict[str, Any]) -> str:
    """One JSON text per set of overrides (sorted keys, no spaces): the identity of a sweep point."""
    return json.dumps(overrides, sort_keys=True, separators=(",", ":"), allow_nan=False)


def label(overrides: dict[str, Any]) -> str:
    """``comm.sms=12, cluster.nic_Gbps=800`` (``base`` when there are none)."""
    if not overrides:
        return "base"
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items())
