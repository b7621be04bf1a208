"""``twin collective``: nccl-tests' size flags, columns and summary line, JSON records, and the one-line
errors of bad sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main

NODE = str(Path(__file__).resolve().parents[2] / "topologies" / "h800-node.yaml")
COLUMNS = ["size", "count", "type", "redop", "root", *["time", "algbw", "busbw", "#wrong"] * 2]
FACTOR_8 = {"allreduce": 2 * 7 / 8, "allgather": 7 / 8, "reducescatter": 7 / 8, "alltoall": 7 / 8, "sendrecv": 1.0}


def _twin(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["collective", *args])
    cap = capsys.readouterr()
    return int(info.value.code or 0), cap.out, cap.err


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("kind", ["allreduce", "allgather", "sendrecv"])
def test_sweep_prints_nccl_tests_columns(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _twin([kind, "--cluster", NODE, "--gpus", "8", "-b", "1K", "-e", "256M", "-f", "4"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip("#").split()[:2] == ["size", "count"])
    assert header.lstrip("#").split() == COLUMNS
    rows = _rows(out)
    assert [int(r[0]) for r in rows] == [1024 * 4**i for i in range(10)]  # 1K .. 256M, x4
    redop = "none" if kind == "allgather" else "sum"
    per_rank = 8 if kind == "allgather" else 1
    for r in rows:
        assert r[1:5] == [str(int(r[0]) // 4 // per_rank), "float", redop, "-1"]
        assert r[8] == r[12] == "N/A" and r[5:8] == r[9:12]  # no data; in-place = out-of-place
    big = [r for r in rows if int(r[0]) >= 1 << 20]  # 3+ significant digits printed
    for r in big:
        assert float(r[7]) == pytest.approx(float(r[6]) * FACTOR_8[kind], rel=2e-3)
    times = [float(r[5]) for r in rows]
    assert times == sorted(times) and times[-1] > 50 * times[0]
    avg = next(line for line in lines if line.startswith("# Avg bus bandwidth    : "))
    mean = sum(float(r[7]) for r in rows) / len(rows)
    assert float(avg.split(":")[1]) == pytest.approx(mean, abs=0.01) and avg.endswith(" ")


def test_json_gives_one_record_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _twin(
        ["reducescatter", "--cluster", NODE, "--gpus", "8", "-b", "1M", "-e", "4M", "-i", "1M", "--format", "json"],
        capsys,
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["size"] for r in records] == [1 << 20, 2 << 20, 3 << 20, 4 << 20]
    for r in records:
        assert r["busbw_GBps"] == pytest.approx(r["algbw_GBps"] * 7 / 8, rel=1e-12)
        assert (r["count"], r["type"], r["redop"], r["root"], r["wrong"]) == (r["size"] // 32, "float", "sum", -1, None)
        assert r["time_us"] == pytest.approx(r["time_s"] * 1e6)


def test_one_size_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    """``--size-bytes X`` is ``-b X -e X``: one row, the same figures."""
    base = ["allreduce", "--cluster", NODE, "--gpus", "8", "--format", "json"]
    _, old, _ = _twin([*base, "--size-bytes", "1e9"], capsys)
    _, new, _ = _twin([*base, "-b", "1e9", "-e", "1e9"], capsys)
    assert old == new and len(old.splitlines()) == 1
    assert 150 < json.loads(old)["busbw_GBps"] <= 160


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["-b", "8x"], "error: --minbytes: must be a size in bytes like 8, 1K, 128M or 1G"),
        (["-e", "1T"], "error: --maxbytes: must be a size in bytes like 8, 1K, 128M or 1G"),
        (["-b", "1K", "-e", "1G", "-i", "0"], "error: --stepbytes: must be a size in bytes like 8, 1K, 128M or 1G"),
        (["-b", "1G", "-e", "1M"], "error: --maxbytes: must be at least minbytes (1,073,741,824 B)"),
        (["-b", "1G"], "error: --maxbytes: defaults to 32M (as in nccl-tests), less than -b"),
        (["-b", "1", "-e", "1G"], "error: --stepbytes: 1..1,073,741,824 B gives more than 1,000 sizes"),
        (["-f", "0"], "error: --stepfactor: must be a whole number in [1, 1,048,576], got '0'"),
        (["-b", "1K", "--size-bytes", "1e6"], "error: --size-bytes: give either --size-bytes or -b/-e, not both"),
    ],
)
def test_bad_sizes_are_one_line_naming_the_flag(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _twin(["allreduce", "--cluster", NODE, "--gpus", "8", *flags], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(expected), err
