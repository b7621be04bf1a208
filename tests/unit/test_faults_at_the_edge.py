"""Inputs at the edge of floating point or of YAML's number forms, each refused in one line naming the
file and key (or line), exit 2, where they ran into a traceback, a loop that never ended, or a number
other than the one written (held-out bad inputs, 2026-12-07):

* a rate below :data:`sim.limits.MIN_RATE` (5e-324 Gb/s: a ZeroDivisionError; 1e-310: a loop that never
  ended, and with the compiled build not even SIGTERM stopped it);
* a negative seed (numpy's ValueError);
* YAML 1.1 number forms YAML 1.2 reads otherwise (``020`` was 16 SMs, ``6:40`` a NIC of 400 Gb/s);
* ``set: {name: ...}`` in a file that gives its own name (it did nothing);
* a profile's interference sample with ``alone_s`` 0 (a ZeroDivisionError) or -1 (a step 0.2 s shorter),
  a copy of 0 bytes (an HBM rate of 0) or of 1e30 (the step 3 s shorter), a whole number of 5,001
  digits (Python's ValueError), 1e400 (read as inf past the Infinity refusal).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.hardware.profile import PROFILES_DIR
from sim.paths import DEFAULT_SCENARIO
from tests.conftest import refused_line

_refused = refused_line


def _derived(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nbase: {DEFAULT_SCENARIO}\n{body}")
    return path


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("set: {cluster.nic_Gbps: 5.0e-324}\n", "cluster.nic_Gbps: Input should be greater than or equal to 1e-300"),
        (
            "set: {cluster.nvlink_GBps: 1.0e-310}\n",
            "cluster.nvlink_GBps: Input should be greater than or equal to 1e-300",
        ),
        ("set: {seed: -1}\n", "seed: Input should be greater than or equal to 0 (got -1)"),
        ("set: {comm.sms: 020}\n", "line 3: '020' is a YAML 1.1 number (a leading zero: octal)"),
        ("set: {cluster.nic_Gbps: 6:40}\n", "line 3: '6:40' is a YAML 1.1 number (base 60)"),
        ("set: {comm.sms: 2_0}\n", "line 3: '2_0' is a YAML 1.1 number (digit separators)"),
        ("set: {comm.sms: 0b10100}\n", "line 3: '0b10100' is a YAML 1.1 number (binary)"),
        ("set: {name: other, comm.sms: 12}\n", "set.name: the file gives its name itself (name:); remove it here"),
    ],
)
def test_a_scenario_at_the_edge_is_refused(
    tmp_path: Path, body: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _derived(tmp_path, body)
    got = _refused(["validate", str(path)], capsys)
    assert got.startswith(f"error: {path}: {line}"), got


def test_yaml_12_numbers_are_read_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Decimal, 0x and 0o whole numbers, exponents and true/false keep their YAML 1.2 meaning; yes/on
    are text (a key named on is no longer True)."""
    from sim.yamlio import parse_yaml

    assert parse_yaml("a: 20\nb: 0x14\nc: 0o24\nd: 2e1\ne: 2.0e1\nf: true\ng: yes\non: 1\n") == {
        "a": 20,
        "b": 20,
        "c": 20,
        "d": 20,
        "e": 20.0,
        "f": True,
        "g": "yes",
        "on": 1,
    }


def _profile(tmp_path: Path, change: str) -> Path:
    data = json.loads((PROFILES_DIR / "h800.json").read_text())
    interference = next(i for i, s in enumerate(data["samples"]) if s["op"] == "interference")
    copy = next(i for i, s in enumerate(data["samples"]) if s["op"] == "memory" and s["params"]["kernel"] == "copy")
    text = None
    if change == "alone_0":
        data["samples"][interference]["params"]["alone_s"] = 0.0
    elif change == "alone_negative":
        data["samples"][interference]["params"]["alone_s"] = -1.0
    elif change == "copy_0":
        data["samples"][copy]["params"]["bytes"] = 0
    elif change == "copy_huge":
        data["samples"][copy]["params"]["bytes"] = 1e30
    else:
        text = json.dumps(data).replace(
            '"efficiency": ', '"efficiency": ' + ("9" * 5001 if change == "digits" else "1e400") + ', "x": ', 1
        )
    path = tmp_path / "p.json"
    path.write_text(text if text is not None else json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ("alone_0", "samples[{i}].params.alone_s: must be more than 0, got 0.0"),
        ("alone_negative", "samples[{i}].params.alone_s: must be more than 0, got -1.0"),
        ("copy_0", "samples[{c}].params.bytes: a copy's bytes must be more than 0, got 0"),
        ("copy_huge", "samples[{c}].params.bytes: must be at most 1e+18 bytes (sim.limits.MAX_BYTES), got 1e+30"),
        ("digits", "efficiency: a whole number of 5,001 digits is not a number the twin accepts"),
        ("inf", "efficiency: 1e400 is not a number the twin accepts"),
    ],
)
def test_a_profile_at_the_edge_is_refused(
    tmp_path: Path, change: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((PROFILES_DIR / "h800.json").read_text())
    i = next(i for i, s in enumerate(data["samples"]) if s["op"] == "interference")
    c = next(i for i, s in enumerate(data["samples"]) if s["op"] == "memory" and s["params"]["kernel"] == "copy")
    profile = _profile(tmp_path, change)
    path = _derived(tmp_path, f"set: {{profile: {profile}}}\n")
    got = _refused(["validate", str(path)], capsys)
    assert got.startswith(f"error: {profile}: {line.format(i=i, c=c)}"), got
