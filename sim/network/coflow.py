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

import numpy as np

from sim.network.maxmin import maxmin_rates
from sim.network.routing import route
from sim.network.topology import Topology


def link_loads(
    topo: Topology, src: np.ndarray, dst: np.ndarray, nbytes: np.ndarray, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """(links, bytes on each, largest path latency) of flows ``src[i] -> dst[i]`` of ``nbytes[i]``;
    each link named once."""
    routes = route(topo, np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), seed)
    nbytes = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), (routes.num_flows,))
    counts = np.diff(routes.indptr)
    per_link = np.bincount(routes.links, weights=np.repeat(nbytes, counts), minlength=topo.num_links)
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
    links, per_link, latency = link_loads(topo, src, dst, nbytes, seed)
    if not moving.any():
        return links, per_link, 0.0, latency
    entry_flow = np.repeat(np.arange(len(src)), counts)
    rates = maxmin_rates(entry_flow, routes.links, topo.capacity, len(src))
    time_alone = float(np.max(nbytes[moving] / rates[moving]))
    return links, per_link, time_alone, latency


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
    """

    MEMO_SIZE = 200_000

    def __init__(self, capacity: np.ndarray) -> None:
        self.capacity = capacity
        self.load = np.zeros(len(capacity))  # bytes/s of the active coflows on each link
        self.rem = np.zeros(0)
        self.size = np.zeros(0)
        self.rate = np.zeros(0)
        self.cap = np.zeros(0)
        self.lat = np.zeros(0)
        self.active = np.zeros(0, dtype=bool)
        self.kind: list[int] = []
        self.payload: list[object] = []
        self.tag: list[str] = []
        self.bottleneck: list[int] = []  # below its cap: the link that holds it back (-1: none)
        self.free: list[int] = []
        self.below: set[int] = set()  # active slots running below their cap
        self.dirty: set[int] = set()  # slots whose component must be solved again
        self._kinds: dict[tuple[int, int], int] = {}
        self._kind_arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # links, bytes, weights
        self._size_of: list[float] = []
        self._conflicts: list[set[int]] = []
        self._by_kind: dict[int, set[int]] = {}
        self._memo: dict[tuple[tuple[int, float], ...], np.ndarray] = {}
        self.sent: dict[int, int] = {}  # coflows started, per kind
        # time lost to sharing: each slot's rate of loss (1 - rate / cap) and what it lost since its
        # bottleneck last changed; flushed into ``delay`` ((tag, bottleneck link) -> s)
        self.loss_rate = np.zeros(0)
        self.lost = np.zeros(0)
        self.delay: dict[tuple[str, int], float] = {}
        self.sent_by_tag: dict[tuple[int, str], int] = {}
        self.solves = 0

    def grow_links(self, capacity: np.ndarray) -> None:
        self.capacity = capacity
        self.load = np.concatenate([self.load, np.zeros(len(capacity) - len(self.load))])

    # ------------------------------------------------------------------ kinds
    def kind_of(self, links: np.ndarray, link_bytes: np.ndarray) -> int:
        key = (id(links), id(link_bytes))
        k = self._kinds.get(key)
        if k is not None:
            return k
        k = len(self._kind_arrays)
        self._kinds[key] = k
        self._kind_arrays.append((links, link_bytes, link_bytes / float(link_bytes.max())))
        self._size_of.append(float(link_bytes.max()))
        mask = np.zeros(len(self.capacity), dtype=bool)
        mask[links] = True
        mine = {k}
        for other, (olinks, _, _) in enumerate(self._kind_arrays[:-1]):
            if mask[olinks].any():
                mine.add(other)
                self._conflicts[other].add(k)
        self._conflicts.append(mine)
        return k

    def kind_arrays(self, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(links, bytes on each, weights) of a kind."""
        return self._kind_arrays[kind]

    # ------------------------------------------------------------------ slots
    def add(self, kind: int, time_alone_s: float, latency_s: float, payload: object, tag: str = "") -> int:
        links, _, w = self._kind_arrays[kind]
        self.sent[kind] = self.sent.get(kind, 0) + 1
        self.sent_by_tag[(kind, tag)] = self.sent_by_tag.get((kind, tag), 0) + 1
        size = self._size_of[kind]
        cap = size / time_alone_s
        slot = self._slot()
        self.rem[slot] = size
        self.size[slot] = size
        self.cap[slot] = cap
        self.lat[slot] = latency_s
        self.active[slot] = True
        self.kind[slot] = kind
        self.payload[slot] = payload
        self.tag[slot] = tag
        self.bottleneck[slot] = -1
        self._by_kind.setdefault(kind, set()).add(slot)
        self.rate[slot] = cap
        self.load[links] += w * cap
        if (self.load[links] > self.capacity[links] * (1.0 + 1e-9)).any():
            self.dirty.add(slot)
        return slot

    def remove(self, slot: int) -> object:
        self.flush(slot)
        self.loss_rate[slot] = 0.0
        kind = self.kind[slot]
        links, _, w = self._kind_arrays[kind]
        self.load[links] -= w * self.rate[slot]
        self.active[slot] = False
        self.rate[slot] = 0.0
        self._by_kind[kind].discard(slot)
        self.below.discard(slot)
        self.dirty.discard(slot)
        payload = self.payload[slot]
        self.payload[slot] = None
        self.free.append(slot)
        if self.below:
            neighbours = self._neighbours(kind)
            if neighbours & self.below:
                self.dirty |= neighbours
        if not self.active.any():
            self.load[:] = 0.0  # no drift left behind
        return payload

    def _slot(self) -> int:
        if self.free:
            return self.free.pop()
        n = len(self.rem)
        grow = max(8, n)
        self.rem = np.concatenate([self.rem, np.zeros(grow)])
        self.size = np.concatenate([self.size, np.ones(grow)])
        self.rate = np.concatenate([self.rate, np.zeros(grow)])
        self.cap = np.concatenate([self.cap, np.zeros(grow)])
        self.lat = np.concatenate([self.lat, np.zeros(grow)])
        self.active = np.concatenate([self.active, np.zeros(grow, dtype=bool)])
        self.loss_rate = np.concatenate([self.loss_rate, np.zeros(grow)])
        self.lost = np.concatenate([self.lost, np.zeros(grow)])
        self.kind += [-1] * grow
        self.payload += [None] * grow
        self.tag += [""] * grow
        self.bottleneck += [-1] * grow
        self.free = list(range(n + grow - 1, n, -1))
        return n

    def _neighbours(self, kind: int) -> set[int]:
        out: set[int] = set()
        for k in self._conflicts[kind]:
            out |= self._by_kind.get(k, set())
        return out

    def component(self, seeds: set[int]) -> list[int]:
        seen = set(seeds)
        stack = list(seeds)
        while stack:
            for t in self._neighbours(self.kind[stack.pop()]):
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return sorted(seen)

    # ------------------------------------------------------------------ rates
    def solve_dirty(self) -> int:
        """Solve the components of the dirty slots; returns how many were solved."""
        solved = 0
        while self.dirty:
            comp = self.component({self.dirty.pop()})
            self.dirty.difference_update(comp)
            self._solve(comp)
            solved += 1
        return solved

    def _solve(self, slots: list[int]) -> None:
        order = sorted(slots, key=lambda s: (self.kind[s], self.cap[s]))
        key = tuple((self.kind[s], float(self.cap[s])) for s in order)
        rates = self._memo.get(key)
        if rates is None:
            rates = self._maxmin(order)
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = rates
        self.solves += 1
        for s, r in zip(order, rates.tolist(), strict=True):
            links, _, w = self._kind_arrays[self.kind[s]]
            old = self.rate[s]
            if r != old:
                self.load[links] += w * (r - old)
                self.rate[s] = r
        for s, r in zip(order, rates.tolist(), strict=True):
            self._mark(s, r)

    def flush(self, s: int) -> None:
        if self.lost[s] > 0.0:
            key = (self.tag[s], self.bottleneck[s])
            self.delay[key] = self.delay.get(key, 0.0) + float(self.lost[s])
            self.lost[s] = 0.0

    def _mark(self, s: int, r: float) -> None:
        """Record whether ``s`` runs below its cap, and on which saturated link (its most loaded)."""
        self.flush(s)
        if r >= self.cap[s] * (1.0 - 1e-12):
            self.below.discard(s)
            self.bottleneck[s] = -1
            self.loss_rate[s] = 0.0
            return
        self.below.add(s)
        self.loss_rate[s] = 1.0 - r / self.cap[s]
        links, _, w = self._kind_arrays[self.kind[s]]
        full = self.load[links] >= self.capacity[links] * (1.0 - 1e-9)
        self.bottleneck[s] = int(links[np.argmax(np.where(full, w, -1.0))]) if full.any() else -1

    def _maxmin(self, order: list[int]) -> np.ndarray:
        arrays = [self._kind_arrays[self.kind[s]] for s in order]
        counts = np.array([len(a[0]) for a in arrays])
        links = np.concatenate([a[0] for a in arrays])
        uniq, local = np.unique(links, return_inverse=True)
        entry_flow = np.repeat(np.arange(len(order)), counts)
        weight = np.concatenate([a[2] for a in arrays])
        return maxmin_rates(
            entry_flow, local, self.capacity[uniq], len(order), weight=weight, cap=self.cap[np.array(order)]
        )

    def entries(self) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """(active slots, entry coflow index, entry link, entry weight) for a solve with plain flows."""
        slots = np.flatnonzero(self.active).tolist()
        arrays = [self._kind_arrays[self.kind[s]] for s in slots]
        counts = np.array([len(a[0]) for a in arrays], dtype=np.int64)
        if not slots:
            return slots, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        return (
            slots,
            np.repeat(np.arange(len(slots)), counts),
            np.concatenate([a[0] for a in arrays]),
            np.concatenate([a[2] for a in arrays]),
        )

    def set_rates(self, slots: list[int], rates: np.ndarray) -> None:
        """Rates from a solve with plain flows (every active coflow)."""
        self.dirty.clear()
        for s, r in zip(slots, rates.tolist(), strict=True):
            links, _, w = self._kind_arrays[self.kind[s]]
            self.load[links] += w * (r - self.rate[s])
            self.rate[s] = r
        for s, r in zip(slots, rates.tolist(), strict=True):
            self._mark(s, r)
