"""The NCCL all-to-all token dispatcher (``workload.dispatcher: alltoall``): Megatron-Core's
``--moe-token-dispatcher-type alltoall`` beside DeepEP (:mod:`sim.moe.traffic`, :mod:`sim.moe.deepep`).

What it sends. Megatron-Core's ``MoEAlltoAllTokenDispatcher`` permutes a rank's tokens into one row
per (token, chosen expert) and exchanges the rows with ``torch.distributed.all_to_all_single``: a
token that chose two experts on one GPU, or several on one node, goes once per expert (DeepEP sends it
once per node and once per GPU). A row for an expert on the token's own GPU stays there.

Which path it takes. NCCL's all-to-all sends a row between two nodes through PXN (NCCL's default since
2.12: the data goes over NVLink to the source node's GPU on the destination's rail, the GPU with the
destination's in-node index, and from that GPU's NIC over the fabric), so the IB hop is
rail-aligned, as DeepEP's (whose NVLink hop is on the other side). Rows inside a node go over NVLink.
In :class:`~sim.moe.traffic.Traffic`'s terms: ``nvlink[s, relay]`` and ``ib[relay, node]`` per remote
row (relay = the source node's GPU with the destination's index; no NVLink hop where the source is
that GPU), ``nvlink[s, d]`` per row inside the node; so the DeepEP machinery (the flows, the combine as
the reverse of every message, the byte counts) applies unchanged. ``logical_rdma`` counts the rows to
other nodes.

How fast. NCCL's kernels are not DeepEP's: nothing here derives per-channel rates for them, so the
phase is bounded by the links alone (as DeepEP's co-processor what-if), with DeepEP's notify (the
exchange of the per-expert counts Megatron-Core does first, and the wait for the slowest rank) before
it. NCCL's kernels take SMs only while they run, and in the schedules that do not overlap them with
compute (1F1B, interleaved) nothing computes then: no SMs are set aside (``comm.sms`` defaults to 0,
as for a dense model). Under schedules that overlap EP communication with compute (DualPipe, combined
1F1B) NCCL's kernel holds ``nccl_sms`` (32) SMs of its own while it runs, and the compute beside it
runs on the rest (:mod:`sim.chunk.overheads`, :meth:`sim.chunk.op_cost.OpCoster.beside_nccl`).

:func:`direct_traffic` is vectorised; :func:`direct_traffic_reference` counts row by row.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.moe.spec import MoESpec
from sim.moe.traffic import Traffic, layer_traffic


def direct_traffic(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> Traffic:
    """The all-to-all dispatcher's messages for ``choices`` (tokens x top-k expert ids; negative: dropped
    by capacity) of tokens on EP ranks ``src`` (the module docstring)."""
    g, ep, nodes = spec.gpus_per_node, spec.ep, spec.nodes
    k = choices.shape[1]
    flat = choices.ravel().astype(np.int64)
    s = np.repeat(np.asarray(src, dtype=np.int64), k)
    keep = (flat >= 0) & (flat // spec.experts_per_gpu != s)
    s, d = s[keep], flat[keep] // spec.experts_per_gpu
    ns, nd = s // g, d // g
    inside = ns == nd
    relay = ns * g + d % g
    hop = ~inside & (relay != s)
    nvlink = np.bincount(np.r_[s[inside] * ep + d[inside], s[hop] * ep + relay[hop]], minlength=ep * ep).reshape(ep, ep)
    ib = np.bincount(relay[~inside] * nodes + nd[~inside], minlength=ep * nodes).reshape(ep, nodes)
    logical = np.bincount(s[~inside], minlength=ep)
    deepep = layer_traffic(choices, src, spec)  # the per-expert and per-token counts do not depend on the path
    return replace(deepep, ib=ib, nvlink=nvlink, logical_rdma=logical)


def direct_traffic_reference(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> tuple[np.ndarray, ...]:
    """(ib, nvlink, logical_rdma) of :func:`direct_traffic`, row by row."""
    g, ep, nodes, epg = spec.gpus_per_node, spec.ep, spec.nodes, spec.experts_per_gpu
    ib = np.zeros((ep, nodes), dtype=np.int64)
    nvlink = np.zeros((ep, ep), dtype=np.int64)
    logical = np.zeros(ep, dtype=np.int64)
    for t in range(choices.shape[0]):
        s = int(src[t])
        for e in choices[t]:
            if e < 0 or int(e) // epg == s:
                continue
            d = int(e) // epg
            if s // g == d // g:
                nvlink[s, d] += 1
                continue
            relay = (s // g) * g + d % g
            if relay != s:
                nvlink[s, relay] += 1
            ib[relay, d // g] += 1
            logical[s] += 1
    return ib, nvlink, logical


__all__ = ["direct_traffic", "direct_traffic_reference"]
