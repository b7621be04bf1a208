"""Per-device timeline in the style of the DualPipe figure of the DeepSeek-V3 report.

One row per device; a box per action, coloured by micro-batch. Ops are told apart by fill:
F solid, B hatched ``//``, I hatched ``\\\\``, W light with dots. An F&B pair is drawn as one box split
in two: the forward's micro-batch on top, the backward's below (hatched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Action, Op

MAX_HEIGHT_IN = 30.0  # a figure taller than this is compressed (thousands of devices)
GANTT_PNG_DPI = 130  # a Gantt chart's PNG resolution (plot_gantt, and the figures of twin run's reports)
MAX_TICKS = 64  # device labels shown at most (every k-th device beyond)
MAX_DETAILED_BOXES = 20_000  # beyond this many spans: no micro-batch labels, no box edges
_HATCH = {Op.F: "", Op.B: "//", Op.I: "\\\\", Op.W: ".."}
_ALPHA = {Op.F: 1.0, Op.B: 0.85, Op.I: 0.85, Op.W: 0.45}


_CMAP = matplotlib.colormaps["tab20"]
_COLOURS = np.array([_CMAP(k / 20 + 0.025) for k in range(20)])  # micro-batch m gets (7 m) mod 20


def _colour(mb: int) -> tuple[float, float, float, float]:
    r, g, b, a = (float(v) for v in _COLOURS[(mb * 7) % 20])
    return r, g, b, a


class _Boxes:
    """Boxes grouped by op so each group is drawn as one collection built from arrays (fast: a
    schedule of 160k actions is drawn in seconds)."""

    def __init__(self) -> None:
        self.boxes: dict[Op, list[tuple[float, float, float, float, int]]] = {op: [] for op in _HATCH}
        self.labels: list[tuple[float, float, str]] = []

    def add(self, atom: Action, x: float, y: float, w: float, h: float, label: bool) -> None:
        self.boxes[atom.op].append((x, y, w, h, atom.mb))
        if label:
            self.labels.append((x + w / 2, y + h / 2, str(atom.mb)))

    def draw(self, ax: plt.Axes, edges: bool = True) -> None:
        for op, boxes in self.boxes.items():
            if not boxes:
                continue
            arr = np.asarray(boxes, dtype=float)
            x, y, w, h = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
            verts = np.stack([np.c_[x, y], np.c_[x + w, y], np.c_[x + w, y + h], np.c_[x, y + h]], axis=1)
            colours = _COLOURS[(arr[:, 4].astype(np.int64) * 7) % 20]
            ax.add_collection(
                PolyCollection(
                    cast(Any, verts),
                    facecolors=colours,
                    edgecolors="black" if edges else "none",
                    linewidths=0.4 if edges else 0.0,
                    hatch=(_HATCH[op] or None) if edges else None,  # hatching 100k boxes takes long
                    alpha=_ALPHA[op],
                )
            )
        for x0, y0, text in self.labels:
            ax.text(x0, y0, text, ha="center", va="center", fontsize=6)


def plot_gantt(run: ScheduleRun, path: str | Path, title: str | None = None, time_unit: str = "s") -> Path:
    """Draw the run's timeline to ``path`` (PNG, SVG or PDF by suffix); returns the path."""
    fig = gantt_figure(run, title, time_unit)
    path = Path(path)
    fig.savefig(path, dpi=GANTT_PNG_DPI)
    plt.close(fig)
    return path


def gantt_figure(run: ScheduleRun, title: str | None = None, time_unit: str = "s") -> Figure:
    """The run's timeline as a matplotlib figure (the caller saves and closes it)."""
    sched = run.schedule
    spans = run.recorder.spans
    end = max((s.end for s in spans), default=1.0) or 1.0
    rows = sched.num_devices
    busy = len(spans) > MAX_DETAILED_BOXES  # a big schedule is drawn compressed: no labels, no edges
    height = min(0.45 * rows + 1.6, MAX_HEIGHT_IN)
    fig, ax = plt.subplots(figsize=(min(24, 6 + len(spans) / max(rows, 1) / 6), height))
    min_label = end / 120 if not busy else float("inf")
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
    boxes.draw(ax, edges=not busy)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.2, rows)
    step = max(1, -(-rows // MAX_TICKS))
    shown = range(0, rows, step)
    ax.set_yticks([rows - 1 - d + 0.4 for d in shown], [f"device {d}" for d in shown])
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
