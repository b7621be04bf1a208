"""ZeRO-1's data-parallel phase: gradient reduce-scatter, optimizer step, parameter all-gather.

Groups. The ranks that hold the same layers form one *replica set*: one rank for 1F1B-like
schedules, ranks ``d`` and ``PP-1-d`` for DualPipe, whose two copies of every stage must be
gradient-synchronised (DeepSeek's DualPipe example adds the mirror rank's gradients). The non-expert
weights of a replica set are data-parallel over all its GPUs (DP = GPUs per rank x copies; DeepSeek-V3:
128 x 2), each routed expert over its replicas on those ranks (expert DP = GPUs per rank / EP x
copies: 2 x 2). The optimizer shard and the optimizer state in memory divide by those degrees.

Collectives run on the flow-level fabric (:mod:`sim.network.collectives`): the non-expert one
hierarchical by default (NVLink inside nodes, then one IB ring per local GPU index), the expert ones
as rings (one GPU per node), all of a replica set's groups at the same time. Sizes follow nccl-tests:
the reduce-scatter's input is the gradients (``grad_reduce_bytes`` per element: FP32, in which
DeepSeek accumulate them [V3 3.3]; the wire format is not published, so it is a parameter), the
all-gather's output the parameters (BF16).

When. ``dp_overlap: none``: the reduce-scatter of everything starts when the whole pipeline has
drained. ``tail``: each stage's gradients are reduce-scattered as soon as that stage's last backward
(B or W) has ended on every rank of the set, one stage after another on the set's communication
stream, overlapping the rest of the pipeline (their interference with compute is not modelled). Then
a barrier (the global gradient norm for clipping needs every rank), the optimizer, the all-gather.

The optimizer (AdamW, FP32 master weights, BF16 moments [V3 3.3]) is memory-bound: one streaming
kernel over :func:`sim.step.memory.optimizer_traffic` bytes on every SM, at the profile's HBM
efficiency for that size.

Not modelled (small, documented): the gradient-norm all-reduce itself (a few bytes; its
synchronisation is the barrier), reduction arithmetic, NCCL protocol overheads. Replica sets hold
whole nodes of a non-blocking fabric, so each set's collectives are simulated alone, memoised by
their sizes (identical sets share one simulation).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.engine.identity import IdentityMemo
from sim.forked import Forked, can_fork
from sim.model.params import StageParams, stage_params
from sim.model.spec import ModelSpec
from sim.network.collectives import coflow_process, collective_coflows, collective_process
from sim.network.context import SimContext
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology
from sim.pipeline.ops import Op, Schedule
from sim.step.layout import Layout, StagePlacement
from sim.step.memory import Precision, dp_collectives, optimizer_traffic


@dataclass(frozen=True)
class DpSpec:
    overlap: str = "none"  # none | tail
    algorithm: str = "hierarchical"  # non-expert group: hierarchical | ring
    grad_reduce_bytes: int = 4
    completion_rtol: float = COMPLETION_RTOL


def held(layout: Layout, schedule: Schedule, device: int) -> tuple[StagePlacement, ...]:
    """The distinct stage placements (layers, extras) rank ``device`` holds, in a canonical order."""
    mine = {layout.stages[s] for s, d in enumerate(schedule.stage_device) if d == device}
    return tuple(sorted(mine, key=lambda p: (p.layers, p.first, p.last)))


_REPLICA_SETS: IdentityMemo[tuple[tuple[int, ...], ...]] = IdentityMemo(64)  # every rank's set, per run


def replica_set(layout: Layout, schedule: Schedule, device: int) -> tuple[int, ...]:
    """The ranks holding exactly the layers ``device`` holds (itself included). Worked out for every
    rank at once and memoised by the identity of the (frozen) layout and schedule."""
    sets = _REPLICA_SETS.get((layout, schedule))
    if sets is None:
        mine = [held(layout, schedule, d) for d in range(layout.devices)]
        sets = tuple(tuple(d for d in range(layout.devices) if mine[d] == mine[e]) for e in range(layout.devices))
        _REPLICA_SETS.put((layout, schedule), sets)
    return sets[device]


def placement_params(
    model: ModelSpec, layout: Layout, place: StagePlacement, embedding: bool, table_here: bool = False
) -> StageParams:
    """Parameters of one stage placement on one GPU (``embedding``: count the embedding here;
    ``table_here``: another placement on the GPU holds it, which a tied head shares)."""
    last = place.last and model.mtp_depth > 0
    return stage_params(
        model,
        [i for i in place.layers if i < model.n_layers],
        ep=layout.ep,
        embedding=embedding,
        head=place.last,
        mtp=last,
        table_here=table_here,
        tp=layout.tp,
        etp=layout.etp,
    )


def rank_params(model: ModelSpec, layout: Layout, schedule: Schedule, device: int) -> StageParams:
    """Parameters on one GPU of rank ``device``: the layers of every stage it holds, the embedding
    once where it holds a first stage or the MTP module (which shares it), the head where it holds a
    last stage."""
    parts = pieces(model, layout, schedule, device)
    return StageParams(
        sum(p.non_expert for _, p in parts),
        sum(p.expert for _, p in parts),
        sum(p.high_precision for _, p in parts),
    )


def pieces(
    model: ModelSpec, layout: Layout, schedule: Schedule, device: int
) -> list[tuple[StagePlacement, StageParams]]:
    places = held(layout, schedule, device)
    has_first = any(p.first for p in places)
    out = []
    for p in places:
        emb = p.first or (p.last and model.mtp_depth > 0 and not has_first)
        out.append((p, placement_params(model, layout, p, emb, table_here=has_first and not p.first)))
    return out


def takes_algorithm(layout: Layout, gpus: int) -> bool:
    """A non-expert DP group of ``gpus`` GPUs runs ``training.dp_algorithm`` (else a ring): without TP
    (under TP each TP rank's group is a ring), over whole nodes, more than one."""
    g = layout.gpus_per_node
    return layout.tp == 1 and gpus % g == 0 and gpus > g


@dataclass(frozen=True)
class ReplicaSet:
    """The ranks holding the same layers and the degrees of their data parallelism."""

    ranks: tuple[int, ...]
    dp: int  # non-expert
    expert_dp: int

    @staticmethod
    def of(layout: Layout, schedule: Schedule, device: int) -> ReplicaSet:
        ranks = replica_set(layout, schedule, device)
        return ReplicaSet(
            ranks, layout.dp * layout.cp * len(ranks), layout.expert_dp * len(ranks)
        )  # CP ranks: same weights

    def gpus(self, layout: Layout) -> np.ndarray:
        return np.concatenate([layout.rank_gpus(d) for d in self.ranks])

    def expert_groups(self, layout: Layout) -> list[np.ndarray]:
        """For each EP rank ``r``, the GPUs of the set's ranks holding its experts
        (:meth:`Layout.expert_dp_groups` of each rank, concatenated): row ``r`` of one matrix (one row
        per EP rank and ETP index under expert TP)."""
        per_rank = [layout.expert_dp_groups(d) for d in self.ranks]
        return list(np.concatenate([np.stack(g) for g in per_rank], axis=1))


_COLLECTIVES_MEMO: OrderedDict[tuple[object, ...], float] = OrderedDict()
COLLECTIVES_MEMO_SIZE = 256  # entries kept across steps in one process (a sweep's worker reuses them)


def _collectives(
    topology: Topology,
    kind: str,
    groups: list[tuple[np.ndarray, float, str]],
    rtol: float,
    ctx: SimContext | None = None,
) -> float:
    """Seconds until every (GPUs, per-rank bytes, algorithm) collective of ``kind`` has finished;
    memoised across steps by everything that determines it (the cluster description, the GPUs, sizes and
    algorithms, the completion tolerance), so the points of a sweep that share a fabric share it."""
    key = (
        topology.spec.model_dump_json(),
        kind,
        tuple((gpus.tobytes(), float(size), algo) for gpus, size, algo in groups),
        rtol,
    )
    hit = _COLLECTIVES_MEMO.get(key)
    if hit is not None:
        _COLLECTIVES_MEMO.move_to_end(key)
        return hit
    value = _simulate_collectives(ctx if ctx is not None else SimContext(topology, rtol), kind, groups)
    _remember(key, value)
    return value


def _remember(key: tuple[object, ...], value: float) -> None:
    _COLLECTIVES_MEMO[key] = value
    if len(_COLLECTIVES_MEMO) > COLLECTIVES_MEMO_SIZE:
        _COLLECTIVES_MEMO.popitem(last=False)


def _simulate_collectives(ctx: SimContext, kind: str, groups: list[tuple[np.ndarray, float, str]]) -> float:
    """The collectives alone on the run's network (nothing else active), each one a sequence of
    coflows, one per phase (:func:`sim.network.collectives.collective_coflows`), sharing NICs and
    links with the others as coflows: one event per phase, however many GPUs and ring steps.
    :func:`simulate_collectives_by_flows` is the reference (tests/unit/step/test_zero1_coflows.py)."""
    net = ctx.network
    procs = [
        coflow_process(net, collective_coflows(net.topo, kind, gpus, size, algo, net.seed), "zero1")
        for gpus, size, algo in groups
        if len(gpus) > 1 and size > 0
    ]
    return float(ctx.run_alone(procs))


def simulate_collectives_by_flows(ctx: SimContext, kind: str, groups: list[tuple[np.ndarray, float, str]]) -> float:
    """The reference of :func:`_simulate_collectives`: the same collectives flow by flow and ring step
    by ring step (:func:`sim.network.collectives.collective_process`)."""
    net = ctx.network
    procs = [
        collective_process(net, kind, gpus, size, algo) for gpus, size, algo in groups if len(gpus) > 1 and size > 0
    ]
    return float(ctx.run_alone(procs))


@dataclass(frozen=True)
class SetPhase:
    """A replica set's DP phase: reduce-scatter intervals, then (after the barrier) optimizer and
    all-gather durations."""

    rset: ReplicaSet
    params: StageParams  # per GPU
    reduce_scatter: tuple[tuple[float, float], ...]
    optimizer_s: float
    all_gather_s: float
    optimizer_bytes: float

    @property
    def reduce_scatter_end(self) -> float:
        return max((e for _, e in self.reduce_scatter), default=0.0)


_Ahead = tuple[
    dict[tuple[object, ...], float],  # DpModel._memo
    list[tuple[tuple[object, ...], float]],  # entries added to _COLLECTIVES_MEMO
    tuple[int, int, int],  # the network's flows, recomputes and completions meanwhile
]


class DpModel:
    """Times the DP phase of every replica set (memoised collective simulations)."""

    def __init__(
        self,
        spec: DpSpec,
        model: ModelSpec,
        layout: Layout,
        schedule: Schedule,
        topology: Topology,
        memory_time: Callable[[float], float],
        ctx: SimContext | None = None,
    ) -> None:
        self.spec, self.model, self.layout, self.schedule, self.topology = spec, model, layout, schedule, topology
        self.ctx = ctx if ctx is not None else SimContext(topology, spec.completion_rtol)
        self.memory_time = memory_time  # seconds of a streaming kernel moving that many bytes
        self._memo: dict[tuple[object, ...], float] = {}
        self._ahead: Forked[_Ahead] | None = None  # times alone worked out in a child (time_ahead)

    def groups(self, kind: str, rset: ReplicaSet, p: StageParams) -> list[tuple[np.ndarray, float, str]]:
        """The collectives of ``kind`` (reducescatter, allgather) a replica set runs together for the
        parameters ``p`` per GPU: (GPUs, per-rank bytes as nccl-tests counts them, algorithm) of the
        non-expert group (under TP, one per TP rank, first) and of each expert's replicas."""
        lay = self.layout
        sizes = dp_collectives(
            p,
            dp=rset.dp,
            expert_dp=rset.expert_dp,
            grad_comm_bytes=self.spec.grad_reduce_bytes,
            precision=Precision.of(self.model),
        )
        mine, expert = (
            (sizes.grad_reduce_scatter, sizes.expert_grad_reduce_scatter)
            if kind == "reducescatter"
            else (sizes.param_all_gather, sizes.expert_param_all_gather)
        )
        gpus = rset.gpus(lay)
        if lay.tp > 1:  # one group per TP rank, each holding its own shard (GPUs at the same TP index)
            out = [(gpus[i :: lay.tp], mine.size_bytes, "ring") for i in range(lay.tp)]
        else:
            algo = self.spec.algorithm if takes_algorithm(lay, len(gpus)) else "ring"
            out = [(gpus, mine.size_bytes, algo)]
        if rset.expert_dp > 1:
            out += [(grp, expert.size_bytes, "ring") for grp in rset.expert_groups(lay)]
        return out

    def time(self, kind: str, rset: ReplicaSet, p: StageParams) -> float:
        if self._ahead is not None:
            self._take_ahead()
        groups = self.groups(kind, rset, p)
        tp = self.layout.tp
        gpus, size, algo = groups[0]
        expert = groups[tp][1] if len(groups) > tp else 0.0
        key = (kind, len(gpus), rset.expert_dp, size, expert, algo, tp)
        if key not in self._memo:
            self._memo[key] = _collectives(self.topology, kind, groups, self.spec.completion_rtol, self.ctx)
        return self._memo[key]

    def alone(self, kind: str, groups: list[tuple[np.ndarray, float, str]]) -> float:
        """Seconds the collectives ``groups`` (GPUs, bytes, algorithm) of ``kind`` take together, alone
        on the fabric (memoised as :meth:`time`'s)."""
        return _collectives(self.topology, kind, groups, self.spec.completion_rtol, self.ctx)

    def wanted(self, shared: bool) -> list[tuple[str, ReplicaSet, StageParams]]:
        """Every (kind, replica set, parameters) whose collectives' time alone the step asks for: with
        ``tail`` the reduce-scatter of each piece a set holds (and, on the shared network, of the
        whole, whose coflow every set also builds), else that of the whole; the all-gather of the
        whole."""
        lay, sched = self.layout, self.schedule
        out: list[tuple[str, ReplicaSet, StageParams]] = []
        seen: set[tuple[int, ...]] = set()
        for d in range(lay.devices):
            rset = ReplicaSet.of(lay, sched, d)
            if rset.ranks in seen:
                continue
            seen.add(rset.ranks)
            whole = rank_params(self.model, lay, sched, d)
            if lay.fsdp:  # FSDP's collectives are per unit (sim.step.fsdp), timed as the step asks
                continue
            if self.spec.overlap == "tail":
                out += [("reducescatter", rset, p) for _, p in pieces(self.model, lay, sched, d)]
            if self.spec.overlap != "tail" or shared:
                out.append(("reducescatter", rset, whole))
            out.append(("allgather", rset, whole))
        return out

    def time_ahead(self, shared: bool) -> None:
        """Work out the times alone of :meth:`wanted` in a forked child while the step runs its
        pipelines (:class:`sim.forked.Forked`); the first :meth:`time` takes them. They are the
        same bits as here: each set of collectives runs alone on a table of its own from clock 0
        (:meth:`sim.network.context.SimContext.run_alone`), whatever the run's network did before."""
        if not can_fork():
            return
        wanted = self.wanted(shared)
        stats = self.ctx.network.stats

        def work() -> _Ahead:
            before = set(_COLLECTIVES_MEMO)
            counts = (stats.flows, stats.recomputes, stats.completions)
            for kind, rset, p in wanted:
                self.time(kind, rset, p)
            done = (stats.flows - counts[0], stats.recomputes - counts[1], stats.completions - counts[2])
            # the counters as they were: _take_ahead adds what this did, wherever it ran (here, where
            # the child failed, they would otherwise count twice)
            stats.flows, stats.recomputes, stats.completions = counts
            return self._memo, [(k, v) for k, v in _COLLECTIVES_MEMO.items() if k not in before], done

        self._ahead = Forked(work)

    def _take_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        assert ahead is not None
        memo, process_wide, (flows, recomputes, completions) = ahead.result()
        for key, value in memo.items():
            self._memo.setdefault(key, value)
        for key, value in process_wide:  # as _collectives would have stored them here
            _remember(key, value)
        stats = self.ctx.network.stats  # the network's counters as if it had worked them out here
        stats.flows += flows
        stats.recomputes += recomputes
        stats.completions += completions

    def cancel_ahead(self) -> None:
        """Drop a child still working the times out (the step failed or ended without them)."""
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None

    def phase(self, device: int, stage_ready: dict[StagePlacement, float], pipeline_end: float) -> SetPhase:
        """The DP phase of ``device``'s replica set: ``stage_ready`` is when each stage's gradients are
        complete on every rank of the set (used with ``tail``), ``pipeline_end`` when the whole
        pipeline has drained (used with ``none``)."""
        lay = self.layout
        rset = ReplicaSet.of(lay, self.schedule, device)
        held = pieces(self.model, lay, self.schedule, device)
        total = rank_params(self.model, lay, self.schedule, device)
        intervals: list[tuple[float, float]] = []
        if self.spec.overlap == "tail":
            t = 0.0
            for place, p in sorted(held, key=lambda x: stage_ready[x[0]]):
                start = max(t, stage_ready[place])
                t = start + self.time("reducescatter", rset, p)
                intervals.append((start, t))
        else:
            intervals.append((pipeline_end, pipeline_end + self.time("reducescatter", rset, total)))
        traffic = optimizer_traffic(
            total, dp=rset.dp, expert_dp=rset.expert_dp, precision=Precision.of(self.model)
        ).total
        opt = self.memory_time(traffic) if traffic > 0 else 0.0
        return SetPhase(rset, total, tuple(intervals), opt, self.time("allgather", rset, total), traffic)


def stage_ready_times(
    schedule: Schedule, layout: Layout, spans: list[tuple[int, int, float]]
) -> dict[StagePlacement, float]:
    """When each stage placement's weight gradients are complete everywhere: the latest end of any
    action holding a B or W of a schedule stage with that placement. ``spans``: (device, pos, end)."""
    ready: dict[StagePlacement, float] = {}
    for device, pos, end in spans:
        for atom in schedule.actions[device][pos].atoms():
            if atom.op in (Op.B, Op.W):
                place = layout.stages[atom.stage]
                ready[place] = max(ready.get(place, 0.0), end)
    return ready
