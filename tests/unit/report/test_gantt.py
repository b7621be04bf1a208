"""The static Gantt chart (reports/gantt.py): boxes coloured by action kind, micro-batch numbers where
they fit, a readable legend beside the plot, rank labels, and an x axis to the step's end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from reports.gantt import KINDS, LEGEND_PT, gantt_figure, labels_drawn, plot_gantt
from sim.config import load_scenario
from sim.pipeline.execute import ScheduleRun
from sim.pipeline.ops import Op
from sim.run import simulate
from sim.step.spec import DeviceTimeline

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ScheduleRun]:
    """PP 4, 8 micro-batches, given op times, 100 MB sends on one node: every kind of action."""
    path = tmp_path_factory.mktemp("gantt") / "s.yaml"
    path.write_text(
        "name: small\n"
        "pipeline: {pp: 4, microbatches: 8, schedules: [1f1b, zb1p, dualpipe]}\n"
        "ops: {forward_ms: 1, backward_ms: 2, weight_ms: 1, overlapped_ms: 3}\n"
        f"cluster: {{topology: {REPO / 'topologies' / 'h800-node.yaml'}, device_gpus: [0, 1, 2, 3]}}\n"
        "p2p: {activation_bytes: 100000000}\n"
    )
    return {run.schedule.name: run for run in simulate(load_scenario(path)).runs}


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _boxes(fig: Figure) -> Counter[str]:
    """How many boxes of each kind the figure draws, read back from their colours."""
    (ax,) = fig.axes
    (boxes,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    by_colour = {to_rgba(colour): kind for kind, (colour, _) in KINDS.items()}
    return Counter(by_colour[tuple(float(v) for v in rgba)] for rgba in boxes.get_facecolors())


def _texts(fig: Figure) -> list[str]:
    return labels_drawn(fig.axes[0])


def test_boxes_are_coloured_by_action_kind(runs: dict[str, ScheduleRun]) -> None:
    run = runs["dualpipe"]
    ops = Counter(run.schedule.actions[s.device][s.pos].op.value for s in run.recorder.spans)
    sends = sum(t.arrival > t.start for t in run.recorder.transfers)
    assert set(ops) == {"F", "B", "I", "W", "F&B"} and sends > 0
    assert _boxes(gantt_figure(run)) == ops + Counter({"send": sends})
    assert set(_boxes(gantt_figure(runs["1f1b"]))) == {"F", "B", "send"}


def test_micro_batches_are_written_on_boxes_that_fit(runs: dict[str, ScheduleRun]) -> None:
    """Every box of a small schedule is wide enough: each action's micro-batch, both of an F&B pair."""
    run = runs["dualpipe"]
    atoms = [a.mb for s in run.recorder.spans for a in run.schedule.actions[s.device][s.pos].atoms()]
    assert sorted(_texts(gantt_figure(run))) == sorted(str(mb) for mb in atoms)
    fb = sum(run.schedule.actions[s.device][s.pos].op is Op.FB for s in run.recorder.spans)
    assert len(atoms) == len(run.recorder.spans) + fb


def test_numbers_that_do_not_fit_are_left_out(runs: dict[str, ScheduleRun]) -> None:
    """A box narrower than its number gets none: the same run in a step a thousand times longer."""
    run = runs["zb1p"]
    assert len(_texts(gantt_figure(run))) == len(run.recorder.spans)
    assert _texts(gantt_figure(run, dp=[_tail(run, after=10.0)] * 4)) == []


def test_legend_is_readable_and_beside_the_plot(runs: dict[str, ScheduleRun]) -> None:
    fig = gantt_figure(runs["dualpipe"])
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None and all(t.get_fontsize() >= 8 for t in legend.get_texts()) and LEGEND_PT >= 8
    assert [t.get_text() for t in legend.get_texts()] == [KINDS[k][1] for k in ("F", "B", "I", "W", "F&B", "send")]
    box, plot = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= plot.x1 and box.y1 <= fig.bbox.y1  # beside the plot, inside the figure
    assert box.y1 == pytest.approx(plot.y1, abs=2)  # level with its top


def test_rows_are_ranks(runs: dict[str, ScheduleRun]) -> None:
    ax = gantt_figure(runs["1f1b"]).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rank 0", "rank 1", "rank 2", "rank 3"]
    ticks = ax.get_yticks()
    assert np.all(np.diff(ticks) < 0)  # rank 0 on top


def _tail(run: ScheduleRun, after: float = 0.0) -> DeviceTimeline:
    """A data-parallel phase after the pipeline: reduce-scatter, optimizer, all-gather."""
    end = max(s.end for s in run.recorder.spans) + after
    return DeviceTimeline(end, ((end, end + 0.004),), (end + 0.005, end + 0.006), (end + 0.006, end + 0.01))


def test_the_axis_runs_to_the_step_end(runs: dict[str, ScheduleRun], tmp_path: Path) -> None:
    run = runs["1f1b"]
    pipeline_end = max(max(s.end for s in run.recorder.spans), max(t.arrival for t in run.recorder.transfers))
    assert gantt_figure(run).axes[0].get_xlim() == (0, pytest.approx(pipeline_end))
    tails = [_tail(run) for _ in range(4)]
    fig = gantt_figure(run, dp=tails)
    assert fig.axes[0].get_xlim() == (0, pytest.approx(tails[0].end))
    counts = _boxes(fig)
    assert (counts["dp"], counts["optimizer"]) == (8, 4)
    assert Counter(_texts(fig)) >= Counter({"RS": 4, "AG": 4})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[-2:] == [KINDS["dp"][1], KINDS["optimizer"][1]]
    written = plot_gantt(run, tmp_path / "g.png", dp=tails)
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
