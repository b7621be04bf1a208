"""One forward's routing (sim.serve.routing): the vectorised counting against the plain loops, the
copies it conserves, the router's group limit, the sampling's distribution and its seed."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.serve.deployment import build
from sim.serve.placement import Placement, place
from sim.serve.routing import BatchRouting, _choices, count, count_reference, route_batch, targets
from tests.serve.conftest import pool, scenario

FIELDS = ("rows", "shared_rows", "ib_send", "ib_recv", "nvl_send", "nvl_recv")
KERNELS = ("normal", "low_latency")


def _case(seed: int, gpus: int, per: int, experts: int) -> tuple[np.ndarray, Placement]:
    rng = np.random.default_rng([seed, 99])
    load = rng.pareto(1.5, experts) + 0.05
    return load / load.sum(), place(load, gpus, per)


def _same(a: BatchRouting, b: BatchRouting) -> None:
    assert a.tokens == b.tokens
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.shape == y.shape, f
        assert np.array_equal(x, y), f


# (gpus, per_gpu, experts, top_k, groups, group_limit); domains: every divisor of the GPUs and one
# NVLink domain larger than the unit (an NVL72 rack holding it)
SHAPES = [(8, 3, 16, 4, 4, 2), (8, 5, 32, 6, 8, 3), (16, 2, 24, 8, 4, 4), (4, 4, 16, 2, 1, 1), (12, 3, 36, 8, 6, 3)]


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("shared", [False, True])
def test_vectorised_count_equals_the_plain_loops(kernels: str, shared: bool) -> None:
    """``count`` (numpy, sorted per token) and ``count_reference`` (pair by pair) agree field by field
    on random batches, for every NVLink domain size that divides the unit (and one larger than it)."""
    for i, (gpus, per, experts, top_k, groups, limit) in enumerate(SHAPES):
        load, p = _case(i, gpus, per, experts)
        domains = [d for d in range(1, gpus + 1) if gpus % d == 0] + [2 * gpus]
        for domain in domains:
            rng = np.random.default_rng([i, domain, int(shared)])
            src, tgt, slot = targets(load, p, 57, top_k, groups, limit, shared, rng)
            _same(count(src, tgt, slot, p, domain, kernels), count_reference(src, tgt, slot, p, domain, kernels))


@pytest.mark.parametrize("kernels", KERNELS)
def test_copies_are_conserved(kernels: str) -> None:
    """Every (token, target) pair lands in one expert slot or one shared-expert copy:
    ``rows.sum() + shared_rows.sum() == tokens x (top_k + shared_as_routed)``, and a slot's rows go
    only to the expert it holds (no rows on an empty slot)."""
    for i, (gpus, per, experts, top_k, groups, limit) in enumerate(SHAPES):
        load, p = _case(i, gpus, per, experts)
        for shared in (False, True):
            r = route_batch(load, p, 101, top_k, groups, limit, 4, shared, kernels, np.random.default_rng(i))
            assert r.rows.sum() + r.shared_rows.sum() == 101 * (top_k + int(shared))
            assert r.shared_rows.sum() == (101 if shared else 0)
            assert (r.rows[p.slots < 0] == 0).all()


@pytest.mark.parametrize("domain", [1, 2, 4, 8, 16])
def test_low_latency_copies(domain: int) -> None:
    """Low-latency kernels: one copy per (token, target) pair, none to the token's own GPU; a copy
    is on NVLink inside the token's domain and on IB outside it. So what is sent is received on each
    link, and IB + NVLink copies are the pairs whose target is not the source GPU."""
    load, p = _case(7, 8, 4, 24)
    src, tgt, slot = targets(load, p, 200, 6, 4, 2, True, np.random.default_rng(domain))
    r = count(src, tgt, slot, p, domain, "low_latency")
    assert r.ib_send.sum() == r.ib_recv.sum()
    assert r.nvl_send.sum() == r.nvl_recv.sum()
    remote = tgt != src[:, None]
    assert r.ib_send.sum() + r.nvl_send.sum() == remote.sum()
    same_domain = tgt // domain == src[:, None] // domain
    assert r.nvl_send.sum() == (remote & same_domain).sum()
    if domain == 1:
        assert r.nvl_send.sum() == 0
    if domain >= 8:
        assert r.ib_send.sum() == 0


@pytest.mark.parametrize("domain", [1, 2, 4, 8])
def test_normal_kernels_one_ib_copy_per_remote_domain(domain: int) -> None:
    """Normal kernels: a token crosses IB once per remote domain holding any of its targets (to the
    GPU of its own index there) and reaches each distinct target GPU at most once over NVLink; so,
    token by token, IB copies == distinct remote domains of its targets (at most the unit's domains
    less one), NVLink copies <= distinct target GPUs; and the counts add up over tokens (the batch's
    counts are the sum of each token's alone)."""
    gpus = 8
    load, p = _case(3, gpus, 4, 24)
    src, tgt, slot = targets(load, p, 64, 6, 4, 2, False, np.random.default_rng(domain))
    whole = count(src, tgt, slot, p, domain, "normal")
    total = {f: np.zeros_like(getattr(whole, f)) for f in FIELDS}
    for i in range(len(src)):
        one = count(src[i : i + 1], tgt[i : i + 1], slot[i : i + 1], p, domain, "normal")
        doms = {int(t) // domain for t in tgt[i]} - {int(src[i]) // domain}
        assert one.ib_send.sum() == one.ib_recv.sum() == len(doms) <= gpus // domain - 1
        assert one.ib_send[src[i]] == len(doms)
        assert one.nvl_send.sum() == one.nvl_recv.sum() <= len(set(tgt[i].tolist()))
        for f in FIELDS:
            total[f] += getattr(one, f)
    for f in FIELDS:
        assert np.array_equal(total[f], getattr(whole, f)), f


def _groups_of(experts: np.ndarray, n_experts: int, groups: int) -> np.ndarray:
    """Distinct expert groups per token."""
    g = experts // (n_experts // groups)
    return np.array([len(set(row.tolist())) for row in g])


def test_group_limit() -> None:
    """DeepSeek-V3's router: 256 experts in 8 groups of 32, each token's 8 experts from at most 4
    groups. ``_choices`` gives 8 distinct experts within 4 groups for every token, and so do the
    experts behind ``targets``' (GPU, slot) pairs; without the limit many tokens reach more than 4
    groups (so the limit is what holds them)."""
    rng = np.random.default_rng(0)
    load = rng.pareto(1.0, 256) + 0.1
    logw = np.log(load / load.sum())
    limited = _choices(logw, 3000, 8, 8, 4, np.random.default_rng(1))
    assert all(len(set(row.tolist())) == 8 for row in limited)
    assert _groups_of(limited, 256, 8).max() <= 4
    free = _choices(logw, 3000, 8, 1, 1, np.random.default_rng(1))
    assert (_groups_of(free, 256, 8) > 4).mean() > 0.5
    p = place(load, 32, 9)
    _, tgt, slot = targets(load, p, 3000, 8, 8, 4, False, np.random.default_rng(2))
    experts = p.slots[tgt, slot]
    assert (experts >= 0).all()
    assert _groups_of(experts, 256, 8).max() <= 4


def _choices_reference(logw: np.ndarray, u: np.ndarray, top_k: int, groups: int, limit: int) -> list[set[int]]:
    """The router with plain loops from the same uniforms: Gumbel-perturbed scores; each group's
    score the sum of its ``top_k // limit`` best; the ``limit`` best groups kept; the ``top_k`` best
    experts among theirs."""
    experts = len(logw)
    size = experts // groups
    per = max(1, top_k // limit)
    out = []
    for row in u:
        s = logw.astype(np.float32) - np.log(-np.log(np.maximum(row, np.float32(1e-30))))
        gscore = [sum(sorted(s[g * size : (g + 1) * size].tolist(), reverse=True)[:per]) for g in range(groups)]
        kept = sorted(range(groups), key=lambda g: -gscore[g])[:limit]
        allowed = [e for g in kept for e in range(g * size, (g + 1) * size)]
        out.append(set(sorted(allowed, key=lambda e: -s[e])[:top_k]))
    return out


@pytest.mark.parametrize(("experts", "top_k", "groups", "limit"), [(64, 8, 8, 4), (48, 6, 4, 2), (32, 4, 1, 1)])
def test_choices_equal_a_plain_router(experts: int, top_k: int, groups: int, limit: int) -> None:
    """``_choices`` (partitions over arrays) picks the same experts as the router written with loops,
    from the same random draws (the uniforms are the first thing it draws)."""
    rng = np.random.default_rng(4)
    logw = np.log(rng.pareto(1.0, experts) + 0.1)
    got = _choices(logw, 200, top_k, groups, limit, np.random.default_rng(5))
    u = np.random.default_rng(5).random((200, experts), dtype=np.float32)
    want = _choices_reference(logw, u, top_k, groups, limit)
    assert [set(row.tolist()) for row in got] == want


def test_top1_frequencies_follow_the_load() -> None:
    """With one expert per token and no group limit, the Gumbel-max trick picks expert ``e`` with
    probability ``w_e / sum(w)``: each expert's count is Binomial(n, p_e), within 4.5 standard
    deviations of ``n p_e`` (a union bound over the 15 experts with load: false alarm ~1e-4)."""
    w = np.array([8.0, 4.0, 2.0, 1.0] * 4)
    w[5] = 0.0  # a load of 0: never chosen
    p = w / w.sum()
    n = 100_000
    got = _choices(np.log(np.maximum(w, 1e-300)), n, 1, 1, 1, np.random.default_rng(6))[:, 0]
    counts = np.bincount(got, minlength=len(w))
    assert counts[5] == 0
    sd = np.sqrt(n * p * (1 - p))
    assert (np.abs(counts - n * p) <= 4.5 * sd + 1e-9).all(), (counts, n * p)


def test_copies_of_an_expert_share_its_tokens_evenly() -> None:
    """A token of an expert with ``c`` copies goes to each copy with probability ``1/c``: with every
    token on the hot expert (weights 0 elsewhere, top-1), each copy's rows are Binomial(n, 1/c),
    within 4.5 standard deviations of ``n/c``."""
    load = np.array([1.0] + [0.0] * 7)
    p = place(np.array([50.0] + [1.0] * 7), 4, 3)  # the hot expert gets the 4 spare slots, one per GPU
    c = int(p.copies[0])
    assert c == 4
    n = 40_000
    r = route_batch(load, p, n, 1, 1, 1, 4, False, "low_latency", np.random.default_rng(7))
    rows = r.rows[p.slots == 0]
    assert rows.sum() == n
    assert (np.abs(rows - n / c) <= 4.5 * np.sqrt(n * (1 / c) * (1 - 1 / c))).all(), rows


@pytest.mark.parametrize("kernels", KERNELS)
def test_same_seed_same_bits(kernels: str) -> None:
    """The same generator seed gives the same routing bit for bit; another seed another one."""
    load, p = _case(1, 16, 3, 40)

    def run(seed: int) -> BatchRouting:
        return route_batch(load, p, 300, 8, 8, 4, 8, True, kernels, np.random.default_rng(seed))

    _same(run(11), run(11))
    assert not np.array_equal(run(11).rows, run(12).rows)


def test_group_limit_that_cannot_hold_top_k_is_refused() -> None:
    """DeepSeek-V3 (256 experts, top-8, 4 groups kept) with ``router_groups: 256`` keeps 4 groups of
    one expert: 4 experts for 8 picks. The scenario is refused (otherwise every token would also get
    experts from groups its router dropped)."""
    serve = {"duration_s": 1, "traffic": {"rate_per_s": 1}, "colocated": pool(), "router_groups": 256}
    with pytest.raises(ScenarioError, match="router_groups"):
        scenario(serve)


def test_nvl72_domain_that_does_not_divide_the_unit() -> None:
    """``cluster.scale_up: nvl72`` makes the NVLink domain 72 GPUs; a prefill unit of 12 nodes (96
    GPUs, normal kernels) is then one full domain and part of another, and DeepEP's forwarder (the
    same index in the other domain) would not exist: the layout is refused, naming cluster.scale_up."""
    serve = {
        "duration_s": 1,
        "traffic": {"rate_per_s": 1},
        "prefill": pool(nodes=12, unit_nodes=12, kernels="normal"),
        "decode": pool(),
    }
    with pytest.raises(ScenarioError, match=r"cluster\.scale_up: a prefill unit of 96 GPUs"):
        build(scenario(serve, scale_up="nvl72"))
