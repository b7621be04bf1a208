"""The serving event loop as a queueing system (sim.serve.loop, sim.serve.metrics): Little's law, an
M/D/1 queue against Pollaczek-Khinchine, throughput against the arrival rate, the seed, the KV cache
bound, and MTP's steps per request."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.hardware.gpu import datasheet_for
from sim.hardware.profile import load_profile
from sim.model.spec import DEEPSEEK_V3
from sim.serve.deployment import build, simulate_serve
from sim.serve.forward import Shape
from sim.serve.kvcache import kv_bytes_per_token, weights_per_gpu
from sim.serve.loop import bucket
from sim.serve.metrics import ServeResult
from sim.units import GiB
from tests.serve.conftest import pool, scenario

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

# ---------------------------------------------------------------- Little's law, seed, conservation

LITTLE = {
    "colocated": {
        "duration_s": 15,
        "traffic": {
            "rate_per_s": 4,
            "input_tokens": 800,
            "output_tokens": 40,
            "lengths": "exponential",
            "prompt_cache_hit": 0.3,
        },
        "colocated": pool(max_batch_tokens=256),
    },
    "disaggregated": {
        "duration_s": 15,
        "traffic": {"rate_per_s": 6, "input_tokens": 1500, "output_tokens": 60, "lengths": "exponential"},
        "prefill": pool(nodes=4, kernels="normal", attention_tp=2, max_batch_tokens=512, policy="sjf"),
        "decode": pool(nodes=4, mtp={"enabled": True}, max_batch=8),
    },
}


@pytest.fixture(scope="module")
def little_runs() -> dict[str, ServeResult]:
    return {name: simulate_serve(scenario(serve)) for name, serve in LITTLE.items()}


@pytest.mark.parametrize("name", list(LITTLE))
def test_littles_law(little_runs: dict[str, ServeResult], name: str) -> None:
    """When every request has finished by the end of the run, the time integral of the requests in
    the system is the sum of their sojourns, so ``mean_in_system == completion rate x mean_sojourn``
    over the run's span holds as an identity (not a limit), to float rounding; likewise for the
    prefill queue (arrival to the first prefill forward that takes the request). Chunked prefill, SJF
    order, exponential lengths, a prompt cache, MTP and the KV transfer all run inside these
    scenarios."""
    r = little_runs[name]
    assert len(r.requests) > 30
    assert r.completed == len(r.requests)
    law = r.little
    rate = law["completion_rate_per_s"]
    assert rate == pytest.approx(len(r.requests) / r.end_s, rel=1e-12)
    assert law["mean_in_system"] == pytest.approx(rate * law["mean_sojourn_s"], rel=1e-9)
    assert law["mean_prefill_queue"] == pytest.approx(rate * law["mean_prefill_wait_s"], rel=1e-9)
    assert (r.first_token_s >= r.requests.arrival_s).all()
    assert (r.finish_s >= r.first_token_s).all()


def test_output_tokens_conserved(tmp_path: Path) -> None:
    """Every request generates exactly its output tokens (its first from the prefill, the rest over
    its decode steps, MTP's accepted drafts included; a step's tokens past the request's last are not
    counted). A trace whose requests all arrive in the first 5 s of a 120 s window and finish inside
    it (checked): the output tokens per second per node, times the window and the decode nodes, are
    the requests' output tokens, and the input tokens likewise (cached ones included)."""
    rng = np.random.default_rng(5)
    n = 60
    rows = zip(np.sort(rng.uniform(0, 5, n)), rng.integers(50, 3000, n), rng.integers(1, 200, n), strict=True)
    trace = tmp_path / "burst.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{a},{i},{o}\n" for a, i, o in rows))
    window = 120.0
    serve = {
        "duration_s": window,
        "traffic": {"trace": str(trace), "prompt_cache_hit": 0.4},
        "prefill": pool(kernels="normal", max_batch_tokens=1024),
        "decode": pool(nodes=4, mtp={"enabled": True, "acceptance": 0.7}, max_batch=2),
    }
    r = simulate_serve(scenario(serve))
    assert r.completed == n
    assert np.nanmax(r.finish_s) < window
    assert r.output_tokens_per_s_per_node * window * 4 == pytest.approx(float(r.requests.output_tokens.sum()))
    assert r.input_tokens_per_s_per_node * window * 2 == pytest.approx(float(r.requests.input_tokens.sum()))


def test_same_seed_same_bits(little_runs: dict[str, ServeResult]) -> None:
    """The same scenario built and run again gives the same arrays bit for bit, and the same report."""
    a = little_runs["colocated"]
    b = simulate_serve(scenario(LITTLE["colocated"]))
    for f in ("first_token_s", "finish_s", "ttft_s", "tpot_s"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    for f in ("arrival_s", "input_tokens", "output_tokens", "cached_tokens"):
        assert np.array_equal(getattr(a.requests, f), getattr(b.requests, f)), f
    assert a.spans == b.spans
    assert a.kv_occupancy.keys() == b.kv_occupancy.keys()
    for k in a.kv_occupancy:
        assert all(np.array_equal(x, y) for x, y in zip(a.kv_occupancy[k], b.kv_occupancy[k], strict=True))
    assert a.to_dict() == b.to_dict()
    c = simulate_serve(scenario(LITTLE["colocated"], seed=1))
    assert not np.array_equal(a.requests.arrival_s[:10], c.requests.arrival_s[:10])


# ---------------------------------------------------------------- M/D/1

INPUT = 1000
# one DP rank (a node's 8 GPUs as one attention TP group): DeepSeek-V2-Lite fits a node
MD1_MODEL = {"config": "deepseek-v2-lite"}
MD1_POOL = pool(nodes=1, unit_nodes=1, attention_tp=8, experts_per_gpu=8, chunked_prefill=False, max_batch_tokens=1)


def _md1(rate: float, duration: float, seed: int = 0) -> dict[str, Any]:
    """One co-located unit as a single deterministic server: one DP rank, every prompt INPUT tokens,
    no prompt cache, one output token (a request ends with its prefill, no decode step ever runs), and
    a budget of 1 token per rank without chunking, so a forward takes the first prompt whole (too long
    for the budget, alone on the empty rank) and nothing else."""
    return {
        "duration_s": duration,
        "traffic": {"rate_per_s": rate, "input_tokens": INPUT, "output_tokens": 1},
        "colocated": MD1_POOL,
    }


@pytest.fixture(scope="module")
def service_s() -> float:
    """The one-request prefill forward's time, from the unit's forward model: INPUT tokens (on the
    shapes' grid) on the one DP rank, one request, no cached prefix."""
    fm = build(scenario(_md1(1.0, 1.0), model=MD1_MODEL)).pools["colocated"].model
    assert fm.dp == 1
    tokens = bucket(INPUT)  # the loop's shapes are on the grid (within 3%)
    return fm.forward(Shape("prefill", tokens, 1, 0, tokens)).time_s


def test_md1_mean_ttft_is_pollaczek_khinchine(service_s: float) -> None:
    """Poisson arrivals at ``rate = rho / S`` (rho = 0.6) into one FCFS server of deterministic
    service S: the mean sojourn (here TTFT) is ``S + rho S / (2 (1 - rho))`` (Pollaczek-Khinchine).

    Conditions, checked: arrivals are a Poisson process (the count Poisson, the times uniform given
    it), every forward serves one request (``forwards == requests``), and every service is the same
    forward (a request arriving to an idle unit waits exactly S: the smallest TTFT is S, none is
    shorter). Tolerance: the TTFTs are autocorrelated, so the standard error comes from 25 batch
    means of ~2000 consecutive requests each (the M/D/1 relaxation time at rho 0.6 is ~20 services,
    so the batches are nearly independent); 4 standard errors (Student t, 24 degrees of freedom:
    two-sided false alarm ~5e-4). The run starts empty: that biases the mean by about the mean wait
    times the relaxation time over the requests, ~3e-5 s, 2% of a standard error here."""
    s, rho, n_target = service_s, 0.6, 50_000
    rate = rho / s
    r = simulate_serve(scenario(model=MD1_MODEL, serve=_md1(rate, n_target / rate)))
    n = len(r.requests)
    assert r.completed == n > 0.9 * n_target
    assert r.pools["colocated"].forwards == n
    ttft = r.ttft_s
    assert ttft.min() == pytest.approx(s, rel=1e-9)
    assert (ttft >= s * (1 - 1e-9)).all()
    batches = ttft[: n // 25 * 25].reshape(25, -1).mean(axis=1)
    se = batches.std(ddof=1) / math.sqrt(25)
    pk = s + rho * s / (2 * (1 - rho))
    assert abs(ttft.mean() - pk) <= 4 * se, (ttft.mean(), pk, se)
    # the time in queue alone, the prefill wait, is the P-K waiting time
    assert r.little["mean_prefill_wait_s"] == pytest.approx(ttft.mean() - s, rel=1e-9)


def _busy_period_end(rho: float) -> float:
    """The probability a busy period of an M/D/1 queue at ``rho > 1`` ever ends: the smallest root of
    ``z = exp(-rho (1 - z))`` (extinction of a branching process with Poisson(rho) offspring)."""
    z = 0.0
    for _ in range(500):
        z = math.exp(-rho * (1 - z))
    return z


def test_throughput_against_arrival_rate(service_s: float) -> None:
    """Output tokens per second per node over the arrival window T (one token a request: completions
    within T, per second). Always at most ``1/S``: one forward of S at a time, so at most ``T / S``
    complete by T. Below saturation it is the arrival rate less the requests still in the unit at T:
    the Poisson count is within 4.5 of its standard errors of ``rate x T``, the requests in flight
    at T are counted exactly; so it rises with the rate (the rates are 3/s apart, the errors
    ~0.2/s). Beyond saturation the unit is idle only while its queue is empty: in overload the number
    of idle periods is geometric (a busy period ends with probability z, ``_busy_period_end``), each
    exponential with mean ``1/rate``, so the idle total is exponential with mean
    ``1 / (rate (1 - z))``: below ``ln(1e4)`` times that with probability 1 - 1e-4; the forward
    running at T is the other loss. So it is flat at ``1/S`` less those shares. The busy time over
    the whole span is exactly one S per request."""
    s, window = service_s, 300.0
    nodes = MD1_POOL["nodes"]
    below = []
    for rho in (0.3, 0.6, 0.9, 1.5, 3.0):
        rate = rho / s
        r = simulate_serve(scenario(model=MD1_MODEL, serve=_md1(rate, window)))
        n = r.completed
        assert n == len(r.requests)
        assert r.pools["colocated"].busy * r.end_s == pytest.approx(n * s, rel=1e-9)
        thr = r.output_tokens_per_s_per_node * nodes
        done_in_window = int((r.first_token_s <= window).sum())
        assert thr == pytest.approx(done_in_window / window, rel=1e-12)
        assert thr * s <= 1 + 1e-12
        if rho < 1:
            in_flight = n - done_in_window
            tol = 4.5 * math.sqrt(rate / window) + in_flight / window
            assert abs(thr - rate) <= tol, (rho, thr, rate, tol)
            below.append(thr)
        else:
            idle = math.log(1e4) / (rate * (1 - _busy_period_end(rho)))
            assert thr * s >= 1 - (idle + s) / window, (rho, thr * s)
    assert below == sorted(below)


# ---------------------------------------------------------------- KV cache


def _kv_fraction(tokens_per_gpu: int) -> float:
    """The ``kv_memory_fraction`` that leaves DeepSeek-V3's weights on 16 GPUs (16 experts each, DP
    attention) room for ``tokens_per_gpu`` tokens of BF16 KV cache per GPU."""
    hbm = datasheet_for(load_profile(Path("calibrate/profiles/h800.json").resolve()).device.name).hbm_GiB
    w = weights_per_gpu(DEEPSEEK_V3, 1, 16, False)
    per = kv_bytes_per_token(DEEPSEEK_V3, "bf16", 1, False)
    return (w + (tokens_per_gpu + 0.5) * per) / (hbm * GiB)


def test_kv_occupancy_bound() -> None:
    """A unit whose KV cache holds 2000 tokens per GPU (each of its 16 DP ranks) and requests of
    1500 + 300 tokens: admission reserves a request's prompt and whole output on its rank, so a rank
    holds ``2000 // 1800 = 1`` and the unit at most 16 at once, and the occupancy (reserved prompts
    plus the tokens made so far) never exceeds 1. 60 requests arrive in 20 s, each decoding for many
    seconds, so the bound is reached (16 at once). (The unit's KV used to be pooled over its ranks:
    ``32000 // 1800 = 17`` decoded at once, so the step timed a rank of 2 requests, 3600 tokens of KV
    on a rank that holds 2000.)"""
    serve = {
        "duration_s": 20,
        "traffic": {"rate_per_s": 3, "input_tokens": 1500, "output_tokens": 300},
        "colocated": pool(kv_memory_fraction=_kv_fraction(2000)),
    }
    r = simulate_serve(scenario(serve))
    assert r.pools["colocated"].kv_tokens_per_gpu == 2000
    _, used = r.kv_occupancy["colocated/0"]
    assert len(used) > 100
    assert (used <= 1.0).all() and (used >= 0).all()
    decoding = max(s.requests for s in r.spans if s.kind == "decode")
    assert decoding == 16 * (2000 // 1800)


def test_the_summary_kv_peak_is_every_steps_not_the_thinned_series(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``KV_SAMPLES`` points the occupancy series is thinned (every other point dropped): its
    maximum could miss the peak (the trace scenario's summary said 0.006158 for 0.006163). The summary's
    peak is each unit's over every decode step: the same whether the series is thinned or not, and at
    least the thinned series' maximum."""
    import sim.serve.loop as loop

    serve = {
        "duration_s": 20,
        "traffic": {"rate_per_s": 3, "input_tokens": 1500, "output_tokens": 300},
        "colocated": pool(kv_memory_fraction=_kv_fraction(2000)),
    }
    whole = simulate_serve(scenario(serve))
    monkeypatch.setattr(loop, "KV_SAMPLES", 16)  # thinned many times over
    thin = simulate_serve(scenario(serve))
    _, all_steps = whole.kv_occupancy["colocated/0"]
    _, kept = thin.kv_occupancy["colocated/0"]
    assert len(kept) < len(all_steps) // 4
    peak = thin.to_dict()["kv_occupancy_max"]["colocated/0"]
    assert peak == float(all_steps.max()) == whole.to_dict()["kv_occupancy_max"]["colocated/0"]
    assert peak >= float(kept.max())


def test_kv_occupancy_bound_with_a_request_larger_than_the_cache() -> None:
    """A prompt of 40000 tokens on a unit holding 32000 per rank: it can never fit, so the run is
    refused before it starts, naming the traffic's longer length key."""
    serve = {
        "duration_s": 5,
        "traffic": {"rate_per_s": 0.3, "input_tokens": 40_000, "output_tokens": 10},
        "colocated": pool(kv_memory_fraction=_kv_fraction(2000)),
    }
    with pytest.raises(ScenarioError, match=r"serve\.traffic\.input_tokens: a request of 40,000 \+ 10 tokens"):
        simulate_serve(scenario(serve))


# ---------------------------------------------------------------- MTP


def _steps_moments(n: int, p: float) -> tuple[float, float]:
    """Mean and variance of the decode steps that make ``n`` tokens when each step makes 1 token plus
    1 more with probability ``p`` (MTP depth 1): ``steps(n) = 1 + steps(n - 1 - B)``, B ~ Bernoulli(p),
    ``steps(k <= 0) = 0``."""
    m1, m2 = [0.0] * (n + 1), [0.0] * (n + 1)
    for k in range(1, n + 1):
        a, b = k - 1, max(k - 2, 0)
        e = (1 - p) * m1[a] + p * m1[b]
        m1[k] = 1 + e
        m2[k] = 1 + 2 * e + (1 - p) * m2[a] + p * m2[b]
    return m1[n], m2[n] - m1[n] ** 2


def test_mtp_steps_per_request(tmp_path: Path) -> None:
    """MTP of depth 1 at acceptance p = 0.85: each step makes 1 + Bernoulli(p) tokens, 1 + p on
    average. 400 requests of 51 output tokens (50 made by decode), each alone in the unit (a trace
    spacing them 3 s apart, more than one request's whole time: checked), so the unit's decode
    forwards are the requests' steps. Wald's identity brackets the mean steps: ``N / (1 + p) <=
    E[steps] <= (N + 1) / (1 + p)`` (the last step overshoots by at most one token); the exact
    mean and variance come from the recursion of ``_steps_moments``. The sample mean must lie within
    4 standard errors of the exact mean (false alarm ~6e-5)."""
    n, out, p, gap = 400, 51, 0.85, 3.0
    trace = tmp_path / "spaced.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(f"{i * gap},100,{out}\n" for i in range(n)))
    serve = {
        "duration_s": n * gap,
        "traffic": {"trace": str(trace)},
        "colocated": pool(mtp={"enabled": True, "acceptance": p}),
    }
    r = simulate_serve(scenario(serve))
    assert r.completed == n
    assert (r.finish_s[:-1] < r.requests.arrival_s[1:]).all(), "requests overlap"
    steps = (r.pools["colocated"].forwards - n) / n  # one prefill forward each
    tokens = out - 1
    mean, var = _steps_moments(tokens, p)
    assert tokens / (1 + p) <= mean <= (tokens + 1) / (1 + p)
    assert abs(steps - mean) <= 4 * math.sqrt(var / n), (steps, mean, var)
    # without MTP: one token per step, exactly
    serve["colocated"] = pool()
    r = simulate_serve(scenario(serve))
    assert r.pools["colocated"].forwards - n == n * tokens


def test_each_request_moves_through_its_stages_in_order() -> None:
    """Every request of a disaggregated run: arrival <= its prefill starts <= first token <= it joins
    a decode batch (after the KV transfer: strictly later) <= last token; a request of one output
    token never joins one. The KV transfer takes at least one IB latency, so the admission comes
    after the first token by at least that."""
    r = simulate_serve(scenario(LITTLE["disaggregated"]))
    assert r.prefill_start_s is not None and r.decode_admit_s is not None
    a, p, f, d, e = r.requests.arrival_s, r.prefill_start_s, r.first_token_s, r.decode_admit_s, r.finish_s
    assert r.completed == len(a) > 0
    multi = r.requests.output_tokens > 1
    assert (a <= p).all() and (p <= f).all() and (f <= e).all()
    latency = build(scenario(LITTLE["disaggregated"])).links.ib_latency_s
    assert (d[multi] - f[multi] >= latency * (1 - 1e-9)).all() and (d[multi] <= e[multi]).all()
    assert np.isnan(d[~multi]).all()


def test_busy_shares_count_only_the_time_simulated() -> None:
    """A forward still running when the loop stops (overload: the drain window of 60 s ends first)
    counts only its part before the end, so no busy share exceeds 1. Before, each forward counted whole
    when it started: an IB of 1e-300 Gb/s made a prefill pool 1.3e298 times busy (the serve key fuzz,
    tests/serve/test_serve_key_fuzz.py). Here the IB is slowed 1e6-fold, so the first prefill forward
    outlasts the run: the prefill units are busy from their first start to the end, and the decode
    pool never receives a request."""
    serve = {
        "duration_s": 2,
        "traffic": {"rate_per_s": 5, "input_tokens": 1000, "output_tokens": 10},
        "prefill": pool(kernels="normal", max_batch_tokens=1024),
        "decode": pool(nodes=2),
    }
    r = simulate_serve(scenario(serve, nic_Gbps=400e-6))
    assert r.completed == 0 and r.end_s == pytest.approx(2 + 60)
    pre, dec = r.pools["prefill"], r.pools["decode"]
    first = float(r.requests.arrival_s.min())  # the first forward starts at the first arrival
    assert pre.busy == pytest.approx((r.end_s - first) / r.end_s, rel=1e-9)
    assert 0 < pre.comm_busy <= pre.busy <= 1 and 0 <= pre.compute_busy <= pre.busy
    assert all(0 <= x <= pre.busy for x in pre.gpu_compute_busy)
    assert dec.busy == dec.compute_busy == dec.comm_busy == 0.0
