"""Busy time on a GPU's streams: the figures compared with DeepSeek's trace (span, compute and
communication busy fractions, communication hidden under compute), for simulated and traced spans
alike."""

from __future__ import annotations


def merge_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of intervals as disjoint, sorted intervals."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Length of the intersection of two unions of disjoint, sorted intervals (a linear sweep)."""
    total = 0.0
    j = 0
    for s, e in a:
        while j < len(b) and b[j][1] <= s:
            j += 1
        k = j
        while k < len(b) and b[k][0] < e:
            total += max(0.0, min(e, b[k][1]) - max(s, b[k][0]))
            k += 1
    return total


def exposed_comm(spans: list[tuple[str, float, float]]) -> float:
    """Time communication runs while no compute does, from (stream class, start, end) spans."""
    compute = merge_intervals([(s, e) for c, s, e in spans if c == "compute"])
    comm = merge_intervals([(s, e) for c, s, e in spans if c == "comm"])
    return sum(e - s for s, e in comm) - overlap(comm, compute)


def stream_fractions(spans: list[tuple[str, float, float]]) -> dict[str, float]:
    """From (stream class, start, end) spans: the span (us or s, as given), compute and communication
    busy fractions of it, and the share of communication time that overlaps compute."""

    compute = merge_intervals([(s, e) for c, s, e in spans if c == "compute"])
    comm = merge_intervals([(s, e) for c, s, e in spans if c == "comm"])
    start = min(s for _, s, _ in spans)
    span = max(e for _, _, e in spans) - start
    comm_busy = sum(e - s for s, e in comm)
    hidden = overlap(comm, compute)
    return {
        "span": span,
        "compute_busy_fraction": sum(e - s for s, e in compute) / span,
        "comm_busy_fraction": comm_busy / span,
        "hidden_comm_fraction": hidden / comm_busy if comm_busy else 1.0,
    }
