"""DeepSeek's H800 trace as the figures the twin is compared with (no torch).

The trace reader's definitions (:mod:`calibrate.trace`, :mod:`calibrate.trace_calibration`), handed to
:mod:`sim.experiments.trace_validation` as data (``sim`` never imports ``calibrate``):

* :func:`trace_figures`: the F&B chunk pair's kernel span, the mean GPU wall time per layer of each
  annotation (compute annotations on the compute streams 7 and 23, the others on DeepEP's stream 27)
  and the stream fractions (busy compute, busy communication, hidden communication);
* :func:`kernel_means`: every op of a layer matched to its kernels by order, mean alone-equivalent
  time over the 4 layers (the interference factors of :class:`sim.chunk.overheads.ChunkParams` undone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calibrate.trace import annotation_timings, mean_by_name
from calibrate.trace_calibration import match_ops, op_means, trace_stream_spans
from sim.chunk.intervals import stream_fractions
from sim.chunk.overheads import ChunkParams
from sim.chunk.timer import COMPUTE_ANNOTATIONS
from sim.errors import ScenarioError
from sim.experiments.trace_validation import ANNOTATIONS, FRACTIONS
from sim.model.ops import Operator

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO.parent / "shared" / "reference" / "deepseek-v3" / "profile-data-train.json"


def _require(trace: Path) -> None:
    if not trace.is_file():
        raise ScenarioError("", "DeepSeek's trace is not there (it comes with ../shared)", str(trace))


def trace_figures(trace: Path = TRACE) -> dict[str, Any]:
    """Span (ms), mean wall time per layer of each of :data:`~sim.experiments.trace_validation.ANNOTATIONS`
    (ms) and the stream fractions, read from DeepSeek's trace."""
    _require(trace)
    means = mean_by_name(annotation_timings(trace))
    fr = stream_fractions(trace_stream_spans(trace))
    ann = {}
    for name in ANNOTATIONS:
        t = means[name]
        ann[name] = (t.compute_wall_us if name in COMPUTE_ANNOTATIONS else t.comm_wall_us) / 1e3
    return {"span_ms": fr["span"] / 1e3, "annotations": ann} | {key: fr[key] for key in FRACTIONS}


def kernel_means(trace: Path = TRACE) -> dict[tuple[str, str], tuple[Operator, float]]:
    """(annotation, op name) -> (op, mean alone-equivalent seconds) of every op of DeepSeek's traced layers."""
    _require(trace)
    return op_means(match_ops(trace), ChunkParams())
