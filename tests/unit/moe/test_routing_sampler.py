"""The fast exact sampler (sim.moe.sampling) against the reference path (all scores + selection).

Statistical tests use fixed seeds, so they are deterministic; a correct sampler passes with
p > 1e-3 and the wrong variants at the end (plausible bugs) are rejected with p < 1e-6, which shows
the tests have the power to catch a wrong distribution. Chi-square tests on counts pooled over the
tokens treat a token's k experts (or GPUs, nodes) as independent; they are distinct within a token,
which makes the pooled counts less variable than multinomial ones: the tests are conservative.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.moe.alltoall import route_choices, route_layer, route_layers
from sim.moe.gating import Gating, popularity, random_scores, skewed_scores
from sim.moe.sampling import (
    BATCH,
    HAVE_NUMBA,
    WIDE,
    _fill_exponentials,
    _sample,
    _seed_state,
    count_traffic,
    sample_choices,
    sample_traffic,
)
from sim.moe.select import select_experts
from sim.moe.spec import MoESpec
from sim.moe.traffic import _count, layer_traffic

V3 = MoESpec()


def _stats() -> ModuleType:
    """scipy.stats, imported where a test uses it (at collection it cost each xdist worker about 2 s)."""
    from scipy import stats

    return stats


SPECS = [
    V3,
    MoESpec(ep=16),
    MoESpec(ep=8),  # one node: one group of 256
    MoESpec(ep=4),  # part of a node
    MoESpec(node_limit=8),  # plain top-k
    MoESpec(experts=48, topk=6, node_limit=3, ep=24, gpus_per_node=4),
    MoESpec(experts=12, topk=4, node_limit=2, ep=6, gpus_per_node=2),  # groups of 4: deep merges
    MoESpec(node_limit=3),  # M not dividing topk: group scores sum the best 2
    MoESpec(node_limit=6),  # group scores are the best 1
]

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed (the fast path is off)")


def _weights(spec: MoESpec, seed: int = 7, alpha: float = 1.0) -> np.ndarray:
    return popularity(spec, np.random.default_rng(seed), alpha) * spec.experts


def _reference(spec: MoESpec, n: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if weights is None:
        return select_experts(random_scores(n, spec, rng), spec)
    return select_experts(skewed_scores(n, spec, rng, weights / spec.experts), spec)


def _pooled(a: np.ndarray, b: np.ndarray, minimum: int = 20) -> float:
    """p-value of the chi-square test that two count vectors come from one distribution (cells
    with fewer than ``minimum`` counts in total are pooled into one)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    small = (a + b) < minimum
    if small.any():
        a = np.append(a[~small], a[small].sum())
        b = np.append(b[~small], b[small].sum())
    keep = (a + b) > 0
    return float(_stats().chi2_contingency(np.stack([a[keep], b[keep]]))[1])


def _per_token(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> dict[str, np.ndarray]:
    """Per-token statistics: nodes reached, IB messages, NVLink messages, the experts-per-node
    pattern (sorted counts as one code) and the source GPU's position."""
    g = spec.gpus_per_node
    gpu = np.sort(choices.astype(np.int64) // spec.experts_per_gpu, axis=1)
    node = gpu // g
    first_node = np.ones_like(node, bool)
    first_node[:, 1:] = node[:, 1:] != node[:, :-1]
    first_gpu = np.ones_like(gpu, bool)
    first_gpu[:, 1:] = gpu[:, 1:] != gpu[:, :-1]
    sn, ls = src // g, src % g
    local = node == sn[:, None]
    sender = np.where(local, src[:, None], node * g + ls[:, None])
    per_node = np.stack([(node == n).sum(axis=1) for n in range(spec.nodes)], axis=1)
    pattern = np.sort(per_node, axis=1)[:, ::-1][:, : spec.limit]
    code = (pattern * (spec.topk + 1) ** np.arange(spec.limit)[::-1]).sum(axis=1)
    return {
        "nodes": first_node.sum(axis=1),
        "ib": (first_node & ~local).sum(axis=1),
        "nvlink": (first_gpu & (gpu != sender)).sum(axis=1),
        "pattern": code,
    }


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"E{s.experts}k{s.topk}M{s.node_limit}ep{s.ep}g{s.gpus_per_node}")
@pytest.mark.parametrize("skew", [False, True])
def test_every_token_gets_topk_distinct_experts_on_at_most_limit_nodes(spec: MoESpec, skew: bool) -> None:
    weights = _weights(spec) if skew else None
    choices = sample_choices(spec, 3000, np.random.SeedSequence(1), weights)
    assert choices.shape == (3000, spec.topk) and choices.dtype == np.int16
    assert (np.diff(choices.astype(int), axis=1) > 0).all()  # ascending, hence distinct
    assert choices.min() >= 0 and choices.max() < spec.experts
    nodes = choices // spec.experts_per_group
    reached = 1 + (np.diff(nodes, axis=1) != 0).sum(axis=1)
    assert reached.max() <= spec.limit


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"E{s.experts}k{s.topk}M{s.node_limit}ep{s.ep}g{s.gpus_per_node}")
@pytest.mark.parametrize("skew", [False, True])
def test_fused_counts_equal_the_numpy_counters_and_conserve_tokens(spec: MoESpec, skew: bool) -> None:
    weights = _weights(spec) if skew else None
    src = np.random.default_rng(0).integers(0, spec.ep, 4000)
    fused = sample_traffic(spec, src, np.random.SeedSequence(2), weights)
    choices = sample_choices(spec, 4000, np.random.SeedSequence(2), weights)  # same seed: same routing
    for counted in (layer_traffic(choices, src, spec), _count(choices, src, spec), count_traffic(choices, src, spec)):
        for field in ("ib", "nvlink", "logical_rdma", "tokens_per_expert", "nodes_per_token"):
            assert np.array_equal(getattr(fused, field), getattr(counted, field)), field
    # conservation: every token-expert pair lands once; a token's remote nodes = its IB messages
    assert fused.tokens_per_expert.sum() == 4000 * spec.topk
    assert fused.logical_rdma.sum() == fused.nodes_per_token.sum()
    local = np.array([((choices[src == s] // spec.experts_per_group) == s // spec.gpus_per_node).any(axis=1).sum()
                      for s in range(spec.ep)])  # fmt: skip
    assert np.array_equal(fused.ib.sum(axis=1), fused.logical_rdma - local)
    assert fused.nodes_per_token.max() <= spec.limit
    # dispatch and combine move the same messages with their own payloads
    combine, dispatch = fused.ib_bytes_per_gpu("combine"), fused.ib_bytes_per_gpu("dispatch")
    assert np.allclose(combine * spec.dispatch_bytes_per_elem, dispatch * spec.combine_bytes_per_elem)


def test_same_seed_same_routing_and_threads_do_not_matter() -> None:
    spec = MoESpec(ep=16)
    for gating in ("random", Gating("skewed", alpha=1.2)):
        one = route_layers(spec, 512, 4, gating, seed=3, workers=1)
        two = route_layers(spec, 512, 4, gating, seed=3, workers=2)
        other = route_layers(spec, 512, 4, gating, seed=4, workers=2)
        for a, b in zip(one, two, strict=True):
            assert np.array_equal(a.ib, b.ib) and np.array_equal(a.nvlink, b.nvlink)
            assert np.array_equal(a.tokens_per_expert, b.tokens_per_expert)
        assert not np.array_equal(one[0].tokens_per_expert, other[0].tokens_per_expert)
        assert not np.array_equal(one[0].tokens_per_expert, one[1].tokens_per_expert)
    drawn = route_choices(V3, 1000, "skewed", np.random.default_rng(5))
    assert np.array_equal(drawn, route_choices(V3, 1000, "skewed", np.random.default_rng(5)))


UNCOMPILED_SPECS = [{}, {"ep": 128, "gpus_per_node": 16}, {"experts": 96, "topk": 6, "node_limit": 3, "ep": 24}]
_UNCOMPILED = """
import sys, warnings
import numpy as np
sys.modules["numba"] = None  # import numba fails: the kernels run as plain Python
warnings.simplefilter("error")  # a warning (e.g. numpy's on uint64 overflow) fails the run
from sim.moe import sampling
from sim.moe.spec import MoESpec
assert not sampling.HAVE_NUMBA
runs = []
for fields, weights in {cases!r}:
    spec = MoESpec(**fields)
    src = np.arange({n}) % spec.ep
    w = None if weights is None else np.array(weights)
    out, traffic = sampling._sample(spec, {n}, np.random.default_rng(5), w, src)
    runs += [out.ravel(), traffic.ib.ravel(), traffic.nvlink.ravel(), traffic.tokens_per_expert,
             traffic.nodes_per_token]
np.save(sys.argv[1], np.concatenate(runs))
"""


def test_the_kernels_run_uncompiled_without_numba_with_the_same_bits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without numba the kernels run as plain Python (``sampler="fast"``): the same SplitMix64 words,
    the same choices and counts bit for bit as compiled, for both kernels and both counters (NVLink by
    a byte histogram up to 8 GPUs a node, pair by pair above), and no warning (the uint64 wrap is
    intended)."""
    import subprocess
    import sys

    n = 70
    cases = [(f, w) for f in UNCOMPILED_SPECS for w in (None, _weights(MoESpec(**f)).tolist())]
    path = tmp_path / "uncompiled.npy"
    code = _UNCOMPILED.format(cases=cases, n=n)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    runs = []
    for fields, weights in cases:
        spec = MoESpec(**fields)
        w = None if weights is None else np.array(weights)
        out, traffic = _sample(spec, n, np.random.default_rng(5), w, np.arange(n) % spec.ep)
        assert traffic is not None
        runs += [out.ravel(), traffic.ib.ravel(), traffic.nvlink.ravel(), traffic.tokens_per_expert]
        runs += [traffic.nodes_per_token]
    assert np.array_equal(np.load(path), np.concatenate(runs))


def test_route_layers_fast_path_equals_sampling_then_counting() -> None:
    """route_layers' fused path and route_choices + layer_traffic route alike for one seed stream."""
    spec = MoESpec(ep=16)
    layers = route_layers(spec, 300, 2, "skewed", seed=9)
    stream = np.random.SeedSequence(9).spawn(2)[1]
    choices = route_choices(spec, 300 * spec.ep, "skewed", np.random.default_rng(stream))
    again = layer_traffic(choices, np.repeat(np.arange(spec.ep), 300), spec)
    assert np.array_equal(layers[1].nvlink, again.nvlink) and np.array_equal(layers[1].ib, again.ib)


def test_reference_sampler_is_the_plain_path_and_unknown_samplers_are_refused() -> None:
    rng = np.random.default_rng(4)
    expected = select_experts(random_scores(500, V3, np.random.default_rng(4)), V3)
    assert np.array_equal(route_choices(V3, 500, Gating("random", sampler="reference"), rng), expected)
    assert Gating("random").uses_fast_sampler() and not Gating("balanced").uses_fast_sampler()
    with pytest.raises(ScenarioError, match="unknown sampler"):
        route_layer(V3, 4, Gating("random", sampler="quick"), 0)


def _splitmix(state: np.uint64, counter: np.ndarray) -> np.ndarray:
    """SplitMix64's words at ``counter`` (counters from 1) after ``state``, as the kernels draw them."""
    with np.errstate(over="ignore"):
        z = state + counter * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _scores_as_drawn(spec: MoESpec, tokens: int, seed: np.random.SeedSequence, weights: np.ndarray) -> np.ndarray:
    """Scores ordered as the skewed kernel orders them, recomputed in numpy from its counter-based
    SplitMix64 words (word ``t * experts + e + 1`` after the seed's state; ``u``: its top 52 bits, plus
    1/2, times 2^-52): ``x / (1 + x)`` of the odds ``x = w u / (1 - u)``; for weight 0, ``(u - 1)``
    times 1e-200: below every live score and ordered by ``u`` as the kernel's key ``u - 1``, and too
    small to change a group's sum of live scores (the kernel adds 0 for them)."""
    counter = np.arange(tokens, dtype=np.uint64)[:, None] * np.uint64(spec.experts)
    counter = counter + np.arange(1, spec.experts + 1, dtype=np.uint64)[None, :]
    z = _splitmix(_seed_state(seed)[0], counter)
    u = ((z >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52
    x = weights * u / (1.0 - u)
    return np.where(weights > 0, x / (1.0 + x), (u - 1.0) * 1e-200)


def _zeroed(spec: MoESpec, zeros: list[int]) -> np.ndarray:
    weights = _weights(spec)
    weights[zeros] = 0.0
    return weights


EXACT = [(spec, "zipf", _weights(spec)) for spec in SPECS] + [
    (V3, "three-zeros", _zeroed(V3, [3, 40, 41])),
    (MoESpec(node_limit=8), "a-group-at-zero", _zeroed(MoESpec(node_limit=8), list(range(32)))),
    (SPECS[6], "one-live-per-group", _zeroed(SPECS[6], [0, 1, 2, 4, 5, 6, 8, 9, 10])),
]


@pytest.mark.parametrize(
    ("spec", "weights"),
    [(s, w) for s, _, w in EXACT],
    ids=[f"E{s.experts}k{s.topk}M{s.node_limit}ep{s.ep}g{s.gpus_per_node}-{name}" for s, name, _ in EXACT],
)
def test_the_skewed_kernel_selects_what_select_experts_selects_on_its_scores(
    spec: MoESpec, weights: np.ndarray
) -> None:
    """Exact by construction, not only in law: the kernel's choices are, token by token, those of
    the reference selection (sim.moe.select) on the scores of the odds it drew. This holds the
    threshold shortcut (the top k among the kept keys at or above the least of the kept groups'
    best), the bit masks, the drops and the one-pass selection (taken when a kept group has few live
    experts: a group at weight 0 with no node limit) to the plain selection, weight-0 experts included."""
    n = 3000
    drawn = sample_choices(spec, n, np.random.SeedSequence(31), weights)
    assert np.array_equal(drawn, select_experts(_scores_as_drawn(spec, n, np.random.SeedSequence(31), weights), spec))


def _exponentials_as_drawn(state: np.uint64, n: int) -> np.ndarray:
    """The random kernel's ``n`` exponentials of a batch from SplitMix64 ``state``, recomputed in numpy:
    ``-log(u)`` of the 53-bit uniform ``u`` of word ``i`` after the state, ``i`` = 1 .. n (the kernel's
    series for the logarithm is within 2e-15 of it: test_the_exponentials_are_exp1)."""
    z = _splitmix(state, np.arange(1, n + 1, dtype=np.uint64))
    return -np.log(((z >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53)


def test_the_random_kernel_keeps_the_groups_whose_two_best_scores_sum_highest() -> None:
    """Exact by construction, not only in law, for ``random`` gating where the choices show the kept
    groups: groups of 2 experts, top-4 on 2 nodes, so a token takes both experts of each of its 2 kept
    groups. The kernel's group step is recomputed in numpy from its counter-based draws: per batch of
    ``BATCH`` tokens, ``(2 groups + topk - 2) x BATCH`` exponentials ``-log(u)`` (the group step's
    first, ``E1`` of group g, token b at ``g BATCH + b``, ``E2`` after them), then 2 words a token for
    the expert draws; the best score of 2 is ``exp(-E1 / 2)``, the other ``exp(-(E1 / 2 + E2))``
    (Renyi), and the kept groups are the 2 with the largest sum of both (ties: the lower index). A
    group's two scores are far apart (``E2 >= 0.25``, where the kernel leaves its series for the exact
    formula) for 78% of groups, and the series would be off by 0.12 at ``E2 = 3`` (5% of groups)."""
    spec = MoESpec(experts=16, topk=4, node_limit=2, ep=8, gpus_per_node=1)
    assert (spec.groups, spec.experts_per_group, spec.group_topk, spec.limit) == (8, 2, 2, 2)
    n = 3 * BATCH + 17  # a short last batch too
    seed = np.random.SeedSequence(5)
    chosen = sample_choices(spec, n, seed, None)
    golden = np.uint64(0x9E3779B97F4A7C15)
    draws = (2 * spec.groups + spec.topk - 2) * BATCH
    state = _seed_state(seed)[0]
    kept = []
    with np.errstate(over="ignore"):
        for t0 in range(0, n, BATCH):
            e = _exponentials_as_drawn(state, 2 * spec.groups * BATCH)
            e1 = e[: spec.groups * BATCH].reshape(spec.groups, BATCH)
            e2 = e[spec.groups * BATCH :].reshape(spec.groups, BATCH)
            y1 = e1 / 2.0
            score = np.logaddexp(-y1, -(y1 + e2))  # log of the sum of the group's two scores
            order = np.argsort(-score, axis=0, kind="stable")  # best first, ties: lower group
            kept += [sorted(order[: spec.limit, b]) for b in range(min(BATCH, n - t0))]
            state = state + np.uint64(draws + 2 * BATCH) * golden
    want = np.array([[2 * g + i for g in groups for i in (0, 1)] for groups in kept])
    assert np.array_equal(chosen, want)


def test_the_random_kernel_merges_the_kept_groups_by_renyi_spacings() -> None:
    """The merge, exact by construction where the choices show how many experts each kept group gives:
    groups of 4 experts, top-4 on 2 nodes. Recomputed in numpy from the kernel's draws (as in the test
    above): a group's c-th best score is ``exp(-y_c)``, ``y_1 = E1 / 4``, ``y_2 = y_1 + E2 / 3`` from the
    group step, and each later one ``y_c + L / (4 - c)`` with ``L`` the token's draw of row ``p - 1``
    of the merge's ``topk - 2`` rows, ``p`` the pop (0 .. topk-1) that took ``y_c``; the merge pops the
    least ``y`` of the kept groups (ties: the lower kept index) 4 times. Both merges (vector loops and
    token by token) are checked. A wrong spacing (``L / (4 - c + 1)``) or another row fails it."""
    spec = MoESpec(experts=32, topk=4, node_limit=2, ep=8, gpus_per_node=1)
    per, k, limit, groups = spec.experts_per_group, spec.topk, spec.limit, spec.groups
    assert (groups, per, spec.group_topk, limit) == (8, 4, 2, 2)
    n = 3 * BATCH + 17
    seed = np.random.SeedSequence(6)
    golden = np.uint64(0x9E3779B97F4A7C15)
    draws = (2 * groups + k - 2) * BATCH
    state = _seed_state(seed)[0]
    want = []
    with np.errstate(over="ignore"):
        for t0 in range(0, n, BATCH):
            e = _exponentials_as_drawn(state, draws)
            y1 = e[: groups * BATCH].reshape(groups, BATCH) / per
            y2 = y1 + e[groups * BATCH : 2 * groups * BATCH].reshape(groups, BATCH) / (per - 1)
            lazy = e[2 * groups * BATCH :]
            order = np.argsort(-np.logaddexp(-y1, -y2), axis=0, kind="stable")
            for b in range(min(BATCH, n - t0)):
                kept = sorted(order[:limit, b])
                head = [y1[g, b] for g in kept]
                cnt = [0] * limit
                for p in range(k):
                    j = int(np.argmin(head))  # the first least
                    best, c = head[j], cnt[j] + 1
                    cnt[j] = c
                    if p == k - 1:  # the last pop: its next head is never used (nor drawn)
                        break
                    if c < 2:
                        head[j] = y2[kept[j], b]
                    else:
                        head[j] = best + lazy[(p - 1) * BATCH + b] / (per - c) if c < per else np.inf
                want.append({kept[j]: cnt[j] for j in range(limit) if cnt[j]})
            state = state + np.uint64(draws + 2 * BATCH) * golden
    for wide in (True, False):
        chosen, _ = _sample(spec, n, seed, None, None, wide=wide)
        got = [dict(zip(*np.unique(row // per, return_counts=True), strict=True)) for row in chosen]
        assert [{int(g): int(c) for g, c in d.items()} for d in got] == want


# more shapes the vector merge takes: group scores of 1 (top-4 on 3 nodes), and two whose expert draw
# and counting take the other paths, groups of 12 experts (Floyd's draw) and 16 GPUs a node (NVLink
# counted pair by pair)
OTHER_PATHS = [
    MoESpec(topk=4, node_limit=3),
    MoESpec(experts=48, topk=4, node_limit=2, ep=8, gpus_per_node=2),
    MoESpec(ep=128, gpus_per_node=16),
]


@pytest.mark.parametrize(
    "spec",
    [s for s in SPECS if s.limit <= WIDE and s.group_topk <= 2] + OTHER_PATHS,
    ids=lambda s: f"E{s.experts}k{s.topk}M{s.node_limit}ep{s.ep}g{s.gpus_per_node}",
)
def test_the_random_kernels_two_merges_route_alike(spec: MoESpec) -> None:
    """The merge and the expert draws' first attempts as vector loops (at most ``WIDE`` kept groups,
    group scores of at most 2) and both token by token give the same choices and counts, bit for bit:
    the same draws, pops, ties and indices. In groups of 4 experts (``SPECS[6]``) a repeat is drawn
    often, so many lanes leave the vector attempts and are continued token by token. The vector merge
    refuses shapes it cannot hold."""
    src = np.random.default_rng(0).integers(0, spec.ep, 5 * BATCH + 9)
    runs = [_sample(spec, len(src), np.random.SeedSequence(8), None, src, wide=w) for w in (True, False)]
    (wide, by_wide), (plain, by_plain) = runs
    assert by_wide is not None and by_plain is not None
    assert np.array_equal(wide, plain)
    for field in ("ib", "nvlink", "logical_rdma", "tokens_per_expert", "nodes_per_token"):
        assert np.array_equal(getattr(by_wide, field), getattr(by_plain, field)), field
    with pytest.raises(ValueError, match="vector merge"):
        _sample(K14, 10, np.random.SeedSequence(8), None, None, wide=True)


def test_zero_weight_experts_are_chosen_only_when_nothing_else_is_left() -> None:
    spec = MoESpec(experts=16, topk=4, node_limit=2, ep=4, gpus_per_node=2)  # 2 groups of 8
    weights = np.ones(16)
    weights[[0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]] = 0.0  # two live experts per group
    choices = sample_choices(spec, 2000, np.random.SeedSequence(0), weights)
    assert (np.sort(choices, axis=1) == [6, 7, 14, 15]).all()
    weights[7] = 0.0  # group 0 has one live expert: a zero-weight one of it (any) fills in
    choices = sample_choices(spec, 2000, np.random.SeedSequence(0), weights)
    assert np.isin([6, 14, 15], choices).all(axis=None) and (choices < 16).all()
    assert all(len(set(row)) == 4 for row in choices.tolist())


def test_the_exponentials_are_exp1() -> None:
    """The vector fill is -log(u) of the uniforms it says it draws (within 2e-15: its series for the
    logarithm), and Exp(1): a KS test, and no draw above 53 log 2 (the largest -log(u) of a 53-bit u)."""
    n = 1_000_000
    state = np.uint64(7)
    x, work = np.zeros(n), np.zeros(n, np.uint64)
    after = _fill_exponentials(state, n, x, work)
    with np.errstate(over="ignore"):
        assert after == state + np.uint64(n) * np.uint64(0x9E3779B97F4A7C15)
    z = _splitmix(state, np.arange(1, n + 1, dtype=np.uint64))
    u = ((z >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    assert np.abs(x + np.log(u)).max() < 2e-15
    assert _stats().kstest(x, "expon").pvalue > 1e-3
    assert x.max() <= 53 * np.log(2) and x.min() >= 0.0
    for word, want in ((0, 53 * np.log(2)), (2**64 - 1, 0.0)):  # u = 2^-53 and u = 1, the extremes
        one = np.zeros(1)
        _fill_exponentials(np.uint64(_state_drawing(word)), 1, one, np.zeros(1, np.uint64))
        assert abs(one[0] - want) < 1e-14


def _state_drawing(word: int) -> int:
    """The SplitMix64 state whose next word is ``word`` (the mix inverted: each xor-shift undone by
    repeating it, each multiplication by the constant's inverse modulo 2^64)."""
    m = 2**64

    def unshift(y: int, s: int) -> int:
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x

    z = unshift(word, 31) * pow(0x94D049BB133111EB, -1, m) % m
    z = unshift(z, 27) * pow(0xBF58476D1CE4E5B9, -1, m) % m
    return (unshift(z, 30) - 0x9E3779B97F4A7C15) % m


# ---------------------------------------------------------------- distributions against the reference

N = 60_000


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(fast, reference, src, weights) for random and skewed gating on V3, and skewed on a small spec;
    and random on V3 with top-14 on 6 nodes (group scores of 2), where the merge runs token by token
    (6 kept groups: more than the vector merge's WIDE = 4) and draws up to 12 rows a token."""
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for name, spec, weights in (
        ("random", V3, None),
        ("random-k14", K14, None),
        ("skewed", V3, _weights(V3)),
        ("skewed-small", SPECS[-1], _weights(SPECS[-1], alpha=1.5)),
    ):
        src = np.random.default_rng(11).integers(0, spec.ep, N)
        out[name] = (
            sample_choices(spec, N, np.random.SeedSequence(12), weights),
            _reference(spec, N, 13, weights),
            src,
            weights,
        )
    return out


K14 = MoESpec(topk=14, node_limit=6)


def _spec(name: str) -> MoESpec:
    return {"skewed-small": SPECS[-1], "random-k14": K14}.get(name, V3)


@pytest.mark.parametrize("name", ["random", "random-k14", "skewed", "skewed-small"])
def test_per_expert_load_matches_the_reference(samples: dict, name: str) -> None:
    fast, ref, _, _ = samples[name]
    spec = _spec(name)
    assert (
        _pooled(np.bincount(fast.ravel(), minlength=spec.experts), np.bincount(ref.ravel(), minlength=spec.experts))
        > 1e-3
    )


@pytest.mark.parametrize("name", ["random", "random-k14", "skewed", "skewed-small"])
@pytest.mark.parametrize("statistic", ["nodes", "pattern", "ib", "nvlink"])
def test_per_token_distributions_match_the_reference(samples: dict, name: str, statistic: str) -> None:
    """Nodes per token (always <= node limit), experts per node, IB and NVLink messages per token."""
    fast, ref, src, _ = samples[name]
    spec = _spec(name)
    a, b = _per_token(fast, src, spec)[statistic], _per_token(ref, src, spec)[statistic]
    size = max(a.max(), b.max()) + 1
    assert _pooled(np.bincount(a, minlength=size), np.bincount(b, minlength=size)) > 1e-3
    if statistic == "nodes":
        assert a.max() <= spec.limit and b.max() <= spec.limit


@pytest.mark.parametrize("name", ["random", "skewed"])
def test_gpu_pair_counts_and_byte_totals_match_the_reference(samples: dict, name: str) -> None:
    """Per GPU-pair NVLink counts, per (GPU, node) IB counts and IB / NVLink byte totals."""
    fast, ref, src, _ = samples[name]
    a, b = layer_traffic(fast, src, V3), layer_traffic(ref, src, V3)
    assert _pooled(a.nvlink.ravel(), b.nvlink.ravel()) > 1e-3
    assert _pooled(a.ib.ravel(), b.ib.ravel()) > 1e-3
    # per-token byte totals: a two-sample KS test on IB and NVLink bytes of each token
    for statistic in ("ib", "nvlink"):
        x = _per_token(fast, src, V3)[statistic] * a.bytes_per_token("dispatch")
        y = _per_token(ref, src, V3)[statistic] * b.bytes_per_token("dispatch")
        assert _stats().ks_2samp(x, y).pvalue > 1e-3
        assert abs(x.mean() - y.mean()) < 4 * np.sqrt(x.var() / N + y.var() / N)


def test_layer_totals_over_many_layers_match_the_reference() -> None:
    """IB and NVLink bytes of whole layers (route_layers, 64 GPUs x 256 tokens) on both paths."""
    fast = route_layers(V3, 256, 24, "skewed", seed=1)
    ref = route_layers(V3, 256, 24, Gating("skewed", sampler="reference"), seed=2)
    for bytes_of in (lambda t: t.ib_bytes_per_gpu().sum(), lambda t: t.nvlink_bytes_per_gpu().sum()):
        x, y = [bytes_of(t) for t in fast], [bytes_of(t) for t in ref]
        assert _stats().ttest_ind(x, y, equal_var=False).pvalue > 1e-3
        assert _stats().ks_2samp(x, y).pvalue > 1e-3


# ---------------------------------------------------------------- the tests catch wrong samplers


def _wrong_group_score(spec: MoESpec, n: int, seed: int) -> np.ndarray:
    """A plausible bug: groups scored by their best score only (group_topk = 1)."""
    wrong = MoESpec(experts=spec.experts, topk=spec.topk, node_limit=spec.node_limit, ep=spec.ep)
    out, _ = _sample(wrong, n, np.random.SeedSequence(seed), None, None, group_topk=1)
    return np.sort(out, axis=1)


def test_the_checks_reject_a_sampler_that_scores_groups_by_their_best_expert(samples: dict) -> None:
    _, ref, src, _ = samples["random"]
    wrong = _wrong_group_score(V3, N, 12)
    a, b = _per_token(wrong, src, V3)["pattern"], _per_token(ref, src, V3)["pattern"]
    size = max(a.max(), b.max()) + 1
    assert _pooled(np.bincount(a, minlength=size), np.bincount(b, minlength=size)) < 1e-6


def test_the_checks_reject_a_sampler_with_a_slightly_wrong_skew(samples: dict) -> None:
    """Weights off by a power of 0.9 (as if the skew were applied to the wrong logit scale)."""
    _, ref, _, weights = samples["skewed"]
    assert weights is not None
    wrong = sample_choices(V3, N, np.random.SeedSequence(12), weights**0.9)
    assert _pooled(np.bincount(wrong.ravel(), minlength=256), np.bincount(ref.ravel(), minlength=256)) < 1e-6


def test_the_checks_reject_a_sampler_that_scales_the_uniform_instead_of_the_odds(samples: dict) -> None:
    """The weight multiplies the uniform ``u`` instead of its odds ``u / (1 - u)``: the order the
    weights give is kept, the law of the scores is not (a plausible slip in the key of the skewed
    kernel)."""
    _, ref, _, weights = samples["skewed"]
    assert weights is not None
    wrong, _ = _sample(V3, N, np.random.SeedSequence(12), weights, None, odds=False)
    wrong.sort(axis=1)
    assert _pooled(np.bincount(wrong.ravel(), minlength=256), np.bincount(ref.ravel(), minlength=256)) < 1e-6


# ---------------------------------------------------------------- extreme popularity


def _extreme(name: str) -> np.ndarray:
    rng = np.random.default_rng(21)
    if name == "zipf2":
        return popularity(V3, rng, alpha=2.0) * V3.experts
    if name == "dirichlet0.1":  # a few experts hold almost all the weight; many are ~0 (float32: 0)
        return popularity(V3, rng, dirichlet=0.1) * V3.experts
    weights = popularity(V3, rng) * V3.experts  # Zipf(1) with one expert of weight 0
    weights[int(np.argmax(weights))] = 0.0
    return weights


@pytest.mark.parametrize("name", ["zipf2", "dirichlet0.1", "one-zero"])
def test_extreme_popularity_matches_the_reference(name: str) -> None:
    """Dominant experts (the arrived-expert fallback to exact rates), weights of 0 and ~0."""
    weights = _extreme(name)
    n = 30_000
    fast = sample_choices(V3, n, np.random.SeedSequence(22), weights)
    assert (np.diff(fast.astype(int), axis=1) > 0).all()
    assert (1 + (np.diff(fast // V3.experts_per_group, axis=1) != 0).sum(axis=1)).max() <= V3.limit
    ref = _reference(V3, n, 23, weights)
    if name == "one-zero":  # its score is 0: chosen only with 30 other experts of its group (never here)
        assert not (fast == int(np.argmin(weights))).any()
    load_fast, load_ref = np.bincount(fast.ravel(), minlength=256), np.bincount(ref.ravel(), minlength=256)
    assert _pooled(load_fast, load_ref) > 1e-3
    src = np.random.default_rng(24).integers(0, V3.ep, n)
    for statistic in ("nodes", "pattern", "nvlink"):
        a, b = _per_token(fast, src, V3)[statistic], _per_token(ref, src, V3)[statistic]
        size = max(a.max(), b.max()) + 1
        assert _pooled(np.bincount(a, minlength=size), np.bincount(b, minlength=size)) > 1e-3, statistic


def test_the_most_experts_a_model_may_have_are_routed_to_their_own_ids() -> None:
    """Chosen expert ids are int16: 65,536 experts were allowed, and ids past 32,767 wrapped to negative
    ones, silently (nodes per token 1.0 and tokens per expert 0.0625 at 65,536 experts, top-2, where
    2.0 and 0.125 are right). The bound is 32,768 experts now: every id fits, and they are all reached."""
    from sim.limits import MAX_EXPERTS

    assert np.iinfo(np.int16).max == MAX_EXPERTS - 1
    spec = MoESpec(experts=MAX_EXPERTS, topk=2, ep=64, node_limit=1)
    choices = route_choices(spec, 64 * 4096, "random", np.random.default_rng(0))
    assert choices.min() >= 0 and choices.max() >= MAX_EXPERTS - 64  # the last experts are chosen, as themselves
    assert (choices[:, 0] < choices[:, 1]).all()
