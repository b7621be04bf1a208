"""Link classes: links that every coflow kind loads alike, kept as one constraint.

A coflow kind loads each of its links with ``w[l] x`` its rate (:mod:`sim.network.coflow`). Two links
with the same capacity and the same bytes from every kind (the same *column*) are the same
constraint: their loads are equal at every instant, they saturate together, and in water-filling
(:mod:`sim.network.maxmin`) every quantity of one (its weight sum, fair share, remaining capacity,
whether it is a local bottleneck) equals the other's, so dropping one changes no rate, bit for bit.
A rank's DeepEP phase loads hundreds of NICs, PCIe and NVLink ports alike (balanced routing, the same
bytes per GPU), so its 500 to 1,800 links fall into 4 to 100 classes, and every start, end and solve
touches that many numbers instead.

The partition is refined as kinds arrive (a kind seen for the first time mid-run splits the classes it
covers in part or with unequal bytes; each new class starts with the load its links had), so
nothing needs to be known in advance. A class is named by its smallest link (``rep``), and each
kind's classes are kept in that order, so "the first most loaded link" of a kind is the same link
whether read from links or classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class LinkClasses:
    """The partition of the links the known kinds cross into classes of equal columns, each kind's
    classes and weights, and the load on each class."""

    # Loads are kept in an array (numpy per update) once the kinds cross more than this many classes
    # each on average (each kind counted once), else in a list (a Python loop per update): a loop
    # costs about 60 ns a class, a numpy update about 1 us whatever its size. Measured (in-process,
    # the same bits either way): the default step's kinds cross 30 on average (an update touches 12,
    # the median), and the list is 6% faster over the step; at 16,384 GPUs (78 on average) the two
    # take the same time; on the 65,536-GPU three-layer tree (1,907; an update touches 430) the list
    # took 33% longer.
    VECTOR_CLASSES = 64.0

    def __init__(self, capacity: np.ndarray) -> None:
        self.capacity = capacity  # per link
        self.of_link = np.full(len(capacity), -1, dtype=np.int64)  # class of each link (-1: no kind crosses it)
        self.members: list[np.ndarray] = []  # links of each class, ascending (empty: a class split away whole)
        # per class (the arrays grow by doubling: entries past the last class are unused)
        self.cap = np.zeros(0)  # capacity of each class
        self.rep = np.zeros(0, dtype=np.int64)  # smallest link of each class
        self.size = np.zeros(0, dtype=np.int64)  # links in each class (0: split away whole)
        # bytes/s of the active coflows on each class, read and written a kind's classes at a time on every
        # start, rate change and end (add_load, shift_load): a list while kinds have few classes each
        # (numpy's fixed cost per call exceeded the work), an array once they have many (vector)
        self.load: Any = []
        self.vector = False
        self._entries = 0  # the kinds' classes, summed over kinds
        self.kinds_of: list[dict[int, float]] = []  # per class: kind -> weight
        self.classes_of: list[set[int]] = []  # per kind: its classes
        self.arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per kind: classes, weights, limits
        # per kind, the same as lists, and the load at which each class counts as full (_bottleneck)
        self.lists: list[tuple[list[int], list[float], list[float], list[float]]] = []
        self._scaled: list[dict[float, np.ndarray]] = []  # per kind: its weights x a rate (scaled())
        self._scaled_lists: list[dict[float, list[float]]] = []  # the same, as lists (scaled_list())

    def grow_links(self, capacity: np.ndarray) -> None:
        """More links (virtual ones), crossed by no kind yet."""
        self.of_link = np.concatenate([self.of_link, np.full(len(capacity) - len(self.capacity), -1, np.int64)])
        self.capacity = capacity

    def add_kind(self, links: np.ndarray, weights: np.ndarray) -> int:
        """Register a kind crossing ``links`` (distinct) with ``weights``; returns its number."""
        kind = len(self.arrays)
        self.arrays.append((np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)))
        self.lists.append(([], [], [], []))
        self._scaled.append({})
        self._scaled_lists.append({})
        self.classes_of.append(set())
        touched: set[int] = {kind}
        old = self.of_link[links]
        # groups of the kind's links with the same old class, weight and capacity
        # (sorted by old class, then weight, then capacity; each group's links in the kind's order)
        cap = self.capacity[links]
        order = np.lexsort((cap, weights, old))
        so, sw, sc = old[order], weights[order], cap[order]
        bounds = np.flatnonzero((so[1:] != so[:-1]) | (sw[1:] != sw[:-1]) | (sc[1:] != sc[:-1])) + 1
        starts = np.concatenate([[0], bounds])
        sizes = np.diff(np.append(starts, len(order)))
        group_class = so[starts]
        # a group that is a whole existing class (its only group there, all its links): the class as it is.
        # These are most groups (a DeepEP phase of random routing: about 385 a kind, 26 of them splits), so
        # they are found at once; only the others are split, one by one in order (new classes are numbered
        # as they come; a whole class's kinds and load are not read by a split of another)
        seen = group_class >= 0
        per_class = np.bincount(group_class[seen], minlength=len(self.members))
        whole = seen.copy()
        whole[seen] = (per_class[group_class[seen]] == 1) & (sizes[seen] == self.size[group_class[seen]])
        mine = self.classes_of[kind]
        for c, w in zip(group_class[whole].tolist(), sw[starts[whole]].tolist(), strict=True):
            self.kinds_of[c][kind] = w
            mine.add(c)
        for g in np.flatnonzero(~whole).tolist():
            at = order[starts[g] : starts[g] + sizes[g]]
            c = int(group_class[g])
            if c >= 0:
                touched |= set(self.kinds_of[c])  # their classes change
            target = self._split(np.sort(links[at]), c)
            self.kinds_of[target][kind] = float(sw[starts[g]])
            mine.add(target)
        for k in touched:
            self._rebuild(k)
        if not self.vector and self._entries > self.VECTOR_CLASSES * len(self.arrays):
            self.vector = True  # for good: the same float operations either way, so the same bits
            self.load = np.array(self.load, dtype=np.float64)
        return kind

    def _split(self, members: np.ndarray, parent: int) -> int:
        """A new class of ``members`` (taken from ``parent``, or from no class), with its load and kinds."""
        n = len(self.members)
        if n == len(self.cap):  # room for more classes, doubling (arrays past the last class are unused)
            grow = max(16, n)
            self.cap = np.concatenate([self.cap, np.zeros(grow)])
            self.rep = np.concatenate([self.rep, np.zeros(grow, dtype=np.int64)])
            self.size = np.concatenate([self.size, np.zeros(grow, dtype=np.int64)])
            if self.vector:
                self.load = np.concatenate([self.load, np.zeros(grow)])
            else:
                self.load.extend([0.0] * grow)
        self.members.append(members)
        self.of_link[members] = n
        self.cap[n] = self.capacity[members[0]]
        self.rep[n] = members[0]
        self.size[n] = len(members)
        self.load[n] = self.load[parent] if parent >= 0 else 0.0
        self.kinds_of.append(dict(self.kinds_of[parent]) if parent >= 0 else {})
        if parent >= 0:
            for k in self.kinds_of[parent]:
                self.classes_of[k].add(n)
            left = self.members[parent][self.of_link[self.members[parent]] == parent]
            self.members[parent] = left
            self.size[parent] = len(left)
            if len(left):
                self.rep[parent] = left[0]
            else:  # split away whole: the class is gone
                for k in self.kinds_of[parent]:
                    self.classes_of[k].discard(parent)
                self.kinds_of[parent] = {}
        return n

    def scaled(self, kind: int, rate: float) -> np.ndarray:
        """A kind's load on each of its classes at ``rate`` (weights x rate), memoised: a kind's coflows
        repeat with the same few caps."""
        mine = self._scaled[kind]
        out = mine.get(rate)
        if out is None:
            out = mine[rate] = self.arrays[kind][1] * rate
        return out

    def scaled_list(self, kind: int, rate: float) -> list[float]:
        """:meth:`scaled` as a list (the same products)."""
        mine = self._scaled_lists[kind]
        out = mine.get(rate)
        if out is None:
            out = mine[rate] = [w * rate for w in self.lists[kind][1]]
        return out

    def _rebuild(self, kind: int) -> None:
        classes = sorted(self.classes_of[kind], key=lambda c: int(self.rep[c]))
        cls = np.array(classes, dtype=np.int64)
        w = np.array([self.kinds_of[c][kind] for c in classes])
        limit = self.cap[cls] * (1.0 + 1e-9)  # a link's capacity never changes
        self._entries += len(classes) - len(self.lists[kind][0])
        self.arrays[kind] = (cls, w, limit)
        self.lists[kind] = (cls.tolist(), w.tolist(), limit.tolist(), (self.cap[cls] * (1.0 - 1e-9)).tolist())
        self._scaled[kind] = {}
        self._scaled_lists[kind] = {}

    # ------------------------------------------------------------------ loads
    def add_load(self, kind: int, rate: float) -> bool:
        """Add a coflow of ``kind`` at ``rate`` to its classes' loads; True if one is then over its
        capacity (beyond the rounding allowance of its limit)."""
        load = self.load
        if self.vector:
            cls, _, limit = self.arrays[kind]
            seg = load[cls] + self.scaled(kind, rate)
            load[cls] = seg
            return bool(np.count_nonzero(seg > limit))  # (ndarray.any() costs twice as much)
        cls_, _, limit_, _ = self.lists[kind]
        add = self.scaled_list(kind, rate)
        loads: list[float] = load
        over = False
        for i in range(len(cls_)):  # (index loops: compiled, zip(..., strict=True) is a generic iterator)
            c = cls_[i]
            v = loads[c] + add[i]
            loads[c] = v
            if v > limit_[i]:
                over = True
        return over

    def shift_load(self, kind: int, delta: float) -> None:
        """A coflow of ``kind`` changes rate by ``delta`` (an end: minus its rate)."""
        load = self.load
        if self.vector:
            cls, w, _ = self.arrays[kind]
            load[cls] += w * delta
            return
        cls_, w_, _, _ = self.lists[kind]
        loads: list[float] = load
        for i in range(len(cls_)):
            c = cls_[i]
            loads[c] += w_[i] * delta

    def clear_load(self) -> None:
        """Nothing runs: every load is 0 (no drift left behind)."""
        if self.vector:
            self.load[:] = 0.0
        else:
            self.load[:] = [0.0] * len(self.load)

    def heaviest_full(self, kind: int) -> int:
        """The class of ``kind`` that is full (at its capacity, to rounding) and carries the largest
        share of its bytes, the first such in its order (-1: none full)."""
        load = self.load
        if self.vector:
            cls, w, _ = self.arrays[kind]
            full = load[cls] >= self.cap[cls] * (1.0 - 1e-9)
            return int(cls[np.argmax(np.where(full, w, -1.0))]) if full.any() else -1
        cls_, w_, _, full_at = self.lists[kind]
        loads: list[float] = load
        best, at = -1.0, -1
        for i in range(len(cls_)):
            c = cls_[i]
            x = w_[i]
            if loads[c] >= full_at[i] and x > best:
                best, at = x, c
        return at

    def link_load(self) -> np.ndarray:
        """The load on every link (its class's; 0 where no kind crosses)."""
        out = np.zeros(len(self.of_link))
        on = self.of_link >= 0
        out[on] = np.array(self.load)[self.of_link[on]]
        return out

    def expand(self, kind: int) -> tuple[np.ndarray, np.ndarray]:
        """(links, weights) of a kind read back from its classes (a check: the kind's own arrays)."""
        cls, w, _ = self.arrays[kind]
        links = np.concatenate([self.members[c] for c in cls]) if len(cls) else np.zeros(0, dtype=np.int64)
        weights = np.repeat(w, [len(self.members[c]) for c in cls])
        order = np.argsort(links)
        return links[order], weights[order]
