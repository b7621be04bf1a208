"""Each figure's changes in its own unit (sim/sweep/point.py: Metric.change): a percentage of a positive
quantity, percentage points of a ratio, the unit of a signed quantity or a part of the step; never '-0.0%'."""

from __future__ import annotations

import math

import pytest

from sim.sweep.point import ABSOLUTE, METRIC_BY_NAME, METRICS, POINTS, RELATIVE


def test_every_figure_has_a_change_unit_and_ratios_and_signed_ones_are_not_percentages() -> None:
    kinds = {m.name: m.change for m in METRICS}
    assert set(kinds.values()) == {RELATIVE, POINTS, ABSOLUTE}
    ratios = {"mfu_causal", "mfu_noncausal", "bubble_ratio", "bubble_ratio_mean"}
    assert {n for n, k in kinds.items() if k == POINTS} == ratios
    assert kinds["memory_headroom_GiB"] == ABSOLUTE  # crosses zero when a layout does not fit
    parts = ("bubble_s", "ep_comm_exposed_s", "dp_comm_exposed_s")
    for part in parts + tuple(p.removesuffix("_s") + "_mean_s" for p in parts):  # parts of the step, can be zero
        assert kinds[part] == ABSOLUTE
    for extensive in ("step_time_s", "tokens_per_day", "cost_per_T_usd", "fabric_cost_usd", "memory_peak_GiB"):
        assert kinds[extensive] == RELATIVE


@pytest.mark.parametrize(
    ("name", "base", "value", "text"),
    [
        ("step_time_s", 21.349, 20.943, "-1.9%"),
        ("bubble_ratio", 0.207, 0.092, "-11.5 pt"),  # not -55.6%
        ("mfu_causal", 0.40, 0.41, "+1.0 pt"),
        ("memory_headroom_GiB", 13.828, -122.1, "-135.928 GiB"),  # not -983%
        ("dp_comm_exposed_s", 0.0, 0.211, "+0.211 s"),  # from zero: no percentage exists
        ("step_time_s", 21.349434, 21.345, "-0.021%"),  # rounds to zero at 0.1%: two significant figures
        ("bubble_ratio", 0.2070, 0.20699, "-0.001 pt"),
        ("step_time_s", 21.349, 21.349, "unchanged"),
        ("step_time_s", 21.349, math.nan, "-"),
        ("fabric_cost_usd", 0.0, 5.0, "+5.000 USD"),  # a relative figure from zero: given absolute
    ],
)
def test_change_text(name: str, base: float, value: float, text: str) -> None:
    assert METRIC_BY_NAME[name].change_text(base, value) == text


def test_never_minus_zero() -> None:
    for m in METRICS:
        for base, value in ((1.0, 1.0 - 1e-9), (0.5, 0.5 - 1e-12), (-3.0, -3.0 - 1e-10)):
            text = m.change_text(base, value)
            assert not text.startswith(("-0.0%", "-0.0 ", "-0.000 ", "+0.0%")), (m.name, text)
