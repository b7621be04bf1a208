"""One EP all-to-all (dispatch + combine) of an MoE layer, end to end: gate, select, count, simulate.

Used by ``twin alltoall``: EP rank r runs on cluster GPU r, each rank holds ``tokens`` tokens.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import H800, GpuSpec, SmSplit
from sim.moe.capacity import capacity, drop_over_capacity, padded_rows
from sim.moe.deepep import KernelSpec, PhaseResult, simulate_phase
from sim.moe.gating import Gating, balanced_choices, replay_choices
from sim.moe.multicast import node_sets
from sim.moe.nccl_a2a import direct_traffic
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


def route_layer(spec: MoESpec, tokens: int, gating: Gating | str, seed: int) -> Traffic:
    """Gate and select for ``tokens`` tokens on every EP rank; count the layer's messages."""
    gating = Gating.of(gating)
    plain = gating.capacity_factor is None and gating.dispatcher == "deepep" and not gating.node_sets
    if gating.routing == "balanced" and plain:
        return balanced_traffic(spec, tokens)
    rng = np.random.default_rng(seed)
    choices = route_choices(spec, tokens * spec.ep, gating, rng)
    src = np.repeat(np.arange(spec.ep), tokens)
    if not plain:
        return capacity_traffic(spec, tokens, choices, src, gating)
    return layer_traffic(choices, src, spec)


def balanced_traffic(spec: MoESpec, tokens: int) -> Traffic:
    """:func:`layer_traffic` of ``balanced`` routing with ``tokens`` tokens on every EP rank, counted
    on one period of its pattern.

    ``balanced`` repeats every ``experts`` tokens of the whole micro-batch
    (:func:`sim.moe.gating.balanced_choices`) and rank ``g`` holds tokens ``g * tokens ..``, so when
    ``tokens`` is a multiple of ``experts`` every rank holds the same ``tokens / experts`` whole
    periods, starting at the pattern's start. Every count is then that many times the counts of one
    period per rank (integers: exact), and each token's node count repeats with its rank's period.
    Otherwise the whole micro-batch is counted.
    """
    period = spec.experts
    reps, rest = divmod(tokens, period)
    if rest or reps < 2:
        return layer_traffic(balanced_choices(tokens * spec.ep, spec), np.repeat(np.arange(spec.ep), tokens), spec)
    one = layer_traffic(balanced_choices(period * spec.ep, spec), np.repeat(np.arange(spec.ep), period), spec)
    return Traffic(
        spec=spec,
        ib=one.ib * reps,
        nvlink=one.nvlink * reps,
        logical_rdma=one.logical_rdma * reps,
        tokens_per_expert=one.tokens_per_expert * reps,
        nodes_per_token=np.tile(one.nodes_per_token.reshape(spec.ep, period), (1, reps)).ravel(),
    )


def route_layers(
    spec: MoESpec, tokens: int, layers: int, gating: Gating | str, seed: int, workers: int | None = None
) -> list[Traffic]:
    """Route one micro-batch through ``layers`` MoE layers: ``tokens`` tokens on every EP rank.

    Layer ``i`` draws from its own stream (``SeedSequence(seed).spawn``), so the result depends on
    the seed only, not on ``workers``: threads (default: one per CPU, at most ``layers``) route
    layers in parallel, which numpy and the compiled sampler allow because they release the GIL.
    ``random`` and ``skewed`` use the fast exact sampler unless ``gating.sampler`` is ``reference``
    (same distribution, different draws: a seed gives other, equally likely, routings on each path).
    """
    streams = np.random.SeedSequence(seed).spawn(layers)
    src = np.repeat(np.arange(spec.ep), tokens)
    gating = Gating.of(gating)
    fast = gating.uses_fast_sampler()

    def one(stream: np.random.SeedSequence) -> Traffic:
        if gating.capacity_factor is not None or gating.dispatcher != "deepep" or gating.node_sets:  # from choices
            choices = route_choices(spec, tokens * spec.ep, gating, np.random.default_rng(stream))
            return capacity_traffic(spec, tokens, choices, src, gating)
        if gating.routing == "balanced":
            return balanced_traffic(spec, tokens)
        rng = np.random.default_rng(stream)
        if fast:  # sampled and counted in one compiled pass
            from sim.moe.sampling import sample_traffic  # imports numba: only when used

            return sample_traffic(spec, src, rng, gating.expert_weights(spec, rng))
        choices = route_choices(spec, tokens * spec.ep, gating, rng)
        return layer_traffic(choices, src, spec)

    workers = max(1, min(layers, workers or os.cpu_count() or 1))
    if workers == 1:
        return [one(s) for s in streams]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, streams))


def capacity_traffic(spec: MoESpec, tokens: int, choices: np.ndarray, src: np.ndarray, gating: Gating) -> Traffic:
    """The messages of ``choices`` as ``gating.dispatcher`` sends them (DeepEP's, :func:`layer_traffic`,
    or NCCL all-to-all's, :func:`sim.moe.nccl_a2a.direct_traffic`), after the capacity of
    ``gating.capacity_factor`` (if any) has dropped what it drops, with every expert's rows padded to
    capacity where asked (:mod:`sim.moe.capacity`), and each token's set of remote nodes counted where
    ``gating.node_sets`` asks (:mod:`sim.moe.multicast`)."""
    count = direct_traffic if gating.dispatcher == "alltoall" else layer_traffic
    if gating.capacity_factor is None:
        t = count(choices, src, spec)
    else:
        cap = capacity(tokens, spec.topk, spec.experts, gating.capacity_factor)
        choices = drop_over_capacity(choices, src, spec.experts, cap)
        t = count(choices, src, spec)
        if gating.pad_to_capacity:
            t = replace(t, padded_rows=padded_rows(spec.ep, spec.experts, cap))
    return replace(t, node_sets=node_sets(choices, src, spec)) if gating.node_sets else t


def route_choices(spec: MoESpec, total: int, gating: Gating | str, rng: np.random.Generator) -> np.ndarray:
    """Chosen experts of ``total`` tokens, scoring and selecting block by block (cache-friendly).

    ``balanced`` is constructed directly (its scores make the selection pick exactly these experts,
    which a test checks); a replayed table is used as recorded; ``random`` and ``skewed`` use the
    fast exact sampler (:mod:`sim.moe.sampling`) unless ``gating.sampler`` is ``reference``.
    """
    gating = Gating.of(gating)
    if gating.routing == "balanced":
        return balanced_choices(total, spec)
    if gating.routing == "replay":
        if gating.table is None:
            raise ScenarioError("routing_table", "replay needs a routing table")
        return replay_choices(gating.table, total, spec)
    if gating.uses_fast_sampler():
        from sim.moe.sampling import sample_choices  # imports numba: only when used

        return sample_choices(spec, total, rng, gating.expert_weights(spec, rng))
    scores = gating.scorer(spec, rng)
    if total <= CHUNK:
        return select_experts(scores(total), spec)
    return np.concatenate([select_experts(scores(min(CHUNK, total - i)), spec) for i in range(0, total, CHUNK)])


def run_alltoall(
    topo: Topology, traffic: Traffic, kernel: KernelSpec, model: CostModel | None = None, gpu: GpuSpec = H800
) -> AlltoallResult:
    """Dispatch and combine on ``topo``; the GEMM throughput left on ``gpu`` uses ``model``'s measured
    SM curve when given (a calibration profile), else the linear default."""
    split = SmSplit(gpu=gpu, comm_sms=kernel.comm_sms, coprocessor=kernel.coprocessor)
    return AlltoallResult(
        comm_sms=kernel.comm_sms,
        compute_sms=split.compute_sms,
        gemm_throughput_fraction=split.gemm_throughput_fraction(model),
        dispatch=simulate_phase(topo, traffic, kernel, "dispatch"),
        combine=simulate_phase(topo, traffic, kernel, "combine"),
        traffic=traffic,
    )


def sm_sweep(
    topo: Topology,
    traffic: Traffic,
    kernel: KernelSpec,
    sms: list[int],
    model: CostModel | None = None,
    gpu: GpuSpec = H800,
) -> list[AlltoallResult]:
    return [run_alltoall(topo, traffic, replace(kernel, comm_sms=n), model, gpu) for n in sms]
