"""Training FLOPs per token, counted from the simulator's own ops, against ISCA'25 Table 2
("Insights into DeepSeek-V3", arXiv 2505.09343): ~250 GFLOP per token for DeepSeek-V3 training at a
4K context. Tolerance 5%."""

from __future__ import annotations

import pytest

from sim.model.flops import training_flops_per_token
from sim.model.spec import DEEPSEEK_V3

ISCA_TABLE2_GFLOP = 250.0


def test_deepseek_v3_training_flops_match_isca_table_2() -> None:
    causal = training_flops_per_token(DEEPSEEK_V3, causal=True)
    print({k: round(v / 1e9, 2) for k, v in causal.to_dict().items()})
    assert causal.main / 1e9 == pytest.approx(ISCA_TABLE2_GFLOP, rel=0.05)
    assert causal.total / 1e9 == pytest.approx(ISCA_TABLE2_GFLOP, rel=0.05)  # with the MTP module too


def test_attention_counted_causal_and_not() -> None:
    causal = training_flops_per_token(DEEPSEEK_V3, causal=True)
    full = training_flops_per_token(DEEPSEEK_V3, causal=False)
    assert full.attention_core == pytest.approx(2 * causal.attention_core)
    # per layer and token, forward: 2 x 128 heads x 4096 x (192 + 128), x3 for training; 61 layers
    assert full.attention_core == pytest.approx(3 * 2 * 128 * 4096 * (192 + 128) * 61)
    # the routed experts: 8 x 3 matmuls of 7168 x 4096 and 2048 x 7168 per MoE token, plus the shared one
    experts = 3 * 2 * (7168 * 4096 + 2048 * 7168) * (8 + 1) * 58
    assert causal.experts == pytest.approx(experts)
