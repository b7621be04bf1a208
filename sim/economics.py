"""What a step costs: GPU time at a rental price plus the fabric's capital cost spread over its life.

* ``GPU_HOUR_USD`` = $2 per GPU-hour: the H800 rental price DeepSeek assumes for its training cost
  (DeepSeek-V3 report, arXiv 2412.19437, Table 1: 2.788M GPU-hours = $5.576M). It is used for every
  GPU unless a scenario sets ``economics.gpu_hour_usd``; it is a price, not a measurement.
* The fabric's cost is the topology's own cost model (:attr:`sim.network.topology.Topology.cost_usd`:
  switches, switch links and endpoint links at prices fitted to ISCA'25 Table 3), for the share of
  the fabric's endpoints the job uses, spread over ``FABRIC_LIFE_YEARS`` of round-the-clock use.
  Four years is an assumption (a common depreciation period for network equipment), not a published
  figure; change it with ``economics.fabric_life_years``.

``cost per trillion tokens = GPU-hours per trillion tokens x (GPU-hour price + fabric cost per GPU-hour)``.
The GPU price is taken to exclude the scale-out network, so fabrics can be compared on one footing.
"""

from __future__ import annotations

from dataclasses import dataclass

GPU_HOUR_USD = 2.0
FABRIC_LIFE_YEARS = 4.0
HOURS_PER_YEAR = 365.25 * 24


@dataclass(frozen=True)
class Cost:
    """Cost of training per trillion tokens, in US dollars, and its parts."""

    fabric_usd: float  # capital cost of the fabric share the job uses
    fabric_usd_per_gpu_hour: float
    gpu_usd_per_T: float
    fabric_usd_per_T: float

    @property
    def usd_per_T(self) -> float:
        return self.gpu_usd_per_T + self.fabric_usd_per_T


def training_cost(
    gpu_hours_per_T: float,
    job_gpus: int,
    fabric_usd: float,
    fabric_gpus: int,
    gpu_hour_usd: float = GPU_HOUR_USD,
    fabric_life_years: float = FABRIC_LIFE_YEARS,
) -> Cost:
    """Cost per trillion tokens of a job of ``job_gpus`` on a fabric of ``fabric_gpus`` endpoints costing
    ``fabric_usd`` (the job is charged its share of the fabric)."""
    share = fabric_usd * min(1.0, job_gpus / fabric_gpus) if fabric_gpus > 0 else 0.0
    per_gpu_hour = share / job_gpus / (fabric_life_years * HOURS_PER_YEAR) if job_gpus > 0 else 0.0
    return Cost(share, per_gpu_hour, gpu_hours_per_T * gpu_hour_usd, gpu_hours_per_T * per_gpu_hour)
