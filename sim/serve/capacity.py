"""What a unit serves flat out: each pool's throughput per node at its largest batch.

A simulated run reports what its traffic asked for; a planner also wants what the hardware could
give. For each pool, one forward at the batch limit, timed by the same :class:`ForwardModel`:

* **prefill**: ``max_batch_tokens`` new tokens on every DP rank, in prompts of the traffic's mean
  length with its mean cached prefix; input tokens per second per node count the cached prefix too
  (as DeepSeek's published 73.7k tokens/s per node does: "including on-disk cache hits");
* **decode**: ``max_batch`` requests on every DP rank with KV of the mean prompt plus half the mean
  output; each step yields 1 + the expected accepted MTP drafts per request
  (``sum_j p^j`` for ``j = 1..depth``).

These are upper bounds of the throughput a run can show (the run's batches are smaller unless the
queue is long), so they are what compares with another team's measured maximum.
"""

from __future__ import annotations

from typing import Any

from sim.serve.deployment import Deployment
from sim.serve.forward import Shape
from sim.serve.loop import bucket


def capacity(d: Deployment, input_tokens: float, cached_tokens: float, output_tokens: float) -> dict[str, Any]:
    """Per pool: the forward at the batch limit and its tokens per second per node."""
    out: dict[str, Any] = {}
    for role, pool in d.pools.items():
        m, spec = pool.model, pool.spec
        nodes = spec.unit_nodes
        row: dict[str, Any] = {}
        if role in ("prefill", "colocated"):
            new = max(1.0, input_tokens - cached_tokens)
            tokens = spec.max_batch_tokens
            requests = max(1, round(tokens / new))
            f = m.forward(Shape("prefill", tokens, requests, bucket(cached_tokens)))
            per_node = tokens * m.dp / f.time_s / nodes
            row["prefill_forward_s"] = f.time_s
            row["new_tokens_per_s_per_node"] = per_node
            row["input_tokens_per_s_per_node"] = per_node * input_tokens / new
        if role in ("decode", "colocated"):
            b = spec.max_batch
            f = m.forward(Shape("decode", b * m.query_tokens, b, bucket(input_tokens + output_tokens / 2)))
            p = spec.mtp.acceptance if spec.mtp.enabled else 0.0
            per_step = 1.0 + sum(p**j for j in range(1, m.query_tokens))
            row["decode_step_s"] = f.time_s
            row["output_tokens_per_s_per_node"] = b * m.dp * per_step / f.time_s / nodes
            row["tpot_at_capacity_s"] = f.time_s / per_step
        out[role] = row
    return out
