"""nccl-tests' size sweep on the flow-level network (sim/network/nccl_sweep.py), checked against the
real nccl-tests logs in tests/data/nccl-tests/ (sizes, counts, number widths, column layout) and read
back by the project's own nccl-tests parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from calibrate.nccl_tests import parse_log
from sim.errors import ScenarioError
from sim.limits import MAX_SWEEP_SIZES
from sim.network.collectives import KINDS, bus_factor
from sim.network.nccl_sweep import (
    PROGRAM,
    avg_busbw,
    float_str,
    nccl_size,
    nccl_tests_text,
    parse_size,
    run_sweep,
    sweep_sizes,
)
from sim.network.spec import build_cluster
from sim.network.topology import Topology

ROOT = Path(__file__).resolve().parents[3]
LOGS = ROOT / "tests" / "data" / "nccl-tests"
NODE = ROOT / "topologies" / "h800-node.yaml"
KIND_OF_LOG = {program.removesuffix("_perf"): kind for kind, program in PROGRAM.items()}


def _log_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "text,expected",
    [("8", 8), ("1K", 1024), ("1k", 1024), ("128M", 128 << 20), ("1G", 1 << 30), ("1.5K", 1536), ("1e9", 10**9)],
)
def test_sizes_read_as_nccl_tests_reads_them(text: str, expected: int) -> None:
    assert parse_size(text) == expected
    assert parse_size(f" {text} ") == expected


@pytest.mark.parametrize("text", ["8x", "", "K", "1T", "nan", "inf", "-1", "0", "0.5", "1KB", "2e18"])
def test_bad_sizes_say_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be a size in bytes like 8, 1K, 128M or 1G"):
        parse_size(text)


def test_sweep_sizes_are_the_logs_sizes() -> None:
    """``-b 8 -e 256M -f 4`` (how the logs were made) gives the all-reduce log's size column."""
    logged = [int(cells[0]) for cells in _log_rows(LOGS / "all_reduce_perf-h200-1gpu.log")]
    assert sweep_sizes(8, 256 << 20, 4) == logged
    assert sweep_sizes(1 << 20, 4 << 20, 1, 1 << 20) == [1 << 20, 2 << 20, 3 << 20, 4 << 20]  # -f 1: add -i
    assert sweep_sizes(1 << 30, 1 << 30) == [1 << 30]  # -b X -e X: one size


def test_sweep_sizes_refuse_an_empty_or_endless_sweep() -> None:
    with pytest.raises(ScenarioError, match="maxbytes: must be at least minbytes"):
        sweep_sizes(2048, 1024)
    with pytest.raises(ScenarioError, match=f"stepbytes: .* more than {MAX_SWEEP_SIZES:,} sizes"):
        sweep_sizes(1, 1 << 30, 1, 1)
    assert len(sweep_sizes(1, MAX_SWEEP_SIZES, 1, 1)) == MAX_SWEEP_SIZES


@pytest.mark.parametrize("log", sorted(LOGS.glob("*.log")), ids=lambda p: p.name)
def test_size_and_count_columns_match_the_logs(log: Path) -> None:
    """Each logged row's size and count from the size asked (8 x 4^i, one rank)."""
    kind = KIND_OF_LOG[log.name.split("_perf")[0]]
    for asked, cells in zip(sweep_sizes(8, 256 << 20, 4), _log_rows(log), strict=True):
        assert nccl_size(kind, 1, asked) == (int(cells[0]), int(cells[1]))


def test_per_rank_counts_round_down_to_16_bytes() -> None:
    assert nccl_size("allgather", 8, 1000) == (896, 28)  # 250 floats: 31 per rank, 28 of them 16-byte aligned
    assert nccl_size("alltoall", 8, 32) == (0, 0)
    assert nccl_size("allreduce", 8, 1001) == (1000, 250)  # whole floats
    assert nccl_size("sendrecv", 8, 6) == (4, 1)


@pytest.mark.parametrize("log", sorted(LOGS.glob("*.log")), ids=lambda p: p.name)
def test_numbers_printed_in_nccl_tests_widths(log: Path) -> None:
    """Every time (7 wide) and bandwidth (6 wide) of a real log prints back as the same text."""
    for cells in _log_rows(log):
        for i, width in ((5, 7), (6, 6), (7, 6), (9, 7), (10, 6), (11, 6)):
            assert float_str(float(cells[i]), width).strip() == cells[i], (cells, i)
    assert float_str(123456789.0, 7) == "1.2e+08" and float_str(1234567.0, 6) == " 1e+06"


@pytest.fixture(scope="module")
def node() -> Topology:
    return build_cluster(NODE)


@pytest.mark.parametrize("kind", KINDS)
def test_busbw_is_algbw_times_nccl_tests_factor_and_time_grows(kind: str, node: Topology) -> None:
    rows = run_sweep(node, kind, 8, sweep_sizes(1024, 256 << 20, 4))
    for r in rows:
        assert r.busbw_GBps == pytest.approx(r.algbw_GBps * bus_factor(kind, 8), rel=1e-12)
        assert r.algbw_GBps == pytest.approx(r.size / r.time_s / 1e9, rel=1e-12)
    times = [r.time_s for r in rows]
    assert times == sorted(times) and times[-1] > 50 * times[0]  # 1 KiB: latency; 256 MiB: bandwidth
    assert bus_factor(kind, 8) == {"sendrecv": 1.0, "allreduce": 1.75}.get(kind, 0.875)


def test_text_is_nccl_tests_output_the_calibration_can_read(node: Topology, tmp_path: Path) -> None:
    rows = run_sweep(node, "allreduce", 8, sweep_sizes(8, 128 << 20, 4))
    text = nccl_tests_text(rows, "GPUs 0..7 of h800-node", (8, 128 << 20, 4, 1 << 20))
    reference = (LOGS / "all_reduce_perf-h200-1gpu.log").read_text().splitlines()
    header = reference.index("#", 5)
    assert text.splitlines()[4:8] == reference[header : header + 4]  # the column block, byte for byte
    assert "# Collective test starting: all_reduce_perf" in text
    avg = re.search(r"^# Avg bus bandwidth    : (\S+) $", text, re.M)
    assert avg is not None and float(avg[1]) == pytest.approx(avg_busbw(rows), rel=1e-5)
    log = tmp_path / "twin.log"
    log.write_text(text)
    samples = parse_log(log, gpus=8, nodes=1)
    assert [s.params["bytes"] for s in samples[::2]] == [r.size for r in rows]
    for placement in (samples[::2], samples[1::2]):  # in-place repeats out-of-place
        assert [s.params["busbw_GBps"] for s in placement] == [float(float_str(r.busbw_GBps, 6)) for r in rows]
        assert [s.time_s for s in placement] == pytest.approx([r.time_s for r in rows], rel=1e-3)
    assert {s.params["collective"] for s in samples} == {"all_reduce"}


def test_zero_byte_rows_take_no_time_and_count_in_the_average(node: Topology) -> None:
    rows = run_sweep(node, "alltoall", 8, [8, 1 << 20])
    assert (rows[0].size, rows[0].result, rows[0].time_s, rows[0].busbw_GBps) == (0, None, 0.0, 0.0)
    assert avg_busbw(rows) == pytest.approx(rows[1].busbw_GBps / 2)
    assert rows[0].record().keys() == rows[1].record().keys()


@pytest.mark.parametrize("text", ["\uff11K", "\u0661K", "\u0661\u0660\u0662\u0664"])
def test_a_size_in_another_scripts_digits_is_refused(text: str) -> None:
    """float() reads every script's digits: ``-b １K`` ran at 1024 B, where every other numeric flag
    refuses them (sim.number_text)."""
    with pytest.raises(ValueError, match="must be a size in bytes"):
        parse_size(text)
