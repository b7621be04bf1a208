"""Shipped model specs and Hugging Face configs (issue 19, "Models").

Three kinds of check, each independent of the code under test:

* the shipped files are the reference copies (``shared/reference/models/``, ``shared/reference/deepseek-v3/``)
  byte for byte, so their provenance (``models/README.md``) holds;
* parameter counts against two outside figures: the recount of each file in
  ``shared/reference/models/README.md`` (to 0.01B, as it is written), and the model's published total
  and active count, which publishers round or truncate to the digit they give: the bound is one unit
  of that digit (e.g. Mixtral's "47B total, 13B active", the Mixtral paper, arXiv 2401.04088 section 2);
* training FLOPs per token against the closed form they must equal for these architectures: every
  weight of a matmul that a token uses costs 6 FLOPs (2 forward, 2 input gradient, 2 weight gradient),
  and causal attention costs ``3 x 2 x heads x seq x (qk + v) / 2`` per token and layer (forward, and
  twice it backward), nothing else (norms, RoPE, the embedding lookup: no matmul).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.model.catalog import CATALOG, MODELS_DIR, load_model
from sim.model.flops import training_flops_per_token
from sim.model.params import layer_params, model_params
from sim.model.spec import ModelSpec
from sim.paths import shown
from tests.conftest import SHARED

REFERENCE = SHARED / "reference" / "models"


def _reference_copy(file: str) -> Path:
    if file.startswith("deepseek-ai__DeepSeek-V3."):
        return SHARED / "reference" / "deepseek-v3" / "config_671B.json"
    return REFERENCE / file


@pytest.mark.needs_shared(REFERENCE, SHARED / "reference" / "deepseek-v3")
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_shipped_files_are_the_reference_copies(name: str) -> None:
    file = CATALOG[name][1]
    assert (MODELS_DIR / file).read_bytes() == _reference_copy(file).read_bytes()


# shared/reference/models/README.md: "Parameters: ..." of each file, in billions (total, active)
RECOUNT = {
    "llama-3.1-8b": (8.03, None),
    "llama-3.1-70b": (70.55, None),
    "llama-3.1-405b": (405.85, None),
    "qwen3-235b-a22b": (235.09, 22.19),
    "qwen3-30b-a3b": (30.53, 3.35),
    "mixtral-8x7b": (46.70, 12.88),
    "deepseek-v2-lite": (15.71, 2.45),
}


@pytest.mark.parametrize("name", sorted(RECOUNT))
def test_parameters_equal_the_reference_recount(name: str) -> None:
    """The README recounts "embeddings and the untied LM head"; its active count is "attention plus
    the dense or shared FFN plus the top-k routed experts" with the whole embedding table, except
    DeepSeek-V2-Lite's, given "counting the LM head but not the input embedding"."""
    p = model_params(load_model(name, timed=False))
    total, active = RECOUNT[name]
    assert round(p.main / 1e9, 2) == total
    if active is not None:
        ours = p.activated if name == "deepseek-v2-lite" else p.activated_with_embedding_table
        assert round(ours / 1e9, 2) == active


# published (total, active, the unit of the last digit given, how the active count takes the embedding:
# "row" one looked-up row, DeepSeek's (README_WEIGHTS.md of DeepSeek-V3); "table" the whole table, Qwen's
# (its cards' non-embedding counts, 29.9B and 234B, are the totals less embedding and head); "either")
PUBLISHED = {
    # Llama 3 paper (arXiv 2407.21783), Table 3: 8B, 70B, 405B
    "llama-3.1-8b": (8, None, 1, ""),
    "llama-3.1-70b": (70, None, 1, ""),
    "llama-3.1-405b": (405, None, 1, ""),
    # Qwen3 model cards: "235B in total and 22B activated", "30.5B in total and 3.3B activated"
    "qwen3-235b-a22b": (235, 22, 1, "table"),
    "qwen3-30b-a3b": (30.5, 3.3, 0.1, "table"),
    # Mixtral paper (arXiv 2401.04088): "47B total parameters ... 13B active parameters"
    "mixtral-8x7b": (47, 13, 1, "either"),
    # DeepSeek-V2 paper (arXiv 2405.04434), appendix B: "15.7B total parameters ... 2.4B activated"
    "deepseek-v2-lite": (15.7, 2.4, 0.1, "row"),
    # DeepSeek-V3 report (arXiv 2412.19437), abstract: "671B total parameters with 37B activated"
    "deepseek-v3": (671, 37, 1, "row"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_match_the_published_totals(name: str) -> None:
    p = model_params(load_model(name, timed=False))
    total, active, unit, embedding = PUBLISHED[name]
    assert abs(p.main / 1e9 - total) < unit
    if embedding in ("row", "either"):
        assert abs(p.activated / 1e9 - active) < unit
    if embedding in ("table", "either"):
        assert abs(p.activated_with_embedding_table / 1e9 - active) < unit
    if name.startswith("qwen3"):  # the cards' non-embedding counts: 29.9B and 234B
        non_embedding = (p.main - 2 * load_model(name).vocab_size * load_model(name).dim) / 1e9
        assert abs(non_embedding - {"qwen3-30b-a3b": 29.9, "qwen3-235b-a22b": 234}[name]) < unit


def _matmul_weights_used(s: ModelSpec) -> int:
    """Weights of the matmuls one token goes through: its layers' projections, the FFN or its top-k
    (and shared) experts, the router gate, the output head; not the norms, the router's bias or the
    embedding table (a lookup)."""
    used = 0
    for layer in range(s.n_layers):
        p = layer_params(s, layer)
        gate = s.n_routed_experts * s.dim if s.is_moe(layer) else 0
        used += p.attention + p.dense_ffn + p.shared_experts + s.n_activated_experts * p.per_expert + gate
    return used + s.vocab_size * s.dim


@pytest.mark.parametrize("name", sorted(CATALOG))
@pytest.mark.parametrize("seq", [4096, 8192])
def test_training_flops_are_six_per_weight_plus_attention(name: str, seq: int) -> None:
    s = load_model(name, timed=False)
    attention = 3 * s.n_layers * 2 * s.n_heads * seq * (s.qk_head_dim + s.value_head_dim) / 2
    expected = 6 * _matmul_weights_used(s) + attention
    assert training_flops_per_token(s, causal=True, seq_len=seq).main == pytest.approx(expected, rel=1e-12)
    noncausal = training_flops_per_token(s, causal=False, seq_len=seq).main
    assert noncausal == pytest.approx(expected + attention, rel=1e-12)


def test_layer_patterns_follow_each_architecture() -> None:
    """DeepSeek: dense below first_k_dense_replace, then MoE where l % moe_layer_freq == 0; Qwen3-MoE:
    dense in mlp_only_layers and where (l + 1) % decoder_sparse_step != 0 (transformers' modelling code)."""
    assert load_model("deepseek-v3").layer_pattern() == "dense 0-2, moe 3-60"
    assert load_model("deepseek-v2-lite").layer_pattern() == "dense 0, moe 1-26"
    assert load_model("llama-3.1-8b").layer_pattern() == "dense 0-31"
    assert load_model("mixtral-8x7b").layer_pattern() == "moe 0-31"


def _hf(tmp_path: Path, name: str, **changes: object) -> Path:
    data = json.loads((MODELS_DIR / CATALOG[name][1]).read_text()) | changes
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v != "DROP"}))
    return path


def test_qwen_sparse_step_and_dense_layers(tmp_path: Path) -> None:
    s = load_model(str(_hf(tmp_path, "qwen3-30b-a3b", decoder_sparse_step=2, mlp_only_layers=[5])))
    assert [layer for layer in range(8) if s.is_moe(layer)] == [1, 3, 7]


def test_deepseek_layer_frequency_and_groups(tmp_path: Path) -> None:
    s = load_model(str(_hf(tmp_path, "deepseek-v2-lite", moe_layer_freq=2, n_group=8, topk_group=3)), timed=False)
    assert [layer for layer in range(6) if s.is_moe(layer)] == [2, 4]
    assert s.n_limited_groups == 3
    assert load_model("deepseek-v2-lite", timed=False).n_limited_groups == 6  # one group: no limit


def test_a_huge_layer_count_is_refused_before_layers_are_listed(tmp_path: Path) -> None:
    """Qwen3-MoE's and DeepSeek's readers list the layers (dense or MoE) from num_hidden_layers: 10**29 of them
    never returned (found by a fuzz of every key of every shipped config)."""
    for name in ("qwen3-30b-a3b", "deepseek-v2-lite"):
        with pytest.raises(ScenarioError) as info:
            load_model(str(_hf(tmp_path, name, num_hidden_layers=10**29)), timed=False)
        assert info.value.key_path == "num_hidden_layers" and "[1, 1,024], got 100000" in info.value.message


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"topk_method": "magic"}, "topk_method", "'magic' is not one of DeepSeek's (greedy, group_limited_greedy"),
        ({"n_group": 128, "topk_group": 1}, "n_group", "128 groups do not split the 64 routed experts evenly"),
        ({"n_group": 3, "topk_group": 1}, "n_group", "3 groups do not split the 64 routed experts evenly"),
    ],
)
def test_deepseek_router_keys_are_checked(tmp_path: Path, changes: dict[str, object], key: str, message: str) -> None:
    """An unknown ``topk_method`` meant no balancing bias without a word; 128 groups of 64 experts ran."""
    with pytest.raises(ScenarioError) as info:
        load_model(str(_hf(tmp_path, "deepseek-v2-lite", **changes)), timed=False)
    assert info.value.key_path == key and message in info.value.message


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"model_type": "gpt2"}, "model_type", "must be one of"),
        ({"model_type": ["llama"]}, "model_type", "must be one of llama, mistral"),  # (a TypeError: unhashable)
        ({"model_type": {"a": 1}}, "model_type", "deepseek_v3, got a mapping"),
        ({"model_type": "DROP"}, "model_type", "required key is missing (a Hugging Face config names its"),
        # a layer count past the model's bound: refused before any per-layer list is built (10**29 looped for ever)
        ({"num_hidden_layers": 10**29}, "num_hidden_layers", "must be a whole number in [1, 1,024], got 1000"),
        ({"rope_skew": 3}, "rope_skew", "not a key the twin reads"),
        ({"hidden_act": "gelu"}, "hidden_act", "SwiGLU"),
        ({"attention_bias": True}, "attention_bias", "without bias"),
        ({"sliding_window": 4096}, "sliding_window", "full attention"),
        ({"num_hidden_layers": 0}, "num_hidden_layers", "whole number >= 1"),
        ({"num_key_value_heads": 5}, "num_key_value_heads", "must divide"),
        ({"hidden_size": "DROP"}, "hidden_size", "required"),
        ({"hidden_size": 4000}, "hidden_size", "multiple of 128"),
    ],
)
def test_bad_config_keys_are_named(tmp_path: Path, changes: dict[str, object], key: str, message: str) -> None:
    path = _hf(tmp_path, "llama-3.1-8b", **changes)
    with pytest.raises(ScenarioError) as info:
        load_model(str(path))
    assert info.value.file is not None and info.value.file.endswith("config.json")
    assert info.value.key_path == key and message in info.value.message


_ALL_DENSE = "the experts' keys are read by none; give a dense model's config"

# A config.json's layer lists and counts as the file writes them: an entry or a count that would have been
# dropped or clamped (layer 999 of 48, -1, a layer twice, 100 dense layers of 27) and a check between two
# fields, named with the file's own keys (it named the twin's fields: n_routed_experts).
CONFIG_LINES = [
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": [0, 1, 999]},
        "mlp_only_layers[2]: layer 999 is not in 0..47 (num_hidden_layers is 48)",
    ),
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": [0, -1]},
        "mlp_only_layers[1]: layer -1 is not in 0..47 (num_hidden_layers is 48)",
    ),
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": [0, 0]},
        "mlp_only_layers[1]: layer 0 is listed twice (also mlp_only_layers[0]); give it once",
    ),
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": [0, "1"]},
        "mlp_only_layers[1]: must be a layer number (a whole number), got '1'",
    ),
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": [5, 0], "decoder_sparse_step": 2},
        "mlp_only_layers[1]: layer 0 is dense already (decoder_sparse_step 2: a layer l is MoE only where "
        "(l + 1) % 2 == 0); remove it",
    ),
    ("deepseek-v2-lite", {"first_k_dense_replace": 100}, "first_k_dense_replace: 100 exceeds num_hidden_layers (27)"),
    # every layer dense: taken, its experts' keys changing no figure (n_routed_experts 2 or 64 the same model)
    (
        "deepseek-v2-lite",
        {"first_k_dense_replace": 27},
        "first_k_dense_replace: at 27, no layer is MoE (all 27 dense): " + _ALL_DENSE,
    ),
    (
        "deepseek-v2-lite",
        {"moe_layer_freq": 1000},
        "moe_layer_freq: at 1000, no layer is MoE (all 27 dense): " + _ALL_DENSE,
    ),
    (
        "qwen3-30b-a3b",
        {"decoder_sparse_step": 1000},
        "decoder_sparse_step: at 1000, no layer is MoE (all 48 dense): " + _ALL_DENSE,
    ),
    (
        "qwen3-30b-a3b",
        {"mlp_only_layers": list(range(48))},
        "mlp_only_layers: at 48 layers listed, no layer is MoE (all 48 dense): " + _ALL_DENSE,
    ),
    # read as absent (hidden / heads = 64, 30.08 B parameters for 30.53 B)
    ("qwen3-30b-a3b", {"head_dim": 0}, "head_dim: must be a whole number >= 1, got 0"),
    ("mixtral-8x7b", {"num_local_experts": 1}, "num_experts_per_tok: 2 exceeds num_local_experts (1)"),
    ("qwen3-30b-a3b", {"num_experts": 4}, "num_experts_per_tok: 8 exceeds num_experts (4)"),
    ("llama-3.1-8b", {"num_key_value_heads": 5}, "num_key_value_heads: 5 must divide num_attention_heads (32)"),
]


@pytest.mark.parametrize(("name", "changes", "line"), CONFIG_LINES)
def test_config_entries_are_refused_with_the_files_keys(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    changes: dict[str, object],
    line: str,
) -> None:
    """``twin chunk --model-config`` and a scenario's ``model.config`` refuse the file in one line naming the
    file's key, exit 2 (each was accepted with the entry ignored, or named a field of the twin)."""
    monkeypatch.chdir(tmp_path)
    _hf(tmp_path, name, **changes)
    (tmp_path / "s.yaml").write_text("name: s\nmodel:\n  config: config.json\n")
    for args in (["chunk", "--model-config", "config.json"], ["validate", "s.yaml"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        out, err = capsys.readouterr()
        assert (info.value.code, out, err) == (2, "", f"error: config.json: {line}\n"), args


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("[0, 0]", "model.mlp_only_layers: layer 0 is listed twice; give it once"),
        ("[1]", "model.mlp_only_layers: layer 1 is one of the first n_dense_layers (3), dense already; remove it"),
    ],
)
def test_a_scenarios_dense_layers_are_each_used(tmp_path: Path, value: str, line: str) -> None:
    """A scenario's ``model.mlp_only_layers`` entry that changes nothing (a layer twice, one of the first
    dense layers) is refused, not ignored."""
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nmodel:\n  config: deepseek-v3\n  mlp_only_layers: {value}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.one_line() == f"{shown(path)}: {line}"


def test_an_unknown_name_lists_the_catalog() -> None:
    with pytest.raises(ScenarioError, match=r"neither a shipped model .*llama-3\.1-405b"):
        load_model("llama-4")


@pytest.mark.parametrize("name", ["llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v3"])
def test_a_tied_head_counts_the_table_once(name: str) -> None:
    """A tied head is the embedding table: a token's looked-up row is part of the head it multiplies
    by whole, so the active count holds the table once and equals the count with the table (Llama 3.1
    8B tied: 7,504,928,768 active of 7,504,924,672 in all, the row counted twice). A dense tied model
    uses every parameter for every token: active equals total. Untied, the row and the head add up."""
    untied = load_model(name, timed=False)
    tied = untied.model_copy(update={"tie_word_embeddings": True})
    u, t = model_params(untied), model_params(tied)
    table = untied.vocab_size * untied.dim
    assert t.main == u.main - table  # the head's matrix is the table: counted once
    assert t.activated == u.activated - untied.dim  # the looked-up row is inside the head
    assert t.activated_with_embedding_table == t.activated <= t.main
    assert u.activated_with_embedding_table == u.activated - untied.dim + table
    if not untied.is_moe_model:
        assert t.activated == t.main


@pytest.mark.parametrize("name", CATALOG)
def test_a_shipped_file_given_by_its_path_has_its_catalog_name_or_its_full_one(name: str) -> None:
    """The file's name without ``.config.json`` and its ``org__`` prefix: cut at the first dot,
    ``meta-llama__Llama-3.1-8B.config.json`` and the 70B's were both ``Llama-3``."""
    title, file = CATALOG[name]
    spec = load_model(str(MODELS_DIR / file))
    assert spec.name == ("Mixtral-8x7B-v0.1" if name == "mixtral-8x7b" else title)  # (the catalog drops a version)


@pytest.mark.parametrize("layers", [1, 2])
def test_a_dense_model_of_one_or_two_layers_loads(tmp_path: Path, layers: int) -> None:
    """A dense model never reads ``n_dense_layers``; its default (DeepSeek-V3's 3) refused a 2-layer
    Llama, blaming ``first_k_dense_replace``, a key the file does not have. Its parameters are the
    32-layer model's less 32 - ``layers`` of its (identical) layers."""
    data = json.loads((MODELS_DIR / CATALOG["llama-3.1-8b"][1]).read_text())
    data["num_hidden_layers"] = layers
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    small, full = load_model(str(path)), load_model("llama-3.1-8b")
    layer = layer_params(full, 0)
    assert layer.routed_experts == 0 and layer.non_expert == layer.attention + layer.norms + layer.dense_ffn
    assert model_params(small).main == model_params(full).main - (32 - layers) * layer.non_expert
    assert not any(small.is_moe(layer) for layer in range(layers))
