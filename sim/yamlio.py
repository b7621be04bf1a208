"""Reading YAML input files and turning validation errors into one-line ScenarioErrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.errors import ScenarioError


def read_yaml(path: str | Path, what: str = "scenario") -> Any:
    """Parse a YAML file; a missing, unreadable or malformed file is a one-line ScenarioError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("", f"no such {what} file", str(path)) from None
    except OSError as err:
        raise ScenarioError("", f"cannot read: {err.strerror}", str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError("", f"malformed YAML{where}: {problem}", str(path)) from None


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file; a missing or malformed file is a one-line ScenarioError naming it."""
    import json

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError("", f"no such {what}", str(path)) from None
    except json.JSONDecodeError as err:
        raise ScenarioError("", f"malformed JSON at line {err.lineno}: {err.msg}", str(path)) from None


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _allowed_keys(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Keys allowed at the mapping that holds ``loc`` (for 'unknown key' messages)."""
    model: Any = root
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def validation_error(err: ValidationError, root: type[BaseModel]) -> ScenarioError:
    """The first problem of a pydantic error as a one-line ScenarioError with its key path."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    path = key_path(loc)
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, loc)
        return ScenarioError(path, "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
    if first["type"] == "missing":
        return ScenarioError(path, "required key is missing")
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    if first["type"] != "value_error" and not isinstance(got, dict | list):
        msg += f" (got {got!r})"
    return ScenarioError(path, msg)
