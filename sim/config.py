"""Scenario files: YAML loaded into frozen, typed config objects with strict keys.

Every error is a :class:`~sim.errors.ScenarioError` whose one-line message names the file, the key
path and what is allowed, e.g.::

    scenarios/bad.yaml: pipeline.pp: dualpipe needs an even PP >= 2 (two stages per device), got 7

Units are in key names (``forward_ms``, ``bandwidth_GBps``, ``latency_us``); inside the simulator
everything is SI (seconds, bytes, bytes/s).

The scenario describes: this module holds the schema, reads the files a scenario names (topology,
profile) and checks what the description alone decides (types, ranges, unknown keys, sizes, keys that
do not go together, files that exist and parse). It builds nothing: the layout, schedules, fabric,
cost model, routing and memory check are :func:`sim.assemble.assemble`'s, which ``twin validate`` and
every run share. It imports no training, pipeline-execution or memory code; the schedule registry
(:data:`~sim.pipeline.schedules.SCHEDULES`) is read for the names a scenario may give and the devices
a schedule takes (``pipeline.schedules``, ``cluster.device_gpus``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from sim.economics import FABRIC_LIFE_YEARS, GPU_HOUR_USD
from sim.errors import ScenarioError, kind_of, shown
from sim.hardware.gpu import DEEPSEEK_COMM_SMS, NIC_Gbps
from sim.hardware.profile import DEFAULT_PROFILE, load_profile
from sim.layout_defaults import DEFAULT_EP, DEFAULT_GLOBAL_BATCH, DEFAULT_GPUS
from sim.limits import MAX_BYTES, MAX_GPUS, MAX_RATE, MAX_TIME, MAX_TOKENS, MIN_RATE, check_scenario_sizes
from sim.model.catalog import checked_fields
from sim.model.spec import DEEPSEEK_V3, NOT_MODELLED, ModelSpec, check_timed
from sim.network.spec import NVL72_GPUS, ClusterSpec, parse_cluster
from sim.network.tolerance import COMPLETION_RTOL
from sim.overrides import apply_overrides, check_key, resolve_paths
from sim.paths import DEFAULT_SCENARIO
from sim.pipeline.costs import first_short_pair, takes_no_time
from sim.pipeline.schedules import (
    COMPARED,
    SCHEDULES,
    build_schedule,
    most_devices,
    schedules_that,
    virtual_stages_used,
)
from sim.units import gbit_to_gbyte
from sim.yamlio import parse_yaml, read_text, read_yaml, validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# the schedules that split a device into pipeline.virtual_stages model chunks (the others ignore it), those
# that split a backward B into its input-gradient I and weight-gradient W parts (ops.weight_ms is read by
# these only) and those that overlap a forward and a backward in an F&B pair (ops.overlapped_ms;
# interleaved-1f1b-overlap pairs none in small layouts: under 4 micro-batches at PP 3 and more): the
# registry's flags (sim.pipeline.schedules.register; tests build every registered schedule to check them)
VIRTUAL_STAGE_SCHEDULES = schedules_that("virtual")
SPLIT_BACKWARD_SCHEDULES = schedules_that("splits_backward")
OVERLAP_SCHEDULES = schedules_that("pairs")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


class PipelineSpec(_Strict):
    """The pipeline layout and the schedules to run on it."""

    pp: int = Field(ge=1, description="model stages (devices = PP, or PP/2 for dualpipev)")
    microbatches: int | None = Field(
        None, ge=1, description="micro-batches per step [training step: global batch / (DP x micro-batch size)]"
    )
    virtual_stages: int = Field(
        2, ge=1, description="model chunks per device (interleaved-1f1b, its -overlap, interleaved-zb, looped-bfs)"
    )
    schedules: list[str] = Field(default_factory=lambda: list(COMPARED), min_length=1)

    @field_validator("schedules")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in SCHEDULES:
                raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        if len(set(names)) != len(names):
            raise ValueError("a schedule is listed twice")
        return names


class OpsSpec(_Strict):
    """Abstract-mode op times in milliseconds: one value for every stage, or one per model stage."""

    forward_ms: list[float] = Field(description="F: forward chunk of one stage, one micro-batch")
    backward_ms: list[float] = Field(description="B: full backward (input + weight gradients)")
    weight_ms: list[float] = Field(
        default_factory=lambda: [0.0],
        description="W: the weight-gradient part of B (I = B - W); required where a schedule splits B into I and W "
        "(SPLIT_BACKWARD_SCHEDULES), refused (but 0) where none does",
    )
    overlapped_ms: list[float] | None = Field(
        None,
        description="F&B: an overlapped forward+backward pair, at least the longer of F and B [default: F + B, no "
        "overlap]; refused where no schedule pairs them (OVERLAP_SCHEDULES)",
    )
    measured_at_compute_sms: int | None = Field(
        None, ge=1, description="SMs computing when these times were measured (DeepSeek's trace: 112); enables comm.sms"
    )

    _scalar = field_validator("forward_ms", "backward_ms", "weight_ms", "overlapped_ms", mode="before")(_as_list)


class P2PSpec(_Strict):
    """The simple point-to-point link between pipeline stages (alpha-beta model)."""

    activation_bytes: float = Field(
        0.0, ge=0, le=MAX_BYTES, description="bytes sent per micro-batch at a stage boundary"
    )
    bandwidth_GBps: float = Field(
        gbit_to_gbyte(NIC_Gbps), ge=MIN_RATE, le=MAX_RATE, description="per directed link; default one 400G IB NIC"
    )
    latency_us: float = Field(0.0, ge=0, le=MAX_TIME, description="per transfer")


class CommSpec(_Strict):
    """The SM split: SMs reserved for communication kernels, or a communication co-processor."""

    sms: int = Field(DEEPSEEK_COMM_SMS, ge=0, description="SMs for communication, even (DeepSeek-V3: 20 = 10 channels)")
    coprocessor: bool = Field(False, description="communication off the SMs: all SMs compute")
    combine_format: str = Field(
        "bf16",
        pattern="^(bf16|logfmt10|logfmt8)$",
        description="the combine's payload: BF16, or ISCA'25's LogFMT-nBit (10 or 8 bits; sim/moe/spec.py)",
    )
    dispatch_format: str = Field(
        "fp8",
        pattern="^(fp8|bf16)$",
        description="the dispatched rows under an FP8 recipe: fp8 (DeepSeek's DeepEP) or bf16 (Megatron-Core's "
        "DeepEP path, which dispatches the hidden states as they are and casts where they arrive; "
        "sim/model/megatron_dispatch.py)",
    )
    multicast: bool = Field(
        False,
        description="the dispatch's IB copies of a token replicated in the switch: one copy leaves the GPU "
        "(ISCA'25; sim/moe/multicast.py)",
    )
    in_network_reduce: bool = Field(
        False, description="the combine's partial sums added in the switch: one copy reaches the GPU (ISCA'25)"
    )
    profile: str | None = Field(None, description="moved: the calibration profile is the scenario's 'profile'")

    @field_validator("profile")
    @classmethod
    def _moved(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("moved: the calibration profile is the scenario's top-level 'profile' key")
        return value


class ComputeSpec(_Strict):
    """The compute-side hardware what-ifs of the DeepSeek-V3 report (sim/model/compute_whatifs.py)."""

    online_quantization: bool = Field(
        False, description="FP8 casts fused into the producer or the copy: the fp8-cast kernels' HBM round trip gone"
    )
    transposed_reads: bool = Field(
        False, description="GEMMs read FP8 operands transposed: the backward's transpose/re-quantise kernels gone"
    )
    fp8_scaling: str = Field(
        "software",
        pattern="^(software|native|current)$",
        description="native: block-scaled GEMMs at the tensor-wise scaled GEMM's measured speed, no scale transposes; "
        "current: per-tensor current scaling (Transformer Engine's FP8-CS): tensor-wise GEMMs, each cast after an "
        "amax pass over its input",
    )
    fp8_accumulation: str = Field(
        "promoted",
        pattern="^(promoted|full)$",
        description="full: FP8 partial sums stay in the tensor cores; GEMMs without software block scaling run the "
        "profile's measured promotion factor faster (sim/hardware/promotion.py)",
    )


class WorkloadSpec(_Strict):
    """How op times come from the model when ``ops`` is not given: a chunk of the model's layers per
    stage, timed by the chunk model (sim.chunk) with the scenario's profile and SM split."""

    layers_per_stage: int = Field(4, ge=1, description="layers in each stage's chunk (uniform stages)")
    first_layer: int | None = Field(None, ge=0, description="first layer of the chunk [default: the first MoE layer]")
    tokens: int = Field(DEEPSEEK_V3.seq_len, ge=1, description="tokens per micro-batch per GPU (one sequence)")
    ep: int = Field(DEFAULT_EP, ge=1, description="expert-parallel group size (GPUs)")
    routing: str = Field("balanced", pattern="^(balanced|random|skewed)$", description="gating of the routed experts")
    capacity_factor: float | None = Field(
        None,
        gt=0,
        le=1024,
        description="expert capacity per EP rank, ceil(tokens x top-k / experts x factor); choices past it dropped "
        "[default: dropless] (sim/moe/capacity.py)",
    )
    pad_to_capacity: bool = Field(False, description="every expert computes its whole capacity (needs capacity_factor)")
    dispatcher: str = Field(
        "deepep",
        pattern="^(deepep|alltoall)$",
        description="token dispatcher: deepep, or alltoall (Megatron's NCCL all-to-all: a row per chosen expert, "
        "no deduplication; sim/moe/nccl_a2a.py)",
    )

    interference: str = Field("trace", pattern="^(trace|profile|none)$", description="compute/comm slowdowns")
    gemm_beside_comm: float | None = Field(None, ge=1, description="GEMM slowdown beside DeepEP [default: trace]")
    memory_beside_comm: float | None = Field(None, ge=1, description="memory-bound slowdown [default: trace]")
    comm_beside_compute: dict[str, float] | None = Field(
        None, description="DeepEP slowdown beside compute per phase: dispatch, dispatch-cached, combine"
    )
    launch_gap_us: float | None = Field(None, ge=0, le=MAX_TIME, description="idle per kernel launch [default: trace]")
    notify_wait_us: float | None = Field(
        None, ge=0, le=MAX_TIME, description="DeepEP notify wait (rank skew) [default: trace]"
    )
    nccl_sms: int | None = Field(
        None,
        ge=0,
        le=1024,
        description="SMs an NCCL all-to-all kernel takes from the compute beside it (dispatcher alltoall) "
        "[default: 32, sim/chunk/overheads.py]",
    )

    @field_validator("comm_beside_compute")
    @classmethod
    def _some_phase(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and not value:  # {} was accepted, every phase left at the trace's slowdown
            raise ValueError(
                "an empty mapping changes nothing; give a slowdown for one or more of dispatch, dispatch-cached, "
                "combine (e.g. {combine: 1.5}), or remove it"
            )
        return value


class ClusterRef(_Strict):
    """Run stage-to-stage transfers on a cluster network instead of the simple p2p link."""

    topology: str = Field(min_length=1, description="topology YAML, relative to the scenario file")
    device_gpus: list[int] | None = Field(None, description="GPU of each pipeline device [default: one per node]")
    completion_rtol: float = Field(
        COMPLETION_RTOL, ge=0, lt=1, description="flow completion grouping; 0 = exact (sim/network/tolerance.py)"
    )
    nic_Gbps: float | None = Field(
        None, ge=MIN_RATE, le=MAX_RATE, description="what-if: every NIC (IB) at this rate [default: topology]"
    )
    nvlink_GBps: float | None = Field(
        None, ge=MIN_RATE, le=MAX_RATE, description="what-if: NVLink per GPU per direction [default: topology]"
    )
    oversubscription: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="what-if: fat tree's first-layer down:up ratio k:1, k fewer uplinks [default: topology]",
    )
    scale_up: str | None = Field(
        None,
        pattern="^nvl72$",
        description="what-if: each EP group inside one 72-GPU NVLink domain (an NVL72 rack): its all-to-alls on "
        "NVLink [default: the topology's nodes]",
    )
    _spec: ClusterSpec | None = PrivateAttr(None)
    _path: Path | None = PrivateAttr(None)

    @property
    def spec(self) -> ClusterSpec:
        """The cluster description, once :func:`load_scenario` has read the topology file."""
        if self._spec is None:
            raise RuntimeError("cluster topology not loaded; use load_scenario()")
        return self._spec

    @property
    def path(self) -> Path:
        """The topology file, resolved against the scenario's folder (errors building it name it)."""
        return self._path if self._path is not None else Path(self.topology)

    def placement(self, devices: int) -> tuple[int, ...]:
        """GPU of each of ``devices`` pipeline devices."""
        if self.device_gpus is not None:
            return tuple(self.device_gpus)
        g = self.spec.node.gpus_per_node
        return tuple(d * g if self.spec.nodes >= devices else d for d in range(devices))


class TrainingSpec(_Strict):
    """The full training step (sim.step.simulate): the cluster's GPUs, the global batch, the data-parallel
    phase and the fidelity. Present = ``twin run`` simulates a training step; absent = a schedule
    comparison on given or chunk-model op times."""

    gpus: int = Field(DEFAULT_GPUS, ge=1, le=MAX_GPUS, description="GPUs in the job (PP ranks x GPUs per rank)")
    global_batch: int | None = Field(
        None,
        ge=1,
        description=f"sequences per step [default: {DEFAULT_GLOBAL_BATCH}, DeepSeek-V3's batch after its ramp]",
    )
    microbatch_sequences: int = Field(1, ge=1, description="sequences per micro-batch per GPU")
    tp: int = Field(1, ge=1, le=1024, description="tensor parallelism with sequence parallelism, inside a node")
    cp: int = Field(1, ge=1, le=4096, description="context parallelism: the sequence split over cp GPUs")
    recompute: str = Field(
        "selective",
        pattern="^(selective|none|full)$",
        description="activation recomputation: selective (the recipe's: norms, MLA up-projections), none, or "
        "full (each layer's forward again in its backward; docs/models.md)",
    )
    etp: int = Field(
        1,
        ge=1,
        le=1024,
        description="expert tensor parallelism: each routed expert split over etp GPUs of a node "
        "(Megatron's --expert-tensor-parallel-size)",
    )
    cp_comm: str = Field(
        "all_gather",
        pattern="^(all_gather|p2p)$",
        description="CP keys and values: all_gather before the attention (Llama 3), or p2p: ring attention, passed "
        "around the CP ring beside it (Megatron's --cp-comm-type)",
    )
    fsdp: bool = Field(
        False,
        description="FSDP / ZeRO-3 instead of ZeRO-1: weights, gradients and optimizer state sharded; each unit "
        "(block, embedding, head) all-gathered before it computes, one unit ahead, and its gradients "
        "reduce-scattered after its backward (docs/step.md)",
    )
    fsdp_reshard_after_forward: bool = Field(
        True, description="FSDP: free a unit's gathered weights after its forward (gather again for the backward)"
    )
    tp_comm_overlap: bool = Field(
        False, description="TP all-gathers and reduce-scatters beside their GEMMs (Megatron's --tp-comm-overlap)"
    )
    layers_per_stage: list[int] | str = Field(
        "even",
        description="layers of each stage along a route, first to last; 'even' (as even as possible) or "
        "'balanced' (by predicted cost: sim/step/layer_split.py)",
    )

    @field_validator("layers_per_stage")
    @classmethod
    def _split(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, str) and value not in ("even", "balanced"):
            raise ValueError(f"give a list of layer counts, 'even' or 'balanced', got {value!r}")
        return value

    fidelity: str = Field(
        "representative", pattern="^(representative|per-gpu)$", description="one EP group, or every EP group"
    )
    routing_samples: int = Field(
        1, ge=1, le=1024, description="routings drawn per layer (per EP group in per-gpu), cycled over micro-batches"
    )
    dp_overlap: str = Field(
        "none", pattern="^(none|tail)$", description="ZeRO-1 collectives after the whole pipeline, or per rank"
    )
    dp_algorithm: str = Field("hierarchical", pattern="^(hierarchical|ring)$", description="non-expert DP")
    contention: str = Field(
        "shared",
        pattern="^(shared|isolated)$",
        description="shared: every byte of the step on one network in one event loop; isolated: DeepEP phases, "
        "pipeline sends and ZeRO-1 collectives each timed alone (docs/step.md)",
    )
    grad_reduce_bytes: int = Field(4, ge=1, le=8, description="bytes per gradient element reduced [FP32]")
    check_memory: bool = Field(True, description="refuse layouts whose memory exceeds the GPU's")


class EconomicsSpec(_Strict):
    """Prices for the cost per trillion tokens (sim/economics.py gives the sources of the defaults)."""

    gpu_hour_usd: float = Field(GPU_HOUR_USD, ge=0, le=1e4, description="GPU rental price per hour, network excluded")
    fabric_life_years: float = Field(
        FABRIC_LIFE_YEARS, gt=0, le=100, description="years the fabric's cost is spread over"
    )


class ScenarioFile(_Strict):
    """What every scenario file has: a name (its outputs' folder), a description, the file it was read
    from and the calibration profile it names (a training or schedule scenario; a serve scenario,
    :class:`sim.serve.spec.ServeScenario`)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    _profile_path: Path | None = PrivateAttr(None)
    _source_path: Path | None = PrivateAttr(None)
    _bases: tuple[str, ...] = PrivateAttr(())  # the files of its chain of bases (load_scenario), base-most first

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if set(name) == {"."}:  # '.' or '..' would name the output folder's parent
            raise ValueError(
                f"{name!r} is not a name; outputs go to DIR/<name>/, so give letters, digits, '.', '_' or '-'"
            )
        return name

    @property
    def source_path(self) -> str:
        """The scenario file it was read from ('<scenario>' when built in memory)."""
        return str(self._source_path) if self._source_path is not None else "<scenario>"

    def named(self, err: ScenarioError, alone: Callable[[str], ScenarioError | None]) -> ScenarioError:
        """``err`` (met building this scenario, naming no file) naming the file it starts in: the first of
        the scenario's chain of bases that ``alone`` (the error building that file alone meets, or None)
        finds it in, else the scenario's own (:func:`where_it_starts`)."""
        return where_it_starts(err.with_file(self.source_path), self.source_path, self._bases, alone)

    @property
    def profile_path(self) -> Path:
        """The calibration profile's path (resolved against the scenario file)."""
        if self._profile_path is not None:
            return self._profile_path
        return DEFAULT_PROFILE


class Scenario(ScenarioFile):
    """A whole scenario: it describes; :func:`sim.assemble.assemble` builds what a run needs from it."""

    seed: int = Field(0, ge=0)  # (numpy's generators take no negative seed, and any whole number above)
    model: ModelSpec = Field(default_factory=lambda: DEEPSEEK_V3)
    pipeline: PipelineSpec
    ops: OpsSpec | None = Field(None, description="op times given directly [default: from the chunk model]")
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    profile: str | None = Field(
        None, min_length=1, description="calibration profile, relative to the scenario [default: the H800 profile]"
    )
    p2p: P2PSpec = Field(default_factory=P2PSpec)
    cluster: ClusterRef | None = None
    comm: CommSpec = Field(default_factory=CommSpec)
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    training: TrainingSpec | None = Field(None, description="simulate the full training step")
    economics: EconomicsSpec = Field(default_factory=EconomicsSpec)
    # the node limit M the model has without the scenario's own model.n_limited_groups (its model.config's,
    # else DeepSeek-V3's); None: not known (built in memory), so a written M is not told from the model's
    _model_node_limit: int | None = PrivateAttr(None)

    @property
    def node_limit_written(self) -> int | None:
        """The default node limit M where the scenario writes one of its own in its place (a value other
        than its model's: :func:`sim.assemble.assemble` holds it to :func:`sim.moe.spec.unused_node_limit`),
        else None."""
        default = self._model_node_limit
        return None if default is None or self.model.n_limited_groups == default else default

    def devices(self) -> int:
        """Most devices any of the scenario's schedules uses."""
        return most_devices(self.pipeline.schedules, self.pipeline.pp)

    def cluster_spec(self) -> ClusterSpec:
        """The scenario's cluster with its what-if overrides (NIC and NVLink rates, oversubscription)."""
        if self.cluster is None:
            raise ScenarioError("cluster", "a training step needs a cluster: give cluster.topology")
        spec = self.cluster.spec
        node: dict[str, float] = {}
        if self.cluster.nic_Gbps is not None:
            node["nic_Gbps"] = self.cluster.nic_Gbps
        if self.cluster.nvlink_GBps is not None:
            node["nvlink_GBps"] = self.cluster.nvlink_GBps
        if node:
            spec = spec.model_copy(update={"node": spec.node.model_copy(update=node)})
        if self.cluster.oversubscription is not None:
            fabric = spec.fabric.model_copy(update={"oversubscription": self.cluster.oversubscription})
            spec = spec.model_copy(update={"fabric": fabric})
        if self.cluster.scale_up is not None:
            domain = self._scale_up_domain(spec)
            spec = spec.model_copy(update={"node": spec.node.model_copy(update={"scale_up_gpus": domain})})
        return spec

    def _scale_up_domain(self, spec: ClusterSpec) -> int:
        """``cluster.scale_up: nvl72``: the GPUs an EP group spans (EP x ETP, consecutive) share one
        NVLink domain of an NVL72 rack; the rack's other GPUs are outside the job."""
        etp = self.training.etp if self.training is not None else 1
        span, g = self.workload.ep * etp, spec.node.gpus_per_node
        why = None
        if self.training is None:
            why = "places a training step's EP groups: needs a training section"
        elif span <= g:
            why = f"an EP group (EP x ETP = {span} GPUs) already fits one node of {g}; nothing moves to NVLink"
        elif span > NVL72_GPUS:
            why = f"an EP group spans {span} GPUs (EP x ETP), more than an NVL72 domain's {NVL72_GPUS}"
        elif span % g or spec.gpus % span:
            why = f"an EP group of {span} GPUs must be whole nodes of {g} dividing the cluster's {spec.gpus}"
        if why:
            raise ScenarioError("cluster.scale_up", why)
        return span


def parse_scenario(data: Any) -> Scenario:
    """Validate a mapping (parsed YAML) into a :class:`Scenario`: the schema, the sizes, keys that do
    not go together. What needs building (layout, schedules, times, fabric) is checked by
    :func:`sim.assemble.assemble`."""
    if not isinstance(data, dict):
        raise ScenarioError("", f"a scenario must be a mapping of keys, got {kind_of(data)}")
    if "serve" in data:
        raise ScenarioError("serve", "a serve scenario (a deployment and its traffic): run it with 'twin serve'")
    model = data.get("model")
    for key in NOT_MODELLED:  # keys of DeepSeek's config.json that nothing reads: say why, not 'unknown'
        if isinstance(model, dict) and key in model:
            raise ScenarioError(f"model.{key}", NOT_MODELLED[key])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise validation_error(err, Scenario) from None
    # counts bounded before any schedule is built (sim.limits); virtual stages where a schedule uses them
    plan = scenario.pipeline
    check_scenario_sizes(scenario, max(virtual_stages_used(x, plan.virtual_stages) for x in plan.schedules))
    if scenario.training is not None:
        given = scenario.workload.model_fields_set
        if "tokens" in given:
            raise ScenarioError("workload.tokens", "set by the training step: model.seq_len x microbatch_sequences")
        for key in ("layers_per_stage", "first_layer"):
            if key in given:
                raise ScenarioError(f"workload.{key}", "set by the training step's layout (pipeline.pp)")
        check_microbatch_sequences(scenario)
    elif scenario.pipeline.microbatches is None:
        raise ScenarioError("pipeline.microbatches", "required (or add a training section to derive it)")
    check_timed(scenario.model)
    check_keys_used(scenario)
    if not scenario.model.is_moe_model:
        scenario = _dense_defaults(scenario)
    elif scenario.workload.dispatcher == "alltoall" and "sms" not in scenario.comm.model_fields_set:
        # NCCL's all-to-all takes SMs only while it runs: none set aside (sim/moe/nccl_a2a.py)
        scenario = scenario.model_copy(update={"comm": scenario.comm.model_copy(update={"sms": 0})})
    return scenario


def check_microbatch_sequences(sc: Scenario) -> None:
    """``training.microbatch_sequences`` named where it alone is out of reach (the layout blamed
    ``training.global_batch`` for it): a micro-batch's tokens on a GPU (sequences x ``model.seq_len``)
    over the bound of a GPU's tokens (:data:`sim.limits.MAX_TOKENS`), or more sequences in one
    micro-batch of one GPU than the whole step has."""
    t = sc.training
    assert t is not None
    mbs, seq = t.microbatch_sequences, sc.model.seq_len
    if mbs * seq > MAX_TOKENS:
        raise ScenarioError(
            "training.microbatch_sequences",
            f"{mbs:,} sequence(s) of model.seq_len {seq:,} tokens are {mbs * seq:,} tokens per micro-batch on "
            f"a GPU, over the limit of {MAX_TOKENS:,}",
        )
    batch = t.global_batch
    if batch is None and sc.pipeline.microbatches is None:
        batch = DEFAULT_GLOBAL_BATCH
    if batch is not None and mbs > batch:
        given = "training.global_batch" if t.global_batch is not None else "default training.global_batch"
        raise ScenarioError(
            "training.microbatch_sequences",
            f"{mbs:,} sequences per micro-batch of one GPU are more than the whole step's {given} ({batch:,})",
        )


def _dense_defaults(sc: Scenario) -> Scenario:
    """A dense model has no EP group (EP 1) and no DeepEP kernels: unless ``comm.sms`` is given, no
    SMs are set aside for communication (the 20 of the default are DeepEP's channels)."""
    update: dict[str, Any] = {}
    if sc.workload.ep != 1:
        update["workload"] = sc.workload.model_copy(update={"ep": 1})
    if "sms" not in sc.comm.model_fields_set and sc.comm.sms:
        update["comm"] = sc.comm.model_copy(update={"sms": 0})
    return sc.model_copy(update=update) if update else sc


def check_keys_used(sc: Scenario) -> None:
    """Every key the scenario sets is used by the run it describes: a key given (``model_fields_set``:
    written in the file, whatever its value) where nothing reads it is refused, naming the key and why,
    rather than accepted and ignored (tests/unit/test_every_key_is_used.py holds every key to this)."""
    if sc.model.dtype != "fp8":
        _refuse_set("compute", sc.compute, "an FP8 recipe's kernels: model.dtype is bf16, which has none; remove it")
    for key in ("multicast", "in_network_reduce"):
        if getattr(sc.comm, key) and sc.workload.dispatcher != "deepep":
            raise ScenarioError(
                f"comm.{key}",
                "DeepEP's node-deduplicated messages only: workload.dispatcher alltoall sends a row "
                "per chosen expert; remove it or use the deepep dispatcher",
            )
    if "dispatch_format" in sc.comm.model_fields_set and sc.model.is_moe_model:
        if sc.workload.dispatcher == "alltoall":
            raise ScenarioError(
                "comm.dispatch_format",
                "not used: Megatron's NCCL all-to-all dispatcher always sends the BF16 hidden states "
                "(sim/model/megatron_dispatch.py); remove it",
            )
        if sc.model.dtype != "fp8":
            raise ScenarioError(
                "comm.dispatch_format", "not used: a BF16 recipe (model.dtype bf16) dispatches BF16 rows; remove it"
            )
    if sc.workload.nccl_sms is not None and sc.workload.dispatcher != "alltoall":
        raise ScenarioError(
            "workload.nccl_sms",
            "not used: the SMs NCCL's all-to-all takes are the alltoall dispatcher's (DeepEP runs on the comm.sms "
            "set aside); remove it or set workload.dispatcher: alltoall",
        )
    if sc.compute.fp8_accumulation == "full" and sc.compute.fp8_scaling == "software":
        raise ScenarioError(
            "compute.fp8_accumulation",
            "changes nothing alone: software block scaling scales each 128-element block's partial sums on the "
            "CUDA cores, so they leave the tensor cores anyway; add compute.fp8_scaling: native",
        )
    if not sc.model.is_moe_model:
        _dense_keys_used(sc)
    w = sc.workload
    if w.interference != "trace":  # the factors are the trace's slowdowns, read under trace only (sim/chunk/timer.py)
        for key in ("gemm_beside_comm", "memory_beside_comm", "comm_beside_compute"):
            if _changed(w, key):
                raise ScenarioError(
                    f"workload.{key}",
                    f"not used with workload.interference: {w.interference} (the slowdown factors are read under "
                    "trace only); remove it, or set workload.interference: trace",
                )
    routed = sc.training is not None or sc.ops is None  # the chunk model routes tokens to experts
    if sc.model.is_moe_model and routed and sc.workload.ep == 1:
        _one_gpu_ep_keys_used(sc)
    if "seed" in sc.model_fields_set:
        if not routed:
            raise ScenarioError("seed", "not used: ops gives the op times, so nothing is routed; remove it")
        if sc.workload.routing == "balanced":
            raise ScenarioError(
                "seed",
                "not used with balanced routing (it draws nothing); set workload.routing: random or skewed, or "
                "remove it",
            )
    plan = sc.pipeline
    if "virtual_stages" in plan.model_fields_set and not VIRTUAL_STAGE_SCHEDULES & set(plan.schedules):
        raise ScenarioError(
            "pipeline.virtual_stages",
            f"not used by {', '.join(plan.schedules)} (only {', '.join(sorted(VIRTUAL_STAGE_SCHEDULES))} "
            "splits a device into virtual stages); remove it",
        )
    if sc.training is not None:
        _training_keys_used(sc)
    else:
        _comparison_keys_used(sc)
    comm = sc.comm
    if comm.coprocessor and _changed(comm, "sms") and comm.sms != 0:  # (0 says the same)
        raise ScenarioError(
            "comm.sms",
            "not used with comm.coprocessor: true (communication runs off the SMs: all of them compute); remove it",
        )
    if routed:
        _capacity_used(sc)


# workload keys of the MoE layers' routing and DeepEP, which a dense model does not have
MOE_WORKLOAD_KEYS = (
    "routing",
    "dispatcher",
    "capacity_factor",
    "pad_to_capacity",
    "gemm_beside_comm",
    "memory_beside_comm",
    "comm_beside_compute",
    "notify_wait_us",
    "nccl_sms",
    "interference",  # DeepEP's kernels beside the GEMMs
)


def _dense_keys_used(sc: Scenario) -> None:
    """A dense model routes nothing and dispatches nothing: the keys of routing, DeepEP and the EP
    group are refused (EP 1 is accepted: it says the same)."""
    why = "not used: the model is dense (n_routed_experts 0), so nothing is routed or dispatched; remove it"
    w = sc.workload
    if "ep" in w.model_fields_set and w.ep != 1:
        raise ScenarioError("workload.ep", f"{why} (or give 1)")
    for key in MOE_WORKLOAD_KEYS:
        if key in w.model_fields_set:
            raise ScenarioError(f"workload.{key}", why)
    if "seed" in sc.model_fields_set:
        raise ScenarioError("seed", why)
    for key in ("combine_format", "dispatch_format", "multicast", "in_network_reduce", "coprocessor"):
        if key in sc.comm.model_fields_set:
            raise ScenarioError(f"comm.{key}", why)
    if sc.training is not None:
        for key in ("routing_samples", "etp"):
            if key in sc.training.model_fields_set:
                raise ScenarioError(f"training.{key}", why)
        if sc.training.fidelity == "per-gpu":  # every EP group with its own routing: there is none
            raise ScenarioError(
                "training.fidelity",
                "per-gpu is not used: the model is dense (n_routed_experts 0), so no EP group routes; remove it",
            )


def _changed(spec: BaseModel, key: str) -> bool:
    """``key`` written in the file with a value other than its default (a default, as a base scenario's
    sections carry it, says nothing)."""
    return key in spec.model_fields_set and getattr(spec, key) != type(spec).model_fields[key].default


# the keys of DeepEP's dispatch and combine, which an EP group of one GPU does not run
DEEPEP_KEYS = (
    ("workload", "nccl_sms"),  # (before the dispatcher: a refusal names the key the case gave)
    ("workload", "dispatcher"),
    ("workload", "comm_beside_compute"),
    ("comm", "combine_format"),
    ("comm", "dispatch_format"),
    ("comm", "multicast"),
    ("comm", "in_network_reduce"),
)
# the chunk model's slowdowns of compute and communication running side by side
INTERFERENCE_KEYS = ("interference", "gemm_beside_comm", "memory_beside_comm")


def _one_gpu_ep_keys_used(sc: Scenario) -> None:
    """An EP group of one GPU (``workload.ep: 1``) keeps every routed expert on the GPU: nothing is
    dispatched or combined, so DeepEP's keys changed from their defaults are refused; in a training step
    DeepEP's notify wait too, and the interference keys unless a TP, CP or expert-TP collective runs
    beside the compute; in a schedule comparison's chunk (no other communication) the interference keys."""
    why = "not used: workload.ep is 1 (every expert on the GPU), so nothing is dispatched or combined"
    w, t = sc.workload, sc.training
    for section, key in DEEPEP_KEYS:
        if _changed(getattr(sc, section), key):
            raise ScenarioError(f"{section}.{key}", f"{why}; remove it")
    if t is not None and _changed(w, "notify_wait_us"):
        raise ScenarioError("workload.notify_wait_us", f"{why}; remove it")
    if t is None or t.tp == t.cp == t.etp == 1:
        alone = "" if t is None else ", and no TP, CP or expert-TP collective runs beside the compute"
        for key in INTERFERENCE_KEYS:
            if _changed(w, key):
                raise ScenarioError(f"workload.{key}", f"{why}{alone}; remove it")


def _capacity_used(sc: Scenario) -> None:
    """Balanced routing gives each expert ``T k / E`` choices from each rank (sim/moe/capacity.py): a
    capacity factor of 1 or more drops none, so it is refused unless ``workload.pad_to_capacity`` has
    every expert compute its capacity."""
    w = sc.workload
    if w.routing == "balanced" and w.capacity_factor is not None and w.capacity_factor >= 1 and not w.pad_to_capacity:
        raise ScenarioError(
            "workload.capacity_factor",
            f"not used: balanced routing gives every expert tokens x top-k / experts choices from each rank, "
            f"within a capacity factor of {w.capacity_factor:g}, so nothing is dropped; give a factor below 1, "
            "random or skewed routing, or workload.pad_to_capacity: true, or remove it",
        )


def _refuse_set(section: str, spec: BaseModel, why: str) -> None:
    """Refuse the first key of ``section`` the user wrote (not a default), saying ``why``."""
    for key in type(spec).model_fields:
        if key in spec.model_fields_set:
            raise ScenarioError(f"{section}.{key}", why)


def _training_keys_used(sc: Scenario) -> None:
    t = sc.training
    assert t is not None
    if sc.ops is not None:
        raise ScenarioError("ops", "not used by a training step (the chunk model times every action); remove it")
    _refuse_set(
        "p2p",
        sc.p2p,
        "not used by a training step (stage-to-stage sends go over cluster.topology, their bytes from the model); "
        "remove it",
    )
    if "routing_samples" in t.model_fields_set and sc.workload.routing == "balanced":
        raise ScenarioError(
            "training.routing_samples",
            "not used with balanced routing (every sample routes alike); set workload.routing: random or skewed, or "
            "remove it",
        )


def _comparison_keys_used(sc: Scenario) -> None:
    _refuse_set(
        "economics",
        sc.economics,
        "not used by a schedule comparison (prices give a training step's cost: add a training section and sweep "
        "it); remove it",
    )
    if sc.ops is not None:
        _given_ops_used(sc)
        for section, spec in (("workload", sc.workload), ("model", sc.model), ("compute", sc.compute)):
            _refuse_set(section, spec, "not used: ops gives the op times, so the chunk model does not run; remove it")
        if sc.ops.measured_at_compute_sms is not None:  # the times rescale to the SM split, nothing else of comm
            for key in ("combine_format", "dispatch_format", "multicast", "in_network_reduce"):
                if _changed(sc.comm, key):
                    raise ScenarioError(
                        f"comm.{key}",
                        "not used: the op times of ops are taken as given, rescaled only to comm.sms and "
                        "comm.coprocessor (ops.measured_at_compute_sms); remove it",
                    )
        if sc.ops.measured_at_compute_sms is None:
            given = [f"comm.{k}" for k in CommSpec.model_fields if k in sc.comm.model_fields_set]
            given += ["profile"] if "profile" in sc.model_fields_set else []
            if given:
                raise ScenarioError(
                    given[0],
                    "not used: the op times of ops are taken as given; give ops.measured_at_compute_sms (the compute "
                    "SMs they were measured at) to rescale them to this SM split and profile, or remove it",
                )
    elif sc.model.is_moe_model:
        _dense_chunk_keys_used(sc)
    p2p = sc.p2p
    if sc.devices() == 1:  # (twin schedules compare refuses its --p2p-* flags alike)
        for key in ("activation_bytes", "bandwidth_GBps", "latency_us"):
            if key in p2p.model_fields_set:
                raise ScenarioError(
                    f"p2p.{key}",
                    f"not used: the schedules run on one device (pipeline.pp {sc.pipeline.pp}), so nothing is sent "
                    "between stages; remove it",
                )
    if "bandwidth_GBps" in p2p.model_fields_set and sc.cluster is None and p2p.activation_bytes == 0:
        raise ScenarioError(
            "p2p.bandwidth_GBps", "not used: no bytes are sent (p2p.activation_bytes is 0); give them, or remove it"
        )


def _given_ops_used(sc: Scenario) -> None:
    """The op times of ``ops`` are read where a schedule runs them and describe a step that takes time:
    ``ops.overlapped_ms`` is refused unless a schedule overlaps an F&B pair (:data:`OVERLAP_SCHEDULES`),
    ``ops.weight_ms`` other than 0 unless one splits B into I and W (:data:`SPLIT_BACKWARD_SCHEDULES`;
    where one does, it is required); F and B 0 on every stage (a step of no time: every figure 0, the
    bubble ratio 0/0) is refused, and so is an F&B pair shorter than its longer part (F&B below
    max(F, B) on a stage; the two rules: :func:`sim.pipeline.costs.takes_no_time`,
    :func:`~sim.pipeline.costs.first_short_pair`). Values of the wrong count or below 0 are left to
    :func:`sim.assemble.given_op_times`, which names them."""
    ops, names = sc.ops, sc.pipeline.schedules
    assert ops is not None
    which = ", ".join(names)
    if ops.overlapped_ms is not None and not OVERLAP_SCHEDULES & set(names):
        raise ScenarioError(
            "ops.overlapped_ms",
            f"not used by {which} (only {', '.join(sorted(OVERLAP_SCHEDULES))} overlaps a forward and a backward "
            "in an F&B pair); remove it",
        )
    n = sc.pipeline.microbatches
    if ops.overlapped_ms is not None and n is not None and not any(_pairs(x, sc.pipeline, n) for x in names):
        raise ScenarioError(
            "ops.overlapped_ms",
            f"not used: at PP {sc.pipeline.pp} with {n} micro-batches {which} pairs no forward with a backward "
            "(its steady state is too short; interleaved-1f1b-overlap pairs from 4 micro-batches at PP 3 and more); "
            "remove it, or give more micro-batches",
        )
    splitting = sorted(SPLIT_BACKWARD_SCHEDULES & set(names))
    if any(ops.weight_ms) and not splitting:  # (0 says the same: B whole, no W part; a derived scenario gives it)
        raise ScenarioError(
            "ops.weight_ms",
            f"not used by {which} (they run B whole: only {', '.join(sorted(SPLIT_BACKWARD_SCHEDULES))} splits B "
            "into I and W); remove it",
        )
    if splitting and "weight_ms" not in ops.model_fields_set:
        raise ScenarioError(
            "ops.weight_ms",
            f"required key is missing: {', '.join(splitting)} splits B into I and W (W the weight-gradient part "
            "of B, I = B - W); give it",
        )
    pp = sc.pipeline.pp

    def per_stage(values: list[float]) -> list[float] | None:  # None: left to given_op_times
        if len(values) not in (1, pp) or not all(v >= 0 for v in values):
            return None
        return values * pp if len(values) == 1 else values

    f, b = per_stage(ops.forward_ms), per_stage(ops.backward_ms)
    if f is None or b is None:
        return
    if takes_no_time(f, b):
        raise ScenarioError(
            "ops.forward_ms",
            "a step of no time: ops.forward_ms and ops.backward_ms are 0 on every stage, so the step time, bubbles "
            "and activations would all be 0 (the bubble ratio 0/0); give times above 0",
        )
    fb = None if ops.overlapped_ms is None else per_stage(ops.overlapped_ms)
    i = first_short_pair(f, b, fb)
    if fb is not None and i is not None:
        raise ScenarioError(
            f"ops.overlapped_ms[{i}]" if len(ops.overlapped_ms or ()) > 1 else "ops.overlapped_ms",
            f"an overlapped F&B pair cannot take less than its longer part: {fb[i]:g} ms on stage {i} is below "
            f"max(F {f[i]:g}, B {b[i]:g}) ms; give at least {max(f[i], b[i]):g} (F + B, {f[i] + b[i]:g}: no "
            "overlap)",
        )


def _pairs(name: str, plan: PipelineSpec, microbatches: int) -> bool:
    """Whether schedule ``name`` runs an overlapped F&B pair at this layout (a schedule that does not build
    here counts as pairing: its own error is the one to give)."""
    from sim.errors import TwinError
    from sim.pipeline.ops import Op

    if name not in OVERLAP_SCHEDULES:
        return False
    try:
        schedule = build_schedule(name, plan.pp, microbatches, plan.virtual_stages)
    except TwinError:
        return True
    return any(a.op is Op.FB for acts in schedule.actions for a in acts)


def _dense_chunk_keys_used(sc: Scenario) -> None:
    """A schedule comparison whose chunk (``workload.first_layer`` and on) holds only dense layers of an
    MoE model routes and dispatches nothing: a key of routing, DeepEP or the EP group given a value
    other than its default is refused (a default, as a base scenario's sections carry it, says nothing;
    EP 1 is accepted too: it says the same)."""
    w, model = sc.workload, sc.model
    first = model.n_dense_layers if w.first_layer is None else w.first_layer
    layers = range(first, first + w.layers_per_stage)
    if any(layer >= model.n_layers or model.is_moe(layer) for layer in layers):  # (an MTP block is MoE)
        return
    why = (
        f"not used: the chunk's layers {first}..{layers[-1]} are dense (the model's layers are "
        f"{model.layer_pattern()}), so nothing is routed or dispatched; remove it"
    )

    if _changed(w, "ep") and w.ep != 1:
        raise ScenarioError("workload.ep", why)
    for key in MOE_WORKLOAD_KEYS:
        if _changed(w, key):
            raise ScenarioError(f"workload.{key}", why)
    if _changed(sc, "seed"):
        raise ScenarioError("seed", why)
    for key in ("combine_format", "dispatch_format", "multicast", "in_network_reduce"):
        if _changed(sc.comm, key):
            raise ScenarioError(f"comm.{key}", why)


@contextmanager
def read_for(key: str, what: str) -> Iterator[None]:
    """Errors inside a file a scenario key (or a command's flag, ``--profile``) names keep that file and
    its key; where the file is of another kind (:func:`_wrong_kind`) they also say which key named it (a
    profile's JSON given as the topology said "h800.json: name: required key is missing", which told
    nobody where the file came from)."""
    try:
        yield
    except ScenarioError as err:
        if not err.file or not Path(err.file).is_file() or NAMED_BY.search(err.message) or not _wrong_kind(err):
            raise  # (a file not there, or a folder, says so; a file of the right kind names its own key)
        named = key if key.startswith("--") else f"scenario key {key}"
        note = f" (read as a {what}: the file {named} names)"
        raise ScenarioError(err.key_path, err.message + note, err.file) from None


def _wrong_kind(err: ScenarioError) -> bool:
    """Whether ``err`` says its file is not of the kind expected: it cannot be parsed as one (no key), or a
    key every file of the kind has is missing at its top level."""
    key = err.key_path
    return not key or ("." not in key and "[" not in key and "required key is missing" in err.message)


NAMED_BY = re.compile(r" \(read as an? [^()]*: the file [^()]* names\)$")  # read_for's note


def unnamed(message: str) -> str:
    """``message`` without :func:`read_for`'s note of the key that named the file (where the caller
    names that key itself)."""
    return NAMED_BY.sub("", message)


def _read_topology(ref: ClusterRef, base: Path) -> None:
    """Read (not build) the topology file ``ref`` names, relative to ``base``."""
    path = Path(ref.topology)
    path = path if path.is_absolute() else base / path
    if not path.exists():  # the scenario's key names it (a folder or a bad file: read_yaml and its own errors)
        raise ScenarioError("cluster.topology", f"no such topology file: {ref.topology}")
    with read_for("cluster.topology", "topology"):
        ref._spec = _parsed_topology(str(path), read_text(path, "topology"))
    ref._path = path


@functools.lru_cache(maxsize=64)  # (an error is not kept: it is raised again)
def _parsed_topology(file: str, text: str) -> ClusterSpec:
    """A topology file's spec, by the file and its text: a sweep's points read the same file over and over
    (1,000 points of thousand.yaml checked at 0.8 ms each). The text is read every time, so an edited file
    is parsed again; the spec is frozen, so the points share it."""
    return parse_cluster(parse_yaml(text, file), file)


def _attach_cluster(scenario: Scenario, base: Path) -> None:
    """Read the scenario's topology file (relative to ``base``) and check the keys that go with it and
    the device placement of a schedule comparison (the fabric is built, once, by ``assemble``)."""
    ref = scenario.cluster
    if ref is None:
        return
    if scenario.training is not None:
        if ref.device_gpus is not None:
            raise ScenarioError("cluster.device_gpus", "set by the training step's layout (rank d on GPUs d x G ..)")
        _read_topology(ref, base)
        _one_node_keys(ref)
        return
    if ref.oversubscription is not None:
        raise ScenarioError(
            "cluster.oversubscription", "only used by a training step (a training section); set it in the topology file"
        )
    for key in ("bandwidth_GBps", "latency_us"):
        if key in scenario.p2p.model_fields_set:
            raise ScenarioError(f"p2p.{key}", "not used with a cluster: the network sets bandwidth and latency")
    _read_topology(ref, base)
    _one_node_keys(ref)
    devices = scenario.devices()
    gpus = ref.placement(devices)
    spec = ref.spec
    # exactly one GPU per device: a longer list was accepted, its extra entries ignored
    if len(gpus) != devices or len(set(gpus)) != len(gpus) or min(gpus) < 0 or max(gpus) >= spec.gpus:
        count = f" ({len(gpus)} given)" if len(gpus) != devices else ""
        raise ScenarioError(
            "cluster.device_gpus",
            f"need {devices} distinct GPUs in 0..{spec.gpus - 1} (one per pipeline device), got {list(gpus)}{count}",
        )


def _one_node_keys(ref: ClusterRef) -> None:
    """A cluster of one node sends nothing through a NIC: ``cluster.nic_Gbps`` is refused there (it was
    accepted, the results the same)."""
    if ref.nic_Gbps is not None and ref.spec.nodes == 1:
        raise ScenarioError(
            "cluster.nic_Gbps", "not used: the cluster is one node, so nothing crosses a NIC; remove it"
        )


def _attach_profile(scenario: Scenario, base: Path) -> None:
    """Resolve ``profile`` (relative to ``base``) and check that it reads as a profile (its device is
    checked against the SM split and the datasheets by ``assemble``)."""
    if scenario.profile is None:
        path = scenario.profile_path
    else:
        path = base / scenario.profile  # an absolute profile path stays as it is
        if not path.is_file():
            raise ScenarioError("profile", f"no such profile: {scenario.profile}")
    with read_for("profile", "calibration profile"):
        load_profile(path)  # its errors name the profile file and the key inside it
    scenario._profile_path = path


MAX_BASE_DEPTH = 8  # derived scenarios deriving from derived scenarios
_DERIVED_KEYS = ("base", "name", "description", "set")
# the files with a ``base`` that are not scenarios, by a key only they have: what each is and its command
_A_SWEEP = "a sweep file: run it with twin sweep (a sweep of a run file: twin plan run)"
_OTHER_FILES = {
    "phases": "a run file (a base scenario and its phases): plan it with twin plan run",
    "grid": _A_SWEEP,
    "points": _A_SWEEP,
    "studies": "a co-design file: report on it with twin report",
}


def scenario_data(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The mapping of a scenario file and the folder its relative paths resolve against.

    A *derived* scenario names a ``base`` scenario file (relative to itself) and dotted overrides in
    ``set`` (``comm.sms: 12``), optionally a new ``name`` and ``description``; its paths resolve like
    the base's (the base's folder), except path values in ``set``, which resolve against the derived
    file (:mod:`sim.overrides`)."""
    data, folder, _ = scenario_chain(path)
    return data, folder


def scenario_chain(path: str | Path, below: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Path, tuple[str, ...]]:
    """:func:`scenario_data` and the files of the scenario's chain of bases, the base-most first (itself
    not among them), so an error can name the file it starts in (:func:`where_it_starts`). ``below``:
    the files that named this one as their base, in order (a base among them is a loop; as many as
    this file is levels of bases deep)."""
    path = Path(path)
    data = read_yaml(path, "scenario")
    if not isinstance(data, dict) or "base" not in data:
        return data, path.parent, ()
    for key, what in _OTHER_FILES.items():  # (another kind of file with a base: said what it is, not a bad key)
        if key in data:
            raise ScenarioError(key, what, str(path))
    for key in data:
        if key not in _DERIVED_KEYS:
            raise ScenarioError(
                str(key), f"a derived scenario (with 'base') has only the keys {', '.join(_DERIVED_KEYS)}", str(path)
            )
    if len(below) >= MAX_BASE_DEPTH:
        raise ScenarioError("base", f"more than {MAX_BASE_DEPTH} levels of base scenarios", str(path))
    base = data["base"]
    if not isinstance(base, str) or not base:
        raise ScenarioError("base", "give the base scenario's file, relative to this one", str(path))
    sets = data.get("set") or {}
    if not isinstance(sets, dict):
        raise ScenarioError("set", "a mapping of dotted keys to values, e.g. {comm.sms: 12}", str(path))
    for key in sets:
        check_key(key, "set", str(path))
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    if base_path.resolve() == path.resolve():
        raise ScenarioError("base", "a scenario cannot be its own base", str(path))
    chain = (*below, path.resolve())
    if base_path.resolve() in chain:  # (it said "more than 8 levels of base scenarios")
        loop = " -> ".join(p.name for p in chain[chain.index(base_path.resolve()) :])
        raise ScenarioError("base", f"{base}: the bases form a loop ({loop} -> {base_path.name})", str(path))
    try:
        parent, folder, bases = scenario_chain(base_path, chain)
    except ScenarioError as err:  # the base is no file (missing, a folder, a device): named at this file's key
        if err.file == str(base_path) and not err.key_path and not base_path.is_file():
            raise ScenarioError("base", f"{base}: {err.message}", str(path)) from None
        raise
    if not isinstance(parent, dict):
        raise ScenarioError("", "the base scenario must be a mapping of keys", str(base_path))
    try:
        merged = apply_overrides(parent, resolve_paths(sets, path.parent), "set.")
    except ScenarioError as err:
        raise err.with_file(str(path)) from None
    for key in ("name", "description"):
        if key in data and key in sets:  # (the file's own key won, and the one in set: did nothing)
            raise ScenarioError(f"set.{key}", f"the file gives its {key} itself ({key}:); remove it here", str(path))
        if key in data:
            merged[key] = data[key]
    return merged, folder, (*bases, str(base_path))


def where_it_starts(
    err: ScenarioError, path: str, bases: tuple[str, ...], alone: Callable[[str], ScenarioError | None]
) -> ScenarioError:
    """``err``, met reading (or building) the scenario file ``path`` and named on it, named instead on
    the first of its ``bases`` (the base-most first) that meets the same error alone (``alone(file)``:
    the error that file alone meets, or None): a bad key in a base's own ``set:`` or sections is the
    base's, not the derived file's that names it. An error no base meets alone (one the derived file's
    own keys make) stays the derived file's; an error naming another file (a topology) stays as it is."""
    if err.file != path:
        return err
    for file in bases:
        met = alone(file)
        mine = _at_overrides(err.with_file(file))  # (as the base alone names it, where it is derived too)
        if met is not None and (met.key_path, met.message) in (
            (err.key_path, err.message),
            (mine.key_path, mine.message),
        ):
            return mine
    return _at_overrides(err)


def _at_overrides(err: ScenarioError) -> ScenarioError:
    """``err``, named on a derived scenario file at a key of the base its overrides make wrong together
    (``set: {pipeline.pp: 3}`` of a base of 64 GPUs blamed ``training.gpus``, a key the file does not
    have): named at its ``set``, the overrides, then the key. An error at a key of a section the file
    sets keys of (``ops.backward_ms`` missing where it sets ``ops.forward_ms``), or of a file that is no
    derived scenario, is as it was."""
    try:
        data = read_yaml(Path(err.file or ""), "scenario")
    except (ScenarioError, OSError):
        return err
    sets = data.get("set") if isinstance(data, dict) and "base" in data else None
    key = err.key_path
    if not isinstance(sets, dict) or not sets or not key or key.split(".")[0] in _DERIVED_KEYS:
        return err
    if any(key.split(".")[0] == str(k).split(".")[0] for k in sets):
        return err  # (a key of a section it sets keys of: its own, named as it is)
    given = shown(json.dumps(sets, default=str))
    return ScenarioError("set", f"{given}: {key}: {err.message}", err.file)


def _load_error(path: str) -> ScenarioError | None:
    """The error loading the scenario file ``path`` alone meets, or None."""
    try:
        load_scenario(path)
    except ScenarioError as err:
        return err
    return None


def expand_model_config(data: Any, folder: Path) -> Any:
    """``model.config`` (a shipped model's name or a ``config.json`` path, relative to ``folder``)
    replaced by the fields of that model, the section's other keys overriding them. The config is
    checked alone first, so an error in it names its file and its own key."""
    return _expand_model_config(data, folder)[0]


def _expand_model_config(data: Any, folder: Path) -> tuple[Any, int]:
    """:func:`expand_model_config`, and the node limit M of the model without the scenario's own
    ``model.n_limited_groups``: its config's, else DeepSeek-V3's (the field's default)."""
    default = ModelSpec.model_fields["n_limited_groups"].default
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "config" not in model:
        return data, default
    ref = model["config"]
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError("model.config", f"a shipped model's name or a config.json path, got {ref!r}")
    with read_for("model.config", "model config"):
        fields, spec = checked_fields(ref, folder, timed=False)
    rest = {k: v for k, v in model.items() if k != "config"}
    return {**data, "model": {**fields, **rest}}, spec.n_limited_groups


def scenario_from_data(data: Any, path: str | Path, folder: str | Path | None = None) -> Scenario:
    """Validate ``data`` as the scenario read from ``path`` (errors name it); relative paths in it
    resolve against ``folder`` [default: the file's folder]."""
    base = Path(folder) if folder is not None else Path(path).parent
    try:
        expanded, node_limit = _expand_model_config(data, base)
        scenario = parse_scenario(expanded)
    except ScenarioError as err:
        raise (err if err.file else err.with_file(str(path))) from None
    scenario._source_path = Path(path)
    scenario._model_node_limit = node_limit
    for attach in (_attach_cluster, _attach_profile):
        try:
            attach(scenario, base)
        except ScenarioError as err:
            raise (err if err.file else err.with_file(str(path))) from None
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario (or a derived one: ``base`` + ``set``); every error names
    ``path`` and the key. What a run builds from it is checked by :func:`sim.assemble.assemble`
    (``twin validate`` is both)."""
    data, folder, bases = scenario_chain(path)
    try:
        scenario = scenario_from_data(data, path, folder)
    except ScenarioError as err:
        if err.key_path == "serve" and err.file == str(path):  # the kind of the file given, not a base's key
            raise
        raise where_it_starts(err, str(path), bases, _load_error) from None
    scenario._bases = bases
    return scenario


def default_scenario_path() -> Path:
    """The embedded default scenario, shipped in the repository's ``scenarios/`` folder."""
    return DEFAULT_SCENARIO
