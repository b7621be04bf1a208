"""``twin compare --plot`` of a sweep whose points did not all run (a sweep stopped before its end, a
``--best`` output): the tables said so (``2 of 3 points ran ...``), the plot was titled with the sweep's
name alone, as if it showed the whole sweep. Its title now says how many of how many points ran."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

from reports.compare_plot import pareto_figure
from sim.cli import main
from sim.cli.sweep import plot_title
from sim.code_digest import code_digest
from sim.sweep.compare import compare, load_results, points_in_sweep
from sim.sweep.point import OK
from sim.sweep.spec import load_sweep
from sim.sweep.store import Store
from tests.conftest import write_sweep

STEPS = (14.97, 7.95, 7.30)  # step time of each point
COSTS = (1.03e6, 5.73e5, 6.1e5)


def _results(folder: Path, ran: int) -> Path:
    """A 3-point sweep's results as the store writes them after its first ``ran`` points (a sweep stopped
    there: the metadata says 3 points, the file holds ``ran`` rows)."""
    sweep = load_sweep(write_sweep(folder, {"grid": {"cluster.nic_Gbps": [100, 400, 1600]}}))
    out = folder / "X.parquet"
    store = Store(sweep, out)
    for p in sweep.points[:ran]:
        row = {"point": p.index, "point_id": p.point_id, "label": f"point {p.index}", "status": OK, "error": None}
        store.add(
            row
            | {
                "step_time_s": STEPS[p.index],
                "cost_per_T_usd": COSTS[p.index],
                "twin_code": code_digest(),
                "twin_inputs": sweep.input_digest(p),
            }
        )
    store.write()
    store.release()
    return out


def _svg_text(path: Path) -> list[str]:
    """The text drawn in an SVG written with ``svg.fonttype: none`` (text as text, not glyph paths)."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())


@pytest.mark.parametrize("ran", [2, 3])
def test_the_plot_of_a_stopped_sweep_says_how_many_points_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ran: int
) -> None:
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")
    out = _results(tmp_path, ran)
    plot = tmp_path / "front.svg"
    with pytest.raises(SystemExit) as info:
        main(["compare", str(out), "--plot", str(plot)])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    text = _svg_text(plot)
    if ran < 3:
        assert f"{ran} of 3 points ran" in printed  # (the tables said so already)
        assert "s: only 2 of 3 points ran" in text and "(the points not run are not plotted)" in text
    else:  # every point ran: the sweep's name alone
        assert "points ran" not in printed and "s" in text and not any("points ran" in t for t in text)


def test_the_title_is_built_from_the_files_metadata(tmp_path: Path) -> None:
    """The figure's own title, read back from its axes, for a stopped sweep and a whole one."""
    for ran, title in ((1, "s: only 1 of 3 points ran\n(the points not run are not plotted)"), (3, "s")):
        folder = tmp_path / str(ran)
        folder.mkdir()
        frame, meta = load_results(_results(folder, ran))
        result = compare(frame, "step_time_s", "cost_per_T_usd", 10, points_in_sweep(meta))
        assert (result.partial, result.ran, result.points) == (ran < 3, ran, 3)
        fig = pareto_figure(frame, result, plot_title(str(meta["name"]), result))
        try:
            assert fig.axes[0].get_title() == title
        finally:
            plt.close(fig)
