"""simulate(scenario) -> RunResult: pure, no files, no plots.

Data flows one way: the scenario describes; :func:`sim.assemble.assemble` builds from it, once, the
cost model (profile), the topology, the routing, the schedules or the step's layout, and refuses what
cannot run; the functions here only simulate an assembly: the engine places the actions, the results
account for them. Each takes the scenario (and assembles it) or an assembly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sim import __version__
from sim.assemble import Assembly, assemble
from sim.config import Scenario
from sim.economics import Cost
from sim.errors import ScenarioError
from sim.hardware.gpu import GpuSpec
from sim.network.context import SimContext
from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, NetworkP2P, ScheduleRun, execute
from sim.pipeline.schedules import build_schedule
from sim.pipeline.validate import check_schedule
from sim.results import ScheduleMetrics, metrics
from sim.step.accounting import StepResult, account
from sim.step.simulate import Progress, StepRun, run_step

__all__ = [  # Assembly and assemble re-exported: their home is sim.assemble
    "Assembly",
    "ChunkTimes",
    "RunResult",
    "TrainingRun",
    "assemble",
    "compare",
    "op_times",
    "run_schedule",
    "simulate",
    "simulate_training",
]


@dataclass(frozen=True)
class ChunkTimes:
    """Where the op times came from when the chunk model gave them (ms, for reports)."""

    forward_ms: float
    backward_ms: float
    weight_ms: float
    overlapped_ms: float
    layers: int
    compute_sms: int


def _assembled(run: Scenario | Assembly) -> Assembly:
    return run if isinstance(run, Assembly) else assemble(run)


def op_times(run: Scenario | Assembly) -> tuple[OpTimes, ChunkTimes | None]:
    """The op times of a schedule comparison: as given, or F, B (I + W), W and F&B of one stage's
    chunk from the chunk model (uniform stages), with where they came from."""
    asm = _assembled(run)
    if asm.times is not None:
        return asm.times, None
    setup = asm.chunk
    assert setup is not None, "a schedule comparison has given op times or a chunk model"
    timer, stage = setup.timer, setup.stage
    f = timer.forward(stage).span_s
    b = timer.backward(stage).span_s
    wgt = min(timer.backward(stage, "W").span_s, b)
    fb = timer.pair(stage, stage).span_s
    layers = asm.scenario.workload.layers_per_stage
    info = ChunkTimes(f * 1e3, b * 1e3, wgt * 1e3, fb * 1e3, layers, setup.compute_sms)
    return OpTimes.uniform(asm.scenario.pipeline.pp, f, b, wgt, fb), info


@dataclass(frozen=True)
class RunResult:
    """Runs and metrics of every schedule in the scenario, in the scenario's order."""

    scenario: Scenario
    steps: tuple[StepRun, ...]  # each schedule as a step whose op times are given
    metrics: tuple[ScheduleMetrics, ...]
    times: OpTimes | None = None
    chunk: ChunkTimes | None = None
    assembly: Assembly | None = None  # what was simulated (SM split, cost model, transport, ...)

    @property
    def runs(self) -> tuple[ScheduleRun, ...]:
        """Each schedule's run (its spans and transfers)."""
        return tuple(step.pipelines[0].run for step in self.steps)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "scenario": self.scenario.name,
            "twin_version": __version__,
            "schedules": [m.to_dict() for m in self.metrics],
        }
        if self.times is not None:
            t = self.times
            out["op_times_ms"] = {
                "forward": [x * 1e3 for x in t.f],
                "backward": [x * 1e3 for x in t.b],
                "weight": [x * 1e3 for x in t.w],
                "overlapped": None if t.fb is None else [x * 1e3 for x in t.fb],
                "source": "given" if self.chunk is None else "chunk model",
            }
        if self.chunk is not None:
            out["chunk"] = {
                "layers_per_stage": self.chunk.layers,
                "compute_sms": self.chunk.compute_sms,
                "profile": self.scenario.profile_path.name,
            }
        return out


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
    """Run several schedules on the same layout and op times; every schedule is built (and an impossible
    layout refused) before any runs, so a refusal comes at once, not after the others' runs."""
    for name in names:
        build_schedule(name, pp, microbatches, virtual_stages)
    runs = []
    for name in names:
        if progress:
            progress(name)
        runs.append(run_schedule(name, pp, microbatches, times, p2p, virtual_stages))
    return tuple(runs), tuple(metrics(r) for r in runs)


def simulate(run: Scenario | Assembly, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run every schedule of a schedule comparison and account for it (a scenario with a ``training``
    section is a training step: :func:`simulate_training`)."""
    asm = _assembled(run)
    if asm.training:
        raise ValueError("a training step: use simulate_training")
    if progress:
        progress("timing the chunks")
    times, chunk = op_times(asm)
    steps = []
    for schedule in asm.schedules:
        if progress:
            progress(schedule.name)
        transport = asm.transport
        if isinstance(transport, NetworkP2P):
            ctx = SimContext(transport.topology, transport.completion_rtol)
        else:
            ctx = SimContext()
        done = execute(schedule, times, transport, ctx)
        steps.append(StepRun.of_schedule(done, None if ctx.net is None else ctx.net.carried()))
    metric = tuple(metrics(s.pipelines[0].run) for s in steps)
    result = RunResult(asm.scenario, tuple(steps), metric, times, chunk, asm)
    check_finite(asm.scenario, result.to_dict(), max(s.step_time for s in steps) * TRACE_US)
    return result


# ---------------------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class TrainingRun:
    """A simulated training step: its timeline and what it says."""

    scenario: Scenario
    step: StepRun
    result: StepResult
    gpu: GpuSpec
    assembly: Assembly | None = None  # what was simulated (layout, SM split, topology, ...)

    def to_dict(self) -> dict[str, object]:
        c = self.costs
        cost = {  # (null where some hardware has no price: the note says which)
            "usd_per_T": None if c.note else c.priced.usd_per_T,
            "usd_per_T_base_prices": c.at_base.usd_per_T,
            "gpu_usd_per_T": c.priced.gpu_usd_per_T,
            "fabric_usd_per_T": c.priced.fabric_usd_per_T,  # (the fabric has its price; the total lacks a part)
            "fabric_usd": c.priced.fabric_usd,
            "gpu_hour_usd": self.scenario.economics.gpu_hour_usd,
            "fabric_life_years": self.scenario.economics.fabric_life_years,
            "not_modelled": c.note,
        }
        return {"scenario": self.scenario.name, "twin_version": __version__} | self.result.to_dict() | {"cost": cost}

    @functools.cached_property
    def costs(self) -> TrainingCosts:
        """What training a trillion tokens at this step costs (``economics``: the GPU-hour price, the
        fabric's life; the job is charged its share of the fabric), at the topology's prices and at the
        base prices, and why some hardware has no price (``note``, None where all of it has one); worked
        out once per run (its JSON, summary.md and printed line read it)."""
        from sim.economics import not_modelled_note, training_cost, unpriced_hardware
        from sim.network.topology import build_topology

        sc, r = self.scenario, self.result
        topology = self.assembly.topology if self.assembly is not None else None
        if topology is None:  # an assembly always has the step's fabric; built again only if it was dropped
            topology = build_topology(sc.cluster_spec())
        hours, gpus = r.gpu_hours_per_trillion_tokens, int(r.layout["gpus"])

        def cost(fabric_usd: float) -> Cost:
            economics = sc.economics
            return training_cost(
                hours, gpus, fabric_usd, topology.gpus, economics.gpu_hour_usd, economics.fabric_life_years
            )

        assert sc.cluster is not None  # a training step has a cluster
        note = not_modelled_note(
            unpriced_hardware(
                coprocessor=sc.comm.coprocessor,
                nvlink_GBps=topology.spec.node.nvlink_GBps,
                priced_nvlink_GBps=sc.cluster.spec.node.nvlink_GBps,
                in_network=sc.comm.multicast or sc.comm.in_network_reduce,
                scale_up=sc.cluster.scale_up is not None,
            )
        )
        return TrainingCosts(cost(topology.cost_usd), cost(topology.fabric_cost(priced_rates=False).total), note)


@dataclass(frozen=True)
class TrainingCosts:
    """A step's cost per trillion tokens at the topology's prices (``priced``) and at the base prices
    (``at_base``); ``note``: the hardware with no price, where some has none (``priced`` is then partial)."""

    priced: Cost
    at_base: Cost
    note: str | None


def simulate_training(run: Scenario | Assembly, progress: Progress | None = None) -> TrainingRun:
    """Simulate a training step and account for it."""
    asm = _assembled(run)
    if asm.step is None or asm.gpu is None:
        raise ValueError("a schedule comparison: use simulate")
    step = run_step(asm.step, progress)
    done = TrainingRun(asm.scenario, step, account(step, asm.gpu), asm.gpu, asm)
    check_finite(asm.scenario, done.to_dict(), step.step_time * TRACE_US)
    return done


# ------------------------------------------------------------------------------- finite figures
# the largest factor a time meets on its way into a trace: seconds to microseconds (1e6), then numpy's
# rounding to 3 decimals, which multiplies by 1e3 before it rounds (np.round(1e304, 3) overflows)
TRACE_US = 1e9
EDGE = 1e100  # an input beyond this magnitude (or a nonzero one below its inverse) is "at the edge"
# No input of the twin is real beyond this in its unit (the largest: a run's 1.5e13 tokens, its cost in
# USD, bytes of a collective up to 1e12; the smallest: latencies of 1e-7 s): where an overflow has no
# input at the edge, those beyond it are named as its likely cause (a NIC of 1e-99 Gb/s)
FAR = 1e20


class Described(Protocol):
    """A scenario as :func:`check_finite` reads it (a training or schedule scenario, a serve scenario)."""

    @property
    def source_path(self) -> str: ...

    def model_dump(self) -> dict[str, Any]: ...


def check_finite(sc: Described, figures: dict[str, Any], *more: float) -> None:
    """Every figure of a run is finite (and stays finite when a trace writes its times in
    microseconds) before anything is written or plotted; otherwise one error naming the figure and the
    scenario's inputs at the edge of floating point that produced it (the topology's and the profile's
    named in their files). A figure past :data:`EDGE` in magnitude is refused too: only inputs at the edge
    take one there (a NIC of 1e-150 Gb/s gave a step of 4.8e151 s), as :func:`sim.cli.common.check_printed`
    refuses for the commands that print their figures as they are."""
    check_figures_finite(sc.source_path, sc.model_dump(), figures, *more, files=_read_files(sc), huge=EDGE)


def check_bound_finite(asm: Assembly) -> None:
    """A run's overflow refused before it runs, as :func:`check_finite` refuses the run's figures (past
    :data:`EDGE`: a NIC of 1e-99 Gb/s), from a lower bound of each step time instead of the run: the
    training step's (:mod:`sim.step.bound`, a fraction of the step's cost) or each compared schedule's
    (:func:`sim.pipeline.maxplus.comparison_lower_bound`: free sends, and one send alone). A bound past
    the edge puts the run's time past it; a bound short of it leaves the rest to the run. (``twin
    validate``, and ``twin plan layouts`` before its search.)"""
    if asm.step is not None:
        from sim.step.bound import step_lower_bound

        figures = {"step_time_s (its lower bound)": step_lower_bound(asm.step)}
    else:
        from sim.pipeline.maxplus import comparison_lower_bound

        times, _ = op_times(asm)
        transport = asm.transport
        assert transport is not None  # (a comparison's sends)
        figures = {
            f"schedules[{i}].step_time (its lower bound)": comparison_lower_bound(s, times, transport)
            for i, s in enumerate(asm.schedules)
        }
    check_finite(asm.scenario, figures)


def check_figures_finite(
    file: str,
    inputs: dict[str, Any],
    figures: dict[str, Any],
    *more: float,
    files: Sequence[tuple[str, object]] = (),
    huge: float = math.inf,
) -> None:
    """:func:`check_finite` of ``figures`` computed from the ``inputs`` of ``file`` (and the contents of
    other ``files`` it read, by path). A figure larger than ``huge`` in magnitude is refused as well: a
    command whose figures are printed as they are (no trace multiplies them on) passes :data:`EDGE`, past
    which only inputs at the edge take a figure (a time of 1e298 s is an overflow in all but name)."""
    bad = next(((k, v) for k, v in _numbers(figures, "") if not math.isfinite(v) or abs(v) > huge), None)
    if bad is None and all(math.isfinite(x) for x in more):
        return
    what = f"{bad[0]} is {bad[1]:g}" if bad is not None else "the simulated times overflow a trace's microseconds"
    numbers = _numbers(inputs, "") + [(f"{path}: {k}", v) for path, data in files for k, v in _numbers(data, "")]
    edge = [f"{k} = {v:g}" for k, v in numbers if abs(v) > EDGE or 0 < abs(v) < 1 / EDGE]
    if not edge:  # none at the edge: those no real input reaches, the farthest from 1 first (at most 3)
        far = sorted(((k, v) for k, v in numbers if abs(v) > FAR or 0 < abs(v) < 1 / FAR), key=_from_one)
        edge = [f"{k} = {v:g}" for k, v in far[:3]]
    cause = f"from {', '.join(edge)}" if edge else "from the scenario's magnitudes"
    raise ScenarioError("", f"the results overflow: {what}, {cause}; use values nearer to real ones", file)


def _from_one(item: tuple[str, float]) -> float:
    """Sort key: a number's distance from 1 in orders of magnitude, the largest first."""
    return -abs(math.log10(abs(item[1])))


def _read_files(sc: Described) -> list[tuple[str, object]]:
    """(path, contents) of the files a scenario read its numbers from: its topology (as read, with the
    scenario's what-ifs not applied) and its calibration profile; those it does not have are left out."""
    import json

    out: list[tuple[str, object]] = []
    cluster = getattr(sc, "cluster", None)
    if cluster is not None:
        try:
            out.append((str(cluster.path), cluster.spec.model_dump()))
        except RuntimeError:  # its topology not read (a scenario built in code)
            pass
    profile = getattr(sc, "profile_path", None)
    if profile is not None:
        try:
            out.append((str(profile), json.loads(Path(profile).read_text())))
        except (OSError, ValueError):
            pass
    return out


def _numbers(data: object, prefix: str) -> list[tuple[str, float]]:
    """(dotted key, value) of every number in nested dicts and lists."""
    if isinstance(data, bool):
        return []
    if isinstance(data, int | float):
        return [(prefix, float(data))]
    if isinstance(data, dict):
        return [kv for k, v in data.items() for kv in _numbers(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(data, list | tuple):
        return [kv for i, v in enumerate(data) for kv in _numbers(v, f"{prefix}[{i}]")]
    return []
