"""Random inputs never crash the twin (issue 12): random YAML structures to the scenario loader and
random numbers to every numeric flag end in exit 0 or a clean exit 2 (one ``error:`` line, no
traceback) within a time bound."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from tests.unit.test_bad_inputs import BASE, commands, numeric_options

# a bound on the work a command does with a fuzzed value (a guard against runaway sizes, which run for
# minutes), in the process's CPU seconds: wall time on a CI host running two test workers at once doubles
# under load. Legitimate large values take most of it: `schedules compare --microbatches 4096` simulates
# five schedules of 4,096 micro-batches, 10-15 s alone and 33 s under CI's coverage tracing. The large
# valid value drawn is 1,024 (a quarter of that work): it exercises the same paths, and the runaway sizes
# the bound guards against (2**64, 1e400, ...) are drawn as before.
TIME_BOUND_S = 60.0
SKIP = {("calibrate", "run")}  # runs torch microbenchmarks: not a parsing path

FLAGS = [(path, flag) for path, callback in commands() if path not in SKIP for flag, _, _ in numeric_options(callback)]

KEYS = [
    "name",
    "pipeline",
    "pp",
    "microbatches",
    "virtual_stages",
    "schedules",
    "ops",
    "forward_ms",
    "backward_ms",
    "weight_ms",
    "overlapped_ms",
    "p2p",
    "bandwidth_GBps",
    "latency_us",
    "activation_bytes",
    "comm",
    "sms",
    "coprocessor",
    "workload",
    "tokens",
    "ep",
    "seed",
    "cluster",
    "topology",
    "profile",
    "x",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1f1b", "dualpipe", "1e6", ".inf", "", "s", "../x", "balanced"]),
    st.text(max_size=8),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25,
)


def _check(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    start = time.process_time()
    with pytest.raises(SystemExit) as info:
        main(args)
    elapsed = time.process_time() - start
    _, err = capsys.readouterr()
    assert info.value.code in (0, 2), (args, err)
    assert "Traceback" not in err
    if info.value.code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert elapsed < TIME_BOUND_S, (args, elapsed)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=structures, base=st.booleans())
def test_random_yaml_scenarios(doc: Any, base: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if base and isinstance(doc, dict):  # most documents start from a valid scenario, then one part is random
        doc = {
            "name": "f",
            "pipeline": {"pp": 4, "microbatches": 8},
            "ops": {"forward_ms": 1, "backward_ms": 2, "weight_ms": 1},
        } | doc
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check(["validate", str(path)], capsys)


numbers = st.one_of(
    st.integers(-2, 64).map(str),
    st.sampled_from(["0", "-1", "1e8", "1e400", "2.5", "nan", "inf", "-inf", "1024", "9223372036854775808", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**64), 2**64).map(str),
)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(FLAGS), value=numbers)
def test_random_numbers_to_every_numeric_flag(
    which: tuple[tuple[str, ...], str],
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    path, flag = which
    _check([*path, *BASE.get(path, []), flag, value], capsys)


PLAN_KEYS = [
    "name",
    "description",
    "base",
    "grid",
    "points",
    "studies",
    "key",
    "title",
    "question",
    "metrics",
    "variants",
    "scenario",
    "label",
    "set",
    "phases",
    "tokens",
    "steps",
    "global_batch",
    "ramp",
    "batches",
    "over_tokens",
    "published_gpu_hours",
    "groups",
    "comm.sms",
    "model.seq_len",
    "training.cp",
    "x",
]
plan_structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(PLAN_KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=plan_structures, kind=st.sampled_from(["sweep", "codesign", "run", "none"]))
def test_random_sweep_study_and_run_files(
    doc: Any, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan files (a sweep's grid and points, a co-design study's studies, a run's phases) get the same
    treatment as scenarios: most documents start from a valid base and the part that makes the kind."""
    default = str(Path(__file__).resolve().parents[2] / "scenarios" / "deepseek_v3_pretrain.yaml")
    start: dict[str, Any] = {
        "sweep": {"base": default, "grid": {"comm.sms": [20]}},
        "codesign": {"base": default, "studies": [{"key": "a", "variants": [{"set": {"comm.sms": 16}}]}]},
        "run": {"base": default, "phases": [{"name": "p", "steps": 1}]},
        "none": {},
    }[kind]
    if isinstance(doc, dict):
        doc = start | doc
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _check(["validate", str(path)], capsys)
