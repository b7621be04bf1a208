"""The report of a whole training run (``twin plan run RUN.yaml -o DIR``) and of a sweep of runs
(``twin plan run SWEEP.yaml -o DIR``), as :class:`~reports.document.Document` objects.

Renders the run's data only: the mapping of ``run.json`` (:func:`sim.experiments.run_plan.summary`:
phases with their slices, groups, totals, the failure model) or of ``sweep.json``
(:func:`sim.experiments.run_sweep.sweep_summary`), and the provenance rows. Every figure in a table is
the JSON's, rounded as the column says; the timeline is drawn from :func:`timeline`, the phases'
slices laid end to end along wall-clock days with each phase's expected time lost to failures after it
(hatched, apart from the phase's own days). ``docs/run.md`` describes the sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from reports.document import Document, figure_text, literal

COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"]
FABRIC_ALPHA = 0.45  # the fabric's share: the phase's colour, lighter
LOST: dict[str, Any] = {"facecolor": "white", "edgecolor": "#555d6e", "hatch": "///"}
SECTIONS = ("Summary", "Phases", "Timeline", "Cost", "Steps", "Provenance")
PHASE_HEADERS = [
    "phase",
    "batch (sequences)",
    "steps",
    "tokens (T)",
    "days",
    "GPU-hours",
    "USD",
    "MFU",
    "published GPU-hours",
    "gap",
]


# --------------------------------------------------------------------------- numbers as the tables show them
def _int(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.0f}"


def _days(x: float) -> str:
    return f"{x:.2f}"


def _tokens(x: float) -> str:
    return f"{x / 1e12:.3f}"


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _gap(got: float, published: float | None) -> str:
    return "-" if not published else f"{got / published - 1:+.1%}"


def _short(days: float) -> str:
    """Days for a label: two decimals, three below a tenth of a day."""
    return f"{days:.2f}" if days >= 0.1 else f"{days:.3f}"


def _span(batches: list[int]) -> str:
    return str(batches[0]) if len(batches) == 1 else f"{batches[0]}..{batches[-1]}"


def _mfu(slices: list[dict[str, Any]]) -> float:
    """MFU weighted by time, as a phase's is (run_plan.PhaseResult.mfu)."""
    days = sum(s["days"] for s in slices)
    return sum(s["mfu"] * s["days"] for s in slices) / days


def published_total(run: dict[str, Any]) -> float | None:
    """The published GPU-hours of the whole run: when every phase has exactly one published figure, its
    own or its group's (DeepSeek-V3: pre-training, and context extension as one), their sum; else None."""
    own = {p["name"]: p["published_gpu_hours"] for p in run["phases"] if p.get("published_gpu_hours") is not None}
    covered = list(own) + [n for g in run["groups"] for n in g["phases"]]
    if sorted(covered) != sorted(p["name"] for p in run["phases"]):
        return None
    return sum(own.values()) + sum(g["published_gpu_hours"] for g in run["groups"])


def phase_rows(run: dict[str, Any]) -> list[list[str]]:
    """The phases table (:data:`PHASE_HEADERS`): a row per phase, per group, then the total."""
    rows = []
    for p in run["phases"]:
        rows.append(
            [
                literal(p["name"]),
                _span(p["batches"]),
                _int(p["steps"]),
                _tokens(p["tokens"]),
                _days(p["days"]),
                _int(p["gpu_hours"]),
                _int(p["usd"]),
                _pct(p["mfu"]),
                _int(p.get("published_gpu_hours")),
                _gap(p["gpu_hours"], p.get("published_gpu_hours")),
            ]
        )
    for g in run["groups"]:
        name = literal(f"{g['name']} ({', '.join(g['phases'])})")
        pub = g["published_gpu_hours"]
        rows.append([name, "", "", "", "", _int(g["gpu_hours"]), "", "", _int(pub), _gap(g["gpu_hours"], pub)])
    t = run["total"]
    pub_total = published_total(run)
    every = [s for p in run["phases"] for s in p["slices"]]
    rows.append(
        [
            "total",
            "",
            _int(sum(p["steps"] for p in run["phases"])),
            _tokens(t["tokens"]),
            _days(t["days"]),
            _int(t["gpu_hours"]),
            _int(t["usd"]),
            _pct(_mfu(every)),
            _int(pub_total),
            _gap(t["gpu_hours"], pub_total),
        ]
    )
    return rows


# --------------------------------------------------------------------------- the timeline
@dataclass(frozen=True)
class Segment:
    """A stretch of the run's wall clock: a slice of a phase at one batch, or the phase's lost time."""

    phase: str
    kind: str  # "slice", or "lost": the expected time lost to failures after the phase's slices
    start: float  # days from the run's start
    days: float
    batch: int | None  # the slice's global batch (sequences)


def timeline(run: dict[str, Any]) -> list[Segment]:
    """The phases in order along wall-clock days: each phase's slices end to end (a ramp's slices first),
    then its expected lost days when the run models failures, then the next phase."""
    out = []
    t = 0.0
    for p in run["phases"]:
        for s in p["slices"]:
            out.append(Segment(p["name"], "slice", t, s["days"], s["global_batch"]))
            t += s["days"]
        lost = (p.get("failures") or {}).get("lost_days", 0.0)
        if lost > 0:
            out.append(Segment(p["name"], "lost", t, lost, None))
            t += lost
    return out


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _ramped(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in run["phases"] if len(p["slices"]) > 1]


def timeline_figure(run: dict[str, Any]) -> Figure:
    """One row per phase along wall-clock days (slices shaded by batch, lost time hatched); below it, for
    each phase with a ramp, its slices enlarged with their batches written in."""
    segments = timeline(run)
    names = [p["name"] for p in run["phases"]]
    ramped = _ramped(run)
    n = len(names)
    heights = [0.45 * n + 0.9] + [1.0] * len(ramped)
    fig, axes = plt.subplots(
        1 + len(ramped), 1, figsize=(10, sum(heights) + 0.4), height_ratios=heights, squeeze=False, layout="constrained"
    )
    ax = axes[0][0]
    end = max(s.start + s.days for s in segments)
    for s in segments:
        i = names.index(s.phase)
        if s.kind == "lost":
            ax.barh(i, s.days, left=s.start, height=0.6, **LOST)
            continue
        batches = run["phases"][i]["batches"]
        shade = 0.45 + 0.55 * (batches.index(s.batch) + 1) / len(batches)
        ax.barh(i, s.days, left=s.start, height=0.6, color=_colour(i), alpha=shade, edgecolor="white", linewidth=0.5)
    for i, p in enumerate(run["phases"]):
        first = next(s for s in segments if s.phase == p["name"])
        lost = (p.get("failures") or {}).get("lost_days", 0.0)
        text = f"{_short(p['days'])} d" + (f" + {_short(lost)} lost" if lost > 0 else "")
        stop = first.start + p["days"] + lost
        ax.text(stop + end * 0.01, i, text, va="center", fontsize=8)
    ax.set_yticks(range(n), [figure_text(name) for name in names])
    ax.invert_yaxis()
    ax.set_xlim(0, end * 1.18)
    lost = any(s.kind == "lost" for s in segments)
    hatched = "; hatched: the expected time lost to failures, apart from the phase's days" if lost else ""
    ax.set_xlabel(f"wall-clock days from the run's start{hatched}")
    ax.set_title(figure_text(f"{run['run']}: {run['total']['days']:.2f} days of training"), fontsize=10)
    for k, p in enumerate(ramped):
        _ramp_panel(axes[k + 1][0], p, names.index(p["name"]))
    return fig


def _ramp_panel(ax: Any, phase: dict[str, Any], i: int) -> None:
    """A ramped phase's slices enlarged: the ramp's, and the start of the steady part."""
    slices = phase["slices"]
    ramp = slices[:-1] if len({s["global_batch"] for s in slices}) > 1 else slices
    ramp_days = sum(s["days"] for s in ramp)
    shown = ramp_days * 1.25 if ramp_days < phase["days"] else phase["days"]
    t = 0.0
    batches = phase["batches"]
    for s in slices:
        if t >= shown:
            break
        shade = 0.45 + 0.55 * (batches.index(s["global_batch"]) + 1) / len(batches)
        ax.barh(0, s["days"], left=t, height=0.6, color=_colour(i), alpha=shade, edgecolor="white", linewidth=0.8)
        middle = t + min(s["days"], shown - t) / 2
        ax.text(middle, 0, str(s["global_batch"]), ha="center", va="center", fontsize=7, clip_on=True)
        t += s["days"]
    ax.set_xlim(0, shown)
    ax.set_yticks([0], [f"{phase['name']}: ramp"])
    ax.set_xlabel(f"days from the phase's start (batch per slice, sequences; the ramp takes {ramp_days:.2f} d)")


# --------------------------------------------------------------------------- the cost
def cost_figure(run: dict[str, Any]) -> Figure:
    """GPU-hours and dollars per phase: the GPU price's part and the fabric's share, and after them the
    expected loss to failures (hatched, apart)."""
    phases = run["phases"]
    names = [p["name"] for p in phases]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(phases) + 1.4), sharey=True, layout="constrained")
    for i, p in enumerate(phases):
        lost = p.get("failures") or {}
        hours = p["gpu_hours"] / 1e3
        left.barh(i, hours, color=_colour(i), height=0.6)
        lost_h = lost.get("lost_gpu_hours", 0.0) / 1e3
        if lost_h > 0:
            left.barh(i, lost_h, left=hours, height=0.6, **LOST)
        left.text(hours + lost_h, i, f" {hours:,.1f}K", va="center", fontsize=8)
        gpu = p["gpu_usd"] / 1e6
        fabric = (p["fabric_usd"] or 0.0) / 1e6
        right.barh(i, gpu, color=_colour(i), height=0.6)
        right.barh(i, fabric, left=gpu, color=_colour(i), alpha=FABRIC_ALPHA, height=0.6)
        lost_usd = (lost.get("lost_usd") or 0.0) / 1e6
        if lost_usd > 0:
            right.barh(i, lost_usd, left=gpu + fabric, height=0.6, **LOST)
        total = "-" if p["usd"] is None else f"${p['usd'] / 1e6:,.3f}M"
        right.text(gpu + fabric + lost_usd, i, f" {total}", va="center", fontsize=8)
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    hatched = "; hatched: expected loss to failures, apart" if any(p.get("failures") for p in phases) else ""
    left.set_xlabel(f"GPU-hours (thousands){hatched}")
    right.set_xlabel("USD (millions): GPU price, then the fabric's share (lighter)")
    for ax in (left, right):
        ax.set_xlim(0, ax.get_xlim()[1] * 1.2)
    return fig


def cost_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in [*run["phases"], {"name": "total", **run["total"], "failures": _total_lost(run)}]:
        lost = p.get("failures") or {}
        rows.append(
            [
                literal(p["name"]),
                _int(p["gpu_hours"]),
                _int(p["gpu_usd"]),
                _int(p["fabric_usd"]),
                _int(p["usd"]),
                _int(lost.get("lost_gpu_hours")),
                _int(lost.get("lost_usd")),
            ]
        )
    return rows


def _total_lost(run: dict[str, Any]) -> dict[str, Any] | None:
    t = run["total"]
    if "lost_days" not in t:
        return None
    return {"lost_days": t["lost_days"], "lost_gpu_hours": t["lost_gpu_hours"], "lost_usd": t["lost_usd"]}


def slice_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in run["phases"]:
        for s in p["slices"]:
            rows.append(
                [
                    literal(p["name"]),
                    str(s["global_batch"]),
                    str(s["seq_len"]),
                    str(s["gpus"]),
                    _tokens(s["tokens"]),
                    _int(s["steps"]),
                    f"{s['step_time_s']:.3f}",
                    f"{s['gpu_hours'] / s['tokens'] * 1e12 / 1e3:,.1f}K",
                    _pct(s["mfu"]),
                    _days(s["days"]),
                ]
            )
    return rows


def _intervals(run: dict[str, Any]) -> str:
    """Each job size's checkpoint interval: '54.5 min on 2048 GPUs'."""
    by_gpus = {s["gpus"]: s["failures"]["interval_s"] for p in run["phases"] for s in p["slices"] if "failures" in s}
    return ", ".join(f"{tau / 60:.1f} min on {g} GPUs" for g, tau in sorted(by_gpus.items()))


# --------------------------------------------------------------------------- the documents
def run_document(run: dict[str, Any], provenance: list[tuple[str, str]]) -> Document:
    """The run's report: summary, the phases table, the timeline, the cost, every step, provenance."""
    t = run["total"]
    doc = Document(f"Training run: {literal(run['run'])}", subtitle=literal(run.get("description", "")))
    doc.heading("Summary")
    gpus = sorted({s["gpus"] for p in run["phases"] for s in p["slices"]})
    usd = "-" if t["usd"] is None else f"${t['usd'] / 1e6:,.3f}M"
    fabric = "" if t["fabric_usd"] is None else f", of which the fabric's share ${t['fabric_usd'] / 1e6:,.3f}M"
    doc.paragraph(
        f"The run: {t['tokens'] / 1e12:.3f}T tokens in {len(run['phases'])} phase(s) on {_span(gpus)} GPUs: "
        f"**{t['days']:.2f} days**, **{t['gpu_hours']:,.0f} GPU-hours**, **{usd}** (GPU-hours at the "
        f"scenario's price{fabric}). Every distinct step (a phase's overrides and a batch) was simulated once "
        "as a sweep point and integrated over its tokens (`sim/experiments/run_plan.py`)."
    )
    pub = published_total(run)
    if pub is not None:
        doc.paragraph(
            f"Published for the phases above: {pub:,.0f} GPU-hours (the sum of the phases' and groups' published "
            f"figures); the twin's total is {_gap(t['gpu_hours'], pub)} from it."
        )
    if "lost_days" in t:
        f = run.get("failures") or {}
        share = t["lost_days"] / t["days"]
        doc.paragraph(
            f"Failures, apart from the figures above: {t['lost_days']:.2f} days ({share:.1%} of the training "
            f"time) and {t['lost_gpu_hours']:,.0f} GPU-hours expected lost to checkpoints, restarts and "
            f"recomputed work (MTBF {f.get('mtbf_gpu_hours', 0):,.0f} GPU-hours per GPU, checkpoint "
            f"{f.get('checkpoint_s', 0):g} s, restart {f.get('restart_s', 0):g} s, checkpoint interval "
            + (f"{f['interval_s']:g} s" if f.get("interval_s") else f"Young's sqrt(2 C M): {_intervals(run)}")
            + "; the expected time for exponential failures, Daly 2006)."
        )
    doc.heading("Phases")
    doc.table(
        PHASE_HEADERS,
        phase_rows(run),
        align="ll" + "r" * (len(PHASE_HEADERS) - 2),
        caption="Steps, tokens, days, GPU-hours and dollars summed over each phase's slices; MFU weighted by "
        "time (causal attention FLOPs); the gap is the twin's GPU-hours against the published figure.",
    )
    doc.heading("Timeline")
    doc.figure(
        timeline_figure(run),
        "timeline",
        "The phases along wall-clock days, each phase's slices end to end (shaded by batch: lighter is "
        "smaller); hatched, the expected time lost to failures after each phase, apart from its days. "
        "Below, a ramp's slices enlarged with their batches (sequences).",
    )
    doc.heading("Cost")
    doc.figure(
        cost_figure(run),
        "cost",
        "GPU-hours and dollars per phase: the GPU price's part, then the fabric's share (lighter); hatched, "
        "the expected loss to failures, apart from the phase's figures.",
    )
    doc.table(
        ["phase", "GPU-hours", "GPU price USD", "fabric share USD", "USD", "lost GPU-hours", "lost USD"],
        cost_rows(run),
        caption="USD: GPU-hours at the scenario's price plus the job's share of the fabric over its life "
        "(`sim/economics.py`); lost: failures' expected cost, not in the other columns.",
    )
    doc.heading("Steps")
    doc.table(
        ["phase", "batch", "sequence", "GPUs", "tokens (T)", "steps", "step s", "GPU-h per T", "MFU", "days"],
        slice_rows(run),
        align="l" + "r" * 9,
        caption="Every slice of every phase at its step: a ramp's equal token slices first, each at its own "
        "batch (fewer micro-batches, the same pipeline bubble), then the phase's global batch.",
    )
    doc.heading("Provenance")
    doc.table(["input", "value"], [[a, b] for a, b in provenance], align="ll")
    return doc


def sweep_rows(sweep: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The points table: each point's totals and GPU-hours per phase (the phases of the first run)."""
    ok = [p for p in sweep["points"] if p["status"] == "ok"]
    names = [ph["name"] for ph in ok[0]["phases"]] if ok else []
    lost = any("lost_days" in p["total"] for p in ok)
    headers = ["point", "run", "days", "GPU-hours", "USD", *(f"{literal(n)} GPU-hours" for n in names)]
    headers += ["lost days", "lost GPU-hours"] if lost else []
    rows = []
    for p in sweep["points"]:
        if p["status"] != "ok":
            cells = [str(p["point"]), literal(p["label"]), p["status"], literal(p["error"])]
            rows.append(cells + [""] * (len(headers) - 4))
            continue
        t = p["total"]
        by = {ph["name"]: ph["gpu_hours"] for ph in p["phases"]}
        row = [str(p["point"]), literal(p["label"]), _days(t["days"]), _int(t["gpu_hours"]), _int(t["usd"])]
        row += [_int(by.get(n)) for n in names]
        if lost:
            row += ["-", "-"] if "lost_days" not in t else [_days(t["lost_days"]), _int(t["lost_gpu_hours"])]
        rows.append(row)
    return headers, rows


def sweep_figure(sweep: dict[str, Any]) -> Figure:
    """GPU-hours per point, stacked by phase, with the expected loss to failures hatched after them."""
    points = sweep["points"]
    names = list(dict.fromkeys(ph["name"] for p in points for ph in p["phases"]))
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(points) + 1.4), layout="constrained")
    for y, p in enumerate(points):
        x = 0.0
        for ph in p["phases"]:
            i = names.index(ph["name"])
            ax.barh(
                y,
                ph["gpu_hours"] / 1e3,
                left=x,
                color=_colour(i),
                height=0.6,
                label=figure_text(ph["name"]) if y == 0 else "",
            )
            x += ph["gpu_hours"] / 1e3
        lost = (p["total"] or {}).get("lost_gpu_hours", 0.0) / 1e3
        if lost > 0:
            ax.barh(y, lost, left=x, height=0.6, **LOST)
        ax.text(x + lost, y, f" {x:,.1f}K" if p["status"] == "ok" else f" {p['status']}", va="center", fontsize=8)
    ax.set_yticks(range(len(points)), [figure_text(f"{p['point']}: {p['label']}") for p in points], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, ax.get_xlim()[1] * 1.15)
    ax.set_xlabel("GPU-hours (thousands), by phase; hatched: expected loss to failures (apart)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def sweep_document(sweep: dict[str, Any], provenance: list[tuple[str, str]]) -> Document:
    """A run sweep's report: every point's totals and GPU-hours per phase, a chart, provenance."""
    doc = Document(f"Training run sweep: {literal(sweep['sweep'])}", subtitle=literal(sweep.get("description", "")))
    doc.heading("Summary")
    doc.paragraph(
        f"{len(sweep['points'])} run(s) of `{literal(sweep['base'])}` with "
        f"{', '.join(f'`{literal(k)}`' for k in sweep['keys'])} "
        f"set; their {sweep['steps']} distinct step(s) simulated once for all of them "
        f"({sweep['simulated']} this time, the rest kept in `steps.parquet`)."
    )
    headers, rows = sweep_rows(sweep)
    doc.heading("Points")
    doc.table(headers, rows, align="ll" + "r" * (len(headers) - 2))
    doc.figure(
        sweep_figure(sweep), "points", "GPU-hours of every point, by phase; hatched, the expected loss to failures."
    )
    doc.heading("Provenance")
    doc.table(["input", "value"], [[a, b] for a, b in provenance], align="ll")
    return doc
