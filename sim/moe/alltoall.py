"""One EP all-to-all (dispatch + combine) of an MoE layer, end to end: gate, select, count, simulate.

Used by ``twin alltoall``: EP rank r runs on cluster GPU r, each rank holds ``tokens`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.gpu import SmSplit
from sim.moe.deepep import KernelSpec, PhaseResult, simulate_phase
from sim.moe.gating import GATES, balanced_choices, popularity, replay, skewed_scores
from sim.moe.select import CHUNK, select_experts
from sim.moe.spec import MoESpec
from sim.moe.traffic import Traffic, layer_traffic
from sim.network.topology import Topology


@dataclass(frozen=True)
class AlltoallResult:
    comm_sms: int
    compute_sms: int
    gemm_throughput_fraction: float
    dispatch: PhaseResult
    combine: PhaseResult
    traffic: Traffic

    def to_dict(self) -> dict[str, object]:
        npt = self.traffic.nodes_per_token
        tpe = self.traffic.tokens_per_expert
        return {
            "comm_sms": self.comm_sms,
            "compute_sms": self.compute_sms,
            "gemm_throughput_fraction": self.gemm_throughput_fraction,
            "dispatch": self.dispatch.to_dict(),
            "combine": self.combine.to_dict(),
            "nodes_per_token": {"mean": float(npt.mean()), "max": int(npt.max())},
            "tokens_per_expert": {"min": int(tpe.min()), "mean": float(tpe.mean()), "max": int(tpe.max())},
        }


def layer_scores(
    spec: MoESpec,
    total: int,
    routing: str,
    rng: np.random.Generator,
    table: str | Path | None = None,
    alpha: float = 1.0,
    dirichlet: float | None = None,
) -> np.ndarray:
    """Affinity scores of ``total`` tokens from a gate (``skewed`` takes Zipf ``alpha`` or ``dirichlet``)."""
    if routing == "replay":
        if table is None:
            raise ScenarioError("--routing-table", "replay needs a routing table")
        return replay(table, total, spec)
    if routing == "skewed":
        return skewed_scores(total, spec, rng, popularity(spec, rng, alpha, dirichlet))
    if routing not in GATES:
        raise ScenarioError("--routing", f"unknown routing {routing!r}; choose from {', '.join(GATES)}, replay")
    return GATES[routing](total, spec, rng)


def route_layer(
    spec: MoESpec,
    tokens: int,
    routing: str,
    seed: int,
    table: str | Path | None = None,
    alpha: float = 1.0,
    dirichlet: float | None = None,
) -> Traffic:
    """Gate and select for ``tokens`` tokens on every EP rank; count the layer's messages."""
    rng = np.random.default_rng(seed)
    return layer_traffic(
        route_choices(spec, tokens * spec.ep, routing, rng, table, alpha, dirichlet),
        np.repeat(np.arange(spec.ep), tokens),
        spec,
    )


def route_choices(
    spec: MoESpec,
    total: int,
    routing: str,
    rng: np.random.Generator,
    table: str | Path | None = None,
    alpha: float = 1.0,
    dirichlet: float | None = None,
) -> np.ndarray:
    """Chosen experts of ``total`` tokens, scoring and selecting block by block (cache-friendly).

    ``balanced`` is constructed directly (its scores make the selection pick exactly these experts,
    which a test checks); a replayed table is routed whole.
    """
    if routing == "balanced":
        return balanced_choices(total, spec)  # what selection picks from balanced scores (tested)
    period = spec.groups * spec.experts_per_group
    block = max(period, CHUNK // period * period)
    if routing == "replay" or total <= block:
        return select_experts(layer_scores(spec, total, routing, rng, table, alpha, dirichlet), spec)
    popular = popularity(spec, rng, alpha, dirichlet) if routing == "skewed" else None
    parts = []
    for start in range(0, total, block):
        n = min(block, total - start)
        scores = skewed_scores(n, spec, rng, popular) if popular is not None else layer_scores(spec, n, routing, rng)
        parts.append(select_experts(scores, spec))
    return np.concatenate(parts)


def run_alltoall(topo: Topology, traffic: Traffic, kernel: KernelSpec) -> AlltoallResult:
    split = SmSplit(comm_sms=kernel.comm_sms, coprocessor=kernel.coprocessor)
    return AlltoallResult(
        comm_sms=kernel.comm_sms,
        compute_sms=split.compute_sms,
        gemm_throughput_fraction=split.gemm_throughput_fraction(),
        dispatch=simulate_phase(topo, traffic, kernel, "dispatch"),
        combine=simulate_phase(topo, traffic, kernel, "combine"),
        traffic=traffic,
    )


def sm_sweep(topo: Topology, traffic: Traffic, kernel: KernelSpec, sms: list[int]) -> list[AlltoallResult]:
    return [run_alltoall(topo, traffic, replace(kernel, comm_sms=n)) for n in sms]
