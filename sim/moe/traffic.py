"""Dispatch and combine traffic of one MoE layer with DeepEP's two-hop deduplication.

Token ``t`` lives on GPU ``s`` (node ``ns``, in-node index ``ls``) and chose experts hosted on GPUs
``D``, on nodes ``N``:

* IB: one message per (token, remote node) in ``N``: ``s`` -> the GPU with index ``ls`` on that node,
  whatever the number of experts chosen there (deduplication);
* NVLink: that forwarder sends one message to each other GPU of its node in ``D``; for the local
  node ``s`` sends to each GPU of ``D`` on ``ns`` directly (no IB);
* a token never travels to its own GPU.

Combine is the same set of messages in reverse (accumulated at the forwarder over NVLink, then at
the source over IB) with the combine payload. All counting is vectorised over tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.moe.multicast import NodeSets
from sim.moe.spec import MoESpec


@dataclass(frozen=True)
class Traffic:
    """Token counts of one layer for one EP group (GPUs numbered 0..EP-1 within the group).

    ``ib[s, n]``: tokens GPU ``s`` sends over IB to node ``n`` (to its GPU with s's in-node index).
    ``nvlink[a, b]``: tokens GPU ``a`` sends over NVLink to GPU ``b`` (same node).
    ``logical_rdma[s]``: distinct (token, node) pairs of s's tokens including the local node
    (what DeepEP's tests count as RDMA bytes). ``nodes_per_token``: distinct nodes per token.
    """

    spec: MoESpec
    ib: np.ndarray
    nvlink: np.ndarray
    logical_rdma: np.ndarray
    tokens_per_expert: np.ndarray
    nodes_per_token: np.ndarray
    padded_rows: np.ndarray | None = None  # rows each expert computes when padded to capacity
    node_sets: NodeSets | None = None  # tokens by their set of remote nodes (multicast, in-network reduction)

    @property
    def expert_rows(self) -> np.ndarray:
        """Rows each expert's GEMMs compute: its tokens, or its capacity's rows when padded
        (:mod:`sim.moe.capacity`)."""
        return self.tokens_per_expert if self.padded_rows is None else self.padded_rows

    @property
    def tokens_per_gpu(self) -> np.ndarray:
        """Token-expert pairs each GPU computes (the M of its expert GEMMs, summed)."""
        return self.tokens_per_expert.reshape(self.spec.ep, self.spec.experts_per_gpu).sum(axis=1)

    def ib_dst_gpu(self, src: int, node: int) -> int:
        return node * self.spec.gpus_per_node + src % self.spec.gpus_per_node

    def bytes_per_token(self, phase: str) -> float:
        per = self.spec.dispatch_bytes_per_elem if phase == "dispatch" else self.spec.combine_bytes_per_elem
        return self.spec.hidden * per

    def ib_bytes_per_gpu(self, phase: str = "dispatch") -> np.ndarray:
        return self.ib.sum(axis=1) * self.bytes_per_token(phase)

    def nvlink_bytes_per_gpu(self, phase: str = "dispatch") -> np.ndarray:
        return self.nvlink.sum(axis=1) * self.bytes_per_token(phase)


def _first_in_row(sorted_rows: np.ndarray) -> np.ndarray:
    first = np.ones(sorted_rows.shape, dtype=bool)
    first[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    return first


CHUNK = 8192  # tokens per block for the sorting counter; cache-sized blocks are about 2x faster
MASK_CHUNK = 1 << 20  # tokens per block for the bitmask counter (bigger is faster; bounds memory)

_U64 = np.uint64
_BYTE_LOW_BITS = _U64(0x0101010101010101)
_GATHER_BYTE_BITS = _U64(0x0102040810204080)  # (x * this) >> 56 packs the low bit of byte n into bit n
_BITS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)  # byte value -> its 8 bits
_POPCOUNT = _BITS.sum(axis=1)


def masks_fit(spec: MoESpec) -> bool:
    """Whether the bitmask counter applies: a byte per node (<= 8 GPUs) and <= 8 nodes (one uint64)."""
    return spec.gpus_per_node <= 8 and spec.nodes <= 8


def layer_traffic(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> Traffic:
    """Count the messages of one layer: ``choices`` (tokens x topk) of tokens living on GPUs ``src``.

    Uses the bitmask counter when :func:`masks_fit`, else the sorting counter; both give identical
    counts (a test checks) and take ``choices`` in any order within a row.
    """
    src = np.asarray(src, dtype=np.int64)
    dropped = bool((choices < 0).any())  # capacity-dropped choices: the sorting counter skips them
    count, chunk = (_count_masks, MASK_CHUNK) if masks_fit(spec) and not dropped else (_count, CHUNK)
    if len(src) <= chunk:
        return count(choices, src, spec)
    parts = [count(choices[i : i + chunk], src[i : i + chunk], spec) for i in range(0, len(src), chunk)]
    return Traffic(
        spec=spec,
        ib=sum((p.ib for p in parts), np.zeros_like(parts[0].ib)),
        nvlink=sum((p.nvlink for p in parts), np.zeros_like(parts[0].nvlink)),
        logical_rdma=sum((p.logical_rdma for p in parts), np.zeros_like(parts[0].logical_rdma)),
        tokens_per_expert=sum((p.tokens_per_expert for p in parts), np.zeros_like(parts[0].tokens_per_expert)),
        nodes_per_token=np.concatenate([p.nodes_per_token for p in parts]),
    )


def _count(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> Traffic:
    """Sorting counter (any shape): sort each token's GPUs, keep the first of each GPU and node.
    Negative choices (dropped by capacity, :mod:`sim.moe.capacity`) go nowhere."""
    g, ep, nodes = spec.gpus_per_node, spec.ep, spec.nodes
    gpu = np.sort(choices.astype(np.int64) // spec.experts_per_gpu, axis=1)  # a dropped choice: -1, sorted first
    node = gpu // g  # still sorted per row
    ns, ls = src // g, src % g
    rows = np.broadcast_to(np.arange(len(src))[:, None], gpu.shape)
    valid = gpu >= 0

    node_first = _first_in_row(node) & valid
    remote_node = node_first & (node != ns[:, None])
    ib = np.bincount(src[rows[remote_node]] * nodes + node[remote_node], minlength=ep * nodes).reshape(ep, nodes)
    logical = np.bincount(src[rows[node_first]], minlength=ep)

    gpu_first = _first_in_row(gpu) & valid
    local = node == ns[:, None]
    sender = np.where(local, src[:, None], node * g + ls[:, None])
    moves = gpu_first & (gpu != sender)
    nvlink = np.bincount(sender[moves] * ep + gpu[moves], minlength=ep * ep).reshape(ep, ep)

    return Traffic(
        spec=spec,
        ib=ib,
        nvlink=nvlink,
        logical_rdma=logical,
        tokens_per_expert=np.bincount(choices[choices >= 0].astype(np.int64), minlength=spec.experts),
        nodes_per_token=node_first.sum(axis=1),
    )


def _count_masks(choices: np.ndarray, src: np.ndarray, spec: MoESpec) -> Traffic:
    """Bitmask counter (at most 8 nodes of at most 8 GPUs), about 10x faster than sorting.

    Each token's destination GPUs become one uint64 with a byte per node (bit ``local`` of byte
    ``node``), which deduplicates GPUs for free. Byte ``n`` non-zero means the token reaches node
    ``n``; those bits packed give an 8-bit node mask. Then:

    * ``ib`` and ``logical_rdma`` come from one histogram over (source GPU, node mask);
    * NVLink: the sender on node ``n`` always has the source's in-node index ``ls`` (the source
      itself on its own node, its IB forwarder elsewhere) and sends to the GPUs of byte ``n``
      except bit ``ls``, so a histogram over (node, ls, byte n) gives every NVLink count.
    """
    g, ep, nodes, tokens = spec.gpus_per_node, spec.ep, spec.nodes, len(src)
    gpu = choices // spec.experts_per_gpu
    slot = (gpu + (gpu // g) * (8 - g)).astype(np.uint8)  # node * 8 + local
    mask = np.zeros(tokens, _U64)
    for j in range(choices.shape[1]):
        mask |= np.left_shift(_U64(1), slot[:, j], dtype=_U64)
    nonzero = mask | (mask >> _U64(4))
    nonzero |= nonzero >> _U64(2)
    nonzero |= nonzero >> _U64(1)
    nonzero &= _BYTE_LOW_BITS
    node_mask = ((nonzero * _GATHER_BYTE_BITS) >> _U64(56)).astype(np.intp)

    per_node = (np.bincount(src * 256 + node_mask, minlength=ep * 256).reshape(ep, 256) @ _BITS)[:, :nodes]
    logical = per_node.sum(axis=1)
    ib = per_node.copy()
    ib[np.arange(ep), np.arange(ep) // g] = 0

    node_bytes = mask.astype("<u8", copy=False).view(np.uint8).reshape(tokens, 8)  # byte n = node n
    local256 = (src % g) * 256
    hist = np.stack([np.bincount(local256 + node_bytes[:, n], minlength=g * 256) for n in range(nodes)])
    pairs = hist.reshape(nodes, g, 256) @ _BITS[:, :g]  # [node, sender index, receiver index]
    pairs[:, np.arange(g), np.arange(g)] = 0
    nvlink = np.zeros((ep, ep), dtype=np.int64)
    for n in range(nodes):
        lo, hi = n * g, min((n + 1) * g, ep)
        nvlink[lo:hi, lo:hi] = pairs[n, : hi - lo, : hi - lo]

    return Traffic(
        spec=spec,
        ib=ib,
        nvlink=nvlink,
        logical_rdma=logical,
        tokens_per_expert=np.bincount(choices.ravel(), minlength=spec.experts),
        nodes_per_token=_POPCOUNT[node_mask],
    )
