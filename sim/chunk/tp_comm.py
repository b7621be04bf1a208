"""Tensor-parallel collectives for chunk timing, on the run's shared flow network.

With sequence parallelism (Megatron-Core's ``--sequence-parallel``) a TP region is entered by an
all-gather of the hidden states over the TP group and left by a reduce-scatter; the backward mirrors
them, and the weight gradient of a column-parallel linear all-gathers its input again
(:mod:`sim.model.layer`). Each is a ring collective of NCCL's kind over the ``tp`` GPUs of a group,
inside a node, so on NVLink. A rank's TP groups run in lockstep (representative timing), so a
collective is timed with every group of the timed rank at once, alone on the shared network (the
phases of each ring as coflows, :func:`sim.network.collectives.collective_coflows`), and memoised by
kind and size. In the step, each becomes a coflow of the rank's groups on the shared network, re-timed
with whatever else runs there (:mod:`sim.step.shared`).

Which resources they use: NCCL runs them as kernels on SMs (a few channels, each a thread block),
launched on their own stream but waited for by the next compute kernel. Without TP communication
overlap (Megatron's ``--tp-comm-overlap``, not modelled yet) they never run beside compute, so the
SMs they hold are not taken from a kernel: the chunk puts them on the communication stream with the
compute that follows depending on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.network.collectives import coflow_process, collective_coflows
from sim.network.context import SimContext

TAG = "tp"  # the collectives' tag in the network's statistics and link log when timed alone


@dataclass(frozen=True)
class TpCollective:
    """What a TP comm task moves: an all-gather or reduce-scatter of ``nbytes`` per rank (nccl-tests'
    size: the all-gather's output, the reduce-scatter's input) over each TP group."""

    kind: str  # "allgather" or "reducescatter"
    nbytes: float
    group: str = "tp"  # over the TP groups, "cp": the CP groups (ranks of one TP index), "etp": expert TP


class TpModel:
    """Times the TP collectives of ``groups`` (arrays of cluster GPU ids, one per TP group of the timed
    rank) together, alone on ``shared``."""

    def __init__(self, shared: SimContext, groups: list[np.ndarray]) -> None:
        self.shared = shared
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self._memo: dict[tuple[str, float], float] = {}

    def key(self) -> tuple[object, ...]:
        return (id(self.shared), tuple(tuple(g.tolist()) for g in self.groups))

    def time(self, c: TpCollective) -> float:
        key = (c.kind, c.nbytes)  # a model serves one kind of group (TP or CP)
        hit = self._memo.get(key)
        if hit is None:
            net = self.shared.network
            procs = [
                coflow_process(net, collective_coflows(net.topo, c.kind, g, c.nbytes, "ring", net.seed), TAG)
                for g in self.groups
                if len(g) > 1 and c.nbytes > 0
            ]
            hit = self._memo[key] = float(self.shared.run_alone(procs))
        return hit


def tp_collective(comm: str, nbytes: float) -> TpCollective:
    """The collective of a layer op's ``comm`` (``tp-allgather``, ``cp-reducescatter``, ...)."""
    group, kind = comm.split("-", 1)
    return TpCollective(kind, nbytes, group)
