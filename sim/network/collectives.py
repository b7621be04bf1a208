"""Collectives built from flows on the flow-level network, reported the way nccl-tests does.

Sizes follow nccl-tests: ``size`` is the per-rank buffer (all-gather: the gathered output; reduce-
scatter: the input; all-to-all: the whole send buffer, ``size/n`` to each peer). ``algbw = size /
time``; ``busbw = algbw x factor`` with factor 1 (send/recv), (n-1)/n (all-gather, reduce-scatter,
all-to-all) and 2(n-1)/n (all-reduce), so that busbw is comparable with link bandwidth.

Algorithms:

* ``sendrecv``: rank i sends ``size`` to rank i+1 (a ring shift, as nccl-tests' sendrecv).
* ``alltoall``: every ordered pair at once (any traffic matrix through :func:`alltoall_matrix`).
* ``ring``: all-gather and reduce-scatter in n-1 steps of size/n, all-reduce as reduce-scatter then
  all-gather (2(n-1) steps). Across nodes the data is split over one ring per GPU of a node (NCCL's
  channels): ring r visits each node's GPUs starting at local index r, so its inter-node hops leave
  every node through a different NIC (and, in a multi-plane fabric, a different plane via PXN).
* ``hierarchical``: reduce-scatter inside each node (NVLink), the collective across nodes among GPUs
  with the same local index (IB, one ring per local index), all-gather inside each node.

Simplifications (documented parameters of the model, not hidden): ring steps run in lockstep (a
step starts when the previous one has finished everywhere; exact when ring links are equally
loaded); reductions cost no compute time; protocol overheads (NCCL's LL/Simple) are not modelled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from sim.errors import ScenarioError
from sim.network.coflow import finish_times
from sim.network.context import SimContext
from sim.network.flows import FlowNetwork
from sim.network.routing import route
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology

KINDS = ("sendrecv", "alltoall", "allgather", "reducescatter", "allreduce")
ALGORITHMS = ("ring", "hierarchical")
HIERARCHICAL = ("allgather", "reducescatter", "allreduce")  # the kinds with a hierarchical algorithm


@dataclass(frozen=True)
class CollectiveResult:
    kind: str
    algorithm: str
    ranks: int
    size_bytes: float
    time_s: float
    algbw_Bps: float
    busbw_Bps: float
    max_link_utilization: float
    flows: int
    recomputes: int

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "time_s": self.time_s,
            "algbw_GBps": self.algbw_Bps / 1e9,
            "busbw_GBps": self.busbw_Bps / 1e9,
            "max_link_utilization": self.max_link_utilization,
            "kind": self.kind,
            "algorithm": self.algorithm,
            "ranks": self.ranks,
            "size_bytes": self.size_bytes,
            "flows": self.flows,
        }


def bus_factor(kind: str, n: int) -> float:
    """nccl-tests' busbw / algbw factor."""
    if n <= 1:
        return 0.0 if kind != "sendrecv" else 1.0
    return {"sendrecv": 1.0, "allreduce": 2 * (n - 1) / n}.get(kind, (n - 1) / n)


@dataclass(frozen=True)
class RingPhase:
    """Disjoint rings run together in lockstep: ``steps`` steps of ``chunk`` bytes per rank."""

    rings: list[np.ndarray]
    steps: int
    chunk: float


def _channel_rings(topo: Topology, gpus: np.ndarray) -> list[np.ndarray]:
    """One ring, or NCCL-style one ring per local GPU index when whole nodes take part."""
    g = topo.gpus_per_node
    nodes = np.unique(gpus // g)
    whole = (
        len(nodes) > 1
        and len(gpus) == len(nodes) * g
        and set(gpus.tolist()) == set((nodes[:, None] * g + np.arange(g)).ravel().tolist())
    )
    if not whole:
        return [gpus]
    return [(nodes[:, None] * g + (np.arange(g) + r) % g).ravel() for r in range(g)]


def _phases(topo: Topology, kind: str, algorithm: str, gpus: np.ndarray, size: float) -> list[RingPhase]:
    n = len(gpus)
    if algorithm == "ring" or kind not in HIERARCHICAL:
        rings = _channel_rings(topo, gpus)
        chunk = size / n / len(rings)
        steps = 2 * (n - 1) if kind == "allreduce" else n - 1
        return [RingPhase(rings, steps, chunk)]
    g = topo.gpus_per_node
    nodes = np.unique(gpus // g)
    if len(gpus) != len(nodes) * g:
        raise ScenarioError("gpus", f"hierarchical collectives need whole nodes ({g} GPUs each), got {n} GPUs")
    local = list(nodes[:, None] * g + np.arange(g))  # one ring per node
    cross = list(nodes[None, :] * g + np.arange(g)[:, None])  # one ring per local index
    k = len(nodes)
    if kind == "allreduce":
        return [
            RingPhase(local, g - 1, size / g),
            RingPhase(cross, 2 * (k - 1), size / g / k),
            RingPhase(local, g - 1, size / g),
        ]
    if kind == "reducescatter":
        return [RingPhase(local, g - 1, size / g), RingPhase(cross, k - 1, size / n)]
    return [RingPhase(cross, k - 1, size / n), RingPhase(local, g - 1, size / g)]


def _ring_pairs(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every ring's edges (each GPU to the next, the last to the first), ring after ring; rings of
    one length are taken as one matrix."""
    rings = [r for r in rings if len(r) > 1]
    if not rings:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if all(len(r) == len(rings[0]) for r in rings):
        m = np.stack(rings)
        return m.ravel(), np.roll(m, -1, axis=1).ravel()
    return np.concatenate(rings), np.concatenate([np.roll(r, -1) for r in rings])


def alltoall_matrix(net: FlowNetwork, gpus: np.ndarray, matrix: np.ndarray) -> simpy.Event:
    """Start an all-to-all where ``gpus[i]`` sends ``matrix[i, j]`` bytes to ``gpus[j]``."""
    src_i, dst_j = np.nonzero(matrix)
    off = src_i != dst_j
    return net.send_batch(gpus[src_i[off]], gpus[dst_j[off]], matrix[src_i[off], dst_j[off]], tag="collective")


def collective_process(
    net: FlowNetwork, kind: str, gpus: np.ndarray, size: float, algorithm: str = "ring"
) -> Generator[simpy.Event, object, None]:
    """A simpy process running one collective on ``net`` (so it can overlap other traffic)."""
    n = len(gpus)
    if n < 2:
        return
    if kind == "alltoall":
        matrix = np.full((n, n), size / n)
        yield alltoall_matrix(net, gpus, matrix)
        return
    if kind == "sendrecv":
        yield net.send_batch(gpus, np.roll(gpus, -1), np.full(n, float(size)), tag="collective")
        return
    for phase in _phases(net.topo, kind, algorithm, gpus, size):
        src, dst = _ring_pairs(phase.rings)
        if not len(src):
            continue
        routes = net.route(src, dst)  # every step of a phase sends along the same ring edges
        for _ in range(phase.steps):
            yield net.send_routes(routes, np.full(len(src), phase.chunk), "collective")


@dataclass(frozen=True)
class PhaseCoflow:
    """One phase of a collective as one coflow (:mod:`sim.network.coflow`): the bytes all its steps
    put on each link, and its time alone, ``steps`` x one step's drain, split into the time its
    bytes take (``time_alone_s``) and the path latency every step adds (``latency_s``)."""

    links: np.ndarray
    link_bytes: np.ndarray
    time_alone_s: float
    latency_s: float


def _steps(
    topo: Topology, kind: str, gpus: np.ndarray, size: float, algorithm: str
) -> list[tuple[np.ndarray, np.ndarray, float, int]]:
    """(sources, destinations, bytes per flow and step, steps) of each phase of one collective."""
    n = len(gpus)
    if kind == "alltoall":
        src, dst = np.repeat(gpus, n), np.tile(gpus, n)
        off = src != dst
        return [(src[off], dst[off], size / n, 1)]
    if kind == "sendrecv":
        return [(gpus, np.roll(gpus, -1), float(size), 1)]
    out = []
    for phase in _phases(topo, kind, algorithm, gpus, size):
        src, dst = _ring_pairs(phase.rings)
        if len(src):
            out.append((src, dst, phase.chunk, phase.steps))
    return out


def collective_coflows(
    topo: Topology, kind: str, gpus: np.ndarray, size: float, algorithm: str = "ring", seed: int | None = None
) -> list[PhaseCoflow]:
    """The phases of one collective as coflows, one per phase, to run one after another.

    Alone, the sequence takes exactly what :func:`collective_process` takes with ``completion_rtol``
    0: each lockstep step of a phase sends the same ring edges and drains alike
    (:func:`sim.network.coflow.finish_times`). Beside other traffic a phase shares links as one coflow
    (its flows keep their proportions) instead of step by step and flow by flow: one event per phase,
    however many GPUs and ring steps. The data-parallel phase of a training step runs on it;
    docs/step.md compares it with the flow-by-flow reference (merging a replica set's expert groups
    into one coflow was tried: 4x faster, up to 10% off the reference, so each group is its own)."""
    gpus = np.asarray(gpus, dtype=np.int64)
    if len(gpus) < 2 or size <= 0:
        return []
    out = []
    for src, dst, chunk, count in _steps(topo, kind, gpus, size, algorithm):
        links, crossings, per_byte, latency = _step_drain(topo, src, dst, seed)
        sent = chunk * float(per_byte.max())
        delivered = float((chunk * per_byte + latency).max())
        out.append(PhaseCoflow(links, crossings * (chunk * count), count * sent, count * (delivered - sent)))
    return out


DRAINS_MEMO_SIZE = 4096  # ring steps kept per topology (a replica set's reduce-scatter and all-gather share them)


def _step_drain(topo: Topology, src: np.ndarray, dst: np.ndarray, seed: int | None) -> tuple[np.ndarray, ...]:
    """(links, flows crossing each, each flow's seconds per byte until its last byte is sent, each
    flow's path latency) of one step of equal flows ``src[i] -> dst[i]`` alone. Max-min rates do not
    depend on bytes, so a flow's finish scales with the bytes: one memo per step's edges, kept with
    the topology (it goes with it: a sweep builds one per point)."""
    memo: OrderedDict[tuple[object, ...], tuple[np.ndarray, ...]] = topo.__dict__.setdefault(
        "_drain_memo", OrderedDict()
    )
    key = (seed, src.tobytes(), dst.tobytes())
    hit = memo.get(key)
    if hit is not None:
        memo.move_to_end(key)
        return hit
    routes = route(topo, src, dst, seed)
    links, crossings = np.unique(routes.links, return_counts=True)
    finish = finish_times(routes, np.ones(len(src)), topo.capacity)
    value = (links, crossings.astype(np.float64), finish, routes.latency)
    memo[key] = value
    if len(memo) > DRAINS_MEMO_SIZE:
        memo.popitem(last=False)
    return value


def coflow_process(net: FlowNetwork, phases: list[PhaseCoflow], tag: str = "collective") -> Generator[simpy.Event]:
    """A simpy process running a collective's phases as coflows on ``net``, one after another."""
    for ph in phases:
        yield net.send_coflow(ph.links, ph.link_bytes, ph.time_alone_s, ph.latency_s, tag)


def collective_flows(
    topo: Topology, kind: str, gpus: np.ndarray, size: float, algorithm: str = "ring"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source GPUs, destination GPUs, bytes) that :func:`collective_process` sends for one
    collective, summed over its steps per (source, destination) ring edge (byte accounting)."""
    gpus = np.asarray(gpus, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if len(gpus) < 2 or size <= 0:
        return empty, empty, np.zeros(0)
    n = len(gpus)
    if kind == "alltoall":
        src, dst = np.repeat(gpus, n), np.tile(gpus, n)
        off = src != dst
        return src[off], dst[off], np.full(int(off.sum()), size / n)
    if kind == "sendrecv":
        return gpus, np.roll(gpus, -1), np.full(n, float(size))
    srcs, dsts, sizes = [], [], []
    for phase in _phases(topo, kind, algorithm, gpus, size):
        src, dst = _ring_pairs(phase.rings)
        srcs.append(src)
        dsts.append(dst)
        sizes.append(np.full(len(src), phase.steps * phase.chunk))
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(sizes)


def ring_flows(topo: Topology, kind: str, rows: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`collective_flows` of ring collectives ``kind`` of ``size`` bytes over each row of GPUs of
    ``rows`` (k groups x n GPUs), concatenated row after row: every flow in the same order, so sums
    over them add in the same order (a test compares). A row of whole nodes takes NCCL's
    per-local-index rings; where ``n`` is not a multiple of the node size no row can, and the rows'
    one-ring edges are taken at once."""
    rows = np.asarray(rows, dtype=np.int64)
    k, n = rows.shape
    if kind not in ("allgather", "reducescatter", "allreduce") or n < 2 or size <= 0 or n % topo.gpus_per_node == 0:
        parts = [collective_flows(topo, kind, row, size, "ring") for row in rows]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]
    steps = 2 * (n - 1) if kind == "allreduce" else n - 1
    chunk = size / n / 1  # one ring (:func:`_phases`)
    return rows.ravel(), np.roll(rows, -1, axis=1).ravel(), np.full(k * n, steps * chunk)


def check_collective(topo: Topology, kind: str, gpus: np.ndarray | int, algorithm: str = "ring") -> np.ndarray:
    """The ranks of a collective ``topo`` can run (GPUs 0..gpus-1, or those given), or the error."""
    if kind not in KINDS:
        raise ScenarioError("kind", f"unknown collective {kind!r}; choose from {', '.join(KINDS)}")
    if algorithm not in ALGORITHMS:
        raise ScenarioError("algorithm", f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    if algorithm == "hierarchical" and kind not in HIERARCHICAL:
        raise ScenarioError(
            "algorithm", f"hierarchical is for {', '.join(HIERARCHICAL)}; {kind} has one algorithm here: leave it out"
        )
    ranks = np.arange(gpus) if isinstance(gpus, int) else np.asarray(gpus, dtype=np.int64)
    if len(ranks) < 2 or len(ranks) > topo.gpus:
        raise ScenarioError("gpus", f"need 2..{topo.gpus} GPUs on this cluster, got {len(ranks)}")
    if len(np.unique(ranks)) != len(ranks):
        raise ScenarioError("gpus", "GPUs must be distinct")
    _phases(topo, kind, algorithm, ranks, 1.0)  # layout errors before anything runs
    return ranks


def run_collective(
    topo: Topology,
    kind: str,
    gpus: np.ndarray | int,
    size_bytes: float,
    algorithm: str = "ring",
    seed: int | None = None,
    completion_rtol: float = COMPLETION_RTOL,
    ctx: SimContext | None = None,
) -> CollectiveResult:
    """Simulate one collective alone on the network and report nccl-tests style figures."""
    ranks = check_collective(topo, kind, gpus, algorithm)
    if not size_bytes > 0:
        raise ScenarioError("size_bytes", f"must be > 0, got {size_bytes}")
    ctx = ctx if ctx is not None else SimContext(topo, completion_rtol, seed)
    net = ctx.network
    flows0, recomputes0, bytes0 = net.stats.flows, net.stats.recomputes, net.stats.link_bytes[: topo.num_links].copy()
    time_s = ctx.run_alone([collective_process(net, kind, ranks, float(size_bytes), algorithm)])
    algbw = size_bytes / time_s if time_s > 0 else float("inf")
    moved = net.stats.link_bytes[: topo.num_links] - bytes0
    util = moved / (topo.capacity * time_s) if time_s > 0 else np.zeros(1)
    return CollectiveResult(
        kind=kind,
        algorithm=algorithm,
        ranks=len(ranks),
        size_bytes=float(size_bytes),
        time_s=time_s,
        algbw_Bps=algbw,
        busbw_Bps=algbw * bus_factor(kind, len(ranks)),
        max_link_utilization=float(util.max()),
        flows=net.stats.flows - flows0,
        recomputes=net.stats.recomputes - recomputes0,
    )
