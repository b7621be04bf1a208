"""Auxiliary-loss-free load balancing (DeepSeek-V3 report, section 2.1.2).

A per-expert bias is added to the affinity scores for selection only. After each step, the bias of
every overloaded expert is decreased by ``gamma`` and that of every underloaded expert increased by
``gamma`` (the report's bias update speed). Over steps the loads converge towards the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.moe.select import select_experts
from sim.moe.spec import MoESpec


def update_bias(bias: np.ndarray, load: np.ndarray, gamma: float) -> np.ndarray:
    """One step of the bias update: bias - gamma * sign(load - mean load)."""
    return bias - gamma * np.sign(load - load.mean())


@dataclass(frozen=True)
class BalanceTrace:
    """Per step: the ratio of the busiest expert's load to the mean (1 = perfectly balanced)."""

    max_over_mean: np.ndarray
    bias: np.ndarray


def run_balancing(
    scores_for_step: Callable[[int], np.ndarray], spec: MoESpec, steps: int, gamma: float = 1e-3
) -> BalanceTrace:
    """Select experts for ``steps`` batches of scores, updating the bias between steps."""
    bias = np.zeros(spec.experts, dtype=np.float32)
    ratios = []
    for step in range(steps):
        choices = select_experts(scores_for_step(step), spec, bias)
        load = np.bincount(choices.ravel().astype(np.int64), minlength=spec.experts).astype(np.float64)
        ratios.append(load.max() / load.mean())
        bias = update_bias(bias, load, gamma).astype(np.float32)
    return BalanceTrace(np.array(ratios), bias)
