"""The model: DeepSeek-V3 by default, any model of the same family from its fields.

Field names are those of DeepSeek-V3's ``config_671B.json`` (``shared/reference/deepseek-v3/``),
so a scenario's ``model:`` section or ``twin ... --model-config config.json`` can give them as
published. Defaults: that file and REFERENCE.md section 1 (MTP depth 1, sequence 4096, FP8 recipe).
Fields the config file does not carry (``seq_len``, ``mtp_depth``) have their REFERENCE.md values.

One key of the config file is not a field: ``n_expert_groups``, the groups of DeepSeek's inference
router. The twin's node-limited routing takes its groups from the EP placement (a group is a node of
the EP group: :class:`sim.moe.spec.MoESpec`), so nothing would read it; :func:`load_model_config`
accepts it in a config file, checks ``n_limited_groups`` against it and drops it. A scenario's
``model:`` section refuses it like any unknown key.
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
    route_scale: float = Field(2.5, gt=0)
    score_func: str = Field("sigmoid", pattern="^(sigmoid|softmax)$")
    q_lora_rank: int = Field(1536, ge=0, description="0: no query compression")
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


def parse_model(data: object, file: str | None = None) -> ModelSpec:
    """A ModelSpec from a mapping (a scenario's ``model:`` section or a config.json)."""
    if data is None:
        return DEEPSEEK_V3
    if not isinstance(data, dict):
        raise ScenarioError("model", f"must be a mapping of keys, got {type(data).__name__}", file)
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as err:
        e = validation_error(err, ModelSpec)
        raise ScenarioError(f"model.{e.key_path}", e.message, file) from None


def load_model_config(path: str | Path) -> ModelSpec:
    """Read a ``config.json`` of the DeepSeek-V3 family (unknown keys refused, naming the key); its
    ``n_expert_groups`` is checked (a whole number, at least ``n_limited_groups``) and dropped."""
    data = read_json(path, "model config")
    if not isinstance(data, dict) or "n_expert_groups" not in data:
        return parse_model(data, str(path))
    data = dict(data)
    groups = data.pop("n_expert_groups")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ScenarioError("model.n_expert_groups", f"must be a whole number >= 1, got {groups!r}", str(path))
    spec = parse_model(data, str(path))
    if spec.n_limited_groups > groups:
        raise ScenarioError(
            "model.n_limited_groups", f"{spec.n_limited_groups} exceeds n_expert_groups ({groups})", str(path)
        )
    return spec
