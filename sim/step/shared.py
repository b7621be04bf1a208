"""The step on one event loop and one network (``training.contention: shared``).

Every pipeline's actions run as processes on the run's context: a chunk with DeepEP phases starts
each phase as a coflow on the shared network when its plan reaches it (:mod:`sim.chunk.plan`),
the stage-to-stage sends are coflows of the rank's pipelines (:class:`sim.pipeline.execute.RankP2P`),
and each replica set's ZeRO-1 reduce-scatters start as soon as their gradients are ready (``tail``)
or the pipeline has drained (``none``), then the barrier, the optimizer and the all-gathers, on the
same network at the same time as whatever else still runs.

Which GPUs a coflow covers. Representative fidelity times one pipeline and takes every EP group of a
rank to run alike, so a rank's DeepEP phase is one coflow over all its EP groups (each group's
messages from the same routing), and a send is one coflow of every pipeline of the rank. Per-GPU
fidelity runs every EP group's pipeline with its own routing; each phase covers its own group.

Everything a coflow needs alone (the DeepEP phases' times inside their chunk, the collectives' times)
is measured on the context before the loop starts, while the network is idle.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from sim.chunk.phases import GroupTraffic
from sim.chunk.plan import CommPlan, comm_plan
from sim.chunk.timer import ChunkResult
from sim.chunk.tp_comm import TpCollective
from sim.model.params import StageParams
from sim.moe.deepep import message_flows
from sim.moe.traffic import Traffic
from sim.network.coflow import link_loads
from sim.network.collectives import collective_flows, ring_flows
from sim.network.context import SimContext
from sim.network.flows import FlowNetwork
from sim.pipeline.execute import Launched, RankP2P, launch, run_until
from sim.pipeline.ops import Op
from sim.step.actions import ChunkSource
from sim.step.chunk_comm import ChunkComm, solo_rates
from sim.step.fsdp import Fsdp
from sim.step.layout import StagePlacement
from sim.step.memory import Precision, optimizer_traffic
from sim.step.spec import Counting, DeviceTimeline, PipelineRun, Progress, Retimed, StepSpec
from sim.step.tied_embedding import embedding_groups, embedding_pair
from sim.step.zero1 import DpModel, ReplicaSet, SetPhase, pieces, rank_params

Coflow = tuple[np.ndarray, np.ndarray, float, float]  # links, bytes per link, time alone, latency


@dataclass
class _SetRun:
    """What one replica set's DP process saw (seconds from the origin)."""

    params: StageParams
    reduce_scatter: tuple[tuple[float, float], ...] = ()
    barrier: float = 0.0
    optimizer_s: float = 0.0
    all_gather: tuple[float, float] = (0.0, 0.0)
    optimizer_bytes: float = 0.0


class _Phases:
    """Link loads of DeepEP phases on a rank's GPUs, memoised by (traffic, phase, rank, group)."""

    def __init__(self, spec: StepSpec, representative: bool) -> None:
        self.spec = spec
        self.representative = representative
        self._memo: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self._keep: list[object] = []

    def loads(self, moves: object, device: int, group: int) -> tuple[np.ndarray, np.ndarray, float]:
        assert isinstance(moves, tuple)
        if isinstance(moves[0], TpCollective):
            return self._tp_loads(moves[0], device, group)
        traffic: Traffic | GroupTraffic = moves[0]
        phase: str = moves[1]
        key = (id(traffic), phase, device, -1 if self.representative else group)
        hit = self._memo.get(key)
        if hit is None:
            self._keep.append(traffic)
            lay = self.spec.inputs.layout
            if self.representative:
                parts = [(traffic, lay.ep_group(device, g)) for g in range(lay.ep_groups)]
            else:
                mine = traffic.timed if isinstance(traffic, GroupTraffic) else traffic
                parts = [(mine, lay.ep_group(device, group))]
            src, dst, nbytes, trees = [], [], [], []
            as_trees = self.spec.inputs.kernel.trees(phase)
            for t, gpus in parts:
                assert isinstance(t, Traffic)
                s, d, b, _, tree = message_flows(t, gpus, phase, as_trees)
                src.append(s)
                dst.append(d)
                nbytes.append(b)
                if tree is not None:  # tree ids unique over the parts
                    trees.append(tree + sum(len(x) for x in src[:-1]))
            hit = link_loads(
                self.spec.topology,
                np.concatenate(src),
                np.concatenate(dst),
                np.concatenate(nbytes),
                trees=np.concatenate(trees) if as_trees else None,
            )
            self._memo[key] = hit
        return hit

    def _tp_loads(self, c: TpCollective, device: int, group: int) -> tuple[np.ndarray, np.ndarray, float]:
        """A TP collective of rank ``device`` as one coflow: every TP group of the rank (representative),
        or those holding the GPUs of EP group ``group`` (per-GPU), their ring edges summed per link."""
        key = (c, device, -1 if self.representative else group)
        hit = self._memo.get(key)
        if hit is None:
            lay = self.spec.inputs.layout
            groups = {"tp": lay.tp_groups, "cp": lay.cp_groups, "etp": lay.etp_groups}[c.group](device)
            if not self.representative:
                mine = set(lay.ep_group(device, group).tolist())
                groups = [g for g in groups if mine & set(g.tolist())]
            flows = [collective_flows(self.spec.topology, c.kind, g, c.nbytes, "ring") for g in groups]
            src, dst, nbytes = (np.concatenate([f[i] for f in flows]) for i in range(3))
            hit = self._memo[key] = link_loads(self.spec.topology, src, dst, nbytes)
        return hit


def run_shared(
    spec: StepSpec,
    ctx: SimContext,
    sources: list[ChunkSource],
    model: DpModel,
    progress: Progress | None,
    total: int,
) -> tuple[list[PipelineRun], list[SetPhase], list[DeviceTimeline]]:
    """Run every pipeline and the DP phase in one event loop on ``ctx``."""
    inp = spec.inputs
    lay = inp.layout
    schedule = spec.schedule
    env = ctx.env
    net = ctx.network
    representative = inp.fidelity != "per-gpu"
    phases = _Phases(spec, representative)
    plans: dict[int, tuple[ChunkResult, CommPlan]] = {}
    chunk_loads: dict[tuple[int, int, int], list[tuple[np.ndarray, np.ndarray]]] = {}  # per (chunk, rank, group)
    # per (chunk, rank, group) once its phases' kinds are settled (known to the network, or never
    # reserving): their loads, coflow kinds, tags (where some phase is not DeepEP's) and solo sizes and caps
    chunk_ready: dict[
        tuple[int, int, int],
        tuple[
            list[tuple[np.ndarray, np.ndarray]],
            list[int] | None,
            list[str] | None,
            tuple[list[float], list[float]] | None,
        ],
    ] = {}

    # --------------------------------------------------------------- the pipelines
    # per pipeline: its group, chunk source and the re-timed actions' phase durations (its PipelineRun is
    # made once its schedule has run)
    pending: list[tuple[int, ChunkSource, Retimed]] = []
    handles: list[Launched] = []
    ready_left: dict[StagePlacement, int] = {}
    ready_event: dict[StagePlacement, simpy.Event] = {}
    ready_at: dict[StagePlacement, float] = {}
    for _ in sources:
        for acts in schedule.actions:
            for action in acts:
                for atom in action.atoms():
                    if atom.op in (Op.B, Op.W):
                        place = lay.stages[atom.stage]
                        ready_left[place] = ready_left.get(place, 0) + 1
    for place in ready_left:
        ready_event[place] = env.event()

    fsdp = Fsdp(env, net, lay, schedule, inp.model, {}) if lay.fsdp else None

    def on_end(device: int, pos: int, end: float) -> None:
        for atom in schedule.actions[device][pos].atoms():
            if atom.op in (Op.B, Op.W):
                place = lay.stages[atom.stage]
                ready_left[place] -= 1
                ready_at[place] = max(ready_at.get(place, 0.0), end)
                if ready_left[place] == 0:
                    ready_event[place].succeed()

    for g, source in enumerate(sources):
        retimed: Retimed = {}

        def runner(
            device: int,
            pos: int,
            duration: float,
            source: ChunkSource = source,
            retimed: Retimed = retimed,
            g: int = g,
        ) -> Generator[simpy.Event, object, None]:
            chunk = source.chunk(schedule.actions[device][pos])
            plan = _plan_of(plans, chunk)
            if not plan.phases:
                if duration > 0:
                    yield env.timeout(duration)
                return
            key = (id(chunk), device, g)
            known = chunk_ready.get(key)
            if known is None:
                loads = chunk_loads.get(key)
                if loads is None:
                    loads = chunk_loads[key] = [phases.loads(chunk.tasks[t].moves, device, g)[:2] for t in plan.tasks]
                kinds = _kinds(net, plan, loads)  # (): not all known yet, the phases start one by one
                tags = _tags(chunk, plan)
                solo = solo_rates(net, kinds, plan.durations) if kinds else None
                if not isinstance(kinds, tuple):  # settled: later runs take all four at once
                    chunk_ready[key] = (loads, kinds, tags, solo)
            else:
                loads, kinds, tags, solo = known
            run = ChunkComm(env, net, plan, loads, kinds or None, tags, solo)
            yield run.done  # the last phase has ended
            end = run.t0 + plan.span(run.ends)
            if end > env._now:
                yield env.timeout(end - env._now)
            actual = tuple(e - b for e, b in zip(run.ends, run.starts, strict=True))
            if actual != plan.durations and any(  # (most phases took exactly their time alone)
                abs(a - b) > 1e-12 * max(b, 1e-9) for a, b in zip(actual, plan.durations, strict=True)
            ):
                retimed[(device, pos)] = (plan, actual)

        counting = Counting(source, progress, total, "timing chunks")
        counting.done = g * schedule.num_actions()
        if representative:
            gpus = tuple(lay.rank_gpus(d) for d in range(lay.devices))
        else:
            gpus = tuple(lay.ep_group(d, g) for d in range(lay.devices))
        p2p = RankP2P(spec.topology, gpus, spec.activation_bytes)
        handle = launch(
            schedule,
            counting,
            p2p,
            ctx,
            runner=fsdp.run(runner) if fsdp else runner,
            on_end=on_end,
            prepare=fsdp.prepare if fsdp else None,
        )
        handles.append(handle)
        pending.append((g, source, retimed))
    # --------------------------------------------------------------- the DP phase's coflows alone
    # (after the chunks are timed: a child may be timing them meanwhile, DpModel.time_ahead)
    sets: dict[tuple[int, ...], tuple[ReplicaSet, int]] = {}
    for d in range(lay.devices):
        rset = ReplicaSet.of(lay, schedule, d)
        sets.setdefault(rset.ranks, (rset, d))
    dp_loads: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, ReplicaSet]] = {}
    set_pieces: dict[tuple[int, ...], list[tuple[StagePlacement, object]]] = {}
    # each set's parameters per GPU, for its DP process too (which must not call rank_params itself:
    # compiled, a module function that both run_shared and a function nested in it call makes mypyc
    # keep every nested function in their shared environment, which then refers back to it, a cycle
    # that holds the whole run until a collection; docs/sweeps.md, "The collector paused for a whole point")
    set_params: dict[tuple[int, ...], StageParams] = {}
    for ranks, (rset, d) in sets.items():
        held = pieces(inp.model, lay, schedule, d)
        set_pieces[ranks] = list(held)
        whole = set_params[ranks] = rank_params(inp.model, lay, schedule, d)
        if fsdp is not None:  # each unit's (sim.step.fsdp)
            wanted = [(kind, p) for kind, r, p in fsdp.wanted() if r == ranks]
        else:
            wanted = [("reducescatter", p) for _, p in held] if spec.dp.overlap == "tail" else []
            wanted += [("reducescatter", whole), ("allgather", whole)]
        for kind, p in wanted:
            key = (kind, ranks, p)
            if key not in dp_loads:
                dp_loads[key] = (*_dp_loads(model, kind, rset, p), rset)
    # their times alone last: a child may still be working them out (DpModel.time_ahead)
    dp_coflows: dict[tuple[object, ...], Coflow] = {
        key: (links, per_link, model.time(key[0], rset, key[2]), 0.0)  # type: ignore[arg-type]
        for key, (links, per_link, rset) in dp_loads.items()
    }
    # the shared embedding's gradient all-reduce between the pipeline's two ends (sim.step.tied_embedding)
    pair = embedding_pair(inp.model, lay, schedule)
    embedding: Coflow | None = None
    if pair is not None:
        groups = embedding_groups(inp.model, lay, pair, spec.dp.grad_reduce_bytes)
        embedding = (*_group_loads(model, "allreduce", groups), model.alone("allreduce", groups), 0.0)

    origin = ctx.start_main()  # every duration is known: the loop starts here
    if fsdp is not None:
        fsdp.coflows.update(dp_coflows)
        fsdp.origin = origin
        fsdp.start()
    for h in handles:
        h.start()
    pipeline_done = env.all_of([h.done for h in handles])

    # --------------------------------------------------------------- the DP phase
    barrier_left = [len(sets)]
    barrier = env.event()
    results: dict[tuple[int, ...], _SetRun] = {}
    # the embedding's all-reduce starts when both ends' replica sets have reduce-scattered
    syncing = [r for r in sets if pair is not None and (pair[0] in r or pair[1] in r)]
    synced: dict[tuple[int, ...], simpy.Event] = {r: env.event() for r in syncing}
    sync_done = env.event()
    sync_interval: list[tuple[float, float]] = []

    def embedding_process() -> Generator[simpy.Event, object, None]:
        assert embedding is not None
        yield env.all_of(list(synced.values()))
        start = env._now
        yield net.send_coflow(*embedding, "zero1")
        sync_interval.append((start - origin, env._now - origin))
        sync_done.succeed()

    def dp_process(ranks: tuple[int, ...], rset: ReplicaSet) -> Generator[simpy.Event, object, None]:
        whole = set_params[ranks]
        out = results[ranks] = _SetRun(whole)
        intervals: list[tuple[float, float]] = []
        if fsdp is not None:  # every action's gradients reduce-scattered as it ended
            yield pipeline_done
            yield env.all_of([fsdp.drained(r) for r in ranks])
            intervals = [iv for r in ranks for iv in fsdp.ranks[r].reduce_scatter]
        elif spec.dp.overlap == "tail":
            waiting = list(set_pieces[ranks])
            while waiting:
                pending = [ready_event[place] for place, _ in waiting]
                yield env.any_of(pending)
                now_ready = [(place, p) for place, p in waiting if ready_event[place].triggered]
                now_ready.sort(key=lambda x: (ready_at[x[0]], x[0].layers, x[0].first, x[0].last))
                place, p = now_ready[0]
                waiting.remove((place, p))
                start = env._now
                yield net.send_coflow(*dp_coflows[("reducescatter", ranks, p)], "zero1")
                intervals.append((start - origin, env._now - origin))
        else:
            yield pipeline_done
            start = env._now
            yield net.send_coflow(*dp_coflows[("reducescatter", ranks, whole)], "zero1")
            intervals.append((start - origin, env._now - origin))
        out.reduce_scatter = tuple(intervals)
        if ranks in synced:
            synced[ranks].succeed()
            yield sync_done
        barrier_left[0] -= 1
        if barrier_left[0] == 0:
            barrier.succeed()
        yield barrier
        bar = env._now
        traffic = optimizer_traffic(
            whole, dp=rset.dp, expert_dp=rset.expert_dp, precision=Precision.of(model.model)
        ).total
        opt = model.memory_time(traffic) if traffic > 0 else 0.0
        if opt > 0:
            yield env.timeout(opt)
        ag0 = env._now
        if fsdp is None:  # FSDP: the next step's first actions gather what they need
            yield net.send_coflow(*dp_coflows[("allgather", ranks, whole)], "zero1")
        out.barrier, out.optimizer_s, out.optimizer_bytes = bar - origin, opt, traffic
        out.all_gather = (ag0 - origin, env._now - origin)

    procs = [env.process(dp_process(ranks, rset)) for ranks, (rset, _) in sets.items()]
    if embedding is not None:
        procs.append(env.process(embedding_process()))
    if progress is not None:
        progress("timing chunks", total, total)
    run_until(ctx, env.all_of([pipeline_done, *procs]))
    runs = [h.finish() for h in handles]
    pipelines = [PipelineRun(g, run, source, retimed) for (g, source, retimed), run in zip(pending, runs, strict=True)]
    if progress is not None:
        progress("data-parallel phase", lay.devices, lay.devices)

    ends = [0.0] * lay.devices
    for pipe in pipelines:
        for s in pipe.run.recorder.spans:
            ends[s.device] = max(ends[s.device], s.end)
    phase_of: dict[tuple[int, ...], SetPhase] = {}
    for ranks, (rset, _) in sets.items():
        r = results[ranks]
        ag_s = r.all_gather[1] - r.all_gather[0]
        phase_of[ranks] = SetPhase(rset, r.params, r.reduce_scatter, r.optimizer_s, ag_s, r.optimizer_bytes)
    dp: list[SetPhase] = []
    timelines: list[DeviceTimeline] = []
    for d in range(lay.devices):
        ph = phase_of[ReplicaSet.of(lay, schedule, d).ranks]
        r = results[ph.rset.ranks]
        dp.append(ph)
        timelines.append(
            DeviceTimeline(
                pipeline_end=ends[d],
                reduce_scatter=ph.reduce_scatter,
                optimizer=(r.barrier, r.barrier + ph.optimizer_s),
                all_gather=r.all_gather,
                fsdp_gathers=tuple(fsdp.ranks[d].all_gather) if fsdp is not None else (),
                fsdp_wait_s=fsdp.ranks[d].waited_s if fsdp is not None else 0.0,
                embedding_sync=sync_interval[0] if pair is not None and d in pair else None,
            )
        )
    return pipelines, dp, timelines


def _plan_of(plans: dict[int, tuple[ChunkResult, CommPlan]], chunk: ChunkResult) -> CommPlan:
    """``chunk``'s communication plan, made once per chunk (the chunk kept with it: its id stays its).
    A module function, not a closure of :func:`run_shared`: compiled, a nested function that another
    calls is kept in the environment they share, which refers back to it, and that cycle would hold
    the whole run until a collection (docs/sweeps.md, "The collector paused for a whole point")."""
    hit = plans.get(id(chunk))
    if hit is None:
        hit = plans[id(chunk)] = (chunk, comm_plan(chunk))
    return hit[1]


def _tags(chunk: ChunkResult, plan: CommPlan) -> list[str] | None:
    """Each phase's tag (``tp`` or ``cp`` for a TP or CP collective), or None when every phase is DeepEP's."""
    moves = [chunk.tasks[t].moves for t in plan.tasks]
    if not any(isinstance(m, tuple) and isinstance(m[0], TpCollective) for m in moves):
        return None
    return [m[0].group if isinstance(m, tuple) and isinstance(m[0], TpCollective) else "deepep" for m in moves]


def _kinds(
    net: FlowNetwork, plan: CommPlan, loads: list[tuple[np.ndarray, np.ndarray]]
) -> list[int] | tuple[()] | None:
    """The coflow kinds of a chunk's phases for :class:`ChunkComm` to reserve them: () while some
    kind is still unknown to the network, None where the chunk never reserves (no solo coflows, or a
    phase that moves nothing or takes no time and so never reaches the network as a coflow)."""
    if not net.solo or any(not len(links) for links, _ in loads) or not all(d > 0 for d in plan.durations):
        return None
    kinds = [net.coflows.known_kind(links, nbytes) for links, nbytes in loads]
    if any(k is None for k in kinds):
        return ()
    return kinds  # type: ignore[return-value]


def _dp_loads(model: DpModel, kind: str, rset: ReplicaSet, p: object) -> tuple[np.ndarray, np.ndarray]:
    """A replica set's collectives of ``kind`` for parameters ``p`` as one coflow's links and bytes
    on each: every group's ring edges summed per link (its time alone is the memoised simulation of
    them together, :meth:`DpModel.time`)."""
    return _group_loads(model, kind, model.groups(kind, rset, p))  # type: ignore[arg-type]


def _group_loads(
    model: DpModel, kind: str, groups: list[tuple[np.ndarray, float, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """The collectives of ``kind`` of ``groups`` (GPUs, bytes, algorithm) as one coflow's links and
    bytes on each (the first ``tp`` groups non-expert ones, as :meth:`DpModel.groups` orders them)."""
    src, dst, nbytes = [], [], []
    tp = model.layout.tp  # the first tp groups are the non-expert ones
    flows = [collective_flows(model.topology, kind, g, s, a) for g, s, a in groups[:tp]]
    flows += _expert_flows(model, kind, groups[tp:])
    for s, d, b in flows:
        src.append(s)
        dst.append(d)
        nbytes.append(b)
    links, per_link, _latency = link_loads(
        model.topology, np.concatenate(src), np.concatenate(dst), np.concatenate(nbytes)
    )
    return links, per_link


def _expert_flows(
    model: DpModel, kind: str, groups: list[tuple[np.ndarray, float, str]]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The flows of the experts' ring collectives, in the order of ``groups``: rows of one size and
    byte count at once (:func:`ring_flows`), else one by one."""
    if not groups:
        return []
    n, size = len(groups[0][0]), groups[0][1]
    if all(len(g) == n and s == size and a == "ring" for g, s, a in groups):
        return [ring_flows(model.topology, kind, np.stack([g for g, _, _ in groups]), size)]
    return [collective_flows(model.topology, kind, g, s, a) for g, s, a in groups]


__all__ = ["Counting", "run_shared"]
