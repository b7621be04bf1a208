"""Memory per GPU and the optimizer step's memory traffic for ZeRO-1 training (pure functions).

Units: bytes, elements (parameters), tokens; :meth:`Memory.to_dict` gives GiB (2**30 bytes, the unit of
an HBM's capacity).

Precision recipe (DeepSeek-V3 report, arXiv 2412.19437, section 3.3, REFERENCE.md section 1):

* weights in BF16 on every GPU that computes with them; the FP8 GEMMs quantise them on the fly in
  128x128 blocks. Whether an FP8 copy is also kept is not published: ``Precision.fp8_weight_copy``
  (default False; True adds 1 byte and an FP32 scale per 128x128 block for every FP8-GEMM weight);
* gradients accumulated over micro-batches in FP32 ("master weights ... and gradients (used for
  batch size accumulation) are still retained in FP32", 3.3.2); ZeRO-1 does not shard them;
* AdamW state: FP32 master weights and BF16 first and second moments ("we adopt the BF16 data
  format instead of FP32 to track the first and second moments", 3.3.2), sharded over the
  data-parallel group under ZeRO-1: non-expert state over the non-expert DP group (``dp``), routed
  experts' state over the expert DP group (``expert_dp`` = GPUs / (PP x EP), 2 for DeepSeek-V3);
* the EMA of the parameters lives in CPU memory (3.2.3): 0 bytes on the GPU.

Activations: what one micro-batch keeps on a stage from its forward to its backward and, under
W-deferral, from its input-gradient pass (I) to its weight-gradient pass (W) is
:mod:`sim.step.activations` (DeepSeek's recompute and FP8-caching recipe); how many a GPU holds at
once follows from its schedule's action list (:func:`activation_walk`): F allocates a micro-batch's
saved activations, B frees them, I exchanges them for what W reads, W frees that. A device runs its
list in order, so the order alone fixes its peak, read after each entry's forward allocations and
after its I exchanges.

DeepSeek-V3 default (PP16 DualPipe, rank r holds stages r and 15-r, EP64, DP128, expert DP 2, 4096
tokens per micro-batch, even layer split 3,4,...,4,3,3, what each rank holds at its peak from the
DualPipe action lists; GiB = 2**30 B, the unit of the H800's "80 GB"):

==========  ===========  ======  =====  =========  ================  =====
rank        stages       params  grads  optimizer  activations_peak  total
==========  ===========  ======  =====  =========  ================  =====
0           0 and 15     9.95    19.91  2.90       24.17             56.93
7           7 and 8      6.10    12.19  5.36       41.53             65.18
==========  ===========  ======  =====  =========  ================  =====

(This table shards over one pipeline's DP groups. The training step also synchronises DualPipe's two
copies of each stage, ranks r and 15-r as one ZeRO-1 group of DP 256, expert DP 4, which halves the
optimizer column: ``twin run`` reports rank 7 at 2.68 GiB, total 62.50; rank 0 1.45, 55.48; docs/memory.md.)

Rank 0 holds at its peak 16 micro-batches of stage 0 (3 dense layers, 1.10 GiB each) and 1 of stage
15 (3 MoE layers, the MTP block and two heads' logits: 6.50 GiB); rank 7's peak comes in DualPipe's
last phases, 4 micro-batches of stage 7 and 4 of stage 8 awaiting their W (4 MoE layers: 5.19 GiB
each, against 2.39 GiB for a whole micro-batch). Ranks 2-6 and 9-13 need 64.71 GiB (rank 2: 15 whole
micro-batches and 1 awaiting W), ranks 7 and 8 65.18 GiB (the most), ranks 1 and 14 60.15 GiB. All fit
in the H800's 80 GiB with 14 GiB or more left for communication buffers (DeepEP), workspace and
fragmentation, which are not counted (``deepseek_v3_default``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sim.engine.identity import IdentityMemo
from sim.model.params import StageParams, device_params
from sim.model.spec import ModelSpec
from sim.pipeline.ops import Op, Schedule
from sim.step.activations import ActivationRecipe, stage_activation_bytes, stage_wgrad_bytes
from sim.units import BF16_BYTES, FP8_BLOCK, FP8_BYTES, FP32_BYTES, GiB


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter of each copy (DeepSeek-V3 section 3.3; defaults are the recipe's)."""

    weight_bytes: float = BF16_BYTES  # BF16 working weights
    fp8_weight_copy: bool = False  # not published: an FP8 copy of the FP8-GEMM weights kept as well
    grad_bytes: float = FP32_BYTES  # FP32 accumulation over micro-batches
    master_bytes: float = FP32_BYTES  # FP32 master weights (optimizer state)
    moment_bytes: float = BF16_BYTES  # each of AdamW's m and v, BF16

    @property
    def optimizer_bytes(self) -> float:
        """Optimizer state per parameter before sharding: master + m + v."""
        return self.master_bytes + 2 * self.moment_bytes

    @staticmethod
    def of(s: ModelSpec) -> Precision:
        """The copies of ``s.dtype``'s recipe: DeepSeek's (FP8: BF16 moments), or Megatron-Core's
        mixed precision (BF16: BF16 weights, FP32 gradient buffers, FP32 master weights and FP32
        moments in its distributed optimizer; ``--use-precision-aware-optimizer`` aside)."""
        return _DEEPSEEK if s.dtype == "fp8" else _MIXED_BF16


_DEEPSEEK = Precision()
_MIXED_BF16 = Precision(moment_bytes=FP32_BYTES)


# ---- what a device holds, in the order of its actions ---------------------------------------------


@dataclass(frozen=True)
class ActivationPeak:
    """A device's activation peak and what it holds then, per stage (of the stages' table given)."""

    bytes: float
    whole: dict[int, float] = field(default_factory=dict)  # forward done, input gradients not yet
    awaiting_w: dict[int, float] = field(default_factory=dict)  # input gradients done, W deferred


_WALKS: IdentityMemo[ActivationPeak] = IdentityMemo(size=256)  # the last walks (a sweep repeats them)


def activation_walk(
    schedule: Schedule, device: int, whole: Mapping[int, float], wgrad: Mapping[int, float]
) -> ActivationPeak:
    """:func:`_walk`, kept for the same schedule object and bytes (a sweep's points that change only
    rates share one schedule, :func:`sim.pipeline.schedules.build_schedule`, and walk it alike)."""
    extra = (device, tuple(whole.items()), tuple(wgrad.items()))
    peak = _WALKS.get((schedule,), extra)
    if peak is None:
        peak = _WALKS.put((schedule,), _walk(schedule, device, whole, wgrad), extra)
    return ActivationPeak(peak.bytes, dict(peak.whole), dict(peak.awaiting_w))  # (a copy: its dicts are mutable)


def _walk(schedule: Schedule, device: int, whole: Mapping[int, float], wgrad: Mapping[int, float]) -> ActivationPeak:
    """The most activation bytes ``device`` holds at once, and what it holds then (per schedule stage,
    counts of micro-batches), given one micro-batch's bytes of each stage it holds: ``whole`` from its
    F to its backward, ``wgrad`` from a split backward's I to its W.

    Rule (the module docstring): F allocates ``whole``; B frees it; I exchanges it for ``wgrad`` (the
    operands W reads are written by I, the rest is released); W frees ``wgrad``. The level is read
    after each entry's forward allocations (an F&B pair: with its backward's activations still held)
    and again after its I exchanges (which raise the level when W keeps more than the forward saved).
    A device runs its list in order, so the order alone fixes the peak."""
    held: dict[int, float] = {}
    waiting: dict[int, float] = {}
    best = ActivationPeak(0.0)

    def level() -> float:
        return sum(n * whole[st] for st, n in held.items()) + sum(n * wgrad[st] for st, n in waiting.items())

    def read() -> None:
        nonlocal best
        now = level()
        if now > best.bytes * (1 + 1e-12):
            clean = {st: n for st, n in held.items() if n}, {st: n for st, n in waiting.items() if n}
            best = ActivationPeak(now, *clean)

    for action in schedule.actions[device]:
        atoms = action.atoms()
        for a in atoms:
            if a.op is Op.F:
                held[a.stage] = held.get(a.stage, 0) + 1
        read()
        for a in atoms:
            if a.op is Op.I:
                held[a.stage] -= 1
                waiting[a.stage] = waiting.get(a.stage, 0) + 1
        if any(a.op is Op.I for a in atoms):
            read()
        for a in atoms:
            if a.op is Op.B:
                held[a.stage] -= 1
            elif a.op is Op.W:
                waiting[a.stage] -= 1
    return best


def activation_levels(
    schedule: Schedule, device: int, whole: Mapping[int, float], wgrad: Mapping[int, float]
) -> list[tuple[float, float]]:
    """Per entry of ``device``'s action list: (the most activation bytes held while it runs, the bytes
    held once it has ended), by :func:`activation_walk`'s rule (the most is read after its forward
    allocations and after its I exchanges; its frees come at its end). The largest first item is
    :func:`activation_walk`'s peak (a test ties the two); a trace draws these as a memory counter."""
    held: dict[int, float] = {}
    waiting: dict[int, float] = {}

    def level() -> float:
        return sum(n * whole[st] for st, n in held.items()) + sum(n * wgrad[st] for st, n in waiting.items())

    out: list[tuple[float, float]] = []
    for action in schedule.actions[device]:
        atoms = action.atoms()
        for a in atoms:
            if a.op is Op.F:
                held[a.stage] = held.get(a.stage, 0) + 1
        high = level()
        for a in atoms:
            if a.op is Op.I:
                held[a.stage] -= 1
                waiting[a.stage] = waiting.get(a.stage, 0) + 1
        high = max(high, level())
        for a in atoms:
            if a.op is Op.B:
                held[a.stage] -= 1
            elif a.op is Op.W:
                waiting[a.stage] -= 1
        out.append((high, level()))
    return out


def _by_model_stage(schedule: Schedule, counts: Mapping[int, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for st, n in counts.items():
        m = schedule.stage_model[st]
        out[m] = round(out.get(m, 0.0) + n * schedule.stage_weight[st], 9)
    return {m: v for m, v in sorted(out.items()) if v > 1e-12}


def held_at_peak(
    schedule: Schedule, device: int, whole_bytes: Mapping[int, float], wgrad_bytes: Mapping[int, float]
) -> ActivationPeak:
    """:func:`activation_walk` with one micro-batch's bytes per *model* stage (a stage holding a
    fraction ``w`` of a model stage, interleaved, holds ``w`` of them); the counts at the peak are per
    model stage, in micro-batches."""
    sched_stages = [st for st, d in enumerate(schedule.stage_device) if d == device]
    w = schedule.stage_weight
    whole = {st: w[st] * whole_bytes[schedule.stage_model[st]] for st in sched_stages}
    wgrad = {st: w[st] * wgrad_bytes[schedule.stage_model[st]] for st in sched_stages}
    peak = activation_walk(schedule, device, whole, wgrad)
    return ActivationPeak(peak.bytes, _by_model_stage(schedule, peak.whole), _by_model_stage(schedule, peak.awaiting_w))


def inflight_at_peak(
    schedule: Schedule, device: int, stage_bytes: Mapping[int, float] | None = None
) -> dict[int, float]:
    """Micro-batches of each model stage in flight on ``device`` (F done, backward not complete: B, or
    W when split) at its peak, a micro-batch awaiting W counted whole: the rule of :mod:`sim.results`
    and of Table 2's units, whose sum is the device's ``peak_activations`` (PP+1 for DualPipe). With
    ``stage_bytes`` (one micro-batch per model stage) the peak is the one in bytes (stages differ).
    The memory per GPU charges a micro-batch awaiting W only what W reads (:func:`held_at_peak`)."""
    ones = {m: 1.0 for m in schedule.stage_model} if stage_bytes is None else stage_bytes
    peak = held_at_peak(schedule, device, ones, ones)
    total = dict(peak.whole)
    for m, n in peak.awaiting_w.items():
        total[m] = round(total.get(m, 0.0) + n, 9)
    return dict(sorted(total.items()))


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU."""

    params: float
    grads: float
    optimizer: float
    activations_peak: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations_peak

    def to_dict(self) -> dict[str, float]:
        """GiB (2**30 bytes) under params, grads, optimizer, activations_peak, total."""
        return {
            "params": self.params / GiB,
            "grads": self.grads / GiB,
            "optimizer": self.optimizer / GiB,
            "activations_peak": self.activations_peak / GiB,
            "total": self.total / GiB,
        }


def static_memory(p: StageParams, *, dp: int, expert_dp: int, precision: Precision | None = None) -> Memory:
    """Parameters, gradients and optimizer state of ``p`` on one GPU under ZeRO-1 (no activations)."""
    if dp < 1 or expert_dp < 1:
        raise ValueError(f"DP degrees must be >= 1, got dp={dp}, expert_dp={expert_dp}")
    pr = precision or Precision()
    weights = p.total * pr.weight_bytes
    if pr.fp8_weight_copy:
        weights += p.fp8_gemm * (FP8_BYTES + FP32_BYTES / FP8_BLOCK**2)
    optimizer = pr.optimizer_bytes * (p.non_expert / dp + p.expert / expert_dp)
    return Memory(params=weights, grads=p.total * pr.grad_bytes, optimizer=optimizer, activations_peak=0.0)


def fsdp_memory(
    p: StageParams,
    gathered: StageParams,
    *,
    dp: int,
    expert_dp: int,
    precision: Precision | None = None,
    reshard: bool = True,
) -> Memory:
    """Parameters, gradients and optimizer state of ``p`` on one GPU under FSDP / ZeRO-3
    (``training.fsdp``, :mod:`sim.step.fsdp`): weights, gradients and optimizer state sharded over
    the DP degrees (non-expert over ``dp``, experts over ``expert_dp``), plus what a GPU gathers:
    the weights of two units at once (the one computing, the next one prefetched) and the gradients
    of one (unsharded while its backward runs, until reduce-scattered), ``gathered`` being the largest
    unit the GPU holds (:func:`sim.step.fsdp.units`). An FP8 weight copy is made of the gathered
    weights. Without ``reshard`` (after the forward) every unit may be gathered at once: ``p`` whole."""
    if dp < 1 or expert_dp < 1:
        raise ValueError(f"DP degrees must be >= 1, got dp={dp}, expert_dp={expert_dp}")
    pr = precision or Precision()
    shard = p.non_expert / dp + p.expert / expert_dp
    held = gathered if reshard else p
    copies = 2 if reshard else 1
    weights = (shard + copies * held.total) * pr.weight_bytes
    if pr.fp8_weight_copy:
        weights += copies * held.fp8_gemm * (FP8_BYTES + FP32_BYTES / FP8_BLOCK**2)
    grads = (shard + gathered.total) * pr.grad_bytes
    optimizer = pr.optimizer_bytes * shard
    return Memory(params=weights, grads=grads, optimizer=optimizer, activations_peak=0.0)


def memory_per_gpu(
    s: ModelSpec,
    stages: Sequence[int],
    *,
    pp: int,
    ep: int,
    dp: int,
    expert_dp: int,
    tokens: int,
    inflight: Mapping[int, float] | float,
    awaiting_w: Mapping[int, float] | None = None,
    layers_per_stage: list[int] | None = None,
    precision: Precision | None = None,
    recipe: ActivationRecipe | None = None,
) -> Memory:
    """Memory of one GPU holding model stages ``stages`` of a ``pp``-stage layout (DualPipe rank r:
    ``[r, pp-1-r]``) under ZeRO-1 with DP degrees ``dp`` (non-expert) and ``expert_dp``.

    ``inflight``: micro-batches of ``tokens`` tokens held whole at the GPU's activation peak, either
    per model stage (:func:`held_at_peak`) or as one number in :mod:`sim.results` units
    (``peak_activations``), then charged at the largest held stage's activations (an upper bound).
    ``awaiting_w``: micro-batches past their input-gradient pass whose W is deferred, per model stage,
    charged what W reads (:func:`stage_wgrad_bytes`).
    """
    static = static_memory(
        device_params(s, stages, pp=pp, ep=ep, layers_per_stage=layers_per_stage),
        dp=dp,
        expert_dp=expert_dp,
        precision=precision or Precision.of(s),
    )
    per_mb = {st: stage_activation_bytes(s, st, pp, tokens, layers_per_stage, recipe) for st in set(stages)}
    waiting = dict(awaiting_w or {})
    unknown = (set(inflight) if isinstance(inflight, Mapping) else set()) | set(waiting)
    unknown -= set(per_mb)
    if unknown:
        raise ValueError(f"in-flight micro-batches for stages {sorted(unknown)} the GPU does not hold")
    if isinstance(inflight, Mapping):
        acts = sum(n * per_mb[st] for st, n in inflight.items())
    else:
        acts = inflight * max(per_mb.values())
    acts += sum(n * stage_wgrad_bytes(s, st, pp, tokens, layers_per_stage, recipe) for st, n in waiting.items())
    return Memory(static.params, static.grads, static.optimizer, acts)


# ---- the optimizer step ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerTraffic:
    """HBM bytes one AdamW step reads and writes on one GPU (its ZeRO-1 shard)."""

    shard_params: float  # parameters this GPU updates
    read: float
    written: float

    @property
    def total(self) -> float:
        return self.read + self.written


def optimizer_shard(p: StageParams, *, dp: int, expert_dp: int) -> float:
    """Parameters whose optimizer state one GPU owns: non-expert / dp + expert / expert_dp."""
    return p.non_expert / dp + p.expert / expert_dp


def optimizer_traffic(
    p: StageParams, *, dp: int, expert_dp: int, precision: Precision | None = None
) -> OptimizerTraffic:
    """One AdamW step over this GPU's shard: read the FP32 gradient shard, the FP32 master weights
    and the BF16 m and v; write the master weights, m, v and the BF16 weights (then all-gathered).
    22 bytes per shard parameter with the default precision (12 read, 10 written). An FP8 weight
    copy, if kept, is re-quantised after the all-gather and is not counted here."""
    pr = precision or Precision()
    n = optimizer_shard(p, dp=dp, expert_dp=expert_dp)
    read = n * (pr.grad_bytes + pr.master_bytes + 2 * pr.moment_bytes)
    written = n * (pr.master_bytes + 2 * pr.moment_bytes + pr.weight_bytes)
    return OptimizerTraffic(shard_params=n, read=read, written=written)


@dataclass(frozen=True)
class DpCollective:
    """One collective over a data-parallel group, in nccl-tests sizes (``sim.network.collectives``):
    ``size_bytes`` is the per-rank buffer (reduce-scatter: the input; all-gather: the output)."""

    kind: str  # "reduce_scatter" or "all_gather"
    group: int  # ranks in the group
    size_bytes: float

    @property
    def sent_bytes(self) -> float:
        """Bytes each rank sends (and receives) in a ring: (n-1)/n of the buffer."""
        return self.size_bytes * (self.group - 1) / self.group if self.group > 1 else 0.0


@dataclass(frozen=True)
class DpCollectives:
    """The ZeRO-1 step's gradient reduce-scatter and parameter all-gather, for the non-expert group
    (size ``dp``) and the expert group (size ``expert_dp``), per GPU."""

    grad_reduce_scatter: DpCollective
    param_all_gather: DpCollective
    expert_grad_reduce_scatter: DpCollective
    expert_param_all_gather: DpCollective

    def all(self) -> tuple[DpCollective, ...]:
        return (
            self.grad_reduce_scatter,
            self.param_all_gather,
            self.expert_grad_reduce_scatter,
            self.expert_param_all_gather,
        )


def dp_collectives(
    p: StageParams, *, dp: int, expert_dp: int, grad_comm_bytes: float = 4.0, precision: Precision | None = None
) -> DpCollectives:
    """Gradient reduce-scatter (``grad_comm_bytes`` per element: FP32 like the accumulated gradient
    by default; the wire precision is not published) and BF16 parameter all-gather of one GPU's
    non-expert and expert parameters."""
    pr = precision or Precision()
    return DpCollectives(
        grad_reduce_scatter=DpCollective("reduce_scatter", dp, p.non_expert * grad_comm_bytes),
        param_all_gather=DpCollective("all_gather", dp, p.non_expert * pr.weight_bytes),
        expert_grad_reduce_scatter=DpCollective("reduce_scatter", expert_dp, p.expert * grad_comm_bytes),
        expert_param_all_gather=DpCollective("all_gather", expert_dp, p.expert * pr.weight_bytes),
    )


def deepseek_v3_default(s: ModelSpec, rank: int, microbatches: int = 120) -> Memory:
    """Memory of DualPipe rank ``rank`` in DeepSeek-V3's published layout (PP16, EP64, DP128,
    expert DP 2, one 4096-token sequence per micro-batch, ``microbatches`` per step), with the
    in-flight micro-batches of each stage from the DualPipe action lists."""
    from sim.pipeline.schedules import build_schedule
    from sim.step.layout import DEFAULT_EP, DEFAULT_GPUS, DEFAULT_PP

    pp = DEFAULT_PP
    dp = DEFAULT_GPUS // pp  # 128
    stages = [rank, pp - 1 - rank]
    whole = {st: stage_activation_bytes(s, st, pp, s.seq_len) for st in stages}
    wgrad = {st: stage_wgrad_bytes(s, st, pp, s.seq_len) for st in stages}
    peak = held_at_peak(build_schedule("dualpipe", pp, microbatches), rank, whole, wgrad)
    return memory_per_gpu(
        s,
        stages,
        pp=pp,
        ep=DEFAULT_EP,
        dp=dp,
        expert_dp=dp // DEFAULT_EP,
        tokens=s.seq_len,
        inflight=peak.whole,
        awaiting_w=peak.awaiting_w,
    )
