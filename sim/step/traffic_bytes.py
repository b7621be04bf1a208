"""Bytes a training step moves over IB and NVLink, per node (byte accounting of a simulated step).

Counted per step from the same pieces the simulation runs, each routed on the cluster's fabric
(:func:`sim.network.routing.route`, so PXN forwarding in a multi-plane fabric counts too):

* ``ep``: DeepEP all-to-alls. Every MoE layer (MTP blocks included) of every stage, for every
  micro-batch that passes the stage and every EP group of its rank, runs four phases: the forward's
  dispatch (FP8 payload) and combine (BF16), and the backward's combine(B) (a dispatch of the FP8 output
  gradients) and dispatch(B) (a combine). Their messages are the routed traffic
  (:class:`sim.moe.traffic.Traffic`: IB token counts to each node, NVLink token counts between GPUs
  of a node) times the phase's bytes per token, as :func:`sim.moe.deepep.message_flows` sends them;
  combine runs the messages in reverse.
* ``pp``: pipeline sends. Every GPU of a rank runs its own micro-batch; at each boundary of a route
  between stages on different ranks, each GPU sends the micro-batch's hidden states (BF16) to the GPU
  with the same index on the next rank, and the backward sends the gradient of the same size back.
* ``dp``: ZeRO-1. Each replica set's gradient reduce-scatter and parameter all-gather (the non-expert
  group and every expert's replicas, :meth:`sim.step.zero1.DpModel.groups`), with the flows of the
  collective's algorithm (:func:`sim.network.collectives.collective_flows`); and the shared
  embedding's gradient all-reduce between the pipeline's ends where it crosses ranks
  (:mod:`sim.step.tied_embedding`). Under FSDP none of these runs (its own collectives replace them).
* ``tp``, ``cp``, ``etp``, ``fsdp``: the tensor-, context- and expert-tensor-parallel collectives and
  FSDP's per-unit all-gathers and reduce-scatters, where the layout has them. These are many
  (a few per layer and micro-batch) and already summed per link by the step's run on the shared
  network: their bytes are read from its link log (every coflow that ran, the bytes its kind puts on
  each link), so they need a run with ``contention: shared`` (with ``isolated`` they are timed alone
  and :attr:`NodeBytes.uncounted` names them).

A node's IB bytes are those leaving it through its NICs (the ``nic_up`` links of its GPUs); its
NVLink bytes those its GPUs send into the NVSwitch (``nv_up``). Received bytes are not added again
(every byte sent is received once). Not counted: DeepEP's notify exchange of counts (a few bytes per
pair), the gradient-norm all-reduce, and traffic of ranks' GPUs outside the job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from sim.moe.deepep import message_flows
from sim.moe.multicast import NodeSets
from sim.moe.traffic import Traffic
from sim.network.collectives import collective_flows
from sim.network.routing import route, route_trees, tree_bytes
from sim.network.topology import Topology
from sim.step.simulate import StepRun
from sim.step.tied_embedding import embedding_groups, embedding_pair
from sim.step.zero1 import DpModel, ReplicaSet

COMPONENTS = ("ep", "pp", "dp", "tp", "cp", "etp", "fsdp")
LOGGED = ("tp", "cp", "etp", "fsdp")  # read from the run's link log (their coflows' tags there)
PHASES_PER_LAYER = {"dispatch": 2, "combine": 2}  # forward dispatch + backward combine(B); and the reverse


@dataclass(frozen=True)
class NodeBytes:
    """Bytes per step per node, by component (``ep``, ``pp``, ``dp``) and medium.

    ``ib[c]`` and ``nvlink[c]`` are arrays of shape (pipeline ranks, nodes per rank): row ``d`` holds
    the nodes of rank ``d`` in order (node ``d * nodes_per_rank + j`` of the cluster at column ``j``)."""

    ranks: int
    nodes_per_rank: int
    ib: dict[str, np.ndarray]
    nvlink: dict[str, np.ndarray]
    uncounted: tuple[str, ...] = ()  # components the layout has that could not be counted (no link log)

    def present(self) -> list[str]:
        """The components that moved bytes, in :data:`COMPONENTS` order (EP, pipeline and DP always)."""
        return [c for c in COMPONENTS if c in ("ep", "pp", "dp") or self.ib[c].any() or self.nvlink[c].any()]

    def total(self, medium: str) -> np.ndarray:
        """All components of ``medium`` (``ib`` or ``nvlink``) per node."""
        parts = self.ib if medium == "ib" else self.nvlink
        return sum((parts[c] for c in COMPONENTS), np.zeros((self.ranks, self.nodes_per_rank)))


class _Flows:
    """Flows gathered by component, then routed once."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {c: [] for c in COMPONENTS}
        self.tree_links: dict[str, list[np.ndarray]] = {c: [] for c in COMPONENTS}  # link bytes of trees

    def add(
        self, component: str, src: np.ndarray, dst: np.ndarray, nbytes: np.ndarray, trees: np.ndarray | None = None
    ) -> None:
        if not len(src):
            return
        if trees is not None:  # multicast or reduction trees: routed now, each tree's bytes once per link
            routes = route_trees(self.topo, src, dst, trees)
            per_tree, _ = tree_bytes(np.asarray(nbytes, dtype=np.float64), trees)
            hops = np.diff(routes.indptr)
            self.tree_links[component].append(
                np.bincount(routes.links, weights=np.repeat(per_tree, hops), minlength=self.topo.num_links)
            )
            return
        self.parts[component].append((np.asarray(src), np.asarray(dst), np.asarray(nbytes, dtype=np.float64)))

    def add_link_bytes(self, component: str, link_bytes: np.ndarray) -> None:
        """Bytes already summed per link (coflows that ran)."""
        self.tree_links[component].append(link_bytes)

    def per_gpu(self, topo: Topology, component: str) -> tuple[np.ndarray, np.ndarray]:
        """(NIC egress, NVLink egress) bytes per cluster GPU."""
        ib = np.zeros(topo.gpus)
        nv = np.zeros(topo.gpus)
        parts = self.parts[component]
        link_bytes = sum(self.tree_links[component], np.zeros(topo.num_links))
        if not parts and not self.tree_links[component]:
            return ib, nv
        if parts:
            src = np.concatenate([p[0] for p in parts]).astype(np.int64)
            dst = np.concatenate([p[1] for p in parts]).astype(np.int64)
            nbytes = np.concatenate([p[2] for p in parts])
            pair, inverse = np.unique(src * topo.gpus + dst, return_inverse=True)
            summed = np.bincount(inverse, weights=nbytes, minlength=len(pair))
            routes = route(topo, pair // topo.gpus, pair % topo.gpus)
            hops = np.diff(routes.indptr)
            link_bytes = link_bytes + np.bincount(
                routes.links, weights=np.repeat(summed, hops), minlength=topo.num_links
            )
        nic, nvl = topo.blocks["nic_up"], topo.blocks["nv_up"]
        ib[: nic.count] = link_bytes[nic.offset : nic.offset + nic.count]
        nv[: nvl.count] = link_bytes[nvl.offset : nvl.offset + nvl.count]
        return ib, nv


def _stage_microbatches(step: StepRun) -> dict[tuple[int, int], int]:
    """(schedule stage, routing sample) -> micro-batches of that sample passing the stage."""
    sched = step.spec.schedule
    samples = step.spec.inputs.routing_samples
    out: Counter[tuple[int, int]] = Counter()
    for mb in range(sched.num_microbatches):
        for stage in sched.route_of(mb):
            out[(stage, mb % samples)] += 1
    return dict(out)


def _ep_flows(step: StepRun, flows: _Flows) -> None:
    inp = step.spec.inputs
    lay, model = inp.layout, inp.model
    if lay.ep <= 1:
        return
    sched = step.spec.schedule
    routing = step.pipelines[0].source.routing
    passes = _stage_microbatches(step)
    for d in range(lay.devices):
        for g in range(lay.ep_groups):
            weighted: dict[int, tuple[Traffic, int]] = {}
            for (stage, sample), mbs in passes.items():
                if sched.stage_device[stage] != d:
                    continue
                place = lay.stages[stage]
                moe = tuple(i for i in place.layers if i >= model.n_layers or model.is_moe(i))
                if not moe:
                    continue
                for t in routing.traffic(moe, (d, stage, g), sample).values():
                    prev = weighted.get(id(t), (t, 0))
                    weighted[id(t)] = (t, prev[1] + mbs)
            if not weighted:
                continue
            traffics = list(weighted.values())
            first = traffics[0][0]
            sets = [t.node_sets.scaled(n) for t, n in traffics if t.node_sets is not None]
            total = replace(
                first,
                ib=sum((t.ib.astype(np.float64) * n for t, n in traffics), np.zeros(first.ib.shape)),
                nvlink=sum((t.nvlink.astype(np.float64) * n for t, n in traffics), np.zeros(first.nvlink.shape)),
                node_sets=NodeSets.concat(sets) if sets else None,
            )
            gpus = lay.ep_group(d, g)
            for phase, times in PHASES_PER_LAYER.items():
                src, dst, nbytes, _, trees = message_flows(total, gpus, phase, inp.kernel.trees(phase))
                flows.add("ep", src, dst, nbytes * times, trees)


def _pp_flows(step: StepRun, flows: _Flows) -> None:
    lay = step.spec.inputs.layout
    sched = step.spec.schedule
    crossings: Counter[tuple[int, int]] = Counter()  # (from rank, to rank) -> micro-batch sends
    for mb in range(sched.num_microbatches):
        for a, b in pairwise(sched.route_of(mb)):
            da, db = sched.stage_device[a], sched.stage_device[b]
            if da != db:
                crossings[(da, db)] += 1  # activations forward
                crossings[(db, da)] += 1  # their gradients backward
    for (da, db), n in crossings.items():
        src, dst = lay.rank_gpus(da), lay.rank_gpus(db)
        flows.add("pp", src, dst, np.full(len(src), step.spec.activation_bytes * n))


def _dp_flows(step: StepRun, flows: _Flows) -> None:
    inp = step.spec.inputs
    lay = inp.layout
    sched = step.spec.schedule
    if lay.fsdp:  # its per-unit collectives replace ZeRO-1's (counted from the link log)
        return
    pair = embedding_pair(inp.model, lay, sched)
    if pair is not None:
        for gpus, size, algo in embedding_groups(inp.model, lay, pair, step.spec.dp.grad_reduce_bytes):
            flows.add("dp", *collective_flows(step.spec.topology, "allreduce", gpus, size, algo))
    model = DpModel(step.spec.dp, inp.model, lay, sched, step.spec.topology, inp.cost.memory_time)
    seen: set[tuple[int, ...]] = set()
    for d in range(lay.devices):
        phase = step.dp[d]
        rset: ReplicaSet = phase.rset
        if rset.ranks in seen:
            continue
        seen.add(rset.ranks)
        for kind in ("reducescatter", "allgather"):
            for gpus, size, algo in model.groups(kind, rset, phase.params):
                src, dst, nbytes = collective_flows(step.spec.topology, kind, gpus, size, algo)
                flows.add("dp", src, dst, nbytes)


def _wanted(step: StepRun) -> set[str]:
    """The logged components the step's layout runs."""
    lay = step.spec.inputs.layout
    has = {"tp": lay.tp > 1, "cp": lay.cp > 1, "etp": lay.etp > 1, "fsdp": lay.fsdp}
    return {c for c, yes in has.items() if yes}


def _logged_flows(step: StepRun, flows: _Flows) -> tuple[str, ...]:
    """Adds the bytes of the logged components' coflows per link; returns those it could not count."""
    wanted = _wanted(step)
    links = step.links
    if not wanted:
        return ()
    if links is None or step.spec.contention != "shared":  # (isolated: they ran alone, off the log)
        return tuple(c for c in LOGGED if c in wanted)
    topo = step.spec.topology
    runs: Counter[tuple[int, str]] = Counter(
        (k, t) for k, t in zip(links.log.kinds, links.log.tags, strict=True) if t in wanted
    )
    totals = {c: np.zeros(topo.num_links) for c in wanted}
    for (kind, tag), n in runs.items():
        kind_links, kind_bytes = links.kind_links[kind]
        np.add.at(totals[tag], kind_links, kind_bytes * n)
    for c, link_bytes in totals.items():
        flows.add_link_bytes(c, link_bytes)
    return ()


def node_bytes(step: StepRun) -> NodeBytes:
    """IB and NVLink bytes of one step per node of the job, by component (module docstring)."""
    topo = step.spec.topology
    lay = step.spec.inputs.layout
    g = lay.gpus_per_node
    per_rank = lay.gpus_per_rank // g
    flows = _Flows(topo)
    _ep_flows(step, flows)
    _pp_flows(step, flows)
    _dp_flows(step, flows)
    uncounted = _logged_flows(step, flows)
    ib: dict[str, np.ndarray] = {}
    nv: dict[str, np.ndarray] = {}
    job_nodes = lay.devices * per_rank
    for c in COMPONENTS:
        gpu_ib, gpu_nv = flows.per_gpu(topo, c)
        ib[c] = gpu_ib[: job_nodes * g].reshape(job_nodes, g).sum(axis=1).reshape(lay.devices, per_rank)
        nv[c] = gpu_nv[: job_nodes * g].reshape(job_nodes, g).sum(axis=1).reshape(lay.devices, per_rank)
    return NodeBytes(lay.devices, per_rank, ib, nv, uncounted)
