"""Pipeline actions and the schedule data type: what runs where, in which order, with no timing.

Vocabulary (DeepSeek-V3 report, zero-bubble paper):

* ``F``  forward of one stage (chunk) for one micro-batch;
* ``B``  full backward (input and weight gradients together);
* ``I``  backward for inputs only (the part on the critical path);
* ``W``  backward for weights only (can be deferred to fill bubbles);
* ``F&B`` a forward and a backward chunk executed mutually overlapped (DualPipe); its ``parts``
  are the forward action and the backward action (``B``).

A *stage* is an index into the schedule's stage table; each stage lives on one device and covers
``stage_weight`` of one model stage (1 for plain pipelines, ``1/v`` for interleaved virtual stages).
A micro-batch follows one *route*: the ordered stages it passes through in the forward direction
(DualPipe has two routes, one per direction).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Op(StrEnum):
    """Kinds of pipeline actions; the value is the letter used in notation."""

    F = "F"
    B = "B"
    I = "I"  # noqa: E741 - the zero-bubble paper's name
    W = "W"
    FB = "F&B"


@dataclass(frozen=True, slots=True)
class Action:
    """One entry of a device's action list.

    For ``Op.FB`` the ``stage`` and ``mb`` fields are ``-1`` and ``parts`` holds the forward and
    the backward action, in that order.
    """

    op: Op
    stage: int = -1
    mb: int = -1
    parts: tuple[Action, ...] = ()

    @staticmethod
    def overlap(forward: Action, backward: Action) -> Action:
        if forward.op is not Op.F or backward.op not in (Op.B, Op.I):
            raise ValueError(f"F&B needs (F, B|I), got ({forward.op.value}, {backward.op.value})")
        return Action(Op.FB, parts=(forward, backward))

    def atoms(self) -> tuple[Action, ...]:
        """The basic actions this entry performs (itself, or the two parts of an F&B)."""
        return self.parts if self.op is Op.FB else (self,)

    def __str__(self) -> str:
        if self.op is Op.FB:
            return "(" + ";".join(str(p) for p in self.parts) + ")OVERLAP_F_B"
        return f"{self.stage}{self.op.value}{self.mb}"


@dataclass(frozen=True)
class Schedule:
    """Per-device action lists plus the stage table they refer to. Pure data, no timing.

    Attributes:
        name: registry name of the generator.
        pp: number of model stages the model is split into (the ``--pp`` parameter).
        num_microbatches: micro-batches per step.
        stage_device: device of each stage.
        stage_model: model stage (0..pp-1) whose op times a stage uses.
        stage_weight: fraction of one model stage a stage holds (parameters and activations).
        routes: ordered stages of each route (forward direction).
        mb_route: route index of each micro-batch.
        actions: per-device action lists, in execution order.
    """

    name: str
    pp: int
    num_microbatches: int
    stage_device: tuple[int, ...]
    stage_model: tuple[int, ...]
    stage_weight: tuple[float, ...]
    routes: tuple[tuple[int, ...], ...]
    mb_route: tuple[int, ...]
    actions: tuple[tuple[Action, ...], ...]
    _pos: dict[tuple[int, int], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pos: dict[tuple[int, int], int] = {}
        for route_id, route in enumerate(self.routes):
            for i, stage in enumerate(route):
                pos[(route_id, stage)] = i
        object.__setattr__(self, "_pos", pos)

    @property
    def num_devices(self) -> int:
        return len(self.actions)

    @property
    def num_stages(self) -> int:
        return len(self.stage_device)

    def route_of(self, mb: int) -> tuple[int, ...]:
        return self.routes[self.mb_route[mb]]

    def prev_stage(self, stage: int, mb: int) -> int | None:
        """Stage that feeds ``stage`` for micro-batch ``mb`` in the forward pass (None at the start)."""
        route_id = self.mb_route[mb]
        i = self._pos[(route_id, stage)]
        return self.routes[route_id][i - 1] if i > 0 else None

    def next_stage(self, stage: int, mb: int) -> int | None:
        """Stage that ``stage`` feeds for micro-batch ``mb`` (None at the end of the route)."""
        route_id = self.mb_route[mb]
        route = self.routes[route_id]
        i = self._pos[(route_id, stage)]
        return route[i + 1] if i + 1 < len(route) else None

    def on_route(self, stage: int, mb: int) -> bool:
        return (self.mb_route[mb], stage) in self._pos

    def param_copies(self) -> float:
        """Most model-stage parameter sets any device holds (1x = one model stage)."""
        held = [0.0] * self.num_devices
        for stage, device in enumerate(self.stage_device):
            held[device] += self.stage_weight[stage]
        return max(held)

    def iter_atoms(self) -> Iterator[tuple[int, Action]]:
        """Every basic action with its device, F&B pairs split into their parts."""
        for device, actions in enumerate(self.actions):
            for action in actions:
                for atom in action.atoms():
                    yield device, atom

    def num_actions(self) -> int:
        return sum(len(a) for a in self.actions)
