"""What a training step's timeline says: per-rank breakdown, throughput, MFU, cost, memory.

All figures come from the simulated timeline (:class:`~sim.step.simulate.StepRun`), never from fixed
ratios. The step has two phases on every rank: the pipeline, from 0 to its makespan ``P`` (the last
action's end on any rank), and the data-parallel phase, from ``P`` to the step's end ``T``. Per rank
(of the pipeline the step waits for):

* ``forward_only_s``, ``backward_only_s`` (B and I), ``weight_only_s`` (W), ``overlapped_fb_s``
  (F&B pairs): the summed durations of the rank's actions of each kind (its busy time);
* ``bubble_s``: ``P`` minus its busy time: the pipeline's idle time on the rank, the schedule's own
  definition (:func:`sim.results.metrics`, the report's schedule table), whatever else runs then (a
  reduce-scatter started early in ``tail`` mode hides there);
* ``dp_comm_exposed_s``: its replica set's reduce-scatters after ``P`` (and the shared embedding's
  all-reduce between the first and last stage, :mod:`sim.step.tied_embedding`) and its all-gather;
  ``optimizer_s``: its AdamW shard;
* ``wait_s``: the rest of the data-parallel phase: waiting for the other ranks (the barrier of the
  gradient norm, the slowest optimizer shard of its set, the step's end), so that the eight add up
  to the step time exactly;
* ``ep_comm_exposed_s``: inside the rank's chunks, the time the communication stream was busy (DeepEP
  notify and data; the TP and CP collectives where the layout has them, on the same stream) while
  neither compute stream ran: compute waiting on communication. It is part of the chunk times above,
  not a ninth term.

The top-level breakdown is the rank that ends last (``reported_rank``: its data-parallel phase ends
the step; among several, the one whose pipeline work ends last, then the busiest), the critical
path's; ``per_rank`` has all, and ``over_ranks`` the mean and the worst of bubble, exposed EP, exposed
DP and wait.
MFU: the model's training FLOPs per token (:mod:`sim.model.flops`: the main model without the MTP
module, as ISCA'25 Table 2 counts ~250 GFLOP/token; causal attention counts half the score matrix,
non-causal all of it) x tokens per step / (step time x GPUs x the GPU's dense BF16 peak), as
DeepSeek state theirs. GPU-hours per trillion tokens = GPUs x step time / 3600 x 1e12 / tokens per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sim.engine.identity import IdentityMemo
from sim.errors import MemoryLimitError, TwinError
from sim.hardware.gpu import GpuSpec
from sim.model.flops import training_flops_per_token
from sim.model.megatron_flops import megatron_flops_per_token
from sim.model.spec import ModelSpec
from sim.pipeline.ops import Op, Schedule
from sim.pipeline.schedules import SCHEDULES
from sim.step.activations import ActivationRecipe, activation_bytes, replay_bytes_per_token, wgrad_activation_bytes
from sim.step.fsdp import units
from sim.step.layout import Layout
from sim.step.memory import Memory, Precision, activation_levels, activation_walk, fsdp_memory, static_memory
from sim.step.simulate import StepRun
from sim.step.zero1 import ReplicaSet, pieces, rank_params
from sim.units import GiB

SECONDS_PER_DAY = 86_400.0
OVER_RANKS = ("bubble_s", "ep_comm_exposed_s", "dp_comm_exposed_s", "wait_s")  # mean and worst reported


@dataclass(frozen=True)
class RankBreakdown:
    rank: int
    forward_only_s: float
    backward_only_s: float
    weight_only_s: float
    overlapped_fb_s: float
    bubble_s: float
    optimizer_s: float
    dp_comm_exposed_s: float
    ep_comm_exposed_s: float
    memory: Memory
    wait_s: float = 0.0
    ends_s: float = 0.0  # when its data-parallel phase ends
    pipeline_end_s: float = 0.0  # when its own last action ends

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "forward_only_s": self.forward_only_s,
            "backward_only_s": self.backward_only_s,
            "weight_only_s": self.weight_only_s,
            "overlapped_fb_s": self.overlapped_fb_s,
            "bubble_s": self.bubble_s,
            "optimizer_s": self.optimizer_s,
            "dp_comm_exposed_s": self.dp_comm_exposed_s,
            "wait_s": self.wait_s,
            "ep_comm_exposed_s": self.ep_comm_exposed_s,
            "memory_per_gpu_GiB": self.memory.to_dict(),
        }

    @property
    def busy_s(self) -> float:
        return self.forward_only_s + self.backward_only_s + self.weight_only_s + self.overlapped_fb_s


def _recipe(model: ModelSpec, layout: Layout) -> ActivationRecipe:
    """What a GPU of the layout keeps: the model's recipe, with an expert-TP group's gathered rows."""
    recipe = ActivationRecipe.of(model)
    return replace(recipe, expert_tp=layout.etp) if layout.etp > 1 else recipe


def _stage_kwargs(model: ModelSpec, layout: Layout, stage: int) -> dict[str, Any]:
    place = layout.stages[stage]
    return {
        "recipe": _recipe(model, layout),
        "layers": [i for i in place.layers if i < model.n_layers],
        "tokens": layout.sp_tokens,  # what one GPU keeps: with sequence parallelism, its share of a TP group's
        "embedding": place.first,
        "head": place.last,
        "mtp": place.last and model.mtp_depth > 0,
    }


def stage_activations(model: ModelSpec, layout: Layout, stage: int) -> float:
    """Activation bytes one micro-batch keeps on a GPU of schedule stage ``stage`` from its forward to
    its backward (DeepSeek's recipe under the layout's recomputation, :mod:`sim.step.activations`)."""
    return activation_bytes(model, **_stage_kwargs(model, layout, stage), recompute=layout.recompute)


def replay_activations(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> float:
    """Under ``recompute: full``, what the layer whose backward runs holds on top of the saved layer
    inputs (:func:`sim.step.activations.replay_bytes_per_token`): one layer of one micro-batch at a
    time, the largest of rank ``device``'s; 0 otherwise. Held while each backward runs (:func:`_levels`):
    the micro-batch a backward works on is freed only when it ends."""
    if layout.recompute != "full":
        return 0.0
    layers = {i for s, d in enumerate(schedule.stage_device) if d == device for i in layout.stages[s].layers}
    per_token = replay_bytes_per_token(model, sorted(layers), _recipe(model, layout))  # an MTP block (n_layers) too
    return per_token * layout.sp_tokens


def stage_wgrad_activations(model: ModelSpec, layout: Layout, stage: int) -> float:
    """Bytes one micro-batch keeps on a GPU of schedule stage ``stage`` from its input-gradient pass to
    its deferred weight-gradient pass: what W reads (:func:`sim.step.activations.wgrad_activation_bytes`)."""
    return wgrad_activation_bytes(model, **_stage_kwargs(model, layout, stage))


def activation_peak(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> float:
    """Most activation bytes rank ``device`` holds at once: a micro-batch's activations of a stage are
    allocated when its F starts and freed when its B ends; a split backward's I keeps only what the
    deferred W reads, which W frees (:func:`sim.step.memory.activation_walk`); under full
    recomputation, while a backward runs, its re-run layer's tensors too (:func:`_levels`)."""
    if layout.recompute != "full":
        return activation_walk(schedule, device, *_held_bytes(model, layout, schedule, device)).bytes
    return max(during for during, _ in _levels(model, layout, schedule, device))


def _levels(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> list[tuple[float, float]]:
    """:func:`sim.step.memory.activation_levels` of rank ``device``, with a full recomputation's
    re-run layer (:func:`replay_activations`) held while each backward (B or I) runs."""
    levels = activation_levels(schedule, device, *_held_bytes(model, layout, schedule, device))
    replay = replay_activations(model, layout, schedule, device)
    if replay:
        backward = [any(a.op in (Op.B, Op.I) for a in act.atoms()) for act in schedule.actions[device]]
        levels = [(during + replay * b, after) for (during, after), b in zip(levels, backward, strict=True)]
    return levels


def _held_bytes(
    model: ModelSpec, layout: Layout, schedule: Schedule, device: int
) -> tuple[dict[int, float], dict[int, float]]:
    """One micro-batch's bytes of each stage ``device`` holds: from F to the backward, and from a split
    backward's I to its W (the same as the first where the backward is never split)."""
    mine = [s for s, d in enumerate(schedule.stage_device) if d == device]
    whole = {s: stage_activations(model, layout, s) for s in mine}
    split = any(a.op is Op.I for action in schedule.actions[device] for a in action.atoms())
    wgrad = {s: stage_wgrad_activations(model, layout, s) for s in mine} if split else whole
    return whole, wgrad


def rank_static_memory(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> Memory:
    """Parameters, gradients and optimizer shard of one GPU of rank ``device``: ZeRO-1
    (:func:`sim.step.memory.static_memory`) or, under ``training.fsdp``, FSDP
    (:func:`sim.step.memory.fsdp_memory`)."""
    rset = ReplicaSet.of(layout, schedule, device)
    whole = rank_params(model, layout, schedule, device)
    if layout.fsdp:
        largest = max(
            (u.params for place, p in pieces(model, layout, schedule, device) for u in units(model, layout, place, p)),
            key=lambda p: p.total,
        )
        return fsdp_memory(
            whole,
            largest,
            dp=rset.dp,
            expert_dp=rset.expert_dp,
            precision=Precision.of(model),
            reshard=layout.fsdp_reshard_after_forward,
        )
    return static_memory(whole, dp=rset.dp, expert_dp=rset.expert_dp, precision=Precision.of(model))


def memory_levels(
    model: ModelSpec, layout: Layout, schedule: Schedule, device: int
) -> tuple[float, list[tuple[float, float]]]:
    """Rank ``device``'s parameters, gradients and optimizer shard (bytes per GPU), and per entry of its
    action list the activation bytes held while it runs and after it
    (:func:`sim.step.memory.activation_levels`): the memory counter of a trace."""
    static = rank_static_memory(model, layout, schedule, device)
    return static.params + static.grads + static.optimizer, _levels(model, layout, schedule, device)


_MEMORY_MEMO: IdentityMemo[Memory] = IdentityMemo(64)  # a few steps' worth (entries keep their schedules alive)


def rank_memory(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> Memory:
    """Parameters, gradients, optimizer shard and peak activations on one GPU of rank ``device``.
    Memoised by the identity of its inputs (frozen objects): a run checks every rank's memory when it
    is assembled and reports it after the step, from the same layout and schedule."""
    hit = _MEMORY_MEMO.get((model, layout, schedule), device)
    if hit is not None:
        return hit
    static = rank_static_memory(model, layout, schedule, device)
    mem = Memory(static.params, static.grads, static.optimizer, activation_peak(model, layout, schedule, device))
    return _MEMORY_MEMO.put((model, layout, schedule), mem, device)


Relayout = Callable[[str, int, int], tuple[Layout, Schedule]]
"""(schedule name, PP, sequences per micro-batch) -> the step's layout and schedule with only those
changed (the same GPUs, global batch and layer split); raises :class:`ScenarioError` where impossible."""


def _worst(model: ModelSpec, layout: Layout, schedule: Schedule) -> tuple[int, Memory]:
    """The rank with the most memory per GPU (the lowest of equals) and its memory."""
    mems = [rank_memory(model, layout, schedule, d) for d in range(layout.devices)]
    d = max(range(len(mems)), key=lambda i: (mems[i].total, -i))
    return d, mems[d]


def _fits(model: ModelSpec, relayout: Relayout, change: tuple[str, int, int], limit: float) -> float | None:
    """The most memory per GPU of the changed layout if every rank fits under ``limit``, else None."""
    try:
        layout, schedule = relayout(*change)
    except TwinError:  # an impossible layout is not advised
        return None
    most = _worst(model, layout, schedule)[1].total
    return most if most <= limit else None


def memory_advice(model: ModelSpec, layout: Layout, schedule: Schedule, relayout: Relayout, limit: float) -> str:
    """The changes of one key that make every rank fit under ``limit`` bytes, each checked by the memory
    model on the changed layout: the smallest larger ``pipeline.pp``, the largest smaller
    ``training.microbatch_sequences``, every other schedule at the same PP. '' when none fits."""
    name, pp, mbs = schedule.name, schedule.pp, layout.microbatch_sequences
    found: list[str] = []
    for p in range(pp + 1, model.n_layers + 1):
        gb = _fits(model, relayout, (name, p, mbs), limit)
        if gb is not None:
            found.append(f"pipeline.pp: {p} ({gb / GiB:.1f} GiB)")
            break
    for m in range(mbs - 1, 0, -1):
        gb = _fits(model, relayout, (name, pp, m), limit)
        if gb is not None:
            found.append(f"training.microbatch_sequences: {m} ({gb / GiB:.1f} GiB)")
            break
    others = []
    for other in SCHEDULES:
        gb = None if other == name else _fits(model, relayout, (other, pp, mbs), limit)
        if gb is not None:
            others.append(f"[{other}] ({gb / GiB:.1f} GiB)")
    if others:
        found.append("pipeline.schedules: " + " or ".join(others))
    return "; ".join(found)


def check_memory(
    model: ModelSpec, layout: Layout, schedule: Schedule, gpu: GpuSpec, relayout: Relayout | None = None
) -> None:
    """Refuse a layout whose memory per GPU exceeds the GPU's, naming the rank that needs the most.
    With ``relayout`` the one-line refusal names the changes that fit (:func:`memory_advice`: each
    evaluated by the memory model before it is printed, so a change that does not fit, or makes it
    worse, is never advised)."""
    limit = gpu.hbm_GiB * GiB
    d, mem = _worst(model, layout, schedule)
    if mem.total <= limit:
        return
    parts = ", ".join(f"{k} {v:.1f}" for k, v in mem.to_dict().items() if k != "total")
    advice = memory_advice(model, layout, schedule, relayout, limit) if relayout is not None else ""
    if not advice:
        advice = "no larger pipeline.pp, fewer sequences per micro-batch or other schedule fits"
    else:
        advice = f"it fits with {advice}"
    raise MemoryLimitError(
        "training",
        f"pipeline rank {d} needs {mem.total / GiB:.1f} GiB per GPU ({parts} GiB), more than the "
        f"{gpu.name}'s {gpu.hbm_GiB:g} GiB: {advice}; or set training.check_memory: false",
    )


def rank_breakdowns(step: StepRun) -> list[RankBreakdown]:
    pipe = step.reported_pipeline()
    sched = pipe.run.schedule
    inp = step.spec.inputs
    lay = inp.layout
    total = step.step_time
    makespan = max(t.pipeline_end for t in step.timelines)
    sums = [{op: 0.0 for op in Op} for _ in range(lay.devices)]
    exposed = [0.0] * lay.devices
    pipe.exposed_comm_all()  # every re-timed action's at once (read below span by span)
    for span in pipe.run.recorder.spans:
        action = sched.actions[span.device][span.pos]
        sums[span.device][action.op] += span.end - span.start
        exposed[span.device] += pipe.exposed_comm_at(span.device, span.pos)
    out = []
    for d in range(lay.devices):
        dp = step.dp[d]
        s = sums[d]
        busy = s[Op.F] + s[Op.B] + s[Op.I] + s[Op.W] + s[Op.FB]
        t = step.timelines[d]
        syncs = (*t.reduce_scatter, *((t.embedding_sync,) if t.embedding_sync else ()))
        after = sum(max(0.0, e - max(st, makespan)) for st, e in syncs)  # RS (and the embedding's) past the pipeline
        dp_comm = after + t.all_gather[1] - t.all_gather[0]
        mem = rank_memory(inp.model, lay, sched, d)
        out.append(
            RankBreakdown(
                rank=d,
                forward_only_s=s[Op.F],
                backward_only_s=s[Op.B] + s[Op.I],
                weight_only_s=s[Op.W],
                overlapped_fb_s=s[Op.FB],
                bubble_s=makespan - busy,
                optimizer_s=dp.optimizer_s,
                dp_comm_exposed_s=dp_comm,
                ep_comm_exposed_s=exposed[d],
                memory=mem,
                wait_s=max(0.0, total - makespan - dp_comm - dp.optimizer_s),  # (rounding: never below 0)
                ends_s=t.end,
                pipeline_end_s=t.pipeline_end,
            )
        )
    return out


def tokens_per_day(tokens_per_step: int, step_time_s: float) -> float:
    """Tokens a day at ``step_time_s`` a step."""
    return tokens_per_step / step_time_s * SECONDS_PER_DAY


def gpu_hours_per_trillion_tokens(gpus: int, step_time_s: float, tokens_per_step: int) -> float:
    """GPU-hours a trillion tokens take on ``gpus`` GPUs at ``step_time_s`` a step."""
    return gpus * step_time_s / 3600.0 * 1e12 / tokens_per_step


@dataclass(frozen=True)
class StepResult:
    step_time_s: float
    ranks: tuple[RankBreakdown, ...]
    reported_rank: int
    tokens_per_step: int
    gpus: int
    flops_per_token: dict[str, float]  # causal / noncausal, main model
    bf16_peak_flops: float
    megatron_flops_per_token: float  # Megatron-LM's convention (sim.model.megatron_flops)
    layout: dict[str, int | str]
    stats: dict[str, Any]

    @property
    def reported(self) -> RankBreakdown:
        return self.ranks[self.reported_rank]

    def over_ranks(self) -> dict[str, dict[str, float]]:
        """Mean and worst over the ranks of what the critical path's rank alone would hide."""
        out: dict[str, dict[str, float]] = {}
        for key in OVER_RANKS:
            values = [getattr(x, key) for x in self.ranks]
            worst = max(range(len(values)), key=lambda i: (values[i], -i))
            out[key] = {"mean": sum(values) / len(values), "worst": values[worst], "worst_rank": worst}
        return out

    def tflops_per_gpu(self, causal: bool) -> float:
        per = self.flops_per_token["causal" if causal else "noncausal"]
        return per * self.tokens_per_step / self.step_time_s / self.gpus / 1e12

    def mfu(self, causal: bool) -> float:
        return self.tflops_per_gpu(causal) * 1e12 / self.bf16_peak_flops

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_step / self.step_time_s / self.gpus

    @property
    def model_tflops_per_gpu(self) -> float:
        """Model TFLOP/s per GPU in Megatron-LM's convention, the figure Megatron-Core and NeMo runs
        publish (:mod:`sim.model.megatron_flops`)."""
        return self.megatron_flops_per_token * self.tokens_per_s_per_gpu / 1e12

    @property
    def tokens_per_day(self) -> float:
        return tokens_per_day(self.tokens_per_step, self.step_time_s)

    @property
    def gpu_hours_per_trillion_tokens(self) -> float:
        return gpu_hours_per_trillion_tokens(self.gpus, self.step_time_s, self.tokens_per_step)

    def to_dict(self) -> dict[str, Any]:
        r = self.reported
        breakdown = r.to_dict()
        mem = breakdown.pop("memory_per_gpu_GiB")
        breakdown.pop("rank")
        worst_memory = max(self.ranks, key=lambda x: x.memory.total)
        return {
            "step_time_s": self.step_time_s,
            "reported_rank": self.reported_rank,
            "breakdown": breakdown,
            "over_ranks": self.over_ranks(),
            "per_rank": [x.to_dict() for x in self.ranks],
            "mfu": {"bf16_noncausal": self.mfu(False), "bf16_causal": self.mfu(True)},
            "tflops_per_gpu": {"noncausal": self.tflops_per_gpu(False), "causal": self.tflops_per_gpu(True)},
            "tokens_per_day": self.tokens_per_day,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "model_tflops_per_gpu": self.model_tflops_per_gpu,
            "gpu_hours_per_trillion_tokens": self.gpu_hours_per_trillion_tokens,
            "memory_per_gpu_GiB": worst_memory.memory.to_dict(),
            "memory_rank": worst_memory.rank,
            "reported_rank_memory_GiB": mem,
            "layout": self.layout,
            "tokens_per_step": self.tokens_per_step,
            "stats": self.stats,
        }


def account(step: StepRun, gpu: GpuSpec) -> StepResult:
    """The step's figures from its timeline."""
    inp = step.spec.inputs
    ranks = rank_breakdowns(step)
    reported = max(ranks, key=lambda r: (r.ends_s, r.pipeline_end_s, r.busy_s, -r.rank)).rank
    flops = {
        "causal": training_flops_per_token(inp.model, causal=True).main,
        "noncausal": training_flops_per_token(inp.model, causal=False).main,
    }
    stats: dict[str, Any] = dict(step.stats) | {"wall_s": step.wall_s}
    return StepResult(
        step_time_s=step.step_time,
        ranks=tuple(ranks),
        reported_rank=reported,
        tokens_per_step=inp.layout.tokens_per_step,
        gpus=inp.layout.gpus,
        flops_per_token=flops,
        bf16_peak_flops=gpu.bf16_dense_TFLOPS * 1e12,
        megatron_flops_per_token=megatron_flops_per_token(inp.model, tp=inp.layout.tp),  # padded to 128 x TP
        layout=inp.layout.to_dict(),
        stats=stats,
    )
