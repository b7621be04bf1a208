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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.errors import ScenarioError, kind_of
from sim.limits import MAX_EXPERTS, MAX_HIDDEN, MAX_LAYERS, MAX_TOKENS, MAX_VOCAB
from sim.yamlio import validation_error


class ModelSpec(BaseModel):
    """A decoder-only transformer: MLA (DeepSeek) or GQA/MHA attention (Llama, Qwen, Mixtral); dense
    SwiGLU FFNs in the first ``n_dense_layers`` layers and in ``mlp_only_layers``, MoE in the others
    (none when ``n_routed_experts`` is 0: a dense model). Defaults: DeepSeek-V3."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field("DeepSeek-V3", min_length=1)
    vocab_size: int = Field(129280, ge=1, le=MAX_VOCAB)
    dim: int = Field(7168, ge=128, le=MAX_HIDDEN, description="hidden size")
    inter_dim: int = Field(18432, ge=1, le=MAX_HIDDEN, description="dense FFN intermediate size")
    moe_inter_dim: int = Field(2048, ge=1, le=MAX_HIDDEN, description="expert intermediate size")
    n_layers: int = Field(61, ge=1, le=MAX_LAYERS)
    n_dense_layers: int = Field(3, ge=0, le=MAX_LAYERS, description="the first layers have a dense FFN")
    mlp_only_layers: tuple[int, ...] = Field((), description="other layers (0-based) with a dense FFN")
    n_heads: int = Field(128, ge=1, le=MAX_HIDDEN)
    attention: str = Field(
        "mla", pattern="^(mla|gqa|mha)$", description="mla (DeepSeek), gqa (grouped KV heads) or mha"
    )
    n_kv_heads: int = Field(0, ge=0, le=MAX_HIDDEN, description="gqa/mha: key/value heads [0: n_heads]")
    head_dim: int = Field(0, ge=0, le=MAX_HIDDEN, description="gqa/mha: width of a head [0: dim / n_heads]")
    qk_norm: bool = Field(False, description="gqa/mha: RMSNorm of each query and key head (Qwen3)")
    n_routed_experts: int = Field(256, ge=0, le=MAX_EXPERTS, description="0: a dense model")
    n_shared_experts: int = Field(1, ge=0, le=MAX_EXPERTS)
    n_activated_experts: int = Field(8, ge=0, le=MAX_EXPERTS, description="routed experts per token (top-k)")
    n_limited_groups: int = Field(
        4, ge=1, le=MAX_EXPERTS, description="groups (nodes) a token may reach; top-k or more: no limit"
    )
    router_bias: bool = Field(True, description="the gate's balancing bias (auxiliary-loss-free, V3)")
    tie_word_embeddings: bool = Field(False, description="the output head is the embedding table")
    q_lora_rank: int = Field(
        1536, ge=0, le=MAX_HIDDEN, description="0: no query compression (parameters counted; not timed: check_timed)"
    )
    kv_lora_rank: int = Field(512, ge=1, le=MAX_HIDDEN)
    qk_nope_head_dim: int = Field(128, ge=1, le=MAX_HIDDEN)
    qk_rope_head_dim: int = Field(64, ge=0, le=MAX_HIDDEN)
    v_head_dim: int = Field(128, ge=1, le=MAX_HIDDEN)
    dtype: str = Field(
        "fp8",
        pattern="^(fp8|bf16)$",
        description="training recipe: fp8 (DeepSeek's) or bf16 (Megatron-Core's mixed precision)",
    )
    seq_len: int = Field(4096, ge=1, le=MAX_TOKENS, description="tokens per sequence in training")
    mtp_depth: int = Field(1, ge=0, le=MAX_LAYERS, description="multi-token-prediction modules")

    @field_validator("mlp_only_layers", mode="before")
    @classmethod
    def _layer_list(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value  # YAML and JSON give lists

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.n_routed_experts and self.n_dense_layers > self.n_layers:  # (a dense model never reads it)
            raise ValueError(f"n_dense_layers: {self.n_dense_layers} exceeds n_layers ({self.n_layers})")
        bad = [i for i in self.mlp_only_layers if not 0 <= i < self.n_layers]
        if bad:
            raise ValueError(f"mlp_only_layers: layer {bad[0]} is not in 0..{self.n_layers - 1}")
        twice = [i for k, i in enumerate(self.mlp_only_layers) if i in self.mlp_only_layers[:k]]
        if twice:
            raise ValueError(f"mlp_only_layers: layer {twice[0]} is listed twice; give it once")
        early = [i for i in self.mlp_only_layers if i < self.n_dense_layers]
        if early:  # (dense already: the entry would change nothing)
            raise ValueError(
                f"mlp_only_layers: layer {early[0]} is one of the first n_dense_layers ({self.n_dense_layers}), "
                "dense already; remove it"
            )
        if self.n_routed_experts == 0 and (self.n_activated_experts or self.n_shared_experts):
            raise ValueError(
                "n_routed_experts: a dense model (0 routed experts) has no activated or shared experts: "
                "set n_activated_experts and n_shared_experts to 0"
            )
        if self.n_routed_experts == 0 and self.mtp_depth:
            raise ValueError(
                "mtp_depth: a dense model's multi-token-prediction module is not modelled (an MTP block is "
                "timed as an MoE layer): set mtp_depth to 0"
            )
        if self.n_routed_experts and self.n_activated_experts < 1:
            raise ValueError("n_activated_experts: must be at least 1 in an MoE model")
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError(
                f"n_activated_experts: {self.n_activated_experts} exceeds n_routed_experts ({self.n_routed_experts})"
            )
        if self.dim % 128:
            raise ValueError(f"dim: {self.dim} must be a multiple of 128 (FP8 1x128 tiles)")
        self._refuse_unread()
        if self.attention != "mla":
            if self.n_heads % self.kv_heads:
                raise ValueError(f"n_kv_heads: {self.kv_heads} must divide n_heads ({self.n_heads})")
            if self.attention == "mha" and self.kv_heads != self.n_heads:
                raise ValueError(f"n_kv_heads: mha has as many key/value heads as heads ({self.n_heads}); use gqa")
            if not self.head_dim and self.dim % self.n_heads:
                raise ValueError(f"n_heads: dim ({self.dim}) is not a multiple of {self.n_heads} heads: give head_dim")
        return self

    def _refuse_unread(self) -> None:
        """A key given where this model's kind reads nothing of it is refused, naming it: GQA's keys
        in an MLA model and MLA's in a GQA/MHA one; MoE keys in a dense model."""
        unread = {
            "mla": (("n_kv_heads", "head_dim", "qk_norm"), "used by gqa/mha attention only"),
            "gqa": (MLA_KEYS, "used by mla attention only"),
            "mha": (MLA_KEYS, "used by mla attention only"),
        }
        keys, why = unread[self.attention]
        if not self.n_routed_experts:
            keys, why = keys + DENSE_UNREAD, why
        for key in keys:
            if key in self.model_fields_set:
                reason = why if key not in DENSE_UNREAD else "a dense model (n_routed_experts 0) has no MoE layers"
                raise ValueError(f"{key}: not used: {reason}; remove it")

    @property
    def qk_head_dim(self) -> int:
        """Width of a query/key head: MLA's non-positional and RoPE parts, or a GQA/MHA head."""
        if self.attention != "mla":
            return self.attn_head_dim
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def value_head_dim(self) -> int:
        """Width of a value head (MLA: ``v_head_dim``; GQA/MHA: the head width)."""
        return self.v_head_dim if self.attention == "mla" else self.attn_head_dim

    @property
    def kv_heads(self) -> int:
        """GQA/MHA key/value heads (``n_kv_heads``, or one per head)."""
        return self.n_kv_heads or self.n_heads

    @property
    def attn_head_dim(self) -> int:
        """GQA/MHA head width (``head_dim``, or ``dim / n_heads``)."""
        return self.head_dim or self.dim // self.n_heads

    @property
    def is_moe_model(self) -> bool:
        return self.n_routed_experts > 0 and self.moe_layers > 0

    @property
    def moe_layers(self) -> int:
        return sum(1 for layer in range(self.n_layers) if self.is_moe(layer))

    def is_moe(self, layer: int) -> bool:
        """Layer ``layer`` (0-based) has an MoE FFN: not one of the first ``n_dense_layers``, not in
        ``mlp_only_layers``, in a model with routed experts. Layer ``n_layers`` and after (the MTP
        blocks) are MoE layers in an MoE model."""
        return self.n_routed_experts > 0 and layer >= self.n_dense_layers and layer not in self.mlp_only_layers

    def layer_pattern(self) -> str:
        """The layers as runs: ``dense 0-2, moe 3-60``."""
        runs: list[tuple[str, int, int]] = []
        for layer in range(self.n_layers):
            kind = "moe" if self.is_moe(layer) else "dense"
            if runs and runs[-1][0] == kind:
                runs[-1] = (kind, runs[-1][1], layer)
            else:
                runs.append((kind, layer, layer))
        return ", ".join(f"{k} {a}" if a == b else f"{k} {a}-{b}" for k, a, b in runs)


MLA_KEYS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
DENSE_UNREAD = ("moe_inter_dim", "n_limited_groups", "router_bias", "n_dense_layers", "mlp_only_layers")

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
    "qk_rope_head_dim": "0 is not modelled: MLA's operators include the decoupled RoPE key; give 1 or more",
}


def check_timed(spec: ModelSpec, file: str | None = None) -> None:
    """Refuse a model the layer's operators cannot time (:data:`NOT_TIMED`), naming the key."""
    for key, why in NOT_TIMED.items():
        if spec.attention == "mla" and getattr(spec, key) == 0:
            raise ScenarioError(f"model.{key}", why, file)


def parse_model(data: object, file: str | None = None, timed: bool = True) -> ModelSpec:
    """A ModelSpec from a mapping (a config.json's, or a command's); with ``timed``, one the layer's
    operators time (:func:`check_timed`)."""
    if data is None:
        return DEEPSEEK_V3
    if not isinstance(data, dict):
        raise ScenarioError("model", f"must be a mapping of keys, got {kind_of(data)}", file)
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as err:
        e = validation_error(err, ModelSpec)
        raise ScenarioError(f"model.{e.key_path}" if e.key_path else "model", e.message, file) from None
    if timed:
        check_timed(spec, file)
    return spec


# The keys of DeepSeek's own format that define the model's shape: its code (``ModelArgs``) has other
# defaults for them than the V3 values the twin's fields default to, so a file must give them.
DEEPSEEK_REQUIRED = ("vocab_size", "dim", "inter_dim", "n_layers", "n_heads")


def deepseek_config_fields(data: dict[str, object], path: str) -> dict[str, object]:
    """The ModelSpec fields of a config in DeepSeek's own format (``config_671B.json``): its keys are
    the fields; the keys nothing reads (:data:`NOT_MODELLED`) are checked and dropped:
    ``n_expert_groups`` a whole number, at least ``n_limited_groups``; ``route_scale`` a number > 0;
    ``score_func`` sigmoid or softmax."""
    data = dict(data)
    for key in DEEPSEEK_REQUIRED:  # (else V3's value, under the file's name: '{}' was DeepSeek-V3)
        if key not in data:
            raise ScenarioError(
                key, f"required key is missing (a config in DeepSeek's format has {', '.join(DEEPSEEK_REQUIRED)})", path
            )
    if "route_scale" in data:
        scale = data.pop("route_scale")
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale < float("inf"):
            raise ScenarioError("route_scale", f"must be a number > 0, got {scale!r}", path)
    if "score_func" in data:
        func = data.pop("score_func")
        if func not in ("sigmoid", "softmax"):
            raise ScenarioError("score_func", f"must be sigmoid or softmax, got {func!r}", path)
    if "n_expert_groups" in data:
        groups = data.pop("n_expert_groups")
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ScenarioError("n_expert_groups", f"must be a whole number >= 1, got {groups!r}", path)
        limited = data.get("n_limited_groups", DEEPSEEK_V3.n_limited_groups)
        if isinstance(limited, int) and limited > groups:
            raise ScenarioError("n_limited_groups", f"{limited} exceeds n_expert_groups ({groups})", path)
    return data
