"""Scatter of two figures of a sweep with its Pareto front (``twin compare``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from sim.sweep.compare import Comparison
from sim.sweep.point import METRIC_BY_NAME, OK


def plot_pareto(frame: pd.DataFrame, result: Comparison, path: str | Path, title: str) -> Path:
    """All ok points in grey, the front in colour and joined, the best by ``by`` marked."""
    from sim.outputs import atomic_write

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
            label=f"best by {result.by}: {b['label']}"[:70],
        )
    ax.set_xlabel(f"{bx.label} ({bx.unit})" if bx.unit else bx.label)
    ax.set_ylabel(f"{ay.label} ({ay.unit})" if ay.unit else ay.label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".")))
    plt.close(fig)
    return path
