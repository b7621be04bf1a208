"""Files of the names a sweep keeps beside its output that are not a sweep's (a user's notes named
``r.parquet.journal``, a non-empty ``r.parquet.lock``) are refused in one line and left as they were:
the sweep would otherwise read them as empty, then delete them (sim.sweep.store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.code_digest import code_digest
from sim.sweep.point import OK
from sim.sweep.spec import load_sweep
from sim.sweep.store import NOT_A_JOURNAL, Store, journal_path
from tests.conftest import twin, write_sweep


def _sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("precious line one\nprecious line two\n", 1),  # text
        ('["a", "json", "list"]\n', 1),  # JSON, but no row
        ('{"point": 0, "point_id": "x"}\n{"note": "mine"}\n', 2),  # a row, then a line no sweep writes
    ],
)
def test_a_file_named_as_the_journal_that_is_no_journal_is_refused_and_kept(
    tmp_path: Path, text: str, line: int
) -> None:
    out = tmp_path / "r.parquet"
    journal = journal_path(out)
    journal.write_text(text)
    for extra in ([], ["--restart"]):  # a restart would replace it with its mark
        r = twin("sweep", str(_sweep(tmp_path)), "-o", str(out), "-q", *extra)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [f"error: {journal}: line {line}: {NOT_A_JOURNAL}"]
        assert journal.read_text() == text and not out.exists()
        assert not out.with_name("r.parquet.lock").exists()  # the lock taken is dropped again


def test_a_journal_cut_anywhere_by_kills_still_reads(tmp_path: Path) -> None:
    """Two kills, each in the middle of a line, and a run after each: the cut lines sit between whole
    rows (a run goes on on a new line), and begin with '{' as every line does."""
    sweep = load_sweep(_sweep(tmp_path))
    out = tmp_path / "r.parquet"
    point = sweep.points[1]
    row = {"point": 1, "point_id": point.point_id, "status": OK, "step_time_s": 1.0, "twin_code": code_digest()}
    row["twin_inputs"] = sweep.input_digest(point)
    writer = Store(sweep, out)
    writer.add(row)
    writer.release()  # (killed before the Parquet file: the journal holds the row's line as a sweep writes it)
    whole = journal_path(out).read_text().strip()
    # cut, whole, cut after one character, and the NULs a power cut may leave where a line was being written
    journal_path(out).write_text(whole[:20] + "\n" + whole + "\n" + "{\n" + "\x00" * 64 + "\n" + "\x00" * 8 + "{")
    store = Store(sweep, out)
    try:
        assert set(store.rows) == {point.point_id}
    finally:
        store.release()


def test_a_lock_file_that_holds_data_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    lock = out.with_name("r.parquet.lock")
    lock.write_text("precious\n")
    r = twin("sweep", str(_sweep(tmp_path)), "-o", str(out), "-q")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "r.parquet.lock beside it is not a sweep's lock" in r.stderr
    assert lock.read_text() == "precious\n" and not out.exists()


def test_an_empty_lock_a_killed_sweep_left_is_taken(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    out.with_name("r.parquet.lock").touch()  # a kill leaves the (empty) lock file; its flock died with it
    r = twin("sweep", str(_sweep(tmp_path)), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert out.exists() and not out.with_name("r.parquet.lock").exists()


@pytest.mark.parametrize("dropped", [["step_time_s", "tokens_per_day"], ["step_time_s"]])
def test_a_resumed_ok_row_without_its_step_time_is_refused(tmp_path: Path, dropped: list[str]) -> None:
    """An ok row read back with no step time (a results file or a journal line edited) was kept as done:
    the sweep said '2 already done' with exit 0, then twin compare refused the file it had written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sweep = _sweep(tmp_path)
    out = tmp_path / "z.parquet"
    assert twin("sweep", str(sweep), "-o", str(out), "-q").returncode == 0
    table = pq.read_table(out)
    frame = table.to_pandas().drop(columns=dropped)
    edited = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(edited, out)
    before = out.read_bytes()
    r = twin("sweep", str(sweep), "-o", str(out), "-q")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "step_time_s: none in a point whose status is ok" in r.stderr and str(out) in r.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("name", ["r.parquet", "r.parquet.journal", "r.parquet.lock"])
def test_a_results_file_journal_or_lock_that_is_a_link_is_refused_and_kept(tmp_path: Path, name: str) -> None:
    """A results file given as a link: the sweep read the target's rows, then put a plain file in the
    link's place (the link gone, the target stale). Refused before any point runs, the link and its
    target as they were; likewise a journal or lock that is a link (its writes went through it)."""
    real = tmp_path / "real"
    real.mkdir()
    target = real / "target"
    target.write_bytes(b"")
    link = tmp_path / name
    link.symlink_to(target)
    out = tmp_path / "r.parquet"
    sweep = _sweep(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = twin("sweep", str(sweep), "-o", str(out), "-q")
    assert r.returncode == 2, r.stderr
    why = f"a link (to {target}); twin does not write through links: give the file itself"
    line = f"error: --output: {link} is {why}" if name == "r.parquet" else f"error: {link}: {why}"  # (-o: the flag)
    assert r.stderr.strip().splitlines() == [line]
    assert link.is_symlink() and target.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # (nothing written beside it)
