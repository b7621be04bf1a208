"""Data dependencies of pipeline actions, shared by the validity checker and the engine.

A *key* names a piece of data an action produces: ``("F", s, m)`` the output activation of
forward ``sFm``; ``("G", s, m)`` the input gradient produced by ``sBm`` or ``sIm``; ``("W", s, m)``
the weight gradient (produced by ``B`` or ``W``; nothing waits on it).

* ``F(s, m)`` needs the activation of the previous stage on m's route (none at the route start);
* ``B(s, m)`` / ``I(s, m)`` need ``F(s, m)`` and the gradient of the next stage (none at the end:
  the loss is computed right after the last forward);
* ``W(s, m)`` needs ``I(s, m)``.
"""

from __future__ import annotations

from sim.pipeline.ops import Action, Op, Schedule

Key = tuple[str, int, int]


def needs(schedule: Schedule, atom: Action) -> list[Key]:
    """Keys that must be available before ``atom`` can start."""
    s, m = atom.stage, atom.mb
    if atom.op is Op.F:
        prev = schedule.prev_stage(s, m)
        return [] if prev is None else [("F", prev, m)]
    if atom.op in (Op.B, Op.I):
        nxt = schedule.next_stage(s, m)
        return [("F", s, m)] if nxt is None else [("F", s, m), ("G", nxt, m)]
    if atom.op is Op.W:
        return [("G", s, m)]
    raise ValueError(f"not a basic action: {atom}")


def produces(atom: Action) -> list[Key]:
    """Keys that become available when ``atom`` finishes."""
    s, m = atom.stage, atom.mb
    if atom.op is Op.F:
        return [("F", s, m)]
    if atom.op is Op.B:
        return [("G", s, m), ("W", s, m)]
    if atom.op is Op.I:
        return [("G", s, m)]
    return [("W", s, m)]


def action_keys(schedule: Schedule, action: Action) -> tuple[list[Key], list[Key]]:
    """(the keys an action waits for, the keys it publishes): :func:`needs` and :func:`produces` of each
    of its atoms (an overlapped F&B pair has two), in order."""
    atoms = action.atoms()
    return [k for a in atoms for k in needs(schedule, a)], [k for a in atoms for k in produces(a)]


def consumers(schedule: Schedule, key: Key) -> list[int]:
    """Devices on which ``key`` is needed (the producer's own device first)."""
    kind, s, m = key
    here = schedule.stage_device[s]
    other = schedule.next_stage(s, m) if kind == "F" else schedule.prev_stage(s, m) if kind == "G" else None
    if other is None or schedule.stage_device[other] == here:
        return [here] if kind != "W" else []
    return [here, schedule.stage_device[other]]


def describe(key: Key) -> str:
    kind, s, m = key
    return {"F": f"activation of {s}F{m}", "G": f"gradient of {s}B{m}/{s}I{m}", "W": f"weights of {s}W{m}"}[kind]
