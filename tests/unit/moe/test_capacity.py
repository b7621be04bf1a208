"""Capacity-factor MoE (sim.moe.capacity): Megatron-Core's capacity, the choices it drops, what the
dispatch and the experts then see.

- ``C = ceil(T k / E x f)`` per (EP rank, expert), as Megatron-Core's ``get_capacity``;
- the vectorised drop equals the token-by-token reference, keeps the earliest ``C`` choices of every
  (rank, expert) and drops nothing else;
- dropping choices only removes messages: every IB, NVLink and logical-RDMA count is at most the
  dropless one, and the experts' tokens are exactly the kept choices;
- balanced routing (each expert ``T k / E`` choices from each rank) drops nothing at ``f >= 1`` and
  keeps exactly ``C`` per (rank, expert) below it; padding gives every expert ``EP x C`` rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.moe.alltoall import capacity_traffic, route_choices, route_layers
from sim.moe.capacity import DROPPED, capacity, drop_over_capacity, drop_over_capacity_reference
from sim.moe.gating import Gating
from sim.moe.spec import MoESpec
from sim.moe.traffic import layer_traffic

SPEC = MoESpec(ep=16)  # DeepSeek-V3's 256 experts, top-8, 4 nodes at most, over 2 nodes of 8
TOKENS = 256


def test_capacity_is_megatrons() -> None:
    assert capacity(4096, 8, 256, 1.0) == 128
    assert capacity(4096, 8, 256, 1.25) == 160
    assert capacity(100, 2, 8, 1.0) == 25
    assert capacity(100, 2, 8, 1.01) == 26  # ceil
    with pytest.raises(ValueError, match="> 0"):
        capacity(10, 2, 8, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cap", [1, 3, 8, 1000])
def test_the_vectorised_drop_is_the_reference(seed: int, cap: int) -> None:
    rng = np.random.default_rng(seed)
    choices = route_choices(SPEC, TOKENS * SPEC.ep, Gating("skewed", alpha=1.2), rng)
    src = np.repeat(np.arange(SPEC.ep), TOKENS)
    fast = drop_over_capacity(choices, src, SPEC.experts, cap)
    assert np.array_equal(fast, drop_over_capacity_reference(choices, src, SPEC.experts, cap))
    kept = fast != DROPPED
    assert np.array_equal(fast[kept], choices[kept])  # nothing but drops
    for s in range(SPEC.ep):  # at most cap per (rank, expert), and all of them where there were fewer
        before = np.bincount(choices[src == s].ravel(), minlength=SPEC.experts)
        after = np.bincount(fast[src == s][kept[src == s]].ravel(), minlength=SPEC.experts)
        assert np.array_equal(after, np.minimum(before, cap))


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5])
def test_drops_only_remove_messages(factor: float) -> None:
    rng = np.random.default_rng(7)
    choices = route_choices(SPEC, TOKENS * SPEC.ep, Gating("random"), rng)
    src = np.repeat(np.arange(SPEC.ep), TOKENS)
    whole = layer_traffic(choices, src, SPEC)
    cut = capacity_traffic(SPEC, TOKENS, choices, src, Gating("random", capacity_factor=factor))
    assert (cut.ib <= whole.ib).all() and (cut.nvlink <= whole.nvlink).all()
    assert (cut.logical_rdma <= whole.logical_rdma).all() and (cut.nodes_per_token <= whole.nodes_per_token).all()
    cap = capacity(TOKENS, SPEC.topk, SPEC.experts, factor)
    assert (cut.tokens_per_expert <= SPEC.ep * cap).all()
    dropped = drop_over_capacity(choices, src, SPEC.experts, cap)
    assert cut.tokens_per_expert.sum() == (dropped != DROPPED).sum() < choices.size
    assert cut.padded_rows is None and cut.expert_rows is cut.tokens_per_expert


def test_balanced_routing_and_padding() -> None:
    dropless = route_layers(SPEC, TOKENS, 1, "balanced", 0)[0]
    same = route_layers(SPEC, TOKENS, 1, Gating("balanced", capacity_factor=1.0), 0)[0]
    for a in ("ib", "nvlink", "logical_rdma", "tokens_per_expert", "nodes_per_token"):
        assert np.array_equal(getattr(same, a), getattr(dropless, a)), a
    half = route_layers(SPEC, TOKENS, 1, Gating("balanced", capacity_factor=0.5), 0)[0]
    cap = capacity(TOKENS, SPEC.topk, SPEC.experts, 0.5)
    assert (half.tokens_per_expert == SPEC.ep * cap).all()
    padded = route_layers(SPEC, TOKENS, 1, Gating("random", capacity_factor=1.25, pad_to_capacity=True), 3)[0]
    cap = capacity(TOKENS, SPEC.topk, SPEC.experts, 1.25)
    assert (padded.expert_rows == SPEC.ep * cap).all() and (padded.tokens_per_expert <= SPEC.ep * cap).all()
