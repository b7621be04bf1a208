"""The parallel layout of a training step: which GPUs hold which layers, EP groups, DP groups, batch.

DeepSeek-V3 (REFERENCE.md section 2): 2048 GPUs = PP16 x EP64 (8 nodes) x ZeRO-1 DP, no tensor
parallelism. Derived here from the scenario's inputs, never fixed:

* pipeline ranks (devices) = what the schedule needs for ``pp`` model stages (PP, or PP/2 for
  DualPipeV); GPUs per rank = GPUs / ranks; rank ``d`` holds the contiguous GPUs
  ``d x G .. (d+1) x G - 1`` (whole nodes);
* EP groups per rank = G / EP, group ``g`` on GPUs ``d x G + g x EP ..``; EP must divide G and fill
  whole nodes (or fit in one node);
* DP for the non-expert weights = G (every GPU of a rank holds the same non-expert weights); expert
  replicas (expert DP) = G / EP;
* micro-batches per pipeline = global batch / (DP x sequences per micro-batch), exactly;
* layers along each route: the model's layers split over the route's stages as evenly as possible,
  the smaller counts at the ends (:mod:`sim.model.stages`); the first stage of a route holds the
  embedding, the last the output head and the MTP module (whose transformer block is its last
  layer). With DualPipe both routes' ends sit on rank 0 and rank PP-1, as DeepSeek place them.

Every impossible layout raises :class:`ScenarioError` naming the key to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import LayoutError, ScenarioError
from sim.keys import as_yaml_key
from sim.layout_defaults import DEFAULT_EP as DEFAULT_EP  # re-exported: DeepSeek-V3's layout, the defaults of
from sim.layout_defaults import DEFAULT_GLOBAL_BATCH  # scenarios and commands, live in sim/layout_defaults.py
from sim.layout_defaults import DEFAULT_GPUS as DEFAULT_GPUS
from sim.layout_defaults import DEFAULT_PP as DEFAULT_PP
from sim.limits import MAX_STEP_ACTIONS, require_count, schedule_actions
from sim.model.spec import ModelSpec
from sim.model.stages import stage_layers
from sim.pipeline.ops import Schedule
from sim.pipeline.schedules import SCHEDULES, build_schedule, virtual_stages_used


@dataclass(frozen=True)
class StagePlacement:
    """What one schedule stage holds: its layer ids (``n_layers`` and up are MTP blocks) and extras."""

    layers: tuple[int, ...]
    first: bool  # the embedding
    last: bool  # the output head and the MTP module


@dataclass(frozen=True)
class Layout:
    gpus: int
    gpus_per_node: int
    devices: int  # pipeline ranks
    gpus_per_rank: int
    ep: int
    dp: int  # non-expert data parallelism (= GPUs per rank)
    expert_dp: int  # replicas of each expert (= GPUs per rank / EP)
    microbatches: int
    microbatch_sequences: int
    tokens: int  # tokens per micro-batch per GPU (per TP group: each of its GPUs sees them all)
    global_batch: int  # sequences per step
    stages: tuple[StagePlacement, ...]  # per schedule stage
    tp: int = 1  # tensor parallelism with sequence parallelism, inside a node
    cp: int = 1  # context parallelism: the sequence split over cp GPUs (GPU order: TP, CP, DP)
    recompute: str = "selective"  # activation recomputation (sim.model.layer.RECOMPUTE)
    tp_comm_overlap: bool = False  # TP collectives beside their GEMMs (sim.chunk.timer._Graph.chain)
    cp_comm: str = "all_gather"  # CP keys and values: all_gather before the attention, or p2p (ring, beside it)
    fsdp: bool = False  # FSDP / ZeRO-3 instead of ZeRO-1 (sim.step.fsdp)
    fsdp_reshard_after_forward: bool = True  # FSDP2's reshard_after_forward
    etp: int = 1  # expert tensor parallelism (expert-layer GPU order: ETP, EP, expert DP)

    @property
    def cp_tokens(self) -> int:
        """Tokens of a micro-batch one CP rank (each GPU of its TP group) computes on."""
        return self.tokens // self.cp

    @property
    def sp_tokens(self) -> int:
        """Tokens one GPU holds outside the TP regions (norms, residual stream, router, experts)."""
        return self.tokens // (self.tp * self.cp)

    def tp_groups(self, device: int) -> list[np.ndarray]:
        """The TP groups of rank ``device``: consecutive GPUs, ``tp`` at a time."""
        return list(self.rank_gpus(device).reshape(-1, self.tp))

    def cp_groups(self, device: int) -> list[np.ndarray]:
        """The CP groups of rank ``device``: the ``cp`` GPUs of one TP index and one DP index."""
        gpus = self.rank_gpus(device).reshape(-1, self.cp, self.tp)
        return list(gpus.transpose(0, 2, 1).reshape(-1, self.cp))

    @property
    def ep_groups(self) -> int:
        return self.gpus_per_rank // self.ep

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * (self.tokens // self.microbatch_sequences)

    def rank_gpus(self, device: int) -> np.ndarray:
        return device * self.gpus_per_rank + np.arange(self.gpus_per_rank)

    def ep_group(self, device: int, group: int) -> np.ndarray:
        """The GPUs of EP group ``group`` of rank ``device``, by EP rank. Expert layers order a rank's
        GPUs as ETP, EP, expert DP (Megatron-Core's MoE parallel folding): an EP group is the GPUs of
        one ETP index and one expert-DP index, ``etp`` apart (consecutive without expert TP)."""
        edp, j = divmod(group, self.etp)
        return device * self.gpus_per_rank + edp * self.ep * self.etp + j + np.arange(self.ep) * self.etp

    def etp_groups(self, device: int) -> list[np.ndarray]:
        """The expert-TP groups of rank ``device``: consecutive GPUs, ``etp`` at a time, holding shards
        of the same experts."""
        return list(self.rank_gpus(device).reshape(-1, self.etp))

    def expert_dp_groups(self, device: int) -> list[np.ndarray]:
        """For each EP rank and ETP index, the GPUs (one per expert-DP index) that hold the same shard of
        the same experts."""
        first = device * self.gpus_per_rank + np.arange(self.expert_dp) * self.ep * self.etp
        shard = (np.arange(self.ep)[:, None] * self.etp + np.arange(self.etp)[None, :]).ravel()
        return list(first[None, :] + shard[:, None])

    def to_dict(self) -> dict[str, int | str]:
        return {
            "gpus": self.gpus,
            "pipeline_ranks": self.devices,
            "gpus_per_rank": self.gpus_per_rank,
            **({"tp": self.tp} if self.tp > 1 else {}),
            **({"cp": self.cp} if self.cp > 1 else {}),
            **({"recompute": self.recompute} if self.recompute != "selective" else {}),
            **({"tp_comm_overlap": 1} if self.tp_comm_overlap else {}),
            **({"cp_comm": self.cp_comm} if self.cp > 1 else {}),
            **({"fsdp": 1} if self.fsdp else {}),
            **({"etp": self.etp} if self.etp > 1 else {}),
            **({"fsdp_reshard_after_forward": 0} if self.fsdp and not self.fsdp_reshard_after_forward else {}),
            "ep": self.ep,
            "dp": self.dp,
            "expert_dp": self.expert_dp,
            "microbatches": self.microbatches,
            "microbatch_sequences": self.microbatch_sequences,
            "tokens_per_microbatch": self.tokens,
            "global_batch_sequences": self.global_batch,
        }


def placements(
    model: ModelSpec, schedule: Schedule, layers_per_stage: list[int] | None = None
) -> tuple[StagePlacement, ...]:
    """Layers and extras of every schedule stage, from the order of the stages along each route
    (``layers_per_stage``: the layers of each stage along a route, first to last, else as even as
    possible)."""
    out: dict[int, StagePlacement] = {}
    for route in schedule.routes:
        try:
            ranges = stage_layers(model.n_layers, len(route), layers_per_stage)
        except ScenarioError as err:
            raise as_yaml_key(err) from None
        for i, stage in enumerate(route):
            layers = tuple(ranges[i])
            last = i == len(route) - 1
            if last:
                layers += tuple(range(model.n_layers, model.n_layers + model.mtp_depth))
            out[stage] = StagePlacement(layers, i == 0, last)
    return tuple(out[s] for s in range(schedule.num_stages))


def build_layout(
    model: ModelSpec,
    schedule_name: str,
    pp: int,
    virtual_stages: int,
    gpus: int,
    gpus_per_node: int,
    cluster_gpus: int,
    ep: int,
    global_batch: int | None,
    microbatches: int | None,
    microbatch_sequences: int,
    layers_per_stage: list[int] | None = None,
    tp: int = 1,
    cp: int = 1,
    recompute: str = "selective",
    tp_comm_overlap: bool = False,
    cp_comm: str = "all_gather",
    fsdp: bool = False,
    fsdp_reshard_after_forward: bool = True,
    etp: int = 1,
) -> tuple[Layout, Schedule]:
    """The layout and the schedule of a training step; errors name the scenario key to change."""
    info = SCHEDULES.get(schedule_name)
    if info is None:
        raise ScenarioError("pipeline.schedules", f"unknown schedule {schedule_name!r}")
    if gpus > cluster_gpus:
        raise ScenarioError("training.gpus", f"{gpus} GPUs do not fit the cluster's {cluster_gpus}")
    if pp > model.n_layers:
        raise ScenarioError("pipeline.pp", f"PP {pp} has more stages than the model's {model.n_layers} layers")
    devices = info.devices(pp)
    if devices < 1:
        raise ScenarioError("pipeline.pp", f"{schedule_name} needs PP >= 2 (two stages per device), got {pp}")
    if gpus % devices:
        raise ScenarioError("training.gpus", f"{gpus} GPUs do not divide into {devices} pipeline ranks")
    per_rank = gpus // devices
    if per_rank % gpus_per_node and per_rank > 1:
        raise ScenarioError(
            "training.gpus",
            f"{gpus} GPUs give each of {devices} pipeline ranks {per_rank} GPUs, not whole nodes of {gpus_per_node}",
        )
    check_etp(model, etp, ep, per_rank, gpus_per_node)
    if ep > per_rank:
        raise ScenarioError("workload.ep", f"EP {ep} is larger than a pipeline rank's {per_rank} GPUs")
    if per_rank % ep:
        raise ScenarioError("workload.ep", f"EP {ep} does not divide a pipeline rank's {per_rank} GPUs")
    per_node = gpus_per_node // etp  # an EP group's GPUs in a node
    if ep > per_node and ep % per_node:
        raise ScenarioError("workload.ep", f"EP {ep} must fill whole nodes of {per_node} GPUs (ETP {etp})")
    if model.n_routed_experts % ep:
        raise ScenarioError("workload.ep", f"EP {ep} does not divide the model's {model.n_routed_experts} experts")
    check_tp(model, tp, per_rank, gpus_per_node, microbatch_sequences * model.seq_len)
    if cp_comm != "all_gather" and cp == 1:
        raise ScenarioError("training.cp_comm", f"{cp_comm} exchanges keys and values over CP: needs training.cp > 1")
    if not fsdp_reshard_after_forward and not fsdp:
        raise ScenarioError("training.fsdp_reshard_after_forward", "an FSDP setting: needs training.fsdp: true")
    if tp_comm_overlap and tp == 1:
        raise ScenarioError("training.tp_comm_overlap", "overlaps TP collectives: needs training.tp > 1")
    check_cp(model, cp, tp, per_rank, microbatch_sequences * model.seq_len)
    dp = per_rank // (tp * cp)
    if global_batch is None:
        if microbatches is None:
            global_batch = DEFAULT_GLOBAL_BATCH
        else:
            global_batch = microbatches * dp * microbatch_sequences
    per_pipeline, rest = divmod(global_batch, dp * microbatch_sequences)
    if rest or per_pipeline < 1:
        raise ScenarioError(
            "training.global_batch",
            f"{global_batch} sequences do not split into DP {dp} x {microbatch_sequences} sequence(s) per micro-batch",
        )
    if microbatches is not None and microbatches != per_pipeline:
        raise ScenarioError(
            "pipeline.microbatches",
            f"{microbatches} does not match training.global_batch {global_batch} / (DP {dp} x "
            f"{microbatch_sequences} sequence(s)) = {per_pipeline}; give one of them",
        )
    used = virtual_stages_used(schedule_name, virtual_stages)
    require_count(
        schedule_actions(pp, per_pipeline, used),
        MAX_STEP_ACTIONS,
        f"the step's action count (3 x PP{' x virtual stages' if used > 1 else ''} x {per_pipeline:,} micro-batches)",
        "training.global_batch",
        "use a smaller global batch or more sequences per micro-batch",
    )
    try:
        schedule = build_schedule(schedule_name, pp, per_pipeline, virtual_stages)
    except LayoutError as err:
        if err.key_path != "microbatches" or microbatches is not None:
            raise err.with_prefix("pipeline") from None
        # (the count comes from the batch, not from pipeline.microbatches, which the file does not give)
        raise type(err)(
            "training.global_batch",
            f"{global_batch} sequences / (DP {dp} x {microbatch_sequences} sequence(s) per micro-batch, "
            f"training.microbatch_sequences) = {per_pipeline} micro-batch(es) per pipeline: {err.message}",
        ) from err  # (the schedule's own refusal kept as the cause: the layout search counts by it)
    stages = placements(model, schedule, layers_per_stage)
    if any(not p.layers for p in stages):
        empty = next(i for i, p in enumerate(stages) if not p.layers)
        if layers_per_stage is not None:  # the user's split: name it
            raise ScenarioError(
                "training.layers_per_stage", f"stage {empty} has no layers; give each stage one or more"
            )
        raise ScenarioError("pipeline.pp", f"{schedule.num_stages} stages leave a stage without layers")
    layout = Layout(
        gpus=gpus,
        gpus_per_node=gpus_per_node,
        devices=devices,
        gpus_per_rank=per_rank,
        ep=ep,
        dp=dp,
        expert_dp=per_rank // (ep * etp),
        microbatches=per_pipeline,
        microbatch_sequences=microbatch_sequences,
        tokens=microbatch_sequences * model.seq_len,
        global_batch=global_batch,
        stages=stages,
        tp=tp,
        cp=cp,
        recompute=recompute,
        tp_comm_overlap=tp_comm_overlap,
        cp_comm=cp_comm,
        fsdp=fsdp,
        fsdp_reshard_after_forward=fsdp_reshard_after_forward,
        etp=etp,
    )
    return layout, schedule


def check_etp(model: ModelSpec, etp: int, ep: int, per_rank: int, gpus_per_node: int) -> None:
    """Expert TP as Megatron-Core runs it: inside a node, dividing a routed expert's width, with EP x
    ETP dividing a pipeline rank's GPUs."""
    if etp == 1:
        return
    key = "training.etp"
    checks = [
        (model.is_moe_model, "splits routed experts: the model is dense"),
        (gpus_per_node % etp == 0, f"ETP {etp} must divide a node's {gpus_per_node} GPUs (ETP stays on NVLink)"),
        (model.moe_inter_dim % etp == 0, f"ETP {etp} must divide an expert's width {model.moe_inter_dim}"),
        (per_rank % (ep * etp) == 0, f"EP {ep} x ETP {etp} must divide a pipeline rank's {per_rank} GPUs"),
    ]
    for ok, why in checks:
        if not ok:
            raise ScenarioError(key, why)


def check_cp(model: ModelSpec, cp: int, tp: int, per_rank: int, tokens: int) -> None:
    """CP as Megatron-Core and the Llama 3 paper run it: the sequence in ``2 cp`` chunks, two per CP
    rank (zig-zag, for the causal balance), so ``2 cp x tp`` must divide a micro-batch's tokens; the
    CP groups inside a pipeline rank."""
    if cp == 1:
        return
    key = "training.cp"
    if per_rank % (tp * cp):
        raise ScenarioError(key, f"TP {tp} x CP {cp} must divide a pipeline rank's {per_rank} GPUs")
    if tokens % (2 * cp * tp):
        raise ScenarioError(
            key, f"2 x CP {cp} x TP {tp} must divide the {tokens} tokens of a micro-batch (two chunks per CP rank)"
        )


def check_tp(model: ModelSpec, tp: int, per_rank: int, gpus_per_node: int, tokens: int) -> None:
    """TP as Megatron-Core runs it: inside a node, dividing the heads, the key/value heads, the FFN
    width, the vocabulary (a GPU's shard of the head) and the tokens of a micro-batch (sequence
    parallelism)."""
    if tp == 1:
        return
    key = "training.tp"
    checks = [
        (gpus_per_node % tp == 0, f"TP {tp} must divide a node's {gpus_per_node} GPUs (TP stays on NVLink)"),
        (per_rank % tp == 0, f"TP {tp} must divide a pipeline rank's {per_rank} GPUs"),
        (model.n_heads % tp == 0, f"TP {tp} must divide the {model.n_heads} attention heads"),
        (model.kv_heads % tp == 0, f"TP {tp} must divide the {model.kv_heads} key/value heads"),
        (model.inter_dim % tp == 0, f"TP {tp} must divide the FFN width {model.inter_dim}"),
        (model.vocab_size % tp == 0, f"TP {tp} must divide the vocabulary of {model.vocab_size}"),
        (tokens % tp == 0, f"TP {tp} must divide the {tokens} tokens of a micro-batch (sequence parallelism)"),
    ]
    for ok, why in checks:
        if not ok:
            raise ScenarioError(key, why)
