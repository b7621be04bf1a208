"""Schedule generators: registry, layout errors, DualPipe's phase structure, DualPipeV = half of DualPipe."""

from __future__ import annotations

import pytest

from sim.errors import LayoutError, ScenarioError
from sim.pipeline.ops import Op, Schedule
from sim.pipeline.schedules import SCHEDULES, build_schedule, register
from sim.pipeline.schedules.dualpipe import phase_counts


def test_registry_has_every_schedule_and_rejects_duplicates() -> None:
    assert set(SCHEDULES) == {"1f1b", "zb1p", "interleaved-1f1b", "dualpipe", "dualpipev"} | {
        "gpipe",
        "looped-bfs",
        "interleaved-zb",
        "zbv",
        "interleaved-1f1b-overlap",
    }
    with pytest.raises(ValueError, match="registered twice"):
        register("1f1b", "again")(SCHEDULES["1f1b"].build)


def test_unknown_schedule() -> None:
    with pytest.raises(ScenarioError, match="unknown schedule 'pipedream'"):
        build_schedule("pipedream", 4, 8)


@pytest.mark.parametrize(
    "name,pp,n,key,text",
    [
        ("dualpipe", 7, 28, "pp", "even PP"),
        ("dualpipev", 5, 10, "pp", "even PP"),
        ("zbv", 5, 10, "pp", "even PP"),
        ("dualpipe", 8, 15, "microbatches", "even number"),
        ("dualpipe", 8, 14, "microbatches", "at least 16"),
        ("dualpipev", 8, 7, "microbatches", "at least 8"),
        ("1f1b", 0, 8, "pp", ">= 1"),
        ("zb1p", 4, 0, "microbatches", "at least 1"),
    ],
)
def test_impossible_layouts(name: str, pp: int, n: int, key: str, text: str) -> None:
    with pytest.raises(LayoutError, match=text) as info:
        build_schedule(name, pp, n)
    assert info.value.key_path == key


def test_devices_and_stage_tables() -> None:
    s = build_schedule("dualpipev", 8, 10)
    assert s.num_devices == 4 and s.stage_device == (0, 1, 2, 3, 3, 2, 1, 0)
    d = build_schedule("dualpipe", 8, 16)
    assert d.num_devices == 8 and d.stage_device[8:] == (7, 6, 5, 4, 3, 2, 1, 0)
    assert d.mb_route == (0,) * 8 + (1,) * 8
    i = build_schedule("interleaved-1f1b", 4, 8, 3)
    assert i.num_stages == 12 and i.stage_device[5] == 1 and i.stage_weight[0] == pytest.approx(1 / 3)


def _phase_sequence(s: Schedule, device: int, phase_stage: tuple[int, int], per_dir: int) -> list[tuple[str, ...]]:
    """(op, phase, local micro-batch) of each atom, grouping F&B as one entry."""
    phase = {phase_stage[0]: 0, phase_stage[1]: 1}

    def atom(a) -> tuple[str, int, int]:  # type: ignore[no-untyped-def]
        return (a.op.value, phase[a.stage], a.mb % per_dir)

    return [tuple(x for a in act.atoms() for x in atom(a)) for act in s.actions[device]]


@pytest.mark.parametrize("devices", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("extra", [0, 1, 5, 12])
def test_dualpipev_is_dualpipe_cut_in_half(devices: int, extra: int) -> None:
    pp = 2 * devices
    n = pp + extra
    v = build_schedule("dualpipev", pp, n)
    d = build_schedule("dualpipe", pp, 2 * n)
    assert d.num_devices == 2 * v.num_devices
    for r in range(devices):
        ours = _phase_sequence(v, r, (r, pp - 1 - r), n)
        theirs = _phase_sequence(d, r, (r, pp + (pp - 1 - r)), n)
        assert ours == theirs, r


@pytest.mark.parametrize("pp,n", [(4, 8), (8, 20), (16, 40)])
def test_dualpipe_ranks_follow_the_eight_phase_counts(pp: int, n: int) -> None:
    """Count each rank's ops against the closed-form phase counts (REFERENCE.md section 5)."""
    s = build_schedule("dualpipe", pp, n)
    half, chunks = pp // 2, n // 2
    for d in range(pp):
        r = min(d, pp - 1 - d)
        c = phase_counts(half, r, chunks)
        acts = s.actions[d]
        middle = r == half - 1  # runs its first steady-state F0, B1 un-overlapped
        # leading forwards: phases 1 and 2, plus the middle rank's un-overlapped F0
        lead = next(i for i, a in enumerate(acts) if a.op is not Op.F)
        assert lead == c[0] + 2 * c[1] + (1 if middle else 0)
        overlapped = sum(a.op is Op.FB for a in acts)
        assert overlapped == 2 * c[3] - (1 if middle else 0) + c[4]
        assert sum(a.op is Op.W for a in acts) == c[2] + c[6] + c[7]
        assert s.actions[d][-1].op is Op.W
    # mirror symmetry: rank d and rank pp-1-d run the same program on mirrored stages
    for d in range(pp // 2):
        a = [a.op for a in s.actions[d]]
        b = [a.op for a in s.actions[pp - 1 - d]]
        assert a == b
