"""The cost-balanced layer split: exact on synthetic costs, and what it does to the default step."""

from __future__ import annotations

import pytest

from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.model.stages import layers_per_stage
from sim.step.layer_split import LayerCosts, balanced_ranks, balanced_split, rank_positions

FLAT = ModelSpec(n_layers=12, n_dense_layers=0)


def test_equal_layers_split_evenly() -> None:
    assert balanced_split(FLAT, 4, LayerCosts(1.0, 1.0, 0.0, 0.0)) == [3, 3, 3, 3]


def test_a_heavy_last_stage_gets_fewer_layers() -> None:
    """Layers cost 1 and the head 2: the best bottleneck is 4 (e.g. [4, 4, 2] + 2 on the last)."""
    sizes = balanced_split(FLAT, 3, LayerCosts(1.0, 1.0, 0.0, 2.0))
    costs = [s + (2.0 if k == 2 else 0.0) for k, s in enumerate(sizes)]
    assert sum(sizes) == 12 and sizes[-1] <= 3
    assert max(costs) == 5  # optimal: 14 units over 3 stages need at least 5 on one
    assert sum(c * c for c in costs) == 66  # and the squares are as small as they can be (5, 5, 4)


def test_every_stage_keeps_a_layer() -> None:
    sizes = balanced_split(FLAT, 12, LayerCosts(1.0, 1.0, 0.0, 100.0))
    assert sizes == [1] * 12


def test_dualpipe_ranks_pair_mirror_positions() -> None:
    """DualPipe rank d runs positions d and PP-1-d of the two routes, so its load is their sum."""
    from sim.pipeline.schedules import build_schedule

    sched = build_schedule("dualpipe", 8, 16)
    positions = rank_positions(sched.routes, sched.stage_device)
    assert sorted(positions[0]) == [0, 7] and sorted(positions[3]) == [3, 4]


def test_rank_balancing_never_worsens_the_start() -> None:
    from sim.pipeline.schedules import build_schedule

    sched = build_schedule("dualpipe", 16, 32)
    positions = rank_positions(sched.routes, sched.stage_device)
    costs = LayerCosts(dense=0.02, moe=0.031, first=0.001, last=0.1)
    even = layers_per_stage(DEEPSEEK_V3.n_layers, 16)

    def busiest(sizes: list[int]) -> float:
        bounds = [0]
        for n in sizes:
            bounds.append(bounds[-1] + n)
        stage = [
            sum(costs.layer(DEEPSEEK_V3, i) for i in range(bounds[k], bounds[k + 1]))
            + (costs.first if k == 0 else 0)
            + (costs.last if k == 15 else 0)
            for k in range(16)
        ]
        return max(sum(stage[p] for p in pos) for pos in positions)

    best = balanced_ranks(DEEPSEEK_V3, positions, 16, costs, [even])
    assert sum(best) == 61 and min(best) >= 1
    assert busiest(best) < busiest(even)
    assert busiest(best) == pytest.approx(min(busiest(best), busiest(even)))


def test_ties_go_to_the_same_split_whatever_the_rounding() -> None:
    """Splits DualPipe's mirrored ranks cannot tell apart (a layer moved between stages 0 and 15, which
    rank 0 holds both) cost the same up to rounding; costs nudged by a few ulps either way, as another
    CPU's vector sums nudge the chunk model's, must pick the same split, the one nearest the even one."""
    from sim.pipeline.schedules import build_schedule

    sched = build_schedule("dualpipe", 16, 32)
    positions = rank_positions(sched.routes, sched.stage_device)
    even = layers_per_stage(DEEPSEEK_V3.n_layers, 16)
    base = LayerCosts(dense=0.02719340353669145, moe=0.03172618401374845, first=0.000117080906, last=0.1131417179)
    picks = set()
    for ulps in (-3, -1, 0, 1, 3):
        nudged = LayerCosts(*(x * (1 + ulps * 2.2e-16) for x in (base.dense, base.moe, base.first, base.last)))
        start = [even, balanced_split(DEEPSEEK_V3, 16, nudged)]
        picks.add(tuple(balanced_ranks(DEEPSEEK_V3, positions, 16, nudged, start)))
    assert len(picks) == 1
    (pick,) = picks
    assert pick[0] == even[0] and sum(pick) == DEEPSEEK_V3.n_layers  # the tie [4, ..., 1] moved more layers
