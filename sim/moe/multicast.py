"""Switch multicast for the dispatch and in-network reduction for the combine (``comm.multicast``,
``comm.in_network_reduce``): the ISCA'25 paper's asks for the scale-out network.

DeepEP sends a token once per remote node it chose (:mod:`sim.moe.traffic`): from GPU ``s`` to the GPU
of ``s``'s in-node index on each node, so a token routed to ``k`` remote nodes crosses ``s``'s NIC
``k`` times. The ISCA'25 paper ("Insights into DeepSeek-V3", REFERENCE.md section 10) asks the
switch to do it:

* **multicast** (dispatch): ``s`` sends one copy, addressed to the token's set of nodes, and the
  switches replicate it where the paths part. On the flow-level network that is one flow along the
  *union* of the unicast paths to each node of the set (a multicast tree): it crosses each of the
  tree's links once, at one rate (the slowest branch's, as a switch forwarding one stream); the NIC of
  ``s`` and the SMs driving it carry one copy.
* **in-network reduction** (combine): each node's forwarder still sends its partial sum of the
  token's expert outputs, and the switches add them on the way, so ``s``'s NIC receives one copy. One
  flow along the union of the reversed paths (a reduction tree), each link once.

Both need each token's set of remote nodes, not only the per-node counts DeepEP's unicast needs:
:func:`node_sets` groups the tokens of each source GPU by that set (a bitmask of nodes) and counts
them; every set becomes one tree carrying its tokens. The NVLink hop (forwarder to the expert's GPU)
is unchanged. Invariant (tested): expanding each set into one message per node of the set gives back
DeepEP's IB counts exactly (:func:`unicast_counts`).

Not modelled: the switch's replication or reduction latency and any limit on multicast groups (a
switch holds a bounded number of groups; the paper does not size it), and the reduction's precision
(BF16 sums in the switch, as the paper assumes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.moe.spec import MoESpec


@dataclass(frozen=True)
class NodeSets:
    """Tokens of each source GPU grouped by their set of remote nodes: ``tokens[i]`` tokens live on EP
    rank ``src[i]`` and chose experts on exactly the remote nodes of bitmask ``mask[i]`` (the local node
    is not in it; a token with no remote node is not listed)."""

    src: np.ndarray
    mask: np.ndarray
    tokens: np.ndarray

    def scaled(self, times: float) -> NodeSets:
        return NodeSets(self.src, self.mask, self.tokens * times)

    @staticmethod
    def concat(parts: list[NodeSets]) -> NodeSets:
        return NodeSets(
            np.concatenate([p.src for p in parts]),
            np.concatenate([p.mask for p in parts]),
            np.concatenate([p.tokens.astype(np.float64) for p in parts]),
        )


def node_sets(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> NodeSets:
    """Group the tokens ``choices`` (tokens x topk expert ids, -1 for a choice dropped by capacity) on
    EP ranks ``src`` by their sets of remote nodes."""
    if spec.nodes > 62:
        raise ValueError(f"{spec.nodes} nodes: node sets are 62-bit masks")
    src = np.asarray(src, dtype=np.int64)
    gpu = choices.astype(np.int64) // spec.experts_per_gpu
    node = np.where(choices >= 0, gpu // spec.gpus_per_node, -1)
    remote = (node >= 0) & (node != (src // spec.gpus_per_node)[:, None])
    bits = np.where(remote, np.left_shift(np.int64(1), np.maximum(node, 0)), 0)
    mask = np.bitwise_or.reduce(bits, axis=1)
    keep = mask != 0
    key = src[keep] * (np.int64(1) << spec.nodes) + mask[keep]
    uniq, counts = np.unique(key, return_counts=True)
    return NodeSets(uniq >> spec.nodes, uniq & ((np.int64(1) << spec.nodes) - 1), counts.astype(np.float64))


def set_members(sets: NodeSets, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(set index, node) of every node of every set: the unicast messages the sets stand for."""
    has = (sets.mask[:, None] >> np.arange(nodes)[None, :]) & 1
    which, node = np.nonzero(has)
    return which, node


def unicast_counts(sets: NodeSets, spec: MoESpec) -> np.ndarray:
    """The IB counts DeepEP's unicast sends for these sets (``Traffic.ib``): one message per token and
    remote node of its set."""
    which, node = set_members(sets, spec.nodes)
    out = np.zeros((spec.ep, spec.nodes))
    np.add.at(out, (sets.src[which], node), sets.tokens[which])
    return out


def nothing_to_merge(spec: MoESpec, topk_key: str, limit_key: str) -> str | None:
    """Switch multicast and in-network reduction merge a token's copies to several remote nodes, so they
    do something only where a token reaches two. Where none does (an EP group of under three nodes, a
    node limit of one, or one expert a token: top-1 routing reaches one node), why, naming the inputs
    as the caller calls them (``topk_key``, ``limit_key``): the what-if is refused then (a scenario's
    ``comm.multicast``, ``twin alltoall --multicast``, each naming its own key); else None."""
    reach = min(spec.limit, spec.nodes - 1, spec.topk)  # the most other nodes a token reaches
    if reach >= 2:
        return None
    return (
        f"not used: an EP group of {spec.ep} GPUs spans {spec.nodes} node(s) (NVLink domains) and a token reaches "
        f"at most {reach} other node(s) ({topk_key} {spec.topk}, {limit_key} {spec.node_limit}), so no token has "
        "copies to merge"
    )


__all__ = ["NodeSets", "node_sets", "nothing_to_merge", "set_members", "unicast_counts"]
