"""What-ifs on the default step: each held to what its mechanism implies, checked from the run's own
figures, not to a band drawn around the ratio the code printed.

The tools, used case by case:

* **DeepEP at its bottleneck.** A dispatch or combine moves its bytes at the rate of its tightest
  limit: the busiest GPU's IB bytes over min(NIC, channels x per-channel RDMA rate), or its NVLink
  bytes over min(NVLink, channels x per-channel NVLink rate) (no channel limits on a co-processor),
  ending within its longest path's latency of that bound (:func:`deepep_at_bound`). A what-if that
  changes NICs, SMs, the node limit or EP changes the bound by exactly the ratio of bytes or rates.
* **The envelope of times alone.** With the same schedule and replica sets, a step is a longest path
  through the same graph of actions, sends and ZeRO-1 collectives. Were every element to take its
  time alone, scaling each by a factor in ``[lo, hi]`` would scale the step within ``[lo, hi]``
  (max-plus: every path's sum scales within it). With shared contention each element also loses time
  to sharing, which no envelope bounds in general (max-min rates are not monotone in capacities), so
  holding the shared step to the envelope of times alone (:func:`envelope`) is the claim that sharing
  does not overturn the what-if; the component the mechanism acts on is asserted on its own as well.
* **Work alone bounds the step from below.** Sharing only slows (``test_contention``), bubbles are
  not negative, and the ZeRO-1 phase follows the pipeline: ``step >= a rank's actions alone`` and
  ``step >= a chain of dependent actions alone`` (:func:`busy_alone`).
* **Accounting.** ``F + B + W + F&B + bubble + optimizer + DP = step`` on every rank, so where only
  one term can change, the step changes by exactly that term.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from sim.moe.deepep import message_flows
from sim.network.coflow import link_loads
from sim.network.tolerance import COMPLETION_RTOL
from sim.pipeline.execute import rank_coflow
from sim.pipeline.ops import Op
from sim.run import TrainingRun
from sim.step.zero1 import DpModel
from tests.integration.training.test_step import ROOT, step

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

FT2 = str(ROOT / "topologies" / "deepseek-v3-ft2.yaml")
DATASHEET = str(ROOT / "calibrate" / "profiles" / "h800-datasheet.json")
_ALONE: dict[int, dict[tuple[Any, ...], float]] = {}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    return step(tmp_path_factory)


# ------------------------------------------------------------------------------------------ helpers


def ratio(new: TrainingRun, base: TrainingRun) -> float:
    return new.result.step_time_s / base.result.step_time_s


def alone(run: TrainingRun) -> dict[tuple[Any, ...], float]:
    """Every element of the step's graph with its time alone: each action's chunk (its DeepEP phases
    alone), each rank-to-rank send coflow, each replica set's reduce-scatter, optimizer and all-gather."""
    hit = _ALONE.get(id(run))
    if hit is not None:
        return hit
    st = run.step
    pipe = st.pipelines[0]
    sched = pipe.run.schedule
    out: dict[tuple[Any, ...], float] = {}
    for d, actions in enumerate(sched.actions):
        for pos, action in enumerate(actions):
            out[("action", d, pos)] = pipe.source.chunk(action).span_s
    lay = st.spec.inputs.layout
    for src, dst in sorted({(t.src, t.dst) for t in pipe.run.recorder.transfers}):
        _, _, time_alone, latency = rank_coflow(
            st.spec.topology, lay.rank_gpus(src), lay.rank_gpus(dst), st.spec.activation_bytes, None
        )
        out[("send", src, dst)] = time_alone + latency
    inp = st.spec.inputs
    model = DpModel(st.spec.dp, inp.model, lay, sched, st.spec.topology, inp.cost.memory_time)
    for ph in st.dp:
        out[("reducescatter", ph.rset.ranks)] = model.time("reducescatter", ph.rset, ph.params)
        out[("allgather", ph.rset.ranks)] = model.time("allgather", ph.rset, ph.params)
        out[("optimizer", ph.rset.ranks)] = ph.optimizer_s
    _ALONE[id(run)] = out
    return out


def envelope(new: TrainingRun, base: TrainingRun, kinds: tuple[str, ...] | None = None) -> tuple[float, float]:
    """(lo, hi): the smallest and largest ratio of an element's time alone in ``new`` to the same
    element's in ``base`` (the same graph: same schedule, ranks and replica sets)."""
    a, b = alone(new), alone(base)
    assert a.keys() == b.keys()
    ratios = [a[k] / b[k] for k in b if b[k] > 0 and (kinds is None or k[0] in kinds)]
    assert all(a[k] == 0 for k in b if b[k] == 0)
    return min(ratios), max(ratios)


def busy_alone(run: TrainingRun, device: int) -> float:
    """The rank's actions back to back, each taking its time alone: a lower bound on the step."""
    return sum(v for k, v in alone(run).items() if k[0] == "action" and k[1] == device)


def most_work(run: TrainingRun) -> float:
    return max(busy_alone(run, d) for d in range(run.step.spec.inputs.layout.devices))


def fb_alone(run: TrainingRun, device: int) -> list[float]:
    """The rank's F&B pairs' times alone."""
    acts = run.step.pipelines[0].run.schedule.actions[device]
    return [v for k, v in alone(run).items() if k[0] == "action" and k[1] == device and acts[k[2]].op is Op.FB]


def compute_work(run: TrainingRun) -> dict[tuple[int, int], float]:
    """Per action: the summed durations alone of its chunk's compute tasks (both compute streams)."""
    pipe = run.step.pipelines[0]
    sched = pipe.run.schedule
    return {
        (d, pos): sum(t.work for t in pipe.source.chunk(a).tasks if t.stream != "comm")
        for d, actions in enumerate(sched.actions)
        for pos, a in enumerate(actions)
    }


def counts(run: TrainingRun, device: int) -> dict[Op, int]:
    acts = run.step.pipelines[0].run.schedule.actions[device]
    return {op: sum(a.op is op for a in acts) for op in Op}


PHASES = (("dispatch", False), ("dispatch", True), ("combine", True))  # forward, cached (backward), combine


class Phase(NamedTuple):
    data: float  # the data part of the phase alone (s)
    bound: float  # bytes over the tightest rate (s)
    latency: float  # the phase's largest path latency (s)
    binds: str  # ib | nvlink


def deepep_at_bound(run: TrainingRun) -> dict[tuple[str, bool], Phase]:
    """Per DeepEP phase of the step's chunks, its data time alone and its bound: the busiest GPU's IB
    bytes over min(NIC, channels x RDMA rate per channel) or its NVLink bytes over min(NVLink, channels
    x NVLink rate per channel), whichever is longer."""
    st = run.step
    src = st.pipelines[0].source
    model = st.spec.inputs.model
    layer = next(i for i in range(model.n_layers) if model.is_moe(i))
    traffic = src.routing.traffic((layer,), (0, 0, 0), 0)[layer]
    kernel = st.spec.inputs.kernel
    node = st.spec.topology.spec.node
    nic, nvlink = node.nic_Gbps / 8 * 1e9, node.nvlink_GBps * 1e9
    gpus = st.spec.inputs.layout.ep_group(0, 0)
    out = {}
    for phase, cached in PHASES:
        ib_rate = nic if kernel.coprocessor else min(nic, kernel.channels * kernel.rdma_rate(phase, cached) * 1e9)
        nv_rate = nvlink if kernel.coprocessor else min(nvlink, kernel.channels * kernel.nvlink_channel_GBps * 1e9)
        ib = float(traffic.ib_bytes_per_gpu(phase).max()) / ib_rate
        nv = float(traffic.nvlink_bytes_per_gpu(phase).max()) / nv_rate
        s, d, nbytes, _, _ = message_flows(traffic, gpus, phase)
        latency = link_loads(st.spec.topology, s, d, nbytes)[2]
        data = src.timer(0).comm.time(traffic, phase, cached).data_s
        out[(phase, cached)] = Phase(data, max(ib, nv), latency, "ib" if ib >= nv else "nvlink")
    return out


def assert_deepep_at_bound(run: TrainingRun) -> dict[tuple[str, bool], Phase]:
    """Every phase ends between its bound and its bound plus its longest path's latency."""
    phases = deepep_at_bound(run)
    for key, p in phases.items():
        assert p.bound <= p.data <= (p.bound + p.latency) * (1 + 1e-12), key
    return phases


def gb(run: TrainingRun, key: str) -> float:
    return float(run.step.stats["coflow_GB"].get(key, 0.0))


# ------------------------------------------------------------------------------ the SM split and DeepEP


def test_coprocessor_gives_compute_every_sm_and_deepep_the_nic(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """All 132 SMs compute and DeepEP runs off the SMs. Compute: no op gains more than its SMs, so
    every chunk's compute work falls by a factor in [112/132, 1]. DeepEP: without channel limits each
    phase runs at the NIC (dispatch 44.6 -> 50 GB/s, combine 43.8 -> 50; the cached dispatch's 10
    channels already outran the NIC). Sends and ZeRO-1 are unchanged, so nothing is slower alone: the
    step falls, by no more than the fastest chunk's gain."""
    new = step(tmp_path_factory, comm__coprocessor=True)
    sms = base.step.spec.inputs.compute_sms / new.step.spec.inputs.compute_sms
    assert sms == pytest.approx(112 / 132)
    w0, w1 = compute_work(base), compute_work(new)
    assert all(sms - 1e-12 <= w1[k] / w0[k] <= 1 + 1e-12 for k in w0 if w0[k] > 0)
    p0, p1 = assert_deepep_at_bound(base), assert_deepep_at_bound(new)
    nic = base.step.spec.topology.spec.node.nic_Gbps / 8  # GB/s
    kernel = base.step.spec.inputs.kernel
    for (phase, cached), p in p1.items():
        channels = kernel.channels * kernel.rdma_rate(phase, cached)
        assert p.bound / p0[(phase, cached)].bound == pytest.approx(min(channels, nic) / nic, rel=1e-12)
    lo, hi = envelope(new, base)
    assert hi == pytest.approx(1.0) and lo >= sms
    assert lo <= ratio(new, base) <= hi


def test_fewer_deepep_sms_starve_the_all_to_all(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    """12 SMs: 6 channels drive 6 x 4.46 = 26.8 GB/s, so every phase is channel-bound and its data time
    grows by 10/6 (the cached dispatch, NIC-bound at 20 SMs, by 50/34.2); compute gets 120 SMs (work
    x [112/120, 1]). The F&B pairs, whose all-to-all was 89% busy, become communication-bound and
    lengthen: those are most of the step, so it grows, within the envelope."""
    new = step(tmp_path_factory, comm__sms=12)
    kernel = new.step.spec.inputs.kernel
    p0, p1 = assert_deepep_at_bound(base), assert_deepep_at_bound(new)
    nic = base.step.spec.topology.spec.node.nic_Gbps / 8
    for (phase, cached), p in p1.items():
        assert p.binds == "ib"
        rate = kernel.rdma_rate(phase, cached)
        assert p.bound / p0[(phase, cached)].bound == pytest.approx(min(10 * rate, nic) / (6 * rate), rel=1e-12)
    sms = base.step.spec.inputs.compute_sms / new.step.spec.inputs.compute_sms
    w0, w1 = compute_work(base), compute_work(new)
    assert all(sms - 1e-12 <= w1[k] / w0[k] <= 1 + 1e-12 for k in w0 if w0[k] > 0)
    a0, a1 = alone(base), alone(new)
    sched = base.step.pipelines[0].run.schedule
    fb = [("action", d, p) for d, acts in enumerate(sched.actions) for p, a in enumerate(acts) if a.op is Op.FB]
    assert all(a1[k] > a0[k] for k in fb)
    for x, y in zip(base.result.ranks, new.result.ranks, strict=True):
        assert y.ep_comm_exposed_s > x.ep_comm_exposed_s and y.overlapped_fb_s > x.overlapped_fb_s
    lo, hi = envelope(new, base)
    assert 1.0 < ratio(new, base) <= hi and lo <= ratio(new, base)


# ------------------------------------------------------------------------------------------ the NIC


def test_half_the_nic_rate(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    """IB at 200 Gb/s (25 GB/s): below every phase's channel rate, so every phase is NIC-bound, its data
    time IB bytes / 25 GB/s; sends and IB rings take up to twice as long alone, nothing takes less:
    the step grows (within the envelope), and every rank's exposed all-to-all grows."""
    new = step(tmp_path_factory, cluster__nic_Gbps=200)
    assert {p.binds for p in assert_deepep_at_bound(new).values()} == {"ib"}
    lo, hi = envelope(new, base)
    assert lo == pytest.approx(1.0) and hi <= 2.0 * (1 + COMPLETION_RTOL)  # alone: flows may end 1% early
    assert lo <= ratio(new, base) <= hi
    for x, y in zip(base.result.ranks, new.result.ranks, strict=True):
        assert y.ep_comm_exposed_s > x.ep_comm_exposed_s


def test_twice_the_nic_rate_helps_only_what_the_nic_bound(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """IB at 800 Gb/s: the fresh dispatch and the combine are bound by their 10 channels (44.6 and 43.8
    GB/s, under the 400 Gb/s NIC already), so their times are unchanged exactly; only the cached
    dispatch gains (NIC 50 -> its channels' 57 GB/s). Sends and IB rings are faster alone (at most
    twice), nothing is slower: the step falls, within the envelope."""
    new = step(tmp_path_factory, cluster__nic_Gbps=800)
    p0, p1 = assert_deepep_at_bound(base), assert_deepep_at_bound(new)
    assert p1[("dispatch", False)].data == p0[("dispatch", False)].data
    assert p1[("combine", True)].data == p0[("combine", True)].data
    rate = new.step.spec.inputs.kernel.rdma_rate("dispatch", True) * 10
    assert p1[("dispatch", True)].bound / p0[("dispatch", True)].bound == pytest.approx(50 / rate, rel=1e-12)
    lo, hi = envelope(new, base)
    assert hi == pytest.approx(1.0) and lo >= 0.5 / (1 + COMPLETION_RTOL)  # alone: flows may end 1% early
    assert lo <= ratio(new, base) <= hi


# ------------------------------------------------------------------------------------------ the node limit


@pytest.mark.parametrize("limit", [2, 8])
def test_node_limit_scales_the_ib_bytes_by_the_routed_nodes(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun, limit: int
) -> None:
    """Balanced routing sends each token to ``M`` of the 8 nodes' expert groups, one of them its own
    with probability M/8: M x 7/8 IB messages per token, so DeepEP's IB bytes scale by exactly M/4
    while its NVLink bytes (8 experts on distinct GPUs, wherever they are) do not change. Each phase's
    time follows its bound (IB-bound at M = 8; at M = 2 NVLink binds): every chunk alone moves one way
    only, and so does the step."""
    new = step(tmp_path_factory, model__n_limited_groups=limit)
    for link in ("nic_up", "nic_down"):
        assert gb(new, f"deepep@{link}") == pytest.approx(gb(base, f"deepep@{link}") * limit / 4, rel=1e-12)
    assert gb(new, "deepep@nv_up") == pytest.approx(gb(base, "deepep@nv_up"), rel=1e-12)
    phases = assert_deepep_at_bound(new)
    assert {p.binds for p in phases.values()} == {"nvlink" if limit == 2 else "ib"}
    lo, hi = envelope(new, base)
    r = ratio(new, base)
    if limit < 4:
        assert hi == pytest.approx(1.0) and lo <= r < 1.0
    else:
        assert lo == pytest.approx(1.0) and 1.0 < r <= hi


# ------------------------------------------------------------------------------------------ NVLink


def test_faster_nvlink_speeds_up_the_nvlink_bound_collectives_alone_but_not_the_step(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """NVLink at 450 GB/s. DeepEP's NVLink traffic is capped by its channels (10 x 16 GB/s = the old
    160), and sends use IB, so every chunk and send is unchanged. ZeRO-1: rank 0's replica set holds the
    embedding and the head (mostly non-expert weights), reduced hierarchically with a long NVLink step:
    its collectives alone take less, but no less than 160/450 of their time (only the NVLink step
    shrinks). The middle sets' collectives are bound by their experts' rings over IB: their all-gather
    alone is unchanged. Under sharing, set (0, 15) runs below its cap on the leaf ports it shares with
    set (1, 14), where NVLink does not help, so its realized time falls less than its time alone; and
    the step ends with a middle set's all-gather, whose collectives are unchanged: the step is the
    same."""
    fast = step(tmp_path_factory, cluster__nvlink_GBps=450)
    a0, a1 = alone(base), alone(fast)
    for k in a0:
        if k[0] in ("action", "send"):
            assert a1[k] == a0[k]
    edge, middle = (0, 15), (7, 8)
    gain_alone = sum(a0[(kind, edge)] - a1[(kind, edge)] for kind in ("reducescatter", "allgather"))
    speedup = base.step.spec.topology.spec.node.nvlink_GBps / fast.step.spec.topology.spec.node.nvlink_GBps
    for kind in ("reducescatter", "allgather"):  # only the NVLink part shrinks, by 160/450 at most
        assert speedup * a0[(kind, edge)] <= a1[(kind, edge)] < a0[(kind, edge)]
    assert a1[("allgather", middle)] == a0[("allgather", middle)]
    assert a1[("reducescatter", middle)] >= a0[("reducescatter", middle)]  # an IB-bound ring gains nothing
    assert base.step.stats["coflow_delay_ms"]["zero1@leaf_up"] > 0  # where set (0, 15) waits
    gain = base.result.ranks[0].dp_comm_exposed_s - fast.result.ranks[0].dp_comm_exposed_s
    assert 0 < gain < gain_alone
    # the step ends with the last set's all-gather; that set's reduce-scatter and all-gather are unchanged
    last = max(range(16), key=lambda d: base.step.timelines[d].end)
    assert fast.step.timelines[last].end == pytest.approx(fast.result.step_time_s, rel=1e-15)
    assert fast.step.timelines[last].reduce_scatter == base.step.timelines[last].reduce_scatter
    assert fast.step.timelines[last].all_gather == base.step.timelines[last].all_gather
    assert fast.result.step_time_s == base.result.step_time_s


# ------------------------------------------------------------------------------------------ EP and routing


def ib_messages_per_token(run: TrainingRun) -> float:
    """IB messages per routed token: one per remote node the token's experts sit on."""
    model = run.step.spec.inputs.model
    layer = next(i for i in range(model.n_layers) if model.is_moe(i))
    traffic = run.step.pipelines[0].source.routing.traffic((layer,), (0, 0, 0), 0)[layer]
    return float(traffic.ib.sum()) / (traffic.spec.ep * run.step.spec.inputs.layout.tokens)


def expert_ring_volume(run: TrainingRun, device: int) -> float:
    """Expert-gradient bytes a GPU of ``device`` puts on its experts' rings: (n-1)/n of its experts'
    gradients, n the replicas of each expert in its replica set."""
    from sim.step.zero1 import ReplicaSet, rank_params

    st = run.step
    lay, sched = st.spec.inputs.layout, st.spec.schedule
    rset = ReplicaSet.of(lay, sched, device)
    n = rset.expert_dp
    return (n - 1) / n * rank_params(st.spec.inputs.model, lay, sched, device).expert


@pytest.mark.parametrize("ep", [32, 128])
def test_ep_size_moves_the_ib_bytes_and_the_expert_rings(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun, ep: int
) -> None:
    """EP 32 / 128: an EP group spans N = EP/8 nodes and each of a token's M = 4 expert groups sits on
    its own node, so a token sends M (N-1)/N IB messages: 3.0 at EP32, 3.5 at EP64, 3.75 at EP128;
    DeepEP's IB bytes and its channel-bound phases scale by that ratio. ZeRO-1: an expert has 64/EP
    times the replicas (x2 for DualPipe's mirror) and a GPU 64/EP times the experts: the experts' rings
    carry (n-1)/n of a GPU's expert gradients: x7/3 at EP32, x1/3 at EP128, and the middle sets'
    (all experts) reduce-scatter alone and exposed DP move with it. The two pull opposite ways: the
    step stays within the envelope of its elements alone, with no direction."""
    new = step(tmp_path_factory, workload__ep=ep)
    nodes = ep // 8
    m = new.step.spec.inputs.model.n_limited_groups
    assert ib_messages_per_token(base) == pytest.approx(m * 7 / 8, rel=1e-12)
    assert ib_messages_per_token(new) == pytest.approx(m * (nodes - 1) / nodes, rel=1e-12)
    scale = ib_messages_per_token(new) / ib_messages_per_token(base)
    assert gb(new, "deepep@nic_up") == pytest.approx(gb(base, "deepep@nic_up") * scale, rel=1e-12)
    p0, p1 = assert_deepep_at_bound(base), assert_deepep_at_bound(new)
    for key, p in p1.items():
        assert p.binds == "ib" and p.bound / p0[key].bound == pytest.approx(scale, rel=1e-12)
    middle = (7, 8)
    volume = expert_ring_volume(new, 7) / expert_ring_volume(base, 7)
    assert volume == pytest.approx(7 / 3 if ep == 32 else 1 / 3)
    rs = alone(new)[("reducescatter", middle)], alone(base)[("reducescatter", middle)]
    assert rs[0] > rs[1] if ep == 32 else rs[0] < rs[1]
    for d in middle:
        exposed = new.result.ranks[d].dp_comm_exposed_s, base.result.ranks[d].dp_comm_exposed_s
        assert exposed[0] > exposed[1] if ep == 32 else exposed[0] < exposed[1]
    lo, hi = envelope(new, base)
    assert lo <= ratio(new, base) <= hi


def test_two_layer_fat_tree_slows_deepep_alone_and_shares_its_leaf_uplinks(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """One plane, ECMP: an EP group of 8 nodes spans two leaves and 4/7 of its IB bytes cross the leaf
    uplinks (``test_contention``), where hashing collides flows: every DeepEP phase alone takes longer
    than its NIC/channel bound, hence than on the multi-plane tree, which keeps a group's NICs of one
    plane under one leaf and runs at the bound. No chunk is faster alone, and under sharing the phases
    also wait on the uplinks the sends cross: every rank's exposed all-to-all grows, and the step."""
    new = step(tmp_path_factory, cluster__topology=FT2)
    p0, p1 = assert_deepep_at_bound(base), deepep_at_bound(new)
    for key, p in p1.items():
        assert p.data > p.bound + p.latency and p.data > p0[key].data
    lo, _ = envelope(new, base, kinds=("action",))
    assert lo == pytest.approx(1.0)
    assert new.step.stats["coflow_delay_ms"]["deepep@leaf_up"] > 0
    for x, y in zip(base.result.ranks, new.result.ranks, strict=True):
        assert y.ep_comm_exposed_s > x.ep_comm_exposed_s
    assert ratio(new, base) > 1.0


def test_datasheet_profile_speeds_every_chunk_and_leaves_communication(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """The datasheet profile times every op at 70% of the roofline, faster than DeepSeek's kernels in
    the H800 profile (slow wgrads, router, casts): every chunk's compute work alone falls, while the
    DeepEP phases, sends and collectives are the same (communication does not depend on the profile).
    Only the optimizer, one HBM-bound kernel per replica set, is slower alone, and a path through the
    step holds it once: the step can grow by no more than that, and falls by the chunks' gain."""
    new = step(tmp_path_factory, profile=DATASHEET)
    assert deepep_at_bound(new) == deepep_at_bound(base)
    w0, w1 = compute_work(base), compute_work(new)
    assert all(w1[k] < w0[k] for k in w0 if w0[k] > 0)
    lo, hi = envelope(new, base, kinds=("action",))
    assert hi < 1.0
    assert envelope(new, base, kinds=("send", "reducescatter", "allgather")) == (1.0, 1.0)
    a0, a1 = alone(base), alone(new)
    # max-plus: nothing on a path is slower alone but its one optimizer
    slower = max(a1[k] - a0[k] for k in a0 if k[0] == "optimizer")
    r = ratio(new, base)
    assert lo <= r and new.result.step_time_s <= base.result.step_time_s + slower
    assert r < 1.0


# ------------------------------------------------------------------------------------------ schedules


def test_one_f_one_b_is_bound_by_its_last_stage(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    """1F1B overlaps nothing: every F and B runs its all-to-all exposed (no F&B pairs), and the last
    stage (head + MTP) has the longest F and B of all, so it sets the pace. A dependency chain bounds the
    step from below: micro-batch 0's forward through ranks 0..14 (the fill), every action of the last
    rank, the last micro-batch's backward back through ranks 14..0 (the drain), then a reduce-scatter,
    the optimizer and an all-gather, all at their times alone. That chain alone already exceeds the
    DualPipe step. Once started, the last rank never waits (the others keep ahead of it), so
    the step exceeds the chain only by the chain's sends and the collectives' sharing."""
    new = step(tmp_path_factory, pipeline__schedules=["1f1b"])
    assert all(x.overlapped_fb_s == 0 for x in new.result.ranks)
    pipe = new.step.pipelines[0]
    sched = pipe.run.schedule
    last = sched.num_devices - 1
    f = {d: next(pipe.source.chunk(a).span_s for a in acts if a.op is Op.F) for d, acts in enumerate(sched.actions)}
    b = {d: next(pipe.source.chunk(a).span_s for a in acts if a.op is Op.B) for d, acts in enumerate(sched.actions)}
    assert max(f, key=f.__getitem__) == last and max(b, key=b.__getitem__) == last
    fill = sum(f[d] for d in range(last))
    drain = sum(b[d] for d in range(last))
    a = alone(new)
    dp = max(a[k] for k in a if k[0] == "reducescatter") + max(
        a[("optimizer", k[1])] + a[("allgather", k[1])] for k in a if k[0] == "allgather"
    )
    chain = fill + busy_alone(new, last) + drain + dp
    step_s = new.result.step_time_s
    assert chain <= step_s
    assert chain > base.result.step_time_s
    mine = sorted((s.start, s.end) for s in pipe.run.recorder.spans if s.device == last)
    assert sum(e - s for s, e in mine) == pytest.approx(mine[-1][1] - mine[0][0], rel=1e-12)  # never idles
    sends = 2 * last * max(t.arrival - t.start for t in pipe.run.recorder.transfers)
    dp_real = max(t.end for t in new.step.timelines) - max(t.pipeline_end for t in new.step.timelines)
    assert step_s - chain <= sends + (dp_real - dp)


def test_dualpipev_runs_dualpipes_work_on_half_the_ranks(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """DualPipeV folds DualPipe's ranks d and 15-d onto one rank of twice the GPUs (8 ranks of 256,
    60 micro-batches per pipeline): rank 0 runs exactly DualPipe's rank 0 actions, the same chunks
    alone. What changes is the sharing: a replica set is one rank, whose 32 nodes of a plane sit under
    one leaf, so ZeRO-1 puts no byte on a leaf port and rank 0's collectives take their time alone
    (DualPipe's set (0, 15) lost time on the leaf ports it shares with set (1, 14)). Same work, less
    exposed DP: the step falls."""
    new = step(tmp_path_factory, pipeline__schedules=["dualpipev"])
    assert new.step.spec.inputs.layout.gpus_per_rank == 2 * base.step.spec.inputs.layout.gpus_per_rank
    assert counts(new, 0) == counts(base, 0)
    assert busy_alone(new, 0) == pytest.approx(busy_alone(base, 0), rel=1e-12)
    assert gb(new, "zero1@leaf_up") == 0 and gb(base, "zero1@leaf_up") > 0
    a = alone(new)
    rset = new.step.dp[0].rset.ranks
    collectives = a[("reducescatter", rset)] + a[("allgather", rset)]
    lost = sum(v for k, v in new.step.stats["coflow_delay_ms"].items() if k.startswith("zero1@")) / 1e3
    exposed = new.result.ranks[0].dp_comm_exposed_s
    assert collectives - 1e-9 <= exposed <= collectives + lost + 1e-9  # 1e-9: the clock's float rounding
    assert exposed < base.result.ranks[0].dp_comm_exposed_s
    assert ratio(new, base) < 1.0


# ------------------------------------------------------------------------------------------ batch and scale


def test_half_the_global_batch_removes_exactly_its_f_and_b_pairs(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """7680 sequences: 60 micro-batches per pipeline instead of 120. Rank 0 (the critical rank: its F&B
    pairs run back to back) runs each micro-batch's F and B once, so it loses exactly 60 F&B pairs;
    its ramp-up and drain (the F-, B- and W-only actions, the bubble) and the ZeRO-1 phase are the same
    actions in the same circumstances. By the accounting identity the step falls by exactly the F&B
    time rank 0 lost (sharing at the joins differs by microseconds)."""
    half = step(tmp_path_factory, training__global_batch=7680)
    c0, c1 = counts(base, 0), counts(half, 0)
    assert c1[Op.FB] == c0[Op.FB] - 60 and {op: n for op, n in c1.items() if op is not Op.FB} == {
        op: n for op, n in c0.items() if op is not Op.FB
    }
    x, y = base.result.ranks[0], half.result.ranks[0]
    for field in ("forward_only_s", "backward_only_s", "weight_only_s", "optimizer_s", "dp_comm_exposed_s"):
        assert getattr(y, field) == pytest.approx(getattr(x, field), rel=1e-9), field
    assert y.bubble_s == pytest.approx(x.bubble_s, abs=1e-5)
    removed = x.overlapped_fb_s - y.overlapped_fb_s
    assert base.result.step_time_s - half.result.step_time_s == pytest.approx(removed, abs=1e-5)


def test_half_the_gpus_doubles_the_steady_state(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    """1024 GPUs: 64 per rank (one EP group), DP 64, so 240 micro-batches per pipeline on the same
    chunks (4096 tokens per GPU, EP64). Every rank runs the same ramp-up and drain plus 120 more F&B
    pairs (60 of each of its two pairs). Rank 0's work alone bounds the step from below; the fill, the
    drain and the ZeRO-1 phase are not doubled, so the step stays under twice the base."""
    new = step(tmp_path_factory, training__gpus=1024)
    lay = new.step.spec.inputs.layout
    assert (lay.gpus_per_rank, lay.dp, lay.microbatches) == (64, 64, 240)
    for d in range(16):
        c0, c1 = counts(base, d), counts(new, d)
        assert c1[Op.FB] == c0[Op.FB] + 120
        assert all(c1[op] == c0[op] for op in Op if op is not Op.FB)
    extra = sum(fb_alone(new, 0)) - sum(fb_alone(base, 0))
    kinds = sorted(set(fb_alone(base, 0)))
    assert len(kinds) == 2 and extra == pytest.approx(60 * sum(kinds), rel=1e-12)
    assert busy_alone(new, 0) == pytest.approx(busy_alone(base, 0) + extra, rel=1e-12)
    r = ratio(new, base)
    assert busy_alone(new, 0) / base.result.step_time_s <= r < 2.0


def test_pp32_puts_twice_the_micro_batches_through_the_head_stage(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """PP 32: 64 GPUs per rank, 240 micro-batches per pipeline, 2 layers per stage; rank 0 still holds
    the embedding and the head + MTP stage, whose cost per micro-batch does not shrink with the layers
    per stage, for twice the micro-batches. Rank 0's work alone exceeds the whole base step, so the
    step grows."""
    new = step(tmp_path_factory, pipeline__pp=32)
    lay = new.step.spec.inputs.layout
    assert (lay.gpus_per_rank, lay.microbatches) == (64, 240)
    sched = new.step.spec.schedule
    on_rank0 = [lay.stages[s] for s, d in enumerate(sched.stage_device) if d == 0]
    assert any(p.first for p in on_rank0) and any(p.last for p in on_rank0)
    assert busy_alone(new, 0) > base.result.step_time_s
    assert ratio(new, base) >= busy_alone(new, 0) / base.result.step_time_s


# ------------------------------------------------------------------------------------------ ZeRO-1 and the layer split


def test_tail_reduce_scatter_hides_all_but_each_sets_last_stage(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """``dp_overlap: tail``: each stage's gradients are reduce-scattered as soon as that stage's last B
    or W has ended on every rank of its set (or the set's previous piece has ended), instead of all
    after the pipeline. Every set holds two stages: the first piece ends before the pipeline has
    drained, only the last can run after it. Every rank's exposed DP falls, and with it the step."""
    from sim.step.zero1 import held, stage_ready_times

    new = step(tmp_path_factory, training__dp_overlap="tail")
    st = new.step
    pipe = st.pipelines[0]
    lay, sched = st.spec.inputs.layout, st.spec.schedule
    ready = stage_ready_times(sched, lay, [(s.device, s.pos, s.end) for s in pipe.run.recorder.spans])
    drained = max(t.pipeline_end for t in st.timelines)
    for d in range(16):
        rs = st.timelines[d].reduce_scatter
        places = sorted(held(lay, sched, d), key=lambda p: ready[p])
        assert len(rs) == len(places)
        prev = 0.0
        for (start, end), place in zip(rs, places, strict=True):
            assert start == pytest.approx(max(prev, ready[place]), abs=1e-12)
            prev = end
        assert all(end <= drained for _, end in rs[:-1])
    for x, y in zip(base.result.ranks, new.result.ranks, strict=True):
        assert y.dp_comm_exposed_s < x.dp_comm_exposed_s
    assert ratio(new, base) < 1.0


def test_balanced_split_lowers_the_busiest_ranks_work(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    """``layers_per_stage: balanced`` moves a layer off the head + MTP stage to minimise the busiest
    rank's predicted load: the largest work alone of any rank falls. Rank 0, the critical rank under the
    even split (the least bubble), loses work; the step falls (the balancer minimises estimated load,
    which need not minimise the step in general: docs/step.md)."""
    new = step(tmp_path_factory, training__layers_per_stage="balanced")
    assert most_work(new) < most_work(base)
    assert min(range(16), key=lambda d: base.result.ranks[d].bubble_s) in (0, 15)
    assert busy_alone(new, 0) < busy_alone(base, 0)
    assert most_work(new) <= new.result.step_time_s < base.result.step_time_s
