"""Per-rank timeline of a step in the style of the DualPipe figure of the DeepSeek-V3 report.

One row per pipeline rank, a box per action **coloured by what it is**: the kinds of the spans frame
(``sim.step.timeline``: F, B, I, W, F&B, ``dp``, ``optimizer``) plus the pipeline's sends. Colour
says what a rank is doing; the micro-batch is written on a box where the number fits (a step has
120 micro-batches: colours cycled over them said nothing, a number does). An F&B pair is one box
split in two: the forward's micro-batch above, the backward's below. Pipeline sends are thin bars
under the sending rank's row (they run beside compute); a step's data-parallel phase (ZeRO-1
reduce-scatter, optimizer, all-gather) follows each rank's pipeline, so the x axis ends where the
step ends, not where the pipeline does. The legend sits beside the plot and lists only the kinds
drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Bbox

from reports.document import figure_text
from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Op
from sim.step.spec import DeviceTimeline

MAX_HEIGHT_IN = 30.0  # a figure taller than this is compressed (thousands of ranks)
GANTT_PNG_DPI = 130  # a Gantt chart's PNG resolution (plot_gantt, and the figures of twin run's reports)
MAX_TICKS = 64  # rank labels shown at most (every k-th rank beyond)
MAX_DETAILED_BOXES = 20_000  # beyond this many boxes: no micro-batch numbers, no box edges
LEGEND_PT = 9.0  # the legend's font size
LABEL_PTS = (7.0, 6.5, 6.0, 5.5, 5.0)  # micro-batch numbers: the largest size at which most fit their boxes
LABEL_SHARE = 0.75  # "most"
LABEL_GAP_PT = 2.0  # room kept between a label and its box's ends (neighbours' numbers stay apart)
BOX_H = 0.8  # an action's box, in rows; the gap below it holds the sends
SEND_H = 0.12

STEP_CAPTION = (
    "One row per pipeline rank, to the end of the step: boxes coloured by action kind (legend), each with its "
    "micro-batch where the number fits (an F&B pair: the forward's above, the backward's below); pipeline sends "
    "as thin bars under the sending rank; then each rank's ZeRO-1 reduce-scatter (RS), optimizer and all-gather (AG)."
)

# kind -> (colour, legend entry); the kinds of sim.step.timeline's spans frame, and the sends
KINDS: dict[str, tuple[str, str]] = {
    "F": ("#8db8e3", "F forward"),
    "B": ("#f0a35e", "B backward"),
    "I": ("#e67c73", "I backward, inputs"),
    "W": ("#93c47d", "W backward, weights"),
    "F&B": ("#b4a0d9", "F&B overlapped pair"),
    "send": ("#4d4d4d", "pipeline send"),
    "dp": ("#45b0ab", "DP reduce-scatter / all-gather"),
    "optimizer": ("#f1c232", "optimizer"),
}


@dataclass
class _Boxes:
    """Boxes as arrays, drawn as one collection (a schedule of 160k actions is drawn in seconds)."""

    rects: list[tuple[float, float, float, float]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    labels: list[tuple[float, float, float, float, str]] = field(default_factory=list)  # x, y, w, h, text
    splits: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, w: an F&B pair's divide

    def add(self, kind: str, x: float, y: float, w: float, h: float, label: str = "") -> None:
        self.rects.append((x, y, w, h))
        self.kinds.append(kind)
        if label:
            self.labels.append((x, y, w, h, label))

    def draw(self, ax: Axes, edges: bool) -> None:
        if not self.rects:
            return
        arr = np.asarray(self.rects, dtype=float)
        x, y, w, h = arr.T
        verts = np.stack([np.c_[x, y], np.c_[x + w, y], np.c_[x + w, y + h], np.c_[x, y + h]], axis=1)
        colours = [KINDS[k][0] for k in self.kinds]
        polys = PolyCollection(
            cast(Any, verts),
            facecolors=colours,
            edgecolors="white" if edges else "none",  # white edges part neighbouring boxes of a kind
            linewidths=0.5 if edges else 0.0,
        )
        # Boxes lie inside the axes, so the layout engine need not measure them (it would walk every
        # box's path each time it runs: a third of a step chart's drawing time). Same for the lines below
        # and the labels (_draw_texts).
        polys.set_in_layout(False)
        ax.add_collection(polys)
        if edges and self.splits:
            segments = [((x0, y0), (x0 + w0, y0)) for x0, y0, w0 in self.splits]
            lines = LineCollection(segments, colors="white", linewidths=0.5)
            lines.set_in_layout(False)
            ax.add_collection(lines)

    def write_labels(self, ax: Axes, end: float, rows: int) -> float:
        """Write the labels that fit their boxes, at the largest of :data:`LABEL_PTS` at which most do
        (a step's 120 micro-batches need a smaller size than a comparison's 8); returns the size."""
        if not self.labels:
            return 0.0
        fig = ax.get_figure()
        assert fig is not None
        bbox = ax.get_window_extent()
        pt_x = bbox.width * 72 / fig.dpi / end  # points per time unit
        pt_y = bbox.height * 72 / fig.dpi / (rows + 0.2)  # points per row
        texts = [label[4] for label in self.labels]
        glyphs = _glyphs(set(texts))
        need = np.array([glyphs[t][1].width / GLYPH_PT for t in texts])  # width at 1 pt
        room_x = np.array([label[2] for label in self.labels]) * pt_x - LABEL_GAP_PT
        room_y = np.array([label[3] for label in self.labels]) * pt_y
        for size in LABEL_PTS:
            fits = (need * size <= room_x) & (1.1 * size <= room_y)
            if fits.mean() >= LABEL_SHARE or size == LABEL_PTS[-1]:
                break
        shown = [
            (x + w / 2, y + h / 2, text)
            for (x, y, w, h, text), ok in zip(self.labels, fits.tolist(), strict=True)
            if ok
        ]
        _draw_texts(ax, shown, size, glyphs)
        return size


def _draw_texts(
    ax: Axes, texts: list[tuple[float, float, str]], size: float, glyphs: dict[str, tuple[MplPath, Bbox]]
) -> None:
    """Each text centred on its (x, y) in data units, ``size`` points high, black: one collection of
    glyph outlines (one path per distinct text, placed by offsets) instead of one Text artist each,
    which at a step's thousands of boxes made the chart take seconds to render. ``glyphs``: each
    text's outline at :data:`GLYPH_PT` and its extents (:func:`_glyphs`), scaled to ``size``."""
    if not texts:
        return
    from matplotlib.collections import PathCollection
    from matplotlib.transforms import Affine2D

    fig = ax.get_figure()
    assert fig is not None
    paths: dict[str, MplPath] = {}
    index: list[int] = []
    order: dict[str, int] = {}
    for _, _, t in texts:
        if t not in order:
            outline, box = glyphs[t]
            centre = Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2)
            order[t] = len(paths)
            paths[t] = centre.scale(size / GLYPH_PT).transform_path(outline)
        index.append(order[t])
    distinct = list(paths.values())
    offsets = np.array([(x, y) for x, y, _ in texts], dtype=float)
    for k, path in enumerate(distinct):  # one collection per distinct text: its copies share the path
        mine = offsets[np.asarray(index) == k]
        coll = PathCollection(
            [path], offsets=mine, offset_transform=ax.transData, facecolors="black", edgecolors="none"
        )
        coll.set_transform(Affine2D().scale(fig.dpi / 72.0))  # the path is in points
        coll.set_gid(LABEL_GID + list(paths)[k])  # which text it draws (read back by labels_drawn)
        coll.set_in_layout(False)  # inside its box, inside the axes
        ax.add_collection(coll, autolim=False)  # the limits are set: no walk of the glyphs' curves


LABEL_GID = "gantt-label:"


def labels_drawn(ax: Axes) -> list[str]:
    """Every text on the boxes of a Gantt chart's axes, once per box it is written on."""
    out = [t.get_text() for t in ax.texts]
    for coll in ax.collections:
        gid = coll.get_gid() or ""
        if gid.startswith(LABEL_GID):
            out += [gid[len(LABEL_GID) :]] * len(np.asarray(coll.get_offsets()))
    return out


GLYPH_PT = 10  # the size texts are outlined at; outlines and extents scale linearly with size


def _glyphs(texts: set[str]) -> dict[str, tuple[MplPath, Bbox]]:
    """Each text's outline at :data:`GLYPH_PT` and its extents (matplotlib's own font metrics), once
    per text: sizing the labels and drawing them both read them (the extents walk every curve)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    font = FontProperties(size=GLYPH_PT)
    out: dict[str, tuple[MplPath, Bbox]] = {}
    for t in texts:
        outline = TextPath((0, 0), t, prop=font)
        out[t] = (outline, outline.get_extents())
    return out


def plot_gantt(
    run: ScheduleRun,
    path: str | Path,
    title: str | None = None,
    time_unit: str = "s",
    dp: Sequence[DeviceTimeline] = (),
) -> Path:
    """Draw the run's timeline to ``path`` (PNG, SVG or PDF by suffix); returns the path."""
    fig = gantt_figure(run, title, time_unit, dp)
    path = Path(path)
    fig.savefig(path, dpi=GANTT_PNG_DPI)
    plt.close(fig)
    return path


def _collect(run: ScheduleRun, dp: Sequence[DeviceTimeline]) -> tuple[_Boxes, float]:
    """Every box of the figure (top row: rank 0) and the time the last one ends."""
    sched = run.schedule
    rows = sched.num_devices
    boxes = _Boxes()
    end = 0.0
    for s in run.recorder.spans:
        action = sched.actions[s.device][s.pos]
        y, w = rows - 1 - s.device, s.end - s.start
        end = max(end, s.end)
        if action.op is Op.FB:
            fwd, bwd = action.parts
            boxes.add("F&B", s.start, y, w, BOX_H)
            half = BOX_H / 2
            boxes.labels += [(s.start, y + half, w, half, str(fwd.mb)), (s.start, y, w, half, str(bwd.mb))]
            boxes.splits.append((s.start, y + half, w))
        else:
            boxes.add(action.op.value, s.start, y, w, BOX_H, str(action.mb))
    for t in run.recorder.transfers:
        if t.arrival > t.start:
            boxes.add("send", t.start, rows - 1 - t.src - 0.03 - SEND_H, t.arrival - t.start, SEND_H)
            end = max(end, t.arrival)
    for d, tl in enumerate(dp[:rows]):
        phases = [("dp", iv, "RS") for iv in tl.reduce_scatter]
        phases += [("dp", tl.embedding_sync, "emb")] if tl.embedding_sync else []
        phases += [("optimizer", tl.optimizer, "opt"), ("dp", tl.all_gather, "AG")]
        for kind, (start, stop), label in phases:
            if stop > start:
                boxes.add(kind, start, rows - 1 - d, stop - start, BOX_H, label)
                end = max(end, stop)
    return boxes, end or 1.0


def gantt_figure(
    run: ScheduleRun, title: str | None = None, time_unit: str = "s", dp: Sequence[DeviceTimeline] = ()
) -> Figure:
    """The run's timeline as a matplotlib figure (the caller saves and closes it). ``dp``: a training
    step's per-rank timelines (``StepRun.timelines``), whose data-parallel phase ends the step."""
    sched = run.schedule
    rows = sched.num_devices
    boxes, end = _collect(run, dp)
    busy = len(boxes.rects) > MAX_DETAILED_BOXES  # a big schedule is drawn compressed: no labels, no edges
    per_row = len(run.recorder.spans) / max(rows, 1)
    fig, ax = plt.subplots(
        figsize=(min(24, 8 + per_row / 6), min(0.45 * rows + 1.6, MAX_HEIGHT_IN)), layout="constrained"
    )
    boxes.draw(ax, edges=not busy)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.2, rows)
    step = max(1, -(-rows // MAX_TICKS))
    shown = range(0, rows, step)
    ax.set_yticks([rows - 1 - d + BOX_H / 2 for d in shown], [f"rank {d}" for d in shown])
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_title(figure_text(title or f"{sched.name}  PP={sched.pp}  N={sched.num_microbatches}"))  # (never mathtext)
    present = [k for k in KINDS if k in set(boxes.kinds)]
    ax.legend(
        handles=[Patch(facecolor=KINDS[k][0], label=KINDS[k][1]) for k in present],
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        borderaxespad=0.0,
        fontsize=LEGEND_PT,
        frameon=False,
    )
    if not busy:
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.execute(fig)  # the axes' final size, so that a label is written only where it fits
        boxes.write_labels(ax, end, rows)
    return fig
