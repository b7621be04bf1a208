"""Redundant experts (sim.serve.placement): how many copies of each expert, and on which GPU.

Invariants of :func:`place` on random small cases, the greedy copy counts against a brute force over
every way to hand out the spare slots, and the plain layout when there is nothing spare.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.serve.placement import copies_for, place


def _cases(seed: int, n: int) -> list[tuple[np.ndarray, int, int]]:
    """(load, gpus, per_gpu) with 1-6 GPUs, 1-5 slots each, 1..slots experts; loads uniform, heavy
    tailed (Pareto, a few hot experts) or with zeros (experts nobody routes to)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gpus, per = int(rng.integers(1, 7)), int(rng.integers(1, 6))
        experts = int(rng.integers(1, gpus * per + 1))
        kind = i % 3
        if kind == 0:
            load = rng.random(experts)
        elif kind == 1:
            load = rng.pareto(1.0, experts) + 0.01
        else:
            load = rng.integers(0, 4, experts).astype(float)
        out.append((load, gpus, per))
    return out


CASES = _cases(0, 1500)


def test_place_invariants() -> None:
    """Every expert has at least one copy and at most one per GPU; the copies are the greedy counts
    for all the slots, each capped at the number of GPUs (a GPU holds an expert once); every GPU has
    exactly ``per_gpu`` slots, filled with exactly the copies (``-1`` only where the cap left slots
    over); no GPU holds an expert twice; an expert's copies are where ``replica_table`` says."""
    for load, gpus, per in CASES:
        p = place(load, gpus, per)
        experts = len(load)
        assert p.slots.shape == (gpus, per)
        assert p.gpus == gpus
        assert (p.copies >= 1).all()
        assert (p.copies <= gpus).all()
        if gpus * per > experts:
            assert np.array_equal(p.copies, np.minimum(copies_for(load, gpus * per), gpus))
        filled = p.slots >= 0
        assert filled.sum() == p.copies.sum()
        if (copies_for(load, gpus * per) <= gpus).all():
            assert filled.all(), "without the cap every slot holds a copy"
            assert p.copies.sum() == gpus * per
        assert p.redundant == p.copies.sum() - experts
        for g in range(gpus):
            row = p.slots[g][p.slots[g] >= 0].tolist()
            assert len(set(row)) == len(row), f"GPU {g} holds an expert twice: {p.slots[g]}"
        for e in range(experts):
            assert (p.slots == e).sum() == p.copies[e]
        start, flat = p.replica_table()
        for e in range(experts):
            holders = sorted(flat[start[e] : start[e + 1]].tolist())
            assert holders == sorted(np.nonzero((p.slots == e).any(axis=1))[0].tolist())


def test_gpu_loads_sum_to_the_total_load() -> None:
    """Each expert's load is split evenly over its copies, and every copy sits on some GPU: the GPUs'
    loads add up to the total load (to float rounding)."""
    for load, gpus, per in CASES:
        p = place(load, gpus, per)
        loads = p.gpu_loads(load)
        assert loads.shape == (gpus,)
        assert loads.sum() == pytest.approx(load.sum(), rel=1e-12, abs=1e-12)
        assert (loads >= 0).all()


def _spare_distributions(spare: int, experts: int) -> list[np.ndarray]:
    """Every way to hand ``spare`` extra copies to ``experts`` experts (stars and bars)."""
    out = []
    for bars in itertools.combinations(range(spare + experts - 1), experts - 1):
        edges = (-1, *bars, spare + experts - 1)
        out.append(np.array([edges[i + 1] - edges[i] - 1 for i in range(experts)]))
    return out


def test_greedy_copies_minimise_the_largest_load_per_copy() -> None:
    """``copies_for`` hands each extra slot to the expert with the highest load per copy; for every
    small case (1-5 experts, 0-6 spare slots) its largest ``load / copies`` equals the smallest one
    over all ways to distribute the spare slots (brute force). Exact equality: both are the same
    quotient ``load[e] / c`` of one expert."""
    rng = np.random.default_rng(1)
    for i in range(600):
        experts, spare = int(rng.integers(1, 6)), int(rng.integers(0, 7))
        load = rng.random(experts) if i % 2 else rng.integers(0, 20, experts).astype(float)
        c = copies_for(load, experts + spare)
        assert c.sum() == experts + spare
        assert (c >= 1).all()
        best = min((load / (1 + d)).max() for d in _spare_distributions(spare, experts))
        assert (load / c).max() == best, (load, c)


def test_no_spare_slots_is_the_plain_layout() -> None:
    """``per_gpu x gpus == experts``: expert ``e`` on GPU ``e // per_gpu`` (DeepEP's layout), one copy
    each, whatever the load."""
    rng = np.random.default_rng(2)
    for gpus, per in ((1, 1), (8, 32), (16, 16), (32, 8), (256, 1), (6, 3)):
        load = rng.pareto(1.0, gpus * per)
        p = place(load, gpus, per)
        assert np.array_equal(p.copies, np.ones(gpus * per, dtype=np.int64))
        for g in range(gpus):
            assert np.array_equal(p.slots[g] // per, np.full(per, g))
        assert np.array_equal(p.slots.ravel(), np.arange(gpus * per))


def test_hot_experts_get_the_spare_slots() -> None:
    """DeepSeek's decode layout in small: 2 slots per GPU on 8 GPUs for 12 experts; the 4 spare slots
    go to the experts whose load per copy is highest, so the hot expert (load 10, the rest 1) gets
    copies until its load per copy falls to the others': 4 extra copies, one per GPU at most."""
    load = np.array([10.0] + [1.0] * 11)
    p = place(load, 8, 2)
    assert p.copies[0] == 5
    assert (p.copies[1:] == 1).all()
    assert p.redundant == 4
    assert (p.slots == 0).any(axis=1).sum() == 5


def test_too_few_slots_are_refused() -> None:
    with pytest.raises(ScenarioError, match="cannot hold"):
        copies_for(np.ones(10), 9)
