"""One serving forward (sim.serve.forward): at decode batch 1 the plain sum of its kernels, rebuilt
here from the layer's ops; the two-stream overlap on hand-made chains; bounds on two micro-batches;
the prefill time's growth; the token grid."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.model.layer import (
    LayerWork,
    attention_forward,
    dense_forward,
    embedding_ops,
    head_ops,
    moe_forward,
    mtp_ops,
)
from sim.model.ops import Operator
from sim.serve.alltoall import phase_time
from sim.serve.deployment import build
from sim.serve.forward import EXACT_TOKENS, GRID_RATIO, ForwardModel, Shape, Task, _grid, overlap
from sim.serve.routing import route_batch
from tests.serve.conftest import pool, scenario

# FlashMLA's published H800 rates (README): 3000 GB/s memory-bound, 660 TFLOPS compute-bound, as
# fractions of H800's 3.35 TB/s and 989 TFLOPS (docstring of sim.serve.forward)
FLASHMLA_MEM, FLASHMLA_FLOPS = 3000.0 / 3350.0, 660.0 / 989.0


def _training_only(op: Operator) -> bool:
    """What only training keeps (sim.serve.forward's docstring): the FP8/E5M6 copies stored for the
    backward (``*.store``) and the loss."""
    return op.name.endswith(".store") or op.name == "loss"


def _model(
    role: str, pool_keys: dict[str, Any], model: dict[str, Any] | None = None, expert_load: str = "balanced"
) -> ForwardModel:
    serve: dict[str, Any] = {"duration_s": 1, "traffic": {"rate_per_s": 1}, "expert_load": expert_load}
    if role == "colocated":
        serve["colocated"] = pool(**pool_keys)
    else:
        serve |= {"prefill": pool(), "decode": pool(), role: pool(**pool_keys)}
    return build(scenario(serve, model=model)).pools[role].model


def _decode_batch_1(fm: ForwardModel, context: int, dropped: Callable[[Operator], bool]) -> float:
    """A decode step of one request per DP rank, rebuilt from the layer's ops: every kernel timed
    alone on the compute SMs (OpCoster) plus its launch gaps, the TP collectives on NVLink, the
    attention core at FlashMLA's rates, each MoE layer's dispatch, the busiest GPU's experts and the
    combine, one after another. The routing is drawn as the forward model draws it (its seed and the unit's
    token count); everything else is recomputed here."""
    s, tp, links, spec = fm.model, fm.tp, fm.links, fm.pool
    q = 1 + (s.mtp_depth if spec.mtp.enabled else 0)
    gap = spec.launch_gap_us if spec.launch_gap_us is not None else 0.0  # decode steps: CUDA graphs
    coster = OpCoster(fm.cost, fm.compute_sms, ChunkParams(launch_gap_us=gap))

    def ops_time(ops: tuple[Operator, ...] | list[Operator]) -> float:
        t = 0.0
        for op in ops:
            if dropped(op) or op.kind == "attention":
                continue
            if op.kind == "comm":
                t += links.nvlink_latency_s + op.nbytes * (tp - 1) / tp / (links.nvlink_GBps * 1e9)
            else:
                t += coster.kernel_time(op) + op.kernels * gap * 1e-6
        return t

    heads = s.n_heads // tp
    width = s.kv_lora_rank + s.qk_rope_head_dim
    flops = 2.0 * heads * q * context * (width + s.kv_lora_rank)
    kv_bytes = context * width * 2.0
    peaks = fm.cost.peaks
    core = max(
        kv_bytes / (peaks.hbm_Bps * FLASHMLA_MEM),
        flops / (peaks.flops("bf16") * FLASHMLA_FLOPS * fm.compute_sms / fm.cost.all_sms),
    )
    core += gap * 1e-6
    rng = np.random.default_rng([fm.seed, q * fm.dp])
    r = route_batch(
        fm.load,
        fm.placement,
        q * fm.dp,
        s.n_activated_experts,
        fm.router_groups,
        s.n_limited_groups,
        links.domain,
        spec.shared_as_routed,
        spec.kernels,
        rng,
    )
    dispatch = phase_time(r, "dispatch", s.dim, links, spec.kernels, spec.comm_sms, False)
    combine = phase_time(r, "combine", s.dim, links, spec.kernels, spec.comm_sms, False)
    routed_model = s.model_copy(update={"n_shared_experts": 0}) if spec.shared_as_routed else s
    experts = 0.0
    for g in range(fm.gpus):
        rows = tuple(int(x) for x in r.rows[g] if x > 0)
        if spec.shared_as_routed and r.shared_rows[g]:
            rows = (*rows, int(r.shared_rows[g]))
        if rows:
            work = LayerWork(tokens=max(1, q // tp), rows_per_expert=rows)
            experts = max(experts, ops_time(moe_forward(routed_model, work)))
    t = ops_time(embedding_ops(s, max(q, tp), tp)["embed(F)"])
    for layer in range(s.n_layers + (s.mtp_depth if q > 1 else 0)):
        moe = s.is_moe(layer)
        t += ops_time(attention_forward(s, max(q, tp), moe, tp)) + core
        t += dispatch + experts + combine if moe else ops_time(dense_forward(s, max(q, tp), tp))
    t += ops_time(head_ops(s, max(q, tp), tp)["head(F)"])
    if q > 1:
        t += ops_time(mtp_ops(s, q)["mtp(F)"])
    return t


DECODE_POOLS = {  # role, pool keys, expert load
    "decode-dp-mtp": ("decode", {"mtp": {"enabled": True}}, "balanced"),
    "decode-dp-skewed-redundant": ("decode", {"experts_per_gpu": 18}, "skewed"),
    "colocated-default": ("colocated", {}, "balanced"),
    "colocated-tp2-normal-shared": (
        "colocated",
        {"kernels": "normal", "attention_tp": 2, "shared_as_routed": True, "experts_per_gpu": 17, "launch_gap_us": 4.0},
        "balanced",
    ),
}
ALL_MOE = {"n_dense_layers": 0}  # every layer MoE: no dense FFN


@pytest.mark.parametrize("name", list(DECODE_POOLS))
def test_decode_batch_1_is_the_sum_of_its_kernels(name: str) -> None:
    """One request per DP rank cannot be split into two micro-batches (``tbo`` is on), so the step
    is its kernels one after another: the forward model's time equals the sum rebuilt here from
    sim.model.layer and OpCoster (to float rounding), for DP and TP attention, low-latency and normal
    kernels (their SMs taken from compute), MTP (one more MoE layer, two query tokens) and the shared
    expert as routed, skewed expert load with redundant copies. Decode steps launch without gaps
    (CUDA graphs: ``launch_gap_us`` defaults to 0 for them, in a co-located pool too) unless the pool
    sets a gap. The model has no dense layer (``n_dense_layers: 0``; see the next test)."""
    role, keys, load = DECODE_POOLS[name]
    fm = _model(role, keys, ALL_MOE, load)
    assert fm.pool.tbo
    for context in (1, 700, 5000):
        f = fm.forward(Shape("decode", fm.query_tokens, 1, context))
        want = _decode_batch_1(fm, context, _training_only)
        assert f.time_s == pytest.approx(want, rel=1e-12)
        assert f.time_s == pytest.approx(f.compute_s + f.comm_s, rel=1e-12)
        assert f.comm_s == pytest.approx((fm.model.n_layers + fm.query_tokens - 1) * (f.dispatch_s + f.combine_s))


def test_decode_batch_1_with_dense_layers() -> None:
    """DeepSeek-V3 as shipped (3 dense layers): the same sum, without what only training keeps."""
    fm = _model("decode", {})
    f = fm.forward(Shape("decode", 1, 1, 700))
    assert f.time_s == pytest.approx(_decode_batch_1(fm, 700, _training_only), rel=1e-12)


def test_overlap_of_hand_made_chains() -> None:
    """Two streams, one task at a time each, the earliest-ready task first (ties: the lower chain).
    Hand-computed makespans:

    * one chain C2 M3 C1: 6 (serial);
    * two chains C2 M3 C1: A.C 0-2, A.M 2-5, B.C 2-4, A.C 5-6, B.M 5-8, B.C 8-9: 9;
    * two chains C1 M1 C1 M1 C1: each chain's compute beside the other's communication, the compute
      stream never idle: 6 (serial: 10);
    * two chains C1 M5 C1: the communication stream the bottleneck, A.M 1-6, B.M 6-11, B.C 11-12: 12.
    """

    def chain(*spec: tuple[str, float]) -> list[Task]:
        return [Task("compute" if k == "C" else "comm", t) for k, t in spec]

    end, busy = overlap([chain(("C", 2), ("M", 3), ("C", 1))])
    assert (end, busy) == (6, {"compute": 3, "comm": 3})
    end, busy = overlap([chain(("C", 2), ("M", 3), ("C", 1)), chain(("C", 2), ("M", 3), ("C", 1))])
    assert (end, busy) == (9, {"compute": 6, "comm": 6})
    tbo = chain(("C", 1), ("M", 1), ("C", 1), ("M", 1), ("C", 1))
    assert overlap([tbo, list(tbo)]) == (6, {"compute": 6, "comm": 4})
    long_comm = chain(("C", 1), ("M", 5), ("C", 1))
    assert overlap([long_comm, list(long_comm)])[0] == 12


def test_overlap_bounds_on_random_chains() -> None:
    """For any chains: each stream's busy time is its tasks' sum; the makespan is at least the
    busier stream and the longest chain, and at most the two streams' sum (the scheduler never leaves
    both streams idle while a task is ready)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        chains = [
            [Task(str(rng.choice(["compute", "comm"])), float(rng.exponential())) for _ in range(rng.integers(1, 9))]
            for _ in range(int(rng.integers(1, 4)))
        ]
        end, busy = overlap(chains)
        for k in ("compute", "comm"):
            assert busy[k] == pytest.approx(sum(t.time_s for c in chains for t in c if t.stream == k))
        longest = max(sum(t.time_s for t in c) for c in chains)
        assert end >= max(busy["compute"], busy["comm"], longest) - 1e-12
        assert end <= busy["compute"] + busy["comm"] + 1e-12


@pytest.fixture(scope="module")
def prefill_model() -> ForwardModel:
    """A prefill unit of 2 nodes: normal kernels on 20 SMs, TP2 attention, two micro-batches."""
    return _model("prefill", {"kernels": "normal", "attention_tp": 2})


def test_two_micro_batches_between_overlap_bounds(prefill_model: ForwardModel) -> None:
    """With two micro-batches a forward lasts at least as long as its busier stream and at most
    their sum (the bounds of ``overlap``); with ``tbo`` a forward is the faster of one batch and two
    micro-batches (one batch runs serially: time == compute + communication). One request per rank
    in decode cannot split."""
    dec, pre = _model("decode", {}), _model("prefill", {})
    gained = 0
    for fm, shape in (
        (prefill_model, Shape("prefill", 512, 2, 0)),
        (prefill_model, Shape("prefill", 2048, 1, 3000)),
        (pre, Shape("prefill", 8192, 4, 1000)),
        (dec, Shape("decode", 8, 8, 2000)),
        (dec, Shape("decode", 256, 256, 2000)),
    ):
        two, one = fm._timed(shape, 2), fm._timed(shape, 1)
        assert max(two.compute_s, two.comm_s) <= two.time_s <= two.compute_s + two.comm_s
        assert one.time_s == pytest.approx(one.compute_s + one.comm_s, rel=1e-12)
        f = fm.forward(shape)
        assert f.time_s == min(one.time_s, two.time_s)
        gained += two.time_s < one.time_s
        assert f.gpu_compute_s.shape == (fm.gpus,)
        assert f.gpu_compute_s.max() <= f.compute_s * (1 + 1e-12)
    # overlapping pays where the all-to-all is worth hiding: a long prefill, a large decode batch
    # (at small decode batches each half reads every weight again, and one batch is faster)
    assert gained >= 2
    f = dec.forward(Shape("decode", 1, 1, 2000))
    assert f.time_s == pytest.approx(f.compute_s + f.comm_s, rel=1e-12)


def test_prefill_time_grows_with_tokens_and_context(prefill_model: ForwardModel) -> None:
    """More new tokens per rank mean more of every kernel's work: doubling them (64 to 4096) makes
    the forward longer each time (the sampled routing's spread, a few percent, is far below a
    doubling). At fixed new tokens a longer cached prefix only lengthens attention: never shorter."""
    times = [prefill_model.forward(Shape("prefill", t, 1, 0)).time_s for t in (64, 128, 256, 512, 1024, 2048, 4096)]
    assert all(b > a for a, b in itertools.pairwise(times)), times
    ctx = [prefill_model.forward(Shape("prefill", 512, 1, c)).time_s for c in (0, 1000, 4000, 16000)]
    assert all(b > a for a, b in itertools.pairwise(ctx)), ctx


def test_grid_brackets_its_input() -> None:
    """``_grid``: exact up to 32 tokens; above, the two neighbouring points of the geometric grid
    ``round(32 x 1.0625^k)`` around the input (both the input when it is a point)."""
    points = sorted({round(EXACT_TOKENS * GRID_RATIO**k) for k in range(260)})
    for t in range(1, 120_000):
        lo, hi = _grid(t)
        if t <= EXACT_TOKENS:
            assert lo == hi == t
            continue
        i = bisect.bisect_left(points, t)
        if points[i] == t:
            assert lo == hi == t
        else:
            assert (lo, hi) == (points[i - 1], points[i]), t
            assert lo < t < hi


def test_moe_part_interpolates_between_grid_points(prefill_model: ForwardModel) -> None:
    """Between grid points the MoE layer's parts are the linear interpolation of the two points'
    (each routed once): every part lies between the points' values, at the token count's share."""
    for tokens in (100, 1000, 5000):
        lo, hi = _grid(tokens)
        assert lo < tokens < hi
        a, b = prefill_model.moe_part(lo, False), prefill_model.moe_part(hi, False)
        m = prefill_model.moe_part(tokens, False)
        w = (tokens - lo) / (hi - lo)
        for x, y, z in ((a.slowest_s, b.slowest_s, m.slowest_s), (a.dispatch_s, b.dispatch_s, m.dispatch_s)):
            assert min(x, y) <= z <= max(x, y)
            assert z == pytest.approx(x + w * (y - x), rel=1e-12)


def test_decode_steps_run_as_cuda_graphs_only_with_low_latency_kernels() -> None:
    """DeepEP's normal dispatch makes the CPU wait for the received counts (not capturable in a CUDA
    graph): a decode step with normal kernels pays the trace's launch gap per kernel, one with
    low-latency kernels none; prefill is eager either way."""
    from sim.chunk.overheads import LAUNCH_GAP_US

    assert _model("decode", {}).params.launch_gap_us == 0.0
    assert _model("decode", {"kernels": "normal"}).params.launch_gap_us == LAUNCH_GAP_US
    assert _model("prefill", {}).params.launch_gap_us == LAUNCH_GAP_US
    co = _model("colocated", {"kernels": "normal"})
    assert co.decode_forwards is None and co.params.launch_gap_us == LAUNCH_GAP_US
    assert _model("colocated", {}).decode_forwards is not None


def test_a_routing_draw_is_kept_by_its_arguments_and_is_the_draw() -> None:
    """Two forward models of the same unit (two points of a sweep that change no routing argument) share
    one draw; a draw kept is the one route_batch makes from those arguments, read-only; another seed or
    load draws again."""
    from sim.serve.forward import _ROUTES

    a, b = _model("prefill", {"kernels": "normal"}), _model("prefill", {"kernels": "normal"})
    ra = a._routing(3000)  # 3000 tokens a rank: more than ROUTING_SAMPLE over the unit, sampled
    assert b._routing(3000) is not ra and b._route(16_384) is a._route(16_384)  # (scaled copies; one draw)
    s = a.model
    fresh = route_batch(
        a.load, a.placement, 16_384, s.n_activated_experts, a.router_groups, s.n_limited_groups,
        a.links.domain, a.pool.shared_as_routed, a.pool.kernels, np.random.default_rng([a.seed, 16_384]),
    )  # fmt: skip
    kept = a._route(16_384)
    for x, y in zip(
        (kept.rows, kept.shared_rows, kept.ib_send, kept.ib_recv, kept.nvl_send, kept.nvl_recv),
        (fresh.rows, fresh.shared_rows, fresh.ib_send, fresh.ib_recv, fresh.nvl_send, fresh.nvl_recv),
        strict=True,
    ):
        assert np.array_equal(x, y) and not x.flags.writeable
    drawn = _model("prefill", {"kernels": "normal"}, expert_load="skewed")._route(16_384)
    assert drawn is not kept and any(v is drawn for v in _ROUTES.values())  # (another load: drawn, and kept)
    assert not np.array_equal(drawn.rows, kept.rows)
