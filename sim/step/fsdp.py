"""FSDP / ZeRO-3 in the step (``training.fsdp: true``): weights, gradients and optimizer state sharded
over the data-parallel GPUs; each unit's weights gathered before it computes, its gradients given back.

What FSDP does (PyTorch's FSDP2 with ``reshard_after_forward=True``, Megatron-Core's FSDP with
``--data-parallel-sharding-strategy optim_grads_params``; Rajbhandari et al., "ZeRO", SC'20, stage 3):
a unit (a transformer block; the embedding; the output head with the final norm) lives sharded;
before it computes, its shards are all-gathered (BF16; the nccl-tests size is the unsharded weights);
after its forward they are freed (resharded), so its backward gathers them again; after its backward
its gradients are reduce-scattered, each GPU keeping the shard it owns (accumulated over micro-batches
in FP32). The framework prefetches: the next unit's all-gather is issued while the current one
computes (one all-gather stream, one reduce-scatter stream).

How the twin runs it, on the step's shared network (:mod:`sim.step.shared`). The units of an action
are those of the stages it computes with, in the order it uses them (forward: embedding, layers, head;
backward the reverse). Their all-gathers run one after another, as coflows of all the rank's DP groups
(the experts over their expert-DP groups; built as ZeRO-1's collectives are, :class:`sim.step.zero1.DpModel`),
starting with the action before (prefetch: the next action's gathers follow the current one's as soon
as it starts). An action starts once its first unit's weights have arrived (the wait is the rank's idle
time); unit ``i`` then computes for ``c_i``, the action's time alone shared out by the units' executed
FLOPs (:func:`unit_weights`), beginning when unit ``i-1`` has finished and its own weights have
arrived. The action ends at the later of that walk's end and its chunk's own end (the chunk's
communication on the shared network may have stretched it): ``max(chunk end, max_i(G_i + sum_{j>=i}
c_j))`` with ``G_i`` the gathers' ends. A deferred W needs no weights. A unit's gradients are
reduce-scattered when its backward share (B, or W where the backward is split) has run.

The DP phase then waits for the last reduce-scatter, the barrier, the optimizer on the shard; nothing
is all-gathered after it (the next step's first actions gather what they need).

``training.fsdp_reshard_after_forward: false`` (FSDP2's ``reshard_after_forward=False``): a unit's
weights stay gathered from its forward to its backward, which gathers nothing; the memory then holds
every unit the rank may have between a forward and its backward (all of them, an upper bound).

What it leaves out: the SMs NCCL's kernels take from the compute beside them; an F&B pair's
interleaving (its units are walked as its forward's, then its backward's: DualPipeV's pairs gather the
backward stage's units late); gradients of several units unsharded at once while reduce-scatters queue
(the memory counts one unit's); without resharding after the forward, FSDP2 skips the next forward's
gather when the weights are still there (the twin gathers them for every forward); that compute's own
timing within an action (``c_i`` is a FLOP share of the action's time alone); PyTorch's pipelining
runtime's other mode, in which a stage keeps its weights gathered and its gradients unsharded between
micro-batches and reduce-scatters once at its last backward (what ZeRO-1 with ``dp_overlap: tail``
already models). DualPipe's two copies of a stage (a replica set of two ranks) are refused: their FSDP
group would span both copies, which is not modelled.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy

from sim.model.layer import LayerWork, head_ops, layer_ops, layer_signature, mtp_ops
from sim.model.params import StageParams, stage_params
from sim.model.spec import ModelSpec
from sim.network.flows import FlowNetwork
from sim.pipeline.ops import Op, Schedule
from sim.step.layout import Layout, StagePlacement
from sim.step.zero1 import ReplicaSet, pieces

TAG = "fsdp"  # the collectives' tag in the network's statistics and link log

Coflow = tuple[object, object, float, float]  # (links, bytes per link, time alone, latency)
Runner = Callable[[int, int, float], Generator[simpy.Event, object, None]]


@dataclass(frozen=True)
class Unit:
    """One FSDP unit of a stage placement on one GPU: its parameters and its share of the placement's
    executed FLOPs."""

    params: StageParams
    weight: float


_LAYER_FLOPS: dict[tuple[ModelSpec, tuple[object, ...]], float] = {}  # by layer signature: equal ops, equal FLOPs


def _layer_flops(s: ModelSpec, layer: int) -> float:
    """Executed FLOPs of layer ``layer`` for one sequence, built once per layer signature."""
    key = (s, layer_signature(s, layer))
    hit = _LAYER_FLOPS.get(key)
    if hit is None:
        t = s.seq_len
        work = LayerWork(t, (t * s.n_activated_experts,) if s.is_moe(layer) else ())
        ops = layer_ops(s, layer, work).annotations.values()
        hit = _LAYER_FLOPS[key] = sum(op.executed_flops for group in ops for op in group)
    return hit


def unit_weights(s: ModelSpec, place: StagePlacement) -> list[float]:
    """Executed FLOPs of each unit of ``place`` for one sequence (embedding, layers, head with the
    MTP modules), in forward order; what shares an action's time out among its units."""
    out = [0.0] if place.first else []
    out += [_layer_flops(s, i) for i in place.layers if i < s.n_layers]
    if place.last:
        t = s.seq_len
        head = sum(op.executed_flops for ops in head_ops(s, t).values() for op in ops)
        mtp = 0.0
        if s.mtp_depth:  # each module: its own ops, an MoE block like the last layer, a use of the head
            last = s.n_layers - 1
            own = sum(op.executed_flops for ops in mtp_ops(s, t).values() for op in ops)
            mtp = s.mtp_depth * (own + _layer_flops(s, last) + head)
        out.append(head + mtp)
    return out


def units(s: ModelSpec, layout: Layout, place: StagePlacement, whole: StageParams) -> list[Unit]:
    """The FSDP units of stage placement ``place`` (``whole``: its parameters on one GPU, as ZeRO-1
    counts them), in forward order: the embedding where the placement holds it, each layer, the head
    with the MTP modules; the last takes what the others leave, so they add up to ``whole``."""
    layers = [i for i in place.layers if i < s.n_layers]
    parts = [stage_params(s, [i], ep=layout.ep, tp=layout.tp, etp=layout.etp) for i in layers]
    emb = stage_params(s, [], ep=layout.ep, embedding=True, tp=layout.tp) if place.first else None
    if emb is not None:
        parts.insert(0, emb)
    rest = StageParams(
        whole.non_expert - sum(p.non_expert for p in parts),
        whole.expert - sum(p.expert for p in parts),
        whole.high_precision - sum(p.high_precision for p in parts),
    )
    if place.last:
        parts.append(rest)
    elif rest.total:  # an embedding counted on another placement (a tied head's table): with the first unit
        parts[0] = StageParams(
            parts[0].non_expert + rest.non_expert,
            parts[0].expert + rest.expert,
            parts[0].high_precision + rest.high_precision,
        )
    weights = unit_weights(s, place)
    if len(weights) != len(parts):
        raise AssertionError(f"{len(parts)} units but {len(weights)} weights for {place}")
    return [Unit(p, w) for p, w in zip(parts, weights, strict=True)]


def needs(schedule: Schedule, device: int, pos: int) -> list[tuple[int, bool]]:
    """(schedule stage, backward) of each stage action ``pos`` of ``device`` computes with (F, B, I),
    in the order it runs them."""
    out: list[tuple[int, bool]] = []
    for a in schedule.actions[device][pos].atoms():
        if a.op in (Op.F, Op.B, Op.I) and (a.stage, a.op is not Op.F) not in out:
            out.append((a.stage, a.op is not Op.F))
    return out


def gives_back(schedule: Schedule, device: int, pos: int) -> set[int]:
    """The schedule stages whose weight gradients action ``pos`` of ``device`` completes (B, W)."""
    return {a.stage for a in schedule.actions[device][pos].atoms() if a.op in (Op.B, Op.W)}


@dataclass
class FsdpRank:
    """What one rank's FSDP collectives did (seconds from the step's origin)."""

    all_gather: list[tuple[float, float]] = field(default_factory=list)
    reduce_scatter: list[tuple[float, float]] = field(default_factory=list)
    waited_s: float = 0.0  # actions' time waiting for weights (before they start and within them)


class Fsdp:
    """The FSDP collectives of a step's pipelines on ``net`` (the module docstring). ``coflows``: by
    (kind, replica set's ranks, a unit's parameters), each collective's coflow (filled in before the
    loop runs)."""

    def __init__(
        self,
        env: simpy.Environment,
        net: FlowNetwork,
        layout: Layout,
        schedule: Schedule,
        model: ModelSpec,
        coflows: dict[tuple[object, ...], Coflow],
    ) -> None:
        self.env, self.net, self.layout, self.schedule = env, net, layout, schedule
        self.coflows = coflows
        self.origin = 0.0
        self.ranks = [FsdpRank() for _ in range(layout.devices)]
        self._units: dict[tuple[int, int], tuple[tuple[int, ...], list[Unit]]] = {}
        for d in range(layout.devices):
            rset = ReplicaSet.of(layout, schedule, d)
            params = dict(pieces(model, layout, schedule, d))
            for st, dev in enumerate(schedule.stage_device):
                if dev == d:
                    place = layout.stages[st]
                    self._units[(d, st)] = (rset.ranks, units(model, layout, place, params[place]))
        self.reshard = layout.fsdp_reshard_after_forward
        self._gathers: dict[tuple[int, int], dict[int, simpy.Event]] = {}  # per action, by unit position: gather
        self._begins: dict[tuple[int, int], dict[int, simpy.Event]] = {}  # ... and when that unit begins computing
        self._last_gather: list[simpy.Event | None] = [None] * layout.devices
        self._last_begin: list[simpy.Event | None] = [None] * layout.devices
        self._last_scatter: list[simpy.Event | None] = [None] * layout.devices

    def wanted(self) -> list[tuple[str, tuple[int, ...], StageParams]]:
        """Every (kind, ranks, unit parameters) whose coflow the step needs."""
        out = {
            (k, ranks, u.params)
            for ranks, us in self._units.values()
            for u in us
            for k in ("allgather", "reducescatter")
        }
        return sorted(out, key=repr)

    def _order(self, device: int, pos: int) -> list[tuple[int, int, bool]]:
        """(stage, unit index, backward) in the order action ``pos`` computes with them."""
        out = []
        for st, backward in needs(self.schedule, device, pos):
            n = len(self._units[(device, st)][1])
            out += [(st, k, backward) for k in (reversed(range(n)) if backward else range(n))]
        return out

    def start(self) -> None:
        """At the step's start, every rank's first action's gathers begin (FSDP issues them as the
        step's first forward is called, before its inputs arrive)."""
        for d in range(self.layout.devices):
            self._gather(d, 0)

    # ------------------------------------------------------------------ the gathers
    def _gather(self, device: int, pos: int) -> dict[int, simpy.Event] | None:
        """Each unit's all-gather of action ``pos`` (by the unit's position in :meth:`_order`), started
        if they were not (after the rank's previous ones): every unit's, or without resharding after
        the forward only a forward's (a backward finds its weights still gathered); None where there
        is no such action."""
        if pos >= len(self.schedule.actions[device]):
            return None
        hit = self._gathers.get((device, pos))
        if hit is not None:
            return hit
        evs: dict[int, simpy.Event] = {}
        begins: dict[int, simpy.Event] = {}
        for i, (st, k, backward) in enumerate(self._order(device, pos)):
            if backward and not self.reshard:
                continue
            ranks, us = self._units[(device, st)]
            after, begun = self._last_gather[device], self._last_begin[device]
            ev = self.env.process(self._gather_proc(device, ("allgather", ranks, us[k].params), after, begun))
            self._last_gather[device] = ev
            self._last_begin[device] = begin = self.env.event()
            evs[i] = ev
            begins[i] = begin
        self._gathers[(device, pos)] = evs
        self._begins[(device, pos)] = begins
        return evs

    def _gather_proc(
        self, device: int, key: tuple[object, ...], after: simpy.Event | None, begun: simpy.Event | None
    ) -> Generator[simpy.Event, object, None]:
        """One unit's all-gather: after the previous one (one stream) and once the unit before it has
        begun computing (a prefetch of one unit: two units' weights gathered at most)."""
        if after is not None and not after.processed:
            yield after
        if begun is not None and not begun.processed:
            yield begun
        start = self.env.now
        yield self.net.send_coflow(*self.coflows[key], TAG)  # type: ignore[arg-type]
        self.ranks[device].all_gather.append((start - self.origin, self.env.now - self.origin))

    def prepare(self, device: int, pos: int, _duration: float) -> Generator[simpy.Event, object, None]:
        """Before action ``pos`` of ``device`` starts (:func:`sim.pipeline.execute.launch`'s
        ``prepare``): its gathers and the next action's started, its first unit's weights arrived."""
        mine = self._gather(device, pos)
        self._gather(device, pos + 1)
        first = mine.get(0) if mine else None
        if first is not None and not first.processed:
            t0 = self.env.now
            yield first
            self.ranks[device].waited_s += self.env.now - t0

    def run(self, runner: Runner | None) -> Runner:
        """The action runner under FSDP: the chunk (``runner``, or its time alone) beside the walk
        over its units (the module docstring); the action ends when both have."""

        def action(device: int, pos: int, duration: float) -> Generator[simpy.Event, object, None]:
            chunk = self.env.process(runner(device, pos, duration)) if runner is not None else None
            if chunk is None and duration > 0:
                chunk = self.env.timeout(duration)
            yield from self._walk(device, pos, duration)
            if chunk is not None and not chunk.processed:
                yield chunk

        return action

    def _walk(self, device: int, pos: int, duration: float) -> Generator[simpy.Event, object, None]:
        order = self._order(device, pos)
        back = gives_back(self.schedule, device, pos)
        if not order:  # a deferred W: its units' shares in reverse order, each given back after its share
            order = [(st, k, True) for st in sorted(back) for k in reversed(range(len(self._units[(device, st)][1])))]
            gathers: dict[int, simpy.Event] = {}
            begins: dict[int, simpy.Event] = {}
        else:
            gathers, begins = self._gathers[(device, pos)], self._begins[(device, pos)]
        total = sum(self._units[(device, st)][1][k].weight for st, k, _ in order)
        for i, (st, k, backward) in enumerate(order):
            gather = gathers.get(i)
            if gather is not None and not gather.processed:
                t0 = self.env.now
                yield gather
                self.ranks[device].waited_s += self.env.now - t0
            if i in begins:
                begins[i].succeed()
            ranks, us = self._units[(device, st)]
            share = duration * us[k].weight / total if total > 0 else duration / len(order)
            if share > 0:
                yield self.env.timeout(share)
            if backward and st in back:
                after = self._last_scatter[device]
                key = ("reducescatter", ranks, us[k].params)
                self._last_scatter[device] = self.env.process(self._scatter_proc(device, key, after))

    # ------------------------------------------------------------------ the reduce-scatters
    def _scatter_proc(
        self, device: int, key: tuple[object, ...], after: simpy.Event | None
    ) -> Generator[simpy.Event, object, None]:
        if after is not None and not after.processed:
            yield after
        start = self.env.now
        yield self.net.send_coflow(*self.coflows[key], TAG)  # type: ignore[arg-type]
        self.ranks[device].reduce_scatter.append((start - self.origin, self.env.now - self.origin))

    def drained(self, device: int) -> simpy.Event:
        """Fires when ``device``'s last reduce-scatter has ended (ask once its pipeline has drained)."""
        last = self._last_scatter[device]
        if last is None:
            ev = self.env.event()
            ev.succeed()
            return ev
        return last


__all__ = ["Fsdp", "FsdpRank", "Unit", "gives_back", "needs", "unit_weights", "units"]
