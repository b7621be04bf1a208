"""torch.distributed.pipelining's action-string notation, both ways.

``0F3`` = forward of stage 0 for micro-batch 3; ``7I0`` / ``7W0`` = backward for inputs / weights;
``7B6`` = full backward; ``(0F7;7B3)OVERLAP_F_B`` = an overlapped forward+backward pair. A schedule
is written one line per device, actions separated by spaces. Stages and micro-batches are the ASCII
digits 0-9: Python's int also reads other scripts' digits (``0F٠``: Arabic-Indic zero), which torch's
notation never holds; such an action is refused (:mod:`sim.number_text`).
"""

from __future__ import annotations

import re

from sim.errors import ScenarioError
from sim.limits import MAX_MICROBATCHES, MAX_PP, MAX_SCHEDULE_ACTIONS, MAX_VIRTUAL_STAGES
from sim.number_text import not_ascii
from sim.pipeline.ops import Action, Op, Schedule

MAX_STAGES = MAX_PP * MAX_VIRTUAL_STAGES
_ATOM = re.compile(r"^(\d+)([FBIW])(\d+)$")  # (\d: any script's digits; parse_action refuses all but 0-9)
_OVERLAP = re.compile(r"^\(([^;()]+);([^;()]+)\)OVERLAP_F_B$")


def format_schedule(schedule: Schedule) -> str:
    """One line per device, in torch notation."""
    return "\n".join(" ".join(str(a) for a in acts) for acts in schedule.actions)


def parse_action(text: str) -> Action:
    """Parse one action string; raises ValueError on anything else."""
    text = text.strip()
    m = _ATOM.match(text)
    if m:
        odd = not_ascii(text)
        if odd is not None:
            raise ValueError(f"not a compute action in torch notation: {text!r}: its stage or micro-batch {odd}")
        return Action(Op(m.group(2)), int(m.group(1)), int(m.group(3)))
    m = _OVERLAP.match(text)
    if m:
        return Action.overlap(parse_action(m.group(1)), parse_action(m.group(2)))
    raise ValueError(f"not a compute action in torch notation: {text!r} (expected e.g. 0F3, 7I0, (0F7;7B3)OVERLAP_F_B)")


def parse_lines(text: str, source: str = "<text>") -> list[list[Action]]:
    """Per-device action lists from one line per device (blank lines and ``#`` comments skipped).

    A line may start with a ``rank N:`` (or ``device N:``) label; a label must be the line's device,
    counted from 0 in order (labels that said otherwise were dropped: two lines of ``rank 0`` ran as
    devices 0 and 1). Errors name the source and line.
    """
    devices: list[list[Action]] = []
    count = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        label = re.match(r"^(rank|device)\s*([0-9]+)\s*:\s*", line)  # (ASCII digits, as every number)
        if label is not None:
            if int(label.group(2)) != len(devices):
                said = f"{label.group(1)} {label.group(2)}"
                why = f"labelled {said}, but it is device {len(devices)} (one line a device, in order from 0)"
                raise ScenarioError(f"line {lineno}", why, source)
            line = line[label.end() :]
        try:
            devices.append([parse_action(tok) for tok in line.split()])
        except ValueError as err:
            raise ScenarioError(f"line {lineno}", str(err), source) from None
        count += len(devices[-1])
        if count > MAX_SCHEDULE_ACTIONS:
            message = f"more than {MAX_SCHEDULE_ACTIONS:,} actions (the most a schedule may have)"
            raise ScenarioError(f"line {lineno}", message, source)
        for action in devices[-1]:  # indices within the bounds of a built schedule (a loop over each, else)
            for atom in action.atoms():
                if atom.stage >= MAX_STAGES or atom.mb >= MAX_MICROBATCHES:
                    message = (
                        f"{action}: stage {atom.stage}, micro-batch {atom.mb}; a schedule has stages below "
                        f"{MAX_STAGES:,} (pp x virtual stages) and micro-batches below {MAX_MICROBATCHES:,}"
                    )
                    raise ScenarioError(f"line {lineno}", message, source)
    if not devices:
        raise ScenarioError("", "no action lines found", source)
    return devices


def two_directions(
    num_stages: int, forwards: dict[int, set[int]], stage_device: dict[int, int] | None = None
) -> tuple[tuple[int, ...], ...] | None:
    """DualPipe's two routes, stages ``0..h-1`` and ``h..2h-1`` (``h = num_stages / 2``; how ``twin
    schedules show dualpipe`` numbers them), where every micro-batch's forwards lie in one half and
    each half has some, and the stages sit as DualPipe places them (``stage_device``: stage ``s`` and
    ``2h-1-s`` on one device, ``h >= 2`` devices); else None (one route through every stage). An
    incomplete one-route file whose micro-batches each stay in one half is not read so: its layout is
    not DualPipe's (a stage per device), and the checker says what is missing."""
    if num_stages < 4 or num_stages % 2 or not forwards:
        return None
    h = num_stages // 2
    if stage_device is not None and any(stage_device.get(s) != stage_device.get(num_stages - 1 - s) for s in range(h)):
        return None
    sides = {min(stages) >= h for stages in forwards.values() if max(stages) < h or min(stages) >= h}
    if len(sides) != 2 or any(min(stages) < h <= max(stages) for stages in forwards.values()):
        return None
    return (tuple(range(h)), tuple(range(h, num_stages)))


def schedule_from_actions(
    actions: list[list[Action]],
    name: str = "imported",
    routes: tuple[tuple[int, ...], ...] | None = None,
) -> Schedule:
    """Build a :class:`Schedule` from per-device action lists.

    Stage devices are read off the lists. Without ``routes``, all stages form one route in index
    order (torch's convention, also for V-shaped schedules), unless the lists are DualPipe's two
    directions (:func:`two_directions`). A micro-batch takes the route that holds the stage of its
    first forward. Inconsistencies (a stage on two devices) are left for the validity checker where
    possible.
    """
    stage_device: dict[int, int] = {}
    mbs: dict[int, int] = {}
    forwards: dict[int, set[int]] = {}  # micro-batch -> the stages of its forwards
    for device, acts in enumerate(actions):
        for action in acts:
            for atom in action.atoms():
                stage_device.setdefault(atom.stage, device)
                if atom.op is Op.F:
                    mbs.setdefault(atom.mb, atom.stage)
                    forwards.setdefault(atom.mb, set()).add(atom.stage)
                else:
                    mbs.setdefault(atom.mb, -1)
    num_stages = max(stage_device) + 1 if stage_device else 0
    missing = [s for s in range(num_stages) if s not in stage_device]
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10:,} more" if len(missing) > 10 else "")
        raise ScenarioError("stages", f"stage(s) {listed} never appear; stages must be numbered 0..S-1")
    routes = routes or two_directions(num_stages, forwards, stage_device) or (tuple(range(num_stages)),)
    num_mb = max(mbs) + 1 if mbs else 0
    mb_route = []
    for m in range(num_mb):
        stage = mbs.get(m, -1)
        mb_route.append(next((i for i, r in enumerate(routes) if stage in r), 0))
    pp = num_stages if len(routes) == 1 else len(routes[0])
    return Schedule(
        name=name,
        pp=pp,
        num_microbatches=num_mb,
        stage_device=tuple(stage_device[s] for s in range(num_stages)),
        stage_model=tuple(s % pp for s in range(num_stages)),
        stage_weight=(1.0,) * num_stages,
        routes=routes,
        mb_route=tuple(mb_route),
        actions=tuple(tuple(a) for a in actions),
    )
