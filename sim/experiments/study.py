"""Variants of a training step that a report sets beside it: every pipeline schedule, the SM split.

Each variant is the scenario with dotted-key overrides (:mod:`sim.overrides`, e.g.
``pipeline.schedules: [zb1p]`` or ``comm.sms: 12``), loaded and checked like a scenario file and
simulated as a full training step (:func:`sim.run.simulate_training`). Simulation only: reports
render the rows.

Schedules. For each registered schedule the step is run with ``pipeline.schedules`` set to it, the
same PP, batch and cluster. A schedule whose memory per GPU exceeds the GPU's is run with
``training.check_memory: false`` and says so (:attr:`ScheduleRow.note`); one whose layout is impossible
is a row with the refusal. Its pipeline bubble is that of the rank that ends the step (the one its
breakdown reports, :mod:`sim.step.accounting`): the pipeline's makespan (from the step's start to
the last action of any rank) minus that rank's chunk time; the DP phase after the pipeline is not part of it. The closed
form (:func:`sim.pipeline.theory.bubble`, Table 2 of the DeepSeek-V3 report) takes the step's own
chunk times: F, B (= I + W), W and F&B of every schedule stage timed by the chunk model as the step
times them (F&B: a stage's forward paired with its own backward), averaged over the stages and
expressed per model stage (an interleaved virtual stage holds 1/v of one).

SM split. The step with ``comm.sms`` at each count of :data:`SM_COUNTS` (and the scenario's own),
then with ``comm.coprocessor: true`` (all SMs compute; DeepEP keeps the scenario's channels): step
time and the compute time exposed to DeepEP all-to-alls inside the chunks of the rank that ends the
step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.config import VIRTUAL_STAGE_SCHEDULES, Scenario, scenario_data, scenario_from_data
from sim.errors import MemoryLimitError, TwinError
from sim.overrides import apply_overrides
from sim.pipeline import theory
from sim.pipeline.schedules import COMPARED
from sim.run import TrainingRun, simulate_training
from sim.step.traffic_bytes import NodeBytes, node_bytes
from sim.units import GiB

SM_COUNTS = (8, 12, 16, 20, 24, 32)
Progress = Callable[[str, int, int], None]  # (what, done, total)


def variant(sc: Scenario, overrides: dict[str, Any]) -> Scenario:
    """``sc`` with dotted-key ``overrides``, loaded and checked as if its file said so (errors name
    the scenario file and the key). A variant with other schedules drops the scenario's
    ``pipeline.virtual_stages`` when none of them reads it (it would be refused as unused)."""
    path = Path(sc.source_path)
    data, folder = scenario_data(path)
    if not isinstance(data, dict):
        raise TypeError("a loaded scenario is a mapping")
    data = apply_overrides(data, overrides)
    plan = data.get("pipeline")
    if "pipeline.schedules" in overrides and isinstance(plan, dict) and "virtual_stages" in plan:
        if not VIRTUAL_STAGE_SCHEDULES & set(plan.get("schedules") or COMPARED):
            del plan["virtual_stages"]
    return scenario_from_data(data, path, folder)


@dataclass(frozen=True)
class ChunkMeans:
    """Mean chunk times per model stage (seconds)."""

    f: float
    b: float  # full backward: I + W
    w: float
    fb: float


def chunk_means(run: TrainingRun) -> ChunkMeans:
    """F, B, W and F&B of every schedule stage of ``run`` (timed by its own chunk source), averaged
    over the stages, per model stage."""
    pipe = run.step.reported_pipeline()
    source, sched = pipe.source, pipe.run.schedule
    sums = [0.0, 0.0, 0.0, 0.0]
    for s in range(sched.num_stages):
        stage = source.stage(s, 0)
        timer = source.timer(sched.stage_device[s])
        per = 1.0 / sched.stage_weight[s]
        b = timer.backward(stage, "IW").span_s
        parts = (
            timer.forward(stage).span_s,
            b,
            min(timer.backward(stage, "W").span_s, b),
            timer.pair(stage, stage).span_s,
        )
        for i, x in enumerate(parts):
            sums[i] += x * per
    n = sched.num_stages
    return ChunkMeans(*(x / n for x in sums))


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule under the scenario's op times (seconds; ``None`` where it was refused)."""

    schedule: str
    note: str  # '' when the step ran as given; else why the memory check was off, or the refusal
    ranks: int | None = None
    step_time_s: float | None = None
    pipeline_s: float | None = None  # the pipeline's makespan
    rank: int | None = None  # the rank that ends the step
    busy_s: float | None = None  # its chunk time
    bubble_s: float | None = None  # pipeline_s - busy_s
    chunks: ChunkMeans | None = None
    closed_form_s: float | None = None
    peak_memory_GiB: float | None = None
    fits: bool = True

    @property
    def ran(self) -> bool:
        return self.step_time_s is not None

    @property
    def bubble_ratio(self) -> float | None:
        if self.bubble_s is None or not self.pipeline_s:
            return None
        return self.bubble_s / self.pipeline_s

    @property
    def closed_form_ratio(self) -> float | None:
        """The closed-form bubble over (closed-form bubble + that rank's chunk time)."""
        if self.closed_form_s is None or self.busy_s is None:
            return None
        return self.closed_form_s / (self.closed_form_s + self.busy_s)


def schedule_row(run: TrainingRun, note: str = "") -> ScheduleRow:
    """The bubble of the rank that ends ``run``'s step beside the closed form on its chunk times."""
    sc = run.scenario
    r = run.result
    # the makespan as the step's breakdown takes it (from the step's start: under FSDP the first actions
    # wait for their weights, which is bubble), so the row's bubble is the breakdown's
    makespan = max(t.pipeline_end for t in run.step.timelines)
    rank = r.reported
    means = chunk_means(run)
    name = sc.pipeline.schedules[0]
    closed = theory.bubble(name, sc.pipeline.pp, means.f, means.b, means.w, means.fb, sc.pipeline.virtual_stages)
    peak = max(x.memory.total for x in r.ranks) / GiB
    return ScheduleRow(
        schedule=name,
        note=note,
        ranks=len(r.ranks),
        step_time_s=r.step_time_s,
        pipeline_s=makespan,
        rank=rank.rank,
        busy_s=rank.busy_s,
        bubble_s=rank.bubble_s,
        chunks=means,
        closed_form_s=closed,
        peak_memory_GiB=peak,
        fits=peak <= run.gpu.hbm_GiB,
    )


def _memory_refusal(err: TwinError) -> bool:
    return isinstance(err, MemoryLimitError)


def _message(err: TwinError) -> str:
    return " ".join(str(getattr(err, "message", err)).split())


def run_variant(sc: Scenario, overrides: dict[str, Any]) -> tuple[TrainingRun | None, str]:
    """Simulate ``sc`` with ``overrides``: (run, '') ; (run, why the memory check was turned off) when
    it does not fit the GPU; (None, the refusal) when the layout is impossible."""
    try:
        return simulate_training(variant(sc, overrides)), ""
    except TwinError as err:
        if not _memory_refusal(err):
            return None, f"refused: {_message(err)}"
        why = re.sub(r" \(.*?\)", "", _message(err).split(":")[0])  # 'pipeline rank 15 needs 140.6 GiB per GPU, ...
    try:
        run = simulate_training(variant(sc, {**overrides, "training.check_memory": False}))
    except TwinError as err:
        return None, f"refused: {_message(err)}"
    return run, f"does not fit: {why}; run with training.check_memory: false"


def schedule_study(base: TrainingRun, progress: Progress | None = None) -> tuple[ScheduleRow, ...]:
    """The compared schedules on ``base``'s scenario, and its own where it is not one of them (its row
    reuses ``base``)."""
    sc = base.scenario
    rows = []
    names = list(COMPARED)  # the five the report compares (the others are there to be named)
    if sc.pipeline.schedules[0] not in names:  # (interleaved-1f1b-overlap, looped-bfs, ...): the step's own row
        names.append(sc.pipeline.schedules[0])
    for i, name in enumerate(names):
        if progress is not None:
            progress(f"schedule {name}", i, len(names))
        if name == sc.pipeline.schedules[0]:
            rows.append(schedule_row(base))
            continue
        run, note = run_variant(sc, {"pipeline.schedules": [name]})
        rows.append(ScheduleRow(name, note) if run is None else schedule_row(run, note))
    return tuple(rows)


@dataclass(frozen=True)
class SmPoint:
    """The step with ``comm_sms`` SMs for DeepEP (or on a co-processor)."""

    comm_sms: int
    coprocessor: bool
    compute_sms: int
    step_time_s: float | None
    ep_exposed_s: float | None  # inside the chunks of the rank that ends the step: DeepEP busy, compute idle
    note: str = ""


def _sm_point(run: TrainingRun | None, sms: int, coprocessor: bool, total_sms: int, note: str) -> SmPoint:
    compute = total_sms if coprocessor else total_sms - sms
    if run is None:
        return SmPoint(sms, coprocessor, compute, None, None, note)
    r = run.result
    return SmPoint(sms, coprocessor, compute, r.step_time_s, r.reported.ep_comm_exposed_s, note)


def sm_study(
    base: TrainingRun, counts: tuple[int, ...] = SM_COUNTS, progress: Progress | None = None
) -> tuple[SmPoint, ...]:
    """The step at each SM count for communication (and the scenario's own), then the co-processor
    point (``comm.coprocessor: true`` with the scenario's ``comm.sms`` channels). A count the GPU
    cannot give is a point with its refusal. A dense model has no DeepEP kernels to hold SMs: no
    point."""
    sc = base.scenario
    if not sc.model.n_routed_experts:
        return ()
    total = base.gpu.sms  # the profile's GPU
    own = sc.comm.sms
    wanted = sorted({*counts, own} - {0})
    points = []
    steps = len(wanted) + 1
    for i, sms in enumerate(wanted):
        if progress is not None:
            progress(f"{sms} communication SMs", i, steps)
        if sms == own and not sc.comm.coprocessor:
            points.append(_sm_point(base, sms, False, total, ""))
            continue
        run, note = run_variant(sc, {"comm.sms": sms, "comm.coprocessor": False})
        points.append(_sm_point(run, sms, False, total, note))
    if progress is not None:
        progress("co-processor", steps - 1, steps)
    if sc.comm.coprocessor:
        points.append(_sm_point(base, own, True, total, ""))
    else:
        run, note = run_variant(sc, {"comm.coprocessor": True})
        points.append(_sm_point(run, own, True, total, note))
    return tuple(points)


@dataclass(frozen=True)
class Study:
    """What a report sets beside a step: the schedules, the SM split and the bytes per node."""

    schedules: tuple[ScheduleRow, ...]
    sms: tuple[SmPoint, ...]
    bytes: NodeBytes


def run_study(base: TrainingRun, progress: Progress | None = None, counts: tuple[int, ...] = SM_COUNTS) -> Study:
    """Every schedule, every SM count and the co-processor, and the step's bytes per node."""
    schedules = schedule_study(base, progress)
    sms = sm_study(base, counts, progress)
    if progress is not None:
        progress("bytes per node", 0, 1)
    return Study(schedules, sms, node_bytes(base.step))
