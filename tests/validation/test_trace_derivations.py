"""The parameters derived from DeepSeek's trace are what the simulator uses (one source: the code's
defaults; this reruns the derivation, so a changed derivation or default is noticed)."""

from __future__ import annotations

import pytest

from calibrate.trace_calibration import (
    GEMM_KERNELS,
    derive_channel_rates,
    derive_comm_slowdowns,
    derive_compute_slowdowns,
    derive_launch_and_notify,
    match_ops,
    read_annotations,
    trace_layer_ops,
)
from sim.chunk.overheads import ChunkParams
from sim.moe.deepep import DERIVED_RDMA_GBps, KernelSpec
from tests.conftest import SHARED

TRACE = SHARED / "reference" / "deepseek-v3" / "profile-data-train.json"
pytestmark = pytest.mark.needs_shared(TRACE)


def test_every_kernel_is_matched_to_an_op_of_the_layer_model() -> None:
    """Per annotation, the layer model's ops launch exactly the trace's kernels, GEMM ops land on GEMM
    kernels and attention on the attention kernels, in every one of the 4 layers."""
    ops = trace_layer_ops()
    for ann in read_annotations(TRACE):
        assert sum(op.kernels for op in ops[ann.name]) == len(ann.kernels), ann.name
    matched = match_ops(TRACE)
    assert len({m.layer for m in matched}) == 4
    for m in matched:
        last = m.kernels[-1].name
        if m.op.kind == "gemm":
            assert any(g in last for g in GEMM_KERNELS), (m.op.name, last)
        if m.op.kind == "attention":
            assert "flash" in last or "cutlass" in last, (m.op.name, last)
        if m.op.kind == "comm":
            assert "internode" in last and m.kernels[0].stream == 27


def test_channel_rates_and_comm_slowdowns() -> None:
    rates = derive_channel_rates(TRACE)
    for phase, rate in DERIVED_RDMA_GBps.items():
        assert rates[phase] == pytest.approx(rate, abs=0.006), phase
    assert KernelSpec().rdma_channel_GBps == DERIVED_RDMA_GBps
    slow = derive_comm_slowdowns(TRACE)
    for phase, value in ChunkParams().comm_beside_compute.items():
        assert slow[phase] == pytest.approx(value, abs=0.006), phase


def test_compute_slowdowns_launch_gap_and_notify_wait() -> None:
    p = ChunkParams()
    slow = derive_compute_slowdowns(TRACE)
    assert slow["gemm"] == pytest.approx(p.gemm_beside_comm, abs=0.006)
    assert slow["memory"] == pytest.approx(p.memory_beside_comm, abs=0.006)
    other = derive_launch_and_notify(TRACE)
    assert other["launch_gap_us"] == pytest.approx(p.launch_gap_us, abs=0.06)
    assert other["notify_wait_us"] == pytest.approx(p.notify_wait_us, abs=1.0)
