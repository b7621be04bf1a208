"""Dispatch/combine traffic: deduplication, closed forms with balanced routing, M=1 stays local."""

from __future__ import annotations

import numpy as np
import pytest

from sim.moe.gating import GATES
from sim.moe.select import select_experts
from sim.moe.spec import MoESpec
from sim.moe.traffic import layer_traffic

V3 = MoESpec()


def _traffic(spec: MoESpec, tokens_per_gpu: int, gate: str = "balanced", seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    choices = select_experts(GATES[gate](tokens_per_gpu * spec.ep, spec, rng), spec)
    src = np.repeat(np.arange(spec.ep), tokens_per_gpu)
    return choices, src, layer_traffic(choices, src, spec)


def test_balanced_ib_bytes_per_gpu_equal_the_expectation() -> None:
    """Balanced V3 routing: every token reaches exactly 4 nodes; on average 4 * 7/8 are remote."""
    tokens = 4096
    _, _, t = _traffic(V3, tokens)
    assert (t.nodes_per_token == 4).all()
    expected_tokens = tokens * 4 * 7 / 8
    assert t.ib.sum(axis=1).mean() == pytest.approx(expected_tokens)
    assert t.ib_bytes_per_gpu().mean() == pytest.approx(expected_tokens * 7168 * (1 + 4 / 128))
    assert (t.logical_rdma == tokens * 4).all()
    load = t.tokens_per_expert
    assert load.min() == load.max() == tokens * V3.ep * 8 // 256


def test_dedup_never_sends_a_token_twice_to_a_node() -> None:
    choices, src, t = _traffic(V3, 512, gate="random", seed=4)
    g = V3.gpus_per_node
    # brute force: distinct remote nodes per token, and distinct (token, gpu) NVLink moves
    ib = np.zeros_like(t.ib)
    nvl = np.zeros_like(t.nvlink)
    for row, s in zip(choices.tolist(), src.tolist(), strict=True):
        gpus = {e // V3.experts_per_gpu for e in row}
        for n in {d // g for d in gpus} - {s // g}:
            ib[s, n] += 1
        for d in gpus:
            sender = s if d // g == s // g else (d // g) * g + s % g
            if sender != d:
                nvl[sender, d] += 1
    assert np.array_equal(t.ib, ib) and np.array_equal(t.nvlink, nvl)
    assert t.ib.sum() < (choices.shape[0] * choices.shape[1])  # fewer IB messages than token-expert pairs


def test_node_limit_one_keeps_traffic_in_the_node_when_experts_allow() -> None:
    spec = MoESpec(node_limit=1)
    rng = np.random.default_rng(0)
    tokens = 256
    src = np.repeat(np.arange(spec.ep), tokens)
    scores = GATES["random"](len(src), spec, rng)
    # make each token's own node the best group: its experts score highest
    own_group = src // spec.gpus_per_node
    cols = own_group[:, None] * spec.experts_per_group + np.arange(spec.experts_per_group)
    np.put_along_axis(scores, cols, np.take_along_axis(scores, cols, axis=1) + 1.0, axis=1)
    t = layer_traffic(select_experts(scores, spec), src, spec)
    assert t.ib.sum() == 0 and (t.nodes_per_token == 1).all()
    assert t.nvlink.sum() > 0


def test_combine_bytes_use_bf16() -> None:
    _, _, t = _traffic(MoESpec(ep=16), 128)
    assert t.ib_bytes_per_gpu("combine").sum() == pytest.approx(t.ib.sum() * 7168 * 2)


@pytest.mark.parametrize(
    "spec",
    [
        V3,
        MoESpec(ep=8),
        MoESpec(ep=16, node_limit=2),
        MoESpec(ep=4),
        MoESpec(experts=192),
        MoESpec(ep=32, gpus_per_node=4),
    ],
    ids=["ep64", "ep8", "ep16-m2", "ep4", "3-experts-per-gpu", "4-gpus-per-node"],
)
def test_bitmask_counter_equals_sorting_counter(spec: MoESpec) -> None:
    """The fast counter and the sorting one agree, on any rows (unsorted, several experts per GPU)."""
    from sim.moe.traffic import _count, _count_masks, masks_fit

    assert masks_fit(spec)
    rng = np.random.default_rng(11)
    tokens = 3000
    choices = rng.integers(0, spec.experts, size=(tokens, spec.topk)).astype(np.int16)  # unsorted, repeats
    src = rng.integers(0, spec.ep, size=tokens).astype(np.int64)
    a, b = _count_masks(choices, src, spec), _count(choices, src, spec)
    for field in ("ib", "nvlink", "logical_rdma", "tokens_per_expert", "nodes_per_token"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_sorting_counter_serves_shapes_beyond_the_bitmask() -> None:
    from sim.moe.traffic import masks_fit

    wide = MoESpec(ep=128)  # 16 nodes: more than one uint64 of node bytes
    assert not masks_fit(wide) and not masks_fit(MoESpec(ep=64, gpus_per_node=16))
    _, _, t = _traffic(wide, 64)
    assert (t.nodes_per_token == 4).all() and t.ib.shape == (128, 16)
