"""Coflows: many flows that move together, as one entity on the flow network.

A coflow is described by the bytes it puts on each link (its flows routed and summed per link) and by
the time it takes alone. :meth:`sim.network.flows.FlowNetwork.send_coflow` runs it: alone it takes
exactly that time; beside other flows and coflows it shares every link it crosses, max-min fairly,
its rate measured on its most loaded link. The time alone comes from the most faithful model of the
coflow on its own: the per-flow max-min solution (:func:`coflow_of_flows`), the per-flow DeepEP
simulation with its SM channels, or the collective's step-by-step simulation.

What the abstraction drops (documented in docs/step.md): inside a coflow, flows keep the proportions
they had alone (a flow that another coflow slows does not let the coflow's other flows speed up), so
under contention a coflow ends no earlier than its per-flow counterpart would, and at most when its
most slowed flow would.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

from sim.network.link_classes import LinkClasses
from sim.network.maxmin import maxmin_rates, maxmin_rates_lists
from sim.network.routing import Routes, route, route_trees, tree_bytes
from sim.network.topology import Topology

# A component of at most this many (coflow, link class) entries is solved in plain Python
# (maxmin_rates_lists, the same rates bit for bit): below it numpy's fixed cost per call dominates
# (measured on the components of thousand.yaml sweep points: about 4x faster at 15 entries, even
# at about 150).
SMALL_SOLVE = 144
_REL_DONE = 1e-9  # a coflow with less than this fraction of its bytes left has ended (rounding)


def link_loads(
    topo: Topology,
    src: np.ndarray,
    dst: np.ndarray,
    nbytes: np.ndarray,
    seed: int | None = None,
    trees: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(links, bytes on each, largest path latency) of flows ``src[i] -> dst[i]`` of ``nbytes[i]``;
    each link named once. ``trees``: flows of one id are one multicast or reduction tree, which puts
    its bytes once on each link of the union of their paths (:func:`sim.network.routing.merge_routes`)."""
    nbytes = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), (len(src),))
    if trees is not None:
        routes = route_trees(topo, src, dst, trees, seed)
        nbytes, _ = tree_bytes(nbytes, trees)
    else:
        routes = route(topo, np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), seed)
    return _loads_on(routes, nbytes, topo.num_links)


def _loads_on(routes: Routes, nbytes: np.ndarray, num_links: int) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`link_loads` of flows already routed."""
    counts = np.diff(routes.indptr)
    per_link = np.bincount(routes.links, weights=np.repeat(nbytes, counts), minlength=num_links)
    links = np.flatnonzero(per_link > 0)
    latency = float(routes.latency.max()) if routes.num_flows else 0.0
    return links, per_link[links], latency


def coflow_of_flows(
    topo: Topology, src: np.ndarray, dst: np.ndarray, nbytes: np.ndarray, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(links, bytes per link, time alone, latency) of a coflow of plain flows: its time alone is the
    time its slowest flow needs at the flows' max-min rates alone on the fabric (the rates hold from
    start to end when all flows are equal, as a rank's pipeline sends are); ``latency`` is the largest
    path latency, added after the last byte."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    nbytes = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), src.shape)
    routes = route(topo, src, dst, seed)
    counts = np.diff(routes.indptr)
    moving = (nbytes > 0) & (counts > 0)
    links, per_link, latency = _loads_on(routes, nbytes, topo.num_links)  # (routed once)
    if not moving.any():
        return links, per_link, 0.0, latency
    entry_flow = np.repeat(np.arange(len(src)), counts)
    rates = maxmin_rates(entry_flow, routes.links, topo.capacity, len(src))
    time_alone = float(np.max(nbytes[moving] / rates[moving]))
    return links, per_link, time_alone, latency


def finish_times(routes: Routes, nbytes: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """When each flow along ``routes`` of ``nbytes[i]``, all started together alone on links of
    ``capacity``, sends its last byte: max-min rates, re-solved each time flows finish (what
    :class:`~sim.network.flows.FlowNetwork` does with ``completion_rtol`` 0). Flows with no bytes
    or no links finish at 0."""
    nbytes = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), (routes.num_flows,))
    counts = np.diff(routes.indptr)
    active = (nbytes > 0) & (counts > 0)
    out = np.zeros(routes.num_flows)
    remaining = nbytes.copy()
    used, local = np.unique(routes.links, return_inverse=True)  # solve on the links crossed only
    cap = capacity[used]
    now = 0.0
    while active.any():
        idx = np.flatnonzero(active)
        entry_flow = np.repeat(np.arange(idx.size), counts[idx])
        entry_link = local[np.repeat(active, counts)]
        rates = maxmin_rates(entry_flow, entry_link, cap, idx.size)
        finish = remaining[idx] / rates
        dt = float(finish.min())
        now += dt
        done = finish <= dt * (1.0 + 1e-12)
        out[idx[done]] = now
        remaining[idx] -= rates * dt
        active[idx[done]] = False
    return out


class CoflowTable:
    """The active coflows of a :class:`~sim.network.flows.FlowNetwork` and their max-min rates.

    Coflows that share no link (directly or through others) form separate components of the
    sharing graph, and max-min fairness decomposes over them, so a start or an end re-solves only
    what it touches:

    * a start at the coflow's cap that puts no link over capacity changes nobody else's bottleneck:
      the allocation stays max-min fair, no solve;
    * an end frees capacity only on its own links: only its direct neighbours can rise, and only if
      one of them was below its cap; then their component is solved again;
    * a component's solution depends only on its members' link sets, weights and caps, so it is
      memoised by them (a step repeats the same few overlaps thousands of times).

    A coflow's *kind* is its link and byte arrays (the caller passes the same memoised arrays for
    the same kind of coflow): kinds that share a link conflict, computed once per pair of kinds.
    Loads, limits and solves work on link classes (:mod:`sim.network.link_classes`: links every kind
    loads alike, one constraint each), not on every link.

    State is kept lazily per coflow: its remaining bytes at the time its rate last changed, so
    nothing is touched while rates hold; completions come from a heap of end times.
    """

    MEMO_SIZE = 200_000

    def __init__(self, capacity: np.ndarray) -> None:
        self.capacity = capacity
        self.classes = LinkClasses(capacity)  # links loaded alike, one constraint each (and their load)
        self.rem0: list[float] = []  # remaining bytes at t0
        self.t0: list[float] = []
        self.started: list[float] = []
        self.rate: list[float] = []
        self.cap: list[float] = []
        self.size: list[float] = []
        self.lat: list[float] = []
        self.kind: list[int] = []
        self.payload: list[object] = []
        self.tag: list[str] = []
        self.bottleneck: list[int] = []  # below its cap: the link that holds it back (-1: none)
        self.version: list[int] = []
        self.active: set[int] = set()
        self.free: list[int] = []
        self.below: set[int] = set()  # active slots running below their cap
        self.dirty: set[int] = set()  # slots whose component must be solved again
        self._heap: list[tuple[float, int, int]] = []  # (end time, version, slot)
        self._kinds: dict[tuple[int, int], int] = {}
        self._kind_arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # links, bytes, weights
        self._size_of: list[float] = []
        self._conflicts: list[set[int]] = []
        self._by_kind: dict[int, set[int]] = {}  # active slots of each kind (kinds with none: absent)
        self._memo: dict[tuple[tuple[int, float], ...], tuple[list[float], list[int]]] = {}
        self._fits: dict[tuple[int, float], bool] = {}  # (kind, cap) alone within every link
        # reservable(): per (kinds, caps, first) the union of their conflicts, valid while _epoch holds
        self._suffixes: dict[tuple[int, int, int], tuple[object, object, int, frozenset[int] | None]] = {}
        self._epoch = 0  # bumped when a kind is added (conflict sets grow) or links grow (fits change)
        self.sent: dict[int, int] = {}  # coflows started, per kind
        self.sent_by_tag: dict[tuple[int, str], int] = {}
        # time lost to sharing: (1 - rate / cap) integrated while below the cap, by (tag, bottleneck)
        self.delay: dict[tuple[str, int], float] = {}
        self.solves = 0

    def grow_links(self, capacity: np.ndarray) -> None:
        self.capacity = capacity
        self.classes.grow_links(capacity)
        self._fits.clear()  # reused virtual links may come back with another capacity
        self._epoch += 1

    # ------------------------------------------------------------------ kinds
    def kind_of(self, links: np.ndarray, link_bytes: np.ndarray) -> int:
        key = (id(links), id(link_bytes))
        k = self._kinds.get(key)
        if k is not None:
            return k
        k = len(self._kind_arrays)
        self._kinds[key] = k
        weights = link_bytes / float(link_bytes.max())
        self._kind_arrays.append((links, link_bytes, weights))
        self._size_of.append(float(link_bytes.max()))
        self.classes.add_kind(links, weights)
        # kinds conflict when they share a link, that is a link class (classes partition the links)
        mine = {k}
        for c in self.classes.classes_of[k]:
            mine.update(self.classes.kinds_of[c])
        self._conflicts.append(mine)
        for other in mine - {k}:
            self._conflicts[other].add(k)
        self._epoch += 1
        return k

    def known_kind(self, links: np.ndarray, link_bytes: np.ndarray) -> int | None:
        """The kind of these arrays if :meth:`kind_of` has seen them, else None (nothing is added)."""
        return self._kinds.get((id(links), id(link_bytes)))

    def sent_kinds(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every kind seen, in kind order: (links, bytes on each, weights)."""
        return self._kind_arrays

    def size_of(self, kind: int) -> float:
        """Bytes a coflow of ``kind`` puts on its most loaded link (its rate is counted there)."""
        return self._size_of[kind]

    def active_kinds(self) -> Iterable[int]:
        """The kinds with a coflow in the table now."""
        return self._by_kind.keys()

    def kind_arrays(self, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(links, bytes on each, weights) of a kind."""
        return self._kind_arrays[kind]

    # ------------------------------------------------------------------ slots
    def count(self, kind: int, tag: str) -> None:
        """One more coflow of ``kind`` started (the statistics read per kind and tag)."""
        self.sent[kind] = self.sent.get(kind, 0) + 1
        self.sent_by_tag[(kind, tag)] = self.sent_by_tag.get((kind, tag), 0) + 1

    def fits_alone(self, kind: int, cap: float) -> bool:
        """Whether a coflow of ``kind`` at ``cap`` alone puts no link over its capacity (memoised)."""
        key = (kind, cap)
        hit = self._fits.get(key)
        if hit is None:
            _, _, limit = self.classes.arrays[kind]
            hit = self._fits[key] = not bool((self.classes.scaled(kind, cap) > limit).any())
        return hit

    def runs_solo(self, kind: int, cap: float, solo_kinds: Iterable[int]) -> bool:
        """Whether a coflow of ``kind`` at ``cap`` can run solo: no kind in the table nor among
        ``solo_kinds`` (the solo coflows' kinds) shares a link with it, and alone it puts no link over
        its capacity. :meth:`conflicts_with` and :meth:`fits_alone` in one call (a step asks it some
        30,000 times)."""
        conflicts = self._conflicts[kind]
        if not conflicts.isdisjoint(self._by_kind) or not conflicts.isdisjoint(solo_kinds):
            return False
        return self.fits_alone(kind, cap)

    def reservable(self, kinds: Sequence[int], caps: Sequence[float], first: int) -> frozenset[int] | None:
        """For coflows of ``kinds[first:]`` at ``caps[first:]``: None if one of them alone puts a link over
        its capacity (:meth:`fits_alone`), else every kind that shares a link with one of them (themselves
        included), against which :meth:`sim.network.flows.FlowNetwork.reserve` checks what runs. The
        answer depends only on the arguments and the kinds known, so it is memoised by the identity of
        ``kinds`` and ``caps`` (a chunk keeps one list of each) and ``first`` until a kind is added."""
        key = (id(kinds), id(caps), first)
        hit = self._suffixes.get(key)
        if hit is not None and hit[0] is kinds and hit[1] is caps and hit[2] == self._epoch:
            return hit[3]
        rest = kinds[first:]
        fits = all(self.fits_alone(kind, cap) for kind, cap in zip(rest, caps[first:], strict=True))
        union = frozenset[int]().union(*(self._conflicts[kind] for kind in rest)) if fits else None
        if len(self._suffixes) >= self.MEMO_SIZE:
            self._suffixes.clear()
        self._suffixes[key] = (kinds, caps, self._epoch, union)  # the lists kept alive: their ids stay theirs
        return union

    def conflicts(self, kind: int) -> set[int]:
        """The kinds that share a link with ``kind``, itself included (grows as kinds arrive; do not change)."""
        return self._conflicts[kind]

    def conflicts_with(self, kind: int, kinds: Iterable[int]) -> bool:
        """Whether ``kind`` shares a link with any of ``kinds`` (itself included)."""
        return not self._conflicts[kind].isdisjoint(kinds)

    def add(
        self,
        kind: int,
        time_alone_s: float,
        latency_s: float,
        payload: object,
        tag: str,
        now: float,
        counted: bool = False,
    ) -> int:
        """A coflow started at ``now`` (``counted``: already counted, a solo coflow joining the table)."""
        if not counted:
            self.count(kind, tag)
        size = self._size_of[kind]
        cap = size / time_alone_s
        slot = self._slot()
        self.rem0[slot] = size
        self.t0[slot] = now
        self.started[slot] = now
        self.size[slot] = size
        self.cap[slot] = cap
        self.rate[slot] = cap
        self.lat[slot] = latency_s
        self.kind[slot] = kind
        self.payload[slot] = payload
        self.tag[slot] = tag
        self.bottleneck[slot] = -1
        self.version[slot] += 1
        self.active.add(slot)
        mine = self._by_kind.get(kind)
        if mine is None:
            self._by_kind[kind] = {slot}
        else:
            mine.add(slot)
        heapq.heappush(self._heap, (now + size / cap, self.version[slot], slot))
        if self.classes.add_load(kind, cap):
            self.dirty.add(slot)
        return slot

    def end_time(self, slot: int) -> float:
        r = self.rate[slot]
        return self.t0[slot] + self.rem0[slot] / r if r > 0 else np.inf

    def remaining(self, slot: int, now: float) -> float:
        return self.rem0[slot] - self.rate[slot] * (now - self.t0[slot])

    def next_end(self) -> float:
        """When the first active coflow ends (``inf`` without any)."""
        heap = self._heap
        while heap and (heap[0][2] not in self.active or heap[0][1] != self.version[heap[0][2]]):
            heapq.heappop(heap)
        return heap[0][0] if heap else np.inf

    def pop_ended(self, now: float) -> list[int]:
        """The coflows that have ended by ``now`` (their remaining bytes within rounding of zero)."""
        out = []
        heap = self._heap
        while heap:
            t, version, slot = heap[0]
            if slot not in self.active or version != self.version[slot]:
                heapq.heappop(heap)
                continue
            if t > now and self.remaining(slot, now) > _REL_DONE * self.size[slot]:
                break
            heapq.heappop(heap)
            out.append(slot)
        return sorted(out)

    def _set_rate(self, slot: int, r: float, now: float) -> None:
        old = self.rate[slot]
        if r == old:
            return
        self._account(slot, now)
        self.rem0[slot] = self.remaining(slot, now)
        self.t0[slot] = now
        self.rate[slot] = r
        self.version[slot] += 1
        heapq.heappush(self._heap, (self.end_time(slot), self.version[slot], slot))
        self.classes.shift_load(self.kind[slot], r - old)

    def _account(self, slot: int, now: float) -> None:
        """Fold the time ``slot`` lost below its cap since its rate last changed."""
        if slot in self.below and now > self.t0[slot]:
            key = (self.tag[slot], self.bottleneck[slot])
            lost = (1.0 - self.rate[slot] / self.cap[slot]) * (now - self.t0[slot])
            self.delay[key] = self.delay.get(key, 0.0) + lost

    def flush(self, now: float) -> None:
        """Fold what the running coflows lost so far (for a reading of :attr:`delay`)."""
        for slot in list(self.below):
            self._account(slot, now)
            self.rem0[slot] = self.remaining(slot, now)
            self.t0[slot] = now

    def remove(self, slot: int, now: float) -> object:
        self._account(slot, now)
        kind = self.kind[slot]
        self.classes.shift_load(kind, -self.rate[slot])  # (x - w r is x + w (-r), bit for bit)
        self.active.discard(slot)
        self.rate[slot] = 0.0
        self.version[slot] += 1
        mine = self._by_kind[kind]
        mine.discard(slot)
        if not mine:
            del self._by_kind[kind]
        self.below.discard(slot)
        self.dirty.discard(slot)
        payload = self.payload[slot]
        self.payload[slot] = None
        self.free.append(slot)
        if self.below:
            neighbours = self._neighbours(kind)
            if neighbours & self.below:
                self.dirty |= neighbours
        if not self.active:
            self.classes.clear_load()
        return payload

    def _slot(self) -> int:
        if self.free:
            return self.free.pop()
        n = len(self.rem0)
        for floats in (self.rem0, self.t0, self.started, self.rate, self.cap, self.size, self.lat):
            floats.append(0.0)
        for ints in (self.kind, self.bottleneck):
            ints.append(-1)
        self.version.append(0)
        self.payload.append(None)
        self.tag.append("")
        return n

    def _neighbours(self, kind: int) -> set[int]:
        out: set[int] = set()
        by_kind = self._by_kind
        conflicts = self._conflicts[kind]
        # the conflicting kinds that are running (a run keeps every kind it has seen), walking the smaller
        # of the two as a loop (compiled, a loop with lookups allocates no intersection set)
        if len(conflicts) > len(by_kind):
            for k, slots in by_kind.items():
                if k in conflicts:
                    out |= slots
        else:
            for k in conflicts:
                mine = by_kind.get(k)
                if mine is not None:
                    out |= mine
        return out

    def component(self, seeds: set[int]) -> list[int]:
        """The active slots that share links with ``seeds``, directly or through others, and ``seeds``
        (sorted). A slot's neighbours depend only on its kind, so the search walks kinds."""
        seen = set(seeds)
        kind = self.kind
        stack = list({kind[s] for s in seeds})
        walked = set(stack)
        by_kind = self._by_kind
        while stack:  # (the set of slots reached does not depend on the order kinds are walked)
            conflicts = self._conflicts[stack.pop()]
            if len(conflicts) > len(by_kind):
                for k, slots in by_kind.items():
                    if k in conflicts:
                        seen |= slots
                        if k not in walked:
                            walked.add(k)
                            stack.append(k)
            else:
                for k in conflicts:
                    mine = by_kind.get(k)
                    if mine is not None:
                        seen |= mine
                        if k not in walked:
                            walked.add(k)
                            stack.append(k)
        return sorted(seen)

    # ------------------------------------------------------------------ rates
    def solve_dirty(self, now: float) -> int:
        """Solve the components of the dirty slots; returns how many were solved."""
        solved = 0
        while self.dirty:
            comp = self.component({self.dirty.pop()})
            self.dirty.difference_update(comp)
            self._solve(comp, now)
            solved += 1
        return solved

    def _solve(self, slots: list[int], now: float) -> None:
        """Solve the component ``slots`` (ascending, as :meth:`component` gives them)."""
        kind, cap = self.kind, self.cap
        members = sorted([(kind[s], cap[s], s) for s in slots])  # by (kind, cap), then slot
        order = [m[2] for m in members]
        key = tuple([(m[0], m[1]) for m in members])
        hit = self._memo.get(key)
        self.solves += 1
        rates = self._maxmin(order) if hit is None else hit[0]
        n = len(order)  # (index loops: compiled, zip(..., strict=True) is a generic iterator)
        for i in range(n):
            self._set_rate(order[i], rates[i], now)
        if hit is None:
            # each member's bottleneck, from the loads its component alone puts on its links (a
            # component's links carry no other coflow), so a function of the key, kept with the rates
            bottlenecks = [self._bottleneck(order[i], rates[i]) for i in range(n)]
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = (rates, bottlenecks)
        else:
            bottlenecks = hit[1]
        for i in range(n):
            self._mark(order[i], rates[i], bottlenecks[i], now)

    def _bottleneck(self, s: int, r: float) -> int:
        """The saturated link that holds ``s`` below its cap at rate ``r`` (its most loaded; -1: none)."""
        if r >= self.cap[s] * (1.0 - 1e-12):
            return -1
        # its first most loaded link: classes are in the order of their smallest link
        c = self.classes.heaviest_full(self.kind[s])
        return int(self.classes.rep[c]) if c >= 0 else -1

    def _mark(self, s: int, r: float, bottleneck: int, now: float) -> None:
        """Record whether ``s`` runs below its cap, and on which saturated link (``bottleneck``, of
        :meth:`_bottleneck`)."""
        below = bottleneck >= 0 or r < self.cap[s] * (1.0 - 1e-12)
        if below == (s in self.below) and bottleneck == self.bottleneck[s]:
            return
        self._account(s, now)  # the time lost so far belongs to the old bottleneck
        self.rem0[s] = self.remaining(s, now)
        self.t0[s] = now
        self.bottleneck[s] = bottleneck
        if below:
            self.below.add(s)
        else:
            self.below.discard(s)

    def _maxmin(self, order: list[int]) -> list[float]:
        arrays = [self.classes.arrays[self.kind[s]] for s in order]  # one constraint per link class
        if sum(len(a[0]) for a in arrays) <= SMALL_SOLVE:
            lists = self.classes.lists
            return maxmin_rates_lists(
                [(lists[k][0], lists[k][1]) for k in (self.kind[s] for s in order)],
                self.classes.cap,
                [self.cap[s] for s in order],
            )
        counts = np.array([len(a[0]) for a in arrays])
        cls = np.concatenate([a[0] for a in arrays])
        uniq, local = np.unique(cls, return_inverse=True)
        entry_flow = np.repeat(np.arange(len(order)), counts)
        weight = np.concatenate([a[1] for a in arrays])
        caps = np.array([self.cap[s] for s in order])
        rates = maxmin_rates(entry_flow, local, self.classes.cap[uniq], len(order), weight=weight, cap=caps)
        return rates.tolist()

    def entries(self) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """(active slots, entry coflow index, entry link, entry weight) for a solve with plain flows."""
        slots = sorted(self.active)
        if not slots:
            return slots, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        arrays = [self._kind_arrays[self.kind[s]] for s in slots]
        counts = np.array([len(a[0]) for a in arrays], dtype=np.int64)
        return (
            slots,
            np.repeat(np.arange(len(slots)), counts),
            np.concatenate([a[0] for a in arrays]),
            np.concatenate([a[2] for a in arrays]),
        )

    def caps(self, slots: list[int]) -> np.ndarray:
        return np.array([self.cap[s] for s in slots], dtype=np.float64)

    def set_rates(self, slots: list[int], rates: np.ndarray, now: float) -> None:
        """Rates from a solve with plain flows (every active coflow)."""
        self.dirty.clear()
        values = rates.tolist()
        for s, r in zip(slots, values, strict=True):
            self._set_rate(s, r, now)
        for s, r in zip(slots, values, strict=True):
            self._mark(s, r, self._bottleneck(s, r), now)
