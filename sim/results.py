"""Accounting of a schedule run: busy time, bubbles, activation memory, parameter copies (its spans
and trace: :mod:`sim.step.timeline`, as for every run).

Definitions (per device):

* ``step_time`` (makespan): end of the last action on any device; the step starts at 0.
* ``busy``: sum of the device's action durations (an F&B pair counts once, for its own duration).
* ``bubble`` = step_time - busy; ``bubble_ratio`` = bubble / step_time.
* ``peak_activations``: most micro-batch activations held at once, in units of one model stage's
  activations for one micro-batch. Counting rule: the activations of (stage, micro-batch) are
  allocated when its F starts and freed when its backward is complete, i.e. when its B ends, or when
  its W ends if the backward is split (W still needs the stored inputs). A stage holding a fraction
  ``w`` of a model stage (interleaved) counts ``w``. At equal times frees come before allocations.
* ``param_copies``: most model-stage parameter sets any device holds (1x = one model stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Op


@dataclass(frozen=True)
class ScheduleMetrics:
    """Summary of one run; lists are indexed by device, times in seconds."""

    name: str
    devices: int
    pp: int
    microbatches: int
    step_time: float
    busy: tuple[float, ...]
    bubble: tuple[float, ...]
    peak_activations: tuple[float, ...]
    param_copies: float

    @property
    def bubble_ratio(self) -> tuple[float, ...]:
        return tuple(b / self.step_time if self.step_time > 0 else 0.0 for b in self.bubble)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``twin schedules compare``."""
        return {
            "name": self.name,
            "devices": self.devices,
            "step_time": self.step_time,
            "bubble": {"max": max(self.bubble), "per_device": list(self.bubble)},
            "bubble_ratio": {"max": max(self.bubble_ratio), "per_device": list(self.bubble_ratio)},
            "peak_activations": {"max": max(self.peak_activations), "per_device": list(self.peak_activations)},
            "param_copies": self.param_copies,
        }


def metrics(run: ScheduleRun) -> ScheduleMetrics:
    """Busy time, bubbles, peak activations and parameter copies of a run."""
    sched = run.schedule
    n = sched.num_devices
    busy = [0.0] * n
    step_time = 0.0
    deltas: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    for span in run.recorder.spans:
        busy[span.device] += span.end - span.start
        step_time = max(step_time, span.end)
        for atom in sched.actions[span.device][span.pos].atoms():
            weight = sched.stage_weight[atom.stage]
            if atom.op is Op.F:
                deltas[span.device].append((span.start, weight))
            elif atom.op in (Op.B, Op.W):
                deltas[span.device].append((span.end, -weight))
    peaks = []
    for events in deltas:
        level = peak = 0.0
        for _, delta in sorted(events):
            level += delta
            peak = max(peak, level)
        peaks.append(round(peak, 9))
    return ScheduleMetrics(
        name=sched.name,
        devices=n,
        pp=sched.pp,
        microbatches=sched.num_microbatches,
        step_time=step_time,
        busy=tuple(busy),
        bubble=tuple(step_time - b for b in busy),
        peak_activations=tuple(peaks),
        param_copies=sched.param_copies(),
    )
