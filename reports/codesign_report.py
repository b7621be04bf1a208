"""The co-design report: every study of a co-design file (``scenarios/codesign.yaml``) beside its base,
with what changes and by how much (reads the study's results only; :mod:`sim.experiments.codesign` runs them)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from reports.document import Document
from sim.experiments.codesign import Codesign, Study
from sim.sweep.point import METRIC_BY_NAME, OK

_SCALE = {  # figure -> (divisor, unit shown) for tables and bullets
    "tokens_per_day": (1e9, "B tokens/day"),
    "gpu_hours_per_T": (1e3, "K GPU-h/T"),
    "cost_per_T_usd": (1e3, "K$/T"),
    "cost_per_T_base_prices_usd": (1e3, "K$/T"),
    "fabric_cost_usd": (1e6, "M$"),
    "step_time_s": (1.0, "s"),
    "memory_peak_GB": (1.0, "GB"),
    "memory_headroom_GB": (1.0, "GB"),
    "ep_comm_exposed_s": (1.0, "s"),
    "dp_comm_exposed_s": (1.0, "s"),
    "bubble_s": (1.0, "s"),
}
_PERCENT = {"bubble_ratio", "mfu_causal", "mfu_noncausal"}


def _value(metric: str, x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if metric in _PERCENT:
        return f"{x:.1%}"
    div, unit = _SCALE.get(metric, (1.0, METRIC_BY_NAME[metric].unit))
    v = x / div
    digits = 3 if abs(v) < 100 else 1
    return f"{v:,.{digits}f} {unit}".strip()


def _delta(x: float | None, base: float | None) -> str:
    if x is None or base is None or any(math.isnan(v) for v in (x, base)) or base == 0:
        return "-"
    return f"{x / base - 1:+.1%}"


def _rows(study: Study, frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    by_point = {int(r["point"]): {str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")}
    return [(v.label, by_point[v.point]) for v in study.variants]


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


def _header(metric: str) -> str:
    m = METRIC_BY_NAME[metric]
    return m.label


def study_table(study: Study, frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    shown = metrics(study, frame)
    headers = ["variant"]
    for m in shown:
        headers += [_header(m), "vs base"]
    rows = []
    base = _rows(study, frame)[0][1]
    for i, (name, r) in enumerate(_rows(study, frame)):
        if r["status"] != OK:
            rows.append([name] + ["not possible" if r["status"] == "infeasible" else "failed", ""] * len(shown))
            continue
        cells = [name]
        for m in shown:
            if m == "cost_per_T_usd" and _note(r):
                cells += ["hardware cost not modelled", ""]
                continue
            cells += [_value(m, r.get(m)), "" if i == 0 else _delta(r.get(m), base.get(m))]
        rows.append(cells)
    return headers, rows


def findings(study: Study, frame: pd.DataFrame) -> list[str]:
    """One line per variant: what changes against the base, and by how much (computed, not written)."""
    rows = _rows(study, frame)
    base = rows[0][1]
    out = []
    for name, r in rows[1:]:
        if r["status"] != OK:
            what = "not possible" if r["status"] == "infeasible" else "failed (a bug: please report it)"
            out.append(f"**{name}**: {what}: {r['error']}")
            continue
        if base["status"] != OK:
            out.append(f"**{name}**: step time {_value('step_time_s', r['step_time_s'])} (the base did not run)")
            continue
        parts = []
        for m in metrics(study, frame):
            a, b = base.get(m), r.get(m)
            if m == "cost_per_T_usd" and _note(r):
                parts.append(f"{METRIC_BY_NAME[m].label}: {_note(r)}")
                continue
            if a == b:
                parts.append(f"{METRIC_BY_NAME[m].label} unchanged ({_value(m, a)})")
            else:
                parts.append(f"{METRIC_BY_NAME[m].label} {_value(m, a)} -> {_value(m, b)} ({_delta(b, a)})")
        if not _fits(r):
            parts.append(
                f"**needs {r['memory_peak_GB']:.1f} GB per GPU, over the {r['memory_capacity_GB']:.0f} GB it has**"
            )
        out.append(f"**{name}**: " + "; ".join(parts))
    return out


def _fits(r: dict[str, Any]) -> bool:
    head = r.get("memory_headroom_GB")
    return head is None or (isinstance(head, float) and math.isnan(head)) or head >= 0


def headline(study: Study, frame: pd.DataFrame) -> tuple[str, str, str]:
    """(fastest variant that fits in GPU memory, its step-time change, the range of step-time changes)
    of a study; a faster variant over the GPU's memory is named beside it."""
    rows = [(n, r) for n, r in _rows(study, frame)[1:] if r["status"] == OK]
    first = _rows(study, frame)[0][1]
    if not rows or first["status"] != OK:
        return "-", "-", "-"
    base = first["step_time_s"]
    fitting = [nr for nr in rows if _fits(nr[1])]
    fastest = min(rows, key=lambda nr: nr[1]["step_time_s"])
    best = min(fitting, key=lambda nr: nr[1]["step_time_s"]) if fitting else None
    changes = [r["step_time_s"] / base - 1 for _, r in rows]
    impossible = sum(1 for _, r in _rows(study, frame)[1:] if r["status"] != OK)
    spread = f"{min(changes):+.1%} to {max(changes):+.1%}" if len(changes) > 1 else f"{changes[0]:+.1%}"
    if impossible:
        spread += f" ({impossible} not possible)"
    if best is None:
        return f"none fits in memory ({fastest[0]} fastest)", "-", spread
    name = best[0]
    if fastest is not best:
        over = fastest[1]
        name += (
            f" ({fastest[0]} is faster, {over['step_time_s'] / base - 1:+.1%}, but needs "
            f"{over['memory_peak_GB']:.1f} GB of {over['memory_capacity_GB']:.0f})"
        )
    return name, f"{best[1]['step_time_s'] / base - 1:+.1%}", spread


def study_figure(study: Study, frame: pd.DataFrame) -> Figure:
    """One horizontal bar panel per figure (at most three): each variant's value, the base dashed."""
    rows = _rows(study, frame)
    metrics = list(study.metrics[:3])
    height = max(2.2, 0.32 * len(rows) + 1.2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics) + 1.5, height), sharey=True, squeeze=False)
    names = [n for n, _ in rows]
    ypos = list(range(len(rows)))
    for ax, m in zip(axes[0], metrics, strict=True):
        div, unit = _SCALE.get(m, (1.0, METRIC_BY_NAME[m].unit))
        if m in _PERCENT:
            div, unit = 0.01, "%"
        values = [r[m] / div if r["status"] == OK else math.nan for _, r in rows]
        colours = ["0.55"] + ["tab:blue"] * (len(names) - 1)
        ax.barh(ypos, [0 if math.isnan(v) else v for v in values], color=colours)
        for y, v, (_, r) in zip(ypos, values, rows, strict=True):
            if math.isnan(v):
                why = " hardware cost not modelled" if r["status"] == OK and _note(r) else " not possible"
                ax.text(0, y, why, va="center", fontsize=7, color="tab:red")
        base = values[0]
        if not math.isnan(base):
            ax.axvline(base, color="0.3", ls="--", lw=0.8)
        if m == "memory_peak_GB":
            cap = rows[0][1].get("memory_capacity_GB")
            if cap is not None and not math.isnan(cap):
                ax.axvline(cap, color="tab:red", lw=1.0, label="GPU memory")
                ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(f"{METRIC_BY_NAME[m].label} ({unit})" if unit else METRIC_BY_NAME[m].label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(ypos, names)
    axes[0][0].invert_yaxis()
    fig.suptitle(study.title, fontsize=10)
    fig.tight_layout()
    return fig


def codesign_document(spec: Codesign, frame: pd.DataFrame, provenance: list[tuple[str, str]]) -> Document:
    """The report: base figures, a summary of every study, then each study's table, figure and findings."""
    base = frame[frame["point"] == 0].iloc[0].to_dict()
    doc = Document(f"Co-design what-ifs: {spec.name}", subtitle=spec.description.strip())
    doc.heading("Summary")
    if base["status"] != OK:
        doc.paragraph(f"The base scenario did not run: {base['error']}")
    else:
        doc.paragraph(
            f"Base: step {base['step_time_s']:.3f} s, {base['tokens_per_day'] / 1e9:,.1f} B tokens per day, "
            f"{base['gpu_hours_per_T'] / 1e3:,.1f} K GPU-hours and ${base['cost_per_T_usd'] / 1e3:,.0f} K per trillion "
            f"tokens, peak memory {base['memory_peak_GB']:.1f} GB per GPU ({base['gpus']} GPUs, {base['schedule']} "
            f"PP {base['pp']}, EP {base['ep']}). Every study changes only the keys it names."
        )
    rows = []
    for s in spec.studies:
        best, change, spread = headline(s, frame)
        rows.append([s.title, str(len(s.variants) - 1), best, change, spread])
    doc.table(
        ["study", "variants", "fastest variant that fits in memory", "its step time vs base", "step time changes"],
        rows,
        align="lrlrl",
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
        doc.heading(s.title)
        if s.question:
            doc.paragraph(s.question)
        headers, trows = study_table(s, frame)
        doc.table(headers, trows, align="l" + "rr" * len(s.metrics))
        doc.figure(study_figure(s, frame), f"study-{s.key}", f"{s.title}: each variant against the base (dashed).")
        doc.heading("What changes", level=3)
        doc.bullets(findings(s, frame))
    doc.heading("Provenance")
    doc.table(["input", "value"], [[a, b] for a, b in provenance], align="ll")
    return doc
