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
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Action, Op

_HATCH = {Op.F: "", Op.B: "//", Op.I: "\\\\", Op.W: ".."}
_ALPHA = {Op.F: 1.0, Op.B: 0.85, Op.I: 0.85, Op.W: 0.45}


def _colour(mb: int) -> tuple[float, float, float, float]:
    cmap = matplotlib.colormaps["tab20"]
    return cmap((mb * 7) % 20 / 20 + 0.025)


class _Boxes:
    """Rectangles grouped by op so each group is drawn as one collection (fast)."""

    def __init__(self) -> None:
        self.rects: dict[Op, list[Rectangle]] = {op: [] for op in _HATCH}
        self.colours: dict[Op, list[tuple[float, float, float, float]]] = {op: [] for op in _HATCH}
        self.labels: list[tuple[float, float, str]] = []

    def add(self, atom: Action, x: float, y: float, w: float, h: float, label: bool) -> None:
        self.rects[atom.op].append(Rectangle((x, y), w, h))
        self.colours[atom.op].append(_colour(atom.mb))
        if label:
            self.labels.append((x + w / 2, y + h / 2, str(atom.mb)))

    def draw(self, ax: plt.Axes) -> None:
        for op, rects in self.rects.items():
            if rects:
                ax.add_collection(
                    PatchCollection(
                        rects,
                        facecolors=self.colours[op],
                        edgecolors="black",
                        linewidths=0.4,
                        hatch=_HATCH[op] or None,
                        alpha=_ALPHA[op],
                        match_original=False,
                    )
                )
        for x, y, text in self.labels:
            ax.text(x, y, text, ha="center", va="center", fontsize=6)


def plot_gantt(run: ScheduleRun, path: str | Path, title: str | None = None, time_unit: str = "s") -> Path:
    """Draw the run's timeline to ``path`` (PNG, SVG or PDF by suffix); returns the path."""
    fig = gantt_figure(run, title, time_unit)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def gantt_figure(run: ScheduleRun, title: str | None = None, time_unit: str = "s") -> Figure:
    """The run's timeline as a matplotlib figure (the caller saves and closes it)."""
    sched = run.schedule
    spans = run.recorder.spans
    end = max((s.end for s in spans), default=1.0) or 1.0
    rows = sched.num_devices
    fig, ax = plt.subplots(figsize=(min(24, 6 + len(spans) / max(rows, 1) / 6), 0.45 * rows + 1.6))
    min_label = end / 120
    boxes = _Boxes()
    for s in spans:
        action = sched.actions[s.device][s.pos]
        y = rows - 1 - s.device
        w = s.end - s.start
        if action.op is Op.FB:
            fwd, bwd = action.parts
            boxes.add(fwd, s.start, y + 0.4, w, 0.4, w > min_label)
            boxes.add(bwd, s.start, y, w, 0.4, w > min_label)
        else:
            boxes.add(action, s.start, y, w, 0.8, w > min_label)
    boxes.draw(ax)
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
    return fig
