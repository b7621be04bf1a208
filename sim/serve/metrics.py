"""What a serving run reports: latency percentiles, throughput per node, goodput under the SLOs,
KV-cache occupancy over time, busy fractions, memory.

* **TTFT** of a request: its first token (the forward that finishes its prompt) less its arrival.
* **TPOT**: (last token - first token) / (output tokens - 1), the KV transfer and any wait for a
  decode slot included (what the user sees between tokens); requests of one output token have none.
* **Throughput per node**: prompt tokens (cached ones included, as DeepSeek counts them) of the
  requests whose first token came within the arrival window (``duration_s``), and output tokens
  generated within it, over the window, per node of the prefill and of the decode pool (a co-located
  pool counts both on its nodes): what the deployment sustains while traffic arrives, not the drain.
* **Goodput**: requests meeting both SLOs (``serve.slo``) per second of the arrival window.
* Percentiles are over the requests that reached the event (``np.percentile``, linear); a figure no
  request reached is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.units import GiB

if TYPE_CHECKING:
    from sim.serve.deployment import Deployment
    from sim.serve.loop import LoopResult
    from sim.serve.requests import Requests
    from sim.serve.spec import ServeScenario

PERCENTILES = (50, 90, 99)


def percentiles(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {f"p{p}": None for p in PERCENTILES}
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(x, PERCENTILES), strict=True)}


@dataclass
class PoolFigures:
    role: str
    nodes: int
    units: int
    gpus_per_unit: int
    dp: int
    forwards: int
    shapes: int  # distinct forward shapes timed
    busy: float  # share of the span a unit runs forwards (mean over units)
    compute_busy: float  # the slowest GPU's compute stream (mean over units)
    comm_busy: float
    gpu_compute_busy: list[float]  # every GPU of unit 0
    weights_GiB: float
    kv_tokens_per_gpu: int
    redundant_experts: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ServeResult:
    scenario: str
    requests: Requests
    first_token_s: np.ndarray
    finish_s: np.ndarray
    end_s: float
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    pools: dict[str, PoolFigures]
    input_tokens_per_s_per_node: float
    output_tokens_per_s_per_node: float
    goodput_requests_per_s: float
    slo: dict[str, float]
    kv_occupancy: dict[str, tuple[np.ndarray, np.ndarray]]  # "decode/0" -> (t, fraction), thinned past KV_SAMPLES
    spans: list[Any]
    little: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    met_slo: int = 0  # requests meeting both SLOs
    kv_peak: dict[str, float] = field(default_factory=dict)  # "decode/0" -> the highest occupancy, every step
    prefill_start_s: np.ndarray | None = None  # when each request's first prompt tokens were computed
    decode_admit_s: np.ndarray | None = None  # when each request joined a decode batch (NaN: never)
    duration_s: float = 0.0  # the arrival window the throughputs and the goodput are over

    @property
    def completed(self) -> int:
        return int(np.isfinite(self.finish_s).sum())

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-able data (``twin serve --format json``)."""
        return {
            "scenario": self.scenario,
            "ttft_s": percentiles(self.ttft_s),
            "tpot_s": percentiles(self.tpot_s),
            "input_tokens_per_s_per_node": self.input_tokens_per_s_per_node,
            "output_tokens_per_s_per_node": self.output_tokens_per_s_per_node,
            "goodput_requests_per_s": self.goodput_requests_per_s,
            "requests": {
                "arrived": len(self.requests),
                "completed": self.completed,
                "unfinished": len(self.requests) - self.completed,
                "met_slo": self.met_slo,
            },
            "duration_s": self.duration_s,
            "simulated_s": self.end_s,
            "slo": self.slo,
            "pools": {k: v.to_dict() for k, v in self.pools.items()},
            "kv_occupancy_max": {
                k: self.kv_peak.get(k, float(v[1].max(initial=0.0))) for k, v in self.kv_occupancy.items()
            },
            "littles_law": self.little,
            **self.extra,
        }


def summarise(sc: ServeScenario, d: Deployment, reqs: Requests, out: LoopResult) -> ServeResult:
    arrival = reqs.arrival_s
    ttft = out.first_token_s - arrival
    multi = reqs.output_tokens > 1
    tpot = np.where(multi, (out.finish_s - out.first_token_s) / np.maximum(reqs.output_tokens - 1, 1), np.nan)
    end = max(out.end_s, 1e-12)
    slo = sc.serve.slo
    ok = np.isfinite(out.finish_s) & (ttft <= slo.ttft_s) & (~multi | (tpot <= slo.tpot_s))
    window = sc.serve.duration_s
    in_window = out.first_token_s <= window  # NaN (never) compares False
    colocated = "colocated" in d.pools
    pre_nodes = d.pools["colocated" if colocated else "prefill"].spec.nodes
    dec_nodes = d.pools["colocated" if colocated else "decode"].spec.nodes
    pools: dict[str, PoolFigures] = {}
    units_by_role: dict[str, list[Any]] = {}
    for u in out.units:
        units_by_role.setdefault(u.role, []).append(u)
    for role, pool in d.pools.items():
        us = units_by_role.get(role, [])
        gpu0 = us[0].gpu_compute_s if us and us[0].gpu_compute_s is not None else np.zeros(pool.model.gpus)
        pools[role] = PoolFigures(
            role=role,
            nodes=pool.spec.nodes,
            units=pool.units,
            gpus_per_unit=pool.model.gpus,
            dp=pool.model.dp,
            forwards=sum(u.forwards for u in us),
            shapes=pool.model.shapes,
            busy=float(np.mean([u.busy_s for u in us]) / end) if us else 0.0,
            compute_busy=float(np.mean([u.compute_s for u in us]) / end) if us else 0.0,
            comm_busy=float(np.mean([u.comm_s for u in us]) / end) if us else 0.0,
            gpu_compute_busy=[float(x) for x in gpu0 / end],
            weights_GiB=pool.memory.weights_bytes / GiB,
            kv_tokens_per_gpu=pool.memory.kv_tokens,
            redundant_experts=pool.placement.redundant,
        )
    from sim.serve.capacity import capacity

    extra = {
        "capacity": capacity(
            d,
            float(reqs.input_tokens.mean()) if len(reqs) else 0.0,
            float(reqs.cached_tokens.mean()) if len(reqs) else 0.0,
            float(reqs.output_tokens.mean()) if len(reqs) else 1.0,
        )
    }
    kv = {
        f"{u.role}/{u.index}": (np.array(u.kv_t), np.array(u.kv_used))
        for u in out.units
        if u.role in ("decode", "colocated")
    }
    done = np.isfinite(out.finish_s)
    sojourn = out.finish_s[done] - arrival[done]
    little = {
        "mean_in_system": out.in_system_area / end,
        "completion_rate_per_s": float(done.sum()) / end,
        "mean_sojourn_s": float(sojourn.mean()) if len(sojourn) else 0.0,
        "mean_prefill_queue": out.queue_area / end,
        "mean_prefill_wait_s": float(np.nanmean(out.prefill_start_s - arrival)) if len(arrival) else 0.0,
    }
    return ServeResult(
        scenario=sc.name,
        requests=reqs,
        first_token_s=out.first_token_s,
        finish_s=out.finish_s,
        end_s=out.end_s,
        ttft_s=ttft,
        tpot_s=tpot,
        pools=pools,
        input_tokens_per_s_per_node=float(reqs.input_tokens[in_window].sum()) / window / pre_nodes,
        output_tokens_per_s_per_node=out.generated_in_window / window / dec_nodes,
        goodput_requests_per_s=float(ok.sum()) / window,
        slo={"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s},
        kv_occupancy=kv,
        kv_peak={f"{u.role}/{u.index}": u.kv_peak for u in out.units if u.role in ("decode", "colocated")},
        spans=out.spans,
        little=little,
        extra=extra,
        met_slo=int(ok.sum()),
        prefill_start_s=out.prefill_start_s,
        decode_admit_s=out.decode_admit_s,
        duration_s=window,
    )
