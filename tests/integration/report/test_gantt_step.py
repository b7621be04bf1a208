"""A training step's Gantt chart runs to the step's end: the pipeline, then each rank's ZeRO-1 phase."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from reports.gantt import KINDS, gantt_figure, labels_drawn
from sim.config import load_scenario
from sim.run import simulate_training
from tests.conftest import SMALL_STEP


def test_step_gantt_ends_with_the_step() -> None:
    step = simulate_training(load_scenario(SMALL_STEP)).step
    run = step.reported_pipeline().run
    fig = gantt_figure(run, dp=step.timelines)
    ax = fig.axes[0]
    pipeline_end = max(s.end for s in run.recorder.spans)
    assert ax.get_xlim() == (0, pytest.approx(step.step_time)) and step.step_time > pipeline_end
    (boxes,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    colours = [tuple(rgba) for rgba in boxes.get_facecolors()]
    dp, optimizer = (to_rgba(KINDS[k][0]) for k in ("dp", "optimizer"))
    ranks = run.schedule.num_devices
    assert colours.count(optimizer) == ranks and colours.count(dp) >= 2 * ranks
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [KINDS[k][1] for k in ("F", "B", "I", "W", "F&B", "send", "dp", "optimizer")]
    numbers = [t for t in labels_drawn(ax) if t.isdigit()]
    assert len(numbers) > len(run.recorder.spans) / 2  # most micro-batches written on their boxes
    plt.close(fig)
