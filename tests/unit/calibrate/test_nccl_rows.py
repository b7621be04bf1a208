"""nccl-tests rows whose results nccl-tests itself marks wrong are not measurements: a ``#wrong`` count
above 0 (newer versions), or an older log's ``error`` (the largest relative error) of 1 or more, which
leaves no correct digit. A small relative error (float sums rounded in another order) is what an older
all-reduce prints for right results. Both formats are read from the real H200 all-reduce log with one
row changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibrate.nccl_tests import parse_log
from sim.errors import ScenarioError

LOG = Path(__file__).resolve().parents[2] / "data" / "nccl-tests" / "all_reduce_perf-h200-1gpu.log"
OLD_HEADER = (
    "#       size         count      type   redop     time   algbw   busbw  error     time   algbw   busbw  error\n"
)


def _older(error: str) -> str:
    """The log in the older layout (no root column, ``error`` for ``#wrong``), its 4th row's errors ``error``."""
    out, rows = [], 0
    for line in LOG.read_text().splitlines(keepends=True):
        if line.lstrip("#").split()[:2] == ["size", "count"]:
            out.append(OLD_HEADER)
        elif line.strip()[:1].isdigit():
            cells = line.split()
            del cells[4]  # (the root)
            rows += 1
            if rows == 4:
                cells[7] = cells[11] = error
            out.append("  ".join(cells) + "\n")
        else:
            out.append(line)
    return "".join(out)


def _refusal(path: Path, refused: bool) -> ScenarioError | None:
    """The error reading ``path`` (refused), or None once it reads as many samples as the real log."""
    if not refused:
        assert len(parse_log(path)) == len(parse_log(LOG))
        return None
    with pytest.raises(ScenarioError) as err:
        parse_log(path)
    return err.value


@pytest.mark.parametrize(("error", "refused"), [("0e+00", False), ("3e-07", False), ("1e+00", True), ("2e+00", True)])
def test_an_older_logs_relative_error_of_one_or_more_is_refused(tmp_path: Path, error: str, refused: bool) -> None:
    path = tmp_path / "all_reduce_perf-old.log"
    path.write_text(_older(error))
    err = _refusal(path, refused)
    assert (
        err is None
        or err.message == f"out-of-place #wrong is {error}: the collective's results were wrong; not imported"
    )


@pytest.mark.parametrize(("wrong", "refused"), [("0", False), ("N/A", False), ("1", True), ("17", True)])
def test_a_newer_logs_wrong_count_above_zero_is_refused(tmp_path: Path, wrong: str, refused: bool) -> None:
    lines = LOG.read_text().splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.strip()[:1].isdigit()][3]
    cells = lines[at].split()
    cells[-1] = wrong  # (the in-place #wrong)
    lines[at] = "  ".join(cells) + "\n"
    path = tmp_path / "all_reduce_perf-wrong.log"
    path.write_text("".join(lines))
    err = _refusal(path, refused)
    assert err is None or err.key_path == f"line {at + 1}"
    assert (
        err is None or err.message == f"in-place #wrong is {wrong}: the collective's results were wrong; not imported"
    )


@pytest.mark.parametrize("verdict", ["12 FAILED", "3 OK"])
def test_a_log_nccl_tests_says_failed_is_refused(tmp_path: Path, verdict: str) -> None:
    """nccl-tests' summary under the rows, ``# Out of bounds values : 0 OK`` in a good log: a log ending
    ``12 FAILED`` was imported as 13 good samples, exit 0."""
    path = tmp_path / "all_reduce_perf-failed.log"
    text = LOG.read_text()
    assert "# Out of bounds values : 0 OK" in text
    path.write_text(text.replace("# Out of bounds values : 0 OK", f"# Out of bounds values : {verdict}"))
    err = _refusal(path, True)
    assert err is not None and err.key_path == "line 24"
    assert err.message.startswith(f"nccl-tests says '{verdict}' (results out of bounds)")


def _rows(text: str, keep: list[int], times: list[float] | None = None) -> str:
    """The log with only its result rows ``keep`` (indices), their out-of-place and in-place times
    replaced by ``times`` where given."""
    out, row = [], -1
    for line in text.splitlines(keepends=True):
        if line.strip()[:1].isdigit():
            row += 1
            if row not in keep:
                continue
            if times is not None:
                cells = line.split()
                cells[5] = cells[9] = f"{times[keep.index(row)]:.2f}"
                line = "  ".join(cells) + "\n"
        out.append(line)
    return "".join(out)


def _one_size(text: str) -> str:
    """The log with only its last row, twice: as measured, and again in doubles (half the elements of
    the same bytes: another measurement, not a repeat)."""
    last = _rows(text, [12])
    row = next(line for line in last.splitlines() if line.strip()[:1].isdigit())
    cells = row.split()
    again = "  ".join([cells[0], str(int(cells[1]) // 2), "double", *cells[3:]])
    return last.replace(row, row + "\n" + again)


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        # two rows of one size: the fit's slope was any (two rows at 1 KiB gave a 1 GB all-reduce 21 s)
        ("one size", "every one is at 134,217,728 B; a time = alpha + bytes / bandwidth line needs samples"),
        # times that fall as the size grows: no bandwidth, 1 TB predicted as fast as 1 B
        ("falling", "the times do not grow with the size"),
    ],
)
def test_rows_that_give_no_alpha_beta_line_are_refused_at_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, problem: str
) -> None:
    from tests.conftest import refused_line

    text = LOG.read_text()
    body = _one_size(text) if case == "one size" else _rows(text, [0, 6, 12], [900.0, 500.0, 100.0])
    path = tmp_path / "all_reduce_perf-h200-1gpu.log"
    path.write_text(body)
    out = tmp_path / "p.json"
    line = refused_line(["calibrate", "import-nccl-tests", str(path), "-o", str(out)], capsys)
    assert line.startswith(f"error: LOGS: {path}: all_reduce on 1 GPUs over 1 node(s): {problem}"), line
    assert not out.exists()
