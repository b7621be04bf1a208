"""A user's string drawn in a figure (a Gantt chart's title, a run's name and its phases, a GPU's name,
a plot's title) is drawn as typed: its ``$`` never starts matplotlib's mathtext (``$x^2$`` was typeset
as x squared, ``a$\\q$b`` raised when the figure was drawn) (:func:`reports.document.figure_text`)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text

from reports.gantt import gantt_figure, plot_gantt
from reports.sm_sweep import plot_sm_sweep
from reports.training_run_report import sweep_figure, timeline_figure
from sim.config import load_scenario
from sim.run import simulate

REPO = Path(__file__).resolve().parents[3]
MATH = ["$x^2$", r"a$\q$b", "cost in $ and $$", "$"]  # typeset, unparsable, lone and paired dollars


def _shown(text: Text) -> str:
    """What matplotlib draws for ``text``: refused if it would read it as mathtext."""
    drawn, math = getattr(text, "_preprocess_math")(text.get_text())  # noqa: B009 - matplotlib's own reading of it
    assert not math, f"{text.get_text()!r} is read as mathtext"
    return str(drawn)


def _draw(fig: Any) -> None:
    fig.savefig(io.BytesIO(), format="png")  # mathtext is parsed (and fails) here
    plt.close(fig)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("gantt") / "s.yaml"
    path.write_text(
        "name: small\npipeline: {pp: 2, microbatches: 4, schedules: [1f1b]}\nops: {forward_ms: 1, backward_ms: 2}\n"
    )
    return simulate(load_scenario(path)).runs[0]


@pytest.mark.parametrize("title", MATH)
def test_a_gantt_charts_title_is_drawn_as_typed(run: Any, title: str, tmp_path: Path) -> None:
    fig = gantt_figure(run, title=title)
    assert _shown(fig.axes[0].title) == title
    _draw(fig)
    assert plot_gantt(run, tmp_path / "g.svg", title=title).stat().st_size > 0


@pytest.mark.parametrize("name", MATH)
def test_a_runs_name_and_its_phases_are_drawn_as_typed(name: str) -> None:
    phase = {"name": name, "days": 1.0, "slices": [{"days": 1.0, "global_batch": 64}], "batches": [64]}
    fig = timeline_figure({"run": name, "total": {"days": 1.0}, "phases": [phase]})
    ax = fig.axes[0]
    assert _shown(ax.title) == f"{name}: 1.00 days of training"
    assert [_shown(t) for t in ax.get_yticklabels()] == [name]
    _draw(fig)
    point = {"point": 0, "label": "base", "status": "ok", "total": {}, "phases": [{"name": name, "gpu_hours": 1e3}]}
    fig = sweep_figure({"points": [point]})
    legend = fig.axes[0].get_legend()
    assert legend is not None and [_shown(t) for t in legend.get_texts()] == [name]
    _draw(fig)


def test_an_sm_sweeps_title_is_drawn_as_typed(tmp_path: Path) -> None:
    point = SimpleNamespace(
        comm_sms=20,
        dispatch=SimpleNamespace(deepep_GBps=40.0),
        combine=SimpleNamespace(deepep_GBps=45.0),
        gemm_throughput_fraction=0.85,
    )
    seen: list[str] = []
    real = plt.Axes.set_title

    def recorded(ax: Any, label: str, *args: Any, **kwargs: Any) -> Any:
        out = real(ax, label, *args, **kwargs)
        seen.append(_shown(ax.title))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Axes, "set_title", recorded)
        plot_sm_sweep(cast(Any, [point]), tmp_path / "s.png", r"EP8, a$\q$b")
    assert seen == [r"EP8, a$\q$b"] and (tmp_path / "s.png").stat().st_size > 0


def test_a_gpus_name_in_the_memory_figure_is_drawn_as_typed() -> None:
    """The GPU's name (a calibration profile's device, the user's text) labels its HBM line."""
    import dataclasses

    from reports.training_report import memory_figure
    from sim.run import simulate_training

    run = simulate_training(load_scenario(REPO / "tests" / "data" / "sweep" / "small-step.yaml"))
    gpu = dataclasses.replace(run.gpu, name=r"H100 $\q$")
    fig = memory_figure(cast(Any, SimpleNamespace(result=run.result, gpu=gpu)))
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [_shown(t) for t in legend.get_texts()]
    assert f"{gpu.name} HBM ({gpu.hbm_GiB:g} GiB)" in labels
    _draw(fig)
    # the bars in GiB, the HBM line's unit: each rank's stack tops at its peak (they were in GB, 7% higher,
    # so a layout with GiB to spare was drawn over the line)
    from sim.units import GiB

    ax = fig.axes[0]
    tops: dict[float, float] = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2, 6)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    peaks = [x.memory.total / GiB for x in run.result.ranks]
    assert [tops[round(float(x.rank), 6)] for x in run.result.ranks] == pytest.approx(peaks, rel=1e-12)
    assert ax.get_ylabel() == "GiB per GPU"


@pytest.mark.parametrize("collectives", [False, True])
def test_the_sm_split_names_what_its_exposed_time_counts(collectives: bool) -> None:
    """``ep_comm_exposed_s`` counts the TP/CP/expert-TP collectives on DeepEP's stream where the layout has
    them: the SM split called it "exposed EP" (the DeepEP stream alone) for a TP2 Qwen3 step too."""
    from reports.document import Document
    from reports.training_report import _sm_section
    from sim.experiments.study import SmPoint

    points = (SmPoint(8, False, 124, 30.0, 5.0), SmPoint(20, False, 112, 29.0, 2.0), SmPoint(20, True, 132, 28.0, 1.5))
    doc = Document("t")
    _sm_section(doc, cast(Any, SimpleNamespace(sms=points)), 20, collectives)
    text = doc.to_markdown()
    if collectives:
        assert "Exposed chunk communication: " in text and "TP/CP/expert-TP collectives beside them" in text
        assert "exposed comm. (s)" in text and "exposed EP" not in text
    else:
        assert "Exposed EP communication: " in text and "the DeepEP stream was busy" in text
        assert "exposed EP (s)" in text and "collectives" not in text
