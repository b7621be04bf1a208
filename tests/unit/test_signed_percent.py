"""A relative change printed as a signed percentage (``sim.number_text.signed_percent``)."""

from __future__ import annotations

import pytest

from sim.number_text import signed_percent


@pytest.mark.parametrize(
    ("change", "decimals", "text"),
    [
        (0.04, 0, "+4%"),
        (-0.291, 0, "-29%"),
        (-0.002, 0, "-0.2%"),  # 50.9 against 51: it read -0%
        (0.0004, 0, "+0.04%"),
        (-0.00004, 1, "-0.004%"),
        (0.0, 0, "+0%"),  # no change
        (51.00000000000001 / 51 - 1, 0, "+0.000%"),  # float noise, not scientific notation
        (-1e-9, 0, "+0.000%"),
        (0.057, 1, "+5.7%"),
    ],
)
def test_a_change_that_rounds_to_nothing_keeps_its_first_digit(change: float, decimals: int, text: str) -> None:
    assert signed_percent(change, decimals) == text
