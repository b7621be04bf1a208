"""The link log and its counters: every record's bytes land, exactly once, in the bins its life spans;
a run's counters add up to the bytes its network carried."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.context import SimContext
from sim.network.linklog import LinkLog, block_counters
from tests.unit.network.conftest import make

BLOCKS = ("a", "b", "c")


@st.composite
def logs(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    end = draw(st.floats(1e-3, 10.0))
    kinds = [np.array(draw(st.lists(st.floats(0.0, 1e9), min_size=3, max_size=3))) for _ in range(3)]
    log = LinkLog()
    for _ in range(draw(st.integers(1, 30))):
        s = draw(st.floats(0.0, end))
        e = draw(st.floats(s, end))
        if draw(st.booleans()):
            log.add_coflow(s, e, draw(st.integers(0, 2)), draw(st.sampled_from(["x", "y"])))
        else:
            log.batches.append((s, e, "flows", np.array(draw(st.lists(st.floats(0.0, 1e9), min_size=2, max_size=3)))))
    return log, kinds, end, draw(st.integers(1, 50))


@settings(max_examples=100, deadline=None)
@given(logs())
def test_counters_hold_every_record_once_within_its_life(case) -> None:  # type: ignore[no-untyped-def]
    log, kinds, end, bins = case
    frame = block_counters(log, kinds, BLOCKS, end, bins)
    want: dict[tuple[str, str], float] = {}
    for _, _, k, tag in log.coflows:
        for b, v in zip(BLOCKS, kinds[k], strict=True):
            want[(tag, b)] = want.get((tag, b), 0.0) + v
    for _, _, tag, vol in log.batches:
        for b, v in zip(BLOCKS, vol, strict=False):
            want[(tag, b)] = want.get((tag, b), 0.0) + v
    got = frame.groupby(["tag", "block"])["bytes"].sum().to_dict()
    for key, v in want.items():
        assert np.isclose(got.get(key, 0.0), v, rtol=1e-9, atol=1e-3), key
    assert not set(got) - {k for k, v in want.items() if v > 0}
    width = end / bins
    first = min(min((r[0] for r in log.coflows), default=end), min((r[0] for r in log.batches), default=end))
    last = max(max((r[1] for r in log.coflows), default=0.0), max((r[1] for r in log.batches), default=0.0))
    assert (frame["end_s"] > first - width * (1 + 1e-9)).all() and (frame["start_s"] <= last + 1e-12).all()


def test_a_run_logs_what_its_network_carried_and_nothing_measured_alone() -> None:
    topo = make(2, "mpft")
    ctx = SimContext(topo)
    net = ctx.network

    def alone():  # type: ignore[no-untyped-def]
        yield net.send(0, 8, 1e9)

    ctx.run_alone([alone()])  # before the main loop: not logged
    ctx.start_main()

    def main():  # type: ignore[no-untyped-def]
        yield net.send(0, 8, 2e9, tag="pipeline")
        yield net.send_batch(np.array([1, 2]), np.array([9, 10]), np.array([1e9, 3e9]), tag="x")

    ctx.env.process(main())
    ctx.env.run()
    carried = net.carried()
    assert carried is not None
    assert [r[2] for r in carried.log.batches] == ["pipeline", "x"]
    frame = carried.counters(ctx.env.now - ctx.origin, bins=7)
    per_tag = frame.groupby("tag")["bytes"].sum()
    hops = len(net.route(np.array([0]), np.array([8])).links)  # each byte crosses every link of its path
    assert np.isclose(per_tag["pipeline"], 2e9 * hops) and np.isclose(per_tag["x"], 4e9 * hops)
    assert np.isclose(frame["bytes"].sum(), net.stats.link_bytes.sum() - 1e9 * hops)  # all but the alone send
