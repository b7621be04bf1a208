"""A sample's parameters are refused when its profile is read, one line naming the key inside
``params`` (``samples[12].params.m``) and what it must be: a dimension the cost model reads as a whole
number (``int(...)``) that is a fraction (0.5, 1e-300) was truncated to 0, and the GEMM fit ended in a
scipy traceback (``Residuals are not finite in the initial point``) in ``twin calibrate predict``,
``show``, ``twin chunk`` and ``twin run``; a list where a name goes named a member of pydantic's union
(``samples[12].params.family.float: Input should be a valid number``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.hardware.profile import KNOWN_PARAMS, PROFILES_DIR, PROVENANCE_PARAMS, load_profile
from tests.conftest import REPO

MEASURED = PROFILES_DIR / "h100-sxm-measured.json"


def _edited(tmp_path: Path, op: str, key: str, value: object) -> tuple[Path, int]:
    """The measured H100 profile with ``params[key]`` of its 13th sample (a GEMM), or of its first sample
    of ``op``, set to ``value``; (its path, the sample's index)."""
    data = json.loads(MEASURED.read_text())
    at = 12 if op == "gemm" else next(i for i, s in enumerate(data["samples"]) if s["op"] == op)
    assert data["samples"][at]["op"] == op
    data["samples"][at]["params"][key] = value
    path = tmp_path / "q.json"
    path.write_text(json.dumps(data))
    return path, at


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    got = capsys.readouterr()
    return int(info.value.code or 0), got.out, got.err


@pytest.mark.parametrize(
    ("op", "key", "value", "message"),
    [
        ("gemm", "m", 0.5, "must be a whole number >= 1, got 0.5"),
        ("gemm", "m", 1e-300, "must be a whole number >= 1, got 1e-300"),
        ("gemm", "n", 1e-300, "must be a whole number >= 1, got 1e-300"),
        ("gemm", "sms", 1e-300, "must be a whole number >= 1, got 1e-300"),
        ("gemm", "k", 0.001, "must be a whole number >= 1, got 0.001"),
        ("gemm", "k", 7168.5, "must be a whole number >= 1, got 7168.5"),
        ("gemm", "m", 0, "must be a whole number >= 1, got 0"),
        ("gemm", "m", "x", "must be a whole number >= 1, got 'x'"),
        ("gemm", "m", [128], "must be a whole number >= 1, got [128]"),
        ("gemm", "family", ["a"], "must be text, got ['a']"),
        ("gemm", "family", {"a": 1}, "must be text, got {'a': 1}"),
        ("gemm", "family", None, "must be text, got None"),
        ("gemm", "colour", ["a"], "must be a number or text, got ['a']"),
        ("gemm", "dtype", 8, "must be text, got 8"),
        ("attention", "heads", 0.5, "must be a whole number >= 1, got 0.5"),
        ("attention", "causal", 0.5, "must be a whole number >= 0, got 0.5"),
        ("interference", "comm_sms", 0.5, "must be a whole number >= 0, got 0.5"),
        ("memory", "bytes", -1, "must be 0 or more, got -1"),
    ],
)
def test_a_bad_sample_parameter_is_refused_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str, key: str, value: Any, message: str
) -> None:
    path, at = _edited(tmp_path, op, key, value)
    code, out, err = _run(["calibrate", "predict", "--profile", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {path}: samples[{at}].params.{key}: {message}\n"


@pytest.mark.parametrize(
    "command",
    [
        ["calibrate", "show", "{path}"],
        ["calibrate", "predict", "--profile", "{path}", "--format", "json"],
        ["chunk", "--profile", "{path}", "--layers", "1", "--format", "json"],
    ],
    ids=["show", "predict", "chunk"],
)
def test_a_fractional_gemm_dimension_is_refused_by_every_command_that_reads_the_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """The profile's loader refuses it, so each command does alike (it was a traceback from scipy)."""
    path, _ = _edited(tmp_path, "gemm", "m", 0.5)
    code, out, err = _run([a.format(path=path) for a in command], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {path}: samples[12].params.m: must be a whole number >= 1, got 0.5\n"


def test_more_sms_than_the_device_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _edited(tmp_path, "gemm", "sms", 500)
    code, _, err = _run(["calibrate", "predict", "--profile", str(path)], capsys)
    assert code == 2
    assert err == f"error: {path}: samples[12].params.sms: 500 is more SMs than the device's 132 (device.sms)\n"


def test_a_whole_number_written_as_a_float_is_taken(tmp_path: Path) -> None:
    path, _ = _edited(tmp_path, "gemm", "m", 128.0)
    assert load_profile(path).samples[12].params["m"] == 128


@pytest.mark.parametrize(
    ("op", "key", "hint"),
    [
        ("attention", "casual", " (did you mean 'causal'?)"),
        ("gemm", "scalling", " (did you mean 'scaling'?)"),
        ("gemm", "bogus", ""),
    ],
)
def test_an_unknown_sample_parameter_is_refused_naming_the_nearest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str, key: str, hint: str
) -> None:
    """Every op's parameters are listed (:data:`KNOWN_PARAMS`): an attention sample's ``casual: 0`` (for
    ``causal``) was taken without a word, as causal, and the step moved 5% from the one meant."""
    path, at = _edited(tmp_path, op, key, 0)
    code, out, err = _run(["calibrate", "show", str(path)], capsys)
    assert (code, out) == (2, "")
    known = ", ".join(sorted(KNOWN_PARAMS[op]))
    assert (
        err == f"error: {path}: samples[{at}].params.{key}: not a parameter of {op} samples{hint}; they take {known}\n"
    )


def _written_params() -> set[str]:
    """The keys of every dict literal calibrate/ builds a sample's params from: a ``params=`` argument,
    a ``"params":`` entry, or a dict assigned to ``params``, ``base`` or ``pair`` (read by ``ast``)."""
    import ast

    keys: set[str] = set()
    for source in (REPO / "calibrate").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "params":
                values.append(node.value)
            elif isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "params"
                ]
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id in ("params", "base", "pair") for t in targets) and node.value:
                    values.append(node.value)
            for value in values:
                for inner in ast.walk(value):
                    if isinstance(inner, ast.Dict):
                        keys |= {
                            k.value for k in inner.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                        }
    return keys


def test_every_parameter_the_calibration_tools_write_is_known() -> None:
    """What calibrate/ writes into a sample's params (the benches, the trace, the imports) is a known
    parameter of some op, or provenance: a tool's new key would otherwise make its own profile
    unreadable."""
    written = _written_params()
    assert {"causal", "alone_s", "collective", "busbw_GBps", "stream", "family", "backend"} <= written  # (found)
    every = set().union(*KNOWN_PARAMS.values()) | PROVENANCE_PARAMS
    assert written - every == set()
