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
    with pytest.raises(ScenarioError, match=r"config.json: n_expertz: unknown key"):  # the file's key
        load_model_config(bad)
    with pytest.raises(ScenarioError, match="n_dense_layers"):
        parse_model({"n_layers": 2, "n_dense_layers": 3})
    with pytest.raises(ScenarioError, match="multiple of 128"):
        parse_model({"dim": 1000})


def test_config_files_may_carry_n_expert_groups_which_is_checked_and_dropped(tmp_path: Path) -> None:
    """DeepSeek's config.json has n_expert_groups (its inference router's groups); the twin's groups are
    the EP group's nodes, so ModelSpec has no such field: a config file's is checked, a scenario's refused."""
    config = tmp_path / "config.json"
    shape = {"vocab_size": 129280, "dim": 7168, "inter_dim": 18432, "n_layers": 61, "n_heads": 128}  # required
    config.write_text(json.dumps({**shape, "n_limited_groups": 4, "n_expert_groups": 8}))
    assert load_model_config(config) == DEEPSEEK_V3.model_copy(update={"name": tmp_path.name})  # its folder
    config.write_text(json.dumps({**shape, "n_limited_groups": 4, "n_expert_groups": 2}))
    with pytest.raises(ScenarioError, match=r"config.json: n_limited_groups: 4 exceeds n_expert_groups \(2\)"):
        load_model_config(config)
    config.write_text(json.dumps({**shape, "n_expert_groups": "8"}))
    with pytest.raises(ScenarioError, match=r"config.json: n_expert_groups: must be a whole number >= 1, got '8'"):
        load_model_config(config)
    # a file without its shape was DeepSeek-V3 under the file's name ('{}' printed the 671B model)
    for missing in shape:
        config.write_text(json.dumps({k: v for k, v in shape.items() if k != missing}))
        with pytest.raises(ScenarioError, match=rf"config.json: {missing}: required key is missing"):
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


def test_the_bf16_recipe_drops_the_fp8_machinery_and_keeps_the_model_work() -> None:
    """model.dtype: bf16 (Megatron-Core's recipe) runs the same matmuls in BF16: every GEMM BF16 and
    unscaled, no FP8 cast, restore or scale kernel left, the same model FLOPs in every annotation, and
    fewer bytes moved by memory-bound kernels except the token permutations (BF16 rows, 2/1.03125 x)."""
    from sim.model.layer import FP8_KERNELS

    bf16 = DEEPSEEK_V3.model_copy(update={"dtype": "bf16"})
    work = LayerWork(4096, (8192,) * 4)
    fp8_ops = layer_ops(DEEPSEEK_V3, 10, work).annotations
    bf16_ops = layer_ops(bf16, 10, work).annotations
    assert fp8_ops.keys() == bf16_ops.keys()
    for ann, ops in bf16_ops.items():
        assert all(op.dtype == "bf16" and op.scaling == "none" for op in ops if op.kind == "gemm")
        assert not [op for op in ops if op.kernel in FP8_KERNELS or "scales" in op.name]
        assert sum(op.flops for op in ops) == sum(op.flops for op in fp8_ops[ann])
        permute = {op.name: op.nbytes for op in fp8_ops[ann] if op.kernel == "permute"}
        for op in ops:
            if op.kernel == "permute":
                assert op.nbytes == pytest.approx(permute[op.name] * 2 / 1.03125)
    moved = sum(op.nbytes for ops in bf16_ops.values() for op in ops if op.kernel != "permute")
    assert moved < sum(op.nbytes for ops in fp8_ops.values() for op in ops if op.kernel != "permute")


def test_the_bf16_recipe_keeps_and_sends_bf16() -> None:
    """Under bf16 the dispatch payload is BF16 (2 bytes per element, not FP8's 1.03125), what a layer
    keeps for its backward is BF16 where the FP8 recipe keeps FP8 copies, and AdamW's moments are FP32."""
    from sim.moe.spec import MoESpec
    from sim.step.activations import saved_tensors
    from sim.step.memory import Precision

    bf16 = DEEPSEEK_V3.model_copy(update={"dtype": "bf16"})
    assert MoESpec.of_model(bf16, 64).dispatch_bytes_per_elem == 2.0
    assert MoESpec.of_model(DEEPSEEK_V3, 64).dispatch_bytes_per_elem == 1.03125
    fp8 = {t.name: t for t in saved_tensors(DEEPSEEK_V3, 10)}
    kept = {t.name: t for t in saved_tensors(bf16, 10)}
    assert (
        kept["dispatched tokens (BF16)"].bytes_per_element == 2.0 == kept["attention output (BF16)"].bytes_per_element
    )
    assert fp8["dispatched tokens (FP8)"].bytes_per_element == 1.03125
    assert (Precision.of(bf16).optimizer_bytes, Precision.of(DEEPSEEK_V3).optimizer_bytes) == (12.0, 8.0)


def test_a_dense_model_with_an_mtp_module_is_refused() -> None:
    """An MTP block is timed as an MoE layer; a dense model with one crashed the step (a division by
    its 0 experts) after twin validate had said ok. Refused, naming the key; 0 is accepted."""
    dense = load_model("llama-3.1-8b").model_dump(exclude_unset=True)
    with pytest.raises(ScenarioError, match=r"model.mtp_depth: a dense model's multi-token-prediction module"):
        parse_model({**dense, "mtp_depth": 1})
    assert parse_model({**dense, "mtp_depth": 0}).mtp_depth == 0
