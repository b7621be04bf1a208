"""Serving scenarios: a deployment of a model on the cluster model, and the traffic it serves.

A serve scenario is a YAML file with a ``serve:`` section (``twin serve SCENARIO``). It describes; it
builds nothing (:mod:`sim.serve.deployment` does). Keys carry their units (``duration_s``,
``rate_per_s``); every error names the file and the key path.

Layout of a pool (REFERENCE.md section 11): ``nodes`` in units of ``unit_nodes``; each unit is one
expert-parallel group over all its GPUs (EP = unit GPUs) whose attention runs as ``attention_tp``-way
tensor parallelism with sequence parallelism, ``unit GPUs / attention_tp`` data-parallel ranks
(``attention_tp: 1`` is DP attention, DeepSeek's production layout). Each GPU holds
``experts_per_gpu`` routed-expert slots: its own experts and redundant copies of hot ones, so a unit
has ``experts_per_gpu x GPUs - routed experts`` redundant experts (DeepSeek: 9 per GPU on 32 prefill
GPUs and 2 per GPU on 144 decode GPUs, 32 redundant in both).

Defaults and their sources are in ``docs/serving.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from sim.config import (
    ClusterRef,
    ScenarioFile,
    _read_topology,
    _Strict,
    expand_model_config,
    read_for,
    scenario_data,
)
from sim.errors import ScenarioError
from sim.hardware.gpu import DEEPSEEK_COMM_SMS
from sim.hardware.profile import load_profile
from sim.model.spec import DEEPSEEK_V3, ModelSpec, check_timed
from sim.network.spec import NVL72_GPUS, ClusterSpec
from sim.overrides import EXPERT_LOADS
from sim.paths import not_a_file
from sim.yamlio import validation_error

# SGLang's default share of HBM its memory pool may take (weights + KV cache), the rest left to
# activations, CUDA graphs and the allocator (sglang server_args ``mem_fraction_static``, 0.88 on
# GPUs of 80 GB and more in its heuristics). A documented parameter: ``kv_memory_fraction``.
MEM_FRACTION_STATIC = 0.88
MAX_DURATION_S = 86_400.0
MAX_REQUESTS = 5_000_000


class TrafficSpec(_Strict):
    """Requests: Poisson arrivals at ``rate_per_s`` with fixed (or exponential) lengths, or a trace
    file (CSV ``arrival_s,input_tokens,output_tokens[,cached_tokens]``, docs/serving.md)."""

    rate_per_s: float | None = Field(None, gt=0, le=1e6, description="Poisson arrival rate, requests per second")
    input_tokens: int = Field(2000, ge=1, le=1_048_576, description="prompt length (mean when lengths: exponential)")
    output_tokens: int = Field(500, ge=1, le=1_048_576, description="generated tokens (mean when exponential)")
    lengths: str = Field("fixed", pattern="^(fixed|exponential)$", description="length distribution")
    trace: str | None = Field(None, min_length=1, description="CSV of requests, relative to the scenario file")
    prompt_cache_hit: float = Field(
        0.0, ge=0, lt=1, description="share of each prompt found in the prompt cache (not prefilled)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrafficSpec:
        if (self.rate_per_s is None) == (self.trace is None):
            raise ValueError("give either rate_per_s (Poisson arrivals) or trace (a CSV of requests)")
        if self.trace is not None:
            for key in ("input_tokens", "output_tokens", "lengths"):
                if key in self.model_fields_set:
                    raise ValueError(f"{key}: not used with a trace (its rows give each request's lengths); remove it")
        return self


class MtpSpec(_Strict):
    """Speculative decoding with the model's MTP module: each decode step verifies ``depth`` draft
    tokens per request; each is accepted with probability ``acceptance`` (V3 section 5.4.3: 85-90%
    for the second token)."""

    enabled: bool = False
    acceptance: float = Field(0.85, ge=0, le=1, description="probability a draft token is accepted")


class PoolSpec(_Strict):
    """A pool of identical units (prefill, decode or co-located)."""

    nodes: int = Field(ge=1, le=65_536, description="nodes in the pool")
    unit_nodes: int = Field(ge=1, le=65_536, description="nodes per unit (one EP group)")
    attention_tp: int = Field(1, ge=1, le=64, description="attention tensor parallelism (with SP); 1 = DP attention")
    experts_per_gpu: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="routed-expert slots per GPU, redundant copies included [default: no redundancy]",
    )
    kernels: str = Field(
        "normal", pattern="^(normal|low_latency)$", description="DeepEP kernels: normal (on SMs) or low_latency (RDMA)"
    )
    comm_sms: int = Field(DEEPSEEK_COMM_SMS, ge=0, le=256, description="SMs DeepEP's normal kernels hold (even)")
    tbo: bool = Field(True, description="two micro-batches overlapped (one's compute beside the other's all-to-all)")
    shared_as_routed: bool = Field(False, description="the shared expert dispatched like a 9th routed expert")
    max_batch_tokens: int = Field(16_384, ge=1, le=16_777_216, description="new tokens per forward per DP rank")
    max_batch: int = Field(128, ge=1, le=65_536, description="decode: requests per DP rank")
    chunked_prefill: bool = Field(True, description="split a prompt over forwards to fill max_batch_tokens")
    policy: str = Field("fcfs", pattern="^(fcfs|sjf)$", description="queue order: first come or shortest first")
    launch_gap_us: float | None = Field(
        None,
        ge=0,
        le=1e4,
        description="idle per kernel launch [6.3 (eager, the trace); decode with low-latency kernels: 0 (CUDA graphs)]",
    )
    mtp: MtpSpec = Field(default_factory=MtpSpec)
    kv_memory_fraction: float = Field(
        MEM_FRACTION_STATIC,
        gt=0,
        le=1,
        description="share of HBM for weights + KV cache (SGLang's mem_fraction_static)",
    )
    kv_dtype: str = Field("bf16", pattern="^(bf16|fp8)$", description="KV cache element type")

    @model_validator(mode="after")
    def _whole_units(self) -> PoolSpec:
        if self.nodes % self.unit_nodes:
            raise ValueError(f"nodes: {self.nodes} must be whole units of unit_nodes ({self.unit_nodes})")
        if self.comm_sms % 2:
            raise ValueError(f"comm_sms: must be even (DeepEP channels are SM pairs), got {self.comm_sms}")
        return self


class SloSpec(_Strict):
    ttft_s: float = Field(5.0, gt=0, le=3600, description="time to first token a request must meet")
    tpot_s: float = Field(0.1, gt=0, le=60, description="time per output token a request must meet")


class FloorSpec(_Strict):
    """The ISCA'25 back-of-envelope (section 4.4.2): one decode layer's dispatch + combine of
    ``tokens_per_gpu`` tokens per GPU, and the time per output token it bounds."""

    tokens_per_gpu: int = Field(32, ge=1, le=65_536)
    nvlink_domain_GBps: float = Field(900.0, gt=0, le=1e5, description="the NVL72-class domain compared")


class ServeSpec(_Strict):
    duration_s: float = Field(600.0, gt=0, le=MAX_DURATION_S, description="simulated seconds of arrivals")
    traffic: TrafficSpec | None = None
    prefill: PoolSpec | None = None
    decode: PoolSpec | None = None
    colocated: PoolSpec | None = Field(None, description="one pool doing both (instead of prefill + decode)")
    expert_load: str = Field(
        "balanced", min_length=1, description="balanced | skewed | a CSV of expert,load (relative to the file)"
    )
    router_groups: int = Field(
        8,
        ge=1,
        le=1024,
        description="the router's expert groups (DeepSeek-V3 config n_group: 8); model.n_limited_groups are kept",
    )
    slo: SloSpec = Field(default_factory=SloSpec)
    floor: FloorSpec | None = Field(None, description="report the decode all-to-all floor (ISCA'25)")
    timeline_spans: int = Field(20_000, ge=0, le=10_000_000, description="forwards kept in the Perfetto timeline")

    @model_validator(mode="after")
    def _pools(self) -> ServeSpec:
        split = self.prefill is not None or self.decode is not None
        if self.colocated is not None and split:
            raise ValueError("give either colocated or prefill + decode pools, not both")
        if self.floor is None:
            if self.colocated is None and (self.prefill is None or self.decode is None):
                raise ValueError("give prefill and decode pools, or a colocated pool")
            if self.traffic is None:
                raise ValueError("give traffic (rate_per_s or trace)")
        elif self.decode is None and self.colocated is None:
            raise ValueError("floor: needs the decode pool it measures")
        elif self.traffic is not None and self.colocated is None and self.prefill is None:
            # (traffic runs through prefill then decode: a KeyError traceback, where validate said ok)
            raise ValueError(
                "traffic: runs through prefill and decode pools, or a colocated pool, and there is no prefill "
                "pool; give one, or remove traffic (the floor alone measures the decode pool)"
            )
        return self


class ServeScenario(ScenarioFile):
    seed: int = Field(0, ge=0, le=2**32 - 1)
    model: ModelSpec = Field(default_factory=lambda: DEEPSEEK_V3)
    profile: str | None = Field(None, min_length=1, description="calibration profile [default: the H800 profile]")
    cluster: ClusterRef
    serve: ServeSpec
    _folder: Path | None = PrivateAttr(None)

    def resolve(self, relative: str) -> Path:
        """A path the scenario gives, resolved against its folder."""
        p = Path(relative)
        return p if p.is_absolute() or self._folder is None else self._folder / p

    def pools(self) -> dict[str, PoolSpec]:
        """The scenario's pools by role."""
        s = self.serve
        if s.colocated is not None:
            return {"colocated": s.colocated}
        return {k: v for k, v in (("prefill", s.prefill), ("decode", s.decode)) if v is not None}

    def cluster_spec(self) -> ClusterSpec:
        """The topology with the what-ifs of ``cluster`` (NIC and NVLink rates, an NVL72 domain)."""
        ref, spec = self.cluster, self.cluster.spec
        node: dict[str, Any] = {}
        if ref.nic_Gbps is not None:
            node["nic_Gbps"] = ref.nic_Gbps
        if ref.nvlink_GBps is not None:
            node["nvlink_GBps"] = ref.nvlink_GBps
        if ref.scale_up is not None:
            node["scale_up_gpus"] = NVL72_GPUS
        return spec.model_copy(update={"node": spec.node.model_copy(update=node)}) if node else spec


_UNUSED_CLUSTER = ("device_gpus", "oversubscription")
_PREFILL_ONLY = ("max_batch_tokens", "chunked_prefill", "policy")  # what a decode pool never reads
_DECODE_ONLY = ("max_batch", "mtp", "kv_dtype")  # what a prefill pool never reads


# what the decode floor alone (no traffic) reads of its pool: its units and placement; it times DeepEP's
# low-latency kernels with two micro-batches (TBO), so those two keys may only say so
_FLOOR_POOL_KEYS = ("nodes", "unit_nodes", "experts_per_gpu", "shared_as_routed", "kernels", "tbo")


def _floor_keys_used(sc: ServeScenario) -> None:
    """A scenario of the decode floor alone serves no request: the keys of serving are refused."""
    why = "not used by the decode floor alone (no serve.traffic); remove it"
    s = sc.serve
    for key in ("duration_s", "slo", "timeline_spans", "prefill"):
        if key in s.model_fields_set:
            raise ScenarioError(f"serve.{key}", why)
    role = "decode" if s.decode is not None else "colocated"
    pool = s.decode if s.decode is not None else s.colocated
    assert pool is not None
    for key in type(pool).model_fields:
        if key in pool.model_fields_set and key not in _FLOOR_POOL_KEYS:
            raise ScenarioError(f"serve.{role}.{key}", why)
    if pool.kernels != "low_latency":
        raise ScenarioError(f"serve.{role}.kernels", "the decode floor times DeepEP's low_latency kernels; give those")
    if not pool.tbo:
        raise ScenarioError(f"serve.{role}.tbo", "the decode floor takes two micro-batches (TBO); give true")


# a pool's keys of the expert all-to-all: what a dense model (no routed experts) never reads
_MOE_POOL_KEYS = ("experts_per_gpu", "shared_as_routed", "kernels", "comm_sms")


def _moe_keys_used(sc: ServeScenario, role: str, pool: PoolSpec) -> None:
    """A dense model has no experts to place or dispatch: the pool's MoE keys are refused; a model
    without a shared expert has none to dispatch as routed."""
    s = sc.model
    if not s.is_moe_model:
        for key in _MOE_POOL_KEYS:
            if key in pool.model_fields_set:
                raise ScenarioError(
                    f"serve.{role}.{key}",
                    f"not used: the model ({s.name}) is dense, with no routed experts to place or dispatch; remove it",
                )
    elif pool.shared_as_routed and s.n_shared_experts == 0:
        raise ScenarioError(
            f"serve.{role}.shared_as_routed",
            f"the model ({s.name}) has no shared expert to dispatch as a routed one; remove it",
        )


def _dense_serve_keys_used(sc: ServeScenario) -> None:
    """The serve keys of the routed experts, refused for a dense model (nothing routes)."""
    if sc.model.is_moe_model:
        return
    why = f"not used: the model ({sc.model.name}) is dense, with no routed experts"
    for key in ("expert_load", "router_groups"):
        if key in sc.serve.model_fields_set:
            raise ScenarioError(f"serve.{key}", f"{why}; remove it")
    if sc.serve.floor is not None:
        raise ScenarioError("serve.floor", f"{why}: there is no expert all-to-all to bound decode; remove it")


def _check(sc: ServeScenario) -> None:
    """What the description alone decides beyond types: pools fit the cluster, keys that do nothing
    for this scenario refused."""
    if "seq_len" in sc.model.model_fields_set:  # given in the scenario (no shipped model preset carries it)
        raise ScenarioError(
            "model.seq_len",
            "not used by a serve scenario (it is a training sequence): request lengths are "
            "serve.traffic.input_tokens and output_tokens (or the trace's rows), a forward's new tokens per "
            "rank serve.<pool>.max_batch_tokens; remove it",
        )
    for key in _UNUSED_CLUSTER:
        if getattr(sc.cluster, key) is not None:
            raise ScenarioError(f"cluster.{key}", "not used by a serve scenario (the pools place themselves)")
    if "completion_rtol" in sc.cluster.model_fields_set:
        raise ScenarioError(
            "cluster.completion_rtol", "not used by a serve scenario (its all-to-alls are timed in closed form)"
        )
    _dense_serve_keys_used(sc)
    if sc.serve.traffic is None:
        _floor_keys_used(sc)
    spec = sc.cluster_spec()
    fabric = spec.fabric
    for key in ("oversubscription", "core_oversubscription"):  # (the results were those of a full fabric)
        if getattr(fabric, key) != 1:
            message = (
                f"{getattr(fabric, key)}:1, but a serve scenario takes the fabric between NICs as non-blocking "
                "(docs/serving.md); give a topology without oversubscription"
            )
            raise ScenarioError(f"fabric.{key}", message, str(sc.cluster.path))
    g = spec.node.gpus_per_node
    total = 0
    experts = sc.model.n_routed_experts
    for role, pool in sc.pools().items():
        total += pool.nodes
        gpus = pool.unit_nodes * g
        if gpus % pool.attention_tp:
            raise ScenarioError(f"serve.{role}.attention_tp", f"must divide the unit's {gpus} GPUs")
        if pool.attention_tp > g:
            raise ScenarioError(f"serve.{role}.attention_tp", f"tensor parallelism stays inside a node of {g} GPUs")
        slots = pool.experts_per_gpu if pool.experts_per_gpu is not None else -(-experts // gpus)
        if experts and slots * gpus < experts:
            raise ScenarioError(
                f"serve.{role}.experts_per_gpu",
                f"{slots} x {gpus} GPUs = {slots * gpus} slots cannot hold the {experts} routed experts",
            )
        if pool.kernels == "normal" and pool.comm_sms >= (load_profile(sc.profile_path).device.sms):
            raise ScenarioError(f"serve.{role}.comm_sms", "leaves no SM to compute")
        if pool.kernels == "normal" and pool.comm_sms < 2:
            raise ScenarioError(
                f"serve.{role}.comm_sms", f"normal kernels need a channel (2 SMs) to move tokens, got {pool.comm_sms}"
            )
        if pool.kernels == "low_latency" and "comm_sms" in pool.model_fields_set:
            raise ScenarioError(
                f"serve.{role}.comm_sms",
                "not used by low_latency kernels (they drive RDMA without holding SMs); remove it",
            )
        if pool.mtp.enabled and sc.model.mtp_depth < 1:
            raise ScenarioError(f"serve.{role}.mtp.enabled", "the model has no MTP module (mtp_depth 0)")
        only = _DECODE_ONLY if role == "prefill" else _PREFILL_ONLY if role == "decode" else ()
        for key in only:
            if key in pool.model_fields_set:
                other = "decode" if role == "prefill" else "prefill"
                raise ScenarioError(
                    f"serve.{role}.{key}", f"a {other} pool's key (or a colocated pool's); remove it here"
                )
        if "acceptance" in pool.mtp.model_fields_set and not pool.mtp.enabled:
            raise ScenarioError(
                f"serve.{role}.mtp.acceptance",
                "not used: MTP is off (mtp.enabled: false), so no draft token is accepted; remove it or enable MTP",
            )
        _moe_keys_used(sc, role, pool)
    domain = spec.node.domain_gpus
    for role, pool in sc.pools().items():
        gpus = pool.unit_nodes * g
        if gpus > domain and gpus % domain:
            raise ScenarioError(
                "cluster.scale_up", f"a {role} unit of {gpus} GPUs does not split into NVLink domains of {domain}"
            )
    e, k = sc.model.n_routed_experts, sc.model.n_activated_experts
    groups, limit = sc.serve.router_groups, sc.model.n_limited_groups
    if "router_groups" in sc.serve.model_fields_set and sc.model.is_moe_model and limit >= groups:
        raise ScenarioError(
            "serve.router_groups",
            f"not used: the router keeps {limit} expert groups a token (model.n_limited_groups), so splitting the "
            f"experts into {groups} limits no token; give more than {limit} groups, or remove it",
        )
    if e and limit < groups:
        if e % groups:
            raise ScenarioError("serve.router_groups", f"must divide the model's {e} routed experts, got {groups}")
        if e // groups * limit < k:
            raise ScenarioError(
                "serve.router_groups",
                f"{groups} groups of {e // groups} experts, {limit} kept (model.n_limited_groups), hold "
                f"{e // groups * limit} experts: fewer than the {k} a token picks",
            )
    if sc.cluster.scale_up is not None and all(p.unit_nodes == 1 for p in sc.pools().values()):
        raise ScenarioError(
            "cluster.scale_up", f"every unit fits one node of {g} GPUs already; nothing moves to a larger NVLink domain"
        )
    if total > spec.nodes:
        raise ScenarioError("serve", f"the pools take {total} nodes; the cluster has {spec.nodes}")
    check_timed(sc.model)


def parse_serve(data: Any, path: str | Path, folder: Path) -> ServeScenario:
    """Validate ``data`` (a serve scenario's mapping read from ``path``)."""
    try:
        sc = ServeScenario.model_validate(expand_model_config(data, folder))
    except ValidationError as err:
        raise validation_error(err, ServeScenario).with_file(str(path)) from None
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(path))) from None
    sc._source_path, sc._folder = Path(path), folder
    try:
        _read_topology(sc.cluster, folder)
        if sc.profile is not None:
            p = folder / sc.profile
            if not p.is_file():
                raise ScenarioError("profile", not_a_file(p, sc.profile, "no such profile", "; give a profile"))
            sc._profile_path = p
        with read_for("profile", "calibration profile"):  # a file of another kind says which key named it
            load_profile(sc.profile_path)
        trace = sc.serve.traffic.trace if sc.serve.traffic is not None else None
        if trace is not None and not sc.resolve(trace).is_file():
            raise ScenarioError(
                "serve.traffic.trace", not_a_file(sc.resolve(trace), trace, "no such file", "; give a CSV file")
            )
        load = sc.serve.expert_load
        if load not in EXPERT_LOADS and not sc.resolve(load).is_file():
            why = not_a_file(sc.resolve(load), load, "no such file")
            raise ScenarioError("serve.expert_load", f"balanced, skewed or a CSV file; {why}")
        _check(sc)
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(path))) from None
    return sc


def is_serve_data(data: Any) -> bool:
    return isinstance(data, dict) and "serve" in data


def load_serve(path: str | Path) -> ServeScenario:
    """Read and validate a serve scenario (or a derived one: ``base`` + ``set``)."""
    data, folder = scenario_data(path)
    if not is_serve_data(data):
        raise ScenarioError("serve", "not a serve scenario: give a 'serve' section (twin run runs training)", str(path))
    return parse_serve(data, path, folder)
