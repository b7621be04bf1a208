"""The order and the memory filter of ``twin plan layouts``' search (:mod:`sim.experiments.layouts`).

What must hold: a small ``--limit`` samples every parallel split (the layouts are taken one of each (TP,
CP, PP) in turn, every TP first, as the command says; before, the first 100 of the small step's layouts
were all TP1); no layout is taken that the memory model puts over the GPU's memory (before, 86 of those
100 were simulated only to be refused, and ``--limit 3`` found none that fit), and the memory model's
verdict is the step's own check; the order is deterministic, the scenario's own layout first (on the
default scenario the search ranked 100 others and missed DeepSeek's, the fastest).
"""

from __future__ import annotations

import pytest

from sim.assemble import assemble
from sim.config import Scenario, load_scenario
from sim.errors import MemoryLimitError
from sim.experiments.layouts import OVER_MEMORY, candidates, formed, gpu_memory_GiB, memory_GiB, own_layout
from sim.experiments.study import variant
from tests.conftest import REPO

SMALL_STEP = REPO / "tests" / "data" / "sweep" / "small-step.yaml"  # DeepSeek-V3 on 512 H800s


@pytest.fixture(scope="module")
def small_step() -> Scenario:
    return load_scenario(SMALL_STEP)


def _split(point: dict[str, object]) -> tuple[object, object, object]:
    return point["training.tp"], point["training.cp"], point["pipeline.pp"]


def test_a_small_limit_samples_every_split(small_step: Scenario) -> None:
    found = candidates(small_step)
    tps = {p["training.tp"] for p in found.points}
    splits = {_split(p) for p in found.points}
    assert tps == {1, 2, 4, 8} and len(splits) > 2 * len(tps)
    # the scenario's own layout first (the ranking always holds it), then every TP among the next len(TPs)
    # layouts, every (TP, CP, PP) among the next len(splits)
    assert found.points[0] == own_layout(small_step, found.points[0])
    rest = found.points[1:]
    assert {p["training.tp"] for p in rest[: len(tps)]} == tps
    assert {_split(p) for p in rest[: len(splits)]} == splits
    # a limit cuts that order: the same first layouts, the rest counted, and the same on a rerun
    three = candidates(small_step, 3)
    assert three.points == found.points[:3] and three.over_limit == len(found.points) - 3
    assert len({p["training.tp"] for p in three.points[1:]}) == 2
    assert candidates(small_step, 3) == three
    # nothing lost or added by the order: the layouts that fit, each once
    assert sorted(map(repr, found.points)) == sorted(
        repr(p) for p in formed(small_step).points if p in found.points
    ) and len(set(map(repr, found.points))) == len(found.points)


def test_no_layout_over_memory_is_taken(small_step: Scenario) -> None:
    hbm = gpu_memory_GiB(small_step)
    assert hbm == 80.0  # an H800
    every = formed(small_step)
    found = candidates(small_step)
    need = {repr(p): memory_GiB(small_step, p) for p in every.points}
    assert all(need[repr(p)] is not None and need[repr(p)] <= hbm for p in found.points)  # type: ignore[operator]
    over = [p for p in every.points if need[repr(p)] > hbm]  # type: ignore[operator]
    assert found.dropped[OVER_MEMORY] == len(over) > 0 and OVER_MEMORY not in every.dropped
    assert len(found.points) + len(over) == len(every.points)  # (no limit: nothing over it)
    assert sum(found.dropped.values()) + len(found.points) == sum(every.dropped.values()) + len(every.points)


def test_the_memory_model_is_the_steps_check(small_step: Scenario) -> None:
    """The closest layouts either side of the GPU's memory: the one dropped is refused by the step's own
    check (even though the scenario says check_memory: false), the one kept is not."""
    every, found = formed(small_step), candidates(small_step)
    kept = max(found.points, key=lambda p: memory_GiB(small_step, p) or 0.0)
    dropped = min((p for p in every.points if p not in found.points), key=lambda p: memory_GiB(small_step, p) or 1e9)
    assert 70.0 < (memory_GiB(small_step, kept) or 0.0) <= 80.0 < (memory_GiB(small_step, dropped) or 0.0) < 90.0
    assemble(variant(small_step, {**kept, "training.check_memory": True}))
    with pytest.raises(MemoryLimitError, match="GiB per GPU"):
        assemble(variant(small_step, {**dropped, "training.check_memory": True}))
