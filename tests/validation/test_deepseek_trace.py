"""DeepSeek's real H800 trace (shared/reference/deepseek-v3/profile-data-train.json, deepseek-ai/
profile-data): our trace reader reproduces REFERENCE.md section 6's derived per-layer compute wall
times and span, and the default scenario's op times come from the chunk model checked against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibrate.trace import annotation_timings, kernel_span_us, mean_by_name
from sim.config import default_scenario_path, load_scenario
from tests.conftest import require_shared

TRACE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "deepseek-v3" / "profile-data-train.json"

# REFERENCE.md section 6, "mean per-layer compute wall times (us)", and the 129.0 ms span
REFERENCE_US = {"attn(F)": 4600, "mlp(F)": 4640, "mlp(B)": 5360, "mlp(W)": 5070, "attn(B)": 9540, "attn(W)": 2400}


@pytest.fixture(scope="module")
def means():  # type: ignore[no-untyped-def]
    require_shared(TRACE)
    return mean_by_name(annotation_timings(TRACE))


def test_reader_reproduces_reference_figures(means) -> None:  # type: ignore[no-untyped-def]
    for name, us in REFERENCE_US.items():
        assert means[name].compute_wall_us == pytest.approx(us, rel=0.005), name
    assert kernel_span_us(TRACE) / 1e3 == pytest.approx(129.0, abs=0.05)
    # DeepEP annotations launch no compute kernels; compute ones launch no DeepEP kernels
    assert means["dispatch(F)"].compute_wall_us == 0 and means["dispatch(F)"].comm_wall_us > 0
    assert means["attn(F)"].comm_wall_us == 0


def test_default_scenario_op_times_come_from_the_chunk_model(means) -> None:  # type: ignore[no-untyped-def]
    """The default scenario gives no op times: they come from the chunk model of a 4-layer stage. Its
    F&B pair is the trace's pair (within the chunk validation's 5%); its forward chunk alone is at
    least the trace's forward compute (the all-to-all is exposed when nothing overlaps it)."""
    from sim.run import op_times

    sc = load_scenario(default_scenario_path().parent / "schedule-comparison.yaml")
    assert sc.ops is None and sc.workload.layers_per_stage == 4
    times, chunk = op_times(sc)
    assert chunk is not None
    assert chunk.overlapped_ms == pytest.approx(kernel_span_us(TRACE) / 1e3, rel=0.05)
    forward_compute_ms = 4 * (means["attn(F)"].compute_wall_us + means["mlp(F)"].compute_wall_us) / 1e3
    assert chunk.forward_ms > forward_compute_ms
    assert times.fb is not None and times.fb[0] == pytest.approx(chunk.overlapped_ms / 1e3)


def test_shipped_h800_trace_profile_matches_a_fresh_import() -> None:
    require_shared(TRACE)
    from calibrate.profiles import profile_from_trace
    from sim.hardware.profile import load_profile

    shipped = load_profile(Path(__file__).resolve().parents[2] / "calibrate" / "profiles" / "h800-trace.json", "H800")
    fresh = profile_from_trace(TRACE)
    assert [(s.params, s.time_s) for s in shipped.samples] == [(s.params, s.time_s) for s in fresh.samples]
    by_name = {s.params["annotation"]: s.time_s for s in fresh.samples if s.params.get("stream") == "compute"}
    for name, us in REFERENCE_US.items():
        assert by_name[name] * 1e6 == pytest.approx(us, rel=0.005)
