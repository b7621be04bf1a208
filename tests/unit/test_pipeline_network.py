"""Pipeline stage-to-stage transfers on the cluster network (flow level) instead of the simple link."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.network.spec import load_cluster
from sim.network.topology import build_topology
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, NetworkP2P
from sim.results import metrics
from sim.run import run_schedule, simulate

REPO = Path(__file__).resolve().parents[2]
MPFT = REPO / "topologies" / "deepseek-v3-mpft.yaml"


@pytest.mark.parametrize("pp", [2, 4, 8])
def test_one_microbatch_crosses_the_fabric_with_alpha_beta_cost(pp: int) -> None:
    topo = build_topology(load_cluster(MPFT))
    nbytes = 58_720_256
    placement = tuple(8 * d for d in range(pp))  # GPU 0 of nodes 0..PP-1: same plane, same leaf
    run = run_schedule("1f1b", pp, 1, OpTimes.uniform(pp, 1e-3, 2e-3, 1e-3), NetworkP2P(topo, placement, nbytes, 0.0))
    hop = 2.8e-6 + nbytes / 50e9  # ISCA Table 5 same-leaf latency + bytes over one 400G NIC
    assert metrics(run).step_time == pytest.approx(pp * 3e-3 + 2 * (pp - 1) * hop, rel=1e-9)
    # the simple link model with the same figures agrees
    simple = run_schedule("1f1b", pp, 1, OpTimes.uniform(pp, 1e-3, 2e-3, 1e-3), P2P(nbytes, 50e9, 2.8e-6))
    assert metrics(simple).step_time == pytest.approx(metrics(run).step_time, rel=1e-9)


def test_placement_changes_the_step() -> None:
    """Where the pipeline devices sit matters, which the simple link model cannot see: four devices in
    one node send over NVLink (160 GB/s) and finish well before four devices on four nodes, whose
    200 MB sends cross one 50 GB/s NIC each (DualPipe, sends in both directions)."""
    topo = build_topology(load_cluster(MPFT))
    times = OpTimes.uniform(4, 1e-3, 2e-3, 1e-3, 3e-3)
    nodes = metrics(run_schedule("dualpipe", 4, 8, times, NetworkP2P(topo, (0, 8, 16, 24), 200e6, 0.0))).step_time
    node = metrics(run_schedule("dualpipe", 4, 8, times, NetworkP2P(topo, (0, 1, 2, 3), 200e6, 0.0))).step_time
    assert node < 0.6 * nodes


def _scenario(tmp_path: Path, **cluster: object) -> Path:
    data = {
        "name": "net",
        "pipeline": {"pp": 4, "microbatches": 8, "schedules": ["1f1b", "dualpipev"]},
        "ops": {"forward_ms": 1, "backward_ms": 2, "weight_ms": 1},
        "p2p": {"activation_bytes": 1e6},
        "cluster": {"topology": str(MPFT), **cluster},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_scenario_with_cluster_runs(tmp_path: Path) -> None:
    sc = load_scenario(_scenario(tmp_path))
    assert sc.cluster is not None and sc.cluster.placement(4) == (0, 8, 16, 24)
    result = simulate(sc)
    assert [m.name for m in result.metrics] == ["1f1b", "dualpipev"]
    assert all(len(r.recorder.transfers) > 0 for r in result.runs)


@pytest.mark.parametrize(
    "cluster,p2p,expected",
    [
        ({"device_gpus": [0, 0, 1, 2]}, {}, "cluster.device_gpus: need 4 distinct GPUs"),
        ({"device_gpus": [0, 1, 2, 5000]}, {}, "cluster.device_gpus: need 4 distinct GPUs in 0..2047"),
        ({}, {"bandwidth_GBps": 10}, "p2p.bandwidth_GBps: not used with a cluster"),
        # the scenario file and its key are named (the message named the missing file alone)
        ({"topology": "missing.yaml"}, {}, "s.yaml: cluster.topology: no such topology file: missing.yaml"),
    ],
)
def test_cluster_errors(tmp_path: Path, cluster: dict, p2p: dict, expected: str) -> None:
    path = _scenario(tmp_path, **cluster)
    data = yaml.safe_load(path.read_text())
    data["p2p"].update(p2p)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
