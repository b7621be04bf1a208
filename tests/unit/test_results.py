"""Accounting: busy, bubble, the activation counting rule, parameter copies, trace export."""

from __future__ import annotations

import json

import pytest

from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, execute
from sim.pipeline.ops import Action, Op
from sim.pipeline.schedules import build_schedule
from sim.pipeline.schedules.linear import linear_schedule
from sim.results import chrome_trace, metrics, spans_frame


def test_activation_rule_frees_at_w_when_backward_is_split() -> None:
    F, I, W, B = Op.F, Op.I, Op.W, Op.B  # noqa: E741
    one = linear_schedule(
        "hand",
        1,
        3,
        [
            [
                Action(F, 0, 0),
                Action(F, 0, 1),
                Action(I, 0, 0),
                Action(F, 0, 2),
                Action(W, 0, 0),
                Action(B, 0, 1),
                Action(I, 0, 2),
                Action(W, 0, 2),
            ]
        ],
    )
    m = metrics(execute(one, OpTimes.uniform(1, 1.0, 2.0, 1.0)))
    assert m.peak_activations == (3.0,)  # mb 0 still held (its W pending) when mb 2 starts
    assert m.busy == (1 + 1 + 1 + 1 + 1 + 2 + 1 + 1,)
    assert m.bubble == (0.0,) and m.step_time == 9.0


def test_interleaved_counts_fractional_stages_and_one_param_copy() -> None:
    m = metrics(execute(build_schedule("interleaved-1f1b", 4, 8, 2), OpTimes.uniform(4, 1.0, 2.0, 1.0)))
    # device 0 warm-up: (v-1)*PP + 2*(PP-1) = 10 chunks of 1/2 stage, plus the first 1F1B forward
    assert max(m.peak_activations) == pytest.approx(5.5)
    assert m.param_copies == pytest.approx(1.0)


def test_bubble_ratio_and_dict_shape() -> None:
    m = metrics(execute(build_schedule("1f1b", 4, 4), OpTimes.uniform(4, 1.0, 1.0, 0.5)))
    assert m.step_time == 14.0 and max(m.bubble_ratio) == pytest.approx(6 / 14)
    d = m.to_dict()
    assert d["bubble"]["max"] == 6.0 and d["devices"] == 4 and d["param_copies"] == 1.0


def test_chrome_trace_has_a_track_per_device_and_link() -> None:
    run = execute(build_schedule("zb1p", 3, 4), OpTimes.uniform(3, 1.0, 2.0, 1.0), P2P(1e3, 1e6, 1e-4))
    trace = json.loads(json.dumps(chrome_trace(run)))
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    compute = [e for e in xs if e["pid"] == 0]
    assert len(compute) == sum(len(a) for a in run.schedule.actions)
    assert {e["tid"] for e in compute} == {0, 1, 2}
    links = {e["tid"] for e in xs if e["pid"] == 1}
    assert len(links) == 4  # 0->1, 1->2 forward; 2->1, 1->0 backward
    assert all(e["dur"] >= 0 for e in xs)


def test_spans_frame_columns() -> None:
    df = spans_frame(execute(build_schedule("dualpipe", 4, 8), OpTimes.uniform(4, 1.0, 2.0, 1.0, 3.0)))
    assert list(df.columns) == ["device", "index", "label", "op", "stage", "mb", "start_s", "end_s"]
    assert set(df["op"]) == {"F", "B", "I", "W", "F&B"}
    assert (df["end_s"] >= df["start_s"]).all()
