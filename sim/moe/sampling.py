"""Exact fast sampling of ``random`` and ``skewed`` gating through DeepSeek-V3's node-limited
selection, and a compiled traffic counter (numba). See ``docs/routing.md``.

The reference path draws all ``experts`` scores of a token and selects (:mod:`sim.moe.select`). Only
a handful of those scores matter: the ``group_topk`` best of every group (for the group scores) and
the next few of the kept groups (for the final top-k). This module draws exactly those, in
descending order, as the first arrivals of independent point processes, so the selected experts have
the same distribution as on the reference path (up to floating-point rounding) while drawing about 30
random numbers per token instead of 256 (about 100 for ``skewed``).

**Arrival clocks.** An expert's score ``s = sigmoid(logit(u) + log w)`` (``u`` uniform, ``w`` its
popularity weight ``p * experts``; ``w = 1`` is ``random``) is written ``s = 1 / (1 + R)`` with
``R = (1 - u) / (w u)``. Large scores are small ``R``, and ``P(R > r) = 1 / (1 + w r)``: as a clock
running from 0, the expert "arrives" at ``R`` with hazard ``w / (1 + w r)``. Scores of a group in
descending order are its experts' arrivals in time order. The experts are independent, so the
arrivals are a superposition of independent hazards, simulated exactly by thinning (Lewis-Shedler):

* a unit-rate candidate clock ``u`` is cut into segments (``_segment_tables``, once per layer): in
  segment ``s`` (from time ``r_s``) candidates come at the constant rate ``B_s = H(r_s)``, the
  group's exact total hazard at the segment's start (hazards fall with time, so it bounds the
  whole segment), naming expert ``e`` with probability ``w_e / (1 + w_e r_s) / B_s`` (alias table);
* a candidate at time ``r`` is accepted with probability ``(1 + w_e r_s) / (1 + w_e r)`` (its true
  hazard over its rate in the segment) unless ``e`` already arrived (rejected). Past the tables, or
  after a run of candidates naming arrived experts, the group continues at its exact current rate
  (``_arrive_exact``); switching happens at a candidate's time and draws afresh, so it is exact.

For ``random`` every weight is 1 and the clock is the Rényi representation of uniform order
statistics, kept as ``y = -log(score)``: the largest of ``m`` uniforms below ``exp(-y)`` is
``exp(-(y + E / m))``. Groups are ranked by ``log(exp(-y1) + exp(-y2))`` (a series below
``y2 - y1 = 0.25``, error < 1e-14) and merged on ``y``, so exponentials and logarithms are computed only
in rare fix-ups. Which experts hold a group's top ranks is a uniform random subset of the group
(exchangeability), drawn once at the end (log2(group size)-bit indices, repeats rejected, for groups of a
power of two up to 32; else Floyd's algorithm) instead of per arrival.

**Selection.** Every group's first ``group_topk`` arrivals give its score; the ``limit`` best groups
are kept; the top-k among them is a k-way merge of the kept groups' arrival streams, each advanced
lazily (a group's next arrival is drawn only when the merge needs it). By independence, continuing a
group's clock after the group step is the same as having drawn all its scores up front.

Random numbers come from SplitMix64 (a 64-bit counter through a bijective mix; passes BigCrush)
seeded from the caller's ``numpy`` generator or ``SeedSequence``, so a seed gives the same routing
on every run and thread count; exponentials come from the Marsaglia-Tsang ziggurat (exact). Kernels are
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

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the reference path is used instead
    HAVE_NUMBA = False


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


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marsaglia-Tsang (2000) tables for Exp(1) with 256 strips, on 53-bit integers."""
    de, ve, scale = 7.697117470131487, 3.949659822581572e-3, 2.0**53
    te = de
    ke, we, fe = np.zeros(256, np.uint64), np.zeros(256), np.zeros(256)
    q = ve / math.exp(-de)
    ke[0], we[0], we[255], fe[0], fe[255] = int(de / q * scale), q / scale, de / scale, 1.0, math.exp(-de)
    for i in range(254, 0, -1):
        de = -math.log(ve / de + math.exp(-de))
        ke[i + 1] = int(de / te * scale)
        te = de
        fe[i] = math.exp(-de)
        we[i] = de / scale
    return ke, we, fe


_ZKE, _ZWE, _ZFE = _ziggurat_tables()
_ZR = 7.697117470131487
BATCH = 64  # tokens the kernels work on together


@_inline
def _exponential(st: Any) -> tuple[float, Any]:
    """Exp(1) by the ziggurat (exact): one 64-bit draw and a comparison 99% of the time."""
    ke, we, fe = _ZKE, _ZWE, _ZFE
    while True:
        st = st + _GOLDEN
        r = _mix(st)
        i = np.int64(r & _U64(255))
        j = r >> _U64(11)
        if j < ke[i]:
            return float(np.int64(j)) * we[i], st
        if i == 0:
            u, st = _uniform(st)
            return _ZR - math.log(u), st
        x = float(np.int64(j)) * we[i]
        u, st = _uniform(st)
        if fe[i] + u * (fe[i - 1] - fe[i]) < math.exp(-x):
            return x, st


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
def _exponential_from(r: Any, st: Any) -> tuple[float, Any]:
    """Finish a ziggurat draw whose first 64 bits ``r`` failed the fast test (exact continuation)."""
    we, fe = _ZWE, _ZFE
    i = np.int64(r & _U64(255))
    if i == 0:
        u, st = _uniform(st)
        return _ZR - math.log(u), st
    x = float(np.int64(r >> _U64(11))) * we[i]
    u, st = _uniform(st)
    if fe[i] + u * (fe[i - 1] - fe[i]) < math.exp(-x):
        return x, st
    return _exponential(st)


@_inline
def _fill_exponentials(st: Any, n: int, out: np.ndarray, bad: np.ndarray) -> Any:
    """``out[:n]`` = Exp(1) draws: the ziggurat's fast path for all of them in one loop that the
    compiler vectorises (the random numbers are SplitMix64 at counters st+1 .. st+n), then the
    about 2% that failed it finished one by one. Returns the advanced state."""
    ke, we = _ZKE, _ZWE
    for i in range(n):
        r = _mix(st + _U64(i + 1) * _GOLDEN)
        j = r >> _U64(11)
        idx = np.int64(r & _U64(255))
        out[i] = float(np.int64(j)) * we[idx]
        bad[i] = j >= ke[idx]
    end = st + _U64(n) * _GOLDEN
    for i in range(n):
        if bad[i]:
            out[i], end = _exponential_from(_mix(st + _U64(i + 1) * _GOLDEN), end)
    return end


@_jit
def _route_iid(
    state: np.ndarray,
    tokens: int,
    groups: int,
    per: int,
    limit: int,
    q: int,
    k: int,
    out: np.ndarray,
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
    the group step (exponentials, group scores, ranks) runs as vector loops; the merge, the expert
    draw and the counting run token by token."""
    st = state[0]
    gseen = np.full(max(gpn, 1), -1, np.int64)
    inv = np.zeros(per + 1)
    for m in range(1, per + 1):
        inv[m] = 1.0 / m
    draws = np.zeros((q * groups + k) * BATCH)  # Exp(1): the group step's, then the merge's
    bad = np.zeros((q * groups + k) * BATCH, np.bool_)
    ex = draws[: q * groups * BATCH]  # becomes y = -log(score) of the top q per group
    lazy = draws[q * groups * BATCH :]  # at most k per token
    key = np.zeros(groups * BATCH)
    rank = np.zeros(groups * BATCH, np.int64)
    kept = np.zeros((BATCH, limit + 1), np.int64)
    head = np.zeros((BATCH, limit + 1))
    runner_up = np.zeros((BATCH, limit + 1))  # a kept group's second score (the known next head when q = 2)
    cnt = np.zeros((BATCH, limit + 1), np.int64)
    used = np.zeros(BATCH, np.int64)
    popped = np.zeros((BATCH, k), np.int64)
    local_gpu = np.zeros(per, np.int64)  # GPU of a group's expert, within its node
    for i in range(per):
        local_gpu[i] = gpu_of[i] - gpu_of[0]
    words = np.zeros(2 * BATCH, np.uint64)
    taken = np.zeros(limit, np.int64)
    reach = np.zeros(limit, np.int64)
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
        st = _fill_exponentials(st, len(draws), draws, bad)  # (whole batch: a short tail's are unused)
        # Rényi, as y = -log(score): the largest of m uniforms below exp(-y) is exp(-(y + E / m))
        if q == 2:  # group score log(exp(-y1) + exp(-y2)) by the series of _log_pair (vector loop)
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
            for i in range(gb):
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
        for b in range(nb):
            nk = 0
            for g in range(groups):  # branch-free: written always, kept when ranked high enough
                kept[b, nk] = g
                head[b, nk] = ex[g * BATCH + b]
                runner_up[b, nk] = ex[(min(1, q - 1) * groups + g) * BATCH + b]
                cnt[b, nk] = 0
                nk += rank[g * BATCH + b] < limit
            used[b] = b * k
        for pop in range(k):  # k-way merge of the kept groups' scores (ascending y), drawn lazily
            for b in range(nb):  # (tokens interleaved: their dependency chains overlap)
                bj = 0
                best = head[b, 0]
                for j in range(1, limit):
                    v = head[b, j]
                    bj = j if v < best else bj
                    best = v if v < best else best
                popped[b, pop] = bj
                c = cnt[b, bj] + 1
                cnt[b, bj] = c
                # next head, branch-free: drawn in the group step (c < q), else the next arrival
                known = runner_up[b, bj] if q == 2 else ex[(min(c, q - 1) * groups + kept[b, bj]) * BATCH + b]
                drawn = best + lazy[used[b]] * inv[per - c]
                nxt = known if c < q else drawn
                head[b, bj] = nxt if c < per else math.inf
                used[b] += c >= q
        if pow2 and (not count or gpn <= 8):  # the common shape, flat and mostly branch-free
            for b in range(BATCH):  # two random words per token for its expert indices
                words[2 * b] = _mix(st + _U64(2 * b + 1) * _GOLDEN)
                words[2 * b + 1] = _mix(st + _U64(2 * b + 2) * _GOLDEN)
            st = st + _U64(2 * BATCH) * _GOLDEN
            for b in range(nb):
                t = t0 + b
                for j in range(limit):
                    taken[j] = 0
                    reach[j] = 0
                bits = words[2 * b]
                left = per_draw
                second = True
                for pop in range(k):  # which experts hold a group's top ranks: a uniform subset,
                    j = popped[b, pop]  # drawn `shift` bits at a time, repeats rejected
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
                        if not (taken[j] >> index) & 1:
                            break
                    taken[j] |= 1 << index
                    e = kept[b, j] * per + index
                    out[t, pop] = e
                    if count:
                        tpe[e] += 1
                        reach[j] |= 1 << local_gpu[index]
                if count:  # the traffic of token t: its kept groups are the nodes it reaches
                    sg = src[t]
                    sn = gpu_of[-1 - sg]
                    ls = sg - sn * gpn
                    reached = 0
                    for j in range(limit):
                        node = kept[b, j]
                        some = np.int64(reach[j] != 0)
                        reached += int(some)
                        ib[sg, node] += some * (node != sn)
                        hist[((node * gpn) + ls) * 256 + reach[j]] += some
                    logical[sg] += reached
                    npt[t] = reached
            continue
        for b in range(nb):
            t = t0 + b
            n = 0
            for j in range(limit):  # which experts hold a group's top c ranks: a uniform c-subset
                base = kept[b, j] * per
                if pow2:  # distinct uniform indices, `shift` bits at a time, repeats rejected
                    chosen = np.int64(0)
                    for _ in range(cnt[b, j]):
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
                        out[t, n] = base + index
                        n += 1
                else:  # Floyd's algorithm
                    start = n
                    for m in range(per - cnt[b, j], per):
                        pick, st = _below(st, m + 1)
                        for i in range(start, n):
                            if out[t, i] == base + pick:
                                pick = m
                                break
                        out[t, n] = base + pick
                        n += 1
            if count:  # the traffic of token t: its kept groups are the nodes it reaches
                sg = src[t]
                sn = gpu_of[-1 - sg]
                ls = sg - sn * gpn
                reached = 0
                n = 0
                for j in range(limit):
                    c = cnt[b, j]
                    if c == 0:
                        continue
                    node = kept[b, j]
                    reached += 1
                    sender = sg
                    if node != sn:
                        ib[sg, node] += 1
                        sender = node * gpn + ls
                    if gpn <= 8:  # NVLink: a histogram of (node, sender's index, byte of GPUs reached)
                        mask = 0
                        for i in range(n, n + c):
                            e = out[t, i]
                            tpe[e] += 1
                            mask |= 1 << (gpu_of[e] - node * gpn)
                        hist[((node * gpn) + ls) * 256 + mask] += 1
                    else:
                        for i in range(n, n + c):
                            e = out[t, i]
                            tpe[e] += 1
                            d = gpu_of[e]
                            if gseen[d - node * gpn] != t * limit + j:
                                gseen[d - node * gpn] = t * limit + j
                                if d != sender:
                                    nvlink[sender, d] += 1
                    n += c
                logical[sg] += reached
                npt[t] = reached
    state[0] = st


SEGMENTS = 64  # segments of the dominating clock per group (skewed gating), each DELTA long
DELTA = 0.125  # expected candidates per segment: a candidate's rejection chance is at most about DELTA
MISSES = 4  # consecutive candidates naming arrived experts after which a group goes to exact rates
EXPS = 4096  # exponentials drawn at a time by the skewed kernel


@_jit
def _segment_tables(
    w: np.ndarray, segments: int, delta: float, start: np.ndarray, binv: np.ndarray, prob: np.ndarray, alias: np.ndarray
) -> None:
    """Piecewise-constant bounds of each group's total hazard ``H(r) = sum w_e / (1 + w_e r)``
    (``w``: groups x per). Segment ``s`` of group ``g`` starts at time ``start[g, s]``, has the
    constant rate ``B = H(start[g, s])`` (``binv`` = 1 / B) and lasts until the dominating clock
    ``u`` (unit-rate candidates) has advanced by ``delta``; ``prob``/``alias`` (Vose) draw its
    candidate expert ``e`` with probability ``w_e / (1 + w_e start) / B``. ``start[g, segments]``
    is where the tables end."""
    groups, per = w.shape
    h = np.zeros(per)
    scaled = np.zeros(per)
    small = np.zeros(per, np.int64)
    large = np.zeros(per, np.int64)
    for g in range(groups):
        r = 0.0
        for s in range(segments):
            start[g, s] = r
            total = 0.0
            for e in range(per):
                h[e] = w[g, e] / (1.0 + w[g, e] * r)
                total += h[e]
            for e in range(per):
                prob[g, s, e] = 1.0
                alias[g, s, e] = e
            if total <= 0.0:  # no positive weight: the group only has scores 0, tables unused
                binv[g, s] = 0.0
                continue
            binv[g, s] = 1.0 / total
            ns = 0
            nl = 0
            for e in range(per):
                scaled[e] = h[e] * per / total
                if scaled[e] < 1.0:
                    small[ns] = e
                    ns += 1
                else:
                    large[nl] = e
                    nl += 1
            while ns > 0 and nl > 0:
                ns -= 1
                a = small[ns]
                nl -= 1
                b = large[nl]
                prob[g, s, a] = scaled[a]
                alias[g, s, a] = b
                scaled[b] -= 1.0 - scaled[a]
                if scaled[b] < 1.0:
                    small[ns] = b
                    ns += 1
                else:
                    large[nl] = b
                    nl += 1
            r += delta / total
        start[g, segments] = r


@_leaf
def _arrive_exact(
    b: int,
    g: int,
    st: Any,
    per: int,
    w: np.ndarray,
    accept: bool,
    lane_r: np.ndarray,
    posleft: np.ndarray,
    arrived: np.ndarray,
    h: np.ndarray,
) -> tuple[int, float, Any]:
    """The next arrival (expert, score) of group ``g`` of token ``b`` by thinning at the group's exact
    current rate: from time ``r = lane_r[b, g]``, a candidate at ``r' = r + E / H(r)`` (``H``: the
    total hazard of the experts left), naming expert ``e`` with probability ``h_e(r) / H(r)``
    (a linear scan), accepted with probability ``h_e(r') / h_e(r) = (1 + w_e r) / (1 + w_e r')``.
    Used past the segment tables and for groups whose arrived experts hold most of the tables'
    rate; also draws the zero-weight experts (score 0, in random order) once nothing else is left.
    """
    if posleft[b, g] == 0:  # only zero-weight experts left: score 0, any of them (ties)
        while True:
            e, st = _below(st, per)
            if not arrived[b, g, e]:
                break
        arrived[b, g, e] = True
        return e, 0.0, st
    gp = g * per
    r = lane_r[b, g]
    while True:
        total = 0.0
        for i in range(per):
            we = w[gp + i]
            h[i] = 0.0 if arrived[b, g, i] else we / (1.0 + we * r)
            total += h[i]
        x, st = _exponential(st)
        r1 = r + x / total
        a, st = _uniform(st)
        target = a * total
        e = -1
        for i in range(per):
            if h[i] > 0.0:
                e = i
                target -= h[i]
                if target < 0.0:
                    break
        we = w[gp + e]
        a, st = _uniform(st)
        if not math.isfinite(r1) or not accept or a * (1.0 + we * r1) <= 1.0 + we * r:
            lane_r[b, g] = r1
            arrived[b, g, e] = True
            posleft[b, g] -= 1
            return e, 1.0 / (1.0 + r1), st
        r = r1


@_jit
def _route_weighted(
    state: np.ndarray,
    tokens: int,
    groups: int,
    per: int,
    limit: int,
    q: int,
    k: int,
    w: np.ndarray,
    start: np.ndarray,
    binv: np.ndarray,
    prob: np.ndarray,
    alias: np.ndarray,
    accept: bool,
    out: np.ndarray,
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
    """``skewed`` gating (weights ``w``, flat groups * per; segment tables of ``_segment_tables``):
    chosen experts into ``out`` (unsorted), ``BATCH`` tokens at a time like ``_route_iid``; ``count``
    as there. Arrivals come from ``_arrive``."""
    st = state[0]
    segments = binv.shape[1]
    scale = per / 9007199254740992.0
    gseen = np.full(max(gpn, 1), -1, np.int64)
    npos = np.zeros(groups, np.int64)
    for g in range(groups):
        for i in range(per):
            npos[g] += w[g * per + i] > 0.0
    ebuf = np.zeros(EXPS)
    bad = np.zeros(EXPS, np.bool_)
    pos = EXPS
    h = np.zeros(per)
    lane_u = np.zeros((BATCH, groups))
    lane_r = np.zeros((BATCH, groups))
    lane_mode = np.zeros((BATCH, groups), np.int64)
    posleft = np.zeros((BATCH, groups), np.int64)
    nrev = np.zeros((BATCH, groups), np.int64)
    vals = np.zeros((BATCH, groups, per))
    who = np.zeros((BATCH, groups, per), np.int64)
    arrived = np.zeros((BATCH, groups, per), np.bool_)  # cleared after each token
    score = np.zeros((BATCH, groups))
    kept = np.zeros((BATCH, limit), np.int64)
    rank = np.zeros(groups, np.int64)
    head = np.zeros((BATCH, limit))
    cnt = np.zeros((BATCH, limit), np.int64)
    gb = groups * BATCH
    fast = q == 2 and accept  # the group step's first two candidates as vector loops
    spec_x = np.zeros(2 * gb)  # their exponentials, then clocks u1 (first half) and u2
    spec_bad = np.zeros(2 * gb, np.bool_)
    spec_w = np.zeros(4 * gb, np.uint64)  # random words: expert 1, acceptance 1, expert 2, acceptance 2
    spec_e = np.zeros(2 * gb, np.int64)
    spec_r = np.zeros(2 * gb)
    spec_ok = np.zeros(2 * gb, np.bool_)  # passed the acceptance test (the arrived check comes later)
    u_end = segments * DELTA
    for t0 in range(0, tokens, BATCH):
        nb = min(BATCH, tokens - t0)
        if fast:  # speculative: each lane's first two candidates, processed in order further down
            st = _fill_exponentials(st, 2 * gb, spec_x, spec_bad)
            for j in range(4 * gb):
                spec_w[j] = _mix(st + _U64(j + 1) * _GOLDEN)
            st = st + _U64(4 * gb) * _GOLDEN
            for g in range(groups):
                gp = g * per
                for b in range(BATCH):
                    i = g * BATCH + b
                    u1 = spec_x[i]
                    u2 = u1 + spec_x[gb + i]
                    spec_x[i] = u1
                    spec_x[gb + i] = u2
                    for c in range(2):
                        u = u1 if c == 0 else u2
                        s = min(np.int64(u * (1.0 / DELTA)), segments - 1)
                        x = float(np.int64(spec_w[4 * i + 2 * c] >> _U64(11))) * scale
                        ix = min(np.int64(x), np.int64(per - 1))
                        e = ix if x - ix < prob[g, s, ix] else alias[g, s, ix]
                        r0 = start[g, s]
                        r = r0 + (u - s * DELTA) * binv[g, s]
                        a = float(np.int64(spec_w[4 * i + 2 * c + 1] >> _U64(11))) * (1.0 / 9007199254740992.0)
                        we = w[gp + e]
                        spec_e[2 * i + c] = e
                        spec_r[2 * i + c] = r
                        spec_ok[2 * i + c] = (we > 0.0) & (a * (1.0 + we * r) < 1.0 + we * r0)
        for b in range(nb):
            for g in range(groups):
                lane_u[b, g] = 0.0
                lane_r[b, g] = 0.0
                lane_mode[b, g] = 0
                posleft[b, g] = npos[g]
                total = 0.0
                n0 = 0
                if fast:  # the speculative candidates in order: arrivals, rejections, or the tables' end
                    i = g * BATCH + b
                    for c in range(2):
                        if spec_x[c * gb + i] >= u_end:  # past the tables: exact rates from their end
                            lane_r[b, g] = start[g, segments]
                            lane_mode[b, g] = 1
                            break
                        lane_u[b, g] = spec_x[c * gb + i]
                        e = spec_e[2 * i + c]
                        if spec_ok[2 * i + c] and not arrived[b, g, e]:
                            v = 1.0 / (1.0 + spec_r[2 * i + c])
                            who[b, g, n0] = e
                            vals[b, g, n0] = v
                            total += v
                            arrived[b, g, e] = True
                            posleft[b, g] -= 1
                            n0 += 1
                for n in range(n0, q):  # the arrival step (written out twice: see the docstring)
                    if posleft[b, g] == 0 or lane_mode[b, g] == 1:
                        e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                    else:  # the segment tables (see _route_weighted)
                        u = lane_u[b, g]
                        misses = 0
                        while True:
                            if pos == EXPS:
                                st = _fill_exponentials(st, EXPS, ebuf, bad)
                                pos = 0
                            u += ebuf[pos]
                            pos += 1
                            s = min(np.int64(u * (1.0 / DELTA)), segments) if accept else 0
                            if s == segments:  # past the tables: exact rates from their end
                                lane_r[b, g] = start[g, segments]
                                lane_mode[b, g] = 1
                                e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                                break
                            st = st + _GOLDEN
                            x = float(np.int64(_mix(st) >> _U64(11))) * scale
                            ix = min(np.int64(x), np.int64(per - 1))
                            e = ix if x - ix < prob[g, s, ix] else alias[g, s, ix]
                            r0 = start[g, s]
                            r = r0 + (u - s * DELTA) * binv[g, s]
                            if arrived[b, g, e]:  # its hazard is 0 now: rejected; many in a row: exact rates
                                misses += 1
                                if misses == MISSES:
                                    lane_r[b, g] = r
                                    lane_mode[b, g] = 1
                                    e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                                    break
                                continue
                            misses = 0
                            we = w[g * per + e]
                            a, st = _uniform(st)
                            if we > 0.0 and (a * (1.0 + we * r) <= 1.0 + we * r0 or not accept):
                                lane_u[b, g] = u
                                arrived[b, g, e] = True
                                posleft[b, g] -= 1
                                v = 1.0 / (1.0 + r)
                                break
                    who[b, g, n] = e
                    vals[b, g, n] = v
                    total += v
                nrev[b, g] = q
                score[b, g] = total
        for b in range(nb):
            for g in range(groups):  # keep the `limit` best groups (ties: lower index): ranks by pairs
                rank[g] = 0
            for g in range(1, groups):
                sg = score[b, g]
                for hh in range(g):
                    worse = np.int64(score[b, hh] >= sg)
                    rank[g] += worse
                    rank[hh] += 1 - worse
            nk = 0
            for g in range(groups):
                if rank[g] < limit:
                    kept[b, nk] = g
                    nk += 1
            for j in range(limit):
                head[b, j] = vals[b, kept[b, j], 0]
                cnt[b, j] = 0
        for _ in range(k):  # k-way merge of the kept groups' descending scores, drawn lazily
            for b in range(nb):
                bj = 0
                best = head[b, 0]
                for j in range(1, limit):
                    v = head[b, j]
                    bj = j if v > best else bj
                    best = v if v > best else best
                n = cnt[b, bj] + 1
                cnt[b, bj] = n
                g = kept[b, bj]
                if n == per:
                    head[b, bj] = -1.0
                    continue
                if n == nrev[b, g]:  # the arrival step again
                    if posleft[b, g] == 0 or lane_mode[b, g] == 1:
                        e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                    else:  # the segment tables (see _route_weighted)
                        u = lane_u[b, g]
                        misses = 0
                        while True:
                            if pos == EXPS:
                                st = _fill_exponentials(st, EXPS, ebuf, bad)
                                pos = 0
                            u += ebuf[pos]
                            pos += 1
                            s = min(np.int64(u * (1.0 / DELTA)), segments) if accept else 0
                            if s == segments:  # past the tables: exact rates from their end
                                lane_r[b, g] = start[g, segments]
                                lane_mode[b, g] = 1
                                e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                                break
                            st = st + _GOLDEN
                            x = float(np.int64(_mix(st) >> _U64(11))) * scale
                            ix = min(np.int64(x), np.int64(per - 1))
                            e = ix if x - ix < prob[g, s, ix] else alias[g, s, ix]
                            r0 = start[g, s]
                            r = r0 + (u - s * DELTA) * binv[g, s]
                            if arrived[b, g, e]:  # its hazard is 0 now: rejected; many in a row: exact rates
                                misses += 1
                                if misses == MISSES:
                                    lane_r[b, g] = r
                                    lane_mode[b, g] = 1
                                    e, v, st = _arrive_exact(b, g, st, per, w, accept, lane_r, posleft, arrived, h)
                                    break
                                continue
                            misses = 0
                            we = w[g * per + e]
                            a, st = _uniform(st)
                            if we > 0.0 and (a * (1.0 + we * r) <= 1.0 + we * r0 or not accept):
                                lane_u[b, g] = u
                                arrived[b, g, e] = True
                                posleft[b, g] -= 1
                                v = 1.0 / (1.0 + r)
                                break
                    who[b, g, n] = e
                    vals[b, g, n] = v
                    nrev[b, g] = n + 1
                head[b, bj] = vals[b, g, n]
        for b in range(nb):
            t = t0 + b
            n = 0
            for j in range(limit):
                g = kept[b, j]
                for i in range(cnt[b, j]):
                    out[t, n] = g * per + who[b, g, i]
                    n += 1
            for g in range(groups):
                for i in range(nrev[b, g]):
                    arrived[b, g, who[b, g, i]] = False
            if count:  # the traffic of token t: its kept groups are the nodes it reaches
                sg = src[t]
                sn = gpu_of[-1 - sg]
                ls = sg - sn * gpn
                reached = 0
                n = 0
                for j in range(limit):
                    c = cnt[b, j]
                    if c == 0:
                        continue
                    node = kept[b, j]
                    reached += 1
                    sender = sg
                    if node != sn:
                        ib[sg, node] += 1
                        sender = node * gpn + ls
                    if gpn <= 8:  # NVLink: a histogram of (node, sender's index, byte of GPUs reached)
                        mask = 0
                        for i in range(n, n + c):
                            e = out[t, i]
                            tpe[e] += 1
                            mask |= 1 << (gpu_of[e] - node * gpn)
                        hist[((node * gpn) + ls) * 256 + mask] += 1
                    else:
                        for i in range(n, n + c):
                            e = out[t, i]
                            tpe[e] += 1
                            d = gpu_of[e]
                            if gseen[d - node * gpn] != t * limit + j:
                                gseen[d - node * gpn] = t * limit + j
                                if d != sender:
                                    nvlink[sender, d] += 1
                    n += c
                logical[sg] += reached
                npt[t] = reached
    state[0] = st


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
    accept: bool = True,
) -> tuple[np.ndarray, Traffic | None]:
    """Run a kernel: choices (unsorted rows) and, when ``src`` is given, the traffic. ``group_topk``
    and ``accept=False`` make deliberately wrong samplers (tests show they are caught)."""
    groups, per, ep = spec.groups, spec.experts_per_group, spec.ep
    out = np.zeros((tokens, spec.topk), dtype=np.int16)
    count = src is not None
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
            _route_iid(state, tokens, *shape, out, count, *counts)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(groups, per)
        if (w < 0).any() or not np.isfinite(w).all():
            raise ValueError("expert weights must be finite and >= 0")
        if tokens:
            start = np.zeros((groups, SEGMENTS + 1))
            binv = np.zeros((groups, SEGMENTS))
            prob = np.zeros((groups, SEGMENTS, per))
            alias = np.zeros((groups, SEGMENTS, per), np.int64)
            _segment_tables(w, SEGMENTS, DELTA, start, binv, prob, alias)
            tables = (w.ravel(), start, binv, prob, alias, accept)
            _route_weighted(state, tokens, *shape, *tables, out, count, *counts)
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
    _, traffic = _sample(spec, len(src), seed, weights, src)
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
