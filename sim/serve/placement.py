"""Redundant experts: how many copies of each expert a serving unit keeps, and on which GPU.

DeepSeek's serving (V3 section 3.4, open-source week day 6; REFERENCE.md section 11) duplicates
high-load experts from the observed load and spreads the copies so every GPU of the EP group gets
about the same work; a token routed to a duplicated expert goes to one of its copies. The algorithm
here is the usual greedy pair (DeepSeek's EPLB is a hierarchical variant of it):

1. **Copies.** Start with one copy per expert; give each extra slot to the expert whose load per copy
   is the highest (``load / copies``), one slot at a time. This minimises the largest load per copy
   for the number of slots (each step removes the current maximum).
2. **Packing.** Place copies, heaviest first, each on the GPU with the least load among those with a
   free slot and without a copy of the same expert (longest processing time first, with every GPU
   holding exactly ``per_gpu`` slots).

Without spare slots (``per_gpu x gpus == experts``) the placement is the plain one: expert ``e`` on
GPU ``e // per_gpu``, as DeepEP's expert layout has it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from sim.errors import ScenarioError


@dataclass(frozen=True)
class Placement:
    """``slots[g]``: the experts on GPU ``g`` (``per_gpu`` each; ``-1`` an empty slot when the slots
    outnumber what copies can fill); ``copies[e]``: how many GPUs hold expert ``e``."""

    slots: np.ndarray  # (gpus, per_gpu) expert ids
    copies: np.ndarray  # (experts,)

    @property
    def gpus(self) -> int:
        return int(self.slots.shape[0])

    @property
    def redundant(self) -> int:
        return int(self.copies.sum() - len(self.copies))

    def gpu_loads(self, load: np.ndarray) -> np.ndarray:
        """Each GPU's share of ``load`` (an expert's load split evenly over its copies)."""
        per_copy = np.where(self.copies > 0, load / np.maximum(self.copies, 1), 0.0)
        filled = np.where(self.slots >= 0, per_copy[np.maximum(self.slots, 0)], 0.0)
        return filled.sum(axis=1)

    def replica_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, flat): the GPUs holding expert ``e`` are ``flat[start[e]:start[e + 1]]``."""
        g_idx, _ = np.nonzero(self.slots >= 0)
        experts = self.slots[self.slots >= 0]
        order = np.argsort(experts, kind="stable")
        start = np.zeros(len(self.copies) + 1, dtype=np.int64)
        np.cumsum(self.copies, out=start[1:])
        return start, g_idx[order]


def copies_for(load: np.ndarray, slots: int) -> np.ndarray:
    """Copies per expert for ``slots`` slots in all (greedy on the load per copy)."""
    experts = len(load)
    if slots < experts:
        raise ScenarioError("experts_per_gpu", f"{slots} slots cannot hold {experts} experts")
    copies = np.ones(experts, dtype=np.int64)
    heap = [(-float(w), e) for e, w in enumerate(load)]
    heapq.heapify(heap)
    for _ in range(slots - experts):
        _, e = heapq.heappop(heap)
        copies[e] += 1
        heapq.heappush(heap, (-float(load[e]) / copies[e], e))
    return copies


def place(load: np.ndarray, gpus: int, per_gpu: int) -> Placement:
    """The copies of every expert (from ``load``, one weight per expert) packed on ``gpus`` GPUs of
    ``per_gpu`` slots each."""
    load = np.asarray(load, dtype=np.float64)
    experts = len(load)
    if experts == 0:
        return Placement(np.full((gpus, per_gpu), -1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    total = gpus * per_gpu
    if total == experts:
        return Placement(np.arange(experts, dtype=np.int64).reshape(gpus, per_gpu), np.ones(experts, dtype=np.int64))
    copies = copies_for(load, total)
    copies = np.minimum(copies, gpus)  # a GPU holds an expert once
    items = sorted(((load[e] / copies[e], e) for e in range(experts) for _ in range(copies[e])), reverse=True)
    slots = np.full((gpus, per_gpu), -1, dtype=np.int64)
    used = np.zeros(gpus, dtype=np.int64)
    held: list[set[int]] = [set() for _ in range(gpus)]
    heap = [(0.0, g) for g in range(gpus)]
    for w, e in items:
        skipped: list[tuple[float, int]] = []
        while heap:
            gl, g = heapq.heappop(heap)
            if e not in held[g]:
                break
            skipped.append((gl, g))
        else:  # every GPU with a free slot holds ``e`` already: the lightest of them takes a second copy
            gl, g = skipped.pop(0)
        slots[g, used[g]] = e
        used[g] += 1
        held[g].add(e)
        if used[g] < per_gpu:
            heapq.heappush(heap, (gl + w, g))
        for s in skipped:
            heapq.heappush(heap, s)
    return Placement(slots, copies)
