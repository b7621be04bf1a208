"""Transformer Engine's ring-exchange TP overlap computes a GEMM in TP row chunks
(sim.chunk.timer.ring_exchange_gemms; Megatron-Bridge's FP8 H100 userbuffers configurations name which
GEMMs: qkv_fprop, proj_fprop, fc1_fprop, fc2_fprop, proj_dgrad and fc2_dgrad ring exchange; qkv_dgrad,
fc1_dgrad and the weight gradients bulk). Exact conditions tested: with ``tp_comm_overlap`` and TP 4 the
six ring GEMMs of a dense layer (the twin's qkv, o_proj, ffn_up, ffn_down, o_proj.dgrad, ffn_down.dgrad)
take 4 x the cost model's time of m/4 rows and every other GEMM its whole time; without overlap, or
with TP 1, every GEMM its whole time; chunks of a GEMM are never faster than the whole (the cost model's
efficiency does not grow as rows shrink, for these shapes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.timer import ChunkResult, ring_exchange_gemms
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile
from sim.model.catalog import load_model
from sim.model.layer import LayerWork, layer_ops
from tests.conftest import REPO
from tests.unit.chunk.test_comm_overlap import TOKENS, TP, _stage
from tests.unit.chunk.test_comm_overlap import timer as timer

RING = {"qkv", "o_proj", "ffn_up", "ffn_down", "o_proj.dgrad", "ffn_down.dgrad"}  # TE's six ring GEMMs


def test_the_ring_gemms_are_the_six_of_the_configurations() -> None:
    s = load_model("llama-3.1-8b")
    lo = layer_ops(s, 4, LayerWork(TOKENS, (), TP))
    stage = replace(_stage(True), spec=s)
    named = set()
    for ops in lo.annotations.values():
        named |= {ops[i].name for i in ring_exchange_gemms(ops, stage)}
    assert named == RING
    assert not any(ring_exchange_gemms(ops, _stage(False)) for ops in lo.annotations.values())


def _gemms(result: ChunkResult) -> dict[str, float]:
    return {t.name: t.work for t in result.tasks if t.kind == "gemm"}


@pytest.mark.parametrize("what", ["F", "IW"])
def test_ring_gemms_take_tp_chunks_and_the_rest_their_whole_time(timer, what: str) -> None:  # type: ignore[no-untyped-def]
    coster: OpCoster = timer.coster
    ops = {op.name: op for lo in _stage(True).layers for o in lo.annotations.values() for op in o}
    for overlap in (False, True):
        st = _stage(overlap)
        got = _gemms(timer.forward(st) if what == "F" else timer.backward(st, what))
        assert got
        for name, work in got.items():
            op = ops[name]
            whole = coster.kernel_time(op)
            if overlap and name in RING:
                chunk = coster.kernel_time(replace(op, m=op.m // TP))
                assert work == pytest.approx(TP * chunk, rel=1e-12)
                assert work >= whole * (1 - 1e-12)  # smaller GEMMs are no more efficient
            else:
                assert work == pytest.approx(whole, rel=1e-12)


def test_an_h100_fp8_ring_gemm_of_a_70b_layer_pays_for_its_chunks() -> None:
    """Llama 3 70B at TP 4, FP8 on the measured H100: each ring GEMM is 4 GEMMs of 2,048 rows."""
    cost = CostModel(load_profile(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"))
    coster = OpCoster(cost, cost.all_sms, ChunkParams())
    s = load_model("llama-3.1-70b")  # (Llama 3 70B's shapes)
    assert s.dtype == "fp8"
    lo = layer_ops(s, 1, LayerWork(8192, (), 4))
    for ops in lo.annotations.values():
        for op in ops:
            if op.kind == "gemm" and op.name in RING:
                assert coster.in_chunks(op, 4) > coster.alone(op)
