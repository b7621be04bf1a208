"""A dense model's step report says nothing that only holds for DeepSeek-V3: no comparison with
DeepSeek-V3's published GPU-hours, no experts in its layout, no SM split to vary."""

from __future__ import annotations

from pathlib import Path

from reports.step_report import compares_with_published, layout_text, summary_rows
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
