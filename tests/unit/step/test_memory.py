"""Memory per GPU and optimizer traffic: closed forms and scaling laws, and the DeepSeek-V3 default."""

from __future__ import annotations

import pytest

from sim.model.params import device_params, layer_params, stage_params
from sim.model.spec import DEEPSEEK_V3
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import execute
from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import build_schedule
from sim.pipeline.schedules.linear import linear_schedule
from sim.results import metrics
from sim.step.activations import stage_activation_bytes, stage_wgrad_bytes
from sim.step.memory import (
    Memory,
    Precision,
    activation_walk,
    deepseek_v3_default,
    dp_collectives,
    held_at_peak,
    inflight_at_peak,
    memory_per_gpu,
    optimizer_shard,
    optimizer_traffic,
    static_memory,
)

S = DEEPSEEK_V3
P = stage_params(S, range(3, 7), ep=64)


def test_static_memory_closed_form() -> None:
    m = static_memory(P, dp=128, expert_dp=2)
    assert m.params == 2 * P.total
    assert m.grads == 4 * P.total
    assert m.optimizer == pytest.approx(8 * (P.non_expert / 128 + P.expert / 2))
    copy = static_memory(P, dp=128, expert_dp=2, precision=Precision(fp8_weight_copy=True))
    assert copy.params - m.params == pytest.approx(P.fp8_gemm * (1 + 4 / 128**2))


def test_only_the_optimizer_scales_with_dp() -> None:
    a = static_memory(P, dp=8, expert_dp=1)
    b = static_memory(P, dp=16, expert_dp=1)
    c = static_memory(P, dp=8, expert_dp=2)
    assert (a.params, a.grads) == (b.params, b.grads) == (c.params, c.grads)
    assert a.optimizer - b.optimizer == pytest.approx(8 * P.non_expert / 16)
    assert a.optimizer - c.optimizer == pytest.approx(8 * P.expert / 2)
    # non-expert and expert shards alone scale as 1/DP
    only_dense = stage_params(S, range(0, 3), ep=64)
    assert static_memory(only_dense, dp=4, expert_dp=1).optimizer * 4 == pytest.approx(
        static_memory(only_dense, dp=1, expert_dp=1).optimizer
    )


def test_optimizer_shards_add_up_to_the_full_state() -> None:
    dp, edp = 128, 2
    shard = optimizer_shard(P, dp=dp, expert_dp=edp)
    assert shard * dp == pytest.approx(P.non_expert + P.expert * dp / edp)
    # every DP rank owns one shard of each group: dp shards of non-expert, edp of expert
    assert (shard - P.expert / edp) * dp == pytest.approx(P.non_expert)
    t = optimizer_traffic(P, dp=dp, expert_dp=edp)
    assert t.read == pytest.approx(12 * shard) and t.written == pytest.approx(10 * shard)
    assert t.total == pytest.approx(22 * shard)


def test_dp_collective_sizes() -> None:
    c = dp_collectives(P, dp=128, expert_dp=2)
    assert c.grad_reduce_scatter.size_bytes == 4 * P.non_expert
    assert c.param_all_gather.size_bytes == 2 * P.non_expert
    assert c.expert_grad_reduce_scatter.size_bytes == 4 * P.expert
    assert c.expert_param_all_gather.sent_bytes == pytest.approx(2 * P.expert / 2)
    assert c.grad_reduce_scatter.sent_bytes == pytest.approx(4 * P.non_expert * 127 / 128)
    assert dp_collectives(P, dp=1, expert_dp=1).param_all_gather.sent_bytes == 0
    assert len(c.all()) == 4


def _one_device(*acts: str) -> Schedule:
    """A one-stage schedule from notation like 'F0', 'I0', 'W0', 'B1'."""
    return linear_schedule("x", 1, 1 + max(int(a[1:]) for a in acts), [[Action(Op(a[0]), 0, int(a[1:])) for a in acts]])


def test_activation_walk_rules() -> None:
    """F allocates the whole activation, B frees it, I exchanges it for what W reads, W frees that."""
    whole, small, big = {0: 10.0}, {0: 3.0}, {0: 30.0}
    b = activation_walk(_one_device("F0", "F1", "B0", "B1"), 0, whole, whole)
    assert (b.bytes, b.whole, b.awaiting_w) == (20.0, {0: 2}, {})
    split = _one_device("F0", "I0", "F1", "W0", "I1", "W1")
    p = activation_walk(split, 0, whole, small)  # W keeps less: the peak is at F1, one micro-batch past I
    assert (p.bytes, p.whole, p.awaiting_w) == (13.0, {0: 1}, {0: 1})
    p = activation_walk(split, 0, whole, big)
    assert (p.bytes, p.whole, p.awaiting_w) == (40.0, {0: 1}, {0: 1})
    late = _one_device("F0", "F1", "I0", "I1", "W0", "W1")  # no F after the I passes: read after each I
    assert activation_walk(late, 0, whole, big).bytes == 60.0
    assert activation_walk(late, 0, whole, small).bytes == 20.0
    # the unit rule of sim.results: a micro-batch awaiting W counted whole
    assert activation_walk(late, 0, whole, whole).bytes == 20.0


def test_inflight_matches_results_peak() -> None:
    """The order-only peak equals the timed accounting of sim.results (PP+1 for DualPipe)."""
    for name, pp, n in [("dualpipe", 8, 20), ("1f1b", 4, 8), ("zb1p", 4, 8), ("dualpipev", 8, 16)]:
        sched = build_schedule(name, pp, n)
        m = metrics(execute(sched, OpTimes.uniform(pp, 1.0, 2.0, 1.0)))
        for d in range(sched.num_devices):
            assert sum(inflight_at_peak(sched, d).values()) == pytest.approx(m.peak_activations[d])
    dual = build_schedule("dualpipe", 16, 120)
    assert all(sum(inflight_at_peak(dual, d).values()) == 17 for d in range(16))


def test_memory_per_gpu_inflight_forms() -> None:
    kw = {"pp": 16, "ep": 64, "dp": 128, "expert_dp": 2, "tokens": 4096}
    per_stage = memory_per_gpu(S, [0, 15], inflight={0: 16, 15: 1}, **kw)
    bound = memory_per_gpu(S, [0, 15], inflight=17.0, **kw)
    a0, a15 = stage_activation_bytes(S, 0, 16, 4096), stage_activation_bytes(S, 15, 16, 4096)
    assert per_stage.activations_peak == pytest.approx(16 * a0 + a15)
    assert bound.activations_peak == pytest.approx(17 * a15)
    assert per_stage.params == bound.params == 2 * device_params(S, [0, 15], pp=16, ep=64).total
    waiting = memory_per_gpu(S, [0, 15], inflight={0: 16}, awaiting_w={15: 2}, **kw)
    assert waiting.activations_peak == pytest.approx(16 * a0 + 2 * stage_wgrad_bytes(S, 15, 16, 4096))
    with pytest.raises(ValueError):
        memory_per_gpu(S, [0, 15], inflight={3: 1}, **kw)
    with pytest.raises(ValueError):
        memory_per_gpu(S, [0, 15], inflight={0: 1}, awaiting_w={3: 1}, **kw)


def test_memory_to_dict_in_gib() -> None:
    """Memory per GPU is given in GiB, the unit an "80 GB" HBM's capacity is in."""
    gib = 1 << 30
    m = Memory(params=1 * gib, grads=2 * gib, optimizer=3 * gib, activations_peak=4 * gib)
    assert m.to_dict() == {"params": 1, "grads": 2, "optimizer": 3, "activations_peak": 4, "total": 10}


def test_deepseek_v3_default_fits_in_80_gb() -> None:
    """PP16 DualPipe (rank r: stages r and 15-r), EP64, DP128, expert DP 2, 4096 tokens/micro-batch.

    Rank 0 peaks in the steady state, 16 whole micro-batches of stage 0 and 1 of stage 15, none
    awaiting W. Rank 7 peaks in DualPipe's last phases holding only micro-batches awaiting W, 4 of
    stage 7 and 4 of stage 8 (4 MoE layers each): 8 x what W reads of one, which is 2.17 times a whole
    micro-batch (sim/step/activations.py), so more than the 17 whole micro-batches of its steady state
    (tests/theory/test_memory_table.py: DualPipe's peak is max(PP+1, PP-1+r, r PP/2) for W/whole = r).
    """
    table = {r: deepseek_v3_default(S, r) for r in range(16)}
    for r in (0, 7):
        print(f"rank {r}:", {k: round(v, 2) for k, v in table[r].to_dict().items()})
    dual = build_schedule("dualpipe", 16, 120)
    whole = {st: stage_activation_bytes(S, st, 16, 4096) for st in range(16)}
    wgrad = {st: stage_wgrad_bytes(S, st, 16, 4096) for st in range(16)}
    p0, p7 = held_at_peak(dual, 0, whole, wgrad), held_at_peak(dual, 7, whole, wgrad)
    assert (p0.whole, p0.awaiting_w) == ({0: 16, 15: 1}, {})
    assert (p7.whole, p7.awaiting_w) == ({}, {7: 4, 8: 4})
    assert table[0].activations_peak == pytest.approx(16 * whole[0] + whole[15])
    assert table[7].activations_peak == pytest.approx(4 * wgrad[7] + 4 * wgrad[8]) == pytest.approx(8 * wgrad[7])
    assert table[0].to_dict()["total"] == pytest.approx(56.93, abs=0.01)  # the docstring's table (GiB)
    assert table[7].to_dict()["total"] == pytest.approx(65.17, abs=0.01)
    assert max(m.total for m in table.values()) == table[7].total < 80 * 2**30  # the H800's 80 GiB
    # rank 7 holds 8 MoE layers: 4 experts of each per GPU, replicated over expert DP 2
    assert table[7].optimizer == pytest.approx(8 * (8 * layer_params(S, 3).non_expert / 128 + 8 * 4 * 44040192 / 2))


@pytest.mark.parametrize("name", ["1f1b", "zb1p", "interleaved-1f1b", "dualpipe", "dualpipev"])
@pytest.mark.parametrize("pp", [4, 8])
def test_the_levels_in_time_peak_where_the_walk_does(name: str, pp: int) -> None:
    """activation_levels (a trace's memory counter) and activation_walk (the peak) apply one rule: on
    every device the highest level is the walk's peak, and after the last action nothing is held."""
    from sim.pipeline.schedules import build_schedule
    from sim.step.memory import activation_levels, activation_walk

    sched = build_schedule(name, pp, 2 * pp, 2)
    for d in range(sched.num_devices):
        mine = [s for s, dev in enumerate(sched.stage_device) if dev == d]
        whole = {s: 1.0 + 0.25 * s for s in mine}
        wgrad = {s: 2.17 * (1.0 + 0.25 * s) for s in mine}
        levels = activation_levels(sched, d, whole, wgrad)
        assert max(h for h, _ in levels) == pytest.approx(activation_walk(sched, d, whole, wgrad).bytes, rel=1e-12)
        assert levels[-1][1] == pytest.approx(0.0, abs=1e-9)
        assert all(low <= high + 1e-12 for high, low in levels)


def test_a_walk_kept_for_the_same_schedule_is_the_walk_and_a_copy() -> None:
    """The schedule built again for the same arguments is the same object, and its walk, kept, equals a
    fresh one; what the caller gets is its own (changing it changes no later answer)."""
    from sim.step.memory import _walk

    schedule = build_schedule("dualpipe", 8, 20)
    assert build_schedule("dualpipe", 8, 20) is schedule
    assert build_schedule("dualpipe", 8, 22) is not schedule
    mine = [s for s, d in enumerate(schedule.stage_device) if d == 3]
    whole = {s: 1.0 + s for s in mine}
    wgrad = {s: 0.5 * s for s in mine}
    first = activation_walk(schedule, 3, whole, wgrad)
    assert first == _walk(schedule, 3, whole, wgrad)
    first.whole.clear()
    again = activation_walk(schedule, 3, whole, wgrad)
    assert again == _walk(schedule, 3, whole, wgrad) and again.whole
    other = activation_walk(schedule, 3, {s: 2.0 for s in mine}, wgrad)  # other bytes: walked anew
    assert other == _walk(schedule, 3, {s: 2.0 for s in mine}, wgrad)
