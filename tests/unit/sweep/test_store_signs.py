"""A row read back (a resumed sweep, a co-design report's or a run sweep's cache) is refused where
``twin compare`` would refuse the file it is written to: a relative figure of an ok row below zero, a
duration at zero or below (:func:`sim.sweep.point.sign_break`, the one rule for both). Before, a
results file edited to a step of -9.7 s resumed with exit 0 and kept the row, and the co-design
report printed "step time 7.979 s -> -3.000 s (-137.6%)". No step is simulated: every point is
already in the file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.code_digest import code_digest
from sim.errors import ScenarioError
from sim.sweep.point import METRICS, OK, RELATIVE, sign_break
from sim.sweep.spec import Sweep, load_sweep
from sim.sweep.store import CACHED, RESTART, Store
from tests.conftest import write_sweep


def _fill(sweep: Sweep, out: Path, **figures: float) -> None:
    """Every point of ``sweep`` in ``out`` as done (a step of 7.3 s), with ``figures`` in point 1's row."""
    store = Store(sweep, out)
    for p in sweep.points:
        row = {"point": p.index, "point_id": p.point_id, "label": "", "status": OK, "error": None}
        row |= {"step_time_s": 7.3, "twin_code": code_digest(), "twin_inputs": sweep.input_digest(p)}
        store.add(row | (figures if p.index == 1 else {}))
    store.write()
    store.release()


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    return load_sweep(write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [100, 400]}}))


@pytest.mark.parametrize(
    ("figures", "line"),
    [
        ({"step_time_s": -9.7}, "row 2: step_time_s: must be > 0 (a duration) in an ok point, got -9.7"),
        ({"step_time_s": 0.0}, "row 2: step_time_s: must be > 0 (a duration) in an ok point, got 0.0"),
        ({"cost_per_T_usd": -5.0}, "row 2: cost_per_T_usd: must be >= 0 in an ok point, got -5.0"),
        ({"tokens_per_day": -1.0}, "row 2: tokens_per_day: must be >= 0 in an ok point, got -1.0"),
    ],
)
@pytest.mark.parametrize("fix", [RESTART, CACHED])
def test_a_figure_of_the_wrong_sign_is_refused_when_read_back(
    sweep: Sweep, tmp_path: Path, figures: dict[str, float], line: str, fix: str
) -> None:
    out = tmp_path / "X.parquet"
    _fill(sweep, out, **figures)
    before = out.read_bytes()
    with pytest.raises(ScenarioError) as err:
        Store(sweep, out, fix=fix)
    assert str(err.value) == f"{out}: {line}; {fix}"
    assert out.read_bytes() == before  # refused: the file as it was


def test_signed_figures_zero_rates_and_unknowns_are_kept(sweep: Sweep, tmp_path: Path) -> None:
    """Headroom below zero (a plan that does not fit), a free GPU-hour, and NaN (unknown) are figures an
    ok point can have: read back as they were."""
    out = tmp_path / "X.parquet"
    figures = {"memory_headroom_GiB": -27.3, "cost_per_T_usd": 0.0, "tokens_per_day": math.nan}
    _fill(sweep, out, **figures)
    store = Store(sweep, out)
    store.release()
    row = store.rows[sweep.points[1].point_id]
    assert (
        row["memory_headroom_GiB"] == -27.3 and row["cost_per_T_usd"] == 0.0 and row["tokens_per_day"] is None
    )  # (NaN: unknown, read back as null)


def test_the_rule_bounds_exactly_the_relative_figures() -> None:
    """A relative figure is refused below zero (a duration at zero too); any other is never refused."""
    for m in METRICS:
        duration = m.change == RELATIVE and m.unit in ("s", "GPU-h")
        assert (sign_break(m.name, -1.0) is not None) == (m.change == RELATIVE), m.name
        assert (sign_break(m.name, 0.0) is not None) == duration, m.name
        assert sign_break(m.name, [1.0, math.nan]) is None, m.name
    assert sign_break("memory_peak_GB", -1.0) is not None  # an older file's memory, read as GiB
