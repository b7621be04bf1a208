"""The Perfetto slice of an overlapped F&B pair with given op times (DualPipe, DualPipeV) names both of
its parts: each part's micro-batch and stage and the time it was given for that op on that stage, the
slice itself lasting the pair's F&B as simulated. (It named the forward half only: the pair's
micro-batch and stage were its F's, its B's nowhere but in the action's label.)

The expected values are derived from the inputs: the F, B, W and F&B times per model stage, and which
model stage a schedule stage runs (DualPipe: route 0 holds stages 0..PP-1, route 1 stages PP..2PP-1 of
the same model stages; DualPipeV: stage s is model stage s)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main

PAIR = re.compile(r"^\((\d+)F(\d+);(\d+)([BI])(\d+)\)OVERLAP_F_B$")
PP = 4


def _model_stage(schedule: str, stage: int) -> int:
    return stage % PP if schedule == "dualpipe" else stage


def _pairs(trace_file: Path) -> list[dict[str, Any]]:
    events = json.loads(trace_file.read_text())["traceEvents"]
    pairs = [e for e in events if e["ph"] == "X" and e["name"] == "F&B"]
    assert pairs, "no F&B slice in the trace"
    return pairs


def _check(
    pairs: list[dict[str, Any]],
    schedule: str,
    f: list[float],
    b: list[float],
    w: list[float],
    fb: list[float],
    us_per_unit: float,
) -> None:
    """Each F&B slice against the op times given (``us_per_unit``: microseconds per unit of them)."""
    for e in pairs:
        args = e["args"]
        m = PAIR.match(args["action"])
        assert m is not None, args["action"]
        f_stage, f_mb, b_stage, b_op, b_mb = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
        mf, mb = _model_stage(schedule, f_stage), _model_stage(schedule, b_stage)
        b_time = b[mb] if b_op == "B" else b[mb] - w[mb]
        assert set(args) == {"action", "F", b_op}, args  # no micro-batch or stage of one half alone
        assert args["F"] == {"microbatch": f_mb, "stage": f_stage, "dur": pytest.approx(f[mf] * us_per_unit)}
        assert args[b_op] == {"microbatch": b_mb, "stage": b_stage, "dur": pytest.approx(b_time * us_per_unit)}
        # the slice: the pair as simulated, the mean of the two stages' F&B times
        assert e["dur"] == pytest.approx(0.5 * (fb[mf] + fb[mb]) * us_per_unit)


def _cli(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)


@pytest.mark.parametrize("schedule", ["dualpipe", "dualpipev"])
def test_schedules_trace_f_and_b_args_are_the_given_op_times(schedule: str, tmp_path: Path) -> None:
    """``twin schedules trace``: uniform times, 1 unit = 1 ms = 1000 us in the viewer."""
    out = tmp_path / "t.json"
    _cli(
        [
            "schedules",
            "trace",
            schedule,
            "--pp",
            "4",
            "-n",
            "8",
            "--f",
            "1.5",
            "--b",
            "2.25",
            "--w",
            "1",
            "--fb",
            "3",
            "-o",
            str(out),
        ]
    )
    _check(_pairs(out), schedule, [1.5] * PP, [2.25] * PP, [1.0] * PP, [3.0] * PP, 1e3)


@pytest.mark.parametrize("schedule", ["dualpipe", "dualpipev"])
def test_schedule_comparison_traces_give_each_stage_its_own_f_and_b(schedule: str, tmp_path: Path) -> None:
    """``twin run`` on a schedule comparison (``trace-<schedule>.json``): per-stage times in ms, the
    trace in microseconds; every stage's F, B and F&B differ, so a part takes only its own."""
    f, b, w, fb = [1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0], [4.0, 8.0, 12.0, 16.0], [10.5, 21.0, 31.0, 42.0]
    scenario = tmp_path / "pairs.yaml"
    scenario.write_text(
        "name: pairs\n"
        f"pipeline:\n  pp: {PP}\n  microbatches: 8\n  schedules: [{schedule}]\n"
        f"ops:\n  forward_ms: {f}\n  backward_ms: {b}\n  weight_ms: {w}\n  overlapped_ms: {fb}\n"
    )
    _cli(["run", str(scenario), "-o", str(tmp_path / "out"), "-q"])
    _check(_pairs(tmp_path / "out" / "pairs" / f"trace-{schedule}.json"), schedule, f, b, w, fb, 1e3)
