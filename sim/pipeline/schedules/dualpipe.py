"""DualPipe and DualPipeV (DeepSeek-V3 report section 3.2.1; deepseek-ai/DualPipe).

Both run DeepSeek's 8-phase per-rank program. With ``D`` = number of "half ranks" (PP/2 for DualPipe,
the device count for DualPipeV), ``r`` = the rank's distance from the nearer end and ``C`` = micro-
batches per direction (N/2 for DualPipe, N for DualPipeV), rank ``r`` runs, in order:

1. nF0       (D-r-1)*2 x  F0
2. nF0F1     (r+1)     x  F0 F1
3. nB1W1F1   (D-r-1)   x  I1 W F1                 (zero bubble: B split, W right away)
4. nF0B1F1B0 (C-2D+r+1) x (F0&B1) (F1&B0)         (steady state of overlapped pairs; the middle
                                                  rank runs its first F0, B1 un-overlapped)
5. nB1F1B0   (D-r-1)   x  B1 (F1&B0)
6. nB1B0     (r+1)     x  B1 B0                   (the second half as I, W deferred)
7. nWB0      (D-r-1)   x  W I0
8. nW        (r+1)     x  W

Phase 0 is the chunk fed from the rank's nearer end, phase 1 the other one. Deferred W passes run
in first-in first-out order. The counts follow the reference code and torch's ``ScheduleDualPipeV``
(whose action lists ours equal). DualPipeV on D devices with N micro-batches is DualPipe on 2D
ranks with 2N micro-batches cut in half: ranks 0..D-1 of the latter run the same phase program.
"""

from __future__ import annotations

from collections import deque

from sim.errors import LayoutError
from sim.pipeline.ops import Action, Op, Schedule
from sim.pipeline.schedules import register

# A step of the phase program: (kind, phase, zero_bubble) with kind in F, B, W, FB;
# for FB the phase is the forward's, the backward runs on the other phase.
Step = tuple[str, int, bool]

PHASE_NAMES = ("nF0", "nF0F1", "nB1W1F1", "nF0B1F1B0", "nB1F1B0", "nB1B0", "nWB0", "nW")


def phase_counts(half_ranks: int, r: int, chunks: int) -> tuple[int, ...]:
    """Repetition count of each of the 8 phases for half-rank ``r`` (closed form)."""
    d = half_ranks
    return ((d - r - 1) * 2, r + 1, d - r - 1, chunks - 2 * d + r + 1, d - r - 1, r + 1, d - r - 1, r + 1)


def phase_program(half_ranks: int, r: int, chunks: int) -> list[tuple[int, list[Step]]]:
    """The rank's program as (phase index, steps) pairs; one pair per phase repetition."""
    n1, n2, n3, n4, n5, n6, n7, n8 = phase_counts(half_ranks, r, chunks)
    last = r == half_ranks - 1
    prog: list[tuple[int, list[Step]]] = []
    prog += [(0, [("F", 0, False)]) for _ in range(n1)]
    prog += [(1, [("F", 0, False), ("F", 1, False)]) for _ in range(n2)]
    prog += [(2, [("B", 1, True), ("W", -1, True), ("F", 1, False)]) for _ in range(n3)]
    for i in range(n4):
        first: list[Step] = [("F", 0, False), ("B", 1, False)] if (i == 0 and last) else [("FB", 0, False)]
        prog.append((3, [*first, ("FB", 1, False)]))
    prog += [(4, [("B", 1, False), ("FB", 1, False)]) for _ in range(n5)]
    zb = False
    for i in range(n6):
        if i == n6 // 2 and r % 2 == 1:
            zb = True
        b1: Step = ("B", 1, zb)
        if i == n6 // 2 and r % 2 == 0:
            zb = True
        prog.append((5, [b1, ("B", 0, zb)]))
    prog += [(6, [("W", -1, True), ("B", 0, True)]) for _ in range(n7)]
    prog += [(7, [("W", -1, True)]) for _ in range(n8)]
    return prog


def _emit(program: list[tuple[int, list[Step]]], stage_of: tuple[int, int], mb_of: tuple[int, int]) -> list[Action]:
    """Turn a phase program into actions: per-phase micro-batch counters, FIFO of deferred W."""
    fwd = [0, 0]
    bwd = [0, 0]
    pending_w: deque[Action] = deque()
    out: list[Action] = []

    def forward(p: int) -> Action:
        a = Action(Op.F, stage_of[p], mb_of[p] + fwd[p])
        fwd[p] += 1
        return a

    def backward(p: int, zero_bubble: bool) -> Action:
        stage, mb = stage_of[p], mb_of[p] + bwd[p]
        bwd[p] += 1
        if zero_bubble:
            pending_w.append(Action(Op.W, stage, mb))
            return Action(Op.I, stage, mb)
        return Action(Op.B, stage, mb)

    for _, steps in program:
        for kind, p, zb in steps:
            if kind == "F":
                out.append(forward(p))
            elif kind == "B":
                out.append(backward(p, zb))
            elif kind == "W":
                if pending_w:
                    out.append(pending_w.popleft())
            else:
                f = forward(p)
                out.append(Action.overlap(f, backward(1 - p, False)))
    return out


def _check(pp: int, n: int, name: str, min_n: int, n_even: bool) -> None:
    if pp < 2 or pp % 2:
        raise LayoutError("pp", f"{name} needs an even PP >= 2 (two stages per device), got {pp}")
    if n_even and n % 2:
        raise LayoutError("microbatches", f"{name} needs an even number of micro-batches (half per direction), got {n}")
    if n < min_n:
        raise LayoutError("microbatches", f"{name} with PP={pp} needs at least {min_n} micro-batches, got {n}")


@register(
    "dualpipe",
    "DeepSeek DualPipe: two directions, overlapped F&B; bubble (PP/2-1)(F&B+B-3W), 2x params",
    splits_backward=True,
    pairs=True,
)
def dualpipe(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    _check(pp, n, "dualpipe", 2 * pp, n_even=True)
    half, chunks = pp // 2, n // 2
    per_device: list[list[Action]] = []
    for d in range(pp):
        r = min(d, pp - 1 - d)
        second = d >= half
        # direction 0 enters at device 0 (stages 0..pp-1); direction 1 at device pp-1 (stages pp..2pp-1)
        dir_stage = (d, pp + (pp - 1 - d))
        dirs = (1, 0) if second else (0, 1)  # phase -> direction
        stage_of = (dir_stage[dirs[0]], dir_stage[dirs[1]])
        mb_of = (dirs[0] * chunks, dirs[1] * chunks)
        per_device.append(_emit(phase_program(half, r, chunks), stage_of, mb_of))
    return Schedule(
        name="dualpipe",
        pp=pp,
        num_microbatches=n,
        stage_device=tuple(range(pp)) + tuple(pp - 1 - s for s in range(pp)),
        stage_model=tuple(range(pp)) * 2,
        stage_weight=(1.0,) * (2 * pp),
        routes=(tuple(range(pp)), tuple(range(pp, 2 * pp))),
        mb_route=(0,) * chunks + (1,) * chunks,
        actions=tuple(tuple(a) for a in per_device),
    )


@register(
    "dualpipev",
    "DualPipe cut in half (V shape) on PP/2 devices; bubble (PP/2-1)(F&B+B-3W)",
    lambda pp: pp // 2,
    splits_backward=True,
    pairs=True,
)
def dualpipev(pp: int, n: int, virtual_stages: int = 1) -> Schedule:
    _check(pp, n, "dualpipev", pp, n_even=False)
    devices = pp // 2
    per_device = [_emit(phase_program(devices, r, n), (r, pp - 1 - r), (0, 0)) for r in range(devices)]
    return v_schedule("dualpipev", pp, n, per_device)


def v_schedule(name: str, pp: int, n: int, per_device: list[list[Action]]) -> Schedule:
    """Wrap per-device actions of a V-shaped pipeline (stages ``d`` and ``PP-1-d`` on device ``d`` of
    ``PP/2``: DualPipeV, ZB-V) into a :class:`Schedule`."""
    devices = pp // 2
    return Schedule(
        name=name,
        pp=pp,
        num_microbatches=n,
        stage_device=tuple(s if s < devices else pp - 1 - s for s in range(pp)),
        stage_model=tuple(range(pp)),
        stage_weight=(1.0,) * pp,
        routes=(tuple(range(pp)),),
        mb_route=(0,) * n,
        actions=tuple(tuple(a) for a in per_device),
    )
