"""DeepEP dispatch and combine durations for chunk timing, on the run's shared flow network.

Each distinct (traffic, phase, cached) is simulated once, every EP group of the stage at the same
time (they run in lockstep in training, and share the fabric), and memoised: the chunk model then
uses the timed GPU's phase as a notify part (the count exchange and the wait for the slowest rank)
and a data part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.moe.deepep import KernelSpec, check_gpus, phase_process
from sim.moe.traffic import Traffic
from sim.network.context import SimContext


@dataclass(frozen=True, eq=False)
class GroupTraffic:
    """One layer's routing in every EP group of a stage (per-GPU fidelity): ``groups[i]`` is the
    traffic of the model's ``i``-th group, the first being the timed one."""

    groups: tuple[Traffic, ...]

    @property
    def timed(self) -> Traffic:
        return self.groups[0]


@dataclass(frozen=True)
class CommTime:
    notify_s: float
    data_s: float
    hbm_bytes: float  # bytes this GPU's DeepEP kernels read and write in HBM (sent + received)


class CommModel:
    """Times DeepEP phases of ``groups`` (each an array of cluster GPU ids, one per EP rank; the
    first group holds the timed GPU) on ``shared``."""

    def __init__(
        self,
        shared: SimContext,
        kernel: KernelSpec,
        groups: list[np.ndarray],
        runs: dict[tuple[object, ...], tuple[list[dict[str, float]], tuple[Traffic, ...]]] | None = None,
    ) -> None:
        """``runs``: simulations shared with the models of the same GPUs' other groups (per-GPU
        fidelity times each EP group of a rank with the others beside it: one simulation serves all)."""
        self.shared = shared
        self.kernel = kernel
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self._memo: dict[tuple[int, str, bool], CommTime] = {}
        self._keep: list[Traffic | GroupTraffic] = []
        self._runs = {} if runs is None else runs

    def key(self) -> tuple[object, ...]:
        return (id(self.shared), self.kernel.key(), tuple(tuple(g.tolist()) for g in self.groups))

    def hbm_rate(self) -> float:
        """Mean HBM traffic rate (bytes/s) of the data parts of the phases timed so far (0 before any)."""
        times = list(self._memo.values())
        data = sum(t.data_s for t in times)
        return sum(t.hbm_bytes for t in times) / data if data > 0 else 0.0

    def time(self, traffic: Traffic | GroupTraffic, phase: str, cached: bool) -> CommTime:
        """The timed GPU's phase; a plain :class:`Traffic` is every group's routing, a
        :class:`GroupTraffic` gives each group its own."""
        key = (id(traffic), phase, cached)
        if key not in self._memo:
            self._keep.append(traffic)  # ids stay valid while memoised
            per_group = traffic.groups if isinstance(traffic, GroupTraffic) else (traffic,) * len(self.groups)
            if len(per_group) != len(self.groups):
                raise ValueError(f"{len(per_group)} traffics for {len(self.groups)} EP groups")
            order = sorted(range(len(self.groups)), key=lambda i: int(self.groups[i][0]))
            run_key = (
                phase,
                cached,
                self.kernel.key(),
                tuple((int(self.groups[i][0]), id(per_group[i])) for i in order),
            )
            if run_key not in self._runs:
                records: list[dict[str, float]] = [{} for _ in order]
                procs = [
                    phase_process(
                        self.shared.network,
                        per_group[i],
                        self.kernel,
                        phase,
                        check_gpus(self.shared.network.topo, per_group[i], self.groups[i]),
                        cached,
                        times=rec,
                    )
                    for i, rec in zip(order, records, strict=True)
                ]
                self.shared.run_alone(procs)
                self._runs[run_key] = (records, tuple(per_group))
            records = self._runs[run_key][0]
            mine = records[order.index(0)]
            timed = per_group[0]
            moved = float(timed.ib_bytes_per_gpu(phase)[0] + timed.nvlink_bytes_per_gpu(phase)[0])
            self._memo[key] = CommTime(mine["notify"], mine["end"] - mine["notify"], 2.0 * moved)
        return self._memo[key]
