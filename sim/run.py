"""simulate(scenario) -> RunResult: pure, no files, no plots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.config import Scenario
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, NetworkP2P, ScheduleRun, execute
from sim.pipeline.schedules import build_schedule
from sim.pipeline.validate import check_schedule
from sim.results import ScheduleMetrics, metrics


@dataclass(frozen=True)
class RunResult:
    """Runs and metrics of every schedule in the scenario, in the scenario's order."""

    scenario: Scenario
    runs: tuple[ScheduleRun, ...]
    metrics: tuple[ScheduleMetrics, ...]

    def to_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "schedules": [m.to_dict() for m in self.metrics]}


def run_schedule(
    name: str,
    pp: int,
    microbatches: int,
    times: OpTimes,
    p2p: P2P | NetworkP2P | None = None,
    virtual_stages: int = 2,
) -> ScheduleRun:
    """Build, check and execute one schedule."""
    schedule = build_schedule(name, pp, microbatches, virtual_stages)
    check_schedule(schedule)
    return execute(schedule, times, p2p)


def compare(
    names: list[str],
    pp: int,
    microbatches: int,
    times: OpTimes,
    p2p: P2P | NetworkP2P | None = None,
    virtual_stages: int = 2,
    progress: Callable[[str], None] | None = None,
) -> tuple[tuple[ScheduleRun, ...], tuple[ScheduleMetrics, ...]]:
    """Run several schedules on the same layout and op times."""
    runs = []
    for name in names:
        if progress:
            progress(name)
        runs.append(run_schedule(name, pp, microbatches, times, p2p, virtual_stages))
    return tuple(runs), tuple(metrics(r) for r in runs)


def simulate(scenario: Scenario, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run every schedule of ``scenario`` and account for it."""
    plan = scenario.pipeline
    runs, mets = compare(
        list(plan.schedules),
        plan.pp,
        plan.microbatches,
        scenario.op_times(),
        scenario.transport(),
        plan.virtual_stages,
        progress,
    )
    return RunResult(scenario, runs, mets)
