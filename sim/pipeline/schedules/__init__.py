"""Schedule generators: pure functions ``(pp, microbatches, virtual_stages) -> Schedule``.

The registry is keyed by the names used in YAML and on the command line. Importing this package
registers the built-in schedules; a duplicate name is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from sim.errors import LayoutError, ScenarioError
from sim.pipeline.ops import Schedule
from sim.registry import Registry

ScheduleFn = Callable[[int, int, int], Schedule]


@dataclass(frozen=True)
class ScheduleInfo:
    """A registered schedule generator and what the comparison table needs to know about it."""

    name: str
    build: ScheduleFn
    summary: str
    devices: Callable[[int], int]
    virtual: bool = False  # splits a device into pipeline.virtual_stages model chunks (the others ignore it)
    splits_backward: bool = False  # splits a backward B into its input-gradient I and weight-gradient W
    pairs: bool = False  # overlaps a forward and a backward in an F&B pair (in some layouts at least)


SCHEDULES: Registry[ScheduleInfo] = Registry("schedule")

# what a comparison runs unless told: the five the project was built around (DeepSeek's table and
# its baselines); GPipe, looped BFS, interleaved zero bubble and ZB-V are there to be named
COMPARED = ("1f1b", "zb1p", "interleaved-1f1b", "dualpipe", "dualpipev")


def register(
    name: str,
    summary: str,
    devices: Callable[[int], int] = lambda pp: pp,
    *,
    virtual: bool = False,
    splits_backward: bool = False,
    pairs: bool = False,
) -> Callable[[ScheduleFn], ScheduleFn]:
    """Decorator adding a generator to :data:`SCHEDULES` under ``name``, with what its schedules are made
    of (:class:`ScheduleInfo`; ``tests/unit/test_every_key_is_used.py`` and ``tests/unit/test_noop_inputs.py``
    build every registered schedule to check the three flags)."""

    def deco(fn: ScheduleFn) -> ScheduleFn:
        SCHEDULES.add(name, ScheduleInfo(name, fn, summary, devices, virtual, splits_backward, pairs))
        return fn

    return deco


def schedules_that(flag: str) -> frozenset[str]:
    """The registered schedules whose :class:`ScheduleInfo` has ``flag`` (``virtual``, ``splits_backward``,
    ``pairs``) set."""
    return frozenset(name for name, info in SCHEDULES.items() if getattr(info, flag))


def most_devices(names: list[str] | tuple[str, ...], pp: int) -> int:
    """The most pipeline devices any of the schedules ``names`` uses at ``pp`` stages (DualPipeV folds two
    stages on one): one device sends nothing between stages, so stage-to-stage transfers cannot act."""
    return max(SCHEDULES[name].devices(pp) for name in names)


def virtual_stages_used(name: str, virtual_stages: int) -> int:
    """The virtual stages schedule ``name`` builds with: ``virtual_stages`` where it splits a device into
    them (its ``virtual`` flag; an unknown name too, whose own error comes later), else 1 (the others
    ignore the value, 2 by default, and their action counts are taken without it)."""
    info = SCHEDULES.get(name)
    return virtual_stages if info is None or info.virtual else 1


def build_schedule(name: str, pp: int, microbatches: int, virtual_stages: int = 2) -> Schedule:
    """Build a registered schedule; raises :class:`LayoutError` for an impossible layout. A schedule is
    pure data of its arguments, so the last 16 built are kept and handed out again (a sweep's points
    share one: DualPipe over 16 ranks and 120 micro-batches takes some 10 ms to build)."""
    return _build(name, pp, microbatches, virtual_stages)


@functools.lru_cache(maxsize=16)  # (an error is not kept: it is raised again)
def _build(name: str, pp: int, microbatches: int, virtual_stages: int) -> Schedule:
    info = SCHEDULES.get(name)
    if info is None:
        raise ScenarioError("schedule", f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if pp < 1:
        raise LayoutError("pp", f"PP must be >= 1, got {pp}")
    if microbatches < 1:
        raise LayoutError("microbatches", f"need at least 1 micro-batch, got {microbatches}")
    if virtual_stages < 1:
        raise LayoutError("virtual_stages", f"need at least 1 virtual stage per device, got {virtual_stages}")
    return info.build(pp, microbatches, virtual_stages)


def _register_builtins() -> None:
    from sim.pipeline.schedules import (  # noqa: F401
        breadth_first,
        dualpipe,
        ep_overlap,
        interleaved,
        linear,
        zero_bubble,
    )

    # list the built-ins from oldest to newest, whatever the import order
    order = (
        "1f1b",
        "zb1p",
        "interleaved-1f1b",
        "dualpipe",
        "dualpipev",
        "gpipe",
        "looped-bfs",
        "interleaved-zb",
        "zbv",
    )
    ordered = {name: SCHEDULES[name] for name in order} | SCHEDULES
    SCHEDULES.clear()
    SCHEDULES.update(ordered)


_register_builtins()

__all__ = [
    "COMPARED",
    "SCHEDULES",
    "ScheduleInfo",
    "build_schedule",
    "register",
    "schedules_that",
    "virtual_stages_used",
]
