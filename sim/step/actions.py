"""Every pipeline action of a training step as a chunk from the chunk model.

A :class:`ChunkSource` answers the pipeline engine's "how long" for one pipeline (one EP group on
every rank): F, B, I, W of a schedule stage and the F&B pair of two, each built from that stage's
layers (:mod:`sim.step.layout`) with the micro-batch's routed traffic and timed by
:class:`~sim.chunk.timer.ChunkTimer` (memoised by what determines the timing).

Routing, by fidelity:

* ``representative``: one routing per (MoE layer, routing sample), every EP group alike (all EP
  groups of the rank run it at once on the shared fabric); the expert GEMMs are those of the group's
  most loaded GPU (its straggler), the all-to-all ends when the slowest rank's messages have arrived.
* ``per-gpu``: every EP group of every rank draws its own routing per (layer, sample); its all-to-alls
  run on the fabric at the same time as the other groups of its rank, each with its own traffic; its
  chunk is its straggler's. Each group's pipeline is run by the engine separately.

Micro-batch ``m`` uses routing sample ``m mod routing_samples`` (balanced routing needs one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.phases import CommModel, GroupTraffic
from sim.chunk.timer import ChunkResult, ChunkTimer, Stage
from sim.chunk.tp_comm import TpModel
from sim.hardware.costmodel import CostModel
from sim.model.compute_whatifs import NO_WHATIFS, ComputeWhatIfs
from sim.model.layer import LayerOps, LayerWork, layer_ops, layer_signature
from sim.model.spec import ModelSpec
from sim.moe.alltoall import route_layers
from sim.moe.deepep import KernelSpec
from sim.moe.gating import Gating
from sim.moe.spec import MoESpec
from sim.moe.traffic import Traffic
from sim.network.context import SimContext
from sim.pipeline.ops import Action, Op, Schedule
from sim.step.layout import Layout, StagePlacement


@dataclass(frozen=True)
class ChunkInputs:
    """What every chunk of a step depends on."""

    model: ModelSpec
    layout: Layout
    cost: CostModel
    params: ChunkParams
    kernel: KernelSpec
    gating: Gating
    seed: int
    compute_sms: int
    fidelity: str  # representative | per-gpu
    routing_samples: int
    compute: ComputeWhatIfs = NO_WHATIFS  # the compute-side hardware what-ifs
    combine_format: str = "bf16"  # the combine's payload (sim.moe.spec.COMBINE_FORMATS)
    dispatch_format: str = "fp8"  # the dispatched rows under an FP8 recipe (sim.model.megatron_dispatch)


def straggler_rows(traffic: Traffic) -> tuple[int, ...]:
    """Token rows of each local expert on the group's most loaded GPU (first of equals)."""
    spec = traffic.spec
    per = traffic.expert_rows.reshape(spec.ep, spec.experts_per_gpu)
    gpu = int(np.argmax(per.sum(axis=1)))
    return tuple(int(x) for x in per[gpu])


class Routing:
    """Routed traffic of every MoE layer, drawn once and shared by every chunk that needs it."""

    def __init__(self, inputs: ChunkInputs, moe: MoESpec) -> None:
        self.inputs = inputs
        self.moe = moe
        self._layers: dict[tuple[object, ...], dict[int, Traffic]] = {}
        self._groups: dict[tuple[int, ...], GroupTraffic] = {}
        self.routed_layers = 0

    def _seed(self, *key: int) -> int:
        return int(np.random.SeedSequence([self.inputs.seed, *key]).generate_state(1)[0])

    def traffic(self, layers: tuple[int, ...], where: tuple[int, int, int], sample: int) -> dict[int, Traffic]:
        """Traffic of the MoE ``layers`` of a stage; ``where`` = (device, stage, group) in per-GPU
        fidelity, ignored in representative fidelity (every group and stage alike)."""
        inp = self.inputs
        if inp.gating.routing == "balanced":
            key: tuple[object, ...] = ("balanced",)
            if key not in self._layers:
                t = route_layers(self.moe, inp.layout.sp_tokens, 1, inp.gating, inp.seed)[0]
                self.routed_layers += 1
                self._layers[key] = {-1: t}
            t = self._layers[key][-1]
            return {layer: t for layer in layers}
        if inp.fidelity == "representative":
            key = ("sample", sample)
            if key not in self._layers:
                ids = self._all_moe_layers()
                routed = route_layers(self.moe, inp.layout.sp_tokens, len(ids), inp.gating, self._seed(sample))
                self.routed_layers += len(ids)
                self._layers[key] = dict(zip(ids, routed, strict=True))
            return {layer: self._layers[key][layer] for layer in layers}
        key = ("gpu", *where, sample)
        if key not in self._layers:
            routed = route_layers(self.moe, inp.layout.sp_tokens, len(layers), inp.gating, self._seed(*where, sample))
            self.routed_layers += len(layers)
            self._layers[key] = dict(zip(layers, routed, strict=True))
        return self._layers[key]

    def _all_moe_layers(self) -> list[int]:
        m = self.inputs.model
        return [i for i in range(m.n_layers + m.mtp_depth) if i >= m.n_layers or m.is_moe(i)]

    def group(self, traffics: tuple[Traffic, ...]) -> GroupTraffic:
        """One GroupTraffic per distinct tuple, so identical stages share chunk timings."""
        key = tuple(id(t) for t in traffics)
        if key not in self._groups:
            self._groups[key] = GroupTraffic(traffics)
        return self._groups[key]


class ChunkSource:
    """Chunks of one pipeline: EP group ``group`` on every rank (representative: group 0, alike)."""

    def __init__(
        self,
        inputs: ChunkInputs,
        schedule: Schedule,
        shared: SimContext,
        routing: Routing,
        group: int = 0,
        timers: dict[tuple[int, int], ChunkTimer] | None = None,
        runs: dict[int, dict[tuple[object, ...], Any]] | None = None,
    ) -> None:
        self.inputs = inputs
        self.schedule = schedule
        self.shared = shared
        self.routing = routing
        self.group = group
        self.timers = {} if timers is None else timers
        self._runs = runs if runs is not None else {}
        self._stages: dict[tuple[int, int], Stage] = {}
        self._chunks: dict[tuple[tuple[Op, int, int], ...], ChunkResult] = {}
        self._by_action: dict[int, tuple[Action, ChunkResult]] = {}  # chunk(), by the action's identity
        self._ops: dict[tuple[int, tuple[int, ...]], LayerOps] = {}
        self._alike: dict[tuple[object, ...], LayerOps] = {}
        self._coster = OpCoster(inputs.cost, inputs.compute_sms, inputs.params)

    # ---------------------------------------------------------------- engine interface
    def duration(self, action: Action, schedule: Schedule) -> float:
        return self.chunk(action).span_s

    def chunk(self, action: Action) -> ChunkResult:
        """The action's timed chunk (looked up by the action itself, then by stage and routing sample
        before the timer's memo, whose keys are the stages' whole op lists)."""
        seen = self._by_action.get(id(action))
        if seen is not None and seen[0] is action:  # the engine asks for each action of the schedule twice
            return seen[1]
        r = self.inputs.routing_samples
        key = tuple((a.op, a.stage, a.mb % r) for a in action.atoms())
        hit = self._chunks.get(key)
        if hit is None:
            hit = self._chunks[key] = self._chunk(action)
        self._by_action[id(action)] = (action, hit)
        return hit

    def _chunk(self, action: Action) -> ChunkResult:
        op = action.op
        if op is Op.FB:
            fwd, bwd = action.parts
            timer = self.timer(self.schedule.stage_device[fwd.stage])
            return timer.pair(self.stage(fwd.stage, fwd.mb), self.stage(bwd.stage, bwd.mb))
        timer = self.timer(self.schedule.stage_device[action.stage])
        stage = self.stage(action.stage, action.mb)
        if op is Op.F:
            return timer.forward(stage)
        return timer.backward(stage, {Op.B: "IW", Op.I: "I", Op.W: "W"}[op])

    # ---------------------------------------------------------------- building
    def _groups_of(self, device: int) -> list[np.ndarray]:
        lay = self.inputs.layout
        order = [(self.group + i) % lay.ep_groups for i in range(lay.ep_groups)]
        return [lay.ep_group(device, g) for g in order]

    def timer(self, device: int) -> ChunkTimer:
        where = (device, self.group) if self.inputs.fidelity == "per-gpu" else (0, 0)
        if where not in self.timers:
            comm = None
            if self.inputs.layout.ep > 1:
                groups = self._groups_of(where[0])
                runs = self._runs.setdefault(where[0], {})
                comm = CommModel(self.shared, self.inputs.kernel, groups, runs)
            lay = self.inputs.layout
            tp = TpModel(self.shared, lay.tp_groups(where[0])) if lay.tp > 1 else None
            cp = TpModel(self.shared, lay.cp_groups(where[0])) if lay.cp > 1 else None
            etp = TpModel(self.shared, lay.etp_groups(where[0])) if lay.etp > 1 else None
            self.timers[where] = ChunkTimer(self._coster, comm, self.inputs.params, tp, cp, etp)
        return self.timers[where]

    def stage(self, stage: int, mb: int) -> Stage:
        sample = mb % self.inputs.routing_samples
        key = (stage, sample)
        if key not in self._stages:
            self._stages[key] = self._build(stage, sample)
        return self._stages[key]

    def _build(self, stage: int, sample: int) -> Stage:
        return self.build(self.inputs.layout.stages[stage], self.schedule.stage_device[stage], stage, sample)

    def build(self, place: StagePlacement, device: int = 0, stage: int = -1, sample: int = 0) -> Stage:
        """A stage holding ``place`` on rank ``device`` (``stage`` keys its routing in per-GPU fidelity)."""
        inp = self.inputs
        model, lay = inp.model, inp.layout
        moe_layers = tuple(i for i in place.layers if i >= model.n_layers or model.is_moe(i))
        per_group: list[dict[int, Traffic]] = []
        if moe_layers:
            groups = [self.group] if inp.fidelity == "representative" else list(range(lay.ep_groups))
            order = groups[self.group :] + groups[: self.group] if inp.fidelity == "per-gpu" else groups
            for g in order:
                per_group.append(self.routing.traffic(moe_layers, (device, stage, g), sample))
        ops: list[LayerOps] = []
        traffic: list[Traffic | GroupTraffic | None] = []
        for layer in place.layers:
            index = min(layer, model.n_layers - 1)  # an MTP block is built like the last layer
            if layer in moe_layers:
                mine = per_group[0][layer]
                rows = tuple(x * lay.etp for x in straggler_rows(mine))  # an ETP group's: alike EP groups
                ops.append(self._layer(index, rows))
                if inp.fidelity == "per-gpu" and len(per_group) > 1:
                    traffic.append(self.routing.group(tuple(p[layer] for p in per_group)))
                else:
                    traffic.append(mine)
            else:
                ops.append(self._layer(index, ()))
                traffic.append(None)
        return Stage(
            tuple(ops),
            tuple(traffic),
            place.first,
            place.last,
            model,
            lay.cp_tokens,
            lay.tp,
            lay.tp_comm_overlap,
            lay.cp_comm == "p2p",
        )

    def _layer(self, index: int, rows: tuple[int, ...]) -> LayerOps:
        key = (index, rows)
        hit = self._ops.get(key)
        if hit is None:
            # layers with the same signature share one op list (same objects: stage keys compare fast)
            kind = (layer_signature(self.inputs.model, index), rows)
            alike = self._alike.get(kind)
            if alike is None:
                lay = self.inputs.layout
                inp = self.inputs
                how = (inp.gating.dispatcher, inp.dispatch_format)
                work = LayerWork(lay.cp_tokens, rows, lay.tp, lay.cp, lay.recompute, lay.etp, inp.compute, *how)
                alike = self._alike[kind] = layer_ops(self.inputs.model, index, work)
            hit = self._ops[key] = alike if alike.layer == index else replace(alike, layer=index)
        return hit

    def chunks_timed(self) -> int:
        return sum(t.timed for t in self.timers.values())
