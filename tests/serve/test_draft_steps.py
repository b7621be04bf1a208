"""A request's decode steps under MTP (``sim/serve/draft_steps.py``): the block-at-a-time draws give the
same steps as the plain draws request by request, for any sequence of requests, acceptance, drafts and
block (blocks far smaller than a request included, so requests straddle blocks); and the steps'
law, where it is closed."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.serve.draft_steps import DraftSteps, steps_reference


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-2, 300), min_size=1, max_size=40),
    st.sampled_from([0.0, 1e-9, 0.3, 0.85, 0.999999, 1.0]),
    st.integers(0, 4),
    st.integers(1, 64),
    st.integers(0, 2**32 - 1),
)
def test_block_draws_give_the_plain_steps(tokens: list[int], p: float, drafts: int, block: int, seed: int) -> None:
    fast = DraftSteps(np.random.default_rng([seed, 7]), p, drafts, block=block)
    plain = np.random.default_rng([seed, 7])
    assert [fast(n) for n in tokens] == [steps_reference(plain, n, p, drafts) for n in tokens]


def test_the_default_block_too() -> None:
    """Some 3,000 requests of up to 2,000 tokens: a few blocks of 2^20 uniforms, requests across their edges."""
    rng = np.random.default_rng(5)
    tokens = rng.integers(1, 2000, size=3000).tolist()
    fast = DraftSteps(np.random.default_rng([11, 7]), 0.85, 1)
    plain = np.random.default_rng([11, 7])
    assert [fast(n) for n in tokens] == [steps_reference(plain, n, 0.85, 1) for n in tokens]


def test_depth_one_steps_follow_walds_identity() -> None:
    """Depth 1, p = 0.85: a step makes 1 + Bernoulli(p) tokens, so ``N / (1 + p) <= E[steps] <= (N + 1) /
    (1 + p)`` (Wald; the last step overshoots by at most one). 20,000 requests of N = 200: the mean's
    standard error is under 0.02 steps (a step's tokens vary by p (1 - p) = 0.13), so 4 of them bound it."""
    steps = DraftSteps(np.random.default_rng([3, 7]), 0.85, 1)
    mean = float(np.mean([steps(200) for _ in range(20000)]))
    se = math.sqrt(200 * 0.85 * 0.15 / 1.85**3 / 20000)  # the renewal count's variance N var / mu^3, per request
    assert 200 / 1.85 - 4 * se <= mean <= 201 / 1.85 + 4 * se
