"""The model: DeepSeek-V3 by default, any model of the same family from its fields.

Field names are those of DeepSeek-V3's ``config_671B.json`` (``shared/reference/deepseek-v3/``),
so a scenario's ``model:`` section or ``twin ... --model-config config.json`` can give them as
published. Defaults: that file and REFERENCE.md section 1 (MTP depth 1, sequence 4096, FP8 recipe).
Fields the config file does not carry (``seq_len``, ``mtp_depth``) have their REFERENCE.md values.

Three keys of the config file are not fields, since nothing would read them: ``n_expert_groups``, the
groups of DeepSeek's inference router (the twin's node-limited routing takes its groups from the EP
placement: a group is a node of the EP group, :class:`sim.moe.spec.MoESpec`), ``route_scale`` (it
scales the gate weights after the top-k selection: no time or byte changes) and ``score_func`` (the
routing is ``workload.routing``, not computed from scores). :func:`load_model_config` accepts them in
a config file, checks them (``n_limited_groups`` against ``n_expert_groups``) and drops them; a
scenario's ``model:`` section refuses them, saying why (:data:`NOT_MODELLED`).

Some values a ModelSpec holds (its parameter count is right) are not timed by the layer's operators
(:mod:`sim.model.layer`) yet: :func:`check_timed` refuses them where a model is read to be run.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.errors import ScenarioError
from sim.yamlio import read_json, validation_error


class ModelSpec(BaseModel):
    """A DeepSeek-V3-family model: MLA attention, dense FFN in the first layers, MoE after."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field("DeepSeek-V3", min_length=1)
    vocab_size: int = Field(129280, ge=1)
    dim: int = Field(7168, ge=128, description="hidden size")
    inter_dim: int = Field(18432, ge=1, description="dense FFN intermediate size")
    moe_inter_dim: int = Field(2048, ge=1, description="expert intermediate size")
    n_layers: int = Field(61, ge=1)
    n_dense_layers: int = Field(3, ge=0, description="the first layers have a dense FFN")
    n_heads: int = Field(128, ge=1)
    n_routed_experts: int = Field(256, ge=1)
    n_shared_experts: int = Field(1, ge=0)
    n_activated_experts: int = Field(8, ge=1, description="routed experts per token (top-k)")
    n_limited_groups: int = Field(4, ge=1, description="groups (nodes) a token may reach")
    q_lora_rank: int = Field(
        1536, ge=0, description="0: no query compression (parameters counted; not timed: check_timed)"
    )
    kv_lora_rank: int = Field(512, ge=1)
    qk_nope_head_dim: int = Field(128, ge=1)
    qk_rope_head_dim: int = Field(64, ge=0)
    v_head_dim: int = Field(128, ge=1)
    dtype: str = Field(
        "fp8",
        pattern="^(fp8|bf16)$",
        description="GEMM precision: fp8 (DeepSeek's recipe) only, until a BF16 recipe is modelled",
    )
    seq_len: int = Field(4096, ge=1, description="tokens per sequence in training")
    mtp_depth: int = Field(1, ge=0, description="multi-token-prediction modules")

    @field_validator("dtype")
    @classmethod
    def _modelled(cls, dtype: str) -> str:
        if dtype != "fp8":  # accepted and ignored would give FP8's figures under a BF16 label
            raise ValueError(
                f"{dtype} training is not modelled yet: the layer's operators, the activations kept and the "
                "bytes sent follow DeepSeek's FP8 recipe; use fp8"
            )
        return dtype

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.n_dense_layers > self.n_layers:
            raise ValueError(f"n_dense_layers ({self.n_dense_layers}) exceeds n_layers ({self.n_layers})")
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError("n_activated_experts exceeds n_routed_experts")
        if self.dim % 128:
            raise ValueError(f"dim ({self.dim}) must be a multiple of 128 (FP8 1x128 tiles)")
        return self

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers

    def is_moe(self, layer: int) -> bool:
        """Layer ``layer`` (0-based) has an MoE FFN (the first ``n_dense_layers`` are dense)."""
        return layer >= self.n_dense_layers


DEEPSEEK_V3 = ModelSpec()

# keys of DeepSeek's config.json that nothing in the twin reads: a config file's are checked and
# dropped (load_model_config), a scenario's refused with the reason (sim.config.parse_scenario)
NOT_MODELLED: dict[str, str] = {
    "n_expert_groups": "not used: the node-limited routing's groups are the EP group's nodes "
    "(n_limited_groups of them per token); remove it",
    "route_scale": "not used: it scales the gate weights after the top-k selection, which changes no time "
    "or byte; remove it",
    "score_func": "not used: the experts are chosen by workload.routing (balanced, random, skewed), not "
    "from gate scores; remove it",
}

# values a ModelSpec holds (its parameters are counted) that the layer's operators do not time yet
NOT_TIMED: dict[str, str] = {
    "q_lora_rank": "0 (no query compression) is not modelled: the attention's operators follow MLA's "
    "compressed query (wq_a, q_norm, wq_b); give a rank >= 1",
    "qk_rope_head_dim": "0 is not modelled: the attention's operators include the decoupled RoPE key; give 1 or more",
    "n_shared_experts": "0 is not modelled: the MoE layer's operators include the shared experts; give 1 or more",
}


def check_timed(spec: ModelSpec, file: str | None = None) -> None:
    """Refuse a model the layer's operators cannot time (:data:`NOT_TIMED`), naming the key."""
    for key, why in NOT_TIMED.items():
        if getattr(spec, key) == 0:
            raise ScenarioError(f"model.{key}", why, file)


def parse_model(data: object, file: str | None = None) -> ModelSpec:
    """A ModelSpec from a mapping (a config.json's, or a command's), one the layer's operators time."""
    if data is None:
        return DEEPSEEK_V3
    if not isinstance(data, dict):
        raise ScenarioError("model", f"must be a mapping of keys, got {type(data).__name__}", file)
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as err:
        e = validation_error(err, ModelSpec)
        raise ScenarioError(f"model.{e.key_path}", e.message, file) from None
    check_timed(spec, file)
    return spec


def load_model_config(path: str | Path) -> ModelSpec:
    """Read a ``config.json`` of the DeepSeek-V3 family (unknown keys refused, naming the key); the keys
    nothing reads (:data:`NOT_MODELLED`) are checked and dropped: ``n_expert_groups`` a whole number,
    at least ``n_limited_groups``; ``route_scale`` a number > 0; ``score_func`` sigmoid or softmax."""
    data = read_json(path, "model config")
    if not isinstance(data, dict):
        return parse_model(data, str(path))
    data = dict(data)
    if "route_scale" in data:
        scale = data.pop("route_scale")
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale < float("inf"):
            raise ScenarioError("model.route_scale", f"must be a number > 0, got {scale!r}", str(path))
    if "score_func" in data:
        func = data.pop("score_func")
        if func not in ("sigmoid", "softmax"):
            raise ScenarioError("model.score_func", f"must be sigmoid or softmax, got {func!r}", str(path))
    if "n_expert_groups" not in data:
        return parse_model(data, str(path))
    groups = data.pop("n_expert_groups")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ScenarioError("model.n_expert_groups", f"must be a whole number >= 1, got {groups!r}", str(path))
    spec = parse_model(data, str(path))
    if spec.n_limited_groups > groups:
        raise ScenarioError(
            "model.n_limited_groups", f"{spec.n_limited_groups} exceeds n_expert_groups ({groups})", str(path)
        )
    return spec
