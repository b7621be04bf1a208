"""A layer-to-stage split balanced by predicted cost (``training.layers_per_stage: balanced``).

DeepSeek-V3's layer map is not published; the default splits the layers as evenly as possible
(:mod:`sim.model.stages`). This policy instead balances the stages' predicted work, as an engineer
placing an unevenly heavy model would: each layer kind and each stage extra is costed once by the
chunk model with the scenario's own profile, SMs and network (an F&B pair of a one-layer stage with
itself, the unit DualPipe runs in steady state), and the split along a route minimises the most
expensive stage (then the sum of squared stage costs), with every stage non-empty and the MTP block
fixed on the last stage:

* ``dense``, ``moe``: a pair of one dense / one MoE layer;
* ``first``: a pair of [dense layer, embedding] minus ``dense``;
* ``last``: a pair of [MoE layer, MTP block, output heads] minus ``moe``.

The objective is the pipeline ranks' load: a rank runs every stage it holds (DualPipe's rank ``d``
holds the stages at positions ``d`` and ``PP-1-d`` of the two routes), so the split minimises the
busiest rank's summed stage costs, then the sum of their squares. It starts from the even split and
from the split that minimises the costliest stage (exact dynamic programming), then moves one layer
at a time across a stage boundary while that improves the objective.

Ties. DualPipe's mirrored positions make many splits cost exactly the same (moving a layer between
stages ``d`` and ``PP-1-d``, which one rank holds, changes no rank's load; so do swaps of layers of one
kind). Their objectives then differ only by the rounding of the sums, which follows the last bits of
the chunk model's costs, and those follow the CPU's vector instructions (numpy's sums): left to
rounding, two machines picked different splits of the default step (170.4K vs 170.8K GPU-hours per
trillion tokens). So objectives are compared at :data:`TIE_DIGITS` significant digits, far above
rounding and far below any real difference, and a tie goes to the split that moves the fewest layers
from the first start (the even split: the least change to the default), then to the
lexicographically smallest.

Costs are additive estimates (the pair of a many-layer stage overlaps a little better); the split is a
policy, not a fit: nothing here looks at a published step time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.errors import ScenarioError
from sim.model.spec import ModelSpec
from sim.step.layout import StagePlacement

TIE_DIGITS = 12  # significant digits objectives are compared at (rounding noise sits near 1e-16)


@dataclass(frozen=True)
class LayerCosts:
    dense: float
    moe: float
    first: float  # the embedding's extra cost on the first stage
    last: float  # the MTP block and output heads on the last stage

    def layer(self, model: ModelSpec, index: int) -> float:
        return self.moe if model.is_moe(index) else self.dense


def layer_costs(model: ModelSpec, pair_time: Callable[[StagePlacement], float]) -> LayerCosts:
    """Per-kind costs from ``pair_time`` (seconds of an F&B pair of a stage with itself)."""
    dense_layer = 0 if model.n_dense_layers > 0 else None
    moe_layer = model.n_dense_layers if model.n_dense_layers < model.n_layers else None
    mtp = tuple(range(model.n_layers, model.n_layers + model.mtp_depth))
    moe = pair_time(StagePlacement((moe_layer,), False, False)) if moe_layer is not None else 0.0
    dense = pair_time(StagePlacement((dense_layer,), False, False)) if dense_layer is not None else moe
    first_layer = 0
    first = pair_time(StagePlacement((first_layer,), True, False)) - (dense if dense_layer == 0 else moe)
    last_layer = model.n_layers - 1
    base = moe if model.is_moe(last_layer) else dense
    last = pair_time(StagePlacement((last_layer, *mtp), False, True)) - base
    return LayerCosts(dense, moe, max(0.0, first), max(0.0, last))


def balanced_split(model: ModelSpec, stages: int, costs: LayerCosts) -> list[int]:
    """Layers per stage (first to last) minimising the costliest stage, then the sum of squares."""
    n = model.n_layers
    if stages > n:
        raise ScenarioError("pipeline.pp", f"{stages} stages is more stages than the model's {n} layers")
    prefix = [0.0]
    for i in range(n):
        prefix.append(prefix[-1] + costs.layer(model, i))

    def cost(a: int, b: int, k: int) -> float:  # layers a..b-1 as stage k
        c = prefix[b] - prefix[a]
        if k == 0:
            c += costs.first
        if k == stages - 1:
            c += costs.last
        return c

    def solve(limit: float | None) -> tuple[list[list[float]], list[list[int]]]:
        """best[k][j]: layers 0..j-1 in stages 0..k, minimising the costliest stage (``limit`` None)
        or the sum of squared stage costs with every stage within ``limit``."""
        inf = float("inf")
        best = [[inf] * (n + 1) for _ in range(stages)]
        cut = [[0] * (n + 1) for _ in range(stages)]
        for j in range(1, n + 1):
            c = cost(0, j, 0)
            if limit is None:
                best[0][j] = c
            elif c <= limit:
                best[0][j] = c * c
        for k in range(1, stages):
            for j in range(k + 1, n + 1):
                for i in range(k, j):
                    prev = best[k - 1][i]
                    if prev == inf:
                        continue
                    c = cost(i, j, k)
                    if limit is None:
                        cand = max(prev, c)
                    elif c <= limit:
                        cand = prev + c * c
                    else:
                        continue
                    if _tied(cand) < _tied(best[k][j]):  # ties: the first cut found (noise-proof)
                        best[k][j], cut[k][j] = cand, i
        return best, cut

    top, _ = solve(None)
    _, cut = solve(top[stages - 1][n] * (1 + 1e-9))
    sizes = []
    j = n
    for k in range(stages - 1, 0, -1):
        i = cut[k][j]
        sizes.append(j - i)
        j = i
    sizes.append(j)
    return sizes[::-1]


def rank_positions(schedule_routes: tuple[tuple[int, ...], ...], stage_device: tuple[int, ...]) -> list[list[int]]:
    """For each rank, the route positions of the stages it holds (every route split alike)."""
    devices = max(stage_device) + 1
    out: list[list[int]] = [[] for _ in range(devices)]
    for route in schedule_routes:
        for pos, stage in enumerate(route):
            out[stage_device[stage]].append(pos)
    return out


def balanced_ranks(
    model: ModelSpec, positions: list[list[int]], stages: int, costs: LayerCosts, start: list[list[int]]
) -> list[int]:
    """Layers per stage minimising (busiest rank's load, sum of squared rank loads), by single-layer
    moves across stage boundaries from each split in ``start``."""

    reference = start[0]

    def objective(sizes: list[int]) -> tuple[float, float, int, tuple[int, ...]]:
        bounds = [0]
        for n in sizes:
            bounds.append(bounds[-1] + n)
        stage_cost = []
        for k in range(stages):
            c = sum(costs.layer(model, i) for i in range(bounds[k], bounds[k + 1]))
            c += costs.first if k == 0 else 0.0
            c += costs.last if k == stages - 1 else 0.0
            stage_cost.append(c)
        loads = [sum(stage_cost[p] for p in pos) for pos in positions]
        moved = sum(abs(a - b) for a, b in zip(sizes, reference, strict=True))
        return _tied(max(loads)), _tied(sum(x * x for x in loads)), moved, tuple(sizes)

    best_sizes, best = list(start[0]), objective(start[0])
    for first in start:
        sizes, value = list(first), objective(first)
        for _ in range(10 * model.n_layers):
            moves = []
            for k in range(stages - 1):
                for delta in (1, -1):  # one layer from stage k+1 to k, or from k to k+1
                    cand = list(sizes)
                    cand[k] += delta
                    cand[k + 1] -= delta
                    if min(cand[k], cand[k + 1]) >= 1:
                        moves.append((objective(cand), cand))
            if not moves:
                break
            top = min(moves, key=lambda m: m[0])
            if top[0] >= value:
                break
            value, sizes = top
        if value < best:
            best, best_sizes = value, sizes
    return best_sizes


def _tied(x: float) -> float:
    """``x`` at :data:`TIE_DIGITS` significant digits: values equal up to rounding compare equal."""
    return float(f"{x:.{TIE_DIGITS}g}")
