"""The validation tables render given data (nothing simulated here): DeepEP's table, the trace-kernel
table and docs/validation.md's sections, each from hand-made rows."""

from __future__ import annotations

import pytest

from reports.deepep_table import document as deepep_document
from reports.document import Document
from reports.trace_kernels import document as kernel_document
from reports.validation import contention_section, dualpipe_section, gemm_section, model_section, step_section
from sim.experiments.deepep_table import DeepEPRow
from sim.experiments.published import BubbleRow, Bubbles, ContentionRow, Figure, GemmCheck, StepCheck
from sim.experiments.trace_validation import KernelRow


def _lines(build) -> list[str]:  # type: ignore[no-untyped-def]
    """The Markdown lines a section adds to a fresh document (its title and blank line dropped)."""
    doc = Document("t")
    build(doc)
    return doc.to_markdown().splitlines()[2:]


def test_deepep_row() -> None:
    row = DeepEPRow(64, "RDMA", 20, 51.0, 51.0, 55.0, 50.0, 1000.4, 2000.6)
    lines = deepep_document([row]).to_markdown().splitlines()
    assert lines[0].startswith("# DeepEP") and lines[2].startswith("| EP | link | SMs |") and len(lines) == 5
    assert lines[4] == "| 64 | RDMA | 20 | 51.0 | 51 | +0% | 55.0 | 50 | +10% | 1000 | 2001 |"


def test_kernel_rows_and_totals() -> None:
    rows = [
        KernelRow("mlp(F)", "up", "gemm", "fp8 1x2x3", 100.0, 110.0, 80.0),
        KernelRow("mlp(F)", "down", "gemm", "fp8 3x2x1", 100.0, 70.0, 80.0),
        KernelRow("attn(F)", "core", "attention", "fwd", 50.0, 50.0, 40.0),
    ]
    lines = kernel_document(rows).to_markdown().splitlines()[2:]
    assert lines[2] == "| mlp(F) | up | fp8 1x2x3 | 100 | 110 | +10% | 80 | -20% |"
    assert lines[5] == "| **all gemm** |  | 2 ops | 200 | 180 | -10% (median abs 20%) | 160 | -20% |"
    assert lines[6].startswith("| **all attention** |  | 1 ops |") and len(lines) == 7  # no memory ops: no row


def test_validation_sections() -> None:
    model = _lines(lambda d: model_section(d, (Figure("parameters", "V3 report", 671e9, "671B", 680e9, 1e9, "B"),)))
    assert model[4] == f"| parameters | V3 report | 671B | 680.0B | {680 / 671 - 1:+.1%} |"
    pub = 180e3
    step = StepCheck((Figure("h", "s", pub, "180.0K", 190e3, 1e3, "K"),) * 2, 15360, 4096, 21.0, 0.37, 0.415)
    text = "\n".join(_lines(lambda d: step_section(d, step)))
    assert "| h | s | 180.0K | 190.0K | +5.6% |" in text and "15360 x 4096 tokens takes 21.00 s" in text
    bubbles = _lines(
        lambda d: dualpipe_section(d, Bubbles(16, 40, (BubbleRow("1f1b", 45.0, 45.0), BubbleRow("x", 0.0, 0.0))))
    )
    assert bubbles[0] == "## Pipeline bubbles: V3 report Table 2 (PP 16, 40 micro-batches)"
    assert bubbles[-2:] == ["| 1f1b | 45 | 45 | +0.0% |", "| x | 0 | 0 | 0 |"]
    gemm = _lines(lambda d: gemm_section(d, GemmCheck("dev.json", 12, 0.05, -0.01)))[4]
    assert "`dev.json`, 12 shapes" in gemm and gemm.endswith("| median 5.0% (bias -1.0%) |")


def test_contention_section() -> None:
    row = ContentionRow("F", (20.0, 1.0, 2.0, 0.25), (21.0, 1.5, 2.5, 0.5), {"a@x": 10.0, "b@y": 2000.0})
    lines = _lines(lambda d: contention_section(d, (row,)))
    assert lines[0].startswith("## One network")
    assert "| F | 20.000 | 21.000 | +5.0% | 1.000 -> 1.500 | 2.000 -> 2.500 | 0.250 -> 0.500 |" in lines
    assert "| F | b@y 2,000, a@x 10 |" in lines  # largest loss first


def test_figure_error() -> None:
    assert Figure("f", "s", 250, "~250", 255).error == pytest.approx(0.02)
