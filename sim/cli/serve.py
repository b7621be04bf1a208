"""``twin serve SCENARIO``: simulate a serving deployment for the scenario's traffic and write its
outputs to ``DIR/<scenario name>/``: ``summary.json`` (the figures, as ``--format json`` prints
them), ``requests.parquet`` (one row per request: arrival, lengths, when its prefill started, first
token, when it joined a decode batch, finish, TTFT, TPOT), ``trace.json`` (every forward of every
unit, and the KV-cache occupancy, for Perfetto) and ``report.html`` / ``report.md`` with its plots.
A scenario with ``serve.floor`` prints the ISCA'25 decode floor beside the paper's figures (and
simulates traffic only if it gives some)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sim import __version__
from sim.cli.common import Format, Quiet, RunFormat, RunOutput, out, status
from sim.outputs import check_name_fits, check_output_folder, owned_outputs, write_parquet


def serve_cmd(
    scenario: Annotated[Path, typer.Argument(help="serve scenario YAML (scenarios/serve/)")],
    output: RunOutput = None,
    fmt: RunFormat = Format.table,
    quiet: Quiet = False,
) -> None:
    """Simulate a serving deployment (prefill and decode pools, or co-located) for the scenario's
    traffic: TTFT and TPOT percentiles, tokens per second per node, goodput under the SLOs, KV-cache
    occupancy, busy fractions, a Perfetto timeline and the HTML report."""
    from sim.run import TRACE_US, check_finite
    from sim.serve.deployment import build, simulate_serve
    from sim.serve.floor import decode_floor
    from sim.serve.spec import load_serve

    sc = load_serve(scenario)
    if output is None and fmt is not Format.json:
        output = Path("out")
    if output is not None:
        check_name_fits(sc.name, output, "the outputs go to", str(scenario))
        writes: tuple[str, ...] = ("summary.json",)
        if sc.serve.traffic is not None:  # the outputs of a run of traffic, the report's charts beside
            from reports.serve_report import CHARTS

            served = ("requests.parquet", "trace.json", "report.html", "report.md", *(f"{c}.png" for c in CHARTS))
            writes += served
        check_output_folder(output / sc.name, owner="serve", writes=writes)
    with status("building the deployment", quiet) as spinner:
        d = build(sc)
        summary: dict[str, Any] = {"scenario": sc.name, "twin_version": __version__}
        result = None
        if sc.serve.floor is not None:
            summary["decode_floor"] = decode_floor(sc, d)
        if sc.serve.traffic is not None:
            total = sc.serve.duration_s
            spinner.update(f"simulating {total:g} s of traffic")

            def progress(t: float) -> None:
                where = f"{t:,.0f} of {total:g} s" if t <= total else f"draining the queues at {t:,.0f} s"
                spinner.update(f"simulating {total:g} s of traffic: {where}")

            result = simulate_serve(sc, d, None if quiet else progress)
            summary = {**result.to_dict(), **summary}
        spans = max((s.end_s for s in result.spans), default=0.0) if result is not None else 0.0
        check_finite(sc, summary, spans * TRACE_US)
        if output is not None:
            spinner.update("writing the outputs")
            _write(output / sc.name, sc, summary, result)
    if fmt is Format.json:
        print(json.dumps(summary))
    elif not quiet:
        _print(summary)
        if output is not None:
            files = "summary.json, requests.parquet, trace.json, report.html, report.md" if result else "summary.json"
            out.print(f"written to {output / sc.name}/ ({files})", soft_wrap=True, markup=False)


def _write(target: Path, sc: Any, summary: dict[str, Any], result: Any) -> None:
    with owned_outputs(target, "serve") as tmp:
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        if result is None:
            return
        import pandas as pd

        r = result.requests
        frame = pd.DataFrame(
            {
                "arrival_s": r.arrival_s,
                "input_tokens": r.input_tokens,
                "cached_tokens": r.cached_tokens,
                "output_tokens": r.output_tokens,
                "prefill_start_s": result.prefill_start_s,
                "first_token_s": result.first_token_s,
                "decode_admit_s": result.decode_admit_s,
                "finish_s": result.finish_s,
                "ttft_s": result.ttft_s,
                "tpot_s": result.tpot_s,
            }
        )
        write_parquet(frame, tmp / "requests.parquet", {"twin_version": __version__, "scenario": sc.name})
        from sim.serve.timeline import perfetto_json

        (tmp / "trace.json").write_text(perfetto_json(result, sc.name))
        from reports.serve_report import serve_document

        doc = serve_document(result, sc.description)
        doc.write_html(tmp / "report.html")
        doc.write_markdown(tmp)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:,.1f}"


def _print(summary: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    if "ttft_s" in summary:
        t = Table(title=Text(f"{summary['scenario']}: {summary['simulated_s']:.0f} s simulated"), title_justify="left")
        for col in ("figure", "p50", "p90", "p99"):
            t.add_column(col, justify="left" if col == "figure" else "right")
        t.add_row("TTFT (ms)", *(_ms(summary["ttft_s"][p]) for p in ("p50", "p90", "p99")))
        t.add_row("TPOT (ms)", *(_ms(summary["tpot_s"][p]) for p in ("p50", "p90", "p99")))
        out.print(t)
        req = summary["requests"]
        split = "colocated" not in summary["pools"]  # (a co-located pool's nodes do both)
        pre, dec = ("prefill node", "decode node") if split else ("co-located node", "co-located node")
        out.print(
            f"input {summary['input_tokens_per_s_per_node']:,.0f} tokens/s per {pre} | output "
            f"{summary['output_tokens_per_s_per_node']:,.0f} tokens/s per {dec} | goodput "
            f"{summary['goodput_requests_per_s']:,.2f} requests/s (TTFT <= {summary['slo']['ttft_s']:g} s, "
            f"TPOT <= {summary['slo']['tpot_s']:g} s) | {req['completed']:,} of {req['arrived']:,} requests done"
        )
        for role, p in summary["pools"].items():
            out.print(
                f"{role}: {p['units']} x {p['gpus_per_unit']} GPUs, busy {p['busy']:.0%} "
                f"(compute {p['compute_busy']:.0%}, all-to-all {p['comm_busy']:.0%}), {p['forwards']:,} forwards "
                f"of {p['shapes']} shapes, weights "
                f"{p['weights_GiB']:.1f} GiB, KV {p['kv_tokens_per_gpu']:,} tokens per GPU, "
                f"{p['redundant_experts']} redundant experts"
            )
    for role, c in summary.get("capacity", {}).items():
        parts = []
        if "input_tokens_per_s_per_node" in c:
            parts.append(f"{c['input_tokens_per_s_per_node']:,.0f} input tokens/s per node")
        if "output_tokens_per_s_per_node" in c:
            limit = "max_batch" if c["batch_limit"] == "max_batch" else "all its KV cache holds"
            parts.append(
                f"{c['output_tokens_per_s_per_node']:,.0f} output tokens/s per node "
                f"(TPOT {c['tpot_at_capacity_s'] * 1e3:.1f} ms at {c['decode_batch']:,} requests per DP rank, {limit})"
            )
        out.print(f"{role} flat out (batch limit): {', '.join(parts)}")
    floor = summary.get("decode_floor")
    if floor:
        t = Table(
            title=f"decode floor: {floor['tokens_per_gpu']} tokens per GPU, {floor['experts_per_token']} experts per "
            f"token, {floor['layers']} layers x 2 micro-batches",
            title_justify="left",
        )
        cols = (
            "fabric",
            "GB/s",
            "dispatch us",
            "combine us",
            "round us",
            "TPOT ms",
            "tokens/s",
            "paper round us",
            "paper TPOT ms",
        )
        for col in cols:
            t.add_column(col, justify="left" if col == "fabric" else "right")
        for name, f in floor["fabrics"].items():
            t.add_row(
                name,
                f"{f['link_GBps']:g}",
                f"{f['dispatch_us']:.1f}",
                f"{f['combine_us']:.1f}",
                f"{f['round_us']:.1f}",
                f"{f['tpot_floor_ms']:.2f}",
                f"{f['tokens_per_s_per_user']:.0f}",
                f"{f['paper_round_us']:g}",
                f"{f['paper_tpot_ms']:g}",
            )
        out.print(t)
