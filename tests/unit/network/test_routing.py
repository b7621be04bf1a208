"""Routing: contiguous paths, NVLink inside a node, PXN into the destination plane, seeded ECMP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.network.routing import route
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
