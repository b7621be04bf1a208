"""The candidates of ``twin plan layouts``' search (:mod:`sim.experiments.layouts`).

What must hold: no layout is taken that the memory model puts over the GPU's memory (before, 86 of the
first 100 of the small step's layouts were simulated only to be refused), and the memory model's verdict
is the step's own check; nor one the step refuses for its size; the order is deterministic (it breaks
ties of bounds) and the scenario's own layout is among them.
"""

from __future__ import annotations

import pytest

from sim.assemble import assemble
from sim.config import Scenario, load_scenario
from sim.errors import MemoryLimitError, ScenarioError
from sim.experiments.layouts import OVER_MEMORY, Candidates, candidates, formed, gpu_memory_GiB, memory_GiB, own_layout
from sim.experiments.study import variant
from sim.limits import MAX_STEP_ACTIONS, schedule_actions
from sim.run import simulate_training
from sim.units import GiB
from tests.conftest import REPO

SMALL_STEP = REPO / "tests" / "data" / "sweep" / "small-step.yaml"  # DeepSeek-V3 on 512 H800s


@pytest.fixture(scope="module")
def small_step() -> Scenario:
    return load_scenario(SMALL_STEP)


# The search's results and the memory model's figure of every formed layout, worked out once for the
# module's tests (about 1.5 s each, 3 s under coverage; the tests asked for them six times over).
@pytest.fixture(scope="module")
def found(small_step: Scenario) -> Candidates:
    return candidates(small_step)


@pytest.fixture(scope="module")
def every(small_step: Scenario) -> Candidates:
    return formed(small_step)


@pytest.fixture(scope="module")
def need(small_step: Scenario, every: Candidates) -> dict[str, float | None]:
    return {repr(p): memory_GiB(small_step, p) for p in every.points}


def _split(point: dict[str, object]) -> tuple[object, object, object]:
    return point["training.tp"], point["training.cp"], point["pipeline.pp"]


def test_candidates_are_the_formed_layouts_that_fit_in_order(
    small_step: Scenario, found: Candidates, every: Candidates
) -> None:
    """Nothing lost, added or repeated by the memory filter, the enumeration's order kept (ties of bounds
    go to the earlier point: the order is the tie-break), and the same on a rerun."""
    assert list(found.points) == [p for p in every.points if p in found.points]
    assert len(set(map(repr, found.points))) == len(found.points)
    assert candidates(small_step) == found
    own = [p for p in found.points if p == own_layout(small_step, p)]
    assert len(own) == 1  # the scenario's own layout fits and is a candidate (the CLI says where it ranks)


def test_the_steps_action_limit_is_checked_before_the_search_runs() -> None:
    """The step refuses a schedule of more than MAX_STEP_ACTIONS actions (3 x PP x virtual stages x
    micro-batches); the search drops such layouts before bounding them (it ran them first, as unbounded,
    to be refused one by one), by the same count: the virtual stages of a schedule that uses them only
    (the step counted the default 2 for 1F1B and DualPipe too, and refused DeepSeek-V3 at TP8 PP32 1F1B,
    184,320 actions, as 368,640)."""
    sc = load_scenario(REPO / "scenarios" / "deepseek_v3_pretrain.yaml")
    point = {
        "training.tp": 8,
        "training.cp": 1,
        "pipeline.pp": 32,
        "pipeline.schedules": ["1f1b"],
        "training.layers_per_stage": "even",
        "workload.ep": 8,
    }
    assert schedule_actions(32, 15360 // 8, 1) == 184_320 < MAX_STEP_ACTIONS < 2 * 184_320
    assert point in formed(sc).points and memory_GiB(sc, point) is not None  # it builds: 1,920 micro-batches
    big = variant(sc, {"training.global_batch": 8 * 15360})  # 15,360 micro-batches a pipeline
    assert point not in formed(big).points
    assert formed(big).dropped["more schedule actions than a step may have"] > 0
    with pytest.raises(ScenarioError, match="action count"):
        assemble(variant(sc, {**point, "training.global_batch": 8 * 15360}))


def test_no_layout_over_memory_is_taken(
    small_step: Scenario, found: Candidates, every: Candidates, need: dict[str, float | None]
) -> None:
    hbm = gpu_memory_GiB(small_step)
    assert hbm == 80.0  # an H800
    assert all(need[repr(p)] is not None and need[repr(p)] <= hbm for p in found.points)  # type: ignore[operator]
    over = [p for p in every.points if need[repr(p)] > hbm]  # type: ignore[operator]
    assert found.dropped[OVER_MEMORY] == len(over) > 0 and OVER_MEMORY not in every.dropped
    assert len(found.points) + len(over) == len(every.points)  # (no limit: nothing over it)
    assert sum(found.dropped.values()) + len(found.points) == sum(every.dropped.values()) + len(every.points)


def test_the_memory_model_is_the_steps_check(
    small_step: Scenario, found: Candidates, every: Candidates, need: dict[str, float | None]
) -> None:
    """The closest layouts either side of the GPU's memory: the one dropped is refused by the step's own
    check (even though the scenario says check_memory: false), the one kept is not."""
    kept = max(found.points, key=lambda p: need[repr(p)] or 0.0)
    dropped = min((p for p in every.points if p not in found.points), key=lambda p: need[repr(p)] or 1e9)
    assert 70.0 < (need[repr(kept)] or 0.0) <= 80.0 < (need[repr(dropped)] or 0.0) < 90.0
    assemble(variant(small_step, {**kept, "training.check_memory": True}))
    with pytest.raises(MemoryLimitError, match="GiB per GPU"):
        assemble(variant(small_step, {**dropped, "training.check_memory": True}))


def test_layouts_the_builder_refuses_are_dropped_with_its_reason(small_step: Scenario) -> None:
    """DualPipe(V) with fewer micro-batches than it needs (the small step at a global batch of 512: one
    micro-batch a pipeline at PP2 DualPipeV) is refused by the schedule; the search drops it before
    bounding, counted under the schedule's own message (it ran such layouts first, as unbounded)."""
    tight = variant(small_step, {"training.global_batch": 512})
    found = candidates(tight)
    every_pp = found.dropped["dualpipev with PP=N needs at least N micro-batches, got N"]  # counted together
    assert every_pp > 1  # (PP 2 with 1 micro-batch, PP 4 with 2, ...)
    assert all(memory_GiB(tight, p) is not None for p in found.points)  # every one kept builds


def test_a_dense_models_layouts_are_memory_checked() -> None:
    """A dense model's layouts are built with EP 1, as its scenario runs them: Llama 3.1 8B at PP2 on 64
    H100s (32 GPUs a pipeline rank) has a memory figure (built with MoE's EP 64 it failed, and a layout
    that failed to build was kept unchecked)."""
    llama = load_scenario(REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml")
    assert not llama.model.is_moe_model
    point = {
        "training.tp": 1,
        "training.cp": 1,
        "pipeline.pp": 2,
        "pipeline.schedules": ["1f1b"],
        "training.layers_per_stage": "even",
    }
    need = memory_GiB(llama, point)
    assert need is not None and 0 < need < 80.0
    run = simulate_training(variant(llama, point)).result  # the step's own figure (a sweep row's memory_peak_GiB)
    assert need == pytest.approx(max(r.memory.total for r in run.ranks) / GiB, rel=1e-12)


@pytest.mark.parametrize(
    ("schedules", "refused"),
    [(["1f1b"], False), (["dualpipe"], False), (["interleaved-1f1b"], True), (["1f1b", "interleaved-1f1b"], True)],
)
def test_a_schedules_action_count_counts_virtual_stages_only_where_used(schedules: list[str], refused: bool) -> None:
    """PP 8 x 30,000 micro-batches is 720,000 actions for 1F1B or DualPipe (under the limit of 1,000,000
    actions a schedule may have) and 1,440,000 with the default 2 virtual stages of interleaved 1F1B: a
    scenario was refused for 1F1B as if it had them, and `twin schedules` alike."""
    from sim.config import parse_scenario
    from sim.limits import MAX_SCHEDULE_ACTIONS

    assert schedule_actions(8, 30_000, 1) < MAX_SCHEDULE_ACTIONS < schedule_actions(8, 30_000, 2)
    data = {"name": "s", "pipeline": {"pp": 8, "microbatches": 30_000, "schedules": schedules}}
    data["ops"] = {"forward_ms": 1, "backward_ms": 2, "weight_ms": 0.5 if "dualpipe" in schedules else 0}
    if refused:
        with pytest.raises(ScenarioError, match="action count"):
            parse_scenario(data)
    else:
        parse_scenario(data)
