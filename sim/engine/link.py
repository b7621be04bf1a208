"""A simple point-to-point link: first-in first-out, latency + bytes / bandwidth.

A transfer starts when the link is free (transfers on one directed link are serialised), occupies
it for ``bytes / bandwidth`` and arrives ``latency`` later. This is the alpha-beta model; the
flow-level network replaces it where contention between links matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Link:
    """One directed link. ``bandwidth_Bps`` in bytes/s (inf = free), ``latency_s`` in seconds."""

    bandwidth_Bps: float
    latency_s: float
    free_at: float = 0.0

    def transfer(self, now: float, nbytes: float) -> tuple[float, float]:
        """Book a transfer issued at ``now``; returns (start, arrival) times in seconds."""
        start = max(now, self.free_at)
        self.free_at = start + (nbytes / self.bandwidth_Bps if nbytes else 0.0)
        return start, self.free_at + self.latency_s


@dataclass
class LinkSet:
    """Lazily created directed links between every pair of endpoints, all alike."""

    bandwidth_Bps: float
    latency_s: float
    links: dict[tuple[int, int], Link] = field(default_factory=dict)

    def get(self, src: int, dst: int) -> Link:
        link = self.links.get((src, dst))
        if link is None:
            link = self.links[(src, dst)] = Link(self.bandwidth_Bps, self.latency_s)
        return link
