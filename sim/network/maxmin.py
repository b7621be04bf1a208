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
flow's entries consecutive, flows in increasing order). A flow with no entries gets ``inf``.
"""

from __future__ import annotations

import numpy as np


def maxmin_rates(
    entry_flow: np.ndarray, entry_link: np.ndarray, capacity: np.ndarray, num_flows: int, rtol: float = 1e-9
) -> np.ndarray:
    """Max-min fair rate of each of ``num_flows`` flows (same unit as ``capacity``)."""
    rates = np.full(num_flows, np.inf)
    if entry_flow.size == 0:
        return rates
