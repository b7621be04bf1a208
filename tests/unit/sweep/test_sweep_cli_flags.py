"""``twin sweep``'s flags and what its figures draw, as the rules for bad input ask: a flag that does
nothing for the chosen mode is refused, a malformed address is one line (not a traceback), a refused
sweep writes nothing (no screening rows, no empty folder) and user strings are drawn as written."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

from reports.compare_plot import pareto_figure
from reports.training_run_report import sweep_figure
from sim.cli import main
from sim.errors import ScenarioError
from sim.sweep.compare import compare, load_results
from sim.sweep.point import METRICS, OK
from tests.conftest import write_sweep


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of a command that must exit with status 2."""
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("address", "needle"),
    [
        ("", "--scheduler: give the dask scheduler's address"),  # ran locally, the flag ignored
        (" ", "--scheduler: give the dask scheduler's address"),
        ("notanaddress", "--scheduler: 'notanaddress' is not host:port"),  # these four: a traceback after it
        ("tcp://host", "--scheduler: 'tcp://host' is not host:port"),
        ("tcp://host:abc", "--scheduler: 'tcp://host:abc' is not host:port"),
        ("tcp://host:99999", "--scheduler: 'tcp://host:99999' is not host:port"),
        ("http://host:8786", "--scheduler: 'http://host:8786': the scheme is one of tcp, tls, ws, wss"),
        ("inproc://x", "--scheduler: 'inproc://x': the scheme is one of"),
    ],
)
def test_a_malformed_scheduler_address_is_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, needle: str
) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}})
    out = tmp_path / "new" / "r.parquet"
    line = _refused(["sweep", str(path), "-o", str(out), "--scheduler", address], capsys)
    assert line.startswith(f"error: {needle}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_scheduler_address_dask_takes_is_accepted() -> None:
    from sim.sweep.runner import check_scheduler

    for address in ("tcp://10.0.0.1:8786", "10.0.0.1:8786", "tls://host:8786", "ws://host:8786", "tcp://[::1]:8786"):
        assert check_scheduler(address) == address


@pytest.mark.parametrize("by", ["step_time_s", "gpu_hours_per_T"])
def test_by_without_best_is_refused_even_at_its_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    """``--by step_time_s`` without ``--best`` ran the whole sweep, the flag ignored (only other figures
    were refused)."""
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}})
    out = tmp_path / "r.parquet"
    line = _refused(["sweep", str(path), "-o", str(out), "--by", by], capsys)
    assert line == "error: --by: ranks the points of --best; give --best K (twin compare ranks a whole sweep)"
    assert not out.exists()


def test_retry_failed_with_restart_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--restart`` discards every row: ``--retry-failed`` beside it did nothing, and the rows went."""
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}})
    out = tmp_path / "r.parquet"
    out.write_bytes(b"rows kept")
    line = _refused(["sweep", str(path), "-o", str(out), "--restart", "--retry-failed"], capsys)
    assert line == "error: --retry-failed: nothing to retry: --restart discards every row, failed or not"
    assert out.read_bytes() == b"rows kept"


def test_best_refuses_another_sweeps_rows_before_bounding_any_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output of another sweep was refused only after every point was bounded (the screening
    stage's time, and its rows written beside the output)."""
    first = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}}, "a.yaml")
    out = tmp_path / "r.parquet"
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(first), "-o", str(out), "-j", "1", "-q"])
    assert info.value.code in (0, None)
    before = out.read_bytes()
    other = write_sweep(tmp_path, {"grid": {"comm.sms": [24, 28]}}, "b.yaml")
    line = _refused(["sweep", str(other), "-o", str(out), "--best", "1", "-j", "1", "-q"], capsys)
    assert line.startswith(f"error: {out}: holds 1 point(s) that are not in {other}")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml", "r.parquet"]  # no screening rows


def test_a_refused_sweep_leaves_no_folder_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable scheduler (refused once the output's folder was made) left that folder, empty."""
    import sim.sweep.runner

    def unreachable(address: str) -> None:
        raise ScenarioError("--scheduler", f"cannot reach a dask scheduler at {address!r}")

    monkeypatch.setattr(sim.sweep.runner, "connect", unreachable)
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}})
    out = tmp_path / "new" / "deeper" / "r.parquet"
    line = _refused(["sweep", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:8786"], capsys)
    assert line.startswith("error: --scheduler: cannot reach")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
    (tmp_path / "kept").mkdir()  # a folder that was there stays
    out = tmp_path / "kept" / "r.parquet"
    _refused(["sweep", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:8786"], capsys)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


MATH = r"a$\q$b"  # mathtext that matplotlib cannot parse: drawn, it raised (a traceback, exit status 1)


def _draw(fig: object) -> None:
    fig.savefig(io.BytesIO(), format="svg")  # type: ignore[attr-defined]


def test_a_dollar_in_a_label_or_name_is_drawn_as_written_in_the_pareto_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: dict[str, list[object]] = {
        "point": [0, 1],
        "point_id": ["a", "b"],
        "label": [f"cluster.topology={MATH}", "y=$^^$"],
        "status": [OK, OK],
        "error": [None, None],
    }
    for m in METRICS:
        rows[m.name] = [1.0, 2.0]
    path = tmp_path / "r.parquet"
    pd.DataFrame(rows).to_parquet(path)
    frame, _ = load_results(path)
    result = compare(frame, "step_time_s", "cost_per_T_usd", 3)
    fig = pareto_figure(frame, result, f"sweep {MATH}")
    _draw(fig)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(MATH.replace("$", r"\$") in t for t in texts)
    plot = tmp_path / "p.png"
    with pytest.raises(SystemExit) as info:
        main(["compare", str(path), "--plot", str(plot)])
    assert info.value.code in (0, None) and plot.stat().st_size > 1000


def test_a_dollar_in_a_run_sweeps_label_is_drawn_as_written() -> None:
    phases = [{"name": "main", "gpu_hours": 1000.0}]
    points = [
        {"point": 0, "label": f"main.set.description={MATH}", "status": OK, "total": {"days": 1.0}, "phases": phases},
        {"point": 1, "label": "base", "status": OK, "total": {"days": math.pi}, "phases": phases},
    ]
    _draw(sweep_figure({"points": points}))
