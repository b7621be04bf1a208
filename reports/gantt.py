"""Per-device timeline in the style of the DualPipe figure of the DeepSeek-V3 report.

One row per device; a box per action, coloured by micro-batch. Ops are told apart by fill:
F solid, B hatched ``//``, I hatched ``\\\\``, W light with dots. An F&B pair is drawn as one box split
in two: the forward's micro-batch on top, the backward's below (hatched).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Action, Op

_HATCH = {Op.F: "", Op.B: "//", Op.I: "\\\\", Op.W: ".."}
_ALPHA = {Op.F: 1.0, Op.B: 0.85, Op.I: 0.85, Op.W: 0.45}


def _colour(mb: int) -> tuple[float, float, float, float]:
    cmap = matplotlib.colormaps["tab20"]
    return cmap((mb * 7) % 20 / 20 + 0.025)


def _box(ax: plt.Axes, atom: Action, x: float, y: float, w: float, h: float, label: bool) -> None:
    ax.add_patch(
        Rectangle(
            (x, y),
            w,
            h,
            facecolor=_colour(atom.mb),
            alpha=_ALPHA[atom.op],
            hatch=_HATCH[atom.op],
            edgecolor="black",
            linewidth=0.4,
        )
    )
    if label:
        ax.text(x + w / 2, y + h / 2, str(atom.mb), ha="center", va="center", fontsize=6)


def plot_gantt(run: ScheduleRun, path: str | Path, title: str | None = None, time_unit: str = "s") -> Path:
    """Draw the run's timeline to ``path`` (PNG, SVG or PDF by suffix); returns the path."""
    sched = run.schedule
    spans = run.recorder.spans
    end = max((s.end for s in spans), default=1.0) or 1.0
    rows = sched.num_devices
    fig, ax = plt.subplots(figsize=(min(24, 6 + len(spans) / max(rows, 1) / 6), 0.45 * rows + 1.6))
    min_label = end / 120
    for s in spans:
        action = sched.actions[s.device][s.pos]
        y = rows - 1 - s.device
        w = s.end - s.start
        if action.op is Op.FB:
            fwd, bwd = action.parts
            _box(ax, fwd, s.start, y + 0.4, w, 0.4, w > min_label)
            _box(ax, bwd, s.start, y, w, 0.4, w > min_label)
        else:
            _box(ax, action, s.start, y, w, 0.8, w > min_label)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.2, rows)
    ax.set_yticks([rows - 1 - d + 0.4 for d in range(rows)], [f"device {d}" for d in range(rows)])
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_title(title or f"{sched.name}  PP={sched.pp}  N={sched.num_microbatches}")
    grey = (0.7, 0.7, 0.7, 1.0)
    ax.legend(
        handles=[
            Patch(facecolor=grey, label="F forward"),
            Patch(facecolor=grey, hatch="//", label="B backward"),
            Patch(facecolor=grey, hatch="\\\\", label="I backward (inputs)"),
            Patch(facecolor=grey, hatch="..", alpha=0.45, label="W backward (weights)"),
            Patch(facecolor="white", edgecolor="black", label="F&B: F top / B bottom"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=5,
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
