"""Property tests over random valid layouts and random, uneven per-stage op times.

For every schedule: the checker accepts it; every action runs exactly once and in its device's
order; no device runs two actions at once; every dependency (with its transfer) is respected;
the step time is at least every device's busy time; the same inputs give identical spans.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.pipeline.costs import OpTimes
from sim.pipeline.deps import consumers, needs, produces
from sim.pipeline.execute import P2P, ScheduleRun, execute
from sim.pipeline.ops import Op, Schedule
from sim.pipeline.schedules import SCHEDULES, build_schedule
from sim.pipeline.validate import check_schedule
from sim.results import metrics

time_value = st.floats(min_value=0.05, max_value=5.0, allow_nan=False)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, int, int, int]:
    name = draw(st.sampled_from(sorted(SCHEDULES)))
    if name in ("dualpipe", "dualpipev", "zbv"):
        pp = 2 * draw(st.integers(1, 6))
        low = {"dualpipe": 2 * pp, "dualpipev": pp, "zbv": 1}[name]
        n = draw(st.integers(low, 4 * pp))
        n += n % 2 if name == "dualpipe" else 0
    else:
        pp = draw(st.integers(1, 9))
        n = draw(st.integers(1, 5 * pp + 3))
    v = draw(st.integers(1, 4))
    return name, pp, n, v


@st.composite
def op_times(draw: st.DrawFn, pp: int) -> OpTimes:
    f = tuple(draw(st.lists(time_value, min_size=pp, max_size=pp)))
    b = tuple(draw(st.lists(time_value, min_size=pp, max_size=pp)))
    w = tuple(bi * draw(st.floats(0.0, 1.0)) for bi in b)
    fb = (
        None if draw(st.booleans()) else tuple(fi + bi * draw(st.floats(0.5, 1.2)) for fi, bi in zip(f, b, strict=True))
    )
    return OpTimes(f, b, w, fb)


def _assert_run_is_consistent(sched: Schedule, times: OpTimes, p2p: P2P, run: ScheduleRun) -> None:
    spans = run.recorder.spans
    # every action exactly once, in list order, never overlapping on a device
    assert sorted((s.device, s.pos) for s in spans) == [
        (d, i) for d in range(sched.num_devices) for i in range(len(sched.actions[d]))
    ]
    by_device: dict[int, list] = {}
    for s in spans:
        by_device.setdefault(s.device, []).append(s)
    for d, lst in by_device.items():
        lst.sort(key=lambda s: s.pos)
        for a, b in itertools.pairwise(lst):
            assert b.start >= a.end - 1e-12, (d, a, b)
        for s in lst:
            assert abs((s.end - s.start) - times.duration(sched.actions[d][s.pos], sched)) < 1e-9
    # dependencies: consumer starts after producer end + transfer time when devices differ
    finish: dict[tuple, tuple[int, float]] = {}
    for s in spans:
        for atom in sched.actions[s.device][s.pos].atoms():
            for key in produces(atom):
                finish[key] = (s.device, s.end)
    hop = p2p.latency_s + (p2p.nbytes / p2p.bandwidth_Bps if p2p.nbytes else 0.0)
    for s in spans:
        for atom in sched.actions[s.device][s.pos].atoms():
            for key in needs(sched, atom):
                src, end = finish[key]
                assert s.device in consumers(sched, key)
                lag = 0.0 if src == s.device else hop
                assert s.start >= end + lag - 1e-9, (atom, key)
    m = metrics(run)
    assert all(m.step_time >= busy - 1e-9 for busy in m.busy)
    assert all(b >= -1e-9 for b in m.bubble)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_layouts_run_correctly(data: st.DataObject) -> None:
    name, pp, n, v = data.draw(layouts())
    sched = build_schedule(name, pp, n, v)
    check_schedule(sched)
    times = data.draw(op_times(pp))
    p2p = data.draw(st.sampled_from([P2P(), P2P(1e6, 1e7, 0.01), P2P(0.0, float("inf"), 0.2)]))
    run = execute(sched, times, p2p)
    _assert_run_is_consistent(sched, times, p2p, run)
    again = execute(sched, times, p2p)
    assert again.recorder.spans == run.recorder.spans
    assert again.recorder.transfers == run.recorder.transfers


@settings(max_examples=60, deadline=None)
@given(layout=layouts())
def test_every_stage_microbatch_gets_one_forward_and_one_backward(layout: tuple[str, int, int, int]) -> None:
    name, pp, n, v = layout
    sched = build_schedule(name, pp, n, v)
    seen: dict[tuple[Op, int, int], int] = {}
    for _, atom in sched.iter_atoms():
        seen[(atom.op, atom.stage, atom.mb)] = seen.get((atom.op, atom.stage, atom.mb), 0) + 1
    for m in range(n):
        for s in sched.route_of(m):
            assert seen.get((Op.F, s, m)) == 1
            split = seen.get((Op.I, s, m), 0), seen.get((Op.W, s, m), 0)
            assert (seen.get((Op.B, s, m), 0), *split) in {(1, 0, 0), (0, 1, 1)}
