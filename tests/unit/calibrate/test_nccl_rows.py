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
