"""A sweep row's per-rank figures and their means over the ranks (sim/sweep/point.py, docs/sweeps.md).

``bubble_s``, ``bubble_ratio``, ``ep_comm_exposed_s`` and ``dp_comm_exposed_s`` are the figures of the
rank whose data-parallel phase ends the step. Which rank that is can change between neighbouring points,
and the column then moves by the difference between two ranks' figures, not by any rank's own change.
The ``_mean`` columns are means over the ranks, so they can move by no more than the largest change of
one rank's own figure: |mean(a) - mean(b)| <= max_i |a_i - b_i|.

The points: the default step at NIC 800 and 900 Gb/s, where the rank that ends the step changes (10,
then 15; measured 2026-12-06, asserted below so that the test says when it no longer shows the switch).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from sim.sweep.point import _figures
from tests.conftest import REPO

DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
PARTS = ("bubble_s", "ep_comm_exposed_s", "dp_comm_exposed_s")


def _point(nic_Gbps: int, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Any]:
    """The sweep row of the default step at ``nic_Gbps``, and the step it was computed from (one run)."""
    import sim.run

    data = yaml.safe_load(DEFAULT.read_text())
    data.setdefault("cluster", {})["nic_Gbps"] = nic_Gbps
    ran: list[Any] = []
    real = sim.run.simulate_training

    def keep(*args: Any, **kwargs: Any) -> Any:
        ran.append(real(*args, **kwargs))
        return ran[-1]

    monkeypatch.setattr(sim.run, "simulate_training", keep)
    row = _figures(data, str(DEFAULT), str(DEFAULT.parent))
    return row, ran[-1].result


def test_the_mean_columns_move_with_the_ranks_where_the_reported_ones_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    (row_a, a), (row_b, b) = _point(800, monkeypatch), _point(900, monkeypatch)
    assert a.reported_rank != b.reported_rank, "these points no longer end on different ranks: pick others"
    for r, row in ((a, row_a), (b, row_b)):
        for part in PARTS:  # the four columns: the reported rank's, and the mean of every rank's
            assert row[part] == getattr(r.ranks[r.reported_rank], part)
            assert row[part.removesuffix("_s") + "_mean_s"] == sum(getattr(x, part) for x in r.ranks) / len(r.ranks)
        assert math.isclose(row["bubble_ratio_mean"], row["bubble_mean_s"] / row["step_time_s"], rel_tol=1e-15)
    # the reported rank's bubble moves by more than any rank's own did (the switch, not the input); the
    # mean, a mean of every rank's own, cannot (|mean(a) - mean(b)| <= max |a_i - b_i|)
    own = max(abs(x.bubble_s - y.bubble_s) for x, y in zip(a.ranks, b.ranks, strict=True))
    assert abs(row_a["bubble_s"] - row_b["bubble_s"]) > 10 * own
