"""Scatter of two figures of a sweep with its Pareto front (``twin compare``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from reports.document import figure_text
from sim.sweep.compare import Comparison
from sim.sweep.point import METRIC_BY_NAME, OK

LEGEND_WIDTH = 48  # characters per legend line


def legend_label(text: str, width: int = LEGEND_WIDTH) -> str:
    """``text`` on lines of about ``width`` characters, broken only after the ', ' between a label's
    ``key=value`` parts: never inside a value (``global_batch=30720`` is never ``3072``)."""
    lines: list[str] = []
    for part in text.split(", "):
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += f", {part}"
        elif lines:
            lines[-1] += ","
            lines.append(part)
        else:
            lines.append(part)
    return "\n".join(lines)


def pareto_figure(frame: pd.DataFrame, result: Comparison, title: str) -> Figure:
    """All ok points in grey, the front in colour and joined, the best by ``by`` marked; legend labels
    whole (:func:`legend_label`)."""
    ok = frame[frame["status"] == OK]
    bx, ay = METRIC_BY_NAME[result.by], METRIC_BY_NAME[result.against]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(ok[result.by], ok[result.against], s=12, color="0.7", label=f"{len(ok)} points")
    front = ok[ok["point"].isin(result.front_points)].sort_values(result.by)
    ax.plot(front[result.by], front[result.against], "o-", color="tab:red", ms=5, label="Pareto front")
    if result.best:
        b = result.best[0]
        ax.scatter(
            [b[result.by]],
            [ok.loc[ok["point"] == b["point"], result.against]],
            marker="*",
            s=160,
            color="tab:blue",
            zorder=5,
            label=figure_text(legend_label(f"best by {result.by}: {b['label']}")),
        )
    ax.set_xlabel(f"{bx.label} ({bx.unit})" if bx.unit else bx.label)
    ax.set_ylabel(f"{ay.label} ({ay.unit})" if ay.unit else ay.label)
    ax.set_title(figure_text(title))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pareto(frame: pd.DataFrame, result: Comparison, path: str | Path, title: str) -> Path:
    """:func:`pareto_figure` written to ``path`` (PNG, SVG or PDF by its suffix; atomically)."""
    from sim.outputs import atomic_write

    fig = pareto_figure(frame, result, title)
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".")))
    plt.close(fig)
    return path
