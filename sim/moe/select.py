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


def select_experts(scores: np.ndarray, spec: MoESpec, bias: np.ndarray | None = None) -> np.ndarray:
    """Chosen experts (tokens x topk, int16, ascending per row) for affinity ``scores`` (tokens x experts)."""
    tokens, experts = scores.shape
    if experts != spec.experts:
        raise ValueError(f"scores have {experts} experts, spec has {spec.experts}")
    biased = scores if bias is None else scores + bias.astype(scores.dtype)
    if spec.limit < spec.groups:
        grouped = biased.reshape(tokens, spec.groups, spec.experts_per_group)
        best = np.partition(grouped, spec.experts_per_group - spec.group_topk, axis=2)[:, :, -spec.group_topk :]
        group_score = best.sum(axis=2)
        drop = np.argpartition(group_score, spec.groups - spec.limit - 1, axis=1)[:, : spec.groups - spec.limit]
        masked = grouped.copy()
        masked[np.arange(tokens)[:, None], drop, :] = -np.inf
        biased = masked.reshape(tokens, experts)
    chosen = np.argpartition(biased, experts - spec.topk, axis=1)[:, -spec.topk :]
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
