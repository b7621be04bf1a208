"""How many decode steps a request needs with multi-token prediction: the accepted drafts, drawn.

A decode step makes one token and then, for each of ``drafts`` MTP draft tokens in order, one more
while they are accepted, each with probability ``p`` (``acceptance``): the step makes ``1 + X`` tokens
with ``P(X >= j) = p^j`` for ``j <= drafts``. Drawn from one uniform ``u`` as ``X = min(drafts,
floor(log u / log p))`` (``P(floor(log u / log p) >= j) = P(u <= p^j) = p^j``). A request of ``n``
tokens to make needs the first ``k`` steps whose tokens sum to ``n`` or more (the last step may
overshoot; DeepSeek-V3 section 5.4.3: 85-90% acceptance of the second token).

Each request reads the next ``n`` uniforms of one stream (at most one per step, at most ``n`` steps),
in the order requests are admitted, so a run's draws depend only on its seed and that order.
:func:`steps_reference` draws them request by request (a dozen numpy calls each: with some 180,000
requests in the default serve scenario, a third of its run). :class:`DraftSteps` turns the stream
into tokens a step a block at a time (one pass; blocks double from :data:`FIRST_BLOCK` to
:data:`BLOCK`, so a short run draws little ahead) and sums them along the block: sums of whole
numbers below 2^53 are exact in floats, so a request's own sums are differences of the block's and
its ``k`` is the same, request for request (tested against the reference with blocks small enough
to cut requests in two).
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 1 << 20  # uniforms drawn at a time at most (8 MiB, and 8 MiB of sums)
FIRST_BLOCK = 1 << 14  # the first draw's (doubling up to BLOCK: a short run draws little ahead)


def _tokens_a_step(u: np.ndarray, p: float, drafts: int) -> np.ndarray:
    """``1 + X`` for each uniform (module docstring)."""
    return 1 + np.minimum(drafts, np.floor(np.log(np.maximum(u, 1e-300)) / math.log(p)))


def _trivial(tokens: int, p: float, drafts: int) -> int | None:
    """The steps where nothing is drawn: no drafts, none accepted, or every one accepted."""
    if drafts == 0 or p == 0 or tokens <= 0:
        return tokens
    if p >= 1:
        return -(-tokens // (1 + drafts))
    return None


def steps_reference(rng: np.random.Generator, tokens: int, p: float, drafts: int) -> int:
    """The steps that make ``tokens`` tokens, from the next ``tokens`` uniforms of ``rng`` (plain)."""
    fixed = _trivial(tokens, p, drafts)
    if fixed is not None:
        return fixed
    made = np.cumsum(_tokens_a_step(rng.random(tokens), p, drafts))
    return int(np.searchsorted(made, tokens) + 1)


class DraftSteps:
    """:func:`steps_reference` for one request after another on one stream, a block of draws at a time."""

    def __init__(self, rng: np.random.Generator, p: float, drafts: int, block: int = BLOCK) -> None:
        self.rng, self.p, self.drafts, self.block = rng, p, drafts, block
        self._made = np.zeros(0)  # tokens a step of the stream's uniforms drawn, summed along the block
        self._pos = 0  # the block's first uniform not yet read
        self._next = min(FIRST_BLOCK, block)  # the next draw's size (the steps do not depend on it)

    def __call__(self, tokens: int) -> int:
        fixed = _trivial(tokens, self.p, self.drafts)
        if fixed is not None:
            return fixed
        pos, made = self._pos, self._made
        if pos + tokens > len(made):  # the rest of the block, then fresh draws
            left = np.diff(made[pos - 1 :]) if pos else np.diff(made, prepend=0.0)
            step = _tokens_a_step(self.rng.random(max(self._next, tokens)), self.p, self.drafts)
            self._next = min(2 * self._next, self.block)
            made = self._made = np.cumsum(np.concatenate((left, step)))
            pos = 0
        before = made[pos - 1] if pos else 0.0
        self._pos = pos + tokens
        return int(np.searchsorted(made, before + tokens)) - pos + 1


__all__ = ["BLOCK", "DraftSteps", "steps_reference"]
