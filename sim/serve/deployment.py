"""A serve scenario built and simulated: pools of units, their forward models, the requests, the loop.

:func:`build` makes what a run needs from a :class:`~sim.serve.spec.ServeScenario` (every refusal is
made here, so ``twin validate`` can stop here too); :func:`simulate_serve` runs the event loop and
returns a :class:`~sim.serve.metrics.ServeResult`. Pure: no files written.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import datasheet_for, known_gpus
from sim.hardware.profile import load_profile
from sim.limits import require_memory
from sim.moe.gating import popularity
from sim.moe.spec import MoESpec
from sim.overrides import EXPERT_LOADS
from sim.serve.alltoall import Links
from sim.serve.forward import ForwardModel
from sim.serve.kvcache import GpuMemory, gpu_memory
from sim.serve.loop import Loop, Unit
from sim.serve.metrics import ServeResult, summarise
from sim.serve.placement import Placement, place
from sim.serve.requests import (
    Requests,
    csv_number,
    csv_records,
    fixed_new_tokens,
    poisson,
    poisson_count,
    read_trace,
)
from sim.serve.spec import PoolSpec, ServeScenario
from sim.yamlio import read_text


@dataclass(frozen=True)
class Pool:
    role: str
    spec: PoolSpec
    model: ForwardModel
    memory: GpuMemory
    placement: Placement
    units: int

    @property
    def gpus_per_unit(self) -> int:
        return self.model.gpus


@dataclass(frozen=True)
class Deployment:
    scenario: ServeScenario
    pools: dict[str, Pool]
    links: Links
    load: np.ndarray
    cost: CostModel


def expert_load(sc: ServeScenario) -> np.ndarray:
    """Per-expert load (sums to 1): uniform, the routing's Zipf skew (sim.moe.gating.popularity,
    alpha 1, drawn from the scenario's seed) or a CSV file ``expert,load``."""
    e = sc.model.n_routed_experts
    how = sc.serve.expert_load
    if e == 0:
        return np.zeros(0)
    if how == "balanced":
        return np.full(e, 1.0 / e)
    if how == "skewed":
        spec = MoESpec(experts=e, topk=sc.model.n_activated_experts, node_limit=e, ep=1, gpus_per_node=1)
        return popularity(spec, np.random.default_rng([sc.seed, 11]))
    path = sc.resolve(how)
    records = csv_records(read_text(path, "expert load"), str(path))
    header = [h.strip() for h in records[0][1]] if records else []
    if header != ["expert", "load"]:  # a first line of data would be skipped as the header
        raise ScenarioError("line 1", f"the header must be expert,load, got {','.join(header)!r}", str(path))
    load = np.zeros(e)
    seen = set()
    for i, row in records[1:]:
        if not row:
            continue
        if len(row) != 2:
            raise ScenarioError(f"line {i}", "expected expert,load (an expert id and a number)", str(path))
        idx = csv_number(row[0], int, f"line {i}: expert", str(path), "an expert id (a whole number)")
        w = csv_number(row[1], float, f"line {i}: load", str(path))
        if not 0 <= idx < e or idx in seen or not np.isfinite(w) or w < 0:
            raise ScenarioError(f"line {i}", f"expert in 0..{e - 1} once, load finite and >= 0; got {row}", str(path))
        seen.add(idx)
        load[idx] = w
    if load.max() <= 0:
        raise ScenarioError("", "the expert loads sum to 0 (header expert,load, then one line per expert)", str(path))
    load = load / load.max()  # scaled first: loads near the float maximum would sum to inf
    return load / load.sum()


def build(sc: ServeScenario) -> Deployment:
    """Everything a serve run needs; refusals name the scenario's file and key."""
    try:
        return _build(sc)
    except ScenarioError as err:
        raise (err if err.file else err.with_file(sc.source_path)) from None


def _build(sc: ServeScenario) -> Deployment:
    profile = load_profile(sc.profile_path)
    cost = CostModel(profile)
    gpu = datasheet_for(profile.device.name)
    if gpu is None:
        raise ScenarioError(
            "device.name",
            f"no datasheet for device {profile.device.name!r} (its HBM size); use {known_gpus()}",
            str(sc.profile_path),
        )
    spec = sc.cluster_spec()
    links = Links.of(spec)
    g = spec.node.gpus_per_node
    load = expert_load(sc)
    pools = {}
    for role, p in sc.pools().items():
        gpus = p.unit_nodes * g
        e = sc.model.n_routed_experts
        per = p.experts_per_gpu if p.experts_per_gpu is not None else max(1, -(-e // gpus))
        placement = place(load, gpus, per) if e else place(load, gpus, 1)
        mtp = p.mtp.enabled
        memory = gpu_memory(
            sc.model,
            gpu.hbm_GiB,
            p.kv_memory_fraction,
            p.attention_tp,
            per,
            mtp,
            p.kv_dtype,
            f"serve.{role}.experts_per_gpu",
        )
        model = ForwardModel(role, p, sc.model, cost, links, g, placement, load, sc.seed, sc.serve.router_groups)
        pools[role] = Pool(role, p, model, memory, placement, p.nodes // p.unit_nodes)
    t = sc.serve.traffic
    if t is not None and t.rate_per_s is not None:  # as many arrivals as the run draws: none is refused here
        poisson_count(t, sc.serve.duration_s, arrivals_rng(sc))
        if t.lengths == "fixed":
            n, cached = fixed_new_tokens(t)
            source = f"serve.traffic.lengths: fixed, input_tokens {t.input_tokens:,}" + (
                f" less the {cached:,} cached (prompt_cache_hit)" if cached else ""
            )
            prefill_keys_used(sc, {n}, source)
            if t.output_tokens == 1:
                one_token_keys_used(sc)
    return Deployment(sc, pools, links, load, cost)


def one_token_keys_used(sc: ServeScenario) -> None:
    """Requests of one output token each (``lengths: fixed``, ``output_tokens: 1``) end at their first
    token, which the prefill (or co-located) forward makes: a decode pool never runs (its nodes were
    counted in the throughput per decode node, which it did not make), and no request has a TPOT (a TPOT
    SLO was counted as met by all). Refused naming the key that does nothing."""
    why = "every request has 1 output token (serve.traffic.output_tokens, lengths: fixed) and ends at its first"
    if "decode" in sc.pools():
        message = f"not used: {why}, which the prefill pool makes: the decode pool never runs"
        raise ScenarioError("serve.decode", f"{message}; give 2 or more output tokens, or serve co-located")
    slo = sc.serve.slo
    if slo is not None and "tpot_s" in slo.model_fields_set:
        raise ScenarioError("serve.slo.tpot_s", f"not used: {why}, so none has a time per output token; remove it")


def prefill_keys_used(sc: ServeScenario, new_tokens: set[int], source: str) -> None:
    """A prefill (co-located) pool's ``policy`` and ``chunked_prefill`` given where they provably change
    nothing, for requests of ``new_tokens`` new prompt tokens (every distinct count; ``source`` says
    where they come from), are refused naming the key. From the mechanism (:meth:`Loop._start_prefill`):

    * ``policy``: a forward only ever takes from the head of the queue, and a chunk taken leaves the
      head with fewer tokens left than any prompt behind it; ``sjf`` orders by (new tokens left,
      arrival). When every request has the same new tokens, the prompts behind the head tie and keep
      their arrival order: ``sjf`` serves exactly ``fcfs``'s order, so either value gives the same run.
    * ``chunked_prefill``: a rank takes whole prompts while they fit its room; the key acts only when
      one does not (split it, or, off, leave it for the next forward or run it alone on an empty rank).
      When every prompt has ``n`` new tokens and ``n`` divides ``max_batch_tokens``, every rank's load is
      a multiple of ``n``, so its room is 0 or at least ``n``: no prompt ever fails to fit, and the
      capacity figure's full rank is the same whole prompts either way.

    With lengths that vary, or ``n`` not dividing the budget, both act under a queue long enough (the
    run and the capacity figure say how much)."""
    if len(new_tokens) != 1:
        return
    (n,) = new_tokens
    for role, pool in sc.pools().items():
        if role == "decode":
            continue
        if "policy" in pool.model_fields_set:
            raise ScenarioError(
                f"serve.{role}.policy",
                f"not used: every request has the same {n:,} new prompt tokens ({source}), so shortest-first "
                "has nothing to reorder and serves them in arrival order, as fcfs does; remove it, or give "
                "lengths that vary (serve.traffic.lengths: exponential, or a trace)",
            )
        cap = pool.max_batch_tokens
        if "chunked_prefill" in pool.model_fields_set and cap % n == 0:
            raise ScenarioError(
                f"serve.{role}.chunked_prefill",
                f"not used: every prompt has the same {n:,} new tokens ({source}) and max_batch_tokens "
                f"({cap:,}) holds exactly {cap // n:,} of them, so no prompt is ever split; remove it",
            )


def _has_cached_column(path: Path) -> bool:
    """Whether a trace file's header names cached_tokens (an unreadable file: False, read_trace says why)."""
    try:
        with path.open(newline="") as f:
            header = next(csv.reader([f.readline()]), [])
    except (OSError, UnicodeDecodeError):
        return False
    return "cached_tokens" in (h.strip() for h in header)


def requests_of(sc: ServeScenario) -> Requests:
    t = sc.serve.traffic
    assert t is not None
    if t.trace is not None:
        path = sc.resolve(t.trace)
        if "prompt_cache_hit" in t.model_fields_set and _has_cached_column(path):
            raise ScenarioError(
                "serve.traffic.prompt_cache_hit",
                f"not used: the trace's cached_tokens column ({path.name}) gives each prompt's cached tokens; "
                "remove it",
                sc.source_path,
            )
        try:
            return read_trace(path, t.prompt_cache_hit, sc.serve.duration_s)
        except ScenarioError as err:
            raise err if err.file else err.with_file(str(sc.resolve(t.trace))) from None
    try:
        return poisson(t, sc.serve.duration_s, arrivals_rng(sc))
    except ScenarioError as err:
        raise err.with_file(sc.source_path) from None


_READ: set[tuple[object, ...]] = set()  # the files check_files read whole: (what, path, mtime_ns, size, reading)


def check_files(sc: ServeScenario) -> None:
    """The trace's and the expert-load file's contents read as a run reads them (``twin validate``, a
    sweep's points before any runs): a malformed line is refused with the file's line and column, as
    ``twin serve`` refuses it, not recorded as an infeasible point of a sweep (each file read once while
    it stays as it is, whatever the points)."""

    def fresh(what: str, name: str, *reading: object) -> bool:
        path = sc.resolve(name)
        st = path.stat()
        key = (what, str(path.resolve()), st.st_mtime_ns, st.st_size, *reading)
        if key in _READ:
            return False
        _READ.add(key)
        return True

    if sc.serve.expert_load not in EXPERT_LOADS and fresh("load", sc.serve.expert_load, sc.model.n_routed_experts):
        expert_load(sc)
    t = sc.serve.traffic
    if t is not None and t.trace is not None and fresh("trace", t.trace, t.prompt_cache_hit, sc.serve.duration_s):
        requests_of(sc)


def arrivals_rng(sc: ServeScenario) -> np.random.Generator:
    """The generator of the scenario's Poisson arrivals (its first draw: how many arrive)."""
    return np.random.default_rng([sc.seed, 3])


# peak memory per forward kept for the timeline: the span and its line of trace.json text (measured: 5.3M
# spans took 3.7 GB more than the run without them)
SPAN_BYTES = 800


def _check_fits(sc: ServeScenario, reqs: Requests, decode: Pool) -> None:
    """Every request's prompt and output fit one decode rank's KV cache; the largest that does not is
    refused naming its length key (``serve.traffic.input_tokens`` or ``output_tokens``: the longer of
    the two), or its trace file, line and column."""
    if not len(reqs):
        return
    total = reqs.input_tokens + reqs.output_tokens
    i = int(np.argmax(total))
    largest, kv = int(total[i]), decode.memory.kv_tokens
    if largest <= kv:
        return
    col = "input_tokens" if reqs.input_tokens[i] >= reqs.output_tokens[i] else "output_tokens"
    why = (
        f"a request of {int(reqs.input_tokens[i]):,} + {int(reqs.output_tokens[i]):,} tokens (prompt + output) "
        f"exceeds the KV cache of one decode rank ({kv:,} tokens)"
    )
    t = sc.serve.traffic
    if t is not None and t.trace is not None and reqs.line is not None:
        raise ScenarioError(f"line {int(reqs.line[i])}: {col}", why, str(sc.resolve(t.trace)))
    drawn = "" if t is None or t.lengths == "fixed" else " (drawn from the exponential lengths of this mean)"
    raise ScenarioError(f"serve.traffic.{col}", why + drawn, sc.source_path)


def forwards_bound(d: Deployment, reqs: Requests) -> dict[str, float]:
    """Per pool, an upper bound of the forwards a run of ``reqs`` makes, from the requests' work alone
    (no forward timed): a prefill forward finishes a prompt or takes ``max_batch_tokens`` of one, and a
    decode step makes a token at least of every request it holds."""
    new = (reqs.input_tokens - reqs.cached_tokens).astype(np.float64)
    steps = float(np.maximum(reqs.output_tokens - 1, 0).sum())
    out = {}
    for role, pool in d.pools.items():
        work = 0.0
        if role != "decode":
            work += float(np.ceil(new / pool.spec.max_batch_tokens).sum())
        if role != "prefill":
            work += steps
        out[role] = work
    return out


def check_forwards(d: Deployment, reqs: Requests) -> None:
    """Refuse a run whose kept timeline (``serve.timeline_spans`` forwards at most, and its trace text)
    would not fit this machine's memory: at most as many spans as :func:`forwards_bound` allows. (A long
    run is not refused: it reports its progress as it goes.)"""
    sc = d.scenario
    total = sum(forwards_bound(d, reqs).values())
    spans = min(sc.serve.timeline_spans, math.ceil(total))
    try:
        require_memory(
            spans * SPAN_BYTES,
            f"keeping up to {spans:,} forwards for the timeline",
            "serve.timeline_spans",
            "keep fewer forwards",
        )
    except ScenarioError as err:
        raise err.with_file(sc.source_path) from None


def _units(pool: Pool) -> list[Unit]:
    per = pool.memory.kv_tokens
    sjf = pool.spec.policy == "sjf"
    return [Unit(pool.role, i, pool.model, per * pool.model.dp, per, sjf=sjf) for i in range(pool.units)]


def simulate_serve(
    sc: ServeScenario, d: Deployment | None = None, progress: Callable[[float], None] | None = None
) -> ServeResult:
    """Run the scenario's traffic through its deployment (``progress``: the simulated time, now and
    then)."""
    d = d if d is not None else build(sc)
    reqs = requests_of(sc)
    t = sc.serve.traffic
    if t is not None and t.trace is not None:  # (Poisson traffic of fixed lengths: refused by build)
        new = {int(x) for x in np.unique(reqs.input_tokens - reqs.cached_tokens)}
        try:
            prefill_keys_used(sc, new, f"the trace {Path(t.trace).name}'s input_tokens less its cached tokens")
        except ScenarioError as err:
            raise err.with_file(sc.source_path) from None
    colocated = "colocated" in d.pools
    if colocated:
        pre = dec = _units(d.pools["colocated"])
        decode_pool = d.pools["colocated"]
    else:
        pre, dec = _units(d.pools["prefill"]), _units(d.pools["decode"])
        decode_pool = d.pools["decode"]
    _check_fits(sc, reqs, decode_pool)
    check_forwards(d, reqs)
    mtp = decode_pool.spec.mtp
    loop = Loop(
        reqs,
        pre,
        dec,
        colocated,
        decode_pool.memory.kv_bytes_per_token,
        d.links.nic_GBps * 1e9,
        d.links.ib_latency_s,
        sc.serve.duration_s,
        sc.seed,
        mtp.acceptance if mtp.enabled else 0.0,
        sc.model.mtp_depth if mtp.enabled else 0,
        sc.serve.timeline_spans,
    )
    out = loop.run(progress)
    return summarise(sc, d, reqs, out)
