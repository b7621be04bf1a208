"""Node-limited selection, gating generators and aux-loss-free balancing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ScenarioError
from sim.moe.balance import run_balancing, update_bias
from sim.moe.gating import GATES, load_choices, popularity, replay, skewed_scores
from sim.moe.select import select_experts, select_experts_reference
from sim.moe.spec import MoESpec

V3 = MoESpec()


@pytest.mark.parametrize("gate", sorted(GATES))
def test_selection_invariants(gate: str) -> None:
    rng = np.random.default_rng(0)
    choices = select_experts(GATES[gate](2048, V3, rng), V3)
    assert choices.shape == (2048, 8)
    assert all(len(set(row)) == 8 for row in choices.tolist())  # exactly K distinct experts
    nodes = choices // V3.experts_per_group
    assert max(len(set(row)) for row in nodes.tolist()) <= V3.node_limit  # at most M nodes


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_selection_equals_brute_force(data: st.DataObject) -> None:
    gpn = data.draw(st.sampled_from([2, 4]))
    nodes = data.draw(st.integers(1, 4))
    ep = gpn * nodes
    experts = ep * data.draw(st.integers(1, 3))
    limit = data.draw(st.integers(1, nodes))
    per = data.draw(st.integers(1, max(1, experts // nodes)))
    topk = min(per * limit, experts)
    spec = MoESpec(experts=experts, topk=topk, node_limit=limit, ep=ep, gpus_per_node=gpn)
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    scores = rng.random((50, experts)).astype(np.float32)
    bias = rng.normal(0, 0.05, experts).astype(np.float32)
    assert np.array_equal(select_experts(scores, spec, bias), select_experts_reference(scores, spec, bias))


def test_kept_groups_are_the_best_by_top2_sum() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((300, 256)).astype(np.float32)
    choices = select_experts(scores, V3)
    grouped = scores.reshape(300, 8, 32)
    group_score = np.sort(grouped, axis=2)[:, :, -2:].sum(axis=2)
    best4 = np.argsort(-group_score, axis=1)[:, :4]
    for row, kept in zip(choices // 32, best4, strict=True):
        assert set(row.tolist()) <= set(kept.tolist())


def test_node_limit_equal_to_node_count_is_plain_topk() -> None:
    spec = MoESpec(node_limit=8)
    scores = np.random.default_rng(2).random((200, 256)).astype(np.float32)
    plain = np.sort(np.argsort(-scores, axis=1)[:, :8], axis=1)
    assert np.array_equal(select_experts(scores, spec), plain)


def test_balanced_gives_exactly_equal_loads() -> None:
    uneven = tuple(MoESpec(node_limit=m) for m in (3, 5, 6, 7))  # M not dividing topk: 3+3+2 picks ...
    for spec in (V3, MoESpec(ep=16), MoESpec(ep=8), MoESpec(node_limit=1), *uneven):
        tokens = spec.groups * spec.experts_per_group * 3
        choices = select_experts(GATES["balanced"](tokens, spec, np.random.default_rng(0)), spec)
        load = np.bincount(choices.ravel(), minlength=spec.experts)
        assert load.min() == load.max() == tokens * spec.topk // spec.experts


def test_same_seed_same_choices() -> None:
    a = select_experts(GATES["random"](500, V3, np.random.default_rng(5)), V3)
    b = select_experts(GATES["random"](500, V3, np.random.default_rng(5)), V3)
    c = select_experts(GATES["random"](500, V3, np.random.default_rng(6)), V3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_replay_reproduces_a_recorded_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    table = select_experts(GATES["random"](64, V3, rng), V3)
    frame = pd.DataFrame(table, columns=[f"e{i}" for i in range(8)])
    for path in (tmp_path / "r.csv", tmp_path / "r.parquet"):
        frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
        again = select_experts(replay(path, 128, V3), V3)
        assert np.array_equal(again[:64], table) and np.array_equal(again[64:], table)
    frame.drop(columns="e7").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ScenarioError, match="e7: routing table needs columns"):
        replay(tmp_path / "bad.csv", 10, V3)


def test_replay_routes_the_table_as_recorded_and_refuses_impossible_rows(tmp_path: Path) -> None:
    from sim.moe.alltoall import route_choices, route_layers
    from sim.moe.gating import Gating

    table = select_experts(GATES["random"](100, V3, np.random.default_rng(4)), V3)
    shuffled = np.random.default_rng(5).permuted(table, axis=1)  # order inside a row does not matter
    path = tmp_path / "log.csv"
    pd.DataFrame(shuffled, columns=[f"e{i}" for i in range(8)]).to_csv(path, index=False)
    gating = Gating("replay", table=path)
    assert np.array_equal(route_choices(V3, 250, gating, np.random.default_rng(0)), np.resize(table, (250, 8)))
    assert len(route_layers(V3, 8, 3, gating, seed=0)) == 3  # read once, replayed for every layer
    bad = shuffled.copy()
    bad[7, 1] = bad[7, 0]  # the same expert twice
    pd.DataFrame(bad, columns=[f"e{i}" for i in range(8)]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ScenarioError, match=r"dup\.csv: row 7: a token's 8 experts must be distinct"):
        route_choices(V3, 10, Gating("replay", table=tmp_path / "dup.csv"), np.random.default_rng(0))
    wide = shuffled.copy()
    wide[3] = np.arange(8) * 32  # one expert on each of the 8 nodes
    pd.DataFrame(wide, columns=[f"e{i}" for i in range(8)]).to_csv(tmp_path / "wide.csv", index=False)
    with pytest.raises(ScenarioError, match="row 3: the token reaches 8 nodes, node_limit is 4"):
        route_choices(V3, 10, Gating("replay", table=tmp_path / "wide.csv"), np.random.default_rng(0))
    assert route_choices(
        MoESpec(node_limit=8), 4, Gating("replay", table=tmp_path / "wide.csv"), np.random.default_rng(0)
    )[3].tolist() == [
        0,
        32,
        64,
        96,
        128,
        160,
        192,
        224,
    ]
    with pytest.raises(ScenarioError, match="no such routing table"):
        route_choices(V3, 10, Gating("replay", table=tmp_path / "nope.csv"), np.random.default_rng(0))


def test_bias_update_and_convergence() -> None:
    assert update_bias(np.zeros(3), np.array([1.0, 2.0, 6.0]), 0.5).tolist() == [0.5, 0.5, -0.5]
    pop = popularity(V3, np.random.default_rng(0), alpha=1.0)
    trace = run_balancing(lambda s: skewed_scores(4096, V3, np.random.default_rng(100 + s), pop), V3, 60, 1e-2)
    assert trace.max_over_mean[0] > 10
    assert trace.max_over_mean[-10:].mean() < 2.5


def test_spec_errors() -> None:
    with pytest.raises(ScenarioError, match="experts"):
        MoESpec(experts=250)
    with pytest.raises(ScenarioError, match="exceeds the experts of 2 groups"):
        MoESpec(topk=80, node_limit=2)


def test_a_node_limit_of_topk_or_more_is_no_limit() -> None:
    """``n_limited_groups >= topk`` is no limit (the model key's documented meaning): top-2 with a node
    limit of 4 keeps every group and picks the plain top-2 (it used to be refused: "topk must be at
    least node_limit")."""
    spec = MoESpec(topk=2, node_limit=4)
    assert spec.limit == spec.groups == 8
    scores = np.random.default_rng(0).random((500, spec.experts))
    plain = np.sort(np.argsort(-scores, axis=1)[:, :2], axis=1)
    assert np.array_equal(np.sort(select_experts(scores, spec), axis=1), plain)


def test_balanced_fast_path_equals_selection_on_balanced_scores() -> None:
    from sim.moe.alltoall import route_choices
    from sim.moe.gating import balanced_choices

    for spec in (
        V3,
        MoESpec(ep=16),
        MoESpec(ep=8),
        MoESpec(node_limit=2),
        MoESpec(node_limit=3),
        MoESpec(node_limit=7),
    ):
        tokens = 3 * spec.groups * spec.experts_per_group + 17
        via_selection = select_experts(GATES["balanced"](tokens, spec, np.random.default_rng(0)), spec)
        assert np.array_equal(balanced_choices(tokens, spec), via_selection)
        assert np.array_equal(route_choices(spec, tokens, "balanced", np.random.default_rng(0)), via_selection)


@pytest.mark.parametrize(
    "spec",
    [V3, MoESpec(ep=16), MoESpec(ep=8), MoESpec(node_limit=2), MoESpec(node_limit=7), MoESpec(ep=128, experts=512)],
    ids=["v3", "ep16", "ep8", "m2", "m7", "16-nodes"],
)
@pytest.mark.parametrize("periods", [1, 2, 3, 16])
@pytest.mark.parametrize("extra", [0, 1, 37])
def test_balanced_traffic_counted_on_one_period_equals_the_whole_count(spec: MoESpec, periods: int, extra: int) -> None:
    """Every array of balanced_traffic equals counting the whole micro-batch: bit for bit, same dtypes,
    when ``tokens`` is a whole number of periods (counted once and multiplied) and when it is not
    (counted whole); the 16-node spec takes the sorting counter, the others the bitmask counter."""
    from sim.moe.alltoall import balanced_traffic, route_layer, route_layers
    from sim.moe.gating import balanced_choices
    from sim.moe.traffic import layer_traffic

    tokens = periods * spec.experts + extra
    whole = layer_traffic(balanced_choices(tokens * spec.ep, spec), np.repeat(np.arange(spec.ep), tokens), spec)
    for got in (balanced_traffic(spec, tokens), route_layer(spec, tokens, "balanced", 0)):
        for field in ("ib", "nvlink", "logical_rdma", "tokens_per_expert", "nodes_per_token"):
            a, b = getattr(got, field), getattr(whole, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field
    (layer,) = route_layers(spec, tokens, 1, "balanced", seed=0)
    assert np.array_equal(layer.nvlink, whole.nvlink) and np.array_equal(layer.ib, whole.ib)


def test_chunked_routing_and_counting_equal_whole() -> None:
    from sim.moe.select import _select
    from sim.moe.traffic import _count, layer_traffic

    rng = np.random.default_rng(9)
    scores = GATES["random"](20000, V3, rng)
    whole = _select(scores, V3, None)
    assert np.array_equal(select_experts(scores, V3), whole)
    src = np.repeat(np.arange(64), 20000 // 64 + 1)[:20000]
    a, b = layer_traffic(whole, src, V3), _count(whole, src, V3)
    assert np.array_equal(a.ib, b.ib) and np.array_equal(a.nvlink, b.nvlink)
    assert np.array_equal(a.nodes_per_token, b.nodes_per_token) and np.array_equal(a.logical_rdma, b.logical_rdma)


def test_route_layers_depends_on_the_seed_not_the_threads() -> None:
    from sim.moe.alltoall import route_layers

    spec = MoESpec(ep=16)
    one = route_layers(spec, 256, 5, "random", seed=3, workers=1)
    two = route_layers(spec, 256, 5, "random", seed=3, workers=2)
    other = route_layers(spec, 256, 5, "random", seed=4, workers=2)
    assert len(one) == 5
    assert all(np.array_equal(a.nvlink, b.nvlink) and np.array_equal(a.ib, b.ib) for a, b in zip(one, two, strict=True))
    assert not np.array_equal(one[0].tokens_per_expert, one[1].tokens_per_expert)  # layers draw different streams
    assert not np.array_equal(one[0].tokens_per_expert, other[0].tokens_per_expert)


def test_skewed_with_uniform_popularity_is_random() -> None:
    uniform = np.full(V3.experts, 1.0 / V3.experts)
    skewed = skewed_scores(300, V3, np.random.default_rng(8), uniform)
    plain = GATES["random"](300, V3, np.random.default_rng(8))
    np.testing.assert_allclose(skewed, plain, rtol=1e-6)
    # a popular expert's scores rise: sigmoid(logit(u) + log(p * experts)) with p * experts > 1
    popular = uniform.copy()
    popular[0] *= 10
    assert (skewed_scores(300, V3, np.random.default_rng(8), popular)[:, 0] >= plain[:, 0]).all()


@pytest.mark.parametrize(
    ("column", "row", "value", "ext", "expected"),
    [
        ("e7", 2, 300, "csv", "e7: expert ids must be in 0..255, got 300 in row 2"),
        ("e5", 1, -1, "csv", "e5: expert ids must be in 0..255, got -1 in row 1"),
        ("e5", 1, "x", "csv", "e5: expert ids must be integers, got 'x' in row 1"),  # (CSV reads e5 as text)
        ("e6", 3, float("nan"), "csv", "e6: expert ids must be integers, got nan in row 3"),
        ("e6", 2, 2.5, "csv", "e6: expert ids must be integers, got 2.5 in row 2"),
        ("e4", 0, 32.0, "parquet", "e4: expert ids must be stored as integers, the column holds float64"),
    ],
)
def test_a_bad_routing_table_cell_is_named_by_its_column_and_row(
    tmp_path: Path, column: str, row: int, value: object, ext: str, expected: str
) -> None:
    """The column at fault and its first bad row are named (every fault named e0, the first column, and
    no row: a table of 8 columns by thousands of rows left the user to search)."""
    rows: list[list[object]] = [[0, 1, 2, 3, 32, 33, 64, 65] for _ in range(4)]
    at = int(column[1:])
    for cells in rows:  # (a float's column holds floats, as a table written from floats does)
        cells[at] = float(cells[at]) if isinstance(value, float) else cells[at]  # type: ignore[arg-type]
    rows[row][at] = value
    frame = pd.DataFrame(rows, columns=[f"e{i}" for i in range(8)])
    path = tmp_path / f"t.{ext}"
    frame.to_csv(path, index=False) if ext == "csv" else frame.to_parquet(path)
    with pytest.raises(ScenarioError) as info:
        load_choices(path, V3)
    assert str(info.value).startswith(f"{path}: {expected}")


def test_a_routing_table_with_more_experts_a_token_than_the_model_routes_is_refused(tmp_path: Path) -> None:
    """A table of 9 columns e0..e8 for a top-8 model ran as its first 8 (e8 dropped, the figures those
    of the 8-column table); other columns (a token id) are the user's and stay allowed."""
    frame = pd.DataFrame([[0, 1, 2, 3, 32, 33, 64, 65, 66, 7]] * 4, columns=[*(f"e{i}" for i in range(9)), "token"])
    path = tmp_path / "t9.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ScenarioError) as info:
        load_choices(path, V3)
    assert str(info.value).startswith(f"{path}: e8: the routing table has a column past e7")
    frame.drop(columns="e8").to_csv(path, index=False)
    assert load_choices(path, V3).shape == (4, 8)
