"""DeepSeek's H800 trace beside the twin: the F&B chunk pair (``twin check trace``) and its kernels
one by one (the table of docs/calibration.md).

The trace (deepseek-ai/profile-data, ``../shared/reference/deepseek-v3/profile-data-train.json``) is one
DualPipe F&B chunk pair of 4 MoE layers at EP64 with 20 SMs for DeepEP. It is read by ``calibrate``
(:mod:`calibrate.trace_figures`), which hands its figures in: ``sim`` never imports ``calibrate``.

* :func:`validate_trace`: the same pair timed by the chunk model (:func:`sim.chunk.build.build_chunk`,
  DeepSeek's configuration by default) with the given profile and with the datasheet profile, beside
  the trace's span, mean GPU wall time of each of the 10 annotations per layer, and stream fractions
  (busy compute, busy communication, communication hidden under compute; :mod:`sim.chunk.intervals`).
  The interference factors and DeepEP's notify wait were derived from this trace, so this checks the
  op times and the stream model, not those constants.
* :func:`kernel_rows`: every GEMM, attention and memory-bound op of a layer, its trace time (kernels
  matched to the layer model's ops by order, mean alone-equivalent time over the 4 layers at 112 SMs)
  beside what the profile of the H100 measurements alone predicts for the same shape on 112 SMs (the
  H800 keeps the H100's SMs, clocks and HBM), and the datasheet profile's prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.intervals import stream_fractions
from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.timer import ChunkResult
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import DEEPSEEK_COMPUTE_SMS
from sim.hardware.profile import DEFAULT_PROFILE, PROFILES_DIR, load_profile
from sim.model.ops import Operator

DATASHEET = PROFILES_DIR / "h800-datasheet.json"
H100_MEASURED = PROFILES_DIR / "h100-sxm-measured.json"
# The trace's annotations in its launch order; each is a mean GPU wall time per layer.
ANNOTATIONS = (
    "combine(B)",
    "attn(F)",
    "mlp(B)",
    "dispatch(F)",
    "dispatch(B)",
    "mlp(W)",
    "mlp(F)",
    "attn(B)",
    "attn(W)",
    "combine(F)",
)
FRACTIONS = ("compute_busy_fraction", "comm_busy_fraction", "hidden_comm_fraction")


def figures(result: ChunkResult) -> dict[str, Any]:
    """Span, mean per-annotation GPU wall times and stream fractions of a timed chunk (ms)."""
    walls = result.annotation_walls()
    fr = stream_fractions(result.stream_spans()) if result.tasks else {}
    streams = {
        s: sum(t.end - t.start for t in result.tasks if t.stream == s and t.end > t.start) * 1e3
        for s in ("compute", "wgrad", "comm")
    }
    return {
        "span_ms": result.kernel_span_s * 1e3,
        "chunk_ms": result.span_s * 1e3,
        "stream_busy_ms": streams,
        "annotations": {a: walls[a] * 1e3 for a in ANNOTATIONS if a in walls}
        | {a: v * 1e3 for a, v in walls.items() if a not in ANNOTATIONS},
        "compute_busy_fraction": fr.get("compute_busy_fraction", 0.0),
        "comm_busy_fraction": fr.get("comm_busy_fraction", 0.0),
        "hidden_comm_fraction": fr.get("hidden_comm_fraction", 1.0),
    }


def pair(config: ChunkConfig) -> ChunkResult:
    """The F&B pair of ``config``'s stage with itself (the traced chunk pair)."""
    setup = build_chunk(config)
    return setup.timer.pair(setup.stage, setup.stage)


def validate_trace(
    reference: Mapping[str, Any], profile: Path = DEFAULT_PROFILE, datasheet: Path = DATASHEET
) -> dict[str, Any]:
    """DeepSeek's trace configuration predicted with ``profile`` (and with the datasheet profile),
    side by side with the trace's ``reference`` figures (:func:`calibrate.trace_figures.trace_figures`),
    in the JSON layout of ``twin check trace --format json`` (ms and fractions)."""
    sim = figures(pair(ChunkConfig(profile=profile)))
    _check_finite(sim, profile)
    sheet = figures(pair(replace(ChunkConfig(), profile=datasheet)))
    result: dict[str, Any] = {
        "span_ms": {"sim": sim["span_ms"], "trace": reference["span_ms"], "datasheet": sheet["span_ms"]},
        "annotations": {
            a: {
                "sim_ms": sim["annotations"][a],
                "trace_ms": reference["annotations"][a],
                "datasheet_ms": sheet["annotations"][a],
            }
            for a in ANNOTATIONS
        },
    }
    for key in FRACTIONS:
        result[key] = {"sim": sim[key], "trace": reference[key], "datasheet": sheet[key]}
    result["profile"] = str(profile)
    return result


def _check_finite(sim: dict[str, Any], profile: Path) -> None:
    """Refuse figures of ``profile`` that overflow (a peak of 1e-300: times of 1e300 s, in which a
    short annotation's duration is lost and it drops out of the figures), naming the profile and its
    values at the edge of floating point (:func:`sim.run.check_figures_finite`)."""
    import json

    from sim.run import TRACE_US, check_figures_finite

    lost = {a: float("inf") for a in ANNOTATIONS if a not in sim["annotations"]}
    shown = {**sim, "annotations": {**sim["annotations"], **lost}}
    inputs = json.loads(Path(profile).read_text())
    check_figures_finite(str(profile), inputs, shown, sim["span_ms"] * TRACE_US)


@dataclass(frozen=True)
class KernelRow:
    """One compute op of the traced layer: its trace time and two predictions (microseconds)."""

    annotation: str
    op: str
    kind: str  # gemm, attention or memory
    shape: str
    trace_us: float
    h100_us: float  # the profile of the H100 measurements alone
    datasheet_us: float


def _shape(op: Operator) -> str:
    if op.kind == "gemm":
        return f"{op.dtype} {op.m}x{op.n}x{op.k}"
    if op.kind == "attention":
        return f"{op.phase} {op.heads}h s{op.seq} {op.qk_dim}/{op.v_dim}"
    return f"{op.kernel} {op.nbytes / 1e6:.0f} MB"


def kernel_rows(
    means: Mapping[tuple[str, str], tuple[Operator, float]], sms: int = DEEPSEEK_COMPUTE_SMS
) -> list[KernelRow]:
    """Every compute op of ``means`` ((annotation, op name) -> (op, mean trace seconds), as
    :func:`calibrate.trace_calibration.op_means` gives them) predicted on ``sms`` SMs by the H100-based
    and the datasheet profiles; communication and small ops are left out."""
    h100 = OpCoster(CostModel(load_profile(H100_MEASURED)), sms, ChunkParams())
    sheet = OpCoster(CostModel(load_profile(DATASHEET)), sms, ChunkParams())
    out = []
    for (ann, name), (op, t) in means.items():
        if op.stream == "comm" or op.kind == "small":
            continue
        out.append(
            KernelRow(ann, name, op.kind, _shape(op), t * 1e6, h100.kernel_time(op) * 1e6, sheet.kernel_time(op) * 1e6)
        )
    return out
