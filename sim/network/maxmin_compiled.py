"""Max-min fair rates by the water-filling of :func:`sim.network.maxmin.maxmin_rates`, compiled (numba).

The same rounds with the same float operations in the same order, so the same rates bit for bit
(tied by a property test, ``tests/unit/network/test_maxmin_compiled.py``):

* a link's weight sum and a round's frozen load are summed in entry order from 0.0, as ``np.bincount``
  sums them, and subtracted once per round;
* a link's share is ``max(remaining, 0) / weight sum`` with numpy's ``maximum`` (NaN kept);
* a flow's smallest share, the local-bottleneck test ``share > min x (1 + rtol)`` and the freezing
  are the numpy version's, entry by entry;
* caps are private links placed after their flow's entries (``_with_caps``), the links crossed are
  renumbered densely (a renumbering changes no sum: each link's entries keep their order).

Why: a DeepEP phase simulated flow by flow (its time alone, :mod:`sim.network.context`) solves 4,000
to 7,000 entries at every completion, and with random or skewed routing its flows end at many
different times: the default step under skewed routing made 29,847 such solves, 6.9 s of its 14 s
in numpy's per-call and per-round overheads (measured 2026-12-06). Compiled, a round is a few loops
over the entries. numba is imported only where this is used (:func:`sim.network.maxmin.maxmin_rates`
decides: importing it costs about 0.6 s, more than a balanced step's solves take in all).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _waterfill(  # pragma: no cover - compiled (coverage does not see inside; the property test ties it to numpy)
    entry_flow: np.ndarray,
    entry_link: np.ndarray,
    capacity: np.ndarray,
    weight: np.ndarray,
    weighted: bool,
    cap: np.ndarray,
    capped: bool,
    num_flows: int,
    rtol: float,
) -> np.ndarray:
    rates = np.full(num_flows, np.inf)
    n = len(entry_flow)
    extra = 0
    if capped:
        for f in range(num_flows):
            if np.isfinite(cap[f]):
                extra += 1
    m = n + extra
    flows = np.empty(m, np.int64)
    links = np.empty(m, np.int64)
    w = np.ones(m)
    # the links crossed, renumbered densely in order of first crossing (private cap links after them)
    label = np.full(len(capacity), -1, np.int64)
    remaining = np.empty(n + extra)
    num_links = 0
    for i in range(n):
        link = entry_link[i]
        if label[link] < 0:
            label[link] = num_links
            remaining[num_links] = capacity[link]
            num_links += 1
    # entries, each capped flow's private link after its own (flows in increasing order)
    k = 0
    p = 0
    private = num_links
    for f in range(num_flows if capped else 0):
        while p < n and entry_flow[p] == f:
            flows[k] = f
            links[k] = label[entry_link[p]]
            w[k] = weight[p] if weighted else 1.0
            k += 1
            p += 1
        if np.isfinite(cap[f]):
            flows[k] = f
            links[k] = private
            w[k] = 1.0
            remaining[private] = cap[f]
            private += 1
            k += 1
    if not capped:
        for i in range(n):
            flows[i] = entry_flow[i]
            links[i] = label[entry_link[i]]
            if weighted:
                w[i] = weight[i]
    num_links = private if capped else num_links
    count = np.zeros(num_links)
    share = np.empty(num_links)
    not_min = np.zeros(num_links, np.bool_)
    load = np.zeros(num_links)
    entry_share = np.empty(m)
    entry_min = np.empty(m)
    frozen = np.zeros(m, np.bool_)
    scale = 1.0 + rtol
    while m > 0:
        for link in range(num_links):
            count[link] = 0.0
            not_min[link] = False
            load[link] = 0.0
        for i in range(m):
            count[links[i]] += w[i]
        for link in range(num_links):
            c = count[link]
            if c > 0:
                r = remaining[link]
                share[link] = (r if (r > 0.0 or r != r) else 0.0) / c  # np.maximum(r, 0.0): -0.0 is 0.0
            else:
                share[link] = np.inf
        for i in range(m):
            entry_share[i] = share[links[i]]
        i = 0
        while i < m:  # each flow's entries are consecutive: its smallest share on its path
            f = flows[i]
            j = i
            low = entry_share[i]
            while j < m and flows[j] == f:
                v = entry_share[j]
                low = v if v < low else low  # (np.minimum: a NaN share propagates)
                if v != v:
                    low = v
                j += 1
            for e in range(i, j):
                entry_min[e] = low
                if entry_share[e] > low * scale:
                    not_min[links[e]] = True
            i = j
        any_frozen = False
        i = 0
        while i < m:  # a flow freezes if one of its links is a local bottleneck (used, no flow below its share)
            f = flows[i]
            j = i
            hit = False
            while j < m and flows[j] == f:
                link = links[j]
                if count[link] > 0 and not not_min[link]:
                    hit = True
                j += 1
            for e in range(i, j):
                frozen[e] = hit
            if hit:
                rates[f] = entry_min[i]
                any_frozen = True
            i = j
        if not any_frozen:  # only links of weight 0 left: nothing bounds these flows (inf)
            break
        for i in range(m):
            if frozen[i]:
                load[links[i]] += entry_min[i] * w[i]  # (w is 1.0 unweighted: x * 1.0 is x, bit for bit)
        for link in range(num_links):
            remaining[link] -= load[link]
        k = 0
        for i in range(m):
            if not frozen[i]:
                flows[k] = flows[i]
                links[k] = links[i]
                w[k] = w[i]
                k += 1
        m = k
    return rates


def maxmin_rates_compiled(
    entry_flow: np.ndarray,
    entry_link: np.ndarray,
    capacity: np.ndarray,
    num_flows: int,
    rtol: float = 1e-9,
    weight: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`sim.network.maxmin.maxmin_rates`, compiled: the same arguments and the same rates bit for
    bit. With caps the entries must be in increasing flow order (grouped is not enough: the numpy
    version sorts them by flow; :func:`sim.network.maxmin.maxmin_rates` checks before calling this).
    Arguments the compiled loops cannot take safely (numba checks no bounds: a link or flow number out
    of range, caps of another length) are given to the numpy solver, which does with them what it always
    did (it raises where its indexing raises; a negative number indexes from the end)."""
    from sim.network.maxmin import maxmin_rates_numpy

    flows = np.ascontiguousarray(entry_flow, dtype=np.int64)
    links = np.ascontiguousarray(entry_link, dtype=np.int64)
    n = len(flows)
    if (
        len(links) != n
        or (weight is not None and len(weight) != n)
        or (cap is not None and len(cap) != num_flows)
        or (n and (flows.min() < 0 or flows.max() >= num_flows or links.min() < 0 or links.max() >= len(capacity)))
    ):
        return maxmin_rates_numpy(entry_flow, entry_link, capacity, num_flows, rtol, weight, cap)
    # a fabric of far more links than entries: the links crossed only, or every solve would fill a label
    # per link (3M links: 0.9 ms); np.unique's sort costs more than a phase's solve below that (a
    # renumbering changes no sum)
    if len(capacity) > 64 * n:
        used, inverse = np.unique(links, return_inverse=True)
        links, capacity = inverse.astype(np.int64), capacity[used]
    weighted = weight is not None
    w = np.ascontiguousarray(weight, dtype=np.float64) if weighted else np.ones(0)
    capped = cap is not None and bool(np.isfinite(cap).any())
    c = np.ascontiguousarray(cap, dtype=np.float64) if capped else np.ones(0)
    cap_ = np.ascontiguousarray(capacity, dtype=np.float64)
    return _waterfill(flows, links, cap_, w, weighted, c, capped, int(num_flows), float(rtol))
