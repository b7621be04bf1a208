"""A Hugging Face ``config.json`` as :class:`~sim.model.spec.ModelSpec` fields.

The twin's model fields carry DeepSeek's names (``dim``, ``n_layers``...); Hugging Face's configs carry
each architecture's own (``hidden_size``, ``num_hidden_layers``, ``num_local_experts``...). This module
maps the architectures the twin times, by ``model_type``:

==============  ===========  ===================================================================
model_type      attention    FFN
==============  ===========  ===================================================================
llama, mistral  gqa / mha    dense SwiGLU (``intermediate_size``)
qwen3           gqa + qk     dense SwiGLU; RMSNorm on each query and key head (Qwen3)
                norm
mixtral         gqa          8 experts, top-2, expert width ``intermediate_size``, no shared expert
qwen3_moe       gqa + qk     ``num_experts``, top ``num_experts_per_tok``, ``moe_intermediate_size``;
                norm         dense layers ``mlp_only_layers`` and those off ``decoder_sparse_step``
deepseek_v2,    mla          ``first_k_dense_replace`` dense layers, then MoE every ``moe_layer_freq``;
deepseek_v3                  routed and shared experts; group-limited routing (``n_group``,
                             ``topk_group``); the balancing bias where ``topk_method`` is noaux_tc;
                             ``num_nextn_predict_layers`` MTP modules
==============  ===========  ===================================================================

Layer patterns follow each architecture's modelling code in ``transformers``: DeepSeek's layer ``l``
is MoE when ``l >= first_k_dense_replace and l % moe_layer_freq == 0``; Qwen3-MoE's when ``l`` is not
in ``mlp_only_layers`` and ``(l + 1) % decoder_sparse_step == 0``. Every dense layer past the first
run is listed in ``mlp_only_layers``, so one field says it for both. Nothing is clamped or dropped:
an ``mlp_only_layers`` entry out of range, given twice or dense already by the step, and a
``first_k_dense_replace`` over the layers, are refused naming the entry (``mlp_only_layers[2]``); an
error found on the fields names the file's keys, in its message too (:func:`source_text`).

Routing limits: DeepSeek's groups become the twin's (a group is a node of the EP group,
:mod:`sim.moe.spec`) when there is more than one (``n_group > 1``: a token reaches ``topk_group`` of
them); otherwise, as for Qwen and Mixtral, a token's experts are unconstrained, written as a limit
of top-k groups (``k`` experts reach at most ``k`` nodes, so the limit never binds).

Keys are checked, not skipped: the ones that change nothing the twin times, counts or moves (token
ids, RoPE, norm epsilon, dropout, initialisation, loss coefficients, the checkpoint's dtype) are in
:data:`IGNORED`; keys that would change the architecture in a way the twin does not model are refused
unless they hold the value that does not (``hidden_act`` silu, no biases, no sliding window); any
other key is refused, naming it, rather than silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sim.errors import ScenarioError, kind_of, shown
from sim.limits import MAX_LAYERS

# keys that change no time, byte or parameter count the twin works out
IGNORED: frozenset[str] = frozenset(
    {
        "architectures",
        "auto_map",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "initializer_range",
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_theta",
        "rope_scaling",
        "torch_dtype",
        "transformers_version",
        "use_cache",
        "attention_dropout",
        "pretraining_tp",
        "output_router_logits",
        "router_aux_loss_coef",
        "aux_loss_alpha",
        "seq_aux",
        "norm_topk_prob",
        "scoring_func",
        "routed_scaling_factor",
        "max_window_layers",
        "router_jitter_noise",
        "ep_size",
        "quantization_config",
        "model_type",
        "topk_method",
    }
)

# key: (the value the twin models, why another is refused)
REQUIRED_VALUES: dict[str, tuple[object, str]] = {
    "hidden_act": ("silu", "the FFNs are SwiGLU (silu-gated)"),
    "attention_bias": (False, "attention projections without bias are modelled"),
    "mlp_bias": (False, "FFN projections without bias are modelled"),
    "use_sliding_window": (False, "full attention is modelled, not a sliding window"),
    "sliding_window": (None, "full attention is modelled, not a sliding window"),
}

MODEL_TYPES = ("llama", "mistral", "qwen3", "mixtral", "qwen3_moe", "deepseek_v2", "deepseek_v3")


class _Reader:
    """Takes keys out of a config, each once, with errors that name the file and the key."""

    def __init__(self, data: dict[str, Any], file: str) -> None:
        self.data = dict(data)
        self.file = file

    def error(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(key, message, self.file)  # the key as the file writes it

    def whole(self, key: str, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number ``>= minimum`` (and ``<= maximum``: a count the reader loops over before the
        model's own bounds are checked, ``num_hidden_layers: 1e29`` looped for ever)."""
        if key not in self.data:
            if default is None:
                raise self.error(key, "required in this config.json")
            return default
        value = self.data.pop(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(key, f"must be a whole number >= {minimum}, got {shown(repr(value))}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be a whole number in [{minimum}, {maximum:,}], got {shown(repr(value))}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.pop(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def layers(self, key: str, n_layers: int) -> list[int]:
        """A list of layer numbers, each in ``0..n_layers - 1`` and given once; an entry that is not is
        refused, naming it (``mlp_only_layers[2]``), not dropped."""
        value = self.data.pop(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of layer numbers, got {value!r}")
        first: dict[int, int] = {}
        for i, layer in enumerate(value):
            entry = f"{key}[{i}]"
            if not isinstance(layer, int) or isinstance(layer, bool):
                raise self.error(entry, f"must be a layer number (a whole number), got {layer!r}")
            if not 0 <= layer < n_layers:
                raise self.error(entry, f"layer {layer} is not in 0..{n_layers - 1} (num_hidden_layers is {n_layers})")
            if layer in first:
                raise self.error(entry, f"layer {layer} is listed twice (also {key}[{first[layer]}]); give it once")
            first[layer] = i
        return value

    def finish(self, model_type: str) -> None:
        """Refuse what is left: a modelled-only value, or a key nothing reads."""
        for key, value in self.data.items():
            if key.startswith("_") or key in IGNORED:
                continue
            if key in REQUIRED_VALUES:
                wanted, why = REQUIRED_VALUES[key]
                if value != wanted:
                    raise self.error(key, f"{why}; got {value!r}, expected {wanted!r}")
                continue
            raise self.error(
                key,
                f"not a key the twin reads for model_type {model_type}: if it changes the architecture, the "
                "twin does not model it; if not, remove it",
            )


def _gqa(r: _Reader) -> dict[str, Any]:
    heads = r.whole("num_attention_heads")
    kv = r.whole("num_key_value_heads", heads)
    dim = r.whole("hidden_size")
    fields: dict[str, Any] = {
        "dim": dim,
        "n_layers": r.whole("num_hidden_layers", maximum=MAX_LAYERS),
        "n_heads": heads,
        "attention": "mha" if kv == heads else "gqa",
        "n_kv_heads": kv,
        "vocab_size": r.whole("vocab_size"),
        "inter_dim": r.whole("intermediate_size"),
        "tie_word_embeddings": r.flag("tie_word_embeddings", False),
        "mtp_depth": 0,
    }
    head_dim = r.whole("head_dim", 0)  # (absent or null: hidden / heads; given as 0, refused, not read as absent)
    if head_dim and head_dim != dim // heads:
        fields["head_dim"] = head_dim
    return fields


_DENSE = {"n_routed_experts": 0, "n_activated_experts": 0, "n_shared_experts": 0}


def _llama(r: _Reader) -> dict[str, Any]:
    return {**_gqa(r), **_DENSE}


def _qwen3(r: _Reader) -> dict[str, Any]:
    return {**_gqa(r), **_DENSE, "qk_norm": True}


def _unlimited(topk: int) -> int:
    """A node limit that never binds: ``topk`` experts reach at most ``topk`` nodes."""
    return topk


def _mixtral(r: _Reader) -> dict[str, Any]:
    fields = _gqa(r)
    topk = r.whole("num_experts_per_tok")
    return {
        **fields,
        "n_routed_experts": r.whole("num_local_experts"),
        "n_activated_experts": topk,
        "n_shared_experts": 0,
        "moe_inter_dim": fields["inter_dim"],
        "n_dense_layers": 0,
        "n_limited_groups": _unlimited(topk),
        "router_bias": False,
    }


def _no_moe_layer(value: object, n: int) -> str:
    """Why a MoE config whose every layer is dense is refused (its experts' keys would change nothing)."""
    return (
        f"at {value}, no layer is MoE (all {n} dense): the experts' keys are read by none; give a dense model's config"
    )


def _qwen3_moe(r: _Reader) -> dict[str, Any]:
    fields = _gqa(r)
    topk = r.whole("num_experts_per_tok")
    step = r.whole("decoder_sparse_step", 1)
    n = fields["n_layers"]
    only = r.layers("mlp_only_layers", n)
    for i, layer in enumerate(only):  # (an entry the step makes dense anyway would change nothing)
        if (layer + 1) % step:
            raise r.error(
                f"mlp_only_layers[{i}]",
                f"layer {layer} is dense already (decoder_sparse_step {step}: a layer l is MoE only where "
                f"(l + 1) % {step} == 0); remove it",
            )
    dense = [layer for layer in range(n) if layer in only or (layer + 1) % step]
    if len(dense) == n:
        by_step = all((layer + 1) % step for layer in range(n))
        raise r.error(
            *(
                ("decoder_sparse_step", _no_moe_layer(step, n))
                if by_step
                else ("mlp_only_layers", _no_moe_layer(f"{len(only)} layers listed", n))
            )
        )
    return {
        **fields,
        "qk_norm": True,
        "n_routed_experts": r.whole("num_experts"),
        "n_activated_experts": topk,
        "n_shared_experts": 0,
        "moe_inter_dim": r.whole("moe_intermediate_size"),
        "n_dense_layers": 0,
        "mlp_only_layers": dense,
        "n_limited_groups": _unlimited(topk),
        "router_bias": False,
    }


# DeepSeek's router methods (their modeling_deepseek.py): V2-Lite's greedy top-k, V2's group-limited
# greedy, V3's group-limited top-k with the balancing bias (noaux_tc)
TOPK_METHODS = ("greedy", "group_limited_greedy", "noaux_tc")


def _deepseek(r: _Reader) -> dict[str, Any]:
    topk = r.whole("num_experts_per_tok")
    n = r.whole("num_hidden_layers", maximum=MAX_LAYERS)
    first = r.whole("first_k_dense_replace", 0, minimum=0)
    if first > n:  # (not clamped: every layer would be dense without a word)
        raise r.error("first_k_dense_replace", f"{first} exceeds num_hidden_layers ({n})")
    freq = r.whole("moe_layer_freq", 1)
    off_freq = [layer for layer in range(first, n) if layer % freq]  # dense past the first ones: MoE every freq
    if len(off_freq) == n - first:
        key, value = ("first_k_dense_replace", first) if first == n else ("moe_layer_freq", freq)
        raise r.error(key, _no_moe_layer(value, n))
    groups = r.whole("n_group", 1)
    limited = r.whole("topk_group", groups)
    if limited > groups:
        raise r.error("topk_group", f"{limited} exceeds n_group ({groups})")
    heads = r.whole("num_attention_heads")
    kv = r.whole("num_key_value_heads", heads)
    if kv != heads:
        raise r.error("num_key_value_heads", f"MLA has one latent for every head: expected {heads}, got {kv}")
    method = r.data.get("topk_method", "greedy")
    if method not in TOPK_METHODS:  # (any other word meant no balancing bias, without a word)
        raise r.error("topk_method", f"{shown(repr(method))[:40]} is not one of DeepSeek's ({', '.join(TOPK_METHODS)})")
    experts = r.whole("n_routed_experts")
    if groups > 1 and experts % groups:
        raise r.error("n_group", f"{groups} groups do not split the {experts} routed experts evenly")
    bias = method == "noaux_tc"
    return {
        "dim": r.whole("hidden_size"),
        "n_layers": n,
        "n_heads": heads,
        "attention": "mla",
        "vocab_size": r.whole("vocab_size"),
        "inter_dim": r.whole("intermediate_size"),
        "moe_inter_dim": r.whole("moe_intermediate_size"),
        "n_routed_experts": experts,
        "n_shared_experts": r.whole("n_shared_experts", 0, minimum=0),
        "n_activated_experts": topk,
        "n_dense_layers": first,
        "mlp_only_layers": off_freq,
        "n_limited_groups": limited if groups > 1 else _unlimited(topk),
        "router_bias": bias,
        "q_lora_rank": r.whole("q_lora_rank", 0, minimum=0),
        "kv_lora_rank": r.whole("kv_lora_rank"),
        "qk_nope_head_dim": r.whole("qk_nope_head_dim"),
        "qk_rope_head_dim": r.whole("qk_rope_head_dim", 0, minimum=0),
        "v_head_dim": r.whole("v_head_dim"),
        "tie_word_embeddings": r.flag("tie_word_embeddings", False),
        "mtp_depth": r.whole("num_nextn_predict_layers", 0, minimum=0),
    }


_READERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _llama,
    "qwen3": _qwen3,
    "mixtral": _mixtral,
    "qwen3_moe": _qwen3_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}


# the config.json key each field comes from, to name it in an error found on the field
SOURCE_KEYS: dict[str, dict[str, str]] = {
    "": {
        "dim": "hidden_size",
        "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads",
        "n_kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
        "vocab_size": "vocab_size",
        "inter_dim": "intermediate_size",
        "moe_inter_dim": "moe_intermediate_size",
        "n_activated_experts": "num_experts_per_tok",
        "n_routed_experts": "n_routed_experts",
        "n_shared_experts": "n_shared_experts",
        "n_dense_layers": "first_k_dense_replace",
        "n_limited_groups": "topk_group",
        "mtp_depth": "num_nextn_predict_layers",
    },
    "mixtral": {"n_routed_experts": "num_local_experts", "moe_inter_dim": "intermediate_size"},
    "qwen3_moe": {"n_routed_experts": "num_experts", "mlp_only_layers": "mlp_only_layers"},
}


def source_key(model_type: str, field: str) -> str:
    """The config.json key ``field`` of a ``model_type`` config comes from (the field if none)."""
    return SOURCE_KEYS.get(model_type, {}).get(field) or SOURCE_KEYS[""].get(field, field)


def source_text(model_type: str, message: str) -> str:
    """``message`` (a check of the fields) with each field it names written as the config.json's key of
    a ``model_type`` config: ``2 exceeds n_routed_experts (1)`` -> ``2 exceeds num_local_experts (1)``."""
    names = {**SOURCE_KEYS[""], **SOURCE_KEYS.get(model_type, {})}
    return re.sub(r"\b\w+\b", lambda m: names.get(m.group(0), m.group(0)), message)


def is_hf_config(data: dict[str, Any]) -> bool:
    """A Hugging Face config (``model_type``, ``hidden_size``), not DeepSeek's own format (``dim``)."""
    return "model_type" in data or "hidden_size" in data


def hf_fields(data: dict[str, Any], file: str) -> dict[str, Any]:
    """The ModelSpec fields of a Hugging Face ``config.json`` (``name`` not among them)."""
    if "model_type" not in data:  # (a Hugging Face config by its hidden_size: it names its architecture)
        why = f"required key is missing (a Hugging Face config names its architecture: {', '.join(MODEL_TYPES)})"
        raise ScenarioError("model_type", why, file)
    model_type = data["model_type"]
    if not isinstance(model_type, str) or model_type not in _READERS:  # (a list is unhashable: a traceback)
        got = shown(repr(model_type)) if isinstance(model_type, str) else kind_of(model_type)
        raise ScenarioError("model_type", f"must be one of {', '.join(MODEL_TYPES)}, got {got}", file)
    reader = _Reader(data, file)
    fields = _READERS[model_type](reader)
    reader.finish(model_type)
    return fields
