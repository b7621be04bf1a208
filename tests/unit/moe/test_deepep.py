"""The DeepEP-style kernel model: SM caps, link bounds, notify and stragglers, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware.gpu import SmSplit
from sim.moe.alltoall import route_layer, run_alltoall, sm_sweep
from sim.moe.deepep import KernelSpec, simulate_phase
from sim.moe.gating import Gating
from sim.moe.spec import MoESpec
from sim.network.spec import ClusterSpec
from sim.network.topology import build_topology

ZERO = {"nvlink_hop_us": 0.0, "pcie_nic_us": 0.0, "nic_leaf_us": 0.0, "switch_hop_us": 0.0}


def _topo(nodes: int, latency: dict | None = None):  # type: ignore[no-untyped-def]
    kind = "none" if nodes == 1 else "mpft"
    return build_topology(
        ClusterSpec.model_validate({"name": "t", "nodes": nodes, "fabric": {"kind": kind}, "latency": latency or {}})
    )


def test_ib_bound_dispatch_matches_the_closed_form() -> None:
    """Balanced EP64, SMs unconstrained: each NIC carries its GPU's remote tokens at 50 GB/s."""
    spec = MoESpec()
    traffic = route_layer(spec, 1024, "balanced", 0)
    kernel = KernelSpec(comm_sms=0, coprocessor=True, notify_bytes=0.0, completion_rtol=0.0)
    r = simulate_phase(_topo(8, ZERO), traffic, kernel, "dispatch")
    ib_bytes = 1024 * 4 * 7 / 8 * 7168 * (1 + 4 / 128)
    assert r.time_s == pytest.approx(ib_bytes / 50e9, rel=1e-9)
    assert r.deepep_GBps == pytest.approx(1024 * 4 * 7168 * (1 + 4 / 128) / r.time_s / 1e9)


def test_few_sms_cap_the_bandwidth_linearly_until_the_links_saturate() -> None:
    spec = MoESpec()
    traffic = route_layer(spec, 1024, "balanced", 0)
    results = sm_sweep(_topo(8), traffic, KernelSpec(), [4, 8, 20, 24, 32])
    bw = [r.dispatch.deepep_GBps for r in results]
    assert bw[1] == pytest.approx(2 * bw[0], rel=0.02)  # SM-bound: doubling channels doubles bandwidth
    # with the per-channel rates derived from DeepSeek's trace, 20 SMs drive 10 x 4.46 = 44.6 GB/s of
    # IB, just short of the 50 GB/s NIC: 24 SMs saturate it, and more SMs gain nothing
    assert bw[2] < bw[3]
    assert bw[4] == pytest.approx(bw[3], rel=1e-6)
    assert [r.compute_sms for r in results] == [128, 124, 112, 108, 100]


def test_single_node_reports_nvlink_bandwidth_and_stragglers_delay_everyone() -> None:
    spec = MoESpec(ep=8)
    traffic = route_layer(spec, 2048, "balanced", 0)
    topo = _topo(1)
    fast = simulate_phase(topo, traffic, KernelSpec(), "dispatch")
    assert fast.ib_bytes_per_gpu == 0 and 100 < fast.deepep_GBps <= 160
    late = simulate_phase(topo, traffic, KernelSpec(), "dispatch", rank_ready_s=np.r_[np.zeros(7), 1e-3])
    assert late.time_s == pytest.approx(fast.time_s + 1e-3)


def test_notify_grows_with_ep_size() -> None:
    small = simulate_phase(_topo(2), route_layer(MoESpec(ep=16), 64, "balanced", 0), KernelSpec(notify_bytes=4096.0))
    big = simulate_phase(_topo(8), route_layer(MoESpec(ep=64), 64, "balanced", 0), KernelSpec(notify_bytes=4096.0))
    assert big.notify_s > small.notify_s


def test_coprocessor_and_sm_split() -> None:
    assert SmSplit(comm_sms=20).compute_sms == 112
    assert SmSplit(comm_sms=0, coprocessor=True).gemm_throughput_fraction() == 1.0
    with pytest.raises(ScenarioError, match="coprocessor"):
        KernelSpec(comm_sms=0)
    with pytest.raises(ScenarioError, match="even"):
        KernelSpec(comm_sms=7)
    r = run_alltoall(_topo(2), route_layer(MoESpec(ep=16), 256, "random", 1), KernelSpec(comm_sms=0, coprocessor=True))
    assert r.compute_sms == 132


def test_cli_alltoall_json_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["alltoall", "--ep", "16", "--tokens", "512", "--sms", "20", "--routing", "random", "--format", "json"]
    with pytest.raises(SystemExit) as info:
        main(args)
    data = json.loads(capsys.readouterr().out)
    assert info.value.code == 0
    for phase in ("dispatch", "combine"):
        assert set(data[phase]) >= {"time_s", "ib_bytes_per_gpu", "nvlink_bytes_per_gpu", "deepep_GBps"}
    assert set(data["nodes_per_token"]) == {"mean", "max"} and data["nodes_per_token"]["max"] <= 2
    with pytest.raises(SystemExit) as info:
        main(["alltoall", "--ep", "64", "--nodes", "2"])
    assert info.value.code == 2 and "error: --ep: EP 64 is larger than the cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["alltoall", "--sms", "4,x"])
    assert info.value.code == 2 and "--sms" in capsys.readouterr().err


def test_cli_balance_converges_and_skew_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["balance", "--steps", "40", "--gamma", "0.01", "--tokens-per-step", "2048", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    ratios = data["max_over_mean"]
    assert info.value.code == 0 and len(ratios) == 40 and ratios[0] > 5 and min(ratios[-5:]) < 3
    # the run's inputs beside its figures (the EP and node limit shape the node-limited selection)
    assert {k: data[k] for k in ("gamma", "tokens_per_step", "ep", "node_limit", "seed")} == {
        "gamma": 0.01,
        "tokens_per_step": 2048,
        "ep": 64,
        "node_limit": 4,
        "seed": 0,
    }
    mild = route_layer(MoESpec(ep=16), 512, Gating("skewed", alpha=0.2), 0).tokens_per_expert
    steep = route_layer(MoESpec(ep=16), 512, Gating("skewed", alpha=2.0), 0).tokens_per_expert
    assert steep.max() / steep.mean() > mild.max() / mild.mean()
    flat = route_layer(MoESpec(ep=16), 512, Gating("skewed", dirichlet=1000.0), 0).tokens_per_expert
    assert flat.max() / flat.mean() < 2


def test_cli_alltoall_gemm_left_follows_a_calibrated_profile(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from sim.hardware.costmodel import CostModel
    from sim.hardware.profile import load_profile
    from tests.conftest import write_sm_sweep_profile

    prof = write_sm_sweep_profile(tmp_path / "sweep.json")
    args = ["alltoall", "--ep", "8", "--tokens", "64", "--sms", "20,40", "--format", "json"]
    with pytest.raises(SystemExit):
        main([*args, "--profile", str(prof)])
    sweep = json.loads(capsys.readouterr().out)["sweep"]
    model = CostModel(load_profile(prof))
    assert [r["gemm_throughput_fraction"] for r in sweep] == pytest.approx(
        [model.sm_throughput(112), model.sm_throughput(92)]
    )
    assert sweep[1]["gemm_throughput_fraction"] > 92 / 132  # measured: better than linear here
    small = write_sm_sweep_profile(tmp_path / "small.json", sms_total=64)  # a GPU of 64 SMs: its SMs are split
    with pytest.raises(SystemExit) as info:
        main([*args, "--profile", str(small)])
    assert info.value.code == 0
    assert [r["compute_sms"] for r in json.loads(capsys.readouterr().out)["sweep"]] == [44, 24]
    with pytest.raises(SystemExit) as info:
        main([*args[:-4], "--sms", "64", "--profile", str(small)])
    assert info.value.code == 2 and "--sms: must be in 0..63, got 64" in capsys.readouterr().err


def test_cli_alltoall_splits_the_profiles_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    """With a B200 profile (148 SMs) the SMs split are the B200's: 140 for communication is accepted
    (8 left to compute) and 20 leaves 128 of 148 (it was refused as a profile not for the H800, and
    --sms capped at 131)."""
    from pathlib import Path

    b200 = str(Path(__file__).resolve().parents[3] / "calibrate" / "profiles" / "b200-datasheet.json")
    args = ["alltoall", "--ep", "16", "--tokens", "256", "--profile", b200, "--format", "json"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--sms", "20,140"])
    assert info.value.code == 0
    sweep = json.loads(capsys.readouterr().out)["sweep"]
    assert [r["compute_sms"] for r in sweep] == [128, 8]
