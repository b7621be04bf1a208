"""Dispatch and combine times (sim.serve.alltoall): the low-latency rates against DeepEP's published
table they come from, and the phase-time formula on hand-built routings."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from sim.chunk.overheads import COMM_BESIDE_COMPUTE
from sim.moe.deepep import DERIVED_RDMA_GBps, NVLINK_CHANNEL_GBps
from sim.network.spec import LatencySpec, load_cluster
from sim.serve.alltoall import (
    LL_PUBLISHED,
    Links,
    copy_bytes,
    derive_ll_rates,
    ll_case,
    phase_time,
)
from sim.serve.placement import place
from sim.serve.routing import BatchRouting, route_batch
from sim.units import BF16_BYTES, FP8_TILE_BYTES
from tests.conftest import REPO

HIDDEN, TOKENS, TOP_K, EXPERTS, NODE = 7168, 128, 8, 256, 8
PHASES = ("dispatch", "combine")
ALPHA = 1e-4  # false-alarm budget of each sampling bound below


@pytest.fixture(scope="module")
def links() -> Links:
    return Links.of(load_cluster(REPO / "topologies" / "deepseek-v3-mpft.yaml"))


def _published(ep: int, phase: str) -> float:
    return LL_PUBLISHED[ep][0 if phase == "dispatch" else 2] * 1e-6


def _deepep_case(ep: int, seed: int) -> BatchRouting:
    """DeepEP's low-latency test case built here from its description: 128 tokens per GPU, 256
    experts in DeepEP's plain layout (``256 / ep`` per GPU, uniform load), each token's top-8 of
    random scores (no group limit), no shared expert, NVLink domains of the H800 node's 8 GPUs."""
    load = np.full(EXPERTS, 1.0 / EXPERTS)
    p = place(load, ep, EXPERTS // ep)
    rng = np.random.default_rng([seed, ep])
    return route_batch(load, p, TOKENS * ep, TOP_K, 1, 1, NODE, False, "low_latency", rng)


def test_ll_case_is_deepeps_test_case() -> None:
    """``ll_case`` (the case the rates are derived from) is the routing built from DeepEP's
    description, bit for bit; its copies are the case's: 128 x 8 per GPU, none to the shared expert."""
    for ep in (8, 256):
        a, b = ll_case(ep), _deepep_case(ep, 0)
        for f in ("rows", "shared_rows", "ib_send", "ib_recv", "nvl_send", "nvl_recv"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f
        assert a.rows.sum() == TOKENS * TOP_K * ep
        assert a.shared_rows.sum() == 0
    assert ll_case(8).ib_send.sum() == 0  # one node: nothing on IB


def test_topology_latencies_are_the_derivations(links: Links) -> None:
    """The derivation subtracts the default latencies; the MPFT topology has them (else the source
    rows could not come back exactly)."""
    lat = LatencySpec()
    assert links.ib_latency_s == pytest.approx(2 * (lat.pcie_nic_us + lat.nic_leaf_us + lat.switch_hop_us) * 1e-6)
    assert links.nvlink_latency_s == pytest.approx(2 * lat.nvlink_hop_us * 1e-6)
    assert links.nic_GBps == 50.0 and links.nvlink_GBps == 160.0 and links.domain == NODE


@pytest.mark.parametrize("phase", PHASES)
def test_derived_rates_give_back_their_source_rows(links: Links, phase: str) -> None:
    """Run back through ``phase_time``, DeepEP's case gives the published EP256 latency (IB: 31 of
    32 copies leave the node) and EP8 latency (one node: NVLink) exactly (to float rounding), for
    the routing the rates were derived from (``ll_case``, seed 0). At EP256 the IB term is the
    bottleneck and at EP8 nothing goes on IB, so each row fixes one rate."""
    for ep in (256, 8):
        t = phase_time(ll_case(ep), phase, HIDDEN, links, "low_latency", 0, False)
        assert t == pytest.approx(_published(ep, phase), rel=1e-12)
    ib_rate, nv_rate = derive_ll_rates()[phase]
    r = ll_case(256)
    b = copy_bytes(phase, HIDDEN)
    assert max(r.nvl_send.max(), r.nvl_recv.max()) * b / nv_rate < max(r.ib_send.max(), r.ib_recv.max()) * b / ib_rate
    assert ib_rate < links.nic_GBps and nv_rate < links.nvlink_GBps


def _hyp_var(k: int, m: float, n: int) -> float:
    """Variance of how many of ``k`` distinct experts drawn uniformly from ``n`` fall in a set of ``m``."""
    return k * (m / n) * (1 - m / n) * (n - k) / (n - 1)


def _max_count_band(mean: float, sd_send: float, sd_recv: float, gpus: int) -> tuple[float, float]:
    """Bounds on ``max over GPUs of max(send, recv)`` copies, each false with probability < ALPHA.

    Upper: a union bound over the ``2 x gpus`` counts, each a sum of >= 128 independent tokens' counts
    (normal approximation). Lower: the receive counts of the GPUs are negatively associated (each
    token's experts are a uniform random subset; Joag-Dev & Proschan 1983), so
    ``P(all < x) <= prod P(recv_g < x) = Phi(a)^gpus``."""
    z = NormalDist().inv_cdf(1 - ALPHA / (2 * gpus))
    a = NormalDist().inv_cdf(ALPHA ** (1 / gpus))
    hi = mean + z * max(sd_send, sd_recv)
    lo = mean + a * sd_recv
    return lo, hi


def _time_band(ep: int, phase: str, links: Links) -> tuple[float, float]:
    """The range a sampled DeepEP case's phase time lies in (per-GPU copy counts of ``ep`` GPUs,
    128 tokens each, 8 of 256 experts; nodes of 8 GPUs), from the bounds on the busiest GPU."""
    nodes_gpus = min(NODE, ep)
    m_gpu, m_node = EXPERTS / ep, EXPERTS * nodes_gpus / ep
    b = copy_bytes(phase, HIDDEN)
    ib_rate, nv_rate = derive_ll_rates()[phase]
    lo_t, hi_t = 0.0, 0.0
    remote_tokens, node_tokens = TOKENS * (ep - nodes_gpus), TOKENS * (nodes_gpus - 1)
    if remote_tokens:
        mean = TOKENS * TOP_K * (1 - m_node / EXPERTS)
        sd_send = math.sqrt(TOKENS * _hyp_var(TOP_K, m_node, EXPERTS))
        sd_recv = math.sqrt(remote_tokens * _hyp_var(TOP_K, m_gpu, EXPERTS))
        lo, hi = _max_count_band(mean, sd_send, sd_recv, ep)
        lo_t, hi_t = lo * b / (ib_rate * 1e9), hi * b / (ib_rate * 1e9)
    mean = TOKENS * TOP_K * (m_node - m_gpu) / EXPERTS
    sd_send = math.sqrt(TOKENS * _hyp_var(TOP_K, m_node - m_gpu, EXPERTS))
    sd_recv = math.sqrt(node_tokens * _hyp_var(TOP_K, m_gpu, EXPERTS))
    lo, hi = _max_count_band(mean, sd_send, sd_recv, ep)
    lo_t, hi_t = max(lo_t, lo * b / (nv_rate * 1e9)), max(hi_t, hi * b / (nv_rate * 1e9))
    lat = links.ib_latency_s if remote_tokens else links.nvlink_latency_s
    return lat + lo_t, lat + hi_t


@pytest.mark.parametrize("phase", PHASES)
def test_other_draws_of_the_source_rows_within_the_max_spread(links: Links, phase: str) -> None:
    """The routing is sampled, so the published rows come back exactly only for the draw the rates
    were fitted to. For other draws (seeds 1-3) the busiest GPU's copies move by the spread of the
    maximum of ``ep`` counts; the time must lie in the band that spread bounds (``_time_band``), and
    so must the published latency itself (the fitted draw was a typical one)."""
    for ep in (256, 8):
        lo, hi = _time_band(ep, phase, links)
        assert lo <= _published(ep, phase) <= hi
        for seed in (1, 2, 3):
            t = phase_time(_deepep_case(ep, seed), phase, HIDDEN, links, "low_latency", 0, False)
            assert lo <= t <= hi, (ep, seed, t, lo, hi)


def test_held_out_rows(links: Links) -> None:
    """EP16 to EP128 are not used by the derivation: the predictions are reported beside DeepEP's
    published latencies (printed: ``pytest -s`` or ``-rP`` shows them). What a mechanism bounds is
    asserted: each prediction lies in the sampling band of its own case (``_time_band``: the busiest
    GPU's copies). The published rows are not asserted: EP16's dispatch (118 us) lies above its band
    (95-111 us), so the bottleneck model misses something there (DeepEP's EP16 is two nodes: half
    the copies on IB)."""
    lines = ["EP   phase     predicted_us  published_us  error"]
    for phase in PHASES:
        for ep in (16, 32, 64, 128):
            t = phase_time(ll_case(ep), phase, HIDDEN, links, "low_latency", 0, False)
            lo, hi = _time_band(ep, phase, links)
            assert lo <= t <= hi, (ep, phase, t, lo, hi)
            pub = _published(ep, phase)
            lines.append(f"{ep:<4} {phase:<9} {t * 1e6:12.1f}  {pub * 1e6:12.1f}  {t / pub - 1:+.1%}")
    print("\nDeepEP low-latency, held-out rows (H800, 128 tokens/GPU, top-8):\n" + "\n".join(lines))


def _routing(ib_send: list[int], ib_recv: list[int], nvl_send: list[int], nvl_recv: list[int]) -> BatchRouting:
    g = len(ib_send)
    return BatchRouting(
        10,
        np.zeros((g, 1), dtype=np.int64),
        np.zeros(g, dtype=np.int64),
        *(np.array(x, dtype=np.int64) for x in (ib_send, ib_recv, nvl_send, nvl_recv)),
    )


@pytest.mark.parametrize("comm_sms", [20, 24, 4])
@pytest.mark.parametrize("phase", PHASES)
def test_normal_kernel_phase_time(links: Links, comm_sms: int, phase: str) -> None:
    """Normal kernels: ``latency + max(busiest IB direction x bytes / IB rate, busiest NVLink
    direction x bytes / NVLink rate)`` with ``comm_sms / 2`` channels of DeepEP's per-channel rates,
    each capped by the link (24 SMs: 12 x 4.46 GB/s > the 50 GB/s NIC); bytes per copy FP8 + scales
    in dispatch, BF16 in combine; a combine moves the dispatch's copies backwards (send <-> recv)."""
    r = _routing([10, 3, 0, 0], [0, 0, 12, 1], [5, 40, 0, 2], [9, 0, 30, 0])
    b = HIDDEN * (FP8_TILE_BYTES if phase == "dispatch" else BF16_BYTES)
    ch = comm_sms // 2
    ib_rate = min(50.0, ch * DERIVED_RDMA_GBps[phase]) * 1e9
    nv_rate = min(160.0, ch * NVLINK_CHANNEL_GBps) * 1e9
    want = links.ib_latency_s + max(12 * b / ib_rate, 40 * b / nv_rate)
    assert phase_time(r, phase, HIDDEN, links, "normal", comm_sms, False) == pytest.approx(want, rel=1e-12)
    # NVLink only: the NVLink latency; nothing at all: no time
    nvl_only = _routing([0, 0, 0, 0], [0, 0, 0, 0], [5, 40, 0, 2], [9, 0, 30, 0])
    want = links.nvlink_latency_s + 40 * b / nv_rate
    assert phase_time(nvl_only, phase, HIDDEN, links, "normal", comm_sms, False) == pytest.approx(want, rel=1e-12)
    assert phase_time(_routing([0] * 4, [0] * 4, [0] * 4, [0] * 4), phase, HIDDEN, links, "normal", 20, True) == 0.0


@pytest.mark.parametrize("phase", PHASES)
def test_slowdown_beside_compute_multiplies_the_transfer_only(links: Links, phase: str) -> None:
    """Beside compute (two micro-batches), normal kernels' transfer runs slower by the trace's
    factor (1.82 dispatch, 1.31 combine); the message latency does not. Low-latency kernels hold no
    SMs and are not slowed."""
    r = _routing([10, 3, 0, 0], [0, 0, 12, 1], [5, 40, 0, 2], [9, 0, 30, 0])
    lat = links.ib_latency_s
    alone = phase_time(r, phase, HIDDEN, links, "normal", 20, False)
    beside = phase_time(r, phase, HIDDEN, links, "normal", 20, True)
    assert beside - lat == pytest.approx(COMM_BESIDE_COMPUTE[phase] * (alone - lat), rel=1e-12)
    ll = phase_time(r, phase, HIDDEN, links, "low_latency", 0, False)
    assert phase_time(r, phase, HIDDEN, links, "low_latency", 0, True) == ll


@pytest.mark.parametrize("phase", PHASES)
def test_low_latency_rates_scale_with_the_links(links: Links, phase: str) -> None:
    """The low-latency kernels reach the same share of this cluster's links as of the measured
    H800's: doubling the NIC halves an IB-bound transfer, doubling NVLink halves an NVLink-bound one;
    the latency stays."""
    from dataclasses import replace

    ib_bound = ll_case(256)
    t = phase_time(ib_bound, phase, HIDDEN, links, "low_latency", 0, False)
    t2 = phase_time(ib_bound, phase, HIDDEN, replace(links, nic_GBps=100.0), "low_latency", 0, False)
    assert t2 - links.ib_latency_s == pytest.approx((t - links.ib_latency_s) / 2, rel=1e-12)
    nv_bound = ll_case(8)
    t = phase_time(nv_bound, phase, HIDDEN, links, "low_latency", 0, False)
    t2 = phase_time(nv_bound, phase, HIDDEN, replace(links, nvlink_GBps=320.0), "low_latency", 0, False)
    assert t2 - links.nvlink_latency_s == pytest.approx((t - links.nvlink_latency_s) / 2, rel=1e-12)
