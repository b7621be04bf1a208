"""Reading YAML and JSON input files safely, and turning validation errors into one-line ScenarioErrors.

Every input file goes through :func:`read_text`: it must be a regular file (not a directory, device,
named pipe or socket), at most a bounded size, and UTF-8. YAML is then parsed with duplicate keys
and the merge key ``<<`` refused, nesting depth and alias expansion bounded, and YAML 1.2 numbers such
as ``1e6`` read as numbers (PyYAML's YAML 1.1 needs a dot). JSON likewise: duplicate keys, ``NaN``/``Infinity`` and
deep nesting are refused. Every problem is a one-line :class:`ScenarioError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.errors import ScenarioError, shown

MiB = 1 << 20
MAX_YAML_BYTES = 8 * MiB  # scenarios and topologies are a few KiB
MAX_JSON_BYTES = 256 * MiB  # profiles, model configs, routing tables
MAX_TRACE_BYTES = 1024 * MiB  # profiler traces
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_VALUES = 1_000_000  # values in one document, counting every alias expansion


def read_bytes(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is a one-line error."""
    path = Path(path)
    name = str(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioError("", f"no such {what} file", name) from None
    except OSError as err:
        raise ScenarioError("", f"cannot read: {err.strerror}", name) from None
    if stat.S_ISDIR(st.st_mode):
        raise ScenarioError("", f"is a folder, not a {what} file", name)
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError("", f"not a regular file (a device, pipe or socket); give a {what} file", name)
    if st.st_size > max_bytes:
        raise ScenarioError("", f"{what} file is {st.st_size:,} bytes; at most {max_bytes:,} are read", name)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ScenarioError("", f"cannot read: {err.strerror}", name) from None
    if len(data) > max_bytes:
        raise ScenarioError("", f"{what} file is over {max_bytes:,} bytes", name)
    return data


def read_text(path: str | Path, what: str, max_bytes: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (see :func:`read_bytes`)."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ScenarioError(
            "", f"not a UTF-8 text file (byte {err.start} is {data[err.start]:#04x})", str(path)
        ) from None


# ---- YAML ----------------------------------------------------------------------------------------

_FLOAT_12 = re.compile(r"^([-+]?[0-9][0-9_]*)(\.[0-9_]*)?[eE]([-+]?[0-9]+)$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounded nesting and YAML 1.2 exponent numbers (``1e6``, ``2E-3``)."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's class-level table, copied
        k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _float_or_exp(loader: yaml.SafeLoader, node: Any) -> Any:
    """``1e6`` (no dot, exponent 0..18) is the whole number 1000000; ``1.5e6`` and ``1e-3`` are floats."""
    m = _FLOAT_12.match(str(node.value))
    if m is None and any(c in str(node.value) for c in ":_"):  # (YAML 1.1's base 60 and separators)
        why = "base 60" if ":" in str(node.value) else "digit separators"
        raise _Refused(
            f"line {node.start_mark.line + 1}: {str(node.value)[:40]!r} is a YAML 1.1 number ({why}) that YAML "
            "1.2 reads otherwise; write it in decimal"
        )
    if m is None:
        return yaml.SafeLoader.construct_yaml_float(loader, node)
    mantissa, dot, exp = m.group(1).replace("_", ""), m.group(2), int(m.group(3))
    if dot is None and 0 <= exp <= 18:
        return int(mantissa) * 10**exp
    return float(str(node.value).replace("_", ""))


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789"))
_Loader.add_constructor("tag:yaml.org,2002:float", _float_or_exp)

# YAML 1.1's other number and boolean forms, which PyYAML reads and YAML 1.2 (and a reader of the file)
# does not: 020 is 16 (octal), 1:04 is 64 (base 60), 0b10100 and 2_0 are 20, and on/off/yes/no are
# booleans (a key "on" became True). The booleans are true and false only (a "yes" stays text, which a
# switch of the scenario still reads as one); a number in a YAML 1.1 form that YAML 1.2 reads otherwise
# is refused, naming its line. Decimal, 0x and 0o whole numbers, and the floats above, are read.
for _first in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx)
        for tag, rx in _Loader.yaml_implicit_resolvers[_first]
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
    ]
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))
# every YAML 1.1 integer form (PyYAML's own pattern) and a base-60 float, resolved here to be refused
_INT_11 = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?0[0-9_]+)$"
)
_INT_12 = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_11, list("-+0123456789"))


def _int_12(loader: yaml.SafeLoader, node: Any) -> Any:
    """A whole number as YAML 1.2 reads it (decimal, ``0x``, ``0o``); a YAML 1.1 form refused."""
    text = str(node.value)
    if _INT_12.match(text) and len(text.lstrip("+-")) > _DIGITS:
        raise _Refused(f"line {node.start_mark.line + 1}: a whole number of {len(text.lstrip('+-')):,} digits")
    if _INT_12.match(text):
        return int(text)
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if re.fullmatch(r"0x[0-9a-fA-F]+", body):
        return sign * int(body, 16)
    if re.fullmatch(r"0o[0-7]+", body):
        return sign * int(body[2:], 8)
    why = (
        "base 60" if ":" in body else "digit separators" if "_" in body else "binary" if body.startswith("0b")
        else "a leading zero: octal"
    )  # fmt: skip
    raise _Refused(
        f"line {node.start_mark.line + 1}: {text[:40]!r} is a YAML 1.1 number ({why}) that YAML 1.2 reads "
        "otherwise; write it in decimal"
    )


_Loader.add_constructor("tag:yaml.org,2002:int", _int_12)


class _Refused(Exception):
    """A YAML document the twin will not read (depth, size, duplicate key); message is the reason."""


_MERGE = "tag:yaml.org,2002:merge"


def _check_tree(root: yaml.Node) -> None:
    """Refuse duplicate keys and the merge key ``<<`` (naming the key path), recursive aliases and alias
    bombs. The merge key is refused outright rather than read: its keys are overridden silently by the
    mapping's own (``{<<: {a: 1}, a: 2}`` is ``a: 2``), which is the duplicate key the twin refuses, and
    a file says the same with its keys written out. Anchors and plain aliases (``*name``) stay accepted."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(node: yaml.Node, path: str) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Refused(f"{path or 'document'}: an alias refers to itself (line {node.start_mark.line + 1})")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                if k.tag == _MERGE:  # ``<<: *base`` would slip keys past the duplicate check below
                    where = f"{path}.{name}" if path else str(name)
                    raise _Refused(
                        f"{where}: the YAML merge key << (line {k.start_mark.line + 1}) is not accepted; "
                        "write the merged keys out"
                    )
                if isinstance(k, yaml.ScalarNode):
                    if name in seen:
                        where = f"{path}.{name}" if path else str(name)
                        lines = f"lines {seen[name]} and {k.start_mark.line + 1}"
                        raise _Refused(f"{where}: duplicate key ({lines}); give each key once")
                    seen[name] = k.start_mark.line + 1
                total += walk(k, path) + walk(v, f"{path}.{name}" if path else str(name))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                total += walk(v, f"{path}[{i}]")
        active.discard(key)
        if total > MAX_VALUES:
            raise _Refused(f"expands to more than {MAX_VALUES:,} values (aliases)")
        sizes[key] = total
        return total

    walk(root, "")


def parse_yaml(text: str, file: str | None = None) -> Any:
    """Parse YAML text with the twin's rules (see the module docstring)."""
    try:
        loader = _Loader(text)  # (it refuses a character YAML does not allow, a NUL or a BEL, here)
    except yaml.reader.ReaderError as err:
        at = err.position
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise ScenarioError(
            "",
            f"malformed YAML at line {line}, column {column}: the character U+{err.character:04X} is not allowed; "
            "remove it",
            file,
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return loader.construct_document(node)
    except _Refused as err:
        raise ScenarioError("", str(err), file) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError("", f"malformed YAML{where}: {problem}", file) from None
    except (RecursionError, ValueError, OverflowError) as err:
        raise ScenarioError("", f"malformed YAML: {type(err).__name__}: {err}", file) from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "scenario") -> Any:
    """Parse a YAML file; a missing, unreadable, oversized, binary, malformed or empty file (nothing but
    blanks and comments: YAML's null, which each reader refused as "got NoneType" or "not a mapping") is a
    one-line ScenarioError naming it."""
    data = parse_yaml(read_text(path, what, MAX_YAML_BYTES), str(path))
    if data is None:
        raise ScenarioError("", f"the file is empty: a {what} file is a mapping of keys", str(path))
    return data


# ---- JSON ----------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"duplicate key {k!r}; give each key once")
        out[k] = v
    return out


class _NonFinite:
    """Where JSON wrote NaN or Infinity: kept while parsing so the error can name its key."""

    def __init__(self, name: str) -> None:
        self.name = name


_DIGITS = 4300  # Python's limit on the digits of a whole number read from text (sys.get_int_max_str_digits)


def _json_int(text: str) -> int | _NonFinite:
    """A JSON whole number; one of more digits than Python reads kept to be refused by its key."""
    digits = len(text.lstrip("-"))
    return _NonFinite(f"a whole number of {digits:,} digits") if digits > _DIGITS else int(text)


def _json_float(text: str) -> float | _NonFinite:
    """A JSON number with a fraction or exponent; one past the float maximum (1e400) kept to be refused
    by its key, as Infinity is (it read as inf, and got past that refusal)."""
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text[:40])


def _non_finite(data: Any, path: str = "") -> tuple[str, str] | None:
    """(key path, constant) of the first NaN/Infinity in parsed JSON, or None."""
    if isinstance(data, _NonFinite):
        return path, data.name
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{path}[{k}]" if isinstance(k, int) else f"{path}.{k}" if path else str(k))
        if found is not None:
            return found
    return None


def parse_json(text: str, file: str | None = None) -> Any:
    """Parse JSON text: duplicate keys, NaN/Infinity (named by their key) and nesting deeper than
    Python's stack refused."""
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_NonFinite,
            parse_int=_json_int,
            parse_float=_json_float,
        )
        bad = _non_finite(data)
        if bad is not None:
            raise ScenarioError(bad[0], f"{bad[1]} is not a number the twin accepts (give finite numbers)", file)
        return data
    except _Refused as err:
        raise ScenarioError("", str(err), file) from None
    except json.JSONDecodeError as err:
        raise ScenarioError("", f"malformed JSON at line {err.lineno}: {err.msg}", file) from None
    except RecursionError:
        raise ScenarioError("", "JSON nested too deeply", file) from None


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file; a missing, unreadable, oversized, binary or malformed file is a one-line
    ScenarioError naming it."""
    return parse_json(read_text(path, what, max_bytes), str(path))


# ---- validation errors ---------------------------------------------------------------------------


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
        members = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(members) == 1 and type(None) in typing.get_args(ann):  # an optional section: X | None
            ann = members[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _union_tags(root: type[BaseModel], loc: tuple[int | str, ...]) -> set[int]:
    """Positions in ``loc`` that name a member of a union (pydantic's ``list[int]`` in
    ``('layers_per_stage', 'list[int]', 0)`` for a field ``list[int] | str``), not a key: they follow a
    field whose annotation is a union of several types besides None."""
    tags: set[int] = set()
    model: Any = root
    for i, part in enumerate(loc):
        if i in tags or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return tags
        members = [a for a in typing.get_args(field.annotation) if a is not type(None)]
        if typing.get_origin(field.annotation) in (typing.Union, types.UnionType) and len(members) > 1:
            if i + 1 < len(loc) and isinstance(loc[i + 1], str):
                tags.add(i + 1)
            model = None
        else:
            sub = next(
                (a for a in members or [field.annotation] if isinstance(a, type) and issubclass(a, BaseModel)), None
            )
            model = sub
    return tags


def validation_error(err: ValidationError, root: type[BaseModel]) -> ScenarioError:
    """The first problem of a pydantic error as a one-line ScenarioError with its key path (the members
    of a union it tried, pydantic's ``list[int]`` or ``str``, left out of the path; when the value is none
    of them, what each wanted, joined)."""
    errors = err.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    tags = _union_tags(root, loc)
    if tags:
        tag = min(tags)
        if tag == len(loc) - 1:  # the value is of no member's type: say what each member wanted
            wanted = [
                e["msg"].removeprefix("Input should be ")
                for e in errors
                if tuple(e["loc"])[:tag] == loc[:tag] and len(e["loc"]) == tag + 1 and e["type"] != "value_error"
            ]
            if wanted:
                first = {**first, "msg": "Input should be " + " or ".join(dict.fromkeys(wanted))}
        loc = tuple(p for i, p in enumerate(loc) if i not in tags)
    path = key_path(loc)
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, loc)
        return ScenarioError(path, "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
    if first["type"] == "missing":
        return ScenarioError(path, "required key is missing")
    msg = first["msg"].removeprefix("Value error, ")
    least = first.get("ctx", {}).get("ge")  # (sim.limits.MIN_RATE: pydantic writes 1e-100 in 100 digits)
    if first["type"] == "greater_than_equal" and isinstance(least, float) and 0 < least < 1e-4:
        msg = f"Input should be greater than or equal to {least:g}"
    named = re.match(r"(\w+): (.*)", msg, re.S)  # a whole-section check that names one of its keys
    if first["type"] == "value_error" and named and named.group(1) in _allowed_keys(root, (*loc, "")):
        return ScenarioError(key_path((*loc, named.group(1))), named.group(2))
    got = first.get("input")
    if first["type"] != "value_error" and not isinstance(got, dict | list):
        msg += f" (got {shown(repr(got))})"
    return ScenarioError(path, msg)
