"""The validity checker: proves a schedule is complete, consistent and cannot deadlock.

Checks, in order:
1. every action names a stage on its own device and a micro-batch whose route passes that stage;
2. every (stage, micro-batch) on a route gets exactly one F and either one B or one I plus one W;
3. an F&B pair does not depend on itself;
4. a dry run in dependency order (no timing) completes: if it stalls, the report says which
   devices wait at which action for which data. A schedule that passes 4 cannot deadlock under
   any op times, since each device runs its list in order and only waits on data.
"""

from __future__ import annotations

from collections import Counter, deque

from sim.errors import DeadlockError, TwinError
from sim.pipeline.deps import Key, describe, needs, produces
from sim.pipeline.ops import Op, Schedule


class InvalidSchedule(TwinError):
    """The schedule breaks one of the rules above; ``problems`` lists each breach."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"schedule {name!r} is invalid: " + "; ".join(problems[:3]) + more)


def find_problems(schedule: Schedule) -> list[str]:
    """Every breach of rules 1-3 (empty when the schedule is well formed)."""
    problems: list[str] = []
    count: Counter[tuple[Op, int, int]] = Counter()
    for device, acts in enumerate(schedule.actions):
        for index, action in enumerate(acts):
            for atom in action.atoms():
                s, m = atom.stage, atom.mb
                if not (0 <= s < schedule.num_stages and 0 <= m < schedule.num_microbatches):
                    problems.append(f"device {device} action {index} ({atom}): stage or micro-batch out of range")
                    continue
                if schedule.stage_device[s] != device:
                    problems.append(
                        f"device {device} action {index} ({atom}): stage {s} lives on device {schedule.stage_device[s]}"
                    )
                if not schedule.on_route(s, m):
                    problems.append(f"device {device} action {index} ({atom}): micro-batch {m} does not pass stage {s}")
                count[(atom.op, s, m)] += 1
            if action.op is Op.FB:
                fwd, bwd = action.parts
                if produces(fwd)[0] in needs(schedule, bwd):
                    problems.append(f"device {device} action {index} ({action}): backward needs its own forward")
    for m in range(schedule.num_microbatches):
        for s in schedule.route_of(m):
            f, b, i, w = (count[(op, s, m)] for op in (Op.F, Op.B, Op.I, Op.W))
            if f != 1:
                problems.append(f"{s}F{m} runs {f} times, expected once")
            if not ((b == 1 and i == 0 and w == 0) or (b == 0 and i == 1 and w == 1)):
                problems.append(
                    f"stage {s} micro-batch {m}: B x{b}, I x{i}, W x{w}; expected B once or I and W once each"
                )
    return problems


def dry_run(schedule: Schedule) -> None:
    """Run the action lists in dependency order with no timing; raise DeadlockError if stuck."""
    pos, done = progress(schedule)
    if any(pos[d] < len(schedule.actions[d]) for d in range(schedule.num_devices)):
        raise DeadlockError(deadlock_report(schedule, pos, done))


def progress(schedule: Schedule) -> tuple[list[int], set[Key]]:
    """How far each device gets running its list in dependency order with no timing (its position:
    the list's length when it finishes), and the data produced by then.

    A worklist: a device runs until an action lacks data, then waits on the first missing key and is
    woken when that key is produced, so each action is checked a bounded number of times (a schedule
    of 4096 stages is checked in well under a second; sweeping every device per round was quadratic).
    """
    done: set[Key] = set()
    pos = [0] * schedule.num_devices
    lists = schedule.actions
    waiting: dict[Key, list[int]] = {}
    ready = deque(range(schedule.num_devices))
    while ready:
        d = ready.popleft()
        acts = lists[d]
        while pos[d] < len(acts):
            atoms = acts[pos[d]].atoms()
            missing = next((k for a in atoms for k in needs(schedule, a) if k not in done), None)
            if missing is not None:
                waiting.setdefault(missing, []).append(d)
                break
            for a in atoms:
                for k in produces(a):
                    if k not in done:
                        done.add(k)
                        ready.extend(waiting.pop(k, ()))
            pos[d] += 1
    return pos, done


def deadlock_report(schedule: Schedule, pos: list[int], done: set[Key]) -> str:
    """One line naming each waiting device, the action it waits at and the missing data."""
    waits = []
    for d in range(schedule.num_devices):
        if pos[d] >= len(schedule.actions[d]):
            continue
        action = schedule.actions[d][pos[d]]
        missing = [k for a in action.atoms() for k in needs(schedule, a) if k not in done]
        what = ", ".join(f"{describe(k)} (device {schedule.stage_device[k[1]]})" for k in missing)
        waits.append(f"device {d} waits at action {pos[d]} ({action}) for {what}")
    return f"schedule {schedule.name!r} deadlocks: " + "; ".join(waits)


def check_schedule(schedule: Schedule) -> None:
    """Raise :class:`InvalidSchedule` or :class:`DeadlockError` unless the schedule is valid."""
    problems = find_problems(schedule)
    if problems:
        raise InvalidSchedule(schedule.name, problems)
    dry_run(schedule)
