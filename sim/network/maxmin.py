"""Max-min fair rates by parallel water-filling, vectorised with numpy.

Progressive filling raises all unfrozen flows together until a link saturates, freezes the flows
on it and repeats. Its result is reached faster by freezing, in one round, every link that is a
*local* bottleneck: a link whose fair share (remaining capacity / unfrozen flows) is the smallest
share on the path of every unfrozen flow that crosses it. This is exact: when a flow is frozen at
level x <= share(j) on another link j, that link's share (rem - x) / (n - 1) can only grow, so a
local bottleneck's share never drops below its value and all its flows end at exactly that share.
The global minimum link is always a local bottleneck, so every round makes progress; the number of
rounds is the depth of the bottleneck dependency chain, not the number of distinct rates.

Entries: ``entry_flow[i]`` crosses ``entry_link[i]``; entries must be grouped by flow (all of a
flow's entries consecutive, flows in increasing order). A flow with no entries gets ``inf``, and so
does a flow with no cap whose links carry no weight from any flow still unfrozen (nothing bounds it;
such a flow looped for ever before 2026-12-06). A link of weight 0 that others load still bounds it.

Weights and caps (coflows, :mod:`sim.network.flows`). An entry may carry a weight ``w``: the flow
loads that link with ``w`` x its rate (a coflow's rate is its progress on its most loaded link, and
``w`` <= 1 the share of its bytes on each other link). The fair share of a link is then its
remaining capacity over the summed weights of its unfrozen entries, and the same local-bottleneck
argument holds (freezing a flow at ``x`` <= share(j) removes ``w x`` of capacity and ``w`` of weight
from link ``j``, so its share cannot fall). A flow's ``cap`` (its rate alone, e.g. what its driving
SMs allow) is a private link of that capacity with weight 1. With every weight 1 and no caps this is
plain max-min fairness.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

# Solves of at least this many entries run compiled (sim.network.maxmin_compiled, the same rates bit for
# bit) where numba is already imported (random or skewed routing imports it), or once this process has
# spent COMPILE_AFTER_S in such solves in numpy: importing numba costs about 0.6 s (and compiling the
# solver about 1.5 s more where its cache is cold, once per install), which a balanced default step's
# solves (about 100 of 144 to 1,000 entries, 11 larger: some 15 ms) never repay, nor the 65,536-GPU
# step's (671 large ones, 0.73 s in numpy), while a skewed step's 29,847 repay it many times, and so
# does a sweep's worker after some hundred points. Measured 2026-12-06 on 400 solves drawn from the
# default step under skewed, random and balanced routing (5,260 entries on average): 0.333 ms each in
# numpy, 0.088 ms compiled; the default step in-process under skewed routing 13.7 s to 8.6 s, random
# 5.4 s to 3.6 s. Measured later that day on the coflow table's 471 solves of 144 to 1,000 entries in five
# points of scenarios/sweeps/thousand.yaml: 107 to 173 us each in numpy, 18 us compiled (1,024 entries
# was the threshold until then).
COMPILED_ENTRIES = 64
COMPILE_AFTER_S = 1.5
_numpy_large_s = [0.0]  # seconds spent in solves of COMPILED_ENTRIES or more in numpy (this process)


def _compiled() -> Any:
    """The compiled solver when a large solve should use it now (see COMPILED_ENTRIES), else None."""
    if "numba" not in sys.modules and _numpy_large_s[0] < COMPILE_AFTER_S:
        return None
    try:
        from sim.network.maxmin_compiled import maxmin_rates_compiled
    except ImportError:  # pragma: no cover - numba is a dependency; without it, numpy
        return None
    return maxmin_rates_compiled


def maxmin_rates(
    entry_flow: np.ndarray,
    entry_link: np.ndarray,
    capacity: np.ndarray,
    num_flows: int,
    rtol: float = 1e-9,
    weight: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> np.ndarray:
    """Max-min fair rate of each of ``num_flows`` flows (same unit as ``capacity``); ``weight`` per
    entry (default 1), ``cap`` per flow (default none: ``inf``). Large solves run compiled where that
    pays (:data:`COMPILED_ENTRIES`), with the same rates bit for bit."""
    if entry_flow.size < COMPILED_ENTRIES:
        return maxmin_rates_numpy(entry_flow, entry_link, capacity, num_flows, rtol, weight, cap)
    solve = _compiled() if cap is None or not (np.diff(entry_flow) < 0).any() else None
    if solve is not None:
        return solve(entry_flow, entry_link, capacity, num_flows, rtol, weight, cap)
    start = time.perf_counter()
    rates = maxmin_rates_numpy(entry_flow, entry_link, capacity, num_flows, rtol, weight, cap)
    _numpy_large_s[0] += time.perf_counter() - start
    return rates


def maxmin_rates_numpy(
    entry_flow: np.ndarray,
    entry_link: np.ndarray,
    capacity: np.ndarray,
    num_flows: int,
    rtol: float = 1e-9,
    weight: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`maxmin_rates` in numpy, whatever the size (the reference of the compiled solver)."""
    rates = np.full(num_flows, np.inf)
    if cap is not None:
        capped = np.flatnonzero(np.isfinite(cap))
        if capped.size:
            # each capped flow gets a private link of its cap, placed after its own entries
            entry_flow, entry_link, weight = _with_caps(entry_flow, entry_link, weight, capped, len(capacity))
            capacity = np.concatenate([capacity, cap[capped]])
    if entry_flow.size == 0:
        return rates
    if len(capacity) > 2 * entry_link.size:  # a big fabric: solve on the links crossed only (same sums)
        used, entry_link = np.unique(entry_link, return_inverse=True)
        capacity = capacity[used]
    num_links = len(capacity)
    remaining = capacity.astype(np.float64, copy=True)
    flows, links = entry_flow, entry_link
    weights = weight
    while flows.size:
        count: np.ndarray = (
            np.bincount(links, minlength=num_links).astype(np.float64)
            if weights is None
            else np.bincount(links, weights=weights, minlength=num_links)
        )
        used = count > 0
        share = np.full(num_links, np.inf)
        share[used] = np.maximum(remaining[used], 0.0) / count[used]
        entry_share = share[links]
        # each flow's entries are consecutive: find the blocks once per round
        change = np.empty(flows.size, dtype=bool)
        change[0] = True
        np.not_equal(flows[1:], flows[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        lengths = np.diff(starts, append=flows.size)
        flow_min = np.minimum.reduceat(entry_share, starts)  # smallest share on each flow's path
        entry_min = np.repeat(flow_min, lengths)
        # a link is a local bottleneck if it is the minimum of every flow crossing it
        not_min = entry_share > entry_min * (1.0 + rtol)
        bottleneck = used & (np.bincount(links[not_min], minlength=num_links) == 0)
        frozen_flow = np.add.reduceat(bottleneck[links].astype(np.int8), starts) > 0
        if not frozen_flow.any():  # only links of weight 0 left: nothing bounds these flows (inf)
            break
        rates[flows[starts[frozen_flow]]] = flow_min[frozen_flow]
        frozen_entry = np.repeat(frozen_flow, lengths)
        load = entry_min[frozen_entry] if weights is None else entry_min[frozen_entry] * weights[frozen_entry]
        remaining -= np.bincount(links[frozen_entry], weights=load, minlength=num_links)
        keep = ~frozen_entry
        flows, links = flows[keep], links[keep]
        if weights is not None:
            weights = weights[keep]
    return rates


def _with_caps(
    entry_flow: np.ndarray, entry_link: np.ndarray, weight: np.ndarray | None, capped: np.ndarray, num_links: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries with one extra entry (weight 1, link ``num_links + k``) for the ``k``-th capped flow,
    kept grouped by flow."""
    w = np.ones(entry_flow.size) if weight is None else np.asarray(weight, dtype=np.float64)
    flows = np.concatenate([entry_flow, capped])
    links = np.concatenate([entry_link, num_links + np.arange(capped.size)])
    weights = np.concatenate([w, np.ones(capped.size)])
    order = np.argsort(flows, kind="stable")
    return flows[order], links[order], weights[order]


def maxmin_rates_lists(
    paths: list[tuple[list[int], list[float]]],
    capacity: Sequence[float] | np.ndarray,
    caps: list[float],
    rtol: float = 1e-9,
) -> list[float]:
    """:func:`maxmin_rates` of a small problem in plain Python, the same rates bit for bit (the same
    rounds, and each link's weights and loads summed in entry order from 0.0, as ``np.bincount``
    does): for a component of a few coflows, numpy's fixed cost per call is most of the solve.

    ``paths[f]``: flow ``f``'s (links, weights), its links distinct indices into ``capacity``;
    ``caps[f]``: its cap (``inf``: none). Every flow has at least one link."""
    # each link crossed (a cap is a private link after its flow's entries, as _with_caps puts it) gets a
    # local index, in the order first seen: per-link sums and flags are then lists, not dicts
    flows: list[int] = []
    links: list[int] = []
    weights: list[float] = []
    local: dict[int, int] = {}
    remaining: list[float] = []
    for f, (ls, ws) in enumerate(paths):
        for link in ls:
            k = local.get(link, -1)
            if k < 0:
                k = local[link] = len(remaining)
                remaining.append(float(capacity[link]))
            flows.append(f)
            links.append(k)
        weights += ws
        if caps[f] != math.inf:
            flows.append(f)
            links.append(len(remaining))
            weights.append(1.0)
            remaining.append(float(caps[f]))
    rates = [math.inf] * len(paths)
    inf = math.inf
    n_links = len(remaining)
    while flows:
        count = [0.0] * n_links  # each link's weights summed in entry order from 0.0 (np.bincount)
        crossed = [False] * n_links
        for k in range(len(links)):  # (index loops: compiled, zip(..., strict=True) is a generic iterator)
            link = links[k]
            count[link] += weights[k]
            crossed[link] = True
        share = [inf] * n_links
        for link in range(n_links):
            c = count[link]
            if crossed[link] and c > 0.0:
                r = remaining[link]
                share[link] = (r if r > 0.0 else 0.0) / c
        entry_share = [share[link] for link in links]
        # each flow's entries are consecutive: its smallest share, spread back over its entries
        entry_min: list[float] = []
        n = len(flows)
        i = 0
        while i < n:
            j = i
            m = inf
            f = flows[i]
            while j < n and flows[j] == f:
                if entry_share[j] < m:
                    m = entry_share[j]
                j += 1
            entry_min += [m] * (j - i)
            i = j
        # a link is a local bottleneck if it carries weight and is the minimum of every flow crossing it
        not_bottleneck = [False] * n_links
        for k in range(n):
            if entry_share[k] > entry_min[k] * (1.0 + rtol):
                not_bottleneck[links[k]] = True
        for link in range(n_links):
            if crossed[link] and not count[link] > 0.0:
                not_bottleneck[link] = True
        frozen = [False] * len(paths)
        any_frozen = False
        for k in range(n):
            if not not_bottleneck[links[k]]:
                frozen[flows[k]] = True
                any_frozen = True
        if not any_frozen:  # only links of weight 0 left: nothing bounds these flows (inf)
            break
        load = [0.0] * n_links  # the frozen flows' loads, summed in entry order from 0.0
        loaded = [False] * n_links
        keep_f: list[int] = []
        keep_l: list[int] = []
        keep_w: list[float] = []
        for k in range(n):
            f = flows[k]
            link = links[k]
            w = weights[k]
            if frozen[f]:
                m = entry_min[k]
                rates[f] = m
                load[link] += m * w
                loaded[link] = True
            else:
                keep_f.append(f)
                keep_l.append(link)
                keep_w.append(w)
        for link in range(n_links):
            if loaded[link]:
                remaining[link] -= load[link]
        flows, links, weights = keep_f, keep_l, keep_w
    return rates
