"""The max-plus forms of a chunk's tasks, worked out on Python lists (the arithmetic of
:func:`sim.chunk.plan.comm_plan`).

A chunk has 50 to 570 tasks and 0 to 16 communication data tasks (the default step's chunks), so each
task's form is a row of at most 17 numbers. numpy's fixed cost per call (about half a microsecond,
three calls a task) was most of a plan's time. The 20 plans of a sweep point (point 503 of
``scenarios/sweeps/thousand.yaml``) took 18.5 ms with numpy and take 11.6 ms on lists once this
module is compiled (:mod:`sim.compiled`); from the sources, about numpy's time (17.9 against 17.6 ms).

The floats are numpy's, bit for bit: each sum is the same one float addition, and each maximum picks
the same float. Every finite entry is a sum of non-negative floats from ``+0.0`` (launch gaps,
durations), so no ``-0.0`` arises; equal floats are then the same bits, and whichever operand a
maximum returns on a tie (numpy returns the second) gives the same result. A test ties the two on
random task graphs and on the default step's chunks (``tests/unit/chunk/test_task_forms.py``).
"""

from __future__ import annotations

NEG = float("-inf")


def task_preds(streams: list[str], deps: list[tuple[int, ...]], comm: set[int]) -> list[list[int]]:
    """Each task's dependencies and its stream predecessor, less those its stream predecessor ``s``
    already waited for: where ``s`` is not a comm data task (``comm``), ``end_s = max(ends of s's
    predecessors) + delay_s + d_s`` is, term by term, at least each of those ends (adding a delay and
    a duration >= 0 never lowers a float), so the max over the rest is the same, bit for bit."""
    last: dict[str, int] = {}
    full: list[set[int]] = []
    preds: list[list[int]] = []
    for i in range(len(streams)):
        mine = set(deps[i])
        stream = streams[i]
        s = last.get(stream, -1)
        last[stream] = i
        if s < 0:
            full.append(mine)
            preds.append(sorted(mine))
            continue
        kept = mine - full[s] if s not in comm else set(mine)
        kept.add(s)
        mine.add(s)
        full.append(mine)
        preds.append(sorted(kept))
    return preds


def task_forms(
    preds: list[list[int]], delays: list[float], durations: list[float], slot: list[int], n_k: int
) -> tuple[list[list[float]], list[float]]:
    """Every task's start form ``[c0, c1..cK]`` and the span's form. Task ``i`` starts ``delays[i]``
    after the latest end of ``preds[i]`` (or of the chunk's start) and lasts ``durations[i]``;
    ``slot[i]`` is its index among the comm data tasks (-1: not one), whose end is its own ``E_k``."""
    width = n_k + 1
    first = [NEG] * width
    first[0] = 0.0  # no predecessor: queued at the chunk's start
    ends: list[list[float]] = []
    forms: list[list[float]] = []
    for i in range(len(preds)):
        p = preds[i]
        d = delays[i]
        if p:
            latest = ends[p[0]]
            if len(p) > 1:  # np.maximum.reduce over the rows, in their order (a if a >= b else b)
                latest = list(latest)
                for q in range(1, len(p)):
                    row = ends[p[q]]
                    for j in range(width):
                        b = row[j]
                        if b > latest[j]:
                            latest[j] = b
            # np.maximum(latest, first) + d: first is -inf past its constant, where the maximum is latest's
            a = latest[0]
            form = [x + d for x in latest]
            form[0] = (a if a >= 0.0 else 0.0) + d
        else:
            form = [x + d for x in first]
        forms.append(form)
        k = slot[i]
        if k >= 0:  # a comm data task ends at its own end E_k (the row stays -inf elsewhere)
            end = [NEG] * width
            end[k + 1] = 0.0
        else:
            t = durations[i]
            end = [x + t for x in form]
        ends.append(end)
    if not ends:
        return forms, first
    span = list(ends[0])
    for i in range(1, len(ends)):  # ends.max(axis=0), then np.maximum with first (as above)
        row = ends[i]
        for j in range(width):
            b = row[j]
            if b > span[j]:
                span[j] = b
    a = span[0]
    span[0] = a if a >= 0.0 else 0.0
    return forms, span


def evaluate(form: tuple[float, tuple[tuple[int, float], ...]], ends: list[float]) -> float:
    """A form given as its constant and its finite offsets ``(k, c)``, at the comm tasks' ends ``ends``
    (the terms past the ends known are left out): the largest of the constant and each ``ends[k] + c``."""
    value, terms = form
    n = len(ends)
    for k, c in terms:
        if k < n:
            v = ends[k] + c
            if v > value:
                value = v
    return value
