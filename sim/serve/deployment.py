"""A serve scenario built and simulated: pools of units, their forward models, the requests, the loop.

:func:`build` makes what a run needs from a :class:`~sim.serve.spec.ServeScenario` (every refusal is
made here, so ``twin validate`` can stop here too); :func:`simulate_serve` runs the event loop and
returns a :class:`~sim.serve.metrics.ServeResult`. Pure: no files written.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import datasheet_for, known_gpus
from sim.hardware.profile import load_profile
from sim.moe.gating import popularity
from sim.moe.spec import MoESpec
from sim.serve.alltoall import Links
from sim.serve.forward import ForwardModel
from sim.serve.kvcache import GpuMemory, gpu_memory
from sim.serve.loop import Loop, Unit
from sim.serve.metrics import ServeResult, summarise
from sim.serve.placement import Placement, place
from sim.serve.requests import Requests, poisson, read_trace
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
    rows = list(csv.reader(read_text(path, "expert load").splitlines()))
    header = [h.strip() for h in rows[0]] if rows else []
    if header != ["expert", "load"]:  # a first line of data would be skipped as the header
        raise ScenarioError("line 1", f"the header must be expert,load, got {','.join(header)!r}", str(path))
    load = np.zeros(e)
    seen = set()
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            if len(row) != 2:
                raise ValueError
            idx, w = int(row[0]), float(row[1])
        except ValueError:
            raise ScenarioError(f"line {i}", "expected expert,load (an expert id and a number)", str(path)) from None
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
    return Deployment(sc, pools, links, load, cost)


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
    return poisson(t, sc.serve.duration_s, np.random.default_rng([sc.seed, 3]))


def _units(pool: Pool) -> list[Unit]:
    cap = pool.memory.kv_tokens * pool.model.dp
    return [Unit(pool.role, i, pool.model, cap) for i in range(pool.units)]


def simulate_serve(
    sc: ServeScenario, d: Deployment | None = None, progress: Callable[[float], None] | None = None
) -> ServeResult:
    """Run the scenario's traffic through its deployment (``progress``: the simulated time, now and
    then)."""
    d = d if d is not None else build(sc)
    reqs = requests_of(sc)
    colocated = "colocated" in d.pools
    if colocated:
        pre = dec = _units(d.pools["colocated"])
        decode_pool = d.pools["colocated"]
    else:
        pre, dec = _units(d.pools["prefill"]), _units(d.pools["decode"])
        decode_pool = d.pools["decode"]
    largest = int((reqs.input_tokens + reqs.output_tokens).max()) if len(reqs) else 0
    if largest > decode_pool.memory.kv_tokens:
        key = "serve.traffic.trace" if sc.serve.traffic is not None and sc.serve.traffic.trace else "serve.traffic"
        raise ScenarioError(
            key,
            f"a request of {largest:,} tokens (prompt + output) exceeds the KV cache of one decode rank "
            f"({decode_pool.memory.kv_tokens:,} tokens)",
            sc.source_path,
        )
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
