"""Tensor parallelism with sequence parallelism (``training.tp``, issue 19), checked against what it
must conserve and against closed forms.

* Work is split, not changed: a layer's model FLOPs on one TP rank, times TP, are the layer's FLOPs at
  TP 1, annotation by annotation (column- and row-parallel GEMMs split N or K, attention its heads; an
  MoE layer's experts see the GPU's sequence-parallel share of the tokens).
* The collectives are Megatron-Core's with ``--sequence-parallel`` (its ``ColumnParallelLinear`` /
  ``RowParallelLinear`` with ``sequence_parallel=True``): per TP block (attention, dense FFN) an
  all-gather in and a reduce-scatter out in the forward; in the backward an all-gather of the output
  gradient, a reduce-scatter of the input gradient and an all-gather of the input again for the weight
  gradient; each of ``tokens x hidden`` BF16 elements.
* A ring collective of S bytes per rank over p GPUs of one node, alone: ``(p-1) (alpha + S / (p b))``
  with b the NVLink rate per direction and alpha two NVLink hops (the alpha-beta ring).
* Parameters: the TP-split parts (projections, dense FFN, embedding table, head) divide by TP exactly,
  the rest (norms, router, experts) does not.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.chunk.tp_comm import TpCollective, TpModel
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.model.catalog import load_model
from sim.model.layer import TP_KINDS, LayerWork, layer_ops
from sim.model.megatron_flops import megatron_flops_per_token, padded_vocab
from sim.model.params import layer_params, stage_params
from sim.network.context import SimContext
from sim.network.spec import load_cluster
from sim.network.topology import build_topology
from sim.run import simulate_training
from tests.conftest import REPO

T = 8192


def _flops(lo: object) -> dict[str, float]:
    return {a: sum(op.flops for op in ops) for a, ops in lo.annotations.items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_a_dense_layers_work_is_split_over_tp(tp: int) -> None:
    s = load_model("llama-3.1-70b")
    whole = _flops(layer_ops(s, 0, LayerWork(T)))
    shard = _flops(layer_ops(s, 0, LayerWork(T, (), tp)))
    assert shard.keys() == whole.keys()
    for ann, f in whole.items():
        assert shard[ann] * tp == pytest.approx(f, rel=1e-12), ann


@pytest.mark.parametrize("tp", [2, 4])
def test_an_moe_layers_work_is_split_over_tp(tp: int) -> None:
    s = load_model("qwen3-30b-a3b")
    k, local = s.n_activated_experts, 16  # balanced: every local expert gets tokens x top-k / experts x local
    whole = _flops(layer_ops(s, 0, LayerWork(T, (T * k * local // s.n_routed_experts,) * local)))
    rows = ((T // tp) * k * local // s.n_routed_experts,) * local
    shard = _flops(layer_ops(s, 0, LayerWork(T, rows, tp)))
    for ann, f in whole.items():
        assert shard[ann] * tp == pytest.approx(f, rel=1e-12), ann


def test_the_collectives_of_a_layer_are_megatrons() -> None:
    s = load_model("llama-3.1-8b")
    tp = 4
    ops = layer_ops(s, 0, LayerWork(T, (), tp)).annotations
    found = {a: Counter(op.comm for op in o if op.comm in TP_KINDS) for a, o in ops.items()}
    assert found["attn(F)"] == found["mlp(F)"] == Counter({"tp-allgather": 1, "tp-reducescatter": 1})
    assert found["attn(B)"] == found["mlp(B)"] == Counter({"tp-allgather": 2, "tp-reducescatter": 1})
    assert not found["attn(W)"] and not found["mlp(W)"]
    sizes = {op.nbytes for o in ops.values() for op in o if op.comm in TP_KINDS}
    assert sizes == {2.0 * T * s.dim}
    moe = layer_ops(load_model("qwen3-30b-a3b"), 0, LayerWork(T, (1,) * 16, tp)).annotations
    assert not [op for op in moe["mlp(F)"] + moe["mlp(B)"] if op.comm in TP_KINDS]  # experts: EP, not TP


@pytest.mark.parametrize("tp", [2, 4, 8])
@pytest.mark.parametrize("kind", ["allgather", "reducescatter"])
def test_a_tp_collective_alone_is_the_alpha_beta_ring(tp: int, kind: str) -> None:
    spec = load_cluster(REPO / "topologies" / "h100-ib-1024.yaml")
    model = TpModel(SimContext(build_topology(spec), 0.0), [np.arange(tp) + 8 * node for node in range(3)])
    size = 64 * 2**20
    alpha = 2 * spec.latency.nvlink_hop_us * 1e-6
    expected = (tp - 1) * (alpha + size / tp / (spec.node.nvlink_GBps * 1e9))
    assert model.time(TpCollective(kind, size)) == pytest.approx(expected, rel=1e-9)


def test_tp_divides_exactly_what_it_splits() -> None:
    s = load_model("llama-3.1-405b")
    layers = range(8)
    whole = stage_params(s, layers, ep=1, embedding=True, head=True)
    split = sum(layer_params(s, i).attention + layer_params(s, i).dense_ffn for i in layers)
    table, head = s.vocab_size * s.dim, s.vocab_size * s.dim
    for tp in (2, 4, 8):
        shard = stage_params(s, layers, ep=1, embedding=True, head=True, tp=tp)
        kept = whole.non_expert - split - table - head
        assert shard.non_expert == kept + split // tp + table // tp + head // tp


def _scenario(folder: Path, tp: int, model: dict[str, object] | None = None, **workload: int) -> Path:
    body = {
        "name": f"tp{tp}",
        "model": model or {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16"},
        "pipeline": {"pp": 4, "schedules": ["1f1b"]},
        "training": {"gpus": 64, "global_batch": 256, "tp": tp},
        "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
        "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
        **({"workload": workload} if workload else {}),
    }
    path = folder / f"tp{tp}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_a_step_with_tp_halves_what_a_gpu_holds_and_moves_its_collectives_on_nvlink(tmp_path: Path) -> None:
    """TP 2 against TP 1, the same GPUs: DP halves and the micro-batches per pipeline double (the
    global batch is the same); every TP byte stays on NVLink; the activations a GPU keeps halve
    (sequence parallelism: each GPU holds half of every token's tensors) and so do the TP-split
    parameters."""
    one = simulate_training(load_scenario(_scenario(tmp_path, 1))).to_dict()
    two = simulate_training(load_scenario(_scenario(tmp_path, 2))).to_dict()
    assert (two["layout"]["dp"], two["layout"]["microbatches"]) == (
        one["layout"]["dp"] // 2,
        2 * one["layout"]["microbatches"],
    )
    moved = two["stats"]["coflow_GB"]
    assert moved["tp@nv_up"] > 0 and not [k for k in moved if k.startswith("tp@") and "nv_" not in k]
    assert "tp@nv_up" not in one["stats"]["coflow_GB"]
    m1, m2 = one["memory_per_gpu_GiB"], two["memory_per_gpu_GiB"]
    assert m2["params"] < 0.51 * m1["params"] and m2["params"] > 0.49 * m1["params"]


@pytest.mark.parametrize(
    ("tp", "model", "message"),
    [
        (3, None, "divide a node's 8 GPUs"),
        (16, None, "divide a node's 8 GPUs"),
        (16, {"config": "deepseek-v3", "n_layers": 8}, "divide a node's 8 GPUs"),
        (8, {"config": "qwen3-30b-a3b", "n_layers": 8}, "divide the 4 key/value heads"),
    ],
)
def test_impossible_tp_is_refused_naming_the_key(
    tmp_path: Path, tp: int, model: dict[str, object] | None, message: str
) -> None:
    from sim.assemble import assemble

    moe = model is not None
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(_scenario(tmp_path, tp, model, **({"ep": 16} if moe else {}))))
    assert info.value.key_path == "training.tp" and message in info.value.message


# ---- context parallelism (training.cp)


@pytest.mark.parametrize("cp", [2, 4, 16])
def test_context_parallelism_splits_a_layers_work(cp: int) -> None:
    """A CP rank computes on ``1/cp`` of the micro-batch's tokens, its queries against every key: its
    share of a causal attention balanced by the zig-zag split, so every annotation's FLOPs times CP
    are the layer's at CP 1 (with TP too: a GPU's share is 1/(TP x CP))."""
    s = load_model("llama-3.1-405b").model_copy(update={"seq_len": 131072})
    t = 131072
    whole = _flops(layer_ops(s, 0, LayerWork(t)))
    shard = _flops(layer_ops(s, 0, LayerWork(t // cp, (), 8, cp)))
    for ann, f in whole.items():
        assert shard[ann] * cp * 8 == pytest.approx(f, rel=1e-12), ann


def test_context_parallel_collectives_gather_keys_and_values() -> None:
    """Per layer: the keys and values of the whole sequence all-gathered in the forward and again in the
    backward, their gradients reduce-scattered (each ``tokens x 2 x kv heads x head dim`` BF16 of the
    GPU's TP shard of the KV heads)."""
    s = load_model("llama-3.1-405b").model_copy(update={"seq_len": 131072})
    tp, cp, t = 8, 16, 131072
    ops = layer_ops(s, 0, LayerWork(t // cp, (), tp, cp)).annotations
    found = {a: Counter(op.comm for op in o if op.comm.startswith("cp-")) for a, o in ops.items()}
    assert found["attn(F)"] == Counter({"cp-allgather": 1})
    assert found["attn(B)"] == Counter({"cp-allgather": 1, "cp-reducescatter": 1})
    sizes = {op.nbytes for o in ops.values() for op in o if op.comm.startswith("cp-")}
    assert sizes == {2.0 * t * 2 * (s.kv_heads // tp) * s.attn_head_dim}


@pytest.mark.parametrize("cp", [2, 4])
def test_mla_under_cp_splits_the_attention_and_gathers_keys_and_values(cp: int) -> None:
    """MLA under CP (Megatron-Core's MLA on Transformer Engine's context-parallel attention): every
    annotation's FLOPs times CP are the layer's at CP 1, and the keys and values as the kernel reads
    them (heads x (qk_head_dim + v_head_dim) BF16 per token) are gathered in the forward and again in
    the backward, their gradients reduce-scattered."""
    s = load_model("deepseek-v3").model_copy(update={"seq_len": 32768})
    t, tp = 32768, 2
    rows = (t * s.n_activated_experts // 8,)
    whole = _flops(layer_ops(s, 3, LayerWork(t, rows)))
    shard = _flops(layer_ops(s, 3, LayerWork(t // cp, rows, tp, cp)))
    for ann in ("attn(F)", "attn(B)", "attn(W)"):
        # the duplicated down-projections (wq_a, wkv_a) are TP's extra work (test_mla_under_tp_...)
        dup = sum(
            op.flops
            for op in layer_ops(s, 3, LayerWork(t // cp, rows, tp, cp)).ops(ann)
            if op.name.split(".")[0] in ("q_a", "kv_a")
        )
        assert (shard[ann] - dup * (tp - 1) / tp) * cp * tp == pytest.approx(whole[ann], rel=1e-12), ann
    ops = layer_ops(s, 3, LayerWork(t // cp, rows, tp, cp)).annotations
    found = {a: Counter(op.comm for op in o if op.comm.startswith("cp-")) for a, o in ops.items()}
    assert found["attn(F)"] == Counter({"cp-allgather": 1})
    assert found["attn(B)"] == Counter({"cp-allgather": 1, "cp-reducescatter": 1})
    sizes = {op.nbytes for o in ops.values() for op in o if op.comm.startswith("cp-")}
    assert sizes == {2.0 * t * (s.n_heads // tp) * (s.qk_head_dim + s.v_head_dim)}


def test_cp_groups_take_one_gpu_of_each_tp_group() -> None:
    from sim.step.layout import Layout

    lay = Layout(64, 8, 1, 64, 1, 2, 64, 1, 1, 4096, 2, (), tp=4, cp=8)
    groups = lay.cp_groups(0)
    assert len(groups) == 64 // 8 and all(len(g) == 8 for g in groups)
    assert sorted(np.concatenate(groups).tolist()) == list(range(64))
    for g in groups:  # same TP index, same DP index, every CP index: stride TP
        assert len({int(x) % 4 for x in g}) == 1 and list(np.diff(g)) == [4] * 7


def test_impossible_cp_is_refused_naming_the_key(tmp_path: Path) -> None:
    from sim.assemble import assemble

    path = _scenario(tmp_path, 2)
    body = yaml.safe_load(path.read_text())
    body["training"]["cp"] = 3
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(path))
    assert info.value.key_path == "training.cp"


# ---- MLA under TP (Megatron-Core's split: down-projections duplicated, up-projections by heads)


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_mla_under_tp_duplicates_exactly_the_down_projections(tp: int) -> None:
    """The TP ranks together do the layer's work plus (TP-1) copies of the down-projections
    ``wq_a``, ``wkv_a`` (6 FLOPs per weight and token: forward, input and weight gradient)."""
    s = load_model("deepseek-v3")
    layer, local = s.n_dense_layers, 4  # an MoE layer, 4 experts per GPU at EP64, balanced rows
    rows = T * s.n_activated_experts * local // s.n_routed_experts
    whole = layer_ops(s, layer, LayerWork(T, (rows,) * local))
    shard = layer_ops(s, layer, LayerWork(T, (rows // tp,) * local, tp))
    down = 6.0 * T * s.dim * (s.q_lora_rank + s.kv_lora_rank + s.qk_rope_head_dim)
    total = sum(_flops(whole).values())
    assert sum(_flops(shard).values()) * tp == pytest.approx(total + (tp - 1) * down, rel=1e-12)


def test_mla_collectives_under_tp() -> None:
    s = load_model("deepseek-v3")
    ops = layer_ops(s, 0, LayerWork(T, (), 2)).annotations
    found = {a: Counter(op.comm for op in o if op.comm in TP_KINDS) for a, o in ops.items()}
    assert found["attn(F)"] == Counter({"tp-allgather": 1, "tp-reducescatter": 1})
    # the output gradient gathered, the latents' gradients all-reduced, the input gathered again for
    # the duplicated down-projections' weight gradients; their input gradient is whole on every GPU
    assert found["attn(B)"] == Counter({"tp-allgather": 2, "tp-allreduce": 2})


def test_mla_parameters_under_tp() -> None:
    from sim.model.params import tp_duplicated

    s = load_model("deepseek-v3")
    layers = range(3)  # dense layers: attention and FFN only
    whole = stage_params(s, layers, ep=1)
    half = stage_params(s, layers, ep=1, tp=2)
    split = sum(layer_params(s, i).attention + layer_params(s, i).dense_ffn for i in layers) - 3 * tp_duplicated(s)
    assert whole.non_expert - half.non_expert == split - split // 2


def test_per_gpu_fidelity_needs_tp_groups_inside_ep_groups(tmp_path: Path) -> None:
    """Per-GPU fidelity runs one pipeline per EP group, each with the TP (and CP) collectives of the
    groups inside it: a dense model's EP 1 holds no TP group, so per-gpu with TP is refused."""
    from sim.assemble import assemble

    path = _scenario(tmp_path, 2)
    body = yaml.safe_load(path.read_text())
    body["training"]["fidelity"] = "per-gpu"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(path))
    assert info.value.key_path == "training.fidelity"


def test_model_tflops_count_the_vocabulary_padded_to_128_times_tp(tmp_path: Path) -> None:
    """Megatron pads the vocabulary to a multiple of 128 x TP (``_vocab_size_with_padding``), and its
    FLOP count (``num_floating_point_operations``) uses the padded size: Llama 3.1's 128,256 rows are a
    multiple of 128 and of 256 but not of 512, so at TP 4 the head counts 128,512 rows."""
    d = simulate_training(load_scenario(_scenario(tmp_path, 4))).to_dict()
    model = load_scenario(_scenario(tmp_path, 4)).model
    assert padded_vocab(model, 4) == 128_512 and padded_vocab(model, 1) == model.vocab_size == 128_256
    per_gpu = d["tokens_per_step"] / d["step_time_s"] / d["layout"]["gpus"]
    assert d["model_tflops_per_gpu"] == pytest.approx(megatron_flops_per_token(model, tp=4) * per_gpu / 1e12, rel=1e-12)
    assert megatron_flops_per_token(model, tp=4) > megatron_flops_per_token(model)
