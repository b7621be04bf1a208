"""NVIDIA's measured Megatron-Bridge runs on H100 (the performance summary's DGX-H100 tables,
NVIDIA-NeMo/Megatron-Bridge docs/performance-summary-archive.md): the scenarios that reproduce them
(scenarios/validation/) set what the recipes publish, and the twin's Megatron FLOP count is NVIDIA's.

What is checked here holds exactly: the published model TFLOP/s per GPU is Megatron's FLOPs per token
(``num_floating_point_operations``) times the published tokens/s per GPU, so their ratio must be the
twin's count of the same convention (:mod:`sim.model.megatron_flops`) to the published figures'
rounding (integers: +-0.5 on each). The step-time predictions are compared in docs/models.md ("Against
NVIDIA's measured runs"), not asserted: they are predictions with their errors, not fits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import load_scenario
from sim.model.megatron_flops import megatron_flops_per_token

VALIDATION = Path(__file__).resolve().parents[2] / "scenarios" / "validation"


def _rounding(tflops: float, tokens: float) -> float:
    """Relative uncertainty of tflops / tokens when both are published as integers."""
    return 0.5 / tflops + 0.5 / tokens


@pytest.mark.parametrize(
    ("file", "tflops", "tokens"),
    [
        ("nvidia-qwen3-235b-h100-256.yaml", 233, 1575),  # Qwen3-235B-A22B, 256 H100, FP8-CS (NeMo 25.11)
        ("nvidia-llama3-70b-h100-64.yaml", 728, 1621),  # Llama 3 70B, 64 H100, FP8 (26.02); TP 4 pads to 128 x 4
        ("nvidia-llama31-405b-h100-1024.yaml", 784, 311),  # Llama 3.1 405B, 1,024 H100 (26.02); to 128 x 8 rows
    ],
)
def test_flops_per_token_are_nvidias_to_the_published_rounding(file: str, tflops: int, tokens: int) -> None:
    """Published model TFLOP/s over published tokens/s per GPU is the twin's Megatron count (the vocabulary
    padded to 128 x TP), to the two figures' rounding."""
    sc = load_scenario(VALIDATION / file)
    assert sc.training is not None
    ours = megatron_flops_per_token(sc.model, tp=sc.training.tp)
    assert ours == pytest.approx(tflops * 1e12 / tokens, rel=_rounding(tflops, tokens))


@pytest.mark.xfail(
    strict=True,
    reason="known gap: 260.6 GFLOP a token published against the twin's 260.0 (0.23%, the rounding allows "
    "0.19%); which Megatron version's formula (MTP, MLA terms) the 25.09 container counted is not published",
)
def test_deepseek_v3_flops_per_token_are_nvidias_to_the_published_rounding() -> None:
    """DeepSeek-V3, 1,024 H100, FP8 (NeMo 25.09, dropless): 338 model TFLOP/s at 1,297 tokens/s per GPU."""
    sc = load_scenario(VALIDATION / "nvidia-dsv3-h100-1024.yaml")
    assert sc.training is not None
    ours = megatron_flops_per_token(sc.model, tp=sc.training.tp)
    assert ours == pytest.approx(338e12 / 1297, rel=_rounding(338, 1297))


def test_the_validation_scenarios_set_what_the_recipes_publish() -> None:
    """llama3_70b_pretrain_64gpu_h100_fp8cs: TP4 PP8 VP5, TP overlap, its layout;
    deepseek_v3_pretrain_1024gpu_h100: TP2 PP8 VP4 EP64, 8,192 sequences of 4,096, the stage layout
    "Et|(tt|)*30mL" (layer 0 with the embedding, two layers a stage, the MTP module and the loss alone
    on the last), the all-to-alls overlapped (25.09's H100 setting); qwen3_235b_a22b_pretrain_256gpu_h100:
    TP2 PP8 VP4 EP32, 2,048 sequences, NCCL all-to-all overlapped, no recompute. Both force-balance the
    routing: no notify wait from rank skew."""
    ds = load_scenario(VALIDATION / "nvidia-dsv3-h100-1024.yaml")
    assert ds.training is not None and ds.pipeline is not None
    assert (ds.training.tp, ds.pipeline.pp, ds.pipeline.virtual_stages, ds.workload.ep) == (2, 8, 4, 64)
    assert ds.training.global_batch == 8192 and ds.model.seq_len == 4096
    assert ds.training.layers_per_stage == [1, *[2] * 30, 0]
    qw = load_scenario(VALIDATION / "nvidia-qwen3-235b-h100-256.yaml")
    assert qw.training is not None and qw.pipeline is not None
    assert (qw.training.tp, qw.pipeline.pp, qw.pipeline.virtual_stages, qw.workload.ep) == (2, 8, 4, 32)
    assert qw.training.global_batch == 2048 and qw.training.recompute == "none"
    assert qw.workload.dispatcher == "alltoall" and qw.pipeline.schedules == ["interleaved-1f1b-overlap"]
    for sc in (ds, qw):
        assert sc.workload.routing == "balanced" and sc.workload.notify_wait_us == 0
    assert ds.comm.dispatch_format == "bf16"  # Megatron's DeepEP path sends the BF16 hidden states
    # 25.09's performance script on H100: A2A_1F1B, overlap_moe_expert_parallel_comm (Megatron-Bridge 684a686)
    assert ds.pipeline.schedules == ["interleaved-1f1b-overlap"]
    ll = load_scenario(VALIDATION / "nvidia-llama3-70b-h100-64.yaml")
    assert ll.training is not None and ll.pipeline is not None
    assert (ll.training.tp, ll.pipeline.pp, ll.pipeline.virtual_stages) == (4, 8, 5)
    assert ll.training.global_batch == 256 and ll.model.seq_len == 8192 and ll.training.tp_comm_overlap
    assert ll.training.layers_per_stage == [2, *[2] * 34, 3, 2, 2, 2, 1]  # "Et*2|(t*2|)*34,t*3|(t*2|)*3,tL"
    big = load_scenario(VALIDATION / "nvidia-llama31-405b-h100-1024.yaml")
    assert big.training is not None and big.pipeline is not None
    assert (big.training.tp, big.training.cp, big.pipeline.pp, big.pipeline.virtual_stages) == (8, 2, 8, 8)
    assert big.training.global_batch == 1536 and big.training.cp_comm == "p2p" and big.training.tp_comm_overlap
    assert big.training.layers_per_stage == [1, *[2] * 62, 1]  # the embedding and the loss count as layers
    for sc in (qw, ll, big):  # FP8 with current scaling (FP8-CS); DeepSeek-V3's run block-scaled, as the twin's fp8
        assert sc.model.dtype == "fp8" and sc.compute.fp8_scaling == "current"
    assert ds.model.dtype == "fp8" and ds.compute.fp8_scaling == "software"
