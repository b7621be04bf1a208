"""What a training step is given and what it produced: the spec, the pipelines' runs, each rank's
timeline (the data shared by the step's two event loops, :mod:`sim.step.simulate` and
:mod:`sim.step.shared`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.chunk.intervals import exposed_comm
from sim.chunk.plan import CommPlan, exposed_comm_many, exposed_comm_of, retime
from sim.chunk.timer import ChunkResult
from sim.network.linklog import CarriedLog
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology
from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Action, Schedule
from sim.step.actions import ChunkInputs, ChunkSource
from sim.step.zero1 import DpSpec, SetPhase

CONTENTION = ("shared", "isolated")

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class StepSpec:
    inputs: ChunkInputs
    schedule: Schedule
    topology: Topology
    activation_bytes: float  # per stage-to-stage send (one micro-batch's hidden states)
    dp: DpSpec
    completion_rtol: float = COMPLETION_RTOL
    contention: str = "shared"  # shared | isolated (module docstring)


# the actions whose phases the shared network slowed: (device, position) -> (plan, phase durations)
Retimed = dict[tuple[int, int], tuple[CommPlan, tuple[float, ...]]]


@dataclass
class PipelineRun:
    group: int
    run: ScheduleRun
    chunks: ChunkSource | None  # None: the op times were given (a schedule comparison)
    # shared contention: the comm data tasks' durations of the actions whose phases the network slowed
    comm_durations: Retimed = field(default_factory=dict)
    _retimed: dict[tuple[int, int], ChunkResult] = field(default_factory=dict, repr=False)
    _exposed: dict[int, float] = field(default_factory=dict, repr=False)
    # by (plan, phase durations): DualPipe's steady state repeats them (the default step: 1,326 re-timed
    # actions, 373 distinct)
    _exposed_retimed: dict[tuple[int, tuple[float, ...]], float] = field(default_factory=dict, repr=False)

    @property
    def source(self) -> ChunkSource:
        """Where the actions' chunks come from (a training step's pipelines only)."""
        if self.chunks is None:
            raise ValueError("the op times of this run were given: it has no chunks")
        return self.chunks

    def chunk_at(self, device: int, pos: int) -> ChunkResult:
        """The action's chunk as it ran (its phases as long as the shared network made them)."""
        chunk = self.source.chunk(self.run.schedule.actions[device][pos])
        hit = self.comm_durations.get((device, pos))
        if hit is None:
            return chunk
        out = self._retimed.get((device, pos))
        if out is None:
            out = self._retimed[(device, pos)] = retime(chunk, hit[0], hit[1])
        return out

    def exposed_comm_all(self) -> None:
        """Work out the exposed communication of every re-timed action at once, plan by plan
        (:func:`sim.chunk.plan.exposed_comm_many`; what :meth:`exposed_comm_at` then reads)."""
        todo: dict[int, tuple[CommPlan, dict[tuple[float, ...], None]]] = {}
        for plan, durations in self.comm_durations.values():
            if (id(plan), durations) not in self._exposed_retimed:
                todo.setdefault(id(plan), (plan, {}))[1][durations] = None
        for plan, wanted in todo.values():
            rows = list(wanted)
            for durations, exposed in zip(rows, exposed_comm_many(plan, rows), strict=True):
                self._exposed_retimed[(id(plan), durations)] = exposed

    def exposed_comm_at(self, device: int, pos: int) -> float:
        """Communication time of the action's chunk not under compute (seconds)."""
        hit = self.comm_durations.get((device, pos))
        if hit is not None:
            key = (id(hit[0]), hit[1])  # the plan lives in comm_durations as long as this memo
            exposed = self._exposed_retimed.get(key)
            if exposed is None:
                exposed = self._exposed_retimed[key] = exposed_comm_of(hit[0], hit[1])
            return exposed
        if self.chunks is None:
            return 0.0
        chunk = self.source.chunk(self.run.schedule.actions[device][pos])
        value = self._exposed.get(id(chunk))
        if value is None:
            value = self._exposed[id(chunk)] = exposed_comm(chunk.stream_spans())
        return value


@dataclass
class DeviceTimeline:
    """When a rank's phases happen (seconds from the step's start)."""

    pipeline_end: float
    reduce_scatter: tuple[tuple[float, float], ...]  # its replica set's reduce-scatters, in order
    optimizer: tuple[float, float]
    all_gather: tuple[float, float]
    fsdp_gathers: tuple[tuple[float, float], ...] = ()  # FSDP: each unit's all-gather (sim.step.fsdp)
    fsdp_wait_s: float = 0.0  # FSDP: the rank's time waiting for gathered weights
    # the shared embedding's gradient all-reduce with the other end of the pipeline, after the
    # reduce-scatter (sim.step.tied_embedding); None where the rank takes no part
    embedding_sync: tuple[float, float] | None = None

    @property
    def end(self) -> float:
        return self.all_gather[1]


@dataclass
class StepRun:
    """What a step did. A schedule comparison runs each schedule as a step whose op times are given
    (:meth:`of_schedule`: no spec, no chunks, no data-parallel phase), so both have one timeline and
    one trace (:mod:`sim.step.timeline`)."""

    given_spec: StepSpec | None  # None: op times given (read it as :attr:`spec`)
    pipelines: list[PipelineRun]
    dp: list[SetPhase]  # per rank: its replica set's DP phase
    timelines: list[DeviceTimeline]
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    links: CarriedLog | None = None  # what the run's network carried, when it had one

    @property
    def spec(self) -> StepSpec:
        """The step's spec (a training step only)."""
        if self.given_spec is None:
            raise ValueError("the op times of this run were given: it has no step spec")
        return self.given_spec

    @staticmethod
    def of_schedule(run: ScheduleRun, links: CarriedLog | None = None) -> StepRun:
        """A schedule run with given op times as a step (one pipeline, no DP phase)."""
        return StepRun(None, [PipelineRun(0, run, None)], [], [], links=links)

    @property
    def step_time(self) -> float:
        if self.timelines:
            return max(t.end for t in self.timelines)
        return max((s.end for p in self.pipelines for s in p.run.recorder.spans), default=0.0)

    def reported_pipeline(self) -> PipelineRun:
        """The pipeline that ends last (the one the step waits for)."""
        return max(self.pipelines, key=lambda p: max((s.end for s in p.run.recorder.spans), default=0.0))


class Counting:
    """Reports progress while the engine asks the chunk source for every action's duration: every 64
    actions, the last, and any action that ends a quarter of a second or more after the last report
    (a new routing sample's first chunks take that long each: with 8 samples of random routing the
    first 64 actions took 42 s)."""

    def __init__(self, source: ChunkSource, progress: Progress | None, total: int, label: str) -> None:
        self.source = source
        self.progress = progress
        self.total = total
        self.done = 0
        self.label = label
        self._shown = time.monotonic()

    def duration(self, action: Action, schedule: Schedule) -> float:
        d = self.source.duration(action, schedule)
        self.done += 1
        if self.progress is not None:
            now = time.monotonic()
            if self.done % 64 == 0 or self.done == self.total or now - self._shown >= 0.25:
                self._shown = now
                self.progress(self.label, self.done, self.total)
        return d
