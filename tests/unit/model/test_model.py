"""The model layer: ModelSpec from DeepSeek's config, ops per layer, FLOPs, layer-to-stage map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.model.catalog import load_model, load_model_config
from sim.model.layer import LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3, parse_model
from sim.model.stages import layers_per_stage
from tests.conftest import SHARED

CONFIG = SHARED / "reference" / "deepseek-v3" / "config_671B.json"
needs_shared = pytest.mark.needs_shared(CONFIG)


@needs_shared
def test_deepseek_config_gives_the_default_model() -> None:
    spec = load_model_config(CONFIG)
    assert spec.name == "config_671B"  # a config file's model is named after the file
    assert spec.model_copy(update={"name": DEEPSEEK_V3.name}) == DEEPSEEK_V3
    assert load_model("deepseek-v3") == DEEPSEEK_V3  # the shipped copy, named by the catalog
    assert (spec.n_layers, spec.n_dense_layers, spec.moe_layers, spec.qk_head_dim) == (61, 3, 58, 192)


@needs_shared
def test_bad_model_keys_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({**json.loads(CONFIG.read_text()), "n_expertz": 3}))
    with pytest.raises(ScenarioError, match=r"config.json: model.n_expertz: unknown key"):
        load_model_config(bad)
    with pytest.raises(ScenarioError, match="n_dense_layers"):
        parse_model({"n_layers": 2, "n_dense_layers": 3})
    with pytest.raises(ScenarioError, match="multiple of 128"):
        parse_model({"dim": 1000})


def test_config_files_may_carry_n_expert_groups_which_is_checked_and_dropped(tmp_path: Path) -> None:
    """DeepSeek's config.json has n_expert_groups (its inference router's groups); the twin's groups are
    the EP group's nodes, so ModelSpec has no such field: a config file's is checked, a scenario's refused."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_limited_groups": 4, "n_expert_groups": 8}))
    assert load_model_config(config) == DEEPSEEK_V3.model_copy(update={"name": tmp_path.name})  # its folder
    config.write_text(json.dumps({"n_limited_groups": 4, "n_expert_groups": 2}))
    with pytest.raises(ScenarioError, match=r"config.json: model.n_limited_groups: 4 exceeds n_expert_groups \(2\)"):
        load_model_config(config)
    config.write_text(json.dumps({"n_expert_groups": "8"}))
    with pytest.raises(ScenarioError, match=r"model.n_expert_groups: must be a whole number >= 1, got '8'"):
        load_model_config(config)
    with pytest.raises(ScenarioError, match=r"model.n_expert_groups: unknown key"):
        parse_model({"n_expert_groups": 8})


def test_moe_layer_ops_have_the_recipe_shapes_and_dtypes() -> None:
    rows = (8192,) * 4
    lo = layer_ops(DEEPSEEK_V3, 10, LayerWork(4096, rows))
    ops = {op.name: op for ann in lo.annotations.values() for op in ann}
    assert (ops["q_a"].m, ops["q_a"].n, ops["q_a"].k, ops["q_a"].dtype) == (4096, 1536, 7168, "fp8")
    assert (ops["kv_b"].n, ops["kv_b"].k) == (128 * 256, 512)
    assert (ops["experts_up"].m, ops["experts_up"].n, ops["experts_up"].groups) == (32768, 4096, 4)
    assert ops["gate"].dtype == "bf16" and ops["attention"].qk_dim == 192 and ops["attention"].causal
    assert ops["q_b.recompute"].recompute and ops["q_b.recompute"].flops == 0 < ops["q_b.recompute"].executed_flops
    # weight gradients of the routed experts alternate between the two compute streams
    streams = [op.stream for op in lo.ops("mlp(W)") if op.name.startswith("expert") and op.kind == "gemm"]
    assert streams == ["compute", "wgrad"] * 4
    # an FP8 cast moves 2 bytes in, 1 byte and a 4-byte scale per 128 elements out
    assert ops["q_a.cast"].nbytes == pytest.approx(4096 * 7168 * (3 + 4 / 128))
    assert set(lo.annotations) == {
        "attn(F)", "attn(B)", "attn(W)", "mlp(F)", "mlp(B)", "mlp(W)",
        "dispatch(F)", "combine(F)", "dispatch(B)", "combine(B)",
    }  # fmt: skip


def test_dense_layers_have_no_communication_and_moe_layers_need_their_rows() -> None:
    dense = layer_ops(DEEPSEEK_V3, 0, LayerWork(4096))
    assert not dense.moe and "dispatch(F)" not in dense.annotations
    up = next(op for op in dense.ops("mlp(F)") if op.name == "ffn_up")
    assert (up.n, up.k) == (2 * 18432, 7168)
    with pytest.raises(ValueError, match="rows_per_expert"):
        layer_ops(DEEPSEEK_V3, 3, LayerWork(4096))


def test_expert_flops_follow_the_routed_rows() -> None:
    """Grouped expert GEMMs do work in proportion to the rows routed to the GPU's experts."""
    light = layer_ops(DEEPSEEK_V3, 10, LayerWork(4096, (100, 200, 300, 400)))
    heavy = layer_ops(DEEPSEEK_V3, 10, LayerWork(4096, (200, 400, 600, 800)))

    def expert_flops(lo):  # type: ignore[no-untyped-def]
        return sum(op.flops for op in lo.ops("mlp(F)") if op.name.startswith("experts_"))

    assert expert_flops(heavy) == pytest.approx(2 * expert_flops(light))
    assert expert_flops(light) == pytest.approx(2 * 1000 * (4096 * 7168 + 7168 * 2048))


@pytest.mark.parametrize(("layers", "pp"), [(61, 16), (61, 8), (30, 4), (5, 5)])
def test_layers_per_stage_covers_every_layer_once(layers: int, pp: int) -> None:
    sizes = layers_per_stage(layers, pp)
    assert sum(sizes) == layers and len(sizes) == pp and max(sizes) - min(sizes) <= 1
    # the first and last stages (embedding; head and MTP) get the smaller counts
    assert sizes[0] == min(sizes) and sizes[-1] == min(sizes)


def test_layer_stage_map_refuses_impossible_layouts() -> None:
    with pytest.raises(ScenarioError, match="more stages"):
        layers_per_stage(4, 8)
    with pytest.raises(ScenarioError, match="add up to 61"):
        layers_per_stage(61, 2, [30, 30])


def test_a_precision_that_is_not_modelled_is_refused_not_ignored() -> None:
    """model.dtype: bf16 used to pass and give FP8's figures; until a BF16 recipe exists it is refused."""
    from pydantic import ValidationError

    from sim.model.spec import ModelSpec

    with pytest.raises(ValidationError, match="bf16 training is not modelled yet"):
        ModelSpec(dtype="bf16")
    assert ModelSpec(dtype="fp8").dtype == "fp8"
