"""Bytes per node of a training step: every byte the step's traffic matrices, sends and collectives
move is counted once, on the node that sends it, over the medium its route takes."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config import default_scenario_path, load_scenario
from sim.run import TrainingRun, simulate_training
from sim.step.traffic_bytes import NodeBytes, node_bytes
from sim.step.zero1 import DpModel


@pytest.fixture(scope="module")
def run() -> TrainingRun:
    return simulate_training(load_scenario(default_scenario_path()))


@pytest.fixture(scope="module")
def counted(run: TrainingRun) -> NodeBytes:
    return node_bytes(run.step)


def test_ep_bytes_are_the_traffic_matrices_times_layers_and_microbatches(run: TrainingRun, counted: NodeBytes) -> None:
    inp = run.step.spec.inputs
    model, lay = inp.model, inp.layout
    moe_layers = sum(model.is_moe(i) for i in range(model.n_layers)) + model.mtp_depth  # every route holds each once
    traffic = run.step.pipelines[0].source.routing.traffic((model.n_layers,), (0, 0, 0), 0)[model.n_layers]
    per_token = 2 * traffic.bytes_per_token("dispatch") + 2 * traffic.bytes_per_token("combine")
    instances = lay.microbatches * moe_layers * lay.ep_groups  # (micro-batch, layer) pairs x EP groups of a rank
    assert counted.ib["ep"].sum() == pytest.approx(traffic.ib.sum() * per_token * instances, rel=1e-12)
    assert counted.nvlink["ep"].sum() == pytest.approx(traffic.nvlink.sum() * per_token * instances, rel=1e-12)
    assert counted.ib["ep"].sum() > 0 and counted.nvlink["ep"].sum() > 0


def test_pipeline_sends_cross_every_boundary_twice_per_microbatch(run: TrainingRun, counted: NodeBytes) -> None:
    lay = run.step.spec.inputs.layout
    sched = run.step.spec.schedule
    boundaries = len(sched.routes[0]) - 1  # DualPipe: both routes visit 16 ranks in turn
    hidden = lay.tokens * run.scenario.model.dim * 2  # BF16 hidden states of one micro-batch
    expected = hidden * lay.gpus_per_rank * 2 * lay.microbatches * boundaries  # forward + backward
    assert counted.ib["pp"].sum() == pytest.approx(expected, rel=1e-12)
    assert counted.nvlink["pp"].sum() == 0.0  # ranks hold disjoint nodes
    # a rank at either end of both routes sends once per micro-batch each way; middle ranks twice
    per_rank = counted.ib["pp"].sum(axis=1)
    assert per_rank[0] == pytest.approx(per_rank[lay.devices // 2] / 2, rel=1e-12)


def test_dp_bytes_follow_the_nccl_ring_volume(run: TrainingRun, counted: NodeBytes) -> None:
    """Reduce-scatter and all-gather move (n-1) x size in a group of n (ring or hierarchical alike)."""
    step = run.step
    inp = step.spec.inputs
    model = DpModel(step.spec.dp, inp.model, inp.layout, step.spec.schedule, step.spec.topology, inp.cost.memory_time)
    expected = 0.0
    seen = set()
    for phase in step.dp:
        if phase.rset.ranks in seen:
            continue
        seen.add(phase.rset.ranks)
        for kind in ("reducescatter", "allgather"):
            expected += sum((len(g) - 1) * size for g, size, _ in model.groups(kind, phase.rset, phase.params))
    assert counted.ib["dp"].sum() + counted.nvlink["dp"].sum() == pytest.approx(expected, rel=1e-9)
    assert counted.ib["dp"].sum() > 0 and counted.nvlink["dp"].sum() > 0


def test_layout_and_symmetry(run: TrainingRun, counted: NodeBytes) -> None:
    lay = run.step.spec.inputs.layout
    assert counted.ib["ep"].shape == (lay.devices, lay.gpus_per_rank // lay.gpus_per_node)
    total = counted.total("ib")
    # balanced routing: every node of a rank alike; DualPipe's mirror ranks d and 15-d hold the same layers
    assert np.allclose(total, total[:, :1])
    assert np.allclose(total, total[::-1])
    assert total[0, 0] < total[lay.devices // 2, 0]  # rank 0 holds the dense layers: fewer all-to-alls
