"""Exact fast sampling of ``random`` and ``skewed`` gating through DeepSeek-V3's node-limited
selection, and a compiled traffic counter (numba). See ``docs/routing.md``.

The reference path draws all ``experts`` scores of a token in numpy and selects
(:mod:`sim.moe.select`). The two kernels here give the same distribution of choices (up to
floating-point rounding) at a fraction of the cost, each with the traffic counting fused in.

**Scores as odds.** An expert's score ``s = sigmoid(logit(u) + log w)`` (``u`` uniform, ``w`` its
popularity weight ``p * experts``; ``w = 1`` is ``random``) is ``s = x / (1 + x)`` with odds
``x = w u / (1 - u)``; the selection only compares scores and sums a group's best ones, so the odds
carry everything.

``skewed`` (``_route_dense``): every expert's odds are drawn, ``BATCH`` tokens at a time as vector
loops over the tokens (one SplitMix64 word per (token, expert), by counter: a 52-bit ``u``), each
group's ``L = max(group_topk, ceil(k / limit))`` best kept by a max/min network as they come, the
``limit`` best groups kept by ranks (by the sum of their ``group_topk`` best scores), and the top-k
taken among the keys of the kept groups at or above ``tau``, the least of their ``L`` best
(``L * limit >= k`` keys are known to be at or above it, so the top k are among them): a bit mask
per (group, token) marks those keys in a vector pass, a token's few candidates (10 on average
for V3) are read off it and the smallest dropped (past ``DROPS`` of them, the k largest taken
in one selection). Experts of weight 0 (score 0 on the reference
path) get the key ``u - 1 < 0``: below every live expert, in random order among themselves, and
adding 0 to their group's score.

``random`` (``_route_iid``): only the scores the selection looks at are drawn, largest first, as
the Rényi representation of uniform order statistics, kept as ``y = -log(score)``: the largest of
``m`` uniforms below ``exp(-y)`` is ``exp(-(y + E / m))``. Groups are ranked by
``log(exp(-y1) + exp(-y2))`` (a series below ``y2 - y1 = 0.25``, error < 1e-14) and merged on ``y``,
so exponentials and logarithms are computed only in rare fix-ups. Every group's first
``group_topk`` order statistics give its score; the ``limit`` best groups are kept; the top-k among
them is a k-way merge of the kept groups' streams, each advanced lazily (a group's next score is
drawn only when the merge needs it; by independence, the same as having drawn all its scores up
front). Which experts hold a group's top ranks is a uniform random subset of the group
(exchangeability), drawn once at the end (log2(group size)-bit indices, repeats rejected, for
groups of a power of two up to 32; else Floyd's algorithm). 24 random numbers per token for V3
instead of 256. The merge's exponentials are drawn ahead, one row per pop that can need one (pop
``p`` uses row ``p - group_topk + 1``), so a token's merge needs no other token's state and runs as
vector loops over the tokens for V3's shape (at most ``WIDE`` kept groups); so do every pick's first
``TRIES`` attempts at an expert index, a lane leaving the vector loops for the token-by-token loop at
the pick they fail (two repeats, or a third random word needed), which continues it exactly.

Random numbers come from SplitMix64 (a 64-bit counter through a bijective mix; passes BigCrush)
seeded from the caller's ``numpy`` generator or ``SeedSequence``, so a seed gives the same routing
on every run and thread count; exponentials are ``-log(u)`` of 53-bit uniforms, with the logarithm
as a series in vector loops (:func:`_fill_exponentials`). Kernels are
compiled with ``cache=True`` (the first call in a fresh environment compiles for a few seconds;
later processes load the cache).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.moe.spec import MoESpec
from sim.moe.traffic import Traffic

try:
    import numba
    from numba.cpython.unsafe.numbers import trailing_zeros

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the reference path is used instead
    HAVE_NUMBA = False


def _trailing_zeros_py(x: Any) -> int:
    """Index of the lowest set bit (plain Python: the kernels run uncompiled without numba)."""
    return (int(x) & -int(x)).bit_length() - 1


_ctz: Any = trailing_zeros if HAVE_NUMBA else _trailing_zeros_py


def _jit(fn: Any) -> Any:
    """Compile with numba (cached on disk, releasing the GIL) when it is installed."""
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn) if HAVE_NUMBA else fn


def _leaf(fn: Any) -> Any:
    """A compiled helper without reference counting (no allocation inside): called with many arrays
    in a hot loop, it then costs a plain call instead of atomic reference-count updates per array."""
    options: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "_nrt": False}
    return numba.njit(**options)(fn) if HAVE_NUMBA else fn


def _inline(fn: Any) -> Any:
    """A helper compiled into its callers (numba IR inlining)."""
    return numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")(fn) if HAVE_NUMBA else fn


_U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(0x100000000)
_M64 = 0xFFFFFFFFFFFFFFFF

# Random numbers: SplitMix64 (Steele, Lea & Flood 2014; passes BigCrush): the state is one uint64
# counter, kept in a register and threaded through the helpers (state in, (value, state) out).


@_inline
def _mix(z: Any) -> Any:
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


@_inline
def _uniform(st: Any) -> tuple[float, Any]:
    """Uniform on (0, 1], 53 bits (never 0, so its logarithm is finite)."""
    st = st + _GOLDEN
    return float(np.int64(_mix(st) >> _U64(11)) + 1) * (1.0 / 9007199254740992.0), st


@_inline
def _below(st: Any, n: int) -> tuple[Any, Any]:
    """Uniform integer in [0, n) without bias (Lemire's multiply-and-reject on 32 bits)."""
    bound = _U64(n)
    st = st + _GOLDEN
    m = (_mix(st) >> _U64(32)) * bound
    if (m & _LOW32) < bound:
        threshold = (_TWO32 - bound) % bound
        while (m & _LOW32) < threshold:
            st = st + _GOLDEN
            m = (_mix(st) >> _U64(32)) * bound
    return np.int64(m >> _U64(32)), st


BATCH = 64  # tokens the kernels work on together
DROPS = 8  # more candidates to drop than this: the skewed kernel selects the k largest in one pass
# The random kernel's merge runs as vector loops over the tokens when a token keeps at most WIDE
# groups and a group's score sums at most 2 of its scores (V3: 4 and 2): every lane holds WIDE heads
# (those past `limit` at +inf, never popped). Other shapes merge token by token, with the same draws
# and the same result (tested).
WIDE = 4
TRIES = 2  # attempts at each expert index the vector loops make (a repeat is rejected) before a lane leaves them
# log(m) = 2 atanh(s) = s * sum(LOG_SERIES[n] * s^(2n)), s = (m - 1) / (m + 1), |s| <= 0.1716 for m in
# [sqrt(1/2), sqrt(2)): the term after the last is below 1e-17
_LOG_SERIES = tuple(2.0 / (2 * n + 1) for n in range(11))
_MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
_EXPONENT_ONE = np.uint64(0x3FF0000000000000)  # the bits of 1.0


@_inline
def _log_pair(y1: float, y2: float) -> float:
    """``log(exp(-y1) + exp(-y2))`` for ``y1 <= y2``: ``-y1 + log(1 + exp(-d))``, ``d = y2 - y1``;
    below d = 0.25 by its series ``log 2 - d/2 + log cosh(d/2)`` to d^14 (error < 1e-15)."""
    d = y2 - y1
    if d >= 0.25:
        return -y1 + math.log1p(math.exp(-d))
    z = d * d
    p = 5461.0 / 99632332800.0
    p = p * z - 691.0 / 1916006400.0
    p = p * z + 31.0 / 14515200.0
    p = p * z - 17.0 / 645120.0
    p = p * z + 1.0 / 2880.0
    p = p * z - 1.0 / 192.0
    p = p * z + 1.0 / 8.0
    return -y1 + (0.6931471805599453 - 0.5 * d + p * z)


@_inline
def _log_score(ys: np.ndarray, q: int, last: float) -> float:
    """``log(sum(exp(-ys[:q])))`` (ascending ``ys``), for group scores other than a pair."""
    total = 0.0
    for n in range(q):
        total += math.exp(ys[0] - ys[n])
    return -ys[0] + math.log(total)


@_inline
def _fill_exponentials(st: Any, n: int, out: np.ndarray, work: np.ndarray) -> Any:
    """``out[:n]`` = Exp(1) draws ``-log(u)``, ``u`` from SplitMix64 at counters st+1 .. st+n as
    :func:`_uniform` makes it, in three loops the compiler vectorises (``work``: ``n`` uint64 of
    scratch). ``u = f 2^-53`` with the integer ``f`` in [1, 2^53] exact as a double; its exponent ``e``
    and mantissa ``m`` are read off its bits (``f = m 2^e``, ``m`` in [1, 2), halved into [sqrt(1/2),
    sqrt(2)) with ``e`` raised), and ``-log(u) = (53 - e) log 2 - log(m)`` with ``log(m)`` by its atanh
    series (:data:`_LOG_SERIES`): within 2e-15 of ``-math.log(u)`` (tested). A draw is never above
    53 log 2 = 36.7: the law of Exp(1) but for its tail beyond, of probability 1e-16. Returns the
    advanced state."""
    bits = work[:n]
    f = bits.view(np.float64)
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 = _LOG_SERIES
    for i in range(n):
        f[i] = float(np.int64(_mix(st + _U64(i + 1) * _GOLDEN) >> _U64(11)) + 1)
    for i in range(n):  # e into out, m into f
        b = bits[i]
        out[i] = float(np.int64(b >> _U64(52)) - 1023)
        bits[i] = (b & _MANTISSA) | _EXPONENT_ONE
    for i in range(n):
        m = f[i]
        big = m > 1.4142135623730951
        m = m * 0.5 if big else m
        e = out[i] + (1.0 if big else 0.0)
        s = (m - 1.0) / (m + 1.0)
        z = s * s
        p = c10
        p = p * z + c9
        p = p * z + c8
        p = p * z + c7
        p = p * z + c6
        p = p * z + c5
        p = p * z + c4
        p = p * z + c3
        p = p * z + c2
        p = p * z + c1
        p = p * z + c0
        out[i] = (53.0 - e) * 0.6931471805599453 - s * p
    return st + _U64(n) * _GOLDEN


@_inline
def _count_token(
    t: int,
    row: int,
    limit: int,
    kept: np.ndarray,
    cnt: np.ndarray,
    out: np.ndarray,
    src: np.ndarray,
    gpn: int,
    gpu_of: np.ndarray,
    gseen: np.ndarray,
    ib: np.ndarray,
    nvlink: np.ndarray,
    hist: np.ndarray,
    logical: np.ndarray,
    npt: np.ndarray,
    tpe: np.ndarray,
) -> None:
    """The traffic of token ``t`` living on GPU ``src[t]``, added to the counts: its kept groups
    ``kept[:limit]`` are the nodes it reaches, ``cnt[j]`` of its choices ``out[row]`` (in that order) in
    group ``kept[j]`` (0: the group is not reached). NVLink through ``hist`` when ``gpn <= 8``."""
    sg = src[t]
    sn = gpu_of[-1 - sg]
    ls = sg - sn * gpn
    reached = 0
    n = 0
    for j in range(limit):
        c = cnt[j]
        if c == 0:
            continue
        node = kept[j]
        reached += 1
        sender = sg
        if node != sn:
            ib[sg, node] += 1
            sender = node * gpn + ls
        if gpn <= 8:  # NVLink: a histogram of (node, sender's index, byte of GPUs reached)
            mask = 0
            for i in range(n, n + c):
                e = out[row, i]
                tpe[e] += 1
                mask |= 1 << (gpu_of[e] - node * gpn)
            hist[((node * gpn) + ls) * 256 + mask] += 1
        else:
            for i in range(n, n + c):
                e = out[row, i]
                tpe[e] += 1
                d = gpu_of[e]
                if gseen[d - node * gpn] != t * limit + j:
                    gseen[d - node * gpn] = t * limit + j
                    if d != sender:
                        nvlink[sender, d] += 1
        n += c
    logical[sg] += reached
    npt[t] = reached


@_inline
def _count_reached(
    t: int,
    limit: int,
    kept: np.ndarray,
    row: int,
    reach: np.ndarray,
    stride: int,
    src: np.ndarray,
    gpn: int,
    gpu_of: np.ndarray,
    ib: np.ndarray,
    hist: np.ndarray,
    logical: np.ndarray,
    npt: np.ndarray,
) -> None:
    """The traffic of token ``t`` (on GPU ``src[t]``), added to the counts, from the byte of GPUs
    ``reach[j stride + row]`` it reaches in each of its kept groups ``kept[j, row]`` (the nodes: 0
    where it takes no expert there), branch-free; NVLink through ``hist`` (``gpn <= 8``)."""
    sg = src[t]
    sn = gpu_of[-1 - sg]
    ls = sg - sn * gpn
    reached = 0
    for j in range(limit):
        node = kept[j, row]
        some = np.int64(reach[j * stride + row] != 0)
        reached += int(some)
        ib[sg, node] += some * (node != sn)
        hist[((node * gpn) + ls) * 256 + reach[j * stride + row]] += some
    logical[sg] += reached
    npt[t] = reached


@_jit
def _route_iid(
    state: np.ndarray,
    tokens: int,
    groups: int,
    per: int,
    limit: int,
    q: int,
    k: int,
    wide: bool,
    out: np.ndarray,
    rows: int,
    count: bool,
    src: np.ndarray,
    gpn: int,
    gpu_of: np.ndarray,
    ib: np.ndarray,
    nvlink: np.ndarray,
    hist: np.ndarray,
    logical: np.ndarray,
    tpe: np.ndarray,
    npt: np.ndarray,
) -> None:
    """``random`` gating: chosen experts of ``tokens`` tokens into ``out`` (tokens x k, unsorted).
    With ``count``, also adds the layer's traffic counts of tokens living on GPUs ``src`` to ``ib``
    ... ``npt`` (see ``_count``; NVLink through ``hist`` when ``gpn <= 8``); ``gpu_of[e]``: the GPU
    of expert ``e``, ``gpu_of[-1 - s]``: the node of GPU ``s``.

    Works on ``BATCH`` tokens at a time, phase by phase, with arrays laid out [..., token] so that
    the group step (exponentials, group scores, ranks) and, with ``wide`` (at most ``WIDE`` kept
    groups, ``q <= 2``), the merge and the first ``TRIES`` attempts of each expert draw run as vector
    loops; without ``wide`` they run token by token, with the same draws and result; the rest of the
    expert draw and the counting run token by token.

    The merge's draws: pop ``p`` (0 .. k-1) that takes the ``c``-th score of a kept group, ``c >= q``,
    sets the group's next head ``y + E / (per - c)`` with ``E`` the token's draw of row ``p - q + 1``
    (``c >= q`` needs ``p >= q - 1``). A row serves one pop, so every draw used is fresh: the law of
    drawing each group's scores up front (Rényi's spacings are independent). ``k - q`` rows are
    drawn; the row after them, read only by the last pop (whose next head is never used), is not."""
    st = state[0]
    gseen = np.full(max(gpn, 1), -1, np.int64)
    inv = np.zeros(per + 1)
    for m in range(1, per + 1):
        inv[m] = 1.0 / m
    rows_drawn = max(k - q, 0)
    # Exp(1): the group step's, then the merge's rows
    draws = np.zeros((q * groups + rows_drawn + 1) * BATCH)
    filled = (q * groups + rows_drawn) * BATCH
    work = np.zeros(filled, np.uint64)
    ex = draws[: q * groups * BATCH]  # becomes y = -log(score) of the top q per group
    lazy = draws[q * groups * BATCH :]
    key = np.zeros(groups * BATCH)
    rank = np.zeros(groups * BATCH, np.int64)
    slots = max(limit, WIDE) + 1  # (the last: written past the kept groups, never read)
    kept = np.zeros((slots, BATCH), np.int64)  # kept[j, b]: token b's j-th kept group
    head = np.full((slots, BATCH), math.inf)  # its least y not yet popped
    runner_up = np.zeros((slots, BATCH))  # its second score (the known next head when q = 2)
    cnt = np.zeros((slots, BATCH), np.int64)  # its scores popped
    popped = np.zeros((k, BATCH), np.int64)  # the slot each pop took
    slot = np.zeros(BATCH, np.int64)
    # a group's expert i is on its GPU i >> gpu_shift, where a group has a power of two of experts (the
    # experts of a GPU are consecutive, so a GPU holds per / gpus of a group's, a power of two too)
    gpu_shift = 0
    while per >> gpu_shift > gpu_of[per - 1] - gpu_of[0] + 1:
        gpu_shift += 1
    words = np.zeros(2 * BATCH, np.uint64)
    taken = np.zeros(slots * BATCH, np.int64)  # bit i of taken[j BATCH + b]: expert i of slot j is drawn
    picked = np.zeros(k * BATCH, np.int64)  # the expert each pop drew
    lane_bits = np.zeros(BATCH, np.uint64)  # a lane's random bits not yet used
    lane = np.zeros(3 * BATCH, np.int64)  # its indices left in them, second word unused, the pick it left at
    reach = np.zeros(slots * BATCH, np.int64)  # reach[j BATCH + b]: the byte of slot j's GPUs token b reaches
    pow2 = per <= 32 and per & (per - 1) == 0
    shift = 0
    while (1 << shift) < per:
        shift += 1
    per_draw = 64 // max(shift, 1)
    low = _U64(per - 1)
    bits = _U64(0)
    left = 0
    gb = groups * BATCH
    for t0 in range(0, tokens, BATCH):
        nb = min(BATCH, tokens - t0)
        st = _fill_exponentials(st, filled, draws, work)  # (whole batch: a short tail's are unused)
        # Rényi, as y = -log(score): the largest of m uniforms below exp(-y) is exp(-(y + E / m))
        if q == 2:  # group score log(exp(-y1) + exp(-y2)) by the series of _log_pair (vector loop)
            far = 0
            for i in range(gb):
                y = ex[i] * inv[per]
                d = ex[gb + i] * inv[per - 1]
                ex[i] = y
                ex[gb + i] = y + d
                z = d * d
                p = 5461.0 / 99632332800.0
                p = p * z - 691.0 / 1916006400.0
                p = p * z + 31.0 / 14515200.0
                p = p * z - 17.0 / 645120.0
                p = p * z + 1.0 / 2880.0
                p = p * z - 1.0 / 192.0
                p = p * z + 1.0 / 8.0
                key[i] = -y + (0.6931471805599453 - 0.5 * d + p * z)
                far += d >= 0.25
            # the exact formula where the series does not hold: an integer count in the vector loop, so
            # that this scalar one runs only in batches that need it (about 1 in 5 for V3): 3% of a token's time
            for i in range(gb if far else 0):
                if ex[gb + i] - ex[i] >= 0.25:
                    key[i] = _log_pair(ex[i], ex[gb + i])
        else:
            for i in range(gb):
                ex[i] *= inv[per]
            for n in range(1, q):
                for i in range(gb):
                    ex[n * gb + i] = ex[(n - 1) * gb + i] + ex[n * gb + i] * inv[per - n]
            for i in range(gb):
                total = 0.0
                for n in range(q):
                    total += math.exp(ex[i] - ex[n * gb + i])
                key[i] = -ex[i] + math.log(total)
        for i in range(gb):  # keep the `limit` best groups (ties: lower index): ranks by pairs
            rank[i] = 0
        for g in range(1, groups):
            for h in range(g):
                for b in range(BATCH):
                    worse = np.int64(key[h * BATCH + b] >= key[g * BATCH + b])
                    rank[g * BATCH + b] += worse
                    rank[h * BATCH + b] += 1 - worse
        if wide:  # the merge as vector loops: lane b's WIDE heads, those past `limit` at +inf
            for b in range(BATCH):
                slot[b] = 0
                for j in range(WIDE):
                    head[j, b] = math.inf
                    cnt[j, b] = 0
            for g in range(groups):  # branch-free: slot j takes group g where kept and j is next
                for b in range(BATCH):
                    keep = rank[g * BATCH + b] < limit
                    s = slot[b]
                    y1 = ex[g * BATCH + b]
                    y2 = ex[(min(1, q - 1) * groups + g) * BATCH + b]
                    for j in range(WIDE):
                        at = keep & (s == j)
                        head[j, b] = y1 if at else head[j, b]
                        runner_up[j, b] = y2 if at else runner_up[j, b]
                        kept[j, b] = g if at else kept[j, b]
                    slot[b] = s + keep
            for pop in range(k):  # k-way merge of the kept groups' scores (ascending y)
                row = max(pop - q + 1, 0)
                for b in range(BATCH):
                    best = head[0, b]
                    bj = 0
                    c = cnt[0, b]
                    known = runner_up[0, b]
                    for j in range(1, WIDE):  # the first least
                        v = head[j, b]
                        less = v < best
                        best = v if less else best
                        bj = j if less else bj
                        c = cnt[j, b] if less else c
                        known = runner_up[j, b] if less else known
                    c += 1
                    nxt = known if c < q else best + lazy[row * BATCH + b] / (per - c)
                    nxt = nxt if c < per else math.inf
                    popped[pop, b] = bj
                    for j in range(WIDE):
                        at = bj == j
                        head[j, b] = nxt if at else head[j, b]
                        cnt[j, b] += at
        else:  # token by token, any shape: the same draws, pops and ties
            for b in range(nb):
                nk = 0
                for g in range(groups):  # branch-free: written always, kept when ranked high enough
                    kept[nk, b] = g
                    head[nk, b] = ex[g * BATCH + b]
                    cnt[nk, b] = 0
                    nk += rank[g * BATCH + b] < limit
            for pop in range(k):
                row = max(pop - q + 1, 0)
                for b in range(nb):  # (tokens interleaved: their dependency chains overlap)
                    bj = 0
                    best = head[0, b]
                    for j in range(1, limit):
                        v = head[j, b]
                        bj = j if v < best else bj
                        best = v if v < best else best
                    popped[pop, b] = bj
                    c = cnt[bj, b] + 1
                    cnt[bj, b] = c
                    g = kept[bj, b]
                    # next head: drawn in the group step (c < q), else the next arrival
                    drawn = best + lazy[row * BATCH + b] / (per - c)
                    nxt = ex[(min(c, q - 1) * groups + g) * BATCH + b] if c < q else drawn
                    head[bj, b] = nxt if c < per else math.inf
        if pow2 and (not count or gpn <= 8):  # the common shape, flat and mostly branch-free
            for b in range(BATCH):  # two random words per token for its expert indices
                words[2 * b] = _mix(st + _U64(2 * b + 1) * _GOLDEN)
                words[2 * b + 1] = _mix(st + _U64(2 * b + 2) * _GOLDEN)
            st = st + _U64(2 * BATCH) * _GOLDEN
            if wide:  # every pick's first TRIES attempts as vector loops; a lane they fail leaves here
                for b in range(BATCH):
                    lane_bits[b] = words[2 * b]
                    lane[b] = per_draw
                    lane[1 * BATCH + b] = 1
                    lane[2 * BATCH + b] = k
                    for j in range(WIDE):
                        taken[j * BATCH + b] = 0
                        reach[j * BATCH + b] = 0
                for pop in range(k):
                    for b in range(BATCH):
                        j = popped[pop, b]
                        tk = taken[b]
                        group = kept[0, b]
                        for i in range(1, WIDE):  # (loaded, then selected: a load under a branch stops the vectoriser)
                            v = taken[i * BATCH + b]
                            tk = v if j == i else tk
                            g = kept[i, b]
                            group = g if j == i else group
                        bits = lane_bits[b]
                        w2 = words[2 * b + 1]
                        left = lane[b]
                        second = lane[1 * BATCH + b]
                        live = np.int64(lane[2 * BATCH + b] == k)
                        go = live
                        index = np.int64(0)
                        for _ in range(TRIES):  # branch-free, each step as the loop below takes it
                            refill = go & np.int64(left == 0)
                            stuck = refill & (1 - second)  # a third word: drawn in the loop below
                            fresh = refill & second
                            bits = w2 if fresh else bits
                            left = per_draw if fresh else left
                            second = 0 if fresh else second
                            go = go & (1 - stuck)
                            cand = np.int64(bits & low)
                            bits = bits >> shift if go else bits
                            left = left - go
                            ok = go & np.int64((tk >> cand) & 1 == 0)
                            index = cand if ok else index
                            go = np.int64(go & (1 - ok))
                        lane_bits[b] = bits
                        lane[b] = left
                        lane[1 * BATCH + b] = second
                        lane[2 * BATCH + b] = pop if go else lane[2 * BATCH + b]  # (go: live, and no index taken)
                        picked[pop * BATCH + b] = group * per + index
                        got = live & (1 - go)
                        bit = np.int64(1) << index if got else np.int64(0)
                        gpu = np.int64(1) << (index >> gpu_shift) if got else np.int64(0)
                        for i in range(WIDE):
                            taken[i * BATCH + b] |= bit if j == i else 0
                            reach[i * BATCH + b] |= gpu if j == i else 0
            for b in range(nb):
                t = t0 + b
                if wide:
                    first = lane[2 * BATCH + b]
                    bits = lane_bits[b]
                    left = lane[b]
                    second = lane[1 * BATCH + b] == 1
                else:
                    first = 0
                    bits = words[2 * b]
                    left = per_draw
                    second = True
                    for j in range(limit):
                        taken[j * BATCH + b] = 0
                        reach[j * BATCH + b] = 0
                for pop in range(first, k):  # which experts hold a group's top ranks: a uniform subset,
                    j = popped[pop, b]  # drawn `shift` bits at a time, repeats rejected
                    while True:
                        if left == 0:
                            if second:
                                bits = words[2 * b + 1]
                                second = False
                            else:
                                st = st + _GOLDEN
                                bits = _mix(st)
                            left = per_draw
                        index = np.int64(bits & low)
                        bits >>= shift
                        left -= 1
                        if not (taken[j * BATCH + b] >> index) & 1:
                            break
                    taken[j * BATCH + b] |= 1 << index
                    reach[j * BATCH + b] |= 1 << (index >> gpu_shift)
                    picked[pop * BATCH + b] = kept[j, b] * per + index
                for pop in range(k):
                    e = picked[pop * BATCH + b]
                    out[t & rows, pop] = e
                    if count:
                        tpe[e] += 1
                if count:  # the traffic of token t: its kept groups are the nodes it reaches
                    _count_reached(t, limit, kept, b, reach, BATCH, src, gpn, gpu_of, ib, hist, logical, npt)
            continue
        for b in range(nb):
            t = t0 + b
            n = 0
            for j in range(limit):  # which experts hold a group's top c ranks: a uniform c-subset
                base = kept[j, b] * per
                if pow2:  # distinct uniform indices, `shift` bits at a time, repeats rejected
                    chosen = np.int64(0)
                    for _ in range(cnt[j, b]):
                        while True:
                            if left == 0:
                                st = st + _GOLDEN
                                bits = _mix(st)
                                left = per_draw
                            index = np.int64(bits & low)
                            bits >>= shift
                            left -= 1
                            if not (chosen >> index) & 1:
                                break
                        chosen |= 1 << index
                        out[t & rows, n] = base + index
                        n += 1
                else:  # Floyd's algorithm
                    start = n
                    for m in range(per - cnt[j, b], per):
                        pick, st = _below(st, m + 1)
                        for i in range(start, n):
                            if out[t & rows, i] == base + pick:
                                pick = m
                                break
                        out[t & rows, n] = base + pick
                        n += 1
            if count:  # (a token's column: a view, in this path of rarer shapes)
                _count_token(
                    t,
                    t & rows,
                    limit,
                    kept[:, b],
                    cnt[:, b],
                    out,
                    src,
                    gpn,
                    gpu_of,
                    gseen,
                    ib,
                    nvlink,
                    hist,
                    logical,
                    npt,
                    tpe,
                )
    state[0] = st


@_inline
def _key(counter: Any, w: float, odds: bool) -> float:
    """An expert's key from the SplitMix64 word at ``counter``: its odds ``w u / (1 - u)`` for the
    52-bit ``u = (m + 1/2) 2^-52``; ``u - 1`` (below every live expert) for weight 0. ``odds=False``:
    ``w u`` (a deliberately wrong sampler)."""
    u = (float(np.int64(_mix(counter) >> _U64(12))) + 0.5) * (1.0 / 4503599627370496.0)
    return (w * u / (1.0 - u) if odds else w * u) if w > 0.0 else u - 1.0


@_jit
def _route_dense(
    state: np.ndarray,
    tokens: int,
    groups: int,
    per: int,
    limit: int,
    q: int,
    k: int,
    w: np.ndarray,
    odds: bool,
    out: np.ndarray,
    rows: int,
    count: bool,
    src: np.ndarray,
    gpn: int,
    gpu_of: np.ndarray,
    ib: np.ndarray,
    nvlink: np.ndarray,
    hist: np.ndarray,
    logical: np.ndarray,
    tpe: np.ndarray,
    npt: np.ndarray,
) -> None:
    """``skewed`` gating (weights ``w``, flat groups * per): every expert's odds drawn, ``BATCH``
    tokens at a time as vector loops over the tokens; chosen experts into ``out`` (unsorted, grouped
    by kept group); ``count`` as in ``_route_iid``. ``odds=False`` is a deliberately wrong sampler
    (the weight scales the uniform, not the odds: tests show it is caught)."""
    st = state[0]
    experts = groups * per
    levels = max(q, (k + limit - 1) // limit)  # a group's best kept: q for its score, enough for tau
    key = np.zeros((experts, BATCH))
    top = np.full((groups, levels, BATCH), -2.0)  # -2: no expert (every key is above -1)
    carry = np.zeros(BATCH)
    base = np.zeros(BATCH, np.uint64)
    score = np.zeros((groups, BATCH))
    rank = np.zeros((groups, BATCH), np.int64)
    tau = np.zeros(BATCH)
    words = (per + 63) // 64
    above = np.zeros((groups * words, BATCH), np.uint64)
    kept = np.zeros((limit + 1, 1), np.int64)  # the last: written past the kept groups, never read
    cnt = np.zeros(limit + 1, np.int64)  # the last: dropped candidates (counted, never read)
    reach = np.zeros(limit + 1, np.int64)  # bytes of a kept group's GPUs reached (the last: dropped)
    chosen = np.zeros(limit * per, np.int64)
    ck = np.zeros(limit * per)
    ce = np.zeros(limit * per, np.int64)
    cs = np.zeros(limit * per, np.int64)
    gseen = np.full(max(gpn, 1), -1, np.int64)
    for t0 in range(0, tokens, BATCH):
        nb = min(BATCH, tokens - t0)
        for b in range(BATCH):
            base[b] = st + _U64((t0 + b) * experts + 1) * _GOLDEN
        for g in range(groups):  # every key, and each group's best (a max/min network per lane)
            for r in range(levels):
                for b in range(BATCH):
                    top[g, r, b] = -2.0
            for i in range(per):
                p = g * per + i
                we = w[p]
                off = _U64(p) * _GOLDEN
                if levels == 2:
                    for b in range(BATCH):
                        v = _key(base[b] + off, we, odds)
                        key[p, b] = v
                        o = top[g, 0, b]
                        top[g, 0, b] = max(o, v)
                        top[g, 1, b] = max(top[g, 1, b], min(o, v))
                else:
                    for b in range(BATCH):
                        v = _key(base[b] + off, we, odds)
                        key[p, b] = v
                        carry[b] = v
                    for r in range(levels):
                        for b in range(BATCH):
                            o = top[g, r, b]
                            v = carry[b]
                            top[g, r, b] = max(o, v)
                            carry[b] = min(o, v)
        for g in range(groups):  # group scores: the sum of the q best sigmoid scores k / (1 + k)
            sg = score[g]
            for b in range(BATCH):
                sg[b] = 0.0
            for r in range(q):  # best first (select_experts sums best last: the same for q <= 2)
                tr = top[g, r]
                for b in range(BATCH):
                    x = max(tr[b], 0.0)
                    sg[b] += x / (1.0 + x)
        rank[:] = 0
        for g in range(1, groups):  # keep the `limit` best groups (ties: lower index): ranks by pairs
            for h in range(g):
                for b in range(BATCH):
                    worse = np.int64(score[h, b] >= score[g, b])
                    rank[g, b] += worse
                    rank[h, b] += 1 - worse
        # the top k of the kept groups are among their keys >= tau, the least of their `levels`
        # best (levels * limit >= k distinct keys >= tau); above[g * words + i // 64, b] marks them
        # (bit i % 64: expert g * per + i)
        for b in range(BATCH):
            tau[b] = math.inf
        for g in range(groups):
            for b in range(BATCH):
                v = top[g, levels - 1, b]
                tau[b] = min(tau[b], v) if rank[g, b] < limit else tau[b]
        above[:] = 0
        for g in range(groups):
            for i in range(per):
                row = g * words + i // 64
                p = g * per + i
                bit = _U64(1) << _U64(i % 64)
                for b in range(BATCH):  # (indexed in place: a view per row costs its reference counts)
                    above[row, b] |= bit if key[p, b] >= tau[b] else _U64(0)
        for b in range(nb):
            t = t0 + b
            nk = 0
            for g in range(groups):  # branch-free: written always, kept when ranked high enough
                kept[nk, 0] = g
                nk += rank[g, b] < limit
            n = 0
            for j in range(limit):
                g = kept[j, 0]
                cnt[j] = 0
                for word in range(words):
                    bits = above[g * words + word, b]
                    while bits:
                        i = word * 64 + _ctz(bits)
                        bits &= bits - _U64(1)
                        ck[n] = key[g * per + i, b]
                        ce[n] = g * per + i
                        cs[n] = j
                        n += 1
            drop = n - k
            if drop > DROPS:  # many (a kept group with few live experts): one selection
                kth = np.partition(ck[:n].copy(), drop)[drop]  # the k-th largest
                room = k  # how many of the keys equal to it stay (the earliest)
                for c in range(n):
                    room -= ck[c] > kth
                for c in range(n):
                    v = ck[c]
                    if v < kth or (v == kth and room == 0):
                        cs[c] = limit
                    elif v == kth:
                        room -= 1
            else:
                for _ in range(drop):  # drop the smallest, keeping the kept groups' order
                    least = ck[0]
                    for c in range(1, n):
                        least = min(least, ck[c])
                    m = 0
                    while ck[m] != least:
                        m += 1
                    ck[m] = math.inf
                    cs[m] = limit
            m = 0
            if count and gpn <= 8:  # with the counts: each kept group's byte of GPUs reached
                for j in range(limit + 1):
                    reach[j] = 0
                for c in range(n):  # branch-free: written always, kept when not dropped
                    j = cs[c]
                    e = ce[c]
                    chosen[m] = e
                    live = j < limit
                    m += live
                    tpe[e] += live
                    reach[j] |= 1 << ((gpu_of[e] - kept[j, 0] * gpn) & 63)  # (the dropped: never read)
                _count_reached(t, limit, kept, 0, reach, 1, src, gpn, gpu_of, ib, hist, logical, npt)
                for c in range(k):
                    out[t & rows, c] = chosen[c]
                continue
            for c in range(n):  # branch-free: written always, kept when not dropped
                j = cs[c]
                chosen[m] = ce[c]
                m += j < limit
                cnt[j] += 1
            for c in range(k):
                out[t & rows, c] = chosen[c]
            if count:
                _count_token(
                    t,
                    t & rows,
                    limit,
                    kept[:, 0],
                    cnt,
                    out,
                    src,
                    gpn,
                    gpu_of,
                    gseen,
                    ib,
                    nvlink,
                    hist,
                    logical,
                    npt,
                    tpe,
                )
    state[0] = st + _U64(tokens * experts) * _GOLDEN


@_jit
def _count(
    choices: np.ndarray,
    src: np.ndarray,
    experts_per_gpu: int,
    g: int,
    ep: int,
    nodes: int,
    experts: int,
    ib: np.ndarray,
    nvlink: np.ndarray,
    logical: np.ndarray,
    tpe: np.ndarray,
    npt: np.ndarray,
) -> None:
    """The counts of :func:`sim.moe.traffic.layer_traffic`, one pass over the tokens (added to the outputs)."""
    gpu_seen = np.full(ep, -1, np.int64)
    node_seen = np.full(nodes, -1, np.int64)
    for t in range(choices.shape[0]):
        sgpu = src[t]
        snode = sgpu // g
        ls = sgpu % g
        reached = 0
        for j in range(choices.shape[1]):
            e = choices[t, j]
            tpe[e] += 1
            d = e // experts_per_gpu
            nd = d // g
            if node_seen[nd] != t:
                node_seen[nd] = t
                reached += 1
                logical[sgpu] += 1
                if nd != snode:
                    ib[sgpu, nd] += 1
            if gpu_seen[d] != t:
                gpu_seen[d] = t
                sender = sgpu if nd == snode else nd * g + ls
                if d != sender:
                    nvlink[sender, d] += 1
        npt[t] = reached


def _wrapping() -> Any:
    """Where the kernels run uncompiled (no numba), SplitMix64's uint64 arithmetic wraps on numpy
    scalars as it does compiled, but numpy warns at each overflow: silenced (the wrap is the intent)."""
    return np.errstate(over="ignore")


def _seed_state(seed: np.random.Generator | np.random.SeedSequence) -> np.ndarray:
    """SplitMix64 state from a numpy generator (advancing it) or a seed sequence."""
    if isinstance(seed, np.random.SeedSequence):
        state = seed.generate_state(1, np.uint64)
    else:
        state = seed.integers(0, _M64, size=1, dtype=np.uint64, endpoint=True)
    return np.ascontiguousarray(state, dtype=np.uint64)


def _sample(
    spec: MoESpec,
    tokens: int,
    seed: np.random.Generator | np.random.SeedSequence,
    weights: np.ndarray | None,
    src: np.ndarray | None,
    group_topk: int | None = None,
    odds: bool = True,
    keep: bool = True,
    wide: bool | None = None,
) -> tuple[np.ndarray, Traffic | None]:
    """Run a kernel: choices (unsorted rows) and, when ``src`` is given, the traffic. ``group_topk``
    and ``odds=False`` make deliberately wrong samplers (tests show they are caught). ``keep=False``
    with ``src``: the choices are not kept (the rows returned are the last batch's only). ``wide``:
    the random kernel's merge as vector loops (None: where the shape allows it; False: token by
    token, which tests tie to it)."""
    groups, per, ep = spec.groups, spec.experts_per_group, spec.ep
    count = src is not None
    # counting alone keeps no choices: the kernels write each batch's rows over the last (t & rows)
    rows = BATCH - 1 if count and not keep else -1
    out = np.zeros((BATCH if rows >= 0 else tokens, spec.topk), dtype=np.int16)
    where = np.zeros(1, np.int64) if src is None else np.ascontiguousarray(src, dtype=np.int64)
    if count and len(where) != tokens:
        raise ValueError(f"src has {len(where)} entries for {tokens} tokens")
    size = (ep, spec.nodes, spec.experts, tokens) if count else (1, 1, 1, 1)
    ib, nvlink = np.zeros((size[0], size[1]), np.int64), np.zeros((size[0], size[0]), np.int64)
    logical, tpe, npt = np.zeros(size[0], np.int64), np.zeros(size[2], np.int64), np.zeros(size[3], np.int64)
    # lookup instead of integer division: gpu_of[e] = GPU of expert e; gpu_of[-1 - s] = node of GPU s
    node_of = np.arange(ep)[::-1] // spec.gpus_per_node
    gpu_of = np.concatenate([np.arange(spec.experts) // spec.experts_per_gpu, node_of])
    hist = np.zeros(spec.nodes * spec.gpus_per_node * 256 if count and spec.gpus_per_node <= 8 else 1, np.int64)
    counts = (where, spec.gpus_per_node, gpu_of.astype(np.int64), ib, nvlink, hist, logical, tpe, npt)
    shape = (groups, per, spec.limit, group_topk or spec.group_topk, spec.topk)
    state = _seed_state(seed)
    if weights is None:
        if tokens:
            with _wrapping():
                vector = spec.limit <= WIDE and shape[3] <= 2 if wide is None else wide
                if vector and (spec.limit > WIDE or shape[3] > 2):
                    raise ValueError(f"the vector merge takes at most {WIDE} kept groups and group scores of 2")
                _route_iid(state, tokens, *shape, vector, out, rows, count, *counts)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(groups, per)
        if (w < 0).any() or not np.isfinite(w).all() or (w > 1e290).any():  # odds up to w 2^53: finite
            raise ValueError("expert weights must be finite, >= 0 and at most 1e290")
        if tokens:
            with _wrapping():
                _route_dense(state, tokens, *shape, np.ascontiguousarray(w.ravel()), odds, out, rows, count, *counts)
    if not count:
        return out, None
    if spec.gpus_per_node <= 8:  # hist[node, sender index, byte] -> messages to each GPU of the byte
        g = spec.gpus_per_node
        bits = (np.arange(256)[:, None] >> np.arange(g)[None, :]) & 1
        pairs = hist.reshape(spec.nodes, g, 256) @ bits  # [node, sender index, receiver index]
        pairs[:, np.arange(g), np.arange(g)] = 0
        for n in range(spec.nodes):
            lo, hi = n * g, min((n + 1) * g, ep)
            nvlink[lo:hi, lo:hi] = pairs[n, : hi - lo, : hi - lo]
    traffic = Traffic(spec=spec, ib=ib, nvlink=nvlink, logical_rdma=logical, tokens_per_expert=tpe, nodes_per_token=npt)
    return out, traffic


def sample_choices(
    spec: MoESpec,
    tokens: int,
    seed: np.random.Generator | np.random.SeedSequence,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Chosen experts (tokens x topk, int16, ascending per row) of ``tokens`` tokens whose scores are
    ``sigmoid(logit(u) + log(weights))`` for i.i.d. uniform ``u`` (``weights`` None: all 1, i.e.
    ``random`` gating; ``skewed`` passes ``popularity * experts``), through node-limited selection.
    ``seed``: a generator (advanced by one draw) or a seed sequence."""
    out, _ = _sample(spec, tokens, seed, weights, None)
    out.sort(axis=1)
    return out


def sample_traffic(
    spec: MoESpec,
    src: np.ndarray,
    seed: np.random.Generator | np.random.SeedSequence,
    weights: np.ndarray | None = None,
) -> Traffic:
    """The traffic of one layer for tokens living on GPUs ``src`` (one token per entry), routed as by
    :func:`sample_choices` with the same seed, counted as :func:`sim.moe.traffic.layer_traffic`
    counts, inside the sampling kernel."""
    _, traffic = _sample(spec, len(src), seed, weights, src, keep=False)
    assert traffic is not None
    return traffic


def count_traffic(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> Traffic:
    """:func:`sim.moe.traffic.layer_traffic` compiled, for any ``choices`` (tests check equality)."""
    src = np.ascontiguousarray(src, dtype=np.int64)
    ep, nodes = spec.ep, spec.nodes
    ib = np.zeros((ep, nodes), np.int64)
    nvlink = np.zeros((ep, ep), np.int64)
    logical = np.zeros(ep, np.int64)
    tpe = np.zeros(spec.experts, np.int64)
    npt = np.zeros(len(src), np.int64)
    choices = np.ascontiguousarray(choices)
    shape = (spec.experts_per_gpu, spec.gpus_per_node, ep, nodes, spec.experts)
    _count(choices, src, *shape, ib, nvlink, logical, tpe, npt)
    return Traffic(spec=spec, ib=ib, nvlink=nvlink, logical_rdma=logical, tokens_per_expert=tpe, nodes_per_token=npt)
