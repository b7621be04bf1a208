"""The data-parallel collectives as coflows (one per phase) against the flow-by-flow reference.

Mechanism (sim.network.collectives.collective_coflows): every lockstep step of a ring phase sends the
same ring edges with the same bytes, so alone each step drains alike and the phase takes ``steps`` x
one step's drain (:func:`sim.network.coflow.finish_times`, the network's own max-min re-solves). So a
collective alone, and collectives on link-disjoint GPUs (max-min decomposes over disjoint links),
take exactly what the flow-by-flow simulation with ``completion_rtol`` 0 takes. Collectives that share
links (a replica set's non-expert and expert groups share every NIC) share them as coflows instead of
flow by flow: there both models are bounded by the slowest group alone (nothing is faster than alone)
and the groups run one after another (max-min sharing wastes no capacity a waiting group could use).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.assemble import assemble
from sim.config import default_scenario_path, load_scenario
from sim.network.collectives import coflow_process, collective_coflows, collective_process
from sim.network.context import SimContext
from sim.network.topology import Topology
from sim.step import zero1 as dp
from tests.unit.network.conftest import make

CASES = [
    ("allgather", "ring"),
    ("reducescatter", "ring"),
    ("allreduce", "ring"),
    ("allgather", "hierarchical"),
    ("reducescatter", "hierarchical"),
    ("allreduce", "hierarchical"),
    ("alltoall", "ring"),
    ("sendrecv", "ring"),
]


def _by_flows(topo: Topology, procs: list[tuple[str, np.ndarray, float, str]]) -> float:
    ctx = SimContext(topo, 0.0)
    return ctx.run_alone([collective_process(ctx.network, k, g, s, a) for k, g, s, a in procs])


def _by_coflows(topo: Topology, procs: list[tuple[str, np.ndarray, float, str]]) -> float:
    ctx = SimContext(topo, 0.0)
    net = ctx.network
    return ctx.run_alone([coflow_process(net, collective_coflows(topo, k, g, s, a, net.seed)) for k, g, s, a in procs])


@pytest.mark.parametrize(("kind", "algo"), CASES)
@pytest.mark.parametrize("fabric", ["mpft", "ft2"])
def test_one_collective_alone_is_exact(kind: str, algo: str, fabric: str) -> None:
    topo = make(8, fabric)  # 64 GPUs; ft2 hashes flows over spines (ECMP collisions: unequal rates)
    gpus = np.arange(64)
    for size in (1e6, 96e6):
        ref = _by_flows(topo, [(kind, gpus, size, algo)])
        got = _by_coflows(topo, [(kind, gpus, size, algo)])
        assert got == pytest.approx(ref, rel=1e-9)


def test_link_disjoint_collectives_side_by_side_are_exact() -> None:
    topo = make(8, "mpft")
    procs = [
        ("reducescatter", np.arange(0, 32), 64e6, "hierarchical"),  # nodes 0-3
        ("reducescatter", np.arange(32, 64, 8), 16e6, "ring"),  # GPU 0 of nodes 4-7
    ]
    # no NIC, PCIe or NVLink in common; the leaves they share are non-blocking (each port its own
    # link) and 8 nodes hang off one leaf per plane, so nothing crosses a spine
    assert _by_coflows(topo, procs) == pytest.approx(_by_flows(topo, procs), rel=1e-9)


@pytest.fixture(scope="module")
def replica_set() -> tuple[Topology, dict[str, list[tuple[np.ndarray, float, str]]]]:
    spec = assemble(load_scenario(default_scenario_path())).step
    assert spec is not None
    lay, schedule = spec.inputs.layout, spec.schedule
    model = dp.DpModel(spec.dp, spec.inputs.model, lay, schedule, spec.topology, spec.inputs.cost.memory_time)
    rset = dp.ReplicaSet.of(lay, schedule, 0)
    whole = dp.rank_params(spec.inputs.model, lay, schedule, 0)
    return spec.topology, {kind: model.groups(kind, rset, whole) for kind in ("reducescatter", "allgather")}


@pytest.mark.parametrize("kind", ["reducescatter", "allgather"])
def test_replica_set_groups_sharing_nics_are_bounded_alike(replica_set, kind: str) -> None:  # type: ignore[no-untyped-def]
    topo, by_kind = replica_set
    groups = by_kind[kind]
    assert len(groups) == 65  # the non-expert group over 256 GPUs and 64 expert groups of 4
    alone = [_by_coflows(topo, [(kind, g, s, a)]) for g, s, a in groups[:2]]  # expert groups are alike
    lower, upper = max(alone), alone[0] + alone[1] * (len(groups) - 1)
    ref = dp.simulate_collectives_by_flows(SimContext(topo, 0.0), kind, groups)
    got = dp._simulate_collectives(SimContext(topo, 0.0), kind, groups)
    for value in (ref, got):
        assert lower * (1 - 1e-9) <= value <= upper
