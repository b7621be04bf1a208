"""Markdown report of a schedule comparison."""

from __future__ import annotations

from sim.results import ScheduleMetrics
from sim.run import RunResult


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def metrics_table(
    rows: tuple[ScheduleMetrics, ...] | list[ScheduleMetrics], unit: str = "ms", scale: float = 1e3
) -> str:
    head = (
        f"| schedule | devices | step time ({unit}) | max bubble ({unit}) | max bubble ratio "
        "| peak activations | param copies |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {m.name} | {m.devices} | {_fmt(m.step_time * scale)} | {_fmt(max(m.bubble) * scale)} "
        f"| {max(m.bubble_ratio):.3f} | {_fmt(max(m.peak_activations))} | {_fmt(m.param_copies)} |\n"
        for m in rows
    )
    return head + body


def schedule_report(result: RunResult, figures: dict[str, str]) -> str:
    """The report of ``twin run`` for a schedule-comparison scenario."""
    sc = result.scenario
    plan = sc.pipeline
    ops = sc.ops
    lines = [
        f"# Scenario `{sc.name}`",
        "",
        sc.description.strip(),
        "",
        f"PP = {plan.pp} model stages, {plan.microbatches} micro-batches, "
        f"{plan.virtual_stages} virtual stages for interleaved-1f1b. Op times per stage (ms): "
        f"F {ops.forward_ms}, B {ops.backward_ms}, W {ops.weight_ms}, F&B {ops.overlapped_ms or 'F + B (no overlap)'}. "
        f"P2P: {sc.p2p.activation_bytes:g} B per transfer at {sc.p2p.bandwidth_GBps:g} GB/s, "
        f"{sc.p2p.latency_us:g} us latency.",
        "",
        "## Results",
        "",
        metrics_table(result.metrics),
        "Bubble = step time - busy time of a device; peak activations in units of one model stage's "
        "activations for one micro-batch (see docs/ARCHITECTURE.md for the counting rule).",
        "",
        "## Timelines",
        "",
    ]
    for name, fig in figures.items():
        lines += [f"### {name}", "", f"![{name}]({fig})", ""]
    return "\n".join(lines)
