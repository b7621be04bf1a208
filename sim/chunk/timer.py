"""Chunks of layers as task graphs on a GPU's streams: forward, backward, and the overlapped F&B pair.

A *stage* is the layers one pipeline stage holds (with the embedding on the first stage and the
output head and MTP module on the last). Its chunks, for one micro-batch on one GPU:

* forward ``F``: per layer ``attn(F)`` -> ``dispatch(F)`` -> ``mlp(F)`` -> ``combine(F)`` -> the next
  layer; run alone, the communication is exposed;
* backward ``B`` (``I`` then ``W`` parts, or ``I`` alone, or ``W`` alone): per layer from the last,
  ``combine(B)`` -> ``mlp(B)`` -> ``dispatch(B)`` -> ``attn(B)``, the weight gradients ``mlp(W)``
  and ``attn(W)`` placed after their input gradients on the compute stream, so ``mlp(W)`` fills the
  wait for ``dispatch(B)``;
* the F&B pair: the forward chunk of one micro-batch and the backward chunk of another, layer step by
  layer step (forward layer ``i`` with backward layer ``n-1-i``) in DeepSeek's order (REFERENCE.md
  section 6): on the compute streams ``attn(F) mlp(B) mlp(W) mlp(F) attn(B) attn(W)``, on the
  communication stream ``combine(B) dispatch(F) dispatch(B) combine(F)``, so that combine(B) runs
  under attn(F), dispatch(F) under mlp(B), dispatch(B) under mlp(W)+mlp(F) and combine(F) under
  attn(B)+attn(W), with the true data dependencies between them.

Timing (:mod:`sim.chunk.streams`) happens outside the event loop and is memoised by what
determines it: the stages' layers and their routed token counts, the compute SMs, the communication
kernels and the parameters. The engine then places whole chunks.
"""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.phases import CommModel, GroupTraffic
from sim.chunk.streams import Task, run_streams
from sim.chunk.tp_comm import TpModel, tp_collective
from sim.engine.collector import collector_paused
from sim.model.layer import REPLAY, TP_KINDS, LayerOps, embedding_ops, head_ops, mtp_ops
from sim.model.ops import Operator
from sim.model.spec import ModelSpec
from sim.moe.traffic import Traffic

PAIR_COMPUTE = ("attn(F)", "mlp(B)", "mlp(W)", "mlp(F)", "attn(B)", "attn(W)")
PAIR_COMM = ("combine(B)", "dispatch(F)", "dispatch(B)", "combine(F)")
COMPUTE_ANNOTATIONS = ("attn(F)", "mlp(F)", "mlp(B)", "mlp(W)", "attn(B)", "attn(W)")
COMM_ANNOTATIONS = PAIR_COMM


class HashedKey:
    """A tuple used as a memo key whose hash is computed once; equal to another when the tuples are."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: tuple[object, ...]) -> None:
        self.value = value
        self._hash = hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashedKey) and self._hash == other._hash and self.value == other.value


@dataclass(frozen=True)
class Stage:
    """The layers of one pipeline stage, in forward order, and what else the stage holds."""

    layers: tuple[LayerOps, ...]
    traffic: tuple[Traffic | GroupTraffic | None, ...]  # per layer: its routing (None for dense layers)
    first: bool = False  # holds the embedding
    last: bool = False  # holds the output head (and the MTP module, whose block is the last layer)
    spec: ModelSpec | None = None
    tokens: int = 0
    tp: int = 1
    tp_overlap: bool = False  # TP collectives overlapped with their GEMMs (:meth:`_Graph.chain`)
    cp_ring: bool = False  # CP keys and values passed around the ring under the attention (ibid.)

    @functools.cached_property
    def key(self) -> HashedKey:
        """What determines the stage's timing: its layers' ops (not their indices), their routing and
        what else it holds; identical stages share chunk timings. Its hash is taken once (the ops
        are a thousand frozen dataclasses, and every memo lookup would hash them all again)."""
        return HashedKey(
            (
                tuple((lo.moe, tuple(op for ops in lo.annotations.values() for op in ops)) for lo in self.layers),
                tuple(id(t) for t in self.traffic),
                self.first,
                self.last,
                self.tp,
                self.tp_overlap,
                self.cp_ring,
            )
        )

    def extras(self) -> dict[str, tuple[Operator, ...]]:
        if self.spec is None:
            return {}
        out: dict[str, tuple[Operator, ...]] = {}
        if self.first:
            out |= embedding_ops(self.spec, self.tokens, self.tp)
        if self.last:
            heads = max(1, 1 + self.spec.mtp_depth)  # the main head and the MTP module's use of it
            for name, ops in head_ops(self.spec, self.tokens, self.tp).items():
                out[name] = ops * heads
            if self.spec.mtp_depth:
                out |= mtp_ops(self.spec, self.tokens)
        return out


@dataclass
class ChunkResult:
    """A timed chunk: every task with its start and end (seconds from the chunk's start)."""

    kind: str
    span_s: float
    tasks: list[Task] = field(default_factory=list)

    @property
    def kernel_span_s(self) -> float:
        """First kernel start to last kernel end (the trace's span; ``span_s`` also counts the launch
        gap before the first kernel)."""
        busy = [t for t in self.tasks if t.end > t.start]
        return max(t.end for t in busy) - min(t.start for t in busy) if busy else 0.0

    def compute_beside_comm(self) -> bool:
        """Whether a compute or weight-gradient kernel ran while a DeepEP data kernel ran (for a
        positive time). Only then does an interference source act (:mod:`sim.chunk.streams` slows
        either only while both run): where none did, the chunk's times are the same under every source,
        since each source's run follows the same events as the run without slowdowns."""
        comm = [(t.start, t.end) for t in self.tasks if t.kind == "comm" and t.end > t.start]
        if not comm:
            return False
        for t in self.tasks:
            if t.stream != "comm" and t.end > t.start:
                if any(max(t.start, a) < min(t.end, b) for a, b in comm):
                    return True
        return False

    def annotation_walls(self) -> dict[str, float]:
        """Mean GPU wall time of each annotation over its instances (first start to last end of its
        tasks on their streams), as DeepSeek's trace reader defines it."""
        groups: dict[tuple[str, int], list[Task]] = defaultdict(list)
        for t in self.tasks:
            if t.annotation and t.end > t.start:
                groups[(t.annotation, t.step)].append(t)
        walls: dict[str, list[float]] = defaultdict(list)
        for (ann, _), ts in groups.items():
            walls[ann].append(max(t.end for t in ts) - min(t.start for t in ts))
        return {ann: statistics.fmean(v) for ann, v in walls.items()}

    def stream_spans(self) -> list[tuple[str, float, float]]:
        """(compute | comm, start, end) of every task that took time."""
        return [("comm" if t.stream == "comm" else "compute", t.start, t.end) for t in self.tasks if t.end > t.start]


class ChunkTimer:
    """Builds and times chunks; memoised by what determines a chunk's timing."""

    def __init__(
        self,
        coster: OpCoster,
        comm: CommModel | None,
        params: ChunkParams,
        tp: TpModel | None = None,
        cp: TpModel | None = None,
        etp: TpModel | None = None,
    ) -> None:
        self.coster = coster
        self.comm = comm
        self.params = params
        self.tp = tp  # tensor-parallel collectives (None: TP 1)
        self.cp = cp  # context-parallel collectives (None: CP 1)
        self.etp = etp  # expert-TP collectives (None: ETP 1)
        self._memo: dict[tuple[object, ...], ChunkResult] = {}
        self._keys: dict[int, tuple[Stage, HashedKey]] = {}  # per stage object (kept alive: its id stays its)
        self.timed = 0  # chunks actually built and timed (the rest came from the memo)

    # ------------------------------------------------------------------ public
    def forward(self, stage: Stage) -> ChunkResult:
        return self._memoised(("F", self._key(stage)), lambda: self._time("F", stage, None))

    def backward(self, stage: Stage, parts: str = "IW") -> ChunkResult:
        """``parts``: ``IW`` (full backward B), ``I`` (input gradients) or ``W`` (weight gradients)."""
        if parts not in ("IW", "I", "W"):
            raise ValueError(f"parts must be IW, I or W, got {parts!r}")
        return self._memoised(("B" + parts, self._key(stage)), lambda: self._time("B" + parts, None, stage))

    def pair(self, f_stage: Stage, b_stage: Stage) -> ChunkResult:
        return self._memoised(
            ("FB", self._key(f_stage), self._key(b_stage)), lambda: self._time("FB", f_stage, b_stage)
        )

    def _key(self, stage: Stage) -> HashedKey:
        """``stage.key``, worked out once per stage object. Compiled (``twin compile``), ``Stage.key`` is a
        plain property: a ``functools.cached_property`` keeps its value in the instance's ``__dict__``,
        which a compiled class has none of, so each read built the key again and hashed the stage's
        thousand ops (some 100,000 hashes a sweep point)."""
        hit = self._keys.get(id(stage))
        if hit is None:
            hit = self._keys[id(stage)] = (stage, stage.key)
        return hit[1]

    # ------------------------------------------------------------------ internals
    def _memoised(self, key: tuple[object, ...], build: Callable[[], ChunkResult]) -> ChunkResult:
        full = (*key, self.coster.key(), None if self.comm is None else self.comm.key(), self.params.key())
        if self.tp is not None or self.cp is not None:
            full = (*full, None if self.tp is None else self.tp.key(), None if self.cp is None else self.cp.key())
        if full not in self._memo:
            # a chunk allocates a few thousand short-lived objects (tasks, the DeepEP phases' simpy
            # events): the cyclic collector's passes over the whole process cost a third of a first
            # timing (sim/engine/collector.py)
            with collector_paused():
                self._memo[full] = build()
            self.timed += 1
        return self._memo[full]

    def _time(self, kind: str, f: Stage | None, b: Stage | None) -> ChunkResult:
        graph = _Graph(self)
        parts = kind[1:] if kind.startswith("B") else "IW"
        f_layers = list(range(len(f.layers))) if f is not None else []
        b_layers = list(reversed(range(len(b.layers)))) if b is not None else []
        if f is not None and f.first:
            graph.add_extra(f, "embed(F)", step=0)
        if b is not None and b.last and "I" in parts:
            graph.add_extra(b, "head(B)", step=0, backward_input=True)
            graph.add_extra(b, "mtp(B)", step=0, backward_input=True)
        steps = max(len(f_layers), len(b_layers))
        for s in range(steps):
            lf = f_layers[s] if s < len(f_layers) else None
            lb = b_layers[s] if s < len(b_layers) else None
            graph.step(s, f, lf, b, lb, parts, overlapped=kind == "FB")
        if f is not None and f.last:
            graph.add_extra(f, "mtp(F)", step=steps)
            graph.add_extra(f, "head(F)", step=steps)
        if b is not None and b.last and "W" in parts:
            graph.add_extra(b, "head(W)", step=steps, weights=True)
            graph.add_extra(b, "mtp(W)", step=steps, weights=True)
        if b is not None and b.first and "W" in parts:
            graph.add_extra(b, "embed(W)", step=steps, weights=True)
        span = run_streams(graph.tasks)
        return ChunkResult(kind, span, graph.tasks)


class _Graph:
    """Tasks of one chunk with their annotation-level dependencies."""

    def __init__(self, timer: ChunkTimer) -> None:
        self.timer = timer
        self.tasks: list[Task] = []
        self.done: dict[tuple[str, str, int], list[int]] = {}  # (direction, annotation, layer) -> task ids
        self.last_f: list[int] = []  # what the next forward layer waits for
        self.last_b: list[int] = []  # what the next backward layer waits for
        comm = timer.comm
        nccl = comm is not None and comm.kernel.dispatcher == "alltoall" and not comm.kernel.coprocessor
        self.nccl_sms = timer.params.nccl_sms if nccl else 0  # SMs a communication kernel takes from compute

    def _add(
        self,
        op: Operator,
        deps: list[int],
        step: int,
        layer: int,
        traffic: Traffic | GroupTraffic | None,
        chunks: int = 1,
    ) -> list[int]:
        """The op's tasks (a DeepEP phase: its notify and its data); a GEMM of ``chunks`` > 1 is computed
        in that many row chunks (:func:`ring_exchange_gemms`)."""
        p = self.timer.params
        c = self.timer.coster
        if op.kind == "comm" and op.comm in TP_KINDS:
            moved = tp_collective(op.comm, op.nbytes)
            model = {"tp": self.timer.tp, "cp": self.timer.cp, "etp": self.timer.etp}[moved.group]
            if model is None:
                raise ValueError(
                    f"op {op.name}: a {moved.group.upper()} collective needs the chunk timer's model of it"
                )
            self.tasks.append(
                Task(
                    op.name,
                    "comm",
                    "comm",
                    model.time(moved),
                    tuple(deps),
                    op.annotation,
                    step,
                    layer,
                    moves=(moved, moved.group),
                )
            )
            return [len(self.tasks) - 1]
        if op.kind == "comm":
            if self.timer.comm is None or traffic is None:
                return []
            ct = self.timer.comm.time(traffic, op.comm, op.cached)
            which = "dispatch-cached" if op.comm == "dispatch" and op.cached else op.comm
            slow = p.comm_beside_compute.get(which, 1.0) if p.interference == "trace" else 1.0
            if p.interference == "profile":
                slow = c.model.interference.comm_slowdown("fp8")
            wait = Task(f"{op.name}.notify", "comm", "wait", ct.notify_s, tuple(deps), op.annotation, step, layer)
            self.tasks.append(wait)
            data = Task(
                op.name,
                "comm",
                "comm",
                ct.data_s,
                (len(self.tasks) - 1,),
                op.annotation,
                step,
                layer,
                slow_beside_compute=slow,
                moves=(traffic, op.comm),
            )
            self.tasks.append(data)
            return [len(self.tasks) - 2, len(self.tasks) - 1]
        slow = 1.0
        if op.stream != "comm" and p.interference == "trace":
            slow = p.gemm_beside_comm if op.kind in ("gemm", "attention") else p.memory_beside_comm
        elif op.stream != "comm" and p.interference == "profile" and self.timer.comm is not None:
            slow = c.model.interference.gemm_slowdown(op.dtype, self._comm_utilisation())
        if op.stream != "comm" and self.nccl_sms:  # NCCL's CTAs hold SMs of their own while they run
            slow *= c.beside_nccl(op, self.nccl_sms)
        task = Task(
            op.name,
            op.stream,
            op.kind,
            c.in_chunks(op, chunks) if chunks > 1 else c.alone(op),
            tuple(deps),
            op.annotation,
            step,
            layer,
            slow_beside_comm=slow,
            delay=c.gap(op),
        )
        self.tasks.append(task)
        return [len(self.tasks) - 1]

    def _comm_utilisation(self) -> float:
        """HBM share of DeepEP's data kernels (for the ``profile`` interference source): the bytes they
        read and write over the time they take, against the profile's copy rate."""
        comm = self.timer.comm
        rate = comm.hbm_rate() if comm is not None else 0.0
        return self.timer.coster.model.comm_utilisation(1, rate=rate) if rate > 0 else 0.0

    def annotation(
        self,
        direction: str,
        layer: LayerOps,
        name: str,
        deps: list[int],
        step: int,
        traffic: Traffic | GroupTraffic | None,
        stage: Stage | None = None,
    ) -> list[int]:
        ids = self.chain(layer.ops(name), deps, step, layer.layer, traffic, stage)
        self.done[(direction, name, layer.layer)] = ids
        return ids

    def chain(
        self,
        ops: tuple[Operator, ...],
        deps: list[int],
        step: int,
        layer: int,
        traffic: Traffic | GroupTraffic | None,
        stage: Stage | None = None,
    ) -> list[int]:
        """Add ``ops`` (one annotation, or a stage extra), each waiting for ``deps``; a TP or CP
        collective waits for the op before it, and every op after it waits for it.

        Unless it runs beside its partner op (:func:`_partner`): an all-gather then runs beside the
        partner after it, which starts with it (the ops after the partner wait for both; ops between the
        two, an FP8 cast of the input, run beside it too, as Transformer Engine casts the local shard
        before gathering; an all-gather with no partner after it in ``ops`` is waited for as usual),
        and a reduce-scatter beside the partner it follows, starting when that partner can start (what
        it waited for and the compute stream's op before it): each pair takes about the longer of the
        two instead of their sum.

        - ``stage.tp_overlap`` (``training.tp_comm_overlap``, Megatron-Core's ``--tp-comm-overlap``): TP
          collectives beside their GEMMs. The bulk form of Megatron's chunked (userbuffers) overlap, with
          the ring exchange's GEMMs in TP row chunks (:func:`ring_exchange_gemms`): the pipelining's
          first and last chunk, and the SMs the bulk overlaps take from the GEMM beyond the
          interference factors, are not modelled.
        - ``stage.cp_ring`` (``training.cp_comm: p2p``, ring attention): the CP exchange of keys and
          values (and of their gradients in the backward) beside the attention kernel. The ring's
          bytes are the all-gather's (each rank's chunk passed on CP-1 times); its first step, which
          computes on the local keys before anything has arrived, is not separated out."""
        ids: list[int] = []
        last_compute: list[int] = []
        before: list[int] = []  # the previous op's tasks (what a TP collective waits for)
        barrier: list[int] = []  # the last TP collective: every op after it waits for it
        pending: dict[str, list[int]] = {}  # all-gathers beside their partner to come, by its kind
        started: dict[str, list[int]] = {}  # by kind, what the last op of that kind waited for
        previous = ""
        ring = ring_exchange_gemms(ops, stage)
        for i, op in enumerate(ops):
            tp = op.kind == "comm" and op.comm in TP_KINDS
            partner = _partner(op, stage) if tp else None
            if partner and op.comm.endswith("allgather") and not any(o.kind == partner for o in ops[i + 1 :]):
                partner = None  # nothing to run beside in this annotation: what follows waits for it
            if partner and op.comm.endswith("reducescatter") and previous == partner:
                extra = started[partner]
            else:
                extra = before if tp else barrier
            # an op on the second compute stream waits for the annotation's compute-stream ops before it
            wait = deps + extra + (last_compute if op.stream == "wgrad" else [])
            mine = self._add(op, wait, step, layer, traffic, stage.tp if stage and i in ring else 1)
            started[op.kind] = wait + (last_compute if op.stream == "compute" else [])
            if op.stream == "compute":
                last_compute = mine
            if partner and op.comm.endswith("allgather"):
                pending[partner] = pending.get(partner, []) + mine
            elif tp:
                barrier = mine
            elif op.kind in pending:
                barrier = barrier + pending.pop(op.kind)
            previous = op.kind
            before = mine or before
            ids += mine
        return ids

    def add_extra(
        self, stage: Stage, name: str, step: int, backward_input: bool = False, weights: bool = False
    ) -> None:
        ops = stage.extras().get(name, ())
        if not ops:
            return
        deps = self.last_b if backward_input or weights else self.last_f
        ids = self.chain(ops, list(deps), step, -1, None, stage)
        if backward_input:
            self.last_b = ids or self.last_b
        elif not weights:
            self.last_f = ids or self.last_f

    def step(
        self, s: int, f: Stage | None, lf: int | None, b: Stage | None, lb: int | None, parts: str, overlapped: bool
    ) -> None:
        """One layer step: forward layer ``lf`` of ``f`` and/or backward layer ``lb`` of ``b``."""
        fl = f.layers[lf] if f is not None and lf is not None else None
        bl = b.layers[lb] if b is not None and lb is not None else None
        ft = f.traffic[lf] if f is not None and lf is not None else None
        bt = b.traffic[lb] if b is not None and lb is not None else None
        # the order in which annotations enter their stream queues (DeepSeek's launch order)
        order: list[tuple[str, str]] = []
        if fl is not None and bl is not None and overlapped:
            compute = [("F" if a.endswith("(F)") else "B", a) for a in PAIR_COMPUTE]
            comm = [("F" if a.endswith("(F)") else "B", a) for a in PAIR_COMM]
            order = _interleave(compute, comm)
        else:
            if fl is not None:
                order += [("F", "attn(F)"), ("F", "dispatch(F)"), ("F", "mlp(F)"), ("F", "combine(F)")]
            if bl is not None:
                order += [("B", "combine(B)"), ("B", "mlp(B)")]
                if "W" in parts and "I" in parts:
                    order += [("B", "mlp(W)")]
                order += [("B", "dispatch(B)"), ("B", "attn(B)")]
                if "W" in parts and "I" in parts:
                    order += [("B", "attn(W)")]
                if parts == "W":
                    order = [("B", "mlp(W)"), ("B", "attn(W)")]
        if bl is not None and "I" in parts and bl.ops("attn(R)"):  # full recomputation: the forward again first
            order = [("B", a) for a in REPLAY.values()] + order
        for direction, name in order:
            layer = fl if direction == "F" else bl
            traffic = ft if direction == "F" else bt
            if layer is None:
                continue
            if direction == "B" and "I" not in parts and not name.endswith("(W)"):
                continue
            if direction == "B" and "W" not in parts and name.endswith("(W)"):
                continue
            deps = self._deps(direction, name, layer)
            stage = f if direction == "F" else b
            ids = self.annotation(direction, layer, name, deps, s, traffic, stage)
            if direction == "F" and name in ("combine(F)", "mlp(F)") and ids:
                if name == "combine(F)" or not layer.moe:
                    self.last_f = ids
            if direction == "B" and name == "attn(B)" and ids:
                self.last_b = ids

    def _deps(self, direction: str, name: str, layer: LayerOps) -> list[int]:
        key = layer.layer

        def done(ann: str) -> list[int]:
            return self.done.get((direction, ann, key), [])

        if direction == "F":
            return {
                "attn(F)": list(self.last_f),
                "dispatch(F)": done("attn(F)"),
                "mlp(F)": done("dispatch(F)") if layer.moe else done("attn(F)"),
                "combine(F)": done("mlp(F)"),
            }[name]
        replayed = done("combine(R)") if layer.moe else done("mlp(R)")  # full recomputation's re-run forward
        first_b = replayed or list(self.last_b)
        return {
            "attn(R)": list(self.last_b),
            "dispatch(R)": done("attn(R)"),
            "mlp(R)": done("dispatch(R)") if layer.moe else done("attn(R)"),
            "combine(R)": done("mlp(R)"),
            "combine(B)": first_b,
            "mlp(B)": done("combine(B)") if layer.moe else first_b,
            "mlp(W)": done("mlp(B)"),
            "dispatch(B)": done("mlp(B)"),
            "attn(B)": done("dispatch(B)") if layer.moe else done("mlp(B)"),
            "attn(W)": done("attn(B)"),
        }[name]


def ring_exchange_gemms(ops: tuple[Operator, ...], stage: Stage | None) -> set[int]:
    """Indices of the GEMMs of ``ops`` that Transformer Engine's ring-exchange TP overlap computes in
    ``stage.tp`` row chunks, under ``training.tp_comm_overlap`` (:meth:`_Graph.chain` pairs them).

    Megatron-Bridge's userbuffers configurations for FP8 on H100 (``userbuffers_fp8_h100_h8192_tp4_mbs1_
    seqlen8192``, Llama 3 70B, and ``userbuffers_fp8_h100_h16384_tp8_cp2_mbs1_seqlen8192``, Llama 3.1 405B;
    ``src/megatron/bridge/training/comm_overlap.py``) set ``method: ring_exchange`` for ``qkv_fprop``,
    ``fc1_fprop`` (the all-gather of the input beside the GEMM that reads it), ``proj_fprop``, ``fc2_fprop``
    (the GEMM beside the reduce-scatter of its output) and ``proj_dgrad``, ``fc2_dgrad`` (the all-gather
    of the output gradient beside the data-gradient GEMM); ``bulk`` for ``qkv_dgrad``/``fc1_dgrad`` and
    ``qkv_wgrad``/``fc1_wgrad`` (a whole GEMM beside the all-gather of the input kept for the weight
    gradient, and the reduce-scatter of the input gradient). A ring exchange passes one rank's shard at
    a time (copy engines; one SM for the reduce-scatter's, ``num_sm: 1``), and the GEMM runs on each shard
    as it arrives or leaves: ``tp`` GEMMs of ``m / tp`` rows, the tokens of one rank, in place of one of
    ``m`` (Transformer Engine's ``CommOverlapP2P``). Smaller GEMMs run less efficiently; the cost model
    times them as such (:meth:`sim.chunk.op_cost.OpCoster.in_chunks`).

    Here: in a forward annotation, the GEMM after a TP all-gather and the GEMM before a TP reduce-scatter;
    in a backward one, the GEMM after the all-gather of an output gradient (an op named ``*.grad``). The
    backward's other pairs are the bulk ones (whole GEMMs). Not modelled: one launch per chunk (TE's
    loop launches them back to back from C++), the one SM of ``set_sm_margin``."""
    if stage is None or not stage.tp_overlap or stage.tp < 2:
        return set()
    out: set[int] = set()
    for i, op in enumerate(ops):
        if op.kind != "comm" or op.comm not in ("tp-allgather", "tp-reducescatter"):
            continue
        forward = op.part == "F"
        if op.comm == "tp-allgather" and (forward or op.name.endswith(".grad")):
            after = next((j for j in range(i + 1, len(ops)) if ops[j].kind == "gemm"), None)
            if after is not None:
                out.add(after)
        elif op.comm == "tp-reducescatter" and forward and i > 0 and ops[i - 1].kind == "gemm":
            out.add(i - 1)
    return out


def _partner(op: Operator, stage: Stage | None) -> str | None:
    """The kind of op a TP or CP collective runs beside (:meth:`_Graph.chain`), or None."""
    if stage is None:
        return None
    if stage.tp_overlap and op.comm in ("tp-allgather", "tp-reducescatter"):
        return "gemm"
    if stage.cp_ring and op.comm in ("cp-allgather", "cp-reducescatter"):
        return "attention"
    return None


def _interleave(compute: list[tuple[str, str]], comm: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """DeepSeek's launch order of one F&B step: each communication annotation enqueued just before the
    compute annotation it overlaps (combine(B) with attn(F), dispatch(F) with mlp(B), dispatch(B) with
    mlp(W), combine(F) with attn(B))."""
    before = {"attn(F)": "combine(B)", "mlp(B)": "dispatch(F)", "mlp(W)": "dispatch(B)", "attn(B)": "combine(F)"}
    comm_by_name = {c[1]: c for c in comm}
    out = []
    for c in compute:
        if c[1] in before:
            out.append(comm_by_name[before[c[1]]])
        out.append(c)
    return out
