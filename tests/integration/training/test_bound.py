"""The step's lower bound (:mod:`sim.step.bound`) against the step in both contention modes.

What must hold, and why: the bound is the step with every send free and every DeepEP phase and
collective alone, and the step's times are monotone in its durations and delays, so

    bound <= isolated step <= shared step

on any layout: ZeRO-1's reduce-scatters from each stage's gradients (``tail``) or after the pipeline
(``none``), one pipeline or every EP group's (per-GPU fidelity), other schedules (virtual stages too),
tensor parallelism (its collectives on the shared network), a thin fabric where sharing costs most,
FSDP (whose gathers run inside the pipeline: the bound is the pipeline's end). With nothing to send or
share (one pipeline stage, exact flow completion) the three are the same step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.assemble import assemble
from sim.config import load_scenario
from sim.run import simulate_training
from sim.step.bound import step_lower_bound
from tests.conftest import SMALL_STEP
from tests.unit.step.test_fsdp import _scenario as fsdp_scenario

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

CASES: dict[str, dict[str, Any]] = {
    "none": {},  # the default scenario's: reduce-scatters after the whole pipeline
    "tail": {"training.dp_overlap": "tail"},
    "per-gpu": {"training.fidelity": "per-gpu", "training.gpus": 1024, "training.global_batch": 2048},  # 2 EP groups
    "per-gpu-tail": {
        "training.fidelity": "per-gpu",
        "training.gpus": 1024,
        "training.global_batch": 2048,
        "training.dp_overlap": "tail",
    },
    "zb1p": {"pipeline.schedules": ["zb1p"], "pipeline.pp": 8},
    "interleaved": {"pipeline.schedules": ["interleaved-1f1b"], "pipeline.pp": 8, "pipeline.virtual_stages": 2},
    "tp2": {"training.tp": 2},  # TP collectives as coflows of the shared network
    "ib-100": {"cluster.nic_Gbps": 100},
}


def _derived(folder: Path, name: str, sets: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": str(SMALL_STEP), "name": name, "set": sets}))
    return path


def _times(path: Path, modes: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    sc = load_scenario(path)
    bound = step_lower_bound(assemble(sc).step)  # type: ignore[arg-type]
    steps = {}
    for mode in modes:
        run = sc.model_copy(update={"training": sc.training.model_copy(update={"contention": mode})})
        steps[mode] = simulate_training(run).result.step_time_s
    return bound, steps


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_bound_is_below_both_contention_modes(name: str, tmp_path: Path) -> None:
    bound, steps = _times(_derived(tmp_path, name, CASES[name]), ("isolated", "shared"))
    assert 0 < bound <= steps["isolated"] <= steps["shared"]


def test_with_fsdp_the_bound_is_below_the_step(tmp_path: Path) -> None:
    bound, steps = _times(fsdp_scenario(tmp_path, "fsdp", fsdp=True), ("shared",))
    assert 0 < bound <= steps["shared"]


def test_with_nothing_to_send_or_share_the_bound_is_the_step(tmp_path: Path) -> None:
    alone = {
        "training.gpus": 128,
        "training.global_batch": 256,  # DP 128: 2 micro-batches
        "pipeline.pp": 1,
        "pipeline.schedules": ["1f1b"],
        "cluster.completion_rtol": 0.0,
    }
    bound, steps = _times(_derived(tmp_path, "alone", alone), ("isolated", "shared"))
    assert bound == pytest.approx(steps["isolated"], rel=1e-12)
    assert bound == pytest.approx(steps["shared"], rel=1e-12)
