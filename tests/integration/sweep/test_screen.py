"""``twin sweep --best K`` (:mod:`sim.sweep.screen`): the best K points of a sweep, exactly, from lower
bounds (:mod:`sim.step.bound`) and as few steps as those bounds allow.

What must hold: the best K are the full sweep's best K, row for row (same point ids, same figures);
fewer steps run where the bounds separate the points (IB at 100 against 1600 Gb/s slows a step by far
more than the bound leaves out); a rerun runs nothing more; a bound that does not hold stops the sweep
with one line rather than give an answer that is not exact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim.errors import ScenarioError, TwinError
from sim.sweep.runner import run_sweep
from sim.sweep.screen import best_of, screening_path, screening_sweep
from sim.sweep.spec import load_sweep
from tests.conftest import write_sweep

ROOT = Path(__file__).resolve().parents[3]

GRID = {"grid": {"cluster.nic_Gbps": [100, 400, 1600], "comm.sms": [12, 20, 32]}}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The 9-point sweep run whole on the shared network: the answer --best must give."""
    folder = tmp_path_factory.mktemp("screen")
    path = write_sweep(folder, GRID)
    out = folder / "full.parquet"
    run_sweep(load_sweep(path), out, workers=2)
    return path, pd.read_parquet(out)


@pytest.mark.parametrize("by,k,ascending", [("step_time_s", 2, True), ("tokens_per_day", 1, False)])
def test_the_best_k_are_the_full_sweeps_and_fewer_points_run(
    full: tuple[Path, pd.DataFrame], tmp_path: Path, by: str, k: int, ascending: bool
) -> None:
    path, whole = full
    out = tmp_path / "best.parquet"
    got = best_of(load_sweep(path), out, k, by, workers=2)
    expected = whole.sort_values([by, "point"], ascending=[ascending, True]).head(k)
    assert [pid for pid, _ in got.best] == list(expected["point_id"])
    assert [v for _, v in got.best] == list(expected[by])  # the same bits as the full sweep's rows
    rows = pd.read_parquet(out)
    assert got.shared.ran == len(rows) < len(whole)  # the 100 Gb/s points' steps never ran
    assert 100 not in set(rows["cluster.nic_Gbps"])
    screened = pd.read_parquet(screening_path(out))
    assert len(screened) == 9 and set(screened["status"]) == {"ok"} and screened["mfu_causal"].isna().all()
    # every bound holds (larger is better for tokens per day)
    merged = whole.merge(screened, on="point_id", suffixes=("", "_bound"))
    sign = 1 if ascending else -1
    assert (sign * merged[by] >= sign * merged[f"{by}_bound"]).all()
    # no point left out could have done better: its bound is past the K-th best
    left = merged[~merged["point_id"].isin(rows["point_id"])]
    assert (sign * left[f"{by}_bound"] >= sign * got.best[-1][1]).all() and got.next_bound is not None
    again = best_of(load_sweep(path), out, k, by, workers=2)  # resumed: nothing more runs
    assert (again.screening.ran, again.shared.ran, again.best) == (0, 0, got.best)


def test_a_bound_that_does_not_hold_stops_the_sweep(full: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    """Bounds raised 50% (as if a step could beat its bound) must stop it at the first point."""
    path, _ = full
    sweep = load_sweep(path)
    out = tmp_path / "best.parquet"
    screen_out = screening_path(out)
    run_sweep(screening_sweep(sweep), screen_out, workers=2)
    table = pq.read_table(screen_out)
    i = table.schema.get_field_index("step_time_s")
    raised = pa.compute.multiply(table.column(i), 1.5)
    pq.write_table(
        table.set_column(i, "step_time_s", raised).replace_schema_metadata(table.schema.metadata), screen_out
    )
    with pytest.raises(TwinError, match=r"better than its bound .* --best cannot be exact here"):
        best_of(sweep, out, 2, workers=1)


def test_what_cannot_be_screened_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}}, "a.yaml")
    with pytest.raises(ScenarioError, match="--by: --best ranks by step_time_s, gpu_hours_per_T, tokens_per_day"):
        best_of(load_sweep(path), tmp_path / "x.parquet", 1, "memory_peak_GiB")
    assert not list(tmp_path.glob("x*"))  # refused before anything was written
    serving = load_sweep(ROOT / "scenarios" / "sweeps" / "serve-split.yaml")
    with pytest.raises(ScenarioError, match="--best: screens training steps"):
        screening_sweep(serving)


def test_ties_go_to_the_lower_point_index_as_in_the_full_sweep(tmp_path: Path) -> None:
    """Points that differ only in the GPU price have the same bound and the same step, bit for bit: --best
    ranks them as twin compare does, by point index, whichever of them ran first."""
    path = write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [1600, 100], "economics.gpu_hour_usd": [2.5, 2.0]}})
    sweep = load_sweep(path)
    run_sweep(sweep, tmp_path / "full.parquet", workers=2)
    whole = pd.read_parquet(tmp_path / "full.parquet")
    assert whole["step_time_s"].nunique() == 2  # two pairs of tied steps
    for k in (1, 3):
        got = best_of(sweep, tmp_path / f"best{k}.parquet", k, workers=2)
        expected = whole.sort_values(["step_time_s", "point"]).head(k)
        assert [pid for pid, _ in got.best] == list(expected["point_id"])


def test_the_screening_file_is_neither_resumed_nor_compared_as_steps(tmp_path: Path) -> None:
    """`twin sweep S -o Y.screening.parquet` (a copy of --best's screening rows) said every point was
    done and kept the bounds as step times, and `twin compare X.screening.parquet` ranked them as steps:
    each is refused in one line."""
    import shutil

    from tests.conftest import twin

    path = write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [200, 800]}})
    x = tmp_path / "X.parquet"
    assert twin("sweep", str(path), "-o", str(x), "--best", "1", "-q", "-j", "2").returncode == 0
    y = tmp_path / "Y.screening.parquet"
    shutil.copy(screening_path(x), y)
    got = twin("sweep", str(path), "-o", str(y), "-q")
    assert got.returncode == 2 and got.stderr.splitlines() == [
        f"error: {y}: holds lower bounds (the screening rows of twin sweep --best), not steps: resuming would "
        "keep the bounds as step times; write to another file or pass --restart to discard them"
    ]
    got = twin("compare", str(screening_path(x)))
    assert got.returncode == 2 and got.stderr.splitlines() == [
        f"error: {screening_path(x)}: holds lower bounds (the screening rows of twin sweep --best), not steps: "
        "its step_time_s are bounds no step takes; compare the steps, in X.parquet beside it"
    ]
    ran = len(pd.read_parquet(x))  # (1 where the 800 Gb/s step beats the 200 Gb/s point's bound)
    got = twin("compare", str(x))
    assert got.returncode == 0 and ("points ran" in got.stdout) == (ran < 2)
