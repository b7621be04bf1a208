"""Every key of a scenario, given each of thirteen hostile values, ends cleanly (issue 23).

For the two kinds of scenario (the default training step and a schedule comparison with given op
times), every leaf key of the schema (:func:`tests.unit.test_every_key_is_used.schema_keys`, so a new
key is fuzzed from the day it exists) is set, one at a time, to 0, -1, 1e308, 1e-300, NaN, inf, 1e18,
3.5, a string, a list, a mapping, true and null, and ``twin run --format json`` runs on it. Each run
must end (an alarm turns a hang into a failure), with

* exit 0 and JSON on stdout whose every number is finite, or
* exit 2, nothing on stdout and one line on stderr, ``error: FILE: WHAT``, where WHAT starts with a
  key path of the scenario (the key itself, a section, or the key the value conflicts with), is an
  overflow that names the inputs at the edge (:func:`sim.run.check_finite`), or FILE is the file the
  value named (a path that does not exist).

This is how the hangs of ``tests/unit/test_extreme_step_keys.py`` were found; it takes about 45 s.
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from tests.unit.test_every_key_is_used import schema_keys

REPO = Path(__file__).resolve().parents[2]
BASES = {
    "step": REPO / "scenarios" / "deepseek_v3_pretrain.yaml",
    "comparison": REPO / "scenarios" / "dualpipe-table.yaml",
}
VALUES: list[Any] = [0, -1, 1e308, 1e-300, math.nan, math.inf, 10**18, 3.5, "abc", [1], {"a": 1}, True, None]
ALARM_S = 60  # per run: a refusal takes milliseconds, a run of the default step about one second
KEYS = schema_keys()
SECTIONS = {k.rsplit(".", 1)[0] for k in KEYS if "." in k}
WHAT = re.compile(r"^([A-Za-z_][\w.]*(\[\d+\])?): ")


class Hung(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[None]:
    def ring(*_: Any) -> None:
        raise Hung(f"a run still going after {ALARM_S} s")

    old = signal.signal(signal.SIGALRM, ring)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _numbers(x: Any) -> Iterator[float]:
    if isinstance(x, bool):
        return
    if isinstance(x, int | float):
        yield float(x)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v)


def _names_a_key(what: str) -> bool:
    m = WHAT.match(what)
    if m is None:
        return what.startswith("the results overflow: ") and " from " in what
    key = m.group(1)
    return key in KEYS or key in SECTIONS or key.split("[")[0] in KEYS or key.split(".")[0] in SECTIONS


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("key", KEYS)
def test_every_key_takes_hostile_values_cleanly(
    base: str, key: str, tmp_path: Path, alarm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fuzzed.yaml"
    for value in VALUES:
        path.write_text(yaml.safe_dump({"base": str(BASES[base]), "set": {key: value}}))
        signal.alarm(ALARM_S)
        with pytest.raises(SystemExit) as info:
            main(["run", str(path), "--format", "json", "-q"])
        signal.alarm(0)
        out, err = capsys.readouterr()
        case = f"{key} = {value!r}"
        assert info.value.code in (0, 2), f"{case}: exit {info.value.code}: {err}"
        if info.value.code == 0:
            assert all(math.isfinite(x) for x in _numbers(json.loads(out))), f"{case}: a figure is not finite"
            continue
        lines = err.splitlines()
        assert out == "" and len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {err}"
        file, _, what = lines[0].removeprefix("error: ").partition(": ")
        if file == str(path):
            assert _names_a_key(what), f"{case}: names no key: {lines[0]}"
        else:  # a file the value named (a topology or profile path that does not exist)
            assert isinstance(value, str) and file.endswith(value), f"{case}: {lines[0]}"
