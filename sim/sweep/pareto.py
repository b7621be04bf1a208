"""The Pareto front of two figures: the points no other point beats on both.

:func:`pareto_front` sorts once (O(n log n)); :func:`pareto_front_reference` compares every pair
(O(n^2)), plainly; a property test ties the two. Both take "better" per figure ("min" or "max") and
return the indices of the front in ascending order. Exact ties on both figures are all kept; points
with a value that is not finite (NaN, infinity: a figure that does not exist) are never on it.
"""

from __future__ import annotations

import numpy as np


def _signed(values: np.ndarray, better: str) -> np.ndarray:
    if better not in ("min", "max"):
        raise ValueError(f"better must be 'min' or 'max', got {better!r}")
    v = np.asarray(values, dtype=float)
    return v if better == "min" else -v


def pareto_front(x: np.ndarray, y: np.ndarray, x_better: str = "min", y_better: str = "min") -> np.ndarray:
    """Indices of the non-dominated points among those with finite values."""
    a, b = _signed(x, x_better), _signed(y, y_better)
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    if ok.size == 0:
        return ok
    order = ok[np.lexsort((b[ok], a[ok]))]  # by x, then y: each point is beaten only by earlier ones
    ys = b[order]
    xs = a[order]
    # best y among points with strictly smaller x (running minimum over earlier x groups)
    start = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]  # first index of each equal-x group
    group_min = ys[start]  # y sorted within a group: its first is its minimum
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]
    sizes = np.diff(np.r_[start, xs.size])
    best_before = np.repeat(before, sizes)
    best_in_group = np.repeat(group_min, sizes)
    keep = (ys < best_before) & (ys == best_in_group)
    return np.sort(order[keep])


def pareto_front_reference(x: np.ndarray, y: np.ndarray, x_better: str = "min", y_better: str = "min") -> np.ndarray:
    """The same front by comparing every pair: i is dominated if some j is no worse on both and
    better on one."""
    a, b = _signed(x, x_better), _signed(y, y_better)
    front = []
    finite = [bool(np.isfinite(a[i]) and np.isfinite(b[i])) for i in range(len(a))]
    for i in range(len(a)):
        if not finite[i]:
            continue
        dominated = False
        for j in range(len(a)):
            if j == i or not finite[j]:
                continue
            if a[j] <= a[i] and b[j] <= b[i] and (a[j] < a[i] or b[j] < b[i]):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return np.asarray(front, dtype=int)
