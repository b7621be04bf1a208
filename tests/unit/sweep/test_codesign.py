"""Co-design study files: expansion into one sweep, errors naming the study, headlines and findings.
(The report's figures against direct runs of the same what-ifs: tests/integration/sweep/test_codesign.py.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from reports.codesign_report import figure_caption, findings, headline, moved, study_figure, study_table
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.experiments.codesign import BASE_LABEL, Study, Variant, is_codesign, load_codesign
from sim.sweep.point import METRIC_BY_NAME

ROOT = Path(__file__).resolve().parents[3]
SMALL = ROOT / "tests" / "data" / "sweep" / "small-step.yaml"


def _file(folder: Path, studies: list[dict], name: str = "cd.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"name": "tiny", "base": str(SMALL), "studies": studies}, sort_keys=False))
    return path


def test_shipped_study_file_and_what_if_scenarios_load() -> None:
    spec = load_codesign(ROOT / "scenarios" / "codesign.yaml")
    keys = [s.key for s in spec.studies]
    assert keys == [
        "coprocessor",
        "compute",
        "in-network",
        "scale-up",
        "ib-2x",
        "nvlink-900",
        "node-limit",
        "node-limit-random",
        "fabric",
        "oversubscription",
        "schedules",
        "comm-sms",
    ]
    node = next(s for s in spec.studies if s.key == "node-limit")
    assert [v.label for v in node.variants] == [BASE_LABEL] + [f"M={m}" for m in (1, 2, 3, 5, 6, 7, 8)]
    drawn = next(s for s in spec.studies if s.key == "node-limit-random")  # its M = 4 row is not the base's
    assert [v.overrides for v in drawn.variants[1:]] == [
        {"workload.routing": "random", "model.n_limited_groups": m} for m in (2, 4, 8)
    ]
    sched = next(s for s in spec.studies if s.key == "schedules")
    assert len(sched.variants) == 1 + 4 * 3
    assert spec.sweep.points[0].overrides == {}
    assert len({p.point_id for p in spec.sweep.points}) == len(spec.sweep.points)
    for path in sorted((ROOT / "scenarios" / "codesign").glob("*.yaml")):
        sc = load_scenario(path)
        assert sc.training is not None, path
    cop = next(s for s in spec.studies if s.key == "coprocessor").variants[1]
    assert cop.overrides == {"comm.coprocessor": True}  # read from scenarios/codesign/coprocessor.yaml
    assert is_codesign(ROOT / "scenarios" / "codesign.yaml")
    assert not is_codesign(ROOT / "scenarios" / "deepseek_v3_pretrain.yaml")


@pytest.mark.parametrize(
    ("studies", "needle"),
    [
        ([{"key": "a", "grid": {"comm.sms": ["x"]}}], "studies[0].grid.comm.sms"),
        ([{"key": "a", "variants": [{"set": {"comm.smz": 1}}]}], "studies[0].variants[0].set.comm.smz: 1: unknown key"),
        ([{"key": "a"}], "studies[0]: a study needs variants and/or a grid"),
        ([{"key": "a", "grid": {"comm.sms": [12]}}, {"key": "a", "grid": {"comm.sms": [16]}}], "studies[1].key"),
        ([{"key": "a", "metrics": ["speed"], "grid": {"comm.sms": [12]}}], "unknown figure 'speed'"),
        ([{"key": "a", "variants": [{"scenario": "nope.yaml"}]}], "nope.yaml"),
        ([{"key": "a", "variants": [{"lable": "x"}]}], "studies[0].variants[0].lable: unknown key"),
        (
            [{"key": "a", "variants": [{"set": {"comm.sms": float("nan")}}]}],
            "studies[0].variants[0].set.comm.sms: .nan is not",
        ),
        (
            [{"key": "a", "variants": [{"set": {"comm sms": 1}}]}],
            "cd.yaml: studies[0].variants[0].set: an override key",
        ),
        ([{"key": "a", "label": "M={model.n_limited_group}", "grid": {"model.n_limited_groups": [1]}}], "not a key"),
        # the key names the study's figure file: report crashed after validate passed
        ([{"key": "IB-2x", "grid": {"comm.sms": [12]}}], "studies[0].key: 'IB-2x': give lower-case letters"),
        # a serving figure of training steps: a table of '-' and "no figure moved"
        (
            [{"key": "a", "metrics": ["ttft_p99_s"], "grid": {"comm.sms": [12]}}],
            "studies[0].metrics: ttft_p99_s: a serving figure; the base is a training step, which has none",
        ),
        # labels and variants that were ignored or told nothing apart
        (
            [{"key": "a", "label": "SMs={comm.sms}", "variants": [{"set": {"comm.sms": 16}}]}],
            "studies[0].label: a label template names the grid's keys; this study has no grid",
        ),
        ([{"key": "a", "label": "fixed", "grid": {"comm.sms": [16, 24]}}], "studies[0].label: 'fixed' is the label"),
        (
            [{"key": "a", "variants": [{"label": "x", "set": {"comm.sms": 16}}, {"set": {}}]}],
            "studies[0].variants[1].set: sets nothing",
        ),
        (
            [
                {
                    "key": "a",
                    "variants": [{"label": "A", "set": {"comm.sms": 16}}, {"label": "B", "set": {"comm.sms": 16}}],
                }
            ],
            "studies[0].variants[1].set: runs the same scenario as studies[0].variants[0].set",
        ),
        (
            [
                {
                    "key": "a",
                    "variants": [{"label": "v", "set": {"comm.sms": 16}}, {"label": "v", "set": {"comm.sms": 24}}],
                }
            ],
            "studies[0].variants[1].label: 'v' is the label of studies[0].variants[0] too",
        ),
    ],
)
def test_bad_study_files_name_the_place(tmp_path: Path, studies: list[dict], needle: str) -> None:
    path = _file(tmp_path, studies)
    with pytest.raises(ScenarioError) as e:
        load_codesign(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_errors_count_studies_and_variants_from_0_as_the_file_addresses_them(tmp_path: Path) -> None:
    """One line, the key path of the bad key: ``studies[1].variants[1].set.<key>``, both lists 0-based
    (as in every error, a sweep's ``points[i]`` too); a study's grid does not shift its variants' indices."""
    ok = {"key": "a", "variants": [{"set": {"comm.sms": 12}}]}
    cases = [
        (
            {
                "key": "b",
                "grid": {"comm.sms": [8, 16]},
                "variants": [{"set": {"comm.sms": 20}}, {"set": {"comm.smz": 1}}],
            },
            "cd.yaml: studies[1].variants[1].set.comm.smz: 1: unknown key",
        ),
        (
            {"key": "b", "variants": [{"set": {"comm.sms": 20}}, {"set": {"comm.sms": float("inf")}}]},
            "cd.yaml: studies[1].variants[1].set.comm.sms: .inf is not a finite number",
        ),
        ({"key": "b", "grid": {"comm.smz": [8]}}, "cd.yaml: studies[1].grid.comm.smz: 8: unknown key"),
    ]
    for study, needle in cases:
        with pytest.raises(ScenarioError) as e:
            load_codesign(_file(tmp_path, [ok, study]))
        assert needle in str(e.value) and "variant 2" not in str(e.value) and "\n" not in str(e.value)


def test_headline_prefers_variants_that_fit_in_memory() -> None:
    study = Study("s", "S", "", ("step_time_s",), (Variant("base", {}, 0), Variant("a", {}, 1), Variant("b", {}, 2)))
    frame = pd.DataFrame(
        {
            "point": [0, 1, 2],
            "status": ["ok"] * 3,
            "error": [""] * 3,
            "step_time_s": [20.0, 18.0, 19.0],
            "memory_peak_GiB": [60.0, 95.0, 70.0],
            "memory_capacity_GiB": [80.0] * 3,
            "memory_headroom_GiB": [20.0, -15.0, 10.0],
        }
    )
    name, change, spread = headline(study, frame)
    assert name == "b (a is faster, -10.0%, but needs 95.0 GiB of 80)"
    assert (change, spread) == ("-5.0%", "-10.0% to -5.0%")
    lines = findings(study, frame)
    assert "needs 95.0 GiB per GPU, over the 80 GiB" in lines[0] and "needs" not in lines[1]


def test_a_scenario_variant_brings_its_whole_chain_and_must_reach_the_study_base(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"base: {SMALL}\nset: {{comm.sms: 12}}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nset: {cluster.nic_Gbps: 800}\n")
    spec = load_codesign(_file(tmp_path, [{"key": "a", "variants": [{"scenario": "b.yaml"}]}]))
    assert spec.studies[0].variants[1].overrides == {"comm.sms": 12, "cluster.nic_Gbps": 800}
    other = ROOT / "scenarios" / "deepseek_v3_pretrain.yaml"
    (tmp_path / "c.yaml").write_text(f"base: {other}\nset: {{comm.sms: 12}}\n")
    with pytest.raises(ScenarioError, match="does not derive from the study's base"):
        load_codesign(_file(tmp_path, [{"key": "a", "variants": [{"scenario": "c.yaml"}]}]))
    # a derived scenario that sets nothing was dropped from its study without a word, as an empty set was
    (tmp_path / "d.yaml").write_text(f"base: {SMALL}\nset: {{}}\n")
    with pytest.raises(
        ScenarioError, match=r"studies\[0\]\.variants\[0\]\.scenario: its derived scenario sets nothing"
    ):
        load_codesign(_file(tmp_path, [{"key": "a", "variants": [{"scenario": "d.yaml"}]}]))


def test_cost_with_and_without_the_upgrade_price_and_the_not_modelled_flag() -> None:
    study = Study(
        "s",
        "S",
        "",
        ("step_time_s", "cost_per_T_usd"),
        (Variant("base", {}, 0), Variant("ib", {}, 1), Variant("co", {}, 2)),
    )
    note = "hardware cost not modelled: co-processor: no price"
    frame = pd.DataFrame(
        {
            "point": [0, 1, 2],
            "status": ["ok"] * 3,
            "error": [None] * 3,
            "step_time_s": [20.0, 19.0, 18.0],
            "cost_per_T_usd": [400e3, 420e3, float("nan")],
            "cost_per_T_base_prices_usd": [400e3, 380e3, 360e3],
            "cost_note": [None, None, note],
        }
    )
    headers, rows = study_table(study, frame)
    assert headers[3:6:2] == [METRIC_BY_NAME[m].label for m in ("cost_per_T_usd", "cost_per_T_base_prices_usd")]
    assert rows[1][3:7] == ["420.0 K$/T", "+5.0%", "380.0 K$/T", "-5.0%"]
    assert rows[2][3:6] == ["hardware cost not modelled", "", "360.0 K$/T"]
    lines = findings(study, frame)
    assert note in lines[1] and "not modelled" not in lines[0]
    assert "cost_per_T_usd" in moved(study, frame)[0]  # 'ib' moves it ('co': a bar saying not modelled)
    flat = frame.assign(cost_per_T_usd=[400e3, 400e3, float("nan")])
    assert moved(study, flat)[2] == ["cost_per_T_usd"]  # not modelled for 'co', the same for 'ib': not charted
    assert "Not charted, hardware cost not modelled for some variant: cost per trillion tokens, hardware" in (
        figure_caption(study, flat)
    )
    same = frame.assign(cost_per_T_usd=frame["cost_per_T_base_prices_usd"], cost_note=[None] * 3)
    assert len(study_table(study, same)[0]) == 5  # every price the base's: one cost column


def _study(metrics: tuple[str, ...], n: int) -> Study:
    return Study("s", "S", "", metrics, tuple(Variant("base" if i == 0 else f"v{i}", {}, i) for i in range(n)))


def test_the_summary_compares_every_variant_with_the_base_and_says_when_none_beats_it() -> None:
    study = _study(("step_time_s",), 3)
    frame = pd.DataFrame(
        {"point": [0, 1, 2], "status": ["ok"] * 3, "error": [None] * 3, "step_time_s": [20.0, 20.2, 21.0]}
    )
    assert headline(study, frame) == ("none beats the base (closest: v1)", "+1.0%", "+1.0% to +5.0%")
    frame.loc[1, "step_time_s"] = 20.0
    assert headline(study, frame)[0] == "none beats the base (best: v1, the same step)"
    frame.loc[1, "step_time_s"] = 19.0
    assert headline(study, frame)[:2] == ("v1", "-5.0%")
    named = Study("s", "S", "", ("step_time_s",), study.variants, {"comm.sms": 20})
    assert named.base_label == f"{BASE_LABEL}: sms=20"
    assert study_table(named, frame)[1][0][0] == f"{BASE_LABEL}: sms=20"


def test_a_dollar_in_a_study_title_or_a_variant_label_is_drawn_as_written() -> None:
    """A study's title and its variants' labels are the user's strings: a ``$`` is not mathtext
    (``a$\\q$b`` raised a matplotlib ParseException when the chart was drawn)."""
    variants = (Variant("base", {}, 0), Variant("a$\\q$b", {}, 1))
    study = Study("s", "cost in $ and a$\\q$b", "", ("step_time_s",), variants)
    frame = pd.DataFrame({"point": [0, 1], "status": ["ok"] * 2, "error": [None] * 2, "step_time_s": [20.0, 21.0]})
    fig = study_figure(study, frame)
    assert fig is not None
    fig.canvas.draw()  # mathtext would be parsed (and fail) here
    assert fig.texts[0].get_text() == "cost in \\$ and a\\$\\q\\$b"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a\\$\\q\\$b"]  # (the variants, not the base)


def test_the_chart_has_every_figure_that_moved_names_the_rest_and_shows_a_one_percent_change() -> None:
    metrics = ("step_time_s", "tokens_per_day", "fabric_cost_usd", "bubble_ratio", "memory_headroom_GiB")
    study = _study(metrics, 3)
    frame = pd.DataFrame(
        {
            "point": [0, 1, 2],
            "status": ["ok"] * 3,
            "error": [None] * 3,
            "step_time_s": [20.0, 20.2, 20.0],  # +1%
            "tokens_per_day": [1e11] * 3,  # unchanged
            "fabric_cost_usd": [9e6, 9e6, 72e6],  # +700%
            "bubble_ratio": [0.2, 0.1, 0.2],
            "memory_headroom_GiB": [10.0, -5.0, 10.0],
            "memory_capacity_GiB": [80.0] * 3,
        }
    )
    changed, same, unknown = moved(study, frame)
    assert changed == ["step_time_s", "fabric_cost_usd", "bubble_ratio", "memory_headroom_GiB"]
    assert same == ["tokens_per_day"] and unknown == []
    assert "Unchanged in every variant: tokens per day." in figure_caption(study, frame)
    fig = study_figure(study, frame)
    assert fig is not None
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel().split(":")[0] for ax in axes] == [METRIC_BY_NAME[m].label for m in changed]
    assert "(pt)" in axes[2].get_xlabel() and "(GiB)" in axes[3].get_xlabel() and "(%)" in axes[0].get_xlabel()
    fig.canvas.draw()
    for ax in axes[:2]:  # +1% step time; the fabric panel: +0% and +700%
        bars = [p for p in ax.patches if p.get_width() != 0]
        widths = [ax.transData.transform((p.get_width(), 0))[0] - ax.transData.transform((0, 0))[0] for p in bars]
        assert min(abs(w) for w in widths) / ax.bbox.width > 0.05  # every non-zero change is a visible bar
    assert axes[1].get_xscale() == "linear"  # one non-zero change: nothing to compress
    frame.loc[2, "step_time_s"] = 40.0  # +1% and +100%: over 20 times apart, a symmetric log axis
    fig = study_figure(study, frame)
    assert fig is not None
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xscale() == "symlog"
    one = ax.transData.transform((1.0, 0))[0] - ax.transData.transform((0, 0))[0]
    assert one / ax.bbox.width > 0.05
    unchanged = frame.assign(step_time_s=20.0, fabric_cost_usd=9e6, bubble_ratio=0.2, memory_headroom_GiB=10.0)
    assert study_figure(study, unchanged) is None  # nothing moved: no chart, the report says so


def test_the_serving_figures_are_those_a_serving_point_has() -> None:
    """SERVE_METRICS (what a co-design study of a training base refuses) are the serving point's figures."""
    import inspect

    from sim.sweep import point

    source = inspect.getsource(point._serve_figures)
    assert {m.name for m in point.METRICS if f'"{m.name}"' in source} == point.SERVE_METRICS
