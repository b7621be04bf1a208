"""The memory check (sim/step/accounting.py): a split backward's peak in bytes, and a refusal whose
advice is computed. Every change the one-line refusal advises is applied to the scenario and assembled
again here: it must pass the same check, with the memory the line printed; a change that does not fit
is never advised (ZB1P's memory grows with PP, so no larger PP is offered for it)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sim.assemble import assemble, relayout, step_layout
from sim.config import Scenario, load_scenario
from sim.errors import ScenarioError
from sim.experiments.study import variant
from sim.hardware.gpu import H800
from sim.step.accounting import activation_peak, check_memory, rank_memory, stage_activations, stage_wgrad_activations
from sim.units import GiB

DEFAULT = Path(__file__).resolve().parents[3] / "scenarios" / "deepseek_v3_pretrain.yaml"
LINE = re.compile(r"pipeline rank (\d+) needs ([\d.]+) GiB per GPU \(.*\), more than the H800's 80 GiB: (.*)$")


@pytest.fixture(scope="module")
def base() -> Scenario:
    return load_scenario(DEFAULT)


def _refusal(sc: Scenario) -> str:
    with pytest.raises(ScenarioError) as info:
        assemble(sc)
    assert info.value.key_path == "training" and "\n" not in str(info.value)
    return info.value.message


def _advice(message: str) -> list[tuple[dict[str, Any], float]]:
    """Each advised change as scenario overrides, with the GiB per GPU the line says it needs."""
    match = LINE.match(message)
    assert match, message
    advice = match.group(3)
    assert advice.endswith("; or set training.check_memory: false")
    if not advice.startswith("it fits with "):
        return []
    out: list[tuple[dict[str, Any], float]] = []
    for part in advice.removeprefix("it fits with ").removesuffix("; or set training.check_memory: false").split("; "):
        key, _, rest = part.partition(": ")
        for value, gb in re.findall(r"(\[[\w-]+\]|\d+) \(([\d.]+) GiB\)", rest):
            out.append(({key: [value[1:-1]] if value.startswith("[") else int(value)}, float(gb)))
    return out


def _worst_gb(sc: Scenario) -> float:
    layout, schedule = step_layout(sc)
    return max(rank_memory(sc.model, layout, schedule, d).total for d in range(layout.devices)) / GiB


@pytest.mark.parametrize(
    "over,rank,advised",
    [
        ({"pipeline.schedules": ["zb1p"]}, 15, {"pipeline.schedules"}),
        ({"pipeline.pp": 8}, 0, {"pipeline.pp", "pipeline.schedules"}),
        (
            {"pipeline.schedules": ["1f1b"], "training.microbatch_sequences": 2},
            1,
            {"training.microbatch_sequences", "pipeline.pp"},  # PP32 needs 79.0 GiB of the 80
        ),
    ],
)
def test_every_advised_change_fits_when_applied(
    base: Scenario, over: dict[str, Any], rank: int, advised: set[str]
) -> None:
    sc = variant(base, over)
    message = _refusal(sc)
    match = LINE.match(message)
    assert match and int(match.group(1)) == rank
    assert float(match.group(2)) == pytest.approx(_worst_gb(sc), abs=0.05)  # the rank that needs the most
    changes = _advice(message)
    assert {key for change, _ in changes for key in change} == advised
    for change, gb in changes:
        fixed = variant(base, {**over, **change})
        assemble(fixed)  # no refusal
        assert _worst_gb(fixed) == pytest.approx(gb, abs=0.05) and gb <= 80  # GiB


def test_advice_on_balanced_layers_is_checked_balanced() -> None:
    """With ``layers_per_stage: balanced`` each change is evaluated on its own balanced split."""
    small = load_scenario(DEFAULT.parents[1] / "tests" / "data" / "sweep" / "small-step.yaml")
    over = {"training.layers_per_stage": "balanced", "training.check_memory": True, "pipeline.pp": 8}
    changes = _advice(_refusal(variant(small, over)))  # PP8 balanced needs 107 GiB
    assert changes
    for change, gb in changes:
        fixed = variant(small, {**over, **change})
        a = assemble(fixed)
        assert a.layout is not None and a.step is not None
        worst = max(rank_memory(small.model, a.layout, a.step.schedule, d).total for d in range(a.layout.devices))
        assert worst / GiB == pytest.approx(gb, abs=0.05)


def test_zb1p_is_not_advised_a_larger_pp(base: Scenario) -> None:
    """Its last rank holds PP micro-batches awaiting W: more PP, more memory (PP32 does not fit)."""
    zb = {"pipeline.schedules": ["zb1p"]}
    assert _worst_gb(variant(base, {**zb, "pipeline.pp": 32})) > _worst_gb(variant(base, zb)) > 80
    assert "pipeline.pp" not in _refusal(variant(base, zb)).split(": it fits with ")[1]


def test_nothing_fits_says_so(base: Scenario) -> None:
    layout, schedule = step_layout(base)
    with pytest.raises(ScenarioError) as info:
        check_memory(base.model, layout, schedule, replace(H800, hbm_GiB=10.0), relayout(base, layout))
    assert "no larger pipeline.pp, fewer sequences per micro-batch or other schedule fits" in info.value.message
    check_memory(base.model, layout, schedule, H800, relayout(base, layout))  # the default fits


def test_zb1p_ranks_hold_whole_and_awaiting_w_micro_batches(base: Scenario) -> None:
    """DeepSeek-V3 at PP16: W reads more than the forward saved on every stage (1.13 times on the last:
    its layers' W operands and the head's input and logits gradient; 1.86 on the first), so rank d
    peaks just after an I, holding PP-d-1 whole micro-batches and d+1 awaiting W
    (tests/theory/test_memory_table.py); 1F1B's last rank holds one whole micro-batch."""
    m = base.model
    layout, schedule = step_layout(variant(base, {"pipeline.schedules": ["zb1p"]}))
    for d in (0, 7, 15):
        whole, wgrad = stage_activations(m, layout, d), stage_wgrad_activations(m, layout, d)
        assert wgrad > whole
        assert activation_peak(m, layout, schedule, d) == pytest.approx((15 - d) * whole + (d + 1) * wgrad)
    one, sched = step_layout(variant(base, {"pipeline.schedules": ["1f1b"]}))
    assert activation_peak(m, one, sched, 15) == pytest.approx(stage_activations(m, one, 15))
