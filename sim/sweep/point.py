"""One sweep point: simulate its training step and reduce it to a row of figures.

:func:`run_point` is what a local worker process or a dask worker runs; it is a pure function of its
arguments (the same row, bit for bit, wherever it runs). :data:`METRICS` is the one list of the
figures a row holds, with their direction (what ``twin compare`` calls better).
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.engine.collector import collector_paused
from sim.errors import TwinError
from sim.paths import shown_in
from sim.units import GiB

OK, INFEASIBLE, FAILED = "ok", "infeasible", "error"
STATUSES = (OK, INFEASIBLE, FAILED)  # a row's status: every point has one


RELATIVE, POINTS, ABSOLUTE = "relative", "points", "absolute"  # how a figure's change is given


@dataclass(frozen=True)
class Metric:
    """A figure of a row: its direction, unit, label, and the unit its changes are given in (``change``).

    * ``relative``: a positive extensive quantity (a time, a rate, a cost, a memory size): the change is a
      percentage of the base (+1.9% step time).
    * ``points``: a ratio (MFU, the bubble's share of the step; values are fractions): the change is in
      percentage points (20.7% -> 9.2% is -11.5 pt, not -55.7%).
    * ``absolute``: a quantity that is signed or can be zero (memory headroom; a part of the step such as
      the bubble or exposed communication, whose change in seconds adds to the step's): the change in the
      figure's unit (-27.3 GB of headroom, not -197.6%; exposed DP +0.211 s).
    """

    name: str
    better: str  # "min" or "max"
    unit: str
    label: str
    change: str = RELATIVE  # RELATIVE, POINTS or ABSOLUTE

    def delta(self, base: float, value: float) -> float:
        """The change from ``base`` to ``value`` in this figure's change unit (NaN where it has none: a
        relative change of a zero base)."""
        if self.change == POINTS:
            return 100.0 * (value - base)
        if self.change == ABSOLUTE:
            return value - base
        return 100.0 * (value / base - 1.0) if base != 0 else math.nan

    def change_text(self, base: float | None, value: float | None) -> str:
        """The change as text: '+1.9%', '-11.5 pt', '-27.294 GB', 'unchanged'; '-' where either is
        missing. Never '-0.0%': a change that rounds to zero is given to two significant figures."""
        if base is None or value is None or math.isnan(base) or math.isnan(value):
            return "-"
        if value == base:
            return "unchanged"
        d = self.delta(base, value)
        if math.isnan(d):  # a relative change of a zero base: the absolute one
            return _signed(value - base, 3) + (f" {self.unit}" if self.unit else "")
        if self.change == POINTS:
            return _signed(d, 1) + " pt"
        if self.change == ABSOLUTE:
            return _signed(d, 3) + (f" {self.unit}" if self.unit else "")
        return _signed(d, 1) + "%"

    @property
    def change_unit(self) -> str:
        """The unit :meth:`delta` is in ('%', 'pt' or the figure's unit)."""
        return {POINTS: "pt", ABSOLUTE: self.unit}.get(self.change, "%")


def _signed(x: float, decimals: int) -> str:
    text = f"{x:+.{decimals}f}"
    return text if float(text) != 0 else f"{x:+.2g}"


METRICS: tuple[Metric, ...] = (
    Metric("step_time_s", "min", "s", "step time"),
    Metric("tokens_per_day", "max", "tokens", "tokens per day"),
    Metric("gpu_hours_per_T", "min", "GPU-h", "GPU-hours per trillion tokens"),
    Metric("cost_per_T_usd", "min", "USD", "cost per trillion tokens, hardware changes priced"),
    Metric("cost_per_T_base_prices_usd", "min", "USD", "cost per trillion tokens at the base's hardware prices"),
    Metric("fabric_cost_usd", "min", "USD", "fabric capital cost, the job's share"),
    Metric("mfu_causal", "max", "", "MFU vs dense BF16 peak (causal FLOPs)", POINTS),
    Metric("mfu_noncausal", "max", "", "MFU vs dense BF16 peak (non-causal FLOPs)", POINTS),
    Metric("tflops_per_gpu", "max", "TFLOPS", "TFLOPS per GPU (causal)"),
    Metric("bubble_s", "min", "s", "pipeline bubble (the rank that ends the step)", ABSOLUTE),
    Metric("bubble_ratio", "min", "", "pipeline bubble / step time (the rank that ends the step)", POINTS),
    Metric(
        "ep_comm_exposed_s",
        "min",
        "s",
        "communication exposed inside chunks: DeepEP, TP, CP (the rank that ends the step)",
        ABSOLUTE,
    ),
    Metric("dp_comm_exposed_s", "min", "s", "DP communication exposed (the rank that ends the step)", ABSOLUTE),
    # the same four as means over the ranks: the columns above follow one rank, and which rank ends the
    # step can change between neighbouring points (their figures then jump while the step moves 0.1%);
    # a mean of every rank's figure moves with the inputs
    Metric("bubble_mean_s", "min", "s", "pipeline bubble, mean over the ranks", ABSOLUTE),
    Metric("bubble_ratio_mean", "min", "", "pipeline bubble / step time, mean over the ranks", POINTS),
    Metric(
        "ep_comm_exposed_mean_s",
        "min",
        "s",
        "communication exposed inside chunks: DeepEP, TP, CP (mean over the ranks)",
        ABSOLUTE,
    ),
    Metric("dp_comm_exposed_mean_s", "min", "s", "DP communication exposed (mean over the ranks)", ABSOLUTE),
    Metric("memory_peak_GiB", "min", "GiB", "peak memory per GPU (worst rank)"),
    Metric("memory_headroom_GiB", "max", "GiB", "GPU memory left at the peak (worst rank)", ABSOLUTE),
    # serving deployments (a serve base scenario: sim.serve)
    Metric("ttft_p50_s", "min", "s", "time to first token, median"),
    Metric("ttft_p99_s", "min", "s", "time to first token, 99th percentile"),
    Metric("tpot_p50_s", "min", "s", "time per output token, median"),
    Metric("tpot_p99_s", "min", "s", "time per output token, 99th percentile"),
    Metric("input_tokens_per_s_per_node", "max", "tokens/s", "input tokens per second per prefill node"),
    Metric("output_tokens_per_s_per_node", "max", "tokens/s", "output tokens per second per decode node"),
    Metric("goodput_requests_per_s", "max", "requests/s", "requests per second meeting both SLOs"),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}
# the figures of the rank that ends the step, and their means over the ranks (which move with the inputs)
MEAN_OF = {
    "bubble_s": "bubble_mean_s",
    "bubble_ratio": "bubble_ratio_mean",
    "ep_comm_exposed_s": "ep_comm_exposed_mean_s",
    "dp_comm_exposed_s": "dp_comm_exposed_mean_s",
}


def reported_rank_note(name: str) -> str | None:
    """What ``twin compare`` says when it ranks or plots by a figure of the rank that ends the step."""
    mean = MEAN_OF.get(name)
    if mean is None:
        return None
    return (
        f"{name} is the figure of the rank that ends each point's step; another rank can end a neighbouring "
        f"point's, and {name} then jumps while the step hardly moves: {mean}, every rank's mean, moves with "
        "the inputs (docs/sweeps.md)"
    )


# the figures of a serving deployment (:func:`_serve_figures`); the others are a training step's
SERVE_METRICS = frozenset(
    {
        "ttft_p50_s",
        "ttft_p99_s",
        "tpot_p50_s",
        "tpot_p99_s",
        "input_tokens_per_s_per_node",
        "output_tokens_per_s_per_node",
        "goodput_requests_per_s",
    }
)
LAYOUT_COLUMNS: tuple[tuple[str, str], ...] = (  # (column, dtype): the layout the point ran
    ("schedule", "string"),
    ("gpus", "Int64"),
    ("pp", "Int64"),
    ("ep", "Int64"),
    ("dp", "Int64"),
    ("microbatches", "Int64"),
    ("memory_capacity_GiB", "float64"),
)
NOTE_COLUMNS: tuple[tuple[str, str], ...] = (  # (column, dtype): what a figure of the row leaves out
    ("cost_note", "string"),  # 'hardware cost not modelled: ...' (sim.economics), null where all is priced
)
PROVENANCE_COLUMNS: tuple[tuple[str, str], ...] = (  # (column, dtype): what computed the row
    ("twin_code", "string"),  # the simulator's code digest (sim.code_digest): another one's rows are redone
    ("twin_inputs", "string"),  # the digest of the files the point read (Sweep.input_digest): if changed, redone
)


def _serve_figures(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    """A serving point's figures (its training columns stay empty)."""
    from sim.serve.deployment import simulate_serve
    from sim.serve.spec import parse_serve

    sc = parse_serve(data, path, Path(folder))
    if sc.serve.traffic is None:
        from sim.errors import ScenarioError

        raise ScenarioError("serve.traffic", "a sweep point simulates traffic: give serve.traffic", path)
    d = simulate_serve(sc).to_dict()
    from sim.run import check_finite

    check_finite(sc, d)  # an overflow refused as twin serve refuses it (the row infeasible, with its reason)

    def nan(x: float | None) -> float:
        return math.nan if x is None else float(x)

    return {
        "ttft_p50_s": nan(d["ttft_s"]["p50"]),
        "ttft_p99_s": nan(d["ttft_s"]["p99"]),
        "tpot_p50_s": nan(d["tpot_s"]["p50"]),
        "tpot_p99_s": nan(d["tpot_s"]["p99"]),
        "input_tokens_per_s_per_node": d["input_tokens_per_s_per_node"],
        "output_tokens_per_s_per_node": d["output_tokens_per_s_per_node"],
        "goodput_requests_per_s": d["goodput_requests_per_s"],
        "gpus": sum(p["nodes"] for p in d["pools"].values()) * (sc.cluster_spec().node.gpus_per_node),
    }


def _figures(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    if "serve" in data:
        return _serve_figures(data, path, folder)
    from sim.config import scenario_from_data
    from sim.run import check_finite, simulate_training

    sc = scenario_from_data(data, path, folder)
    run = simulate_training(sc)
    r = run.result
    lay = r.layout  # (the whole result's to_dict is not needed for it)
    b = r.reported
    over = r.over_ranks()
    peak = max(x.memory.total for x in r.ranks) / GiB
    costs = run.costs
    priced, at_base, note = costs.priced, costs.at_base, costs.note
    figures = {
        "step_time_s": r.step_time_s,
        "tokens_per_day": r.tokens_per_day,
        "gpu_hours_per_T": r.gpu_hours_per_trillion_tokens,
        "cost_per_T_usd": math.nan if note else priced.usd_per_T,  # unknown: some hardware has no price
        "cost_per_T_base_prices_usd": at_base.usd_per_T,
        "fabric_cost_usd": priced.fabric_usd,
        "mfu_causal": r.mfu(True),
        "mfu_noncausal": r.mfu(False),
        "tflops_per_gpu": r.tflops_per_gpu(True),
        "bubble_s": b.bubble_s,
        "bubble_ratio": b.bubble_s / r.step_time_s,
        "ep_comm_exposed_s": b.ep_comm_exposed_s,
        "dp_comm_exposed_s": b.dp_comm_exposed_s,
        "bubble_mean_s": over["bubble_s"]["mean"],
        "bubble_ratio_mean": over["bubble_s"]["mean"] / r.step_time_s,
        "ep_comm_exposed_mean_s": over["ep_comm_exposed_s"]["mean"],
        "dp_comm_exposed_mean_s": over["dp_comm_exposed_s"]["mean"],
        "memory_peak_GiB": peak,
        "memory_headroom_GiB": run.gpu.hbm_GiB - peak,
        **_layout_cells(sc, lay, run.gpu.hbm_GiB),
        "cost_note": note,
    }
    # the row's own figures too (the run's were checked): a cost per trillion tokens of inf was written,
    # then refused when the file was read back (NaN is "not priced", kept)
    check_finite(sc, {k: v for k, v in figures.items() if not (isinstance(v, float) and math.isnan(v))})
    return figures


def _layout_cells(sc: Any, layout: dict[str, Any], hbm_GiB: float) -> dict[str, Any]:
    """The row's :data:`LAYOUT_COLUMNS`: the layout a training point ran (``layout``: ``Layout.to_dict``)."""
    return {
        "schedule": sc.pipeline.schedules[0],
        "gpus": int(layout["gpus"]),
        "pp": sc.pipeline.pp,
        "ep": int(layout["ep"]),
        "dp": int(layout["dp"]),
        "microbatches": int(layout["microbatches"]),
        "memory_capacity_GiB": hbm_GiB,
    }


def past_edge(values: Any) -> tuple[int, str] | None:
    """The first figure of ``values`` (one number, or an array of them) that is in no row of a sweep,
    and why: past :data:`sim.run.EDGE`, where a point's own figures are refused as an overflow (its row
    is infeasible); None when every one is within it (NaN, unknown, is). The one rule for a row read back
    (:func:`sim.sweep.store.check_row`) and a file ``twin compare`` reads."""
    import numpy as np

    from sim.run import EDGE

    flat = np.atleast_1d(np.asarray(values, dtype=np.float64))
    for i in np.flatnonzero(np.abs(flat) > EDGE)[:1]:
        why = "which no figure of a sweep is (one past it is refused as an overflow)"
        return int(i), f"{flat[i]:g} is past {EDGE:g}, {why}"
    return None


def sign_break(name: str, values: Any) -> tuple[int, str] | None:
    """The first of ``values`` (one number, or an array of them: figure ``name`` of ok rows) that no ok
    point has, and why: a figure whose change is relative (a positive extensive quantity: a time, a
    rate, a cost, a memory size) is never negative, and a duration (in s or GPU-h: a step, a first
    token) never zero either; a price or a rate may be zero (a free GPU-hour, no request meeting the
    SLOs). A signed figure (headroom, exposed communication) and a fraction (MFU, bubble ratio) are not
    bounded. An older file's memory in GB is read as the figure in GiB it becomes. NaN (unknown) is
    never one. The one rule for a row read back (:func:`sim.sweep.store.check_row`) and a file
    ``twin compare`` reads."""
    import numpy as np

    m = METRIC_BY_NAME.get(name.removesuffix("_GB") + "_GiB" if name.endswith("_GB") else name)
    if m is None or m.change != RELATIVE:
        return None
    duration = m.unit in ("s", "GPU-h")  # nothing is done in no time
    flat = np.atleast_1d(np.asarray(values, dtype=np.float64))
    bad = (flat <= 0) if duration else (flat < 0)  # (NaN, unknown, is neither)
    for i in np.flatnonzero(bad)[:1]:
        limit = "> 0 (a duration)" if duration else ">= 0"
        return int(i), f"must be {limit} in an ok point, got {float(flat[i])}"
    return None


def empty_figures() -> dict[str, Any]:
    row: dict[str, Any] = {m.name: math.nan for m in METRICS}
    row.update({name: None for name, _ in LAYOUT_COLUMNS + NOTE_COLUMNS + PROVENANCE_COLUMNS})
    return row


def _bound_figures(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    """A training point's lower bounds (:mod:`sim.step.bound`): the step time and the figures monotone in
    it within the point (GPU-hours per trillion tokens, tokens per day), and its layout; no other figure."""
    if "serve" in data:
        raise TwinError("a serving point has no step to bound")
    from sim.assemble import assemble
    from sim.config import scenario_from_data
    from sim.step.accounting import gpu_hours_per_trillion_tokens, tokens_per_day
    from sim.step.bound import step_lower_bound

    sc = scenario_from_data(data, path, folder)
    asm = assemble(sc)
    if asm.step is None or asm.layout is None or asm.gpu is None:
        raise TwinError("a schedule comparison has no training step to bound")
    lay = asm.layout
    t = step_lower_bound(asm.step)
    return {
        "step_time_s": t,
        "tokens_per_day": tokens_per_day(lay.tokens_per_step, t),
        "gpu_hours_per_T": gpu_hours_per_trillion_tokens(lay.gpus, t, lay.tokens_per_step),
        **_layout_cells(sc, lay.to_dict(), asm.gpu.hbm_GiB),
    }


def bound_point(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    """:func:`run_point` of the point's lower bounds (:func:`_bound_figures`) instead of its step: the
    same statuses, the same row's columns (the figures not bounded empty)."""
    return _row_of(_bound_figures, data, path, folder)


def run_point(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    """Simulate the scenario ``data`` (as if read from ``path``, relative paths against ``folder``):
    ``status`` ok with its figures, ``infeasible`` with the one-line reason (a layout that does not
    fit, refused as ``twin run`` would), or ``error`` with the exception (a bug: please report it).

    The cyclic collector is paused for the whole point, not only its event loops: what a step leaves
    for its accounting (some 38,000 spans, transfers, chunk tasks and tuples) is freed by reference
    counting when the point returns, instead of being walked by a collection as soon as the loop
    ends, while it is still alive (sim/engine/collector.py)."""
    with collector_paused():
        return _row_of(_figures, data, path, folder)


def _row_of(figures: Any, data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    row = empty_figures()
    try:
        row.update(figures(data, path, folder))
        row.update(status=OK, error=None)  # null, not an empty string, where nothing went wrong
    except TwinError as err:
        row.update(status=INFEASIBLE, error=shown_in(str(err).replace(f"{path}: ", "", 1)))
    except Exception as err:  # a point never takes the sweep down; it is recorded
        where = traceback.extract_tb(err.__traceback__)[-1]
        text = f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})"
        row.update(status=FAILED, error=shown_in(text))
    return row
