"""Routing: contiguous paths, NVLink inside a node, PXN into the destination plane, seeded ECMP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.network import routing
from sim.network.routing import Routes, route
from tests.unit.network.conftest import make


def _walk(topo, path: list[int]) -> list:  # type: ignore[no-untyped-def]
    ends = {k: (u, v) for u, v, k in topo.graph().edges(keys=True)}
    hops = [ends[link] for link in path]
    for (_, v), (u, _) in itertools.pairwise(hops):
        assert v == u, hops
    return hops


@pytest.mark.parametrize(
    "kind,fabric", [("mpft", {"switch_radix": 4}), ("ft2", {"switch_radix": 16}), ("ft3", {"switch_radix": 8})]
)
def test_every_path_is_contiguous_from_source_to_destination(kind: str, fabric: dict) -> None:
    topo = make(8, kind, **fabric)
    n = topo.gpus
    src, dst = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    routes = route(topo, src, dst)
    for f in range(routes.num_flows):
        path = routes.path(f)
        if src[f] == dst[f]:
            assert path == []
            continue
        hops = _walk(topo, path)
        assert hops[0][0] == ("gpu", src[f]) and hops[-1][1] == ("gpu", dst[f])
        assert routes.latency[f] == pytest.approx(topo.latency[path].sum())


def test_pxn_forwards_to_the_destination_plane() -> None:
    topo = make(4, "mpft", switch_radix=4)  # 8 planes
    g = topo.gpus_per_node
    for s, t in [(0, 1 * g + 3), (5, 3 * g + 5), (2, 2 * g + 7)]:
        hops = _walk(topo, route(topo, np.array([s]), np.array([t])).path(0))
        planes = {v[1] for u, v in hops if v[0] in ("leaf", "spine")}
        assert planes == {t % g}
        if s % g != t % g:  # first NVLink to the GPU of the source node with the destination's index
            assert hops[1] == (("nvswitch", s // g), ("gpu", (s // g) * g + t % g))
        else:
            assert hops[0] == (("gpu", s), ("nic", s))


def test_same_node_uses_nvlink_only() -> None:
    topo = make(2, "mpft")
    hops = _walk(topo, route(topo, np.array([3]), np.array([6])).path(0))
    assert hops == [(("gpu", 3), ("nvswitch", 0)), (("nvswitch", 0), ("gpu", 6))]


def test_ecmp_is_deterministic_seeded_and_spreads() -> None:
    topo = make(64, "ft2", switch_radix=32)  # 512 endpoints: 32 leaves with 16 uplinks each
    src = np.arange(0, 256)
    dst = (src + 256) % topo.gpus
    a, b = route(topo, src, dst, seed=1), route(topo, src, dst, seed=1)
    c = route(topo, src, dst, seed=2)
    assert np.array_equal(a.links, b.links)
    assert not np.array_equal(a.links, c.links)
    up = topo.blocks["leaf_up"]
    used_ports = (a.links[(a.links >= up.offset) & (a.links < up.offset + up.count)] - up.offset) % topo.layout.up
    assert len(np.unique(used_ports)) == topo.layout.up  # every uplink port gets traffic


@pytest.mark.parametrize(
    ("name", "gpus", "hashed"),
    [
        ("deepseek-v3-mpft", 16, False),  # 8 planes: one node's NIC per leaf of each plane, 32 nodes a leaf
        ("deepseek-v3-mpft", 256, False),  # 32 nodes: one leaf in each plane
        ("deepseek-v3-mpft", 264, True),  # a 33rd node: the next leaf
        ("deepseek-v3-ft2", 128, True),  # one plane: 32 endpoints (4 nodes) a leaf
        ("deepseek-v3-ft3", 128, True),
    ],
)
def test_ecmp_hashes_among_says_when_the_seed_can_act(name: str, gpus: int, hashed: bool) -> None:
    """``twin collective --seed`` is refused where :func:`ecmp_hashes_among` is False: no flow among the
    GPUs crosses leaves, so every seed routes them alike (the rows are the same, to the bit); where it
    is True some flow is hashed, and on a one-plane fabric the seed moves the times."""
    from pathlib import Path

    from sim.network.nccl_sweep import run_sweep
    from sim.network.routing import ecmp_hashes_among
    from sim.network.spec import build_cluster
    from sim.network.tolerance import COMPLETION_RTOL

    topo = build_cluster(Path(__file__).resolve().parents[3] / "topologies" / f"{name}.yaml")
    assert ecmp_hashes_among(topo, gpus) is hashed
    times = {
        tuple(r.record()["time_us"] for r in run_sweep(topo, "alltoall", gpus, [1 << 20], "ring", s, COMPLETION_RTOL))
        for s in (0, 1, 2)
    }
    if not hashed:
        assert len(times) == 1
    elif "mpft" not in name:  # (MPFT's 8 planes may hash 264 GPUs' flows onto the same ports by chance)
        assert len(times) > 1


def _routes_equal(a: Routes, b: Routes) -> bool:
    pairs = zip((a.indptr, a.links, a.latency), (b.indptr, b.links, b.latency), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


def test_routes_are_kept_by_the_fabric_shape_and_not_its_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths never read link rates: a topology that differs only in its NIC and NVLink rates gets the
    very routes kept for the first (worked out again without the memo, they are the same); one that
    differs in its shape (planes, latencies, nodes) or a call with another seed or hash keys does not."""
    monkeypatch.setattr(routing, "_memo", {})
    src = np.arange(0, 256)
    dst = (src * 7 + 300) % 512
    base = make(64, "mpft", switch_radix=32)
    first = route(base, src, dst)
    assert not first.links.flags.writeable  # kept: nobody may write into them
    faster = make(64, "mpft", switch_radix=32, link_Gbps=800, node={"nvlink_GBps": 900, "nic_Gbps": 800})
    assert not np.array_equal(faster.capacity, base.capacity)
    assert route(faster, src, dst) is first
    assert _routes_equal(routing._route(faster, src, dst, faster.spec.fabric.ecmp_seed, None), first)
    for other in (
        make(64, "mpft", switch_radix=32, planes=4),
        make(64, "mpft", switch_radix=32, latency={"switch_hop_us": 2.0}),
        make(64, "ft2", switch_radix=32),
        make(72, "mpft", switch_radix=32),
    ):
        got = route(other, src, dst)
        assert got is not first
        assert _routes_equal(got, routing._route(other, src, dst, other.spec.fabric.ecmp_seed, None))
    assert route(base, src, dst, seed=9) is not first
    assert route(base, src, dst, hash_key=(src, src)) is not first
    assert route(base, src, dst[::-1].copy()) is not first


def test_the_route_memo_is_emptied_past_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "_memo", {})
    monkeypatch.setattr(routing, "_memo_bytes", [0])
    topo = make(8, "mpft")
    src = np.arange(32)
    one = route(topo, src, (src + 8) % 64)
    size = routing._memo_bytes[0]
    monkeypatch.setattr(routing, "MEMO_BYTES", 2 * size)
    route(topo, src, (src + 16) % 64)
    assert len(routing._memo) == 2 and route(topo, src, (src + 8) % 64) is one
    route(topo, src, (src + 24) % 64)  # past the limit: the memo starts again with it alone
    assert len(routing._memo) == 1 and routing._memo_bytes[0] <= 2 * size
    assert route(topo, src, (src + 8) % 64) is not one
