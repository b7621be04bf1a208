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
