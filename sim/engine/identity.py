"""Values memoised by the identity of the frozen objects they are computed from.

A run's layout, schedule and model are frozen and live as long as the run, and the questions asked of
them (every rank's memory, every rank's replica set) come back many times with the very same objects.
Hashing those objects (tuples of placements, thousands of actions) would cost more than the answer, so
an entry is keyed by their ``id`` and kept with the objects themselves: the entry keeps them alive, so
an ``id`` cannot be reused for another object while its entry exists, and a lookup checks ``is``
anyway. The table is cleared when it reaches ``size`` entries (a few steps' worth).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """``get(objects, extra)`` -> the value ``put`` stored for these very objects (and ``extra``, a
    plain hashable such as a rank), else None."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple[tuple[int, ...], Hashable], tuple[tuple[object, ...], V]] = {}

    def get(self, objects: tuple[object, ...], extra: Hashable = None) -> V | None:
        hit = self._entries.get((tuple(map(id, objects)), extra))
        if hit is None or any(a is not b for a, b in zip(hit[0], objects, strict=True)):
            return None
        return hit[1]

    def put(self, objects: tuple[object, ...], value: V, extra: Hashable = None) -> V:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[(tuple(map(id, objects)), extra)] = (objects, value)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["IdentityMemo"]
