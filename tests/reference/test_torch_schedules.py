"""Cross-check our schedules against torch.distributed.pipelining's own action lists.

torch computes per-rank action lists in ``_calculate_single_rank_operations`` without needing a
process group, so we build the schedule objects bare and ask them. Schedule1F1B has no action list;
we drive its real ``_step_microbatches`` with a recording stage and read the compute order off it.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.cli import main
from sim.pipeline.schedules import build_schedule


class _Lazy:
    """``torch.distributed.pipelining.schedules``, imported at a test's first use of it, not when the
    module is collected (importing torch cost each xdist worker 4 to 7 s); without torch, each test that
    uses it is skipped, as the whole module was."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pytest.importorskip("torch.distributed.pipelining.schedules"), name)


torch_schedules = _Lazy()


def _torch_lists(cls: type, pp: int, n: int, **attrs: int) -> list[list[str]]:
    sched = object.__new__(cls)
    sched.pp_group_size = pp
    sched._n_microbatches = n
    for k, v in attrs.items():
        setattr(sched, k, v)
    return [[str(a) for a in sched._calculate_single_rank_operations(r) if a is not None] for r in range(pp)]


def _ours(name: str, pp: int, n: int, v: int = 2) -> list[list[str]]:
    return [[str(a) for a in acts] for acts in build_schedule(name, pp, n, v).actions]


@pytest.mark.parametrize("devices", range(1, 13))
def test_dualpipev_equals_torch_for_every_valid_n(devices: int) -> None:
    pp = 2 * devices
    for n in range(pp, pp + 3 * pp + 7):  # torch accepts any N >= PP
        theirs = _torch_lists(torch_schedules.ScheduleDualPipeV, devices, n)
        assert _ours("dualpipev", pp, n) == theirs, (pp, n)


def test_dualpipev_torch_lists_contain_overlapped_pairs() -> None:
    lines = _ours("dualpipev", 8, 10)
    assert any("OVERLAP_F_B" in a for a in lines[0])
    assert lines[0][0] == "0F0" and lines[3][-1].endswith(tuple("0123456789"))


def test_cli_show_dualpipev_prints_torch_lists(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["schedules", "show", "dualpipev", "--pp", "8", "--microbatches", "10", "--format", "torch"])
    assert exit_info.value.code == 0
    printed = [line.split() for line in capsys.readouterr().out.strip().splitlines()]
    assert printed == _torch_lists(torch_schedules.ScheduleDualPipeV, 4, 10)


@pytest.mark.parametrize("pp", range(1, 9))
@pytest.mark.parametrize("v", [1, 2, 3, 4])
def test_interleaved_equals_torch_where_torch_accepts_n(pp: int, v: int) -> None:
    checked = 0
    for n in range(1, 5 * pp + 1):
        rounds = max(1, n // pp)
        if n % rounds:
            continue  # torch refuses these N; ours still runs them (see the property tests)
        theirs = _torch_lists(
            torch_schedules.ScheduleInterleaved1F1B,
            pp,
            n,
            n_local_stages=v,
            number_of_rounds=rounds,
            microbatches_per_round=n // rounds,
        )
        assert _ours("interleaved-1f1b", pp, n, v) == theirs, (pp, v, n)
        checked += 1
    assert checked >= pp


@pytest.mark.parametrize("pp", range(1, 11))
def test_zb1p_equals_torch_zero_bubble_with_one_stage_per_rank(pp: int) -> None:
    for n in range(1, 4 * pp + 3):
        rounds = max(1, n // pp)
        theirs = _torch_lists(
            torch_schedules.ScheduleInterleavedZeroBubble,
            pp,
            n,
            n_local_stages=1,
            number_of_rounds=rounds,
            microbatches_per_round=n // rounds,
        )
        assert _ours("zb1p", pp, n) == theirs, (pp, n)


class _RecordingStage:
    """Stands in for a pipeline stage: no communication, records compute calls."""

    def __init__(self, index: int, log: list[str]) -> None:
        self.stage_index = index
        self.log = log

    def forward_one_chunk(self, mb: int, *args: object, **kwargs: object) -> None:
        self.log.append(f"{self.stage_index}F{mb}")

    def backward_one_chunk(self, mb: int, *args: object, **kwargs: object) -> None:
        self.log.append(f"{self.stage_index}B{mb}")

    def __getattr__(self, name: str) -> object:
        if name.startswith("get_") and name.endswith("_ops"):
            return lambda *a, **k: []
        return lambda *a, **k: None


def _torch_1f1b(pp: int, n: int) -> list[list[str]]:
    lists = []
    for rank in range(pp):
        log: list[str] = []
        sched = object.__new__(torch_schedules.Schedule1F1B)
        sched._n_microbatches = n
        sched._num_stages = pp
        sched._stage = _RecordingStage(rank, log)
        sched._check_inputs = lambda a, k, t, losses, n=n: ([()] * n, [{}] * n)
        sched._initialize_stage = lambda *a, **k: None
        sched._maybe_compute_loss = lambda *a, **k: None
        sched._maybe_get_loss = lambda *a, **k: None
        sched._update_losses = lambda *a, **k: None
        sched.scale_grads = False
        sched._step_microbatches()
        lists.append(log)
    return lists


@pytest.mark.parametrize("pp", [1, 2, 4, 7, 8])
def test_1f1b_equals_torch_schedule1f1b_compute_order(pp: int) -> None:
    for n in range(pp, 3 * pp + 2):  # torch needs N >= PP
        assert _ours("1f1b", pp, n) == _torch_1f1b(pp, n), (pp, n)


def _torch_order(cls: type, pp: int, n: int) -> list[list[str]]:
    """A single-stage schedule's ``_get_pipeline_order`` (GPipe), without no-ops and the final gradient
    reduction (not a compute action: the step's data-parallel phase models it)."""
    sched = object.__new__(cls)
    sched._num_stages = pp
    sched._n_microbatches = n
    order = sched._get_pipeline_order()
    reduce = torch_schedules._ComputationType.REDUCE_GRAD
    return [[str(a) for a in order[r] if a is not None and a.computation_type != reduce] for r in range(pp)]


@pytest.mark.parametrize("pp", range(1, 11))
def test_gpipe_equals_torch(pp: int) -> None:
    for n in range(1, 4 * pp + 3):
        assert _ours("gpipe", pp, n) == _torch_order(torch_schedules.ScheduleGPipe, pp, n), (pp, n)


@pytest.mark.parametrize("pp", range(1, 9))
@pytest.mark.parametrize("v", [1, 2, 3, 4])
def test_looped_bfs_equals_torch_for_every_n(pp: int, v: int) -> None:
    for n in range(1, 4 * pp + 3):
        theirs = _torch_lists(torch_schedules.ScheduleLoopedBFS, pp, n, _stages=[None] * v)
        assert _ours("looped-bfs", pp, n, v) == theirs, (pp, v, n)


@pytest.mark.parametrize("pp", range(1, 9))
@pytest.mark.parametrize("v", [1, 2, 3, 4])
def test_interleaved_zero_bubble_equals_torch_where_torch_accepts_n(pp: int, v: int) -> None:
    checked = 0
    for n in range(1, 5 * pp + 1):
        rounds = max(1, n // pp)
        if n % rounds:
            continue  # torch refuses these N; ours runs them with balanced groups (tests/theory)
        theirs = _torch_lists(
            torch_schedules.ScheduleInterleavedZeroBubble,
            pp,
            n,
            n_local_stages=v,
            number_of_rounds=rounds,
            microbatches_per_round=n // rounds,
        )
        assert _ours("interleaved-zb", pp, n, v) == theirs, (pp, v, n)
        checked += 1
    assert checked >= pp


@pytest.mark.parametrize("devices", range(1, 11))
def test_zbv_equals_torch_for_every_n(devices: int) -> None:
    for n in range(1, 4 * devices + 7):  # below 2D-1 torch plans 2D-1 and drops the missing ones
        theirs = _torch_lists(torch_schedules.ScheduleZBVZeroBubble, devices, n, num_stages=2 * devices)
        assert _ours("zbv", 2 * devices, n) == theirs, (devices, n)
