"""The decode floor of ISCA'25 (section 4.4.2): how fast decode could go if nothing but the expert
all-to-all took time.

The paper's back-of-envelope: each GPU holds 32 tokens; each token reaches 9 experts (8 routed and
the shared expert, treated as routed); dispatch sends FP8 (1 byte per element), combine BF16 (2
bytes), 7K elements per token, so one round (dispatch + combine) moves ``(1 + 2) x 32 x 9 x 7K``
bytes per GPU: 120.96 us on 50 GB/s IB. Two micro-batches each make one round per layer (their
computation hidden under the other's communication), so 61 layers take ``61 x 2 x 120.96 us =
14.76 ms`` per output token (~67 tokens/s per user); an NVL72-class domain at 900 GB/s: 6.72 us per
round, 0.82 ms per token (~1200 tokens/s).

The twin's figure for the same question routes the batch (:mod:`sim.serve.routing`, the decode
pool's placement of redundant experts) and times each phase with DeepEP's low-latency kernels
(:mod:`sim.serve.alltoall`): copies to the token's own GPU move nothing, copies inside the NVLink
domain go over NVLink, the kernels reach the derived share of the link (41.9 and 43.4 of 50 GB/s on
IB for dispatch and combine), the busiest GPU sets the phase, one message latency per phase, 7168
elements per token and FP8's scales (a ``model.dtype: bf16`` model dispatches BF16, as its forwards
do). It reports both beside the paper's: the scenario's fabric, and
one NVLink domain of ``floor.nvlink_domain_GBps`` holding the whole decode unit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.limits import require_memory
from sim.serve.alltoall import phase_time
from sim.serve.deployment import Deployment
from sim.serve.routing import route_batch
from sim.serve.spec import ServeScenario

# ISCA'25 (arXiv 2505.09343) section 4.4.2, as published
ISCA_TOKENS, ISCA_EXPERTS, ISCA_HIDDEN, ISCA_BYTES = 32, 9, 7000, 3.0  # "7K" read as 7000 (120.96 us)
ISCA_ROUND_US = {"ib": 120.96, "nvlink": 6.72}
ISCA_TPOT_MS = {"ib": 14.76, "nvlink": 0.82}
ROUTING_BYTES = 24  # peak memory of one routing draw per (token, expert): measured 21 (scores, Gumbel noise, picks)


def closed_form_round_us(tokens: int, experts: int, hidden: int, rate_GBps: float) -> float:
    """The paper's formula: (1 + 2) bytes x tokens x experts x hidden over the link rate."""
    return ISCA_BYTES * tokens * experts * hidden / (rate_GBps * 1e9) * 1e6


def decode_floor(sc: ServeScenario, d: Deployment) -> dict[str, Any]:
    """The floor on the scenario's fabric and on one NVLink domain, beside the paper's figures."""
    assert sc.serve.floor is not None
    role = "decode" if "decode" in d.pools else "colocated"
    pool = d.pools[role]
    fm, s = pool.model, sc.model
    tokens = sc.serve.floor.tokens_per_gpu
    layers = s.n_layers
    targets = s.n_activated_experts + (1 if pool.spec.shared_as_routed else 0)
    try:
        require_memory(
            ROUTING_BYTES * tokens * fm.gpus * max(1, s.n_routed_experts),
            f"routing {tokens:,} tokens on each of {fm.gpus:,} GPUs to {s.n_routed_experts} experts",
            "serve.floor.tokens_per_gpu",
            "give fewer tokens per GPU",
        )
    except ScenarioError as err:
        raise err.with_file(sc.source_path) from None
    nvl = replace(d.links, nvlink_GBps=sc.serve.floor.nvlink_domain_GBps, domain=fm.gpus)
    rows = {}
    for name, links, rate in (("ib", d.links, d.links.nic_GBps), ("nvlink", nvl, nvl.nvlink_GBps)):
        r = route_batch(
            d.load,
            pool.placement,
            tokens * fm.gpus,
            s.n_activated_experts,
            sc.serve.router_groups,
            s.n_limited_groups,
            links.domain,
            pool.spec.shared_as_routed,
            "low_latency",
            np.random.default_rng([sc.seed, 5]),
        )
        disp = phase_time(r, "dispatch", s.dim, links, "low_latency", 0, False, s.dtype)
        comb = phase_time(r, "combine", s.dim, links, "low_latency", 0, False, s.dtype)
        round_us = (disp + comb) * 1e6
        tpot_ms = layers * 2 * round_us / 1e3
        closed = closed_form_round_us(tokens, targets, s.dim, rate)
        rows[name] = {
            "link_GBps": rate,
            "dispatch_us": disp * 1e6,
            "combine_us": comb * 1e6,
            "round_us": round_us,
            "tpot_floor_ms": tpot_ms,
            "tokens_per_s_per_user": 1e3 / tpot_ms,
            "closed_form_round_us": closed,
            "closed_form_tpot_ms": layers * 2 * closed / 1e3,
            "paper_round_us": ISCA_ROUND_US[name],
            "paper_tpot_ms": ISCA_TPOT_MS[name],
        }
    return {"tokens_per_gpu": tokens, "experts_per_token": targets, "layers": layers, "fabrics": rows}
