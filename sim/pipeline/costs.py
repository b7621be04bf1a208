""" "How long" for pipeline actions in abstract mode: op times given directly per model stage.

``OpTimes`` holds, per model stage (index 0..PP-1), the time of a forward chunk (F), a full backward
(B), its weight-gradient part (W, so the input-gradient part I takes B - W) and optionally an
overlapped F&B pair. A stage that holds a fraction ``w`` of a model stage (interleaved virtual
stages) takes ``w`` times as long. An F&B pair of forward stage ``a`` and backward stage ``b`` takes
the mean of the two stages' F&B times (scaled by their weights); without an F&B time it takes
F(a) + B(b), i.e. no overlap benefit. The engine asks this object and never computes a duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sim.errors import ScenarioError
from sim.pipeline.ops import Action, Op, Schedule


class Durations(Protocol):
    """Anything that gives an action's duration on its device (seconds): :class:`OpTimes`, or the
    chunk model's source of a training step (:mod:`sim.step.actions`)."""

    def duration(self, action: Action, schedule: Schedule) -> float: ...


@dataclass(frozen=True)
class OpTimes:
    """Per-model-stage op times in seconds (any consistent unit works; results use the same)."""

    f: tuple[float, ...]
    b: tuple[float, ...]
    w: tuple[float, ...]
    fb: tuple[float, ...] | None = None

    @staticmethod
    def uniform(pp: int, f: float, b: float, w: float, fb: float | None = None) -> OpTimes:
        return OpTimes((f,) * pp, (b,) * pp, (w,) * pp, None if fb is None else (fb,) * pp)

    def validate(self, pp: int) -> None:
        """Raise :class:`ScenarioError` naming the offending field (``f``, ``b``, ``w``, ``fb``)."""
        fields = {"f": self.f, "b": self.b, "w": self.w}
        if self.fb is not None:
            fields["fb"] = self.fb
        for key, values in fields.items():
            if len(values) != pp:
                raise ScenarioError(key, f"needs one value per model stage ({pp}), got {len(values)}")
            for i, value in enumerate(values):
                if not value >= 0:  # also rejects NaN
                    raise ScenarioError(key, f"times must be >= 0, got {value} for stage {i}")
        for i, (b, w) in enumerate(zip(self.b, self.w, strict=True)):
            if w > b:
                raise ScenarioError("w", f"W is part of B and cannot exceed it (stage {i}: W={w} > B={b})")

    def duration(self, action: Action, schedule: Schedule) -> float:
        """Time of one action on its device."""
        op = action.op
        if op is Op.FB:
            fwd, bwd = action.parts
            if self.fb is None:
                return self.duration(fwd, schedule) + self.duration(bwd, schedule)
            return 0.5 * (self._scaled(self.fb, fwd.stage, schedule) + self._scaled(self.fb, bwd.stage, schedule))
        if op is Op.F:
            return self._scaled(self.f, action.stage, schedule)
        if op is Op.B:
            return self._scaled(self.b, action.stage, schedule)
        if op is Op.W:
            return self._scaled(self.w, action.stage, schedule)
        return self._scaled(self.b, action.stage, schedule) - self._scaled(self.w, action.stage, schedule)

    @staticmethod
    def _scaled(values: tuple[float, ...], stage: int, schedule: Schedule) -> float:
        return values[schedule.stage_model[stage]] * schedule.stage_weight[stage]


def takes_no_time(f: Sequence[float], b: Sequence[float]) -> bool:
    """Whether op times ``f`` and ``b`` (per stage) make a step of no time: F and B 0 on every stage, so the
    step time, bubbles and activations are all 0 (the bubble ratio 0/0). Refused wherever op times are
    given (a scenario's ``ops``, ``twin schedules``' flags), each naming its own key."""
    return not any(f) and not any(b)


def first_short_pair(f: Sequence[float], b: Sequence[float], fb: Sequence[float] | None) -> int | None:
    """The first stage whose overlapped F&B time (``fb``, per stage) is below max(F, B) on it, or None: an
    overlapped pair cannot take less than its longer part (F + B: no overlap). Refused wherever op times
    are given, as :func:`takes_no_time`."""
    for i, pair in enumerate(fb or ()):
        if pair < max(f[i], b[i]):
            return i
    return None
