"""The memory columns of the DualPipe table (DeepSeek-V3 report, Table 2; REFERENCE.md section 5),
reproduced by the memory model's walk over the schedules' action lists (``activation_walk``).

Table 2: activations PP for 1F1B and ZB1P, PP+1 for DualPipe and DualPipeV; parameters 1x, 1x, 2x, 2x.
Its unit is one micro-batch's activations of one stage, for the rank with the peak.

Conditions under which the walk gives exactly these figures:

* uniform stages: every stage's forward saves A bytes per micro-batch, and a micro-batch whose split
  backward has run I and awaits its W keeps r A (what W reads: ``sim.step.activations``);
* any number of micro-batches the schedule accepts (N even and >= 2 PP here);
* 1F1B: PP for every r (its backward is never split);
* ZB1P: PP max(1, r). Rank d runs its W passes d steps late: after its (d+1)-th forward it holds PP-d
  whole micro-batches and d awaiting W, after the I that follows PP-d-1 and d+1. Table 2's PP holds
  iff r <= 1, the zero-bubble paper's premise that W needs less memory than B; then rank 0 has the
  peak (PP whole), else the last rank (PP awaiting W);
* DualPipe and DualPipeV: max(PP+1, PP-1+r, r PP/2): rank 0 at one point holds PP-1 whole and one
  awaiting W, the middle ranks at the end hold PP/2 awaiting W. Table 2's PP+1 holds iff r <= 2.

DeepSeek-V3's own recipe has r = 2.17 on a stage of MoE layers (FP8-cached activations, recomputed
norms and up-projections, while W needs every output gradient): neither ZB1P's PP nor DualPipe's PP+1
holds in bytes there (last test).
"""

from __future__ import annotations

import pytest

from sim.model.spec import DEEPSEEK_V3
from sim.pipeline.schedules import build_schedule
from sim.step.activations import stage_activation_bytes, stage_wgrad_bytes
from sim.step.memory import activation_walk, held_at_peak

RATIOS = [0.0, 0.25, 0.5, 0.9, 1.0, 1.5, 2.0, 2.17, 2.5, 3.0, 5.0]
A = 3.5  # bytes of one micro-batch's activations of one stage (any positive number)


def _ns(pp: int) -> list[int]:
    return [2 * pp, 2 * pp + 2, 3 * pp, 4 * pp + 6]


def _peak(name: str, pp: int, n: int, r: float) -> tuple[float, int]:
    """The most bytes a rank holds, in units of A, and the rank that holds it (the first of equals)."""
    sched = build_schedule(name, pp, n)
    peaks = []
    for d in range(sched.num_devices):
        mine = [s for s, dev in enumerate(sched.stage_device) if dev == d]
        peaks.append(activation_walk(sched, d, {s: A for s in mine}, {s: r * A for s in mine}).bytes / A)
    return max(peaks), peaks.index(max(peaks))


@pytest.mark.parametrize("pp", [4, 8, 16])
def test_table_2_activations_where_w_keeps_no_more_than_the_forward(pp: int) -> None:
    expected = {"1f1b": pp, "zb1p": pp, "dualpipe": pp + 1, "dualpipev": pp + 1}
    for n in _ns(pp):
        for r in (x for x in RATIOS if x <= 1):
            for name, peak in expected.items():
                assert _peak(name, pp, n, r)[0] == pytest.approx(peak), (name, pp, n, r)


@pytest.mark.parametrize("pp", [4, 8, 16])
def test_table_2_parameters(pp: int) -> None:
    for name, copies in {"1f1b": 1.0, "zb1p": 1.0, "dualpipe": 2.0, "dualpipev": 2.0}.items():
        assert build_schedule(name, pp, 2 * pp).param_copies() == copies


@pytest.mark.parametrize("pp", [4, 8, 16])
def test_exact_peaks_for_any_w_share(pp: int) -> None:
    for n in _ns(pp):
        for r in RATIOS:
            assert _peak("1f1b", pp, n, r) == (pytest.approx(pp), 0)
            zb, rank = _peak("zb1p", pp, n, r)
            assert zb == pytest.approx(pp * max(1, r)), (pp, n, r)
            assert rank == (0 if r <= 1 else pp - 1)
            for name in ("dualpipe", "dualpipev"):
                assert _peak(name, pp, n, r)[0] == pytest.approx(max(pp + 1, pp - 1 + r, r * pp / 2)), (name, n, r)


@pytest.mark.parametrize("pp", [4, 8, 16])
def test_zb1p_rank_d_holds_pp_minus_d_whole_and_d_awaiting_w(pp: int) -> None:
    sched = build_schedule("zb1p", pp, 3 * pp)
    for d in range(pp):
        less = activation_walk(sched, d, {d: A}, {d: A / 10})  # W keeps less: read after the forward
        assert (less.whole, less.awaiting_w) == ({d: pp - d}, {d: d} if d else {})
        more = activation_walk(sched, d, {d: A}, {d: 10 * A})  # W keeps more: read after the I
        assert (more.whole, more.awaiting_w) == ({d: pp - d - 1} if d < pp - 1 else {}, {d: d + 1})


def test_v3_recipe_is_outside_table_2s_conditions() -> None:
    """DeepSeek-V3, PP16, 4096-token micro-batches: a middle stage (4 MoE layers) keeps r = 2.17 for
    W, so its DualPipe ranks peak at r PP/2 = 8 r micro-batches, more than PP+1 = 17 whole ones."""
    s, pp, t = DEEPSEEK_V3, 16, 4096
    whole = {st: stage_activation_bytes(s, st, pp, t) for st in range(pp)}
    wgrad = {st: stage_wgrad_bytes(s, st, pp, t) for st in range(pp)}
    r = wgrad[7] / whole[7]
    assert 2 < r < 2.2
    assert wgrad[8] / whole[8] == pytest.approx(r)
    p7 = held_at_peak(build_schedule("dualpipe", pp, 120), 7, whole, wgrad)
    assert p7.bytes == pytest.approx(r * pp / 2 * whole[7])
    assert p7.bytes > (pp + 1) * whole[7]
