"""Every key of a scenario, given each of thirteen hostile values, ends cleanly (issue 23).

For each kind of scenario (here DeepSeek-V3's training step, made small as
``tests/unit/test_every_key_is_used.py`` makes it, with its memory checked, and a schedule comparison
with given op times; ``tests/serve/test_serve_key_fuzz.py`` DeepSeek's serving deployment), every leaf
key of the schema (:func:`tests.unit.test_every_key_is_used.schema_keys`: a new key is fuzzed from the day it
exists) is set, one at a time, to 0, -1, 1e308, 1e-300, NaN, inf, 1e18, 3.5, a string, a list, a
mapping, true and null, and ``twin run`` (``twin serve``) ``--format json`` runs on it. Each run
must end (an alarm turns a hang into a failure), with

* exit 0 and JSON on stdout whose every number is finite, or
* exit 2, nothing on stdout and one line on stderr, ``error: FILE: WHAT``, where WHAT starts with a
  key path of the scenario (the key itself, a section, or the key the value conflicts with), is an
  overflow that names the inputs at the edge (:func:`sim.run.check_finite`), or FILE is the file the
  value named (a path that does not exist).

This is how the hangs of ``tests/unit/test_extreme_step_keys.py`` were found.
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from sim.serve.spec import ServeScenario
from tests.conftest import SMALL_STEP, untraced
from tests.unit.test_every_key_is_used import STEP, schema_keys

REPO = Path(__file__).resolve().parents[2]
BASES = {  # kind: (base scenario, command, keys set before the fuzzed one)
    # DeepSeek-V3's step on 128 GPUs, 8 layers, its memory checked: a run takes 0.3 s, the default's 1 s
    "step": (SMALL_STEP, "run", STEP | {"training.check_memory": True}),
    "comparison": (REPO / "scenarios" / "dualpipe-table.yaml", "run", {}),
    "serve": (REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml", "serve", {"serve.duration_s": 0.5}),
}
VALUES: list[Any] = [0, -1, 1e308, 1e-300, math.nan, math.inf, 10**18, 3.5, "abc", [1], {"a": 1}, True, None]
ALARM_S = 60  # per run: a refusal takes milliseconds, a run of the step under a second
TRAINING_KEYS = schema_keys()
SERVE_KEYS = schema_keys(ServeScenario)
KEYS = set(TRAINING_KEYS) | set(SERVE_KEYS)
SECTIONS = {k.rsplit(".", 1)[0] for k in KEYS if "." in k}
WHAT = re.compile(r"^([A-Za-z_][\w.]*(\[\d+\])?): ")


class Hung(Exception):
    pass


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise :class:`Hung` in the block once ``seconds`` have passed."""

    def ring(*_: Any) -> None:
        raise Hung(f"a run still going after {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
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
    after = re.match(r"set: (\{.*?\}|.*? \(\d+ characters\)): ", what)  # a key its override makes wrong: after it
    if after is not None:
        what = what[after.end() :]
    m = WHAT.match(what)
    if m is None:
        return what.startswith("the results overflow: ") and " from " in what
    key = m.group(1)
    return key in KEYS or key in SECTIONS or key.split("[")[0] in KEYS or key.split(".")[0] in SECTIONS


def _twin(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str]:
    """(exit status, stdout, stderr) of ``twin ARGS`` run here, under :data:`ALARM_S`, without coverage's
    tracer (:func:`tests.conftest.untraced`). Traced, this module took 132 s of a CI run and 59 s not
    (the serving one 76 s and 55 s), most of it running the default step for the values it accepts. So
    the coverage report does not count these runs: about 22 lines only they reach (refusals of hostile
    types in ``sim/yamlio.py``, ``sim/config.py``, ``sim/step/layout.py``) show as not covered though
    they are tested here (docs/testing.md gives the figures)."""
    with alarm(ALARM_S), untraced(), pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def fuzz_key(base: str, key: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run the scenario of kind ``base`` with ``key`` set to each of :data:`VALUES` (the module's doc)."""
    path = folder / "fuzzed.yaml"
    scenario, command, preset = BASES[base]
    for value in VALUES:
        path.write_text(yaml.safe_dump({"base": str(scenario), "set": {**preset, key: value}}))
        code, out, err = _twin([command, str(path), "--format", "json", "-q"], capsys)
        case = f"{key} = {value!r}"
        assert code in (0, 2), f"{case}: exit {code}: {err}"
        if code == 0:
            assert all(math.isfinite(x) for x in _numbers(json.loads(out))), f"{case}: a figure is not finite"
            continue
        lines = err.splitlines()
        assert out == "" and len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {err}"
        file, _, what = lines[0].removeprefix("error: ").partition(": ")
        if file == str(path):
            assert _names_a_key(what), f"{case}: names no key: {lines[0]}"
        else:  # a file the value named (a topology or profile path that does not exist)
            assert isinstance(value, str) and file.endswith(value), f"{case}: {lines[0]}"


@pytest.mark.parametrize(("base", "key"), [(b, k) for b in ("step", "comparison") for k in TRAINING_KEYS])
def test_every_key_takes_hostile_values_cleanly(
    base: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_key(base, key, tmp_path, capsys)
