"""The DualPipe table (DeepSeek-V3 report, Table 2) and other closed forms, reproduced by simulation.

Exact where the table is exact: zero transfer cost, W = B/2, F&B = F + B, and (as the table's
derivation assumes, like the zero-bubble paper's T_F = T_B = T_W) F = W. Off that point the timed
run departs from the formulas (last tests below). Bubble is step time - busy time per device; we
compare its maximum over devices.
"""

from __future__ import annotations

import pytest

from sim.pipeline.costs import OpTimes
from sim.pipeline.execute import P2P
from sim.results import metrics
from sim.run import run_schedule

# (F, B) pairs with F = B/2; W = B/2 and F&B = F + B make the table exact.
TIMES = [(1.0, 2.0), (1.25, 2.5), (0.7, 1.4), (3.0, 6.0)]


def _valid_ns(pp: int) -> list[int]:
    return [2 * pp, 2 * pp + 2, 3 * pp, 4 * pp + 6]  # even and >= 2*PP: valid for every schedule


@pytest.mark.parametrize("pp", [4, 8, 16])
@pytest.mark.parametrize("f,b", TIMES)
def test_dualpipe_table_bubbles(pp: int, f: float, b: float) -> None:
    w, fb = b / 2, f + b
    expected = {
        "1f1b": (pp - 1) * (f + b),
        "zb1p": (pp - 1) * (f + b - 2 * w),
        "dualpipe": (pp / 2 - 1) * (fb + b - 3 * w),
        "dualpipev": (pp / 2 - 1) * (fb + b - 3 * w),
    }
    for n in _valid_ns(pp):
        for name, bubble in expected.items():
            m = metrics(run_schedule(name, pp, n, OpTimes.uniform(pp, f, b, w, fb)))
            assert max(m.bubble) == pytest.approx(bubble, rel=1e-9, abs=1e-9), (name, pp, n)


@pytest.mark.parametrize("pp", [4, 8, 16])
def test_dualpipe_table_memory_and_parameters(pp: int) -> None:
    expected = {
        "1f1b": (pp, 1.0, pp),
        "zb1p": (pp, 1.0, pp),
        "dualpipe": (pp + 1, 2.0, pp),
        "dualpipev": (pp + 1, 2.0, pp // 2),
    }
    for n in _valid_ns(pp):
        for name, (peak, params, devices) in expected.items():
            m = metrics(run_schedule(name, pp, n, OpTimes.uniform(pp, 1.0, 2.0, 1.0, 3.0)))
            assert max(m.peak_activations) == peak, (name, pp, n)
            assert m.param_copies == params
            assert m.devices == devices


@pytest.mark.parametrize("pp", [2, 4, 8])
@pytest.mark.parametrize("v", [2, 3, 4])
def test_interleaved_bubble_is_1f1b_over_v(pp: int, v: int) -> None:
    f, b = 1.0, 2.0
    for n in (pp, 2 * pp, 2 * pp + 3, 5 * pp - 1):
        m = metrics(run_schedule("interleaved-1f1b", pp, n, OpTimes.uniform(pp, f, b, 1.0), virtual_stages=v))
        assert max(m.bubble) == pytest.approx((pp - 1) * (f + b) / v), (pp, v, n)
        assert m.param_copies == pytest.approx(1.0)


@pytest.mark.parametrize("pp,n", [(4, 8), (8, 20), (16, 120)])
def test_1f1b_step_time_closed_form(pp: int, n: int) -> None:
    f, b = 1.25, 2.5
    m = metrics(run_schedule("1f1b", pp, n, OpTimes.uniform(pp, f, b, 1.0)))
    assert m.step_time == pytest.approx((n + pp - 1) * (f + b))
    assert all(busy == pytest.approx(n * (f + b)) for busy in m.busy)


@pytest.mark.parametrize("pp", [2, 3, 5, 8])
def test_one_microbatch_pays_alpha_beta_on_every_hop(pp: int) -> None:
    """A single micro-batch crosses PP-1 links forward and PP-1 back: latency + bytes/bandwidth each."""
    f, b, latency, nbytes, bw = 1.0, 2.0, 0.3, 5e6, 1e7
    m = metrics(run_schedule("1f1b", pp, 1, OpTimes.uniform(pp, f, b, 1.0), P2P(nbytes, bw, latency)))
    assert m.step_time == pytest.approx(pp * (f + b) + 2 * (pp - 1) * (latency + nbytes / bw))


@pytest.mark.parametrize("pp", [4, 8, 16])
@pytest.mark.parametrize("f,b,w", [(1.5, 2.5, 1.25), (2.0, 2.0, 1.0), (1.0, 2.0, 0.5), (3.0, 2.0, 0.2)])
def test_zb1p_bubble_formula_holds_whenever_w_fits_under_f(pp: int, f: float, b: float, w: float) -> None:
    """ZB-H1's (PP-1)(F+B-2W) needs only W <= F: each delayed W then fits a cool-down gap."""
    m = metrics(run_schedule("zb1p", pp, 3 * pp, OpTimes.uniform(pp, f, b, w)))
    assert max(m.bubble) == pytest.approx((pp - 1) * (f + b - 2 * w))


@pytest.mark.parametrize("f,b,w,fb", [(1.5, 2.5, 1.25, 4.0), (1.0, 2.0, 0.6, 2.4), (0.5, 2.0, 1.0, 2.5)])
def test_dualpipe_off_the_exact_point_differs_from_the_formula(f: float, b: float, w: float, fb: float) -> None:
    """With F != W or W != B/2 or F&B != F+B the timed run departs from the closed form."""
    pp, n = 8, 20
    for name in ("dualpipe", "dualpipev"):
        m = metrics(run_schedule(name, pp, n, OpTimes.uniform(pp, f, b, w, fb)))
        formula = (pp / 2 - 1) * (fb + b - 3 * w)
        assert abs(max(m.bubble) - formula) > 1e-3 * formula, name


@pytest.mark.parametrize("pp", [2, 4, 8])
@pytest.mark.parametrize("v", [1, 2, 3])
def test_fill_drain_and_interleaved_zero_bubble_closed_forms(pp: int, v: int) -> None:
    """Uniform op times, N >= PP, no transfer cost. GPipe: bubble (PP-1)(F+B), the 1F1B bubble, and
    every micro-batch held at the peak (N). Looped BFS: each chunk's fill and drain cost (PP-1)(F+B)/v,
    as interleaved 1F1B, with N micro-batches held. Interleaved zero bubble: ZB1P's (PP-1)(F+B-2W)
    over v (the I of a chunk is (B-W)/v, the Ws fill the cool-down)."""
    f, b, w = 1.0, 2.0, 0.75
    times = OpTimes.uniform(pp, f, b, w)
    for n in (pp, 2 * pp, 2 * pp + 3, 4 * pp):
        if v == 1:
            m = metrics(run_schedule("gpipe", pp, n, times))
            assert max(m.bubble) == pytest.approx((pp - 1) * (f + b)), (pp, n)
            assert max(m.peak_activations) == n
        m = metrics(run_schedule("looped-bfs", pp, n, times, virtual_stages=v))
        assert max(m.bubble) == pytest.approx((pp - 1) * (f + b) / v), (pp, v, n)
        assert max(m.peak_activations) == pytest.approx(n)
        m = metrics(run_schedule("interleaved-zb", pp, n, times, virtual_stages=v))
        assert max(m.bubble) == pytest.approx((pp - 1) * (f + b - 2 * w) / v), (pp, v, n)


@pytest.mark.parametrize("devices", [1, 2, 4, 8])
def test_zbv_bubble_is_the_first_inputs_arrival_when_f_i_w_are_equal(devices: int) -> None:
    """ZB-V with T_F = T_I = T_W (the paper's zero-bubble condition, section 6): device d idles only
    while its first micro-batch crosses the d devices before it, d x F; the steady state and the
    cool-down have no bubble, so the largest bubble is (D-1) F, whatever N (>= 2D-1)."""
    pp, f = 2 * devices, 1.0
    times = OpTimes.uniform(pp, f, 2 * f, f)  # I = B - W = F
    for n in (2 * devices - 1, 2 * devices, 3 * devices + 1, 6 * devices):
        m = metrics(run_schedule("zbv", pp, n, times))
        assert max(m.bubble) == pytest.approx((devices - 1) * f), (devices, n)
        assert m.devices == devices and m.param_copies == 2.0  # two stages per device, as DualPipeV


@pytest.mark.parametrize("pp", [1, 2, 4, 8])
@pytest.mark.parametrize("v", [1, 2, 4])
def test_combined_1f1b_is_interleaved_1f1b_with_its_steady_pairs_overlapped(pp: int, v: int) -> None:
    """interleaved-1f1b-overlap runs the base schedule's actions in the base order, an F and the B after
    it merged wherever the pair does not wait for itself; with enough micro-batches every device but the
    last has overlapped pairs (the last's F(k) and B(k) are one micro-batch's)."""
    from sim.pipeline.ops import Op
    from sim.pipeline.schedules import build_schedule

    for n in (pp, 2 * pp, 3 * pp + 1, 4 * pp):
        base = build_schedule("interleaved-1f1b", pp, n, v)
        paired = build_schedule("interleaved-1f1b-overlap", pp, n, v)
        for d in range(pp):
            flat = [str(a) for action in paired.actions[d] for a in action.atoms()]
            assert flat == [str(a) for a in base.actions[d]], (pp, v, n, d)
        if n >= 2 * pp and pp > 1:
            assert all(any(a.op is Op.FB for a in paired.actions[d]) for d in range(pp - 1)), (pp, v, n)
