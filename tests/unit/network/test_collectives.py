"""Collectives on the flow network: nccl-tests definitions and closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.errors import ScenarioError
from sim.network.collectives import bus_factor, run_collective
from tests.unit.network.conftest import ZERO_LATENCY, make

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


@pytest.mark.parametrize("kind", ["allreduce", "allgather", "reducescatter"])
def test_ring_bus_bandwidth_equals_nvlink_in_one_node(kind: str) -> None:
    one = make(1, "none", latency={"nvlink_hop_us": 0.0})  # (the other latencies: nothing leaves the node)
    r = run_collective(one, kind, 8, 1 << 30, completion_rtol=0.0)
    assert r.busbw_Bps == pytest.approx(160e9, rel=1e-9)
    assert r.max_link_utilization == pytest.approx(1.0, rel=1e-9)


def test_latency_lowers_small_message_bandwidth() -> None:
    one = make(1, "none")
    small, big = (run_collective(one, "allreduce", 8, s, completion_rtol=0.0) for s in (8 << 10, 1 << 30))
    assert small.busbw_Bps < 0.2 * big.busbw_Bps
    # alpha-beta: 2(n-1) steps, each one NVLink round (2 hops x 1.665 us) plus chunk / bandwidth
    assert small.time_s == pytest.approx(14 * (3.33e-6 + (8 << 10) / 8 / 160e9), rel=1e-9)


def test_alltoall_closed_form_and_bus_factor() -> None:
    topo = make(8, "mpft", latency=ZERO_LATENCY)
    size = 64e6
    r = run_collective(topo, "alltoall", 64, size, completion_rtol=0.0)
    assert r.time_s == pytest.approx(56 / 64 * size / 50e9)
    assert r.busbw_Bps == pytest.approx(r.algbw_Bps * 63 / 64)
    assert bus_factor("allreduce", 4) == 1.5 and bus_factor("sendrecv", 4) == 1.0


def test_hierarchical_allreduce_moves_the_ring_volume_per_phase() -> None:
    topo = make(4, "mpft", latency=ZERO_LATENCY)
    size = 256e6
    r = run_collective(topo, "allreduce", 32, size, algorithm="hierarchical", completion_rtol=0.0)
    # intra-node reduce-scatter and all-gather: 7 steps of S/8 each at 160 GB/s;
    # inter-node all-reduce per local index: 2*(4-1) steps of S/32 at 50 GB/s
    expected = 2 * 7 * (size / 8) / 160e9 + 6 * (size / 32) / 50e9
    assert r.time_s == pytest.approx(expected, rel=1e-9)


def test_collective_input_errors() -> None:
    topo = make(2, "mpft")
    with pytest.raises(ScenarioError, match="unknown collective 'broadcast'"):
        run_collective(topo, "broadcast", 4, 1e6)
    with pytest.raises(ScenarioError, match=r"need 2\.\.16 GPUs"):
        run_collective(topo, "allreduce", 64, 1e6)
    with pytest.raises(ScenarioError, match="whole nodes"):
        run_collective(topo, "allreduce", 12, 1e6, algorithm="hierarchical")
    for kind in ("alltoall", "sendrecv"):  # one algorithm: the flag was ignored, yet reported as used
        with pytest.raises(ScenarioError, match=f"hierarchical is for allgather, reducescatter, allreduce; {kind}"):
            run_collective(topo, kind, 16, 1e6, algorithm="hierarchical")
    assert run_collective(topo, "allreduce", np.array([3, 9]), 1e6).ranks == 2


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    cap = capsys.readouterr()
    return int(info.value.code or 0), cap.out, cap.err


def test_cli_topology_show_and_collective(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["topology", "show", str(TOPOLOGIES / "isca-mpft-16384.yaml"), "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and set(data) >= {"gpus", "nodes", "switches", "switch_links", "nic_links", "bisection_GBps"}
    assert (data["switches"], data["switch_links"]) == (768, 16384)
    args = ["collective", "allreduce", "--cluster", str(TOPOLOGIES / "h800-node.yaml"), "--gpus", "8"]
    code, out, _ = _cli([*args, "--size-bytes", "1e9", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and set(data) >= {"time_s", "algbw_GBps", "busbw_GBps", "max_link_utilization"}
    assert 150 < data["busbw_GBps"] <= 160
    code, _, err = _cli(
        ["collective", "allreduce", "--cluster", "nope.yaml", "--gpus", "8", "--size-bytes", "1"], capsys
    )
    assert code == 2 and err.strip() == "error: nope.yaml: no such topology file"


@pytest.mark.parametrize("kind", ["allgather", "reducescatter", "allreduce", "alltoall", "sendrecv"])
@pytest.mark.parametrize("n", [2, 3, 8, 16])
def test_ring_flows_of_many_groups_equal_each_groups_flows_in_order(kind: str, n: int) -> None:
    """ring_flows over a matrix of groups gives collective_flows of each row, concatenated: the same
    sources, destinations and bytes in the same order (the ZeRO-1 coflows sum them per link in that
    order). n = 8 and 16 are whole nodes on rows that fill them (NCCL's per-index rings, row by row);
    2 and 3 take the one-ring path at once; the rows are scattered over nodes as experts' replicas are."""
    from sim.network.collectives import collective_flows, ring_flows

    topo = make(8, "mpft")
    rng = np.random.default_rng(n)
    if n % 8:
        rows = np.stack([rng.choice(topo.gpus, n, replace=False) for _ in range(5)])
    else:
        rows = np.stack([(rng.choice(8, n // 8, replace=False)[:, None] * 8 + np.arange(8)).ravel() for _ in range(5)])
    got = ring_flows(topo, kind, rows, 3.0e6)
    each = [collective_flows(topo, kind, r, 3.0e6, "ring") for r in rows]
    want = [np.concatenate(x) for x in zip(*each, strict=True)]
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert [len(x) for x in ring_flows(topo, kind, rows[:0], 1.0)] == [0, 0, 0]
