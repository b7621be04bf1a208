"""One serving forward of a unit, timed by the layer model: prefill (long sequences, compute-bound)
and decode (a few tokens per request, attention over the KV cache, memory-bound).

Every GPU of a unit runs the same forward in lockstep (the dispatch and combine of every MoE layer
synchronise the EP group), so a forward lasts as long as its slowest GPU: the one with the most
expert rows this batch (:mod:`sim.serve.routing`). The ops are the training layer's forward ops
(:mod:`sim.model.layer`, the same ops the trace validates), less what only training keeps (the
FP8/E5M6 copies stored for the backward, the loss), under the model's recipe (``model.dtype: bf16``:
:func:`sim.model.layer.bf16_recipe`, as the training step takes it: BF16 GEMMs at the BF16 peak
reading 2-byte weights, no FP8 casts or scales, BF16 dispatch), timed alone by
:class:`sim.chunk.op_cost.OpCoster` on the SMs left to compute, plus a launch gap per kernel:

* attention of a prefill batch: the attention core over each request's new tokens against its
  cached prefix and itself, as causal attention of the same FLOPs (``sqrt(n^2 + 2np)`` tokens for
  ``n`` new after ``p`` cached), the profile's attention efficiency at that length;
* attention of a decode step (MLA absorbed into the latent, FlashMLA): reads each request's KV
  cache and does ``2 x heads x q x L x (kv_lora + rope + kv_lora)`` FLOPs for ``q`` query tokens
  over ``L`` cached; as fast as the slower of FlashMLA's published rates on H800 (3000 GB/s
  memory-bound, 660 TFLOPS compute-bound; scaled to the profile's peaks);
* the TP collectives of attention TP on NVLink (ring all-gather / reduce-scatter of the hidden
  states, ``(tp-1)/tp`` of the bytes);
* dispatch and combine by :mod:`sim.serve.alltoall`.

**Two micro-batches** (``tbo``, V3 section 3.4): the batch splits in two halves; each half's layers
are a chain attention -> dispatch -> MoE -> combine; the compute stream and the communication stream
each run one task at a time, the earliest ready first (:func:`overlap`). Normal kernels hold
``comm_sms`` SMs, so compute runs on the rest and, beside them, slows by the trace's GEMM and
memory-bound slowdowns; low-latency kernels hold none. Without ``tbo``, every task runs one after
another: a forward is then exactly the sum of its kernels' times (tested at decode batch 1).

Forwards are memoised per shape (:class:`Shape`), so a traffic simulation times each distinct batch
shape once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import GEMM_BESIDE_COMM, LAUNCH_GAP_US, MEMORY_BESIDE_COMM, ChunkParams
from sim.hardware.costmodel import CostModel
from sim.model.layer import (
    LayerWork,
    attention_forward,
    bf16_recipe,
    dense_forward,
    embedding_ops,
    head_ops,
    moe_forward,
    mtp_ops,
)
from sim.model.ops import Operator, attention_flops
from sim.model.spec import ModelSpec
from sim.serve.alltoall import Links, phase_time
from sim.serve.kvcache import KV_BYTES
from sim.serve.placement import Placement
from sim.serve.routing import BatchRouting, route_batch
from sim.serve.spec import PoolSpec

# FlashMLA README (deepseek-ai/FlashMLA): the dense MLA decoding kernel reaches 3000 GB/s
# memory-bound and 660 TFLOPS compute-bound on H800 SXM5 (CUDA 12.8): fractions of H800's 3.35 TB/s
# HBM and 989 TFLOPS dense BF16, applied to the profile's peaks.
FLASHMLA_HBM_FRACTION = 3000.0 / 3350.0
FLASHMLA_FLOPS_FRACTION = 660.0 / 989.0
# the training-only ops a forward drops (copies kept for the backward, the loss)
ROUTING_SAMPLE = 16_384  # tokens routed per forward at most (then scaled): bounds a prefill shape's cost
ROUTES_KEPT = 256  # routing draws kept process-wide by their arguments (ForwardModel._route; some KiB each)
_ROUTES: dict[tuple[object, ...], BatchRouting] = {}
TRAINING_ONLY = ("attn_out.store", "experts_up.store", "shared_up.store", "loss")


@dataclass(frozen=True)
class Shape:
    """What decides a forward's time. Prefill: ``tokens`` new tokens of the busiest DP rank, its
    ``requests``, ``context`` their mean cached prefix, ``moe_tokens`` the unit's tokens per rank
    (the experts see every rank's). Decode: ``requests`` per DP rank, ``context`` their mean KV
    length, ``tokens`` = requests x query tokens each (1 + MTP drafts)."""

    kind: str  # prefill | decode
    tokens: int
    requests: int
    context: int
    moe_tokens: int = 0  # tokens per DP rank the experts see on average [0: tokens]; prefill ranks vary


@dataclass(frozen=True)
class Forward:
    """A timed forward: ``time_s`` in all; the slowest GPU's compute-stream busy time, the
    communication stream's busy time; each GPU's compute time (busy fractions)."""

    time_s: float
    compute_s: float
    comm_s: float
    gpu_compute_s: np.ndarray
    dispatch_s: float  # one layer's dispatch (the batch, not a micro-batch)
    combine_s: float


@dataclass(frozen=True)
class MoePart:
    """One MoE layer's expert work on the slowest GPU, its dispatch and combine, every GPU's expert
    work."""

    slowest_s: float
    dispatch_s: float
    combine_s: float
    per_gpu_s: np.ndarray


EXACT_TOKENS = 32  # tokens per DP rank routed exactly; above, a geometric grid
GRID_RATIO = 1.0625


def _grid(tokens: int) -> tuple[int, int]:
    """The grid points around ``tokens`` (equal when it is one)."""
    if tokens <= EXACT_TOKENS:
        return tokens, tokens
    k = math.floor(math.log(tokens / EXACT_TOKENS) / math.log(GRID_RATIO))
    lo = round(EXACT_TOKENS * GRID_RATIO**k)
    hi = round(EXACT_TOKENS * GRID_RATIO ** (k + 1))
    if lo > tokens:
        lo, hi = round(EXACT_TOKENS * GRID_RATIO ** (k - 1)), lo
    if hi < tokens:
        lo, hi = hi, round(EXACT_TOKENS * GRID_RATIO ** (k + 2))
    return (tokens, tokens) if tokens in (lo, hi) else (lo, hi)


@dataclass(frozen=True)
class Task:
    stream: str  # compute | comm
    time_s: float


def overlap(chains: list[list[Task]]) -> tuple[float, dict[str, float]]:
    """Makespan of task chains (each in order) on two one-at-a-time streams, earliest-ready first
    (ties: the lower chain), and each stream's busy time."""
    free = {"compute": 0.0, "comm": 0.0}
    busy = {"compute": 0.0, "comm": 0.0}
    nxt = [0] * len(chains)
    ready = [0.0] * len(chains)
    end = 0.0
    left = sum(len(c) for c in chains)
    while left:
        best = None
        for i, c in enumerate(chains):
            if nxt[i] < len(c):
                t = c[nxt[i]]
                start = max(ready[i], free[t.stream])
                if best is None or start < best[0]:
                    best = (start, i)
        assert best is not None
        start, i = best
        t = chains[i][nxt[i]]
        ready[i] = free[t.stream] = start + t.time_s
        busy[t.stream] += t.time_s
        end = max(end, ready[i])
        nxt[i] += 1
        left -= 1
    return end, busy


def recipe(s: ModelSpec, ops: list[Operator]) -> list[Operator]:
    """A layer's forward ops under ``s.dtype``'s recipe: as built (DeepSeek's FP8) or BF16 (the
    training step's :func:`sim.model.layer.bf16_recipe`)."""
    return list(bf16_recipe(ops)) if s.dtype == "bf16" else ops


def graphs_allowed(pool: PoolSpec, model: ModelSpec) -> bool:
    """Whether a decode step can run as a CUDA graph: DeepEP's low-latency kernels can be captured;
    its normal dispatch makes the CPU wait for the received token counts before it allocates the
    receive buffers ("not compatible with CUDA graph", DeepEP's README), so a step with them runs
    eagerly, paying the launch gap per kernel. A dense model has no all-to-all."""
    return pool.kernels == "low_latency" or not model.is_moe_model


class ForwardModel:
    """A pool's forwards, memoised by shape."""

    def __init__(
        self,
        role: str,
        pool: PoolSpec,
        model: ModelSpec,
        cost: CostModel,
        links: Links,
        gpus_per_node: int,
        placement: Placement,
        load: np.ndarray,
        seed: int,
        router_groups: int = 8,
    ) -> None:
        self.role, self.pool, self.model, self.cost, self.links = role, pool, model, cost, links
        self.gpus = pool.unit_nodes * gpus_per_node
        self.gpus_per_node = gpus_per_node
        self.tp = pool.attention_tp
        self.dp = self.gpus // self.tp
        self.placement, self.load, self.seed = placement, load, seed
        gap = pool.launch_gap_us
        if gap is None:  # CUDA graphs in decode, where the kernels allow them; eager otherwise (the trace's gap)
            gap = 0.0 if role == "decode" and graphs_allowed(pool, model) else LAUNCH_GAP_US
        self.params = ChunkParams(launch_gap_us=gap)
        normal = pool.kernels == "normal" and model.is_moe_model
        self.compute_sms = cost.all_sms - (pool.comm_sms if normal else 0)
        self.coster = OpCoster(cost, self.compute_sms, self.params)
        self.query_tokens = 1 + (model.mtp_depth if pool.mtp.enabled else 0)
        self.router_groups = router_groups
        self._memo: dict[Shape, Forward] = {}
        self._moe_memo: dict[tuple[int, bool], MoePart] = {}
        self._dense_memo: dict[tuple[int, bool, bool], float] = {}
        self._sampled: dict[int, BatchRouting] = {}  # routing draws by token count
        self.moe_model = model.model_copy(update={"n_shared_experts": 0}) if pool.shared_as_routed else model
        # a co-located pool's decode steps run as CUDA graphs like a decode pool's (its prefill stays eager)
        self.decode_forwards: ForwardModel | None = None
        if role == "colocated" and pool.launch_gap_us is None and graphs_allowed(pool, model):
            self.decode_forwards = ForwardModel(
                "decode", pool, model, cost, links, gpus_per_node, placement, load, seed, router_groups
            )

    # ------------------------------------------------------------------ ops
    def _ops_time(self, ops: list[Operator] | tuple[Operator, ...], beside: bool) -> float:
        t = 0.0
        for op in ops:
            if op.name in TRAINING_ONLY or op.name.endswith(".store"):
                continue
            if op.kind == "comm":
                t += self._tp_time(op)
                continue
            a = self.coster.alone(op)
            if beside:
                a *= GEMM_BESIDE_COMM if op.kind == "gemm" else MEMORY_BESIDE_COMM if op.kind == "memory" else 1.0
            t += a + self.coster.gap(op)
        return t

    def _tp_time(self, op: Operator) -> float:
        """A TP collective inside a node: ring all-gather / reduce-scatter on NVLink."""
        tp = self.tp
        return self.links.nvlink_latency_s + op.nbytes * (tp - 1) / tp / (self.links.nvlink_GBps * 1e9)

    def _attention_core(self, shape: Shape, tokens: int) -> float:
        """The attention core of ``tokens`` of the DP rank's tokens (a micro-batch's share)."""
        s = self.model
        heads = s.n_heads // self.tp
        share = tokens / max(shape.tokens, 1)
        requests = shape.requests * share
        if requests <= 0:
            return 0.0
        if shape.kind == "prefill":
            n = shape.tokens / shape.requests
            seq = max(1, round(math.sqrt(n * n + 2 * n * shape.context)))
            per = self.cost.attention_time(heads, seq, s.qk_head_dim, s.value_head_dim, True, "fwd", self.compute_sms)
            return per * requests + self.params.launch_gap_us * 1e-6
        q = self.query_tokens
        length = shape.context
        element = KV_BYTES[self.pool.kv_dtype]
        if s.attention == "mla":
            width = s.kv_lora_rank + s.qk_rope_head_dim
            flops = 2.0 * heads * q * length * (width + s.kv_lora_rank) * requests
            nbytes = length * width * element * requests
        else:  # GQA: each KV head's keys and values, read once for its query heads
            kv = max(1, s.kv_heads // self.tp)
            flops = attention_flops(heads, 1, s.attn_head_dim, s.attn_head_dim, False) * q * length * requests
            nbytes = 2 * kv * s.attn_head_dim * length * element * requests
        peaks = self.cost.peaks
        sm = self.compute_sms / self.cost.all_sms
        t_mem = nbytes / (peaks.hbm_Bps * FLASHMLA_HBM_FRACTION)
        t_flop = flops / (peaks.flops("bf16") * FLASHMLA_FLOPS_FRACTION * sm)
        return max(t_mem, t_flop) + self.params.launch_gap_us * 1e-6

    def _routing(self, tokens: int) -> BatchRouting:
        """The unit's routing of one forward (or micro-batch) of ``tokens`` per DP rank: sampled for
        at most :data:`ROUTING_SAMPLE` tokens and scaled up (the counts grow in proportion; the
        sample's relative spread is at least the batch's, so the slowest GPU errs on the slow side;
        every batch larger than the sample scales the same draw)."""
        unit_tokens = max(1, tokens * self.dp)
        sample = min(unit_tokens, ROUTING_SAMPLE)
        r = self._sampled.get(sample)
        if r is None:
            r = self._sampled[sample] = self._route(sample)
        if sample == unit_tokens:
            return r
        f = unit_tokens / sample
        arrays = (r.rows, r.shared_rows, r.ib_send, r.ib_recv, r.nvl_send, r.nvl_recv)
        return BatchRouting(unit_tokens, *(np.rint(a * f).astype(np.int64) for a in arrays))

    def _route(self, sample: int) -> BatchRouting:
        """One routing draw of ``sample`` tokens over the unit, seeded by the scenario and the count.
        A function of its arguments only (a fresh generator each), so kept process-wide by them
        (:data:`ROUTES_KEPT`): a sweep's points, or a study's, that change neither the expert load, the
        placement nor the router draw each routing once per worker, not once per point (a prefill
        forward of DeepSeek's deployment routes 16,384 tokens to 256 experts: some 60 ms, 14 of them
        a run)."""
        s, pl = self.model, self.placement
        args = (
            sample,
            s.n_activated_experts,
            self.router_groups,
            s.n_limited_groups,
            self.links.domain,
            self.pool.shared_as_routed,
            self.pool.kernels,
        )
        key = (self.load.tobytes(), pl.slots.shape, pl.slots.tobytes(), pl.copies.tobytes(), *args, self.seed)
        hit = _ROUTES.get(key)
        if hit is not None:
            return hit
        r = route_batch(self.load, pl, *args, np.random.default_rng([self.seed, sample]))
        for a in (r.rows, r.shared_rows, r.ib_send, r.ib_recv, r.nvl_send, r.nvl_recv):
            a.setflags(write=False)  # shared by every forward model of these arguments
        if len(_ROUTES) >= ROUTES_KEPT:
            _ROUTES.pop(next(iter(_ROUTES)))  # the oldest
        _ROUTES[key] = r
        return r

    def _moe_ops(self, gpu_tokens: int, rows: np.ndarray, shared_rows: int) -> list[Operator]:
        r = tuple(int(x) for x in rows if x > 0)
        if self.pool.shared_as_routed and shared_rows > 0:
            r = (*r, shared_rows)
        if not r:
            return []
        return recipe(self.model, moe_forward(self.moe_model, LayerWork(tokens=max(1, gpu_tokens), rows_per_expert=r)))

    def moe_part(self, tokens: int, beside: bool) -> MoePart:
        """One MoE layer's expert work and all-to-all for ``tokens`` per DP rank: exact up to
        :data:`EXACT_TOKENS`, then interpolated linearly between the points of a geometric grid
        (ratio :data:`GRID_RATIO`), each routed and timed once."""
        lo, hi = _grid(tokens)
        a = self._moe_at(lo, beside)
        if hi == lo:
            return a
        b = self._moe_at(hi, beside)
        w = (tokens - lo) / (hi - lo)
        return MoePart(
            a.slowest_s * (1 - w) + b.slowest_s * w,
            a.dispatch_s * (1 - w) + b.dispatch_s * w,
            a.combine_s * (1 - w) + b.combine_s * w,
            a.per_gpu_s * (1 - w) + b.per_gpu_s * w,
        )

    def _moe_at(self, tokens: int, beside: bool) -> MoePart:
        key = (tokens, beside)
        hit = self._moe_memo.get(key)
        if hit is None:
            r = self._routing(tokens)
            s = self.model
            per_gpu = self._per_gpu_moe(r, max(1, tokens // self.tp), beside)
            d = phase_time(r, "dispatch", s.dim, self.links, self.pool.kernels, self.pool.comm_sms, beside, s.dtype)
            c = phase_time(r, "combine", s.dim, self.links, self.pool.kernels, self.pool.comm_sms, beside, s.dtype)
            hit = self._moe_memo[key] = MoePart(float(per_gpu.max()), d, c, per_gpu)
        return hit

    # ------------------------------------------------------------------ a forward
    def forward(self, shape: Shape) -> Forward:
        if shape.kind == "decode" and self.decode_forwards is not None:
            return self.decode_forwards.forward(shape)
        hit = self._memo.get(shape)
        if hit is None:
            hit = self._memo[shape] = self._forward(shape)
        return hit

    @property
    def shapes(self) -> int:
        """Distinct forward shapes timed so far."""
        return len(self._memo) + (self.decode_forwards.shapes if self.decode_forwards is not None else 0)

    def _dense_part(self, tokens: int, moe: bool, beside: bool) -> float:
        key = (tokens, moe, beside)
        hit = self._dense_memo.get(key)
        if hit is None:
            s = self.model
            t = self._ops_time(self._attention_ops(tokens, moe), beside)
            if not moe:
                t += self._ops_time(recipe(s, dense_forward(s, max(tokens, self.tp), self.tp)), beside)
            hit = self._dense_memo[key] = t
        return hit

    def _forward(self, shape: Shape) -> Forward:
        """The forward in one batch, or with ``tbo`` also as two micro-batches: the faster (at small
        decode batches each half reads every weight again and one batch wins)."""
        one = self._timed(shape, 1)
        if self.pool.tbo and shape.tokens >= 2 and (shape.kind == "prefill" or shape.requests >= 2):
            two = self._timed(shape, 2)
            return two if two.time_s <= one.time_s else one
        return one

    def _timed(self, shape: Shape, halves: int) -> Forward:
        s = self.model
        parts = [shape.tokens // halves + (1 if i < shape.tokens % halves else 0) for i in range(halves)]
        moe_total = shape.moe_tokens or shape.tokens
        moe_parts = [moe_total // halves + (1 if i < moe_total % halves else 0) for i in range(halves)]
        beside = halves == 2 and self.pool.kernels == "normal" and s.is_moe_model
        layers = s.n_layers + (s.mtp_depth if self.query_tokens > 1 else 0)
        kinds = [s.is_moe(min(layer, s.n_layers)) for layer in range(layers)]
        moe_layers = sum(kinds)
        chains: list[list[Task]] = []
        gpu_compute = np.zeros(self.gpus)
        dispatch_s = combine_s = 0.0
        for tokens, moe_tokens in zip(parts, moe_parts, strict=True):
            logits = tokens if shape.kind == "decode" else max(1, round(shape.requests * tokens / max(shape.tokens, 1)))
            embed = self._ops_time(embedding_ops(s, max(tokens, self.tp), self.tp)["embed(F)"], beside)
            core = self._attention_core(shape, tokens)
            attn_moe = self._dense_part(tokens, True, beside) + core if moe_layers else 0.0
            attn_dense = self._dense_part(tokens, False, beside) + core
            chain = [Task("compute", embed)]
            if moe_layers:
                m = self.moe_part(max(1, moe_tokens), beside)
                dispatch_s, combine_s = dispatch_s + m.dispatch_s, combine_s + m.combine_s
                gpu_compute += moe_layers * (attn_moe + m.per_gpu_s)
            for moe in kinds:
                if moe:
                    chain += [Task("compute", attn_moe), Task("comm", m.dispatch_s)]
                    chain += [Task("compute", m.slowest_s), Task("comm", m.combine_s)]
                else:
                    chain.append(Task("compute", attn_dense))
            tail = self._ops_time(head_ops(s, max(logits, self.tp), self.tp)["head(F)"], beside)
            if self.query_tokens > 1:
                tail += self._ops_time(mtp_ops(s, tokens)["mtp(F)"], beside)
            chain.append(Task("compute", tail))
            gpu_compute += embed + (layers - moe_layers) * attn_dense + tail
            chains.append(chain)
        if halves == 1:
            total = sum(t.time_s for t in chains[0])
            busy = {k: sum(t.time_s for t in chains[0] if t.stream == k) for k in ("compute", "comm")}
        else:
            total, busy = overlap(chains)
        return Forward(total, busy["compute"], busy["comm"], gpu_compute, dispatch_s, combine_s)

    def _attention_ops(self, tokens: int, moe: bool) -> list[Operator]:
        ops = recipe(self.model, attention_forward(self.model, max(tokens, self.tp), moe, self.tp))
        return [op for op in ops if op.kind != "attention"]

    def _per_gpu_moe(self, r: BatchRouting, gpu_tokens: int, beside: bool) -> np.ndarray:
        """Each GPU's MoE-part time of one layer: its ops depend on its rows only through their sum
        and the number of experts with any (one grouped GEMM), so GPUs alike are timed once."""
        routed = r.rows.sum(axis=1)
        groups = (r.rows > 0).sum(axis=1)
        out = np.zeros(len(r.rows))
        seen: dict[tuple[int, int, int], float] = {}
        for g in range(len(r.rows)):
            key = (int(routed[g]), int(groups[g]), int(r.shared_rows[g]))
            t = seen.get(key)
            if t is None:
                rows = np.zeros(key[1], dtype=np.int64)
                if key[1]:
                    rows[:] = key[0] // key[1]
                    rows[: key[0] % key[1]] += 1
                t = seen[key] = self._ops_time(self._moe_ops(gpu_tokens, rows, key[2]), beside)
            out[g] = t
        return out
