"""Accounting: busy, bubble, the activation counting rule, parameter copies; a schedule run's trace and
spans through the step's exporter."""

from __future__ import annotations

import json

import pytest

from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P, execute
from sim.pipeline.ops import Action, Op
from sim.pipeline.schedules import build_schedule
from sim.pipeline.schedules.linear import linear_schedule
from sim.results import metrics
from sim.step.spec import StepRun
from sim.step.timeline import COLUMNS, STREAM_TID, perfetto_json, perfetto_trace, spans_frame, timeline


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


def test_a_schedule_run_traces_as_a_step_one_slice_per_action_and_an_arrow_per_send() -> None:
    """A schedule with given op times goes through the training step's exporter: one process per
    pipeline rank, one slice per action on ``compute``, each send a slice on the source's ``send`` track
    and the destination's ``recv`` track (a second lane where sends overlap), joined by a flow arrow
    (same id, start on the source)."""
    run = execute(build_schedule("zb1p", 3, 4), OpTimes.uniform(3, 1.0, 2.0, 1.0), P2P(1e3, 1e6, 1e-4))
    tl = timeline(StepRun.of_schedule(run))
    trace = json.loads(json.dumps(perfetto_trace(tl, "zb1p")))
    events = trace["traceEvents"]
    compute = [e for e in events if e["ph"] == "X" and e["tid"] == STREAM_TID["compute"]]
    assert len(compute) == sum(len(a) for a in run.schedule.actions)
    assert {e["pid"] for e in compute} == {0, 1, 2}
    transfers = run.recorder.transfers
    assert len(transfers) == 2 * 4 * 2  # 4 micro-batches cross each of 2 boundaries, both directions
    lanes = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    sends = [e for e in events if e["ph"] == "X" and lanes.get(e["tid"], "").startswith("send")]
    recvs = [e for e in events if e["ph"] == "X" and lanes.get(e["tid"], "").startswith("recv")]
    assert len(sends) == len(recvs) == len(transfers)
    assert all(e["args"]["bytes"] == 1e3 for e in sends + recvs)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert set(starts) == set(ends) == set(range(len(transfers)))
    for k, t in enumerate(transfers):
        assert (starts[k]["pid"], ends[k]["pid"]) == (t.src, t.dst)
        assert starts[k]["ts"] == pytest.approx(t.start * 1e6)
    assert all(e["dur"] >= 0 for e in events if e["ph"] == "X")


@pytest.mark.parametrize("scale", [1e6, 1e3])
def test_the_fast_trace_text_is_the_trace_dumped(scale: float) -> None:
    """:func:`perfetto_json` formats the slices itself; it must be ``json.dumps`` of the trace, byte for
    byte, titles and names with characters JSON escapes included."""
    run = execute(build_schedule("dualpipe", 4, 8), OpTimes.uniform(4, 1.0, 2.0, 1.0, 3.0), P2P(1e3, 1e6, 1e-4))
    tl = timeline(StepRun.of_schedule(run))
    title = 'a "quoted" title\\ with é and \u2028'
    assert perfetto_json(tl, title, time_scale_us=scale) == json.dumps(
        perfetto_trace(tl, title, time_scale_us=scale), separators=(",", ":")
    )


def test_the_spans_frame_of_given_op_times_has_the_step_columns() -> None:
    step = StepRun.of_schedule(execute(build_schedule("dualpipe", 4, 8), OpTimes.uniform(4, 1.0, 2.0, 1.0, 3.0)))
    df = spans_frame(step)
    assert list(df.columns) == COLUMNS
    assert set(df["op"]) == {"F", "B", "I", "W", "F&B"}
    assert set(df["stream"]) == {"compute"} and (df["layer"] == -1).all()
    assert len(df) == sum(len(a) for a in step.pipelines[0].run.schedule.actions)
    assert (df["end_s"] >= df["start_s"]).all()
    assert step.step_time == df["end_s"].max()
