"""The report of a serving run (reports/serve_report.py): its sections, tables that carry the run's
figures (ServeResult.to_dict(), formatted), a self-contained HTML with the description literal, and
figures that hold on runs with no finished request, no TPOT, no KV sample or no request at all."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest import mock

import pytest

from reports.document import Document
from reports.serve_report import SECTIONS, serve_document
from sim.serve.metrics import ServeResult
from tests.unit.serve_runs import SPLIT, no_request_run, run, split_run


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> ServeResult:
    return split_run(tmp_path_factory.mktemp("serve"))


FIGURES = ["latency", "throughput", "kv-cache", "gpu-busy"]
DESCRIPTION = "A <script>alert('x')</script> deployment & its <b>traffic</b>"


@pytest.fixture(scope="module")
def split_doc(split: ServeResult) -> Document:
    return serve_document(split, DESCRIPTION)


def _tables(doc: Document) -> list[tuple[list[str], list[list[str]]]]:
    return [(b.headers, b.rows) for b in doc.blocks if b.kind == "table"]


def _table(doc: Document, *headers: str) -> dict[str, list[str]]:
    """The one table whose headers start with ``headers``, as {first cell: the other cells}."""
    (rows,) = [rows for h, rows in _tables(doc) if tuple(h[: len(headers)]) == headers]
    return {r[0]: r[1:] for r in rows}


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:,.2f}"


def _check_document(doc: Document, result: ServeResult) -> str:
    """Every section and figure; the HTML and the Markdown written (returns the HTML)."""
    assert doc.headings() == [(2, s) for s in SECTIONS]
    assert doc.figures() == FIGURES
    html = doc.to_html()
    assert "http" not in html.lower()
    assert doc.to_markdown().startswith(f"# Serving: {result.scenario}")
    return html


def test_sections_and_figures(split: ServeResult, split_doc: Document, tmp_path: Path) -> None:
    doc = split_doc
    assert doc.title == f"Serving: {split.scenario}" and doc.subtitle == DESCRIPTION
    html = _check_document(doc, split)
    # the description is literal text: escaped, no tag of its own
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in html and "<script" not in html and "<b>" not in html
    assert "&amp; its" in html
    written = doc.write_markdown(tmp_path)
    assert {p.name for p in written} == {"report.md", *(f"{f}.png" for f in FIGURES)}
    assert "docs/serving.md" in (tmp_path / "report.md").read_text()


def test_summary_carries_the_figures(split: ServeResult, split_doc: Document) -> None:
    d = split.to_dict()
    doc = split_doc
    latency = _table(doc, "latency (ms)")
    for key, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
        p = d[key]
        assert latency[name] == [_ms(p["p50"]), _ms(p["p90"]), _ms(p["p99"]), _ms(d["slo"][key])]
    assert latency["TTFT"][-1] == "5,000.00" and latency["TPOT"][-1] == "100.00"  # the default SLOs
    summary = _table(doc, "figure", "value")
    req = d["requests"]
    assert summary["input tokens/s per node (prefill pool)"] == [f"{d['input_tokens_per_s_per_node']:,.0f}"]
    assert summary["output tokens/s per node (decode pool)"] == [f"{d['output_tokens_per_s_per_node']:,.0f}"]
    assert summary["goodput (req/s meeting both SLOs)"] == [f"{d['goodput_requests_per_s']:,.2f}"]
    assert summary["requests arrived"] == [f"{req['arrived']:,}"] and req["arrived"] > 100
    assert summary["requests completed"] == [f"{req['completed']:,}"]
    assert summary["requests unfinished"] == [f"{req['unfinished']:,}"]
    assert summary["simulated seconds (arrivals and drain)"] == [f"{d['simulated_s']:,.1f}"]
    met = d["requests"]["met_slo"]
    assert met == round(d["goodput_requests_per_s"] * d["duration_s"])
    assert summary["requests meeting both SLOs"][0].startswith(f"{met:,} (")
    assert summary["mean requests in the system"] == [f"{d['littles_law']['mean_in_system']:,.1f}"]


def test_pool_table_carries_the_figures(split: ServeResult, split_doc: Document) -> None:
    doc = split_doc
    assert [h for h, _ in _tables(doc) if h[0] == "figure" and len(h) > 2] == [["figure", "prefill", "decode"]]
    pools = _table(doc, "figure", "prefill")
    d = split.to_dict()["pools"]
    roles = ["prefill", "decode"]
    assert pools["units"] == [str(d[r]["units"]) for r in roles] == ["2", "2"]
    assert pools["GPUs per unit"] == ["16", "32"]
    assert pools["forwards"] == [f"{d[r]['forwards']:,}" for r in roles]
    assert pools["distinct forward shapes timed"] == [str(d[r]["shapes"]) for r in roles]
    for name, key in (("busy (forwards running)", "busy"), ("compute busy (slowest GPU)", "compute_busy")):
        assert pools[name] == [f"{d[r][key]:.1%}" for r in roles]
    assert pools["communication busy"] == [f"{d[r]['comm_busy']:.1%}" for r in roles]
    assert pools["weights per GPU, GiB"] == [f"{d[r]['weights_GiB']:,.1f}" for r in roles]
    assert pools["KV-cache tokens per GPU"] == [f"{d[r]['kv_tokens_per_gpu']:,}" for r in roles]
    assert pools["redundant experts per unit"] == [str(d[r]["redundant_experts"]) for r in roles]
    capacity = split.to_dict()["capacity"]
    assert pools["flat out: input tokens/s per node"] == [
        f"{capacity['prefill']['input_tokens_per_s_per_node']:,.0f}",
        "-",
    ]
    assert pools["flat out: output tokens/s per node"] == [
        "-",
        f"{capacity['decode']['output_tokens_per_s_per_node']:,.0f}",
    ]
    assert pools["flat out: TPOT, ms"] == ["-", _ms(capacity["decode"]["tpot_at_capacity_s"])]
    kv = _table(doc, "unit")
    assert list(kv) == ["decode/0", "decode/1"]
    for key, row in kv.items():
        t, used = split.kv_occupancy[key]
        assert row == [f"{len(t):,}", f"{t[-1]:,.1f}", f"{used.mean():.1%}", f"{used.max():.1%}"]


def test_one_output_token(tmp_path: Path) -> None:
    """Every request of one output token: no TPOT (all NaN), no decode step, so no KV sample. (A trace
    whose rows all have one output token gives this; fixed lengths of one are refused, naming the decode
    pool that never runs, so the refusal is lifted here to build the same run.)"""
    serve = "  duration_s: 5\n  traffic: {rate_per_s: 10, input_tokens: 500, output_tokens: 1}\n"
    with mock.patch("sim.serve.deployment.one_token_keys_used"):
        result = run(tmp_path, "one", serve + SPLIT)
    assert len(result.requests) > 10 and result.completed == len(result.requests)
    assert all(len(t) == 0 for t, _ in result.kv_occupancy.values()) and result.to_dict()["tpot_s"]["p50"] is None
    doc = serve_document(result)
    _check_document(doc, result)
    assert _table(doc, "latency (ms)")["TPOT"] == ["-", "-", "-", "100.00"]
    assert _table(doc, "unit") == {"decode/0": ["0", "-", "-", "-"], "decode/1": ["0", "-", "-", "-"]}


def test_no_request_finishes(tmp_path: Path) -> None:
    """Outputs too long to finish within the simulated span: first tokens, no completion."""
    serve = "  duration_s: 2\n  traffic: {rate_per_s: 5, input_tokens: 500, output_tokens: 100000}\n"
    result = run(tmp_path, "none", serve + SPLIT)
    assert result.completed == 0 and len(result.requests) > 0
    doc = serve_document(result)
    _check_document(doc, result)
    summary = _table(doc, "figure", "value")
    assert summary["requests completed"] == ["0"]
    assert summary["requests unfinished"] == [f"{len(result.requests):,}"]
    assert any(b.kind == "paragraph" and "did not finish" in b.text for b in doc.blocks)


def test_no_request(tmp_path: Path) -> None:
    """No request arrived (and a zero-length span): every section still there, '-' for the latencies."""
    result = no_request_run(tmp_path, "zero", f"  duration_s: 1\n  traffic: {{rate_per_s: 0.001}}\n{SPLIT}")
    assert len(result.requests) == 0 and result.end_s == 0
    doc = serve_document(result)
    _check_document(doc, result)
    assert _table(doc, "latency (ms)")["TTFT"] == ["-", "-", "-", "5,000.00"]
    assert _table(doc, "figure", "value")["requests arrived"] == ["0"]


def test_colocated_and_bare(tmp_path: Path) -> None:
    """A co-located pool counts both throughputs on its nodes; a result with no KV series and no GPU
    figures (built by hand) still renders; a cut timeline is said."""
    serve = (
        "  duration_s: 3\n  timeline_spans: 30\n"
        "  traffic: {rate_per_s: 20, input_tokens: 1000, output_tokens: 50}\n"
        "  colocated: {nodes: 8, unit_nodes: 4, experts_per_gpu: 9, kernels: low_latency}\n"
    )
    result = run(tmp_path, "co", serve)
    doc = serve_document(result)
    _check_document(doc, result)
    summary = _table(doc, "figure", "value")
    assert "input tokens/s per node (co-located pool)" in summary
    assert "output tokens/s per node (co-located pool)" in summary
    assert any(b.kind == "paragraph" and "first 30 of the run" in b.text for b in doc.blocks)
    pools = {k: dataclasses.replace(p, gpu_compute_busy=[]) for k, p in result.pools.items()}
    bare = dataclasses.replace(result, kv_occupancy={}, pools=pools)
    doc = serve_document(bare)
    _check_document(doc, bare)
    assert _table(doc, "unit") == {}
