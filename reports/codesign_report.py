"""The co-design report: every study of a co-design file (``scenarios/codesign.yaml``) beside its base,
with what changes and by how much (reads the study's results only; :mod:`sim.experiments.codesign` runs them).

Changes are given in each figure's own change unit (:class:`sim.sweep.point.Metric`: a percentage of a
positive quantity, percentage points of a ratio, the unit of a signed quantity or a part of the step),
never '-0.0%'. A study's chart has a panel for every figure that moved and names those that did not;
each panel plots the change from the base, so the axis spans the changes (a 1% change is a visible bar),
on a symmetric log scale when the largest change is more than 20 times the smallest.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from reports.document import Document, figure_text, literal
from sim.experiments.codesign import Codesign, Study
from sim.sweep.point import ABSOLUTE, METRIC_BY_NAME, METRICS, OK, POINTS, RELATIVE, Metric

_SCALE = {  # figure -> (divisor, unit shown) for tables and bullets
    "tokens_per_day": (1e9, "B tokens/day"),
    "gpu_hours_per_T": (1e3, "K GPU-h/T"),
    "cost_per_T_usd": (1e3, "K$/T"),
    "cost_per_T_base_prices_usd": (1e3, "K$/T"),
    "fabric_cost_usd": (1e6, "M$"),
}
_SYMLOG_RATIO = 20.0  # changes whose sizes differ more than this go on a symmetric log axis (linear: 1/27 of it)
NOT_MODELLED = "hardware cost not modelled"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _value(metric: str, x: float | None) -> str:
    if _missing(x):
        return "-"
    assert x is not None
    if METRIC_BY_NAME[metric].change == POINTS:  # a ratio: shown as a percentage
        return f"{x:.1%}"
    div, unit = _SCALE.get(metric, (1.0, METRIC_BY_NAME[metric].unit))
    v = x / div
    digits = 3 if abs(v) < 100 else 1
    return f"{v:,.{digits}f} {unit}".strip()


def _delta(metric: str, x: float | None, base: float | None) -> str:
    return METRIC_BY_NAME[metric].change_text(base, x)


def _rows(study: Study, frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    by_point = {int(r["point"]): {str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")}
    return [(study.base_label if i == 0 else v.label, by_point[v.point]) for i, v in enumerate(study.variants)]


def _note(r: dict[str, Any]) -> str | None:
    """The row's 'hardware cost not modelled: ...' (sim.economics), or None."""
    note = r.get("cost_note")
    return note if isinstance(note, str) and note else None


def metrics(study: Study, frame: pd.DataFrame) -> list[str]:
    """The study's figures, with the cost at the base's hardware prices beside the cost with the change
    priced wherever a variant's hardware changes the price (a rate priced by the rule, or not modelled)."""
    out = list(study.metrics)
    if "cost_per_T_usd" in out and "cost_per_T_base_prices_usd" not in out:
        rows = [r for _, r in _rows(study, frame) if r["status"] == OK]
        priced = [(r.get("cost_per_T_usd"), r.get("cost_per_T_base_prices_usd")) for r in rows]
        if any(_note(r) for r in rows) or any(a != b for a, b in priced):
            out.insert(out.index("cost_per_T_usd") + 1, "cost_per_T_base_prices_usd")
    return out


def moved(study: Study, frame: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """The study's figures in three lists, each in its order: those some variant changes; those every
    variant that ran has equal to the base; and the rest, that no variant changes but some has no value
    for (hardware cost not modelled)."""
    rows = _rows(study, frame)
    base = rows[0][1]
    changed: list[str] = []
    same: list[str] = []
    unknown: list[str] = []
    for m in metrics(study, frame):
        values = [r.get(m) for _, r in rows[1:] if r["status"] == OK]
        known = [v for v in values if not _missing(v)]
        if any(v != base.get(m) for v in known):
            changed.append(m)
        elif len(known) == len(values):
            same.append(m)
        else:
            unknown.append(m)
    return changed, same, unknown


def study_table(study: Study, frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    shown = metrics(study, frame)
    headers = ["variant"]
    for m in shown:
        headers += [METRIC_BY_NAME[m].label, "vs base"]
    rows = []
    base = _rows(study, frame)[0][1]
    for i, (label, r) in enumerate(_rows(study, frame)):
        name = literal(label)
        if r["status"] != OK:
            rows.append([name] + ["not possible" if r["status"] == "infeasible" else "failed", ""] * len(shown))
            continue
        cells = [name]
        for m in shown:
            if m == "cost_per_T_usd" and _note(r):
                cells += [NOT_MODELLED, ""]
                continue
            cells += [_value(m, r.get(m)), "" if i == 0 else _delta(m, r.get(m), base.get(m))]
        rows.append(cells)
    return headers, rows


def findings(study: Study, frame: pd.DataFrame) -> list[str]:
    """One line per variant: what changes against the base, and by how much (computed, not written); document
    text, its labels and reasons literal (:func:`reports.document.literal`)."""
    rows = _rows(study, frame)
    base = rows[0][1]
    out = []
    for label, r in rows[1:]:
        name = literal(label)
        if r["status"] != OK:
            what = "not possible" if r["status"] == "infeasible" else "failed (a bug: please report it)"
            out.append(f"**{name}**: {what}: {literal(str(r['error']))}")
            continue
        if base["status"] != OK:
            out.append(f"**{name}**: step time {_value('step_time_s', r['step_time_s'])} (the base did not run)")
            continue
        parts = []
        for m in metrics(study, frame):
            a, b = base.get(m), r.get(m)
            note = _note(r)
            if m == "cost_per_T_usd" and note:
                parts.append(f"{METRIC_BY_NAME[m].label}: {literal(note)}")
                continue
            if a == b:
                parts.append(f"{METRIC_BY_NAME[m].label} unchanged ({_value(m, a)})")
            else:
                parts.append(f"{METRIC_BY_NAME[m].label} {_value(m, a)} -> {_value(m, b)} ({_delta(m, b, a)})")
        if not _fits(r):
            parts.append(
                f"**needs {r['memory_peak_GiB']:.1f} GiB per GPU, over the {r['memory_capacity_GiB']:.0f} GiB it has**"
            )
        out.append(f"**{name}**: " + "; ".join(parts))
    return out


def _fits(r: dict[str, Any]) -> bool:
    head = r.get("memory_headroom_GiB")
    return head is None or (isinstance(head, float) and math.isnan(head)) or head >= 0


def headline(study: Study, frame: pd.DataFrame) -> tuple[str, str, str]:
    """(the variant that fits in GPU memory with the shortest step, if it beats the base; else 'none
    beats the base' and the closest; its step-time change; the range of step-time changes) of a study.
    A faster variant over the GPU's memory is named beside it. Document text: its labels literal."""
    step = METRIC_BY_NAME["step_time_s"]
    all_rows = _rows(study, frame)
    rows = [(n, r) for n, r in all_rows[1:] if r["status"] == OK]
    first = all_rows[0][1]
    if not rows or first["status"] != OK:
        return "-", "-", "-"
    base = first["step_time_s"]
    fitting = [nr for nr in rows if _fits(nr[1])]
    fastest = min(rows, key=lambda nr: nr[1]["step_time_s"])
    best = min(fitting, key=lambda nr: nr[1]["step_time_s"]) if fitting else None
    changes = sorted(r["step_time_s"] for _, r in rows)
    impossible = sum(1 for _, r in all_rows[1:] if r["status"] != OK)
    low, high = step.change_text(base, changes[0]), step.change_text(base, changes[-1])
    spread = low if low == high else f"{low} to {high}"
    if impossible:
        spread += f" ({impossible} not possible)"
    if best is None:
        return f"none fits in memory ({literal(fastest[0])} fastest)", "-", spread
    change = step.change_text(base, best[1]["step_time_s"])
    if best[1]["step_time_s"] < base:
        name = literal(best[0])
    elif best[1]["step_time_s"] == base:
        name = f"none beats the base (best: {literal(best[0])}, the same step)"
    else:
        name = f"none beats the base (closest: {literal(best[0])})"
    if fastest is not best and fastest[1]["step_time_s"] < best[1]["step_time_s"]:
        over = fastest[1]
        name += (
            f" ({literal(fastest[0])} is faster, {step.change_text(base, over['step_time_s'])}, but needs "
            f"{over['memory_peak_GiB']:.1f} GiB of {over['memory_capacity_GiB']:.0f})"
        )
    return name, change, spread


def _change_axis(ax: Any, changes: list[float]) -> None:
    """Linear around the changes (and zero), or a symmetric log axis when the largest is more than 20 times
    the smallest, so the smallest change is a visible bar beside the largest."""
    finite = [c for c in changes if not math.isnan(c)]
    sizes = sorted(abs(c) for c in finite if c != 0)
    if sizes and sizes[-1] / sizes[0] > _SYMLOG_RATIO:
        ax.set_xscale("symlog", linthresh=10 ** math.floor(math.log10(sizes[0])), linscale=1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))  # 100, not 10^2
        ax.margins(x=0.3)
        return
    low, high = min([0.0, *finite]), max([0.0, *finite])
    span = high - low or 1.0
    ax.set_xlim(low - (0.35 if low < 0 else 0.05) * span, high + (0.35 if high > 0 else 0.05) * span)


def study_figure(study: Study, frame: pd.DataFrame) -> Figure | None:
    """One panel per figure that moved (None when none did): each variant's change from the base in the
    figure's change unit, from zero (the base), labelled with its value; rows without one say why."""
    changed = moved(study, frame)[0]
    if not changed:
        return None
    rows = _rows(study, frame)[1:]
    base = _rows(study, frame)[0][1]
    ncols = min(3, len(changed))
    nrows = math.ceil(len(changed) / ncols)
    height = max(2.0, 0.3 * len(rows) + 1.3)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 1.8, height * nrows), sharey=True, squeeze=False)
    names = [n for n, _ in rows]
    ypos = list(range(len(rows)))
    for k, m in enumerate(changed):
        ax = axes[k // ncols][k % ncols]
        metric = METRIC_BY_NAME[m]
        values = [
            metric.delta(base[m], r[m]) if r["status"] == OK and not _missing(r.get(m)) else math.nan for _, r in rows
        ]
        colours = ["tab:green" if _better(metric, v) else "tab:red" for v in values]
        ax.barh(ypos, [0.0 if math.isnan(v) else v for v in values], color=colours, height=0.6)
        ax.axvline(0.0, color="0.3", lw=0.8)
        _change_axis(ax, values)
        for y, v, (_, r) in zip(ypos, values, rows, strict=True):
            if math.isnan(v):
                why = NOT_MODELLED if r["status"] == OK and _note(r) else "not possible"
                ax.text(0.0, y, f" {why}", va="center", fontsize=7, color="0.35")
            else:
                text = f" {metric.change_text(base[m], r[m])} "
                ax.text(v, y, text, va="center", fontsize=7, ha="left" if v >= 0 else "right")
        _limit_line(ax, m, base)
        unit = metric.change_unit
        ax.set_xlabel(f"{metric.label}: change vs base ({unit})", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    for k in range(len(changed), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for row in axes:
        row[0].set_yticks(ypos, [figure_text(n) for n in names])
    axes[0][0].invert_yaxis()
    fig.suptitle(figure_text(study.title), fontsize=10)
    fig.tight_layout()
    return fig


def _better(metric: Metric, change: float) -> bool:
    return not math.isnan(change) and (change < 0) == (metric.better == "min")


def _limit_line(ax: Any, m: str, base: dict[str, Any]) -> None:
    """Where a memory figure reaches the GPU's memory, as a change from the base: the capacity."""
    cap = base.get("memory_capacity_GiB")
    if cap is None or math.isnan(cap) or m not in ("memory_peak_GiB", "memory_headroom_GiB"):
        return
    at = METRIC_BY_NAME[m].delta(base[m], float(cap) if m == "memory_peak_GiB" else 0.0)
    ax.axvline(at, color="tab:red", lw=1.0, ls="--", label="GPU memory full")
    ax.legend(fontsize=7, loc="lower right")


def _labels(names: list[str]) -> str:
    return "; ".join(METRIC_BY_NAME[m].label for m in names)


def figure_caption(study: Study, frame: pd.DataFrame) -> str:
    """What the chart shows, and which of the study's figures it leaves out and why."""
    changed, same, unknown = moved(study, frame)
    units = {METRIC_BY_NAME[m].change for m in changed}
    how = {RELATIVE: "% of the base", POINTS: "percentage points", ABSOLUTE: "the figure's unit"}
    base = f" ({literal(study.base_keys)})" if study.base_keys else ""
    text = (
        f"{literal(study.title)}: each variant's change from the base{base}, in "
        + ", ".join(how[u] for u in (RELATIVE, POINTS, ABSOLUTE) if u in units)
        + "; green is better."
    )
    if same:
        text += f" Unchanged in every variant: {_labels(same)}."
    if unknown:
        text += f" Not charted, {NOT_MODELLED} for some variant: {_labels(unknown)}."
    return text


def _no_chart(study: Study, frame: pd.DataFrame) -> str:
    _, same, unknown = moved(study, frame)
    text = "No figure moved (no chart)."
    if same:
        text += f" Every variant equals the base in: {_labels(same)}."
    if unknown:
        text += f" {NOT_MODELLED[0].upper() + NOT_MODELLED[1:]} for some variant: {_labels(unknown)}."
    return text


def overflows_refused(spec: Codesign, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every ok row whose figures leave floating point or pass :data:`sim.run.EDGE` (a step
    of 1e153 s, from a NIC of 1e-150 Gb/s: an overflow in all but name) made a row that was not possible,
    with the reason a figure that reached inf gets (naming the figure and the inputs at the edge that the
    point's variants set), so that no such figure is printed, charted or compared."""
    from sim.run import EDGE
    from sim.sweep.point import INFEASIBLE

    overrides: dict[int, dict[str, Any]] = {}
    for study in spec.studies:
        for v in study.variants:
            overrides.setdefault(v.point, {}).update(v.overrides)
    columns = [m.name for m in METRICS if m.name in frame.columns]
    frame = frame.copy()
    for i, row in frame.iterrows():
        if row["status"] != OK:
            continue
        bad = next(
            ((c, float(row[c])) for c in columns if not _missing(row[c]) and not abs(float(row[c])) <= EDGE), None
        )
        if bad is None:
            continue
        edge = [
            f"{k} = {v:g}"
            for k, v in overrides.get(int(row["point"]), {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and (abs(v) > EDGE or 0 < abs(v) < 1 / EDGE)
        ]
        cause = f"from {', '.join(edge)}" if edge else "from the scenario's magnitudes"
        frame.loc[i, "status"] = INFEASIBLE
        frame.loc[i, "error"] = f"the results overflow: {bad[0]} is {bad[1]:g}, {cause}; use values nearer to real ones"
    return frame


def codesign_document(spec: Codesign, frame: pd.DataFrame, provenance: list[tuple[str, str]]) -> Document:
    """The report: base figures, a summary of every study, then each study's table, figure and findings."""
    frame = overflows_refused(spec, frame)
    base = frame[frame["point"] == 0].iloc[0].to_dict()
    doc = Document(f"Co-design what-ifs: {literal(spec.name)}", subtitle=literal(spec.description.strip()))
    doc.heading("Summary")
    if base["status"] != OK:
        doc.paragraph(f"The base scenario did not run: {literal(str(base['error']))}")
    else:
        cost = base.get("cost_per_T_usd")
        cost_text = "an unmodelled cost" if cost is None or math.isnan(cost) else f"${cost / 1e3:,.0f} K"
        doc.paragraph(
            f"Base: {literal(spec.sweep.base_path.name)}, step {base['step_time_s']:.3f} s, "
            f"{base['tokens_per_day'] / 1e9:,.1f} B tokens per day, {base['gpu_hours_per_T'] / 1e3:,.1f} K "
            f"GPU-hours and {cost_text} per trillion tokens, peak memory {base['memory_peak_GiB']:.1f} GiB per GPU "
            f"({base['gpus']} GPUs, {base['schedule']} PP {base['pp']}, EP {base['ep']}). Every study changes only "
            "the keys it names, and each is compared with this base: a study that finds nothing faster says so."
        )
    rows = []
    for s in spec.studies:
        best, change, spread = headline(s, frame)
        rows.append([literal(s.title), literal(s.base_keys or "-"), str(len(s.variants) - 1), best, change, spread])
    doc.table(
        [
            "study",
            "base",
            "variants",
            "fastest variant that fits in memory",
            "its step time vs base",
            "step time changes",
        ],
        rows,
        align="llrlrl",
    )
    doc.paragraph(
        "Changes are a percentage of the base for times, rates, costs and memory sizes, percentage points for "
        "ratios (MFU, the bubble's share), and the figure's own unit for what is signed or can be zero (memory "
        "headroom; the bubble and exposed communication, parts of the step whose change in seconds adds to it)."
    )
    doc.paragraph(
        "Cost per trillion tokens = GPU-hours x ($2 per GPU-hour, DeepSeek's H800 rental price, + the fabric's "
        "capital cost spread over 4 years). The fabric (switches, cables) is priced at ISCA'25 Table 3's 400 Gb/s, "
        "64-port prices; another rate or radix by an assumed rule, a constant price per Gb/s of port capacity, "
        "and a NIC at another rate by the same rule. 'Hardware changes priced' pays for what a variant changes; "
        "'at the base's hardware prices' is the step-time change alone. An NVLink generation or a co-processor "
        "has no price: its row says 'hardware cost not modelled' and why. sim/economics.py gives every price, "
        "its source and the rule. 'not possible' rows give the twin's one-line reason."
    )
    for s in spec.studies:
        doc.heading(literal(s.title))
        if s.question:
            doc.paragraph(literal(s.question))
        headers, trows = study_table(s, frame)
        doc.table(headers, trows, align="l" + "r" * (len(headers) - 1))
        fig = study_figure(s, frame)
        if fig is None:
            doc.paragraph(_no_chart(s, frame))
        else:
            doc.figure(fig, f"study-{s.key}", figure_caption(s, frame))
        doc.heading("What changes", level=3)
        doc.bullets(findings(s, frame))
    doc.heading("Provenance")
    doc.table(["input", "value"], [[a, b] for a, b in provenance], align="ll")
    return doc
