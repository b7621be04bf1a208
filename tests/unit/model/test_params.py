"""Parameter counts: closed forms per layer, stage sums, EP split, device unions."""

from __future__ import annotations

import pytest

from sim.model.params import (
    device_params,
    embedding_params,
    head_params,
    layer_params,
    model_params,
    mtp_params,
    pipeline_stage_params,
    stage_params,
)
from sim.model.spec import DEEPSEEK_V3, ModelSpec

S = DEEPSEEK_V3


def test_layer_closed_forms() -> None:
    h = 7168
    mla = h * 1536 + 1536 * 128 * 192 + h * (512 + 64) + 512 * 128 * 256 + 128 * 128 * h
    dense = layer_params(S, 0)
    assert dense.attention == mla == 187_105_280
    assert dense.norms == 2 * h + 1536 + 512
    assert dense.dense_ffn == 3 * h * 18432
    assert dense.routed_experts == 0 and dense.activated(8) == dense.total
    moe = layer_params(S, 3)
    assert moe.per_expert == 3 * h * 2048
    assert moe.routed_experts == 256 * moe.per_expert
    assert moe.router == 256 * h + 256
    assert moe.activated(8) == moe.non_expert + 8 * moe.per_expert
    assert layer_params(S, S.n_layers) == moe  # the MTP block is an MoE layer


def test_model_total_is_the_sum_of_its_parts() -> None:
    layers = sum(layer_params(S, i).total for i in range(S.n_layers))
    assert model_params(S).main == embedding_params(S) + layers + head_params(S)


@pytest.mark.parametrize("pp", [1, 2, 4, 16])
@pytest.mark.parametrize("ep", [1, 8, 64])
def test_stage_sums(pp: int, ep: int) -> None:
    """Over a 1F1B layout the stages hold the model, the MTP module and one extra embedding copy
    (the last stage's, for the MTP module) unless the first and last stage coincide."""
    stages = pipeline_stage_params(S, pp, ep)
    total = sum(p.non_expert + p.expert * ep for p in stages)
    extra = embedding_params(S) if pp > 1 else 0
    assert total == model_params(S).main + mtp_params(S) + extra


def test_dualpipe_devices_hold_two_copies_without_duplicates() -> None:
    pp, ep = 16, 64
    devices = [device_params(S, [r, pp - 1 - r], pp=pp, ep=ep) for r in range(pp)]
    total = sum(p.non_expert + p.expert * ep for p in devices)
    assert total == 2 * (model_params(S).main + mtp_params(S))
    # rank 0 holds the embedding once although stage 0 and the MTP module both use it
    first, last = pipeline_stage_params(S, pp, ep)[0], pipeline_stage_params(S, pp, ep)[-1]
    assert devices[0].non_expert == first.non_expert + last.non_expert - embedding_params(S)


def test_experts_split_over_ep() -> None:
    one = stage_params(S, range(3, 7), ep=1)
    for ep in (2, 64, 256):
        p = stage_params(S, range(3, 7), ep=ep)
        assert p.non_expert == one.non_expert
        assert p.expert * ep == one.expert
    with pytest.raises(ValueError):
        stage_params(S, range(3, 7), ep=3)


def test_high_precision_part() -> None:
    p = stage_params(S, range(0, 3), ep=64, embedding=True)
    assert p.high_precision == embedding_params(S) + 3 * layer_params(S, 0).norms
    assert p.fp8_gemm == 3 * (layer_params(S, 0).attention + layer_params(S, 0).dense_ffn)


def test_small_model_without_q_lora_or_mtp() -> None:
    s = ModelSpec(q_lora_rank=0, mtp_depth=0, n_layers=4, n_dense_layers=1, dim=256, n_routed_experts=8)
    assert layer_params(s, 0).attention == 256 * 128 * 192 + 256 * 576 + 512 * 128 * 256 + 128 * 128 * 256
    assert mtp_params(s) == 0
    stages = pipeline_stage_params(s, 2, 2)
    assert sum(p.non_expert + 2 * p.expert for p in stages) == model_params(s).main
