"""Routing: the directed links each flow crosses, for many flows at once (numpy, no loops).

* Same node: GPU -> NVSwitch -> GPU over NVLink.
* Across nodes: GPU -> PCIe -> NIC -> fabric -> NIC -> PCIe -> GPU. In a fat tree, flows that stay
  under one leaf (edge) switch turn there; others climb to a spine (FT2) or through an aggregation
  and a core switch (FT3), chosen by ECMP: a deterministic hash of (source, destination, seed)
  picks the uplink port at each level, so the same seed always gives the same paths.
* Multi-plane fat tree: a NIC only reaches its own plane, so a flow whose destination NIC sits in
  another plane is first forwarded inside the source node over NVLink to the GPU whose NIC is in the
  destination's plane (PXN), then crosses that plane.

Routes are returned in CSR form: the links of flow ``f`` are ``links[indptr[f]:indptr[f+1]]``.

Paths depend on the fabric's shape, never on its link rates, so :func:`route` keeps the routes it
worked out, process-wide, by the topology's shape (:func:`shape_key`), the seed and the flows' ends
and hash keys: a sweep over rates (``scenarios/sweeps/thousand.yaml``: NIC and NVLink rates, SMs and
the node limit on one shape) routes each point's DeepEP phases, pipeline sends and collectives once
per worker instead of once a point (measured 2026-12-06: routing was about 7% of a compiled point).
The routes kept are read-only (their arrays cannot be written), and the memo is emptied past
:data:`MEMO_BYTES` of arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from sim.network.topology import Topology

_MAX_HOPS = 10
MEMO_BYTES = 64 * 2**20  # routes kept by route() (their arrays' bytes) before the memo is emptied
_memo: dict[tuple[object, ...], Routes] = {}
_memo_bytes = [0]
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Routes:
    """Paths of a batch of flows: CSR ``indptr``/``links`` and per-flow path latency (s)."""

    indptr: np.ndarray
    links: np.ndarray
    latency: np.ndarray

    @property
    def num_flows(self) -> int:
        return len(self.indptr) - 1

    def path(self, flow: int) -> list[int]:
        return self.links[self.indptr[flow] : self.indptr[flow + 1]].tolist()


def ecmp_hash(src: np.ndarray, dst: np.ndarray, seed: int, salt: int = 0) -> np.ndarray:
    """splitmix64 of (src, dst, seed, salt): a well-mixed, deterministic unsigned 64-bit hash."""
    with np.errstate(over="ignore"):
        x = src.astype(np.uint64) * _GOLD + dst.astype(np.uint64)
        x ^= np.uint64((seed * 0x632BE59BD9B4E019 + salt * 0x85EBCA77C2B2AE63) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def route(
    topo: Topology,
    src: np.ndarray,
    dst: np.ndarray,
    seed: int | None = None,
    hash_key: tuple[np.ndarray, np.ndarray] | None = None,
) -> Routes:
    """Paths from GPUs ``src[i]`` to GPUs ``dst[i]`` (flows with src == dst get an empty path): NVLink
    within an NVLink domain (:attr:`Topology.domain_gpus`), else through the NICs and the fabric. ECMP
    hashes each flow's (src, dst), or (``hash_key[0][i]``, ``hash_key[1][i]``) where given: flows with
    one key take the same spine (and aggregation and core) ports, as a tree's branches do."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    seed = topo.spec.fabric.ecmp_seed if seed is None else seed
    key = (
        shape_key(topo),
        seed,
        src.tobytes(),
        dst.tobytes(),
        None
        if hash_key is None
        else (np.asarray(hash_key[0], dtype=np.int64).tobytes(), np.asarray(hash_key[1], dtype=np.int64).tobytes()),
    )
    hit = _memo.get(key)
    if hit is not None:
        return hit
    routes = _route(topo, src, dst, seed, hash_key)
    for a in (routes.indptr, routes.links, routes.latency):
        a.setflags(write=False)
    size = routes.indptr.nbytes + routes.links.nbytes + routes.latency.nbytes + len(key[2]) + len(key[3])
    if _memo_bytes[0] + size > MEMO_BYTES:
        _memo.clear()
        _memo_bytes[0] = 0
    _memo[key] = routes
    _memo_bytes[0] += size
    return routes


def shape_key(topo: Topology) -> tuple[object, ...]:
    """What :func:`route` reads of ``topo`` (kept on it): the GPUs and their NVLink domains and
    nodes, every block's place among the links, the fat tree's layout (planes, rails, radix, ports)
    and the links' latencies (a digest); not their rates."""
    key = topo.route_key
    if key is None:
        layout = None if topo.layout is None else dataclasses.astuple(topo.layout)
        blocks = tuple((name, b.offset, b.count) for name, b in topo.blocks.items())
        latency = hashlib.blake2b(np.ascontiguousarray(topo.latency).tobytes(), digest_size=16).digest()
        key = (topo.gpus, topo.nodes, topo.gpus_per_node, topo.domain_gpus, blocks, layout, latency)
        topo.route_key = key
    return key


def _route(
    topo: Topology,
    src: np.ndarray,
    dst: np.ndarray,
    seed: int,
    hash_key: tuple[np.ndarray, np.ndarray] | None,
) -> Routes:
    """:func:`route`, worked out."""
    if len(src) and (src.min() < 0 or dst.min() < 0 or max(src.max(), dst.max()) >= topo.gpus):
        raise ValueError(f"GPU index out of range 0..{topo.gpus - 1}")
    b = topo.blocks
    d = topo.domain_gpus  # an NVLink domain: a node, or a rack of them (node.scale_up_gpus)
    hops = np.full((len(src), _MAX_HOPS), -1, dtype=np.int64)
    same_domain = (src // d) == (dst // d)
    local = same_domain & (src != dst)
    hops[local, 0] = b["nv_up"].offset + src[local]
    hops[local, 1] = b["nv_down"].offset + dst[local]
    remote = ~same_domain
    if remote.any():
        if topo.layout is None:
            raise ValueError("this cluster has no network fabric between nodes")
        keys = (src[remote], dst[remote]) if hash_key is None else (hash_key[0][remote], hash_key[1][remote])
        _remote_hops(topo, src[remote], dst[remote], seed, hops, np.flatnonzero(remote), keys)
    mask = hops >= 0
    counts = mask.sum(axis=1)
    indptr = np.zeros(len(src) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    links = hops[mask]
    per_link = topo.latency[links]
    latency = np.zeros(len(src))
    nonempty = counts > 0
    if links.size:
        latency[nonempty] = np.add.reduceat(per_link, indptr[:-1][nonempty])
    return Routes(indptr, links, latency)


def _remote_hops(
    topo: Topology,
    s: np.ndarray,
    t: np.ndarray,
    seed: int,
    hops: np.ndarray,
    rows: np.ndarray,
    keys: tuple[np.ndarray, np.ndarray],
) -> None:
    b = topo.blocks
    lay = topo.layout
    assert lay is not None
    g = topo.gpus_per_node
    plane_s, _ = topo.endpoint_of(s)
    plane_t, e_t = topo.endpoint_of(t)
    # PXN: forward over NVLink to the source-node GPU whose NIC is in the destination's plane
    pxn = plane_s != plane_t
    a = np.where(pxn, (s // g) * g + t % g, s)
    col = np.zeros(len(s), dtype=np.int64)

    def put(mask: np.ndarray, values: np.ndarray) -> None:
        hops[rows[mask], col[mask]] = values[mask] if values.shape else values
        col[mask] += 1

    everyone = np.ones(len(s), dtype=bool)
    put(pxn, b["nv_up"].offset + s)
    put(pxn, b["nv_down"].offset + a)
    put(everyone, b["pcie_up"].offset + a)
    put(everyone, b["nic_up"].offset + a)
    _, e_a = topo.endpoint_of(a)
    h = ecmp_hash(keys[0], keys[1], seed)
    if lay.kind in ("ft2", "mpft"):
        leaf_a, leaf_t = e_a // lay.down, e_t // lay.down
        cross = leaf_a != leaf_t
        port = (h % np.uint64(lay.up)).astype(np.int64)
        base = plane_t * lay.leaves
        put(cross, b["leaf_up"].offset + (base + leaf_a) * lay.up + port)
        put(cross, b["leaf_down"].offset + (base + leaf_t) * lay.up + port)
    else:
        edge_a, edge_t = e_a // lay.down, e_t // lay.down
        pod_a, pod_t = edge_a // lay.edges_per_pod, edge_t // lay.edges_per_pod
        agg = (h % np.uint64(lay.up)).astype(np.int64)
        port = (ecmp_hash(keys[0], keys[1], seed, salt=1) % np.uint64(lay.agg_up)).astype(np.int64)
        cross_edge = edge_a != edge_t
        cross_pod = pod_a != pod_t
        put(cross_edge, b["edge_up"].offset + edge_a * lay.up + agg)
        put(cross_pod, b["agg_up"].offset + (pod_a * lay.up + agg) * lay.agg_up + port)
        put(cross_pod, b["agg_down"].offset + (pod_t * lay.up + agg) * lay.agg_up + port)
        put(cross_edge, b["edge_down"].offset + edge_t * lay.up + agg)
    put(everyone, b["nic_down"].offset + t)
    put(everyone, b["pcie_down"].offset + t)


def ecmp_hashes_among(topo: Topology, gpus: int) -> bool:
    """Whether ECMP's hash picks a hop for some flow among GPUs ``0 .. gpus - 1``. Only a flow
    between NICs under different leaves (FT2, MPFT) or edge switches (FT3) of its destination's plane
    is hashed (:func:`_remote_hops`: ``e // down`` of both ends); a flow inside one node is NVLink
    alone. A PXN forwarder is a GPU of the source's node, so every GPU of the nodes spanned counts."""
    g = topo.gpus_per_node
    if gpus <= g or topo.layout is None:
        return False
    plane, endpoint = topo.endpoint_of(np.arange(-(-gpus // g) * g))
    leaf = endpoint // topo.layout.down
    return any(len(np.unique(leaf[plane == p])) > 1 for p in np.unique(plane))


def route_trees(topo: Topology, src: np.ndarray, dst: np.ndarray, trees: np.ndarray, seed: int | None = None) -> Routes:
    """One route per tree id in ``trees`` (0..n-1): a multicast tree (its flows share a source) or a
    reduction tree (they share a destination). Every branch of a tree hashes alike, keyed by the tree's
    root and id, so the branches climb to the same spine (or aggregation and core switch), where a
    multicast copy splits and partial sums meet, and the tree is the union of the branches' links
    (:func:`merge_routes`)."""
    trees = np.asarray(trees, dtype=np.int64)
    n = int(trees.max()) + 1 if len(trees) else 0
    return merge_routes(route(topo, src, dst, seed, tree_keys(src, dst, trees)), trees, n)


def tree_keys(src: np.ndarray, dst: np.ndarray, trees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ECMP key of each branch of :func:`route_trees`: its tree's root (the shared source, else the
    shared destination) and the tree's id."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    trees = np.asarray(trees, dtype=np.int64)
    n = int(trees.max()) + 1 if len(trees) else 0
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    np.minimum.at(lo, trees, src)
    np.maximum.at(hi, trees, src)
    return np.where((lo == hi)[trees], src, dst), trees


def merge_routes(routes: Routes, group: np.ndarray, groups: int) -> Routes:
    """One route per group: the union of its flows' links, each link once, and their largest latency.
    A multicast or reduction tree on the flow-level network (:mod:`sim.moe.multicast`): one flow that
    crosses every link of its branches once, at one rate. Links keep their first appearance's order."""
    group = np.asarray(group, dtype=np.int64)
    counts = np.diff(routes.indptr)
    entry_group = np.repeat(group, counts)
    key = entry_group * (int(routes.links.max(initial=0)) + 1) + routes.links
    _, first = np.unique(key, return_index=True)
    first.sort()  # entries in flow order: a group's links in their paths' order
    g, links = entry_group[first], routes.links[first]
    order = np.argsort(g, kind="stable")
    indptr = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(g, minlength=groups), out=indptr[1:])
    latency = np.zeros(groups)
    np.maximum.at(latency, group, routes.latency)
    return Routes(indptr, links[order], latency)


def tree_bytes(nbytes: np.ndarray, tree: np.ndarray) -> tuple[np.ndarray, int]:
    """The bytes of each tree of :func:`merge_routes` (every flow of a tree carries the same) and the
    number of trees."""
    n = int(tree.max()) + 1 if len(tree) else 0
    out = np.zeros(n)
    out[tree] = nbytes
    return out, n
