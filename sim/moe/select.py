"""DeepSeek-V3's node-limited expert selection, vectorised over tokens (numpy).

For each token: add the per-expert balancing bias to the affinity scores; score each group (the
experts hosted by one node of the EP group) by the sum of its ``topk / node_limit`` best biased
scores; keep the ``node_limit`` best groups; pick the ``topk`` best biased scores among the experts
of the kept groups. The bias only steers selection (gating weights use the raw scores, not needed
for traffic). ``node_limit`` equal to the number of groups is plain top-k.
"""

from __future__ import annotations

import numpy as np

from sim.moe.spec import MoESpec

CHUNK = 8192  # tokens per block: 8192 x 256 float32 scores = 8 MB, cache-friendly (about 6x faster)


def select_experts(scores: np.ndarray, spec: MoESpec, bias: np.ndarray | None = None) -> np.ndarray:
    """Chosen experts (tokens x topk, int16, ascending per row) for affinity ``scores`` (tokens x experts)."""
    if len(scores) > CHUNK:
        return np.concatenate([_select(scores[i : i + CHUNK], spec, bias) for i in range(0, len(scores), CHUNK)])
    return _select(scores, spec, bias)


def _select(scores: np.ndarray, spec: MoESpec, bias: np.ndarray | None) -> np.ndarray:
    tokens, experts = scores.shape
    if experts != spec.experts:
        raise ValueError(f"scores have {experts} experts, spec has {spec.experts}")
    biased = scores if bias is None else scores + bias.astype(scores.dtype)
    k = spec.topk
    if spec.limit >= spec.groups:
        chosen = np.argpartition(biased, experts - k, axis=1)[:, -k:]
    else:
        per = spec.experts_per_group
        grouped = biased.reshape(tokens, spec.groups, per)
        group_score = np.sort(grouped, axis=2)[:, :, -spec.group_topk :].sum(axis=2)
        kept = np.argpartition(group_score, spec.groups - spec.limit, axis=1)[:, -spec.limit :]
        candidates = np.take_along_axis(grouped, kept[:, :, None], axis=1).reshape(tokens, spec.limit * per)
        best = np.argpartition(candidates, spec.limit * per - k, axis=1)[:, -k:]
        chosen = np.take_along_axis(kept, best // per, axis=1) * per + best % per
    chosen.sort(axis=1)
    return chosen.astype(np.int16)


def select_experts_reference(scores: np.ndarray, spec: MoESpec, bias: np.ndarray | None = None) -> np.ndarray:
    """Plain-Python reference of :func:`select_experts` (for tests on small inputs)."""
    out = []
    b = np.zeros(spec.experts) if bias is None else bias
    for row in scores:
        s = [float(row[e]) + float(b[e]) for e in range(spec.experts)]
        per = spec.experts_per_group
        group_scores = [sum(sorted(s[g * per : (g + 1) * per])[-spec.group_topk :]) for g in range(spec.groups)]
        kept = sorted(range(spec.groups), key=lambda g: -group_scores[g])[: spec.limit]
        candidates = [e for e in range(spec.experts) if e // per in kept]
        out.append(sorted(sorted(candidates, key=lambda e: -s[e])[: spec.topk]))
    return np.array(out, dtype=np.int16)
