"""A resumed sweep reads each results file once. The store read its rows (``pandas.read_parquet``) and
then opened the file again for its metadata (``pyarrow.parquet.read_schema``); ``--best`` opened its
output twice (a check before the screening, then the run) and read the screening file back after
writing it. Counted here at pyarrow's readers, which pandas calls too; no step is simulated (every
point is already in both files, so nothing runs)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sim.code_digest import code_digest
from sim.sweep.point import OK
from sim.sweep.runner import run_sweep
from sim.sweep.screen import best_of, screening_path, screening_sweep
from sim.sweep.spec import Sweep, load_sweep
from sim.sweep.store import Store
from tests.conftest import write_sweep

READERS = ("read_table", "read_schema", "read_metadata", "read_pandas", "ParquetFile", "ParquetDataset")


def _fill(sweep: Sweep, out: Path, values: tuple[float, ...]) -> None:
    store = Store(sweep, out)
    for p in sweep.points:
        row = {"point": p.index, "point_id": p.point_id, "label": "", "status": OK, "error": None}
        store.add(
            row | {"step_time_s": values[p.index], "twin_code": code_digest(), "twin_inputs": sweep.input_digest(p)}
        )
    store.write()
    store.release()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each file is opened by a Parquet reader (by file name)."""
    count: Counter[str] = Counter()
    for name in READERS:
        original = getattr(pq, name)

        def counted(source: object, *args: object, _original: object = original, **kwargs: object) -> object:
            count[Path(str(source)).name] += 1
            return _original(source, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(pq, name, counted)
    return count


def test_a_resumed_sweep_reads_its_results_once(tmp_path: Path, reads: Counter[str]) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [100, 400, 1600]}}))
    out = tmp_path / "X.parquet"
    _fill(sweep, out, (14.97, 7.95, 7.30))
    reads.clear()
    store = Store(sweep, out)
    store.release()
    assert store.done() == {p.point_id for p in sweep.points}
    assert reads == Counter({"X.parquet": 1})
    reads.clear()
    outcome = run_sweep(sweep, out)  # the whole resume: nothing to run, the file rewritten
    assert (outcome.skipped, outcome.ran) == (3, 0) and reads == Counter({"X.parquet": 1})


def test_a_resumed_best_reads_its_output_and_its_screening_once(tmp_path: Path, reads: Counter[str]) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [100, 400, 1600]}}))
    out = tmp_path / "X.parquet"
    _fill(screening_sweep(sweep), screening_path(out), (13.0, 7.5, 7.1))
    _fill(sweep, out, (14.97, 7.95, 7.30))
    reads.clear()
    got = best_of(sweep, out, 1)
    assert (got.screening.ran, got.shared.ran, got.best) == (0, 0, [(sweep.points[2].point_id, 7.30)])
    assert reads == Counter({"X.parquet": 1, "X.screening.parquet": 1})
