"""What a unit serves flat out: each pool's throughput per node at its largest batch.

A simulated run reports what its traffic asked for; a planner also wants what the hardware could
give. For each pool, one forward at the batch limit, timed by the same :class:`ForwardModel`:

* **prefill**: every DP rank full, in prompts of the traffic's mean length with its mean cached
  prefix: ``max_batch_tokens`` new tokens with ``chunked_prefill`` (the last prompt split to fill the
  budget), else the whole prompts that fit (``floor(max_batch_tokens / new)`` of them; a prompt longer
  than the budget alone), as the event loop fills a rank; input tokens per second per node count the
  cached prefix too (as DeepSeek's published 73.7k tokens/s per node does: "including on-disk cache
  hits");
* **decode**: the requests a DP rank holds: ``max_batch``, or fewer where the KV cache fits fewer at
  the traffic's mean reservation (prompt + whole output: the event loop's admission rule,
  :func:`sim.serve.kvcache.requests_per_rank`), each reading KV of the mean prompt plus half the mean
  output; each step yields 1 + the expected accepted MTP drafts per request (``sum_j p^j`` for
  ``j = 1..depth``). ``decode_batch`` is the batch timed, ``kv_batch`` what the KV cache holds and
  ``batch_limit`` which of ``max_batch`` and ``kv_cache`` set it.

These are upper bounds of the throughput a run can show (the run's batches are smaller unless the
queue is long, and its admission holds no more than ``decode_batch`` per rank), so they are what
compares with another team's measured maximum.
"""

from __future__ import annotations

import math
from typing import Any

from sim.serve.deployment import Deployment
from sim.serve.forward import Shape
from sim.serve.kvcache import requests_per_rank, reserved_tokens
from sim.serve.loop import bucket


def prefill_rank(max_batch_tokens: int, new: float, chunked: bool) -> tuple[int, int]:
    """New tokens and prompts on one full prefill rank, prompts of ``new`` new tokens each: the budget
    exactly when ``chunked`` (the last prompt split), else the whole prompts that fit it (one alone
    when it is longer than the budget)."""
    if chunked:
        return max_batch_tokens, max(1, round(max_batch_tokens / new))
    whole = math.floor(max_batch_tokens / new)
    if whole < 1:
        return max(1, round(new)), 1
    return max(1, round(whole * new)), whole


def capacity(d: Deployment, input_tokens: float, cached_tokens: float, output_tokens: float) -> dict[str, Any]:
    """Per pool: the forward at the batch limit and its tokens per second per node."""
    out: dict[str, Any] = {}
    for role, pool in d.pools.items():
        m, spec = pool.model, pool.spec
        nodes = spec.unit_nodes
        row: dict[str, Any] = {}
        if role in ("prefill", "colocated"):
            new = max(1.0, input_tokens - cached_tokens)
            tokens, requests = prefill_rank(spec.max_batch_tokens, new, spec.chunked_prefill)
            f = m.forward(Shape("prefill", tokens, requests, bucket(cached_tokens)))
            per_node = tokens * m.dp / f.time_s / nodes
            row["prefill_forward_s"] = f.time_s
            row["prefill_tokens_per_rank"] = tokens
            row["new_tokens_per_s_per_node"] = per_node
            row["input_tokens_per_s_per_node"] = per_node * input_tokens / new
        if role in ("decode", "colocated"):
            fits = max(1, requests_per_rank(pool.memory.kv_tokens, reserved_tokens(input_tokens, output_tokens)))
            b = min(spec.max_batch, fits)
            f = m.forward(Shape("decode", b * m.query_tokens, b, bucket(input_tokens + output_tokens / 2)))
            p = spec.mtp.acceptance if spec.mtp.enabled else 0.0
            per_step = 1.0 + sum(p**j for j in range(1, m.query_tokens))
            row["decode_batch"] = b
            row["kv_batch"] = fits
            row["batch_limit"] = "max_batch" if spec.max_batch <= fits else "kv_cache"
            row["decode_step_s"] = f.time_s
            row["output_tokens_per_s_per_node"] = b * m.dp * per_step / f.time_s / nodes
            row["tpot_at_capacity_s"] = f.time_s / per_step
        out[role] = row
    return out
