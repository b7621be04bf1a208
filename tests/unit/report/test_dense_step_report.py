"""A dense model's step report says nothing that only holds for DeepSeek-V3: no comparison with
DeepSeek-V3's published GPU-hours, no experts in its layout (no routing, no expert DP), no SM split
to vary."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.step_report import compares_with_published, layout_text, summary_rows
from sim.cli import main
from sim.config import default_scenario_path, load_scenario
from sim.experiments.study import sm_study
from sim.run import simulate_training

ROOT = Path(__file__).resolve().parents[3]


def test_a_dense_step_is_not_compared_with_deepseek_v3() -> None:
    sc = load_scenario(ROOT / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml")
    run = simulate_training(sc)
    assert not compares_with_published(run)
    rows = dict(summary_rows(run))
    assert "DeepSeek-V3" not in rows["GPU-hours per trillion tokens"]
    text = layout_text(run)
    assert "a dense model: no experts" in text and "replicas of each expert" not in text
    assert sm_study(run) == ()  # no DeepEP kernel holds SMs: no variant run


def test_deepseek_v3_is_compared_with_its_published_figure() -> None:
    run = simulate_training(load_scenario(default_scenario_path()))
    assert compares_with_published(run)
    assert "DeepSeek-V3 published: 180.0 K" in dict(summary_rows(run))["GPU-hours per trillion tokens"]


def test_a_dense_report_describes_its_own_layout(tmp_path: Path) -> None:
    """No routing line and no expert DP in a dense model's report (``twin report``, Markdown and
    HTML): its layout says what its ZeRO-1 shards, over which DP group."""
    with pytest.raises(SystemExit) as info:
        main(["report", str(ROOT / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"), "-o", str(tmp_path), "-q"])
    assert info.value.code == 0
    folder = next(tmp_path.iterdir())
    for name in ("report.md", "report.html"):
        text = (folder / name).read_text()
        for moe_only in ("routing", "expert DP", "replicas of each expert", "expert's replicas", "MoE layer"):
            assert moe_only not in text, (name, moe_only)
    md = (folder / "report.md").read_text()
    assert "ZeRO-1 shards every weight's optimizer state" in md and "(rank 0's: ranks 0, DP 16), 1/16 on each GPU" in md


def test_a_moe_layout_still_names_its_routing_and_expert_dp() -> None:
    text = layout_text(simulate_training(load_scenario(default_scenario_path())))
    assert "routing: balanced" in text and "expert DP 4" in text and "2 replicas of each expert" in text
