"""One forward's routing in a serving unit: which GPUs each token's experts are on, and what that
makes every GPU compute, send and receive.

Tokens are spread evenly over the unit's GPUs (the attention DP ranks are load-balanced: token ``i``
starts on GPU ``i mod G``). Each token picks ``top_k`` distinct experts with probabilities set by the
expert load (weighted sampling without replacement, by the Gumbel top-k trick: the ``top_k`` largest
``log w_e + Gumbel`` are a draw without replacement proportional to ``w``), limited as the model's
router limits them: to ``group_limit`` of ``groups`` equal groups of consecutive experts, ranked by
the sum of their ``top_k / group_limit`` best perturbed scores (DeepSeek-V3's config: 8 groups,
4 kept; REFERENCE.md section 1). In training the groups are the nodes of the EP group; in serving
they are expert ids, and which nodes a token reaches follows from the placement. Each chosen expert
goes to one of its copies, uniformly. With ``shared_as_routed`` the shared expert is a
``top_k + 1``-th target: one copy per GPU, the token's copy uniform over the unit's GPUs
(DeepSeek's decode, V3 section 3.4.2).

What moves, per kernel family (REFERENCE.md section 4, DeepEP's legacy README):

* ``normal`` kernels (prefill): a token crosses IB once per remote NVLink domain holding any of its
  targets, to the GPU of the same index there, which forwards it over NVLink to each target GPU of
  its domain; targets in the token's own domain are reached over NVLink directly. Copies are per
  (token, domain) on IB and per (token, GPU) on NVLink.
* ``low_latency`` kernels (decode): a token is written straight into each target expert's receive
  buffer: one copy per (token, expert), no deduplication; over NVLink inside the token's NVLink
  domain, over IB (RDMA) outside it; the token's own GPU moves nothing.

:func:`route_batch` is vectorised; :func:`route_batch_reference` is the same counting with plain
loops, and the tests tie the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.serve.placement import Placement


@dataclass(frozen=True)
class BatchRouting:
    """Copies per GPU for one forward of ``tokens`` tokens (dispatch direction; combine is the
    reverse: what a GPU sends in dispatch it receives in combine)."""

    tokens: int
    rows: np.ndarray  # (gpus, per_gpu) token rows of each routed-expert slot
    shared_rows: np.ndarray  # (gpus,) token rows of the GPU's shared-expert copy (shared_as_routed)
    ib_send: np.ndarray  # (gpus,) copies a GPU sends over IB
    ib_recv: np.ndarray
    nvl_send: np.ndarray  # (gpus,) copies a GPU sends over NVLink (its own and forwarded)
    nvl_recv: np.ndarray


def _choices(
    logw: np.ndarray, tokens: int, top_k: int, groups: int, group_limit: int, rng: np.random.Generator
) -> np.ndarray:
    """(tokens, top_k) distinct experts per token: the ``top_k`` best of ``log w + Gumbel`` among
    the experts of the ``group_limit`` best of ``groups`` equal expert groups (a group's score: the
    sum of its ``top_k / group_limit`` best), as the model's router limits them."""
    experts = len(logw)
    u = rng.random((tokens, experts), dtype=np.float32)
    scores = logw.astype(np.float32)[None, :] - np.log(-np.log(np.maximum(u, np.float32(1e-30))))
    if 1 < groups and group_limit < groups and experts % groups == 0:
        per = max(1, top_k // group_limit)
        g = scores.reshape(tokens, groups, experts // groups)
        best = -np.partition(-g, per - 1, axis=2)[:, :, :per] if per < g.shape[2] else g
        group_score = best.sum(axis=2)
        drop = np.argpartition(-group_score, group_limit - 1, axis=1)[:, group_limit:]
        np.put_along_axis(g, drop[:, :, None], -np.inf, axis=1)
    return np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]


def targets(
    load: np.ndarray,
    placement: Placement,
    tokens: int,
    top_k: int,
    groups: int,
    group_limit: int,
    shared_as_routed: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, target GPU, slot index) of each (token, expert) pair: src (tokens,), the rest (tokens, k').
    The shared expert's slot index is ``-1``."""
    g = placement.gpus
    src = np.arange(tokens, dtype=np.int64) % g
    start, flat = placement.replica_table()
    chosen = _choices(np.log(np.maximum(load, 1e-300)), tokens, top_k, groups, group_limit, rng)
    pick = rng.integers(0, 1 << 62, size=chosen.shape) % placement.copies[chosen]
    tgt = flat[start[chosen] + pick]
    # slot index of the expert on its GPU
    slot = np.argmax(placement.slots[tgt] == chosen[..., None], axis=-1)
    if shared_as_routed:
        shared = rng.integers(0, g, size=(tokens, 1))
        tgt = np.concatenate([tgt, shared], axis=1)
        slot = np.concatenate([slot, np.full((tokens, 1), -1)], axis=1)
    return src, tgt, slot


def count(
    src: np.ndarray, tgt: np.ndarray, slot: np.ndarray, placement: Placement, domain: int, kernels: str
) -> BatchRouting:
    """Rows and copies per GPU of routed pairs (see the module docstring)."""
    g, per = placement.slots.shape
    tokens = len(src)
    routed = slot >= 0
    rows = np.bincount((tgt * per + slot)[routed], minlength=g * per).reshape(g, per)
    shared_rows = np.bincount(tgt[~routed], minlength=g)
    src2 = np.broadcast_to(src[:, None], tgt.shape)
    same_dom = (tgt // domain) == (src2 // domain)
    if kernels == "low_latency":
        remote = tgt != src2
        ib = remote & ~same_dom
        nvl = remote & same_dom
        return BatchRouting(
            tokens,
            rows,
            shared_rows,
            np.bincount(src2[ib], minlength=g),
            np.bincount(tgt[ib], minlength=g),
            np.bincount(src2[nvl], minlength=g),
            np.bincount(tgt[nvl], minlength=g),
        )
    # normal kernels: distinct target GPUs per token
    srt = np.sort(tgt, axis=1)
    first = np.ones_like(srt, dtype=bool)
    first[:, 1:] = srt[:, 1:] != srt[:, :-1]
    s = np.broadcast_to(src[:, None], srt.shape)
    tdom, sdom = srt // domain, s // domain
    # IB: one copy per (token, remote domain), to the same-index GPU there
    dfirst = first.copy()
    dfirst[:, 1:] &= tdom[:, 1:] != tdom[:, :-1]  # sorted by GPU, so a domain's GPUs are adjacent
    ib = dfirst & (tdom != sdom)
    fwd = tdom * domain + s % domain  # the forwarder of each pair's domain
    ib_send = np.bincount(s[ib], minlength=g)
    ib_recv = np.bincount(fwd[ib], minlength=g)
    # NVLink: each distinct target GPU other than the one already holding the token there
    holder = np.where(tdom == sdom, s, fwd)
    nvl = first & (srt != holder)
    return BatchRouting(
        tokens,
        rows,
        shared_rows,
        ib_send,
        ib_recv,
        np.bincount(holder[nvl], minlength=g),
        np.bincount(srt[nvl], minlength=g),
    )


def route_batch(
    load: np.ndarray,
    placement: Placement,
    tokens: int,
    top_k: int,
    groups: int,
    group_limit: int,
    domain: int,
    shared_as_routed: bool,
    kernels: str,
    rng: np.random.Generator,
) -> BatchRouting:
    """One forward's routing of ``tokens`` tokens on the unit (vectorised)."""
    src, tgt, slot = targets(load, placement, tokens, top_k, groups, group_limit, shared_as_routed, rng)
    return count(src, tgt, slot, placement, domain, kernels)


def count_reference(
    src: np.ndarray, tgt: np.ndarray, slot: np.ndarray, placement: Placement, domain: int, kernels: str
) -> BatchRouting:
    """:func:`count` with plain loops, pair by pair."""
    g, per = placement.slots.shape
    rows = np.zeros((g, per), dtype=np.int64)
    shared = np.zeros(g, dtype=np.int64)
    ib_s, ib_r, nv_s, nv_r = (np.zeros(g, dtype=np.int64) for _ in range(4))
    for i in range(len(src)):
        s = int(src[i])
        for t, sl in zip(tgt[i].tolist(), slot[i].tolist(), strict=True):
            if sl >= 0:
                rows[t, sl] += 1
            else:
                shared[t] += 1
        if kernels == "low_latency":
            for t in tgt[i].tolist():
                if t == s:
                    continue
                if t // domain == s // domain:
                    nv_s[s] += 1
                    nv_r[t] += 1
                else:
                    ib_s[s] += 1
                    ib_r[t] += 1
            continue
        gpus = sorted(set(tgt[i].tolist()))
        for d in sorted({t // domain for t in gpus}):
            if d != s // domain:
                ib_s[s] += 1
                ib_r[d * domain + s % domain] += 1
        for t in gpus:
            holder = s if t // domain == s // domain else (t // domain) * domain + s % domain
            if t != holder:
                nv_s[holder] += 1
                nv_r[t] += 1
    return BatchRouting(len(src), rows, shared, ib_s, ib_r, nv_s, nv_r)
