"""The NCCL all-to-all dispatcher (sim.moe.nccl_a2a): a row per (token, chosen expert), PXN's path.

- the vectorised count equals a row-by-row reference, with and without capacity drops;
- every remote row crosses IB exactly once and every row leaving its GPU is counted: IB rows are the
  rows to other nodes, NVLink rows the rows inside the node plus the remote rows not already on the
  destination's rail;
- no deduplication: never fewer IB messages than DeepEP's, and as many when each token picks one expert;
- the phase is bounded by the links alone: its time equals DeepEP's co-processor time for the same
  messages.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.moe.alltoall import route_choices
from sim.moe.capacity import capacity, drop_over_capacity
from sim.moe.deepep import KernelSpec, simulate_phase
from sim.moe.gating import Gating
from sim.moe.nccl_a2a import direct_traffic, direct_traffic_reference
from sim.moe.spec import MoESpec
from sim.moe.traffic import layer_traffic
from sim.network.spec import ClusterSpec
from sim.network.topology import build_topology

TOKENS = 128


def _choices(spec: MoESpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return route_choices(spec, TOKENS * spec.ep, Gating("random"), rng), np.repeat(np.arange(spec.ep), TOKENS)


@pytest.mark.parametrize("ep", [8, 16, 64])
@pytest.mark.parametrize("drop", [False, True])
def test_the_count_is_the_reference(ep: int, drop: bool) -> None:
    spec = MoESpec(ep=ep)
    choices, src = _choices(spec, ep)
    if drop:
        choices = drop_over_capacity(choices, src, spec.experts, capacity(TOKENS, spec.topk, spec.experts, 0.8))
    t = direct_traffic(choices, src, spec)
    ib, nvlink, logical = direct_traffic_reference(choices, src, spec)
    assert np.array_equal(t.ib, ib) and np.array_equal(t.nvlink, nvlink) and np.array_equal(t.logical_rdma, logical)
    # rows conserved: every remote row once over IB; NVLink: rows inside the node, and remote rows off-rail
    g, epg = spec.gpus_per_node, spec.experts_per_gpu
    valid = choices >= 0
    dst = np.where(valid, choices // epg, -1)
    remote = valid & (dst // g != src[:, None] // g)
    inside = valid & ~remote & (dst != src[:, None])
    off_rail = remote & (dst % g != src[:, None] % g)
    assert t.ib.sum() == remote.sum() == t.logical_rdma.sum()
    assert t.nvlink.sum() == inside.sum() + off_rail.sum()
    assert np.array_equal(t.tokens_per_expert, layer_traffic(choices, src, spec).tokens_per_expert)


def test_no_deduplication() -> None:
    spec = MoESpec(ep=32)
    choices, src = _choices(spec, 1)
    assert direct_traffic(choices, src, spec).ib.sum() > layer_traffic(choices, src, spec).ib.sum()
    one = MoESpec(ep=32, topk=1, node_limit=1)  # one expert per token: nothing to deduplicate
    choices, src = _choices(one, 2)
    assert direct_traffic(choices, src, one).ib.sum() == layer_traffic(choices, src, one).ib.sum()


def test_the_phase_is_bounded_by_the_links_alone() -> None:
    spec = MoESpec(ep=32)
    choices, src = _choices(spec, 3)
    t = direct_traffic(choices, src, spec)
    topo = build_topology(ClusterSpec.model_validate({"name": "c", "nodes": 4, "fabric": {"kind": "ft2"}}))
    a2a = KernelSpec(comm_sms=0, dispatcher="alltoall")
    assert not a2a.sm_capped and KernelSpec().sm_capped
    for phase in ("dispatch", "combine"):
        nccl = simulate_phase(topo, t, a2a, phase)
        links = simulate_phase(topo, t, KernelSpec(comm_sms=0, coprocessor=True), phase)
        assert nccl.time_s == links.time_s > 0
