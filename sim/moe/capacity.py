"""Capacity-factor MoE: the token choices an expert's capacity drops (``workload.capacity_factor``).

Megatron-Core's ``--moe-expert-capacity-factor f`` gives each expert, on each EP rank, room for

    C = ceil(T k / E x f)

of the rank's ``T`` tokens' ``k`` choices among ``E`` experts (``get_capacity`` in Megatron-Core's
``moe_utils``, from the rank's own token count: each rank drops before it dispatches). Choices past an
expert's capacity are dropped: the token is not sent to that expert and the expert does not compute
it (its output for that choice is zero, the residual carries the token). Which choices go is the drop
policy; the twin applies ``position`` (Megatron-Core's ``--moe-token-drop-policy position``: the
earliest tokens of the rank keep their place), as the routing here carries choices, not their
probabilities (Megatron-Core's default, ``probs``, drops the lowest-probability choices: the counts
per expert are the same, which tokens go differs). ``--moe-pad-expert-input-to-capacity``
(``workload.pad_to_capacity``): every expert computes exactly ``C`` rows from every rank (``EP x C``),
dropped or padded; the padding is computed, not sent (DeepEP moves tokens, not buffers).

With balanced routing and ``f >= 1`` nothing is dropped (each expert receives ``T k / E`` choices
from each rank). :func:`drop_over_capacity` is vectorised; :func:`drop_over_capacity_reference` is the
plain loop it is tested against.
"""

from __future__ import annotations

import math

import numpy as np

DROPPED = -1  # a dropped choice's expert id


def capacity(tokens: int, topk: int, experts: int, factor: float) -> int:
    """Choices one expert takes from one rank of ``tokens`` tokens (Megatron-Core's ``get_capacity``)."""
    if factor <= 0:
        raise ValueError(f"capacity factor must be > 0, got {factor}")
    return math.ceil(tokens * topk / experts * factor)


def drop_over_capacity(choices: np.ndarray, src: np.ndarray, experts: int, cap: int) -> np.ndarray:
    """``choices`` (tokens x top-k expert ids of tokens on ranks ``src``) with every choice past its
    (rank, expert) pair's first ``cap``, in token order, set to :data:`DROPPED`."""
    n, k = choices.shape
    if n and int(choices.min()) < 0:
        raise ValueError("choices already hold dropped (negative) entries")
    key = np.repeat(np.asarray(src, dtype=np.int64), k) * experts + choices.ravel().astype(np.int64)
    order = np.argsort(key, kind="stable")  # token order kept inside each (rank, expert)
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    rank = np.arange(len(key)) - np.repeat(starts, sizes)
    keep = np.empty(len(key), dtype=bool)
    keep[order] = rank < cap
    out = choices.astype(np.int64)
    out[~keep.reshape(n, k)] = DROPPED
    return out


def drop_over_capacity_reference(choices: np.ndarray, src: np.ndarray, experts: int, cap: int) -> np.ndarray:
    """:func:`drop_over_capacity`, token by token."""
    out = choices.astype(np.int64).copy()
    taken: dict[tuple[int, int], int] = {}
    for t in range(out.shape[0]):
        for j in range(out.shape[1]):
            pair = (int(src[t]), int(out[t, j]))
            if taken.get(pair, 0) >= cap:
                out[t, j] = DROPPED
            else:
                taken[pair] = taken.get(pair, 0) + 1
    return out


def padded_rows(ep: int, experts: int, cap: int) -> np.ndarray:
    """Rows every expert computes when padded to capacity: ``cap`` from each of the ``ep`` ranks."""
    return np.full(experts, ep * cap, dtype=np.int64)


__all__ = ["DROPPED", "capacity", "drop_over_capacity", "drop_over_capacity_reference", "padded_rows"]
