"""The report of ``twin run`` for a schedule comparison (:func:`schedule_document`), and the
comparison's table rows and closed forms that the smaller report of ``twin report``
(:func:`reports.training_report.schedules_document`) shares."""

from __future__ import annotations

from reports.document import Document, literal
from reports.gantt import GANTT_PNG_DPI, gantt_figure
from sim.pipeline import theory
from sim.results import ScheduleMetrics
from sim.run import RunResult


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def metrics_rows(
    rows: tuple[ScheduleMetrics, ...] | list[ScheduleMetrics],
    closed_form: dict[str, float | None] | None = None,
    unit: str = "ms",
    scale: float = 1e3,
) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the comparison; ``closed_form`` adds Table 2's bubble per schedule (seconds)."""
    closed_form = closed_form or {}
    headers = [
        "schedule",
        "devices",
        f"step time ({unit})",
        f"device-time ({unit})",
        f"max bubble ({unit})",
        f"closed-form bubble ({unit})",
        "max bubble ratio",
        "peak activations",
        "param copies",
    ]
    out = []
    for m in rows:
        formula = closed_form.get(m.name)
        out.append(
            [
                m.name,
                str(m.devices),
                _fmt(m.step_time * scale),
                _fmt(m.step_time * m.devices * scale),
                _fmt(max(m.bubble) * scale),
                "-" if formula is None else _fmt(formula * scale),
                f"{max(m.bubble_ratio):.3f}",
                _fmt(max(m.peak_activations)),
                _fmt(m.param_copies),
            ]
        )
    return headers, out


def _transfers(result: RunResult) -> str:
    sc = result.scenario
    if sc.cluster is None:
        return (
            f"Stage-to-stage transfers: {sc.p2p.activation_bytes:g} B each over a point-to-point link of "
            f"{sc.p2p.bandwidth_GBps:g} GB/s and {sc.p2p.latency_us:g} us latency."
        )
    gpus = sc.cluster.placement(sc.devices())
    assert result.assembly is not None  # sim.run.simulate keeps the assembly it ran
    split = result.assembly.split
    return (
        f"Stage-to-stage transfers: {sc.p2p.activation_bytes:g} B each as flows on the cluster network "
        f"`{literal(sc.cluster.spec.name)}` (max-min fair sharing), pipeline devices on GPUs {list(gpus)}. "
        f"Compute SMs: {split.compute_sms} of {split.gpu.sms}."
    )


def _op_times(result: RunResult) -> str:
    sc = result.scenario
    c = result.chunk
    if c is None:
        ops = sc.ops
        assert ops is not None
        return (
            f"Op times per stage (ms), given: F {ops.forward_ms}, B {ops.backward_ms}, W {ops.weight_ms}, "
            f"F&B {ops.overlapped_ms or 'F + B (no overlap)'}."
        )
    w = sc.workload
    return (
        f"Op times per stage from the chunk model ({c.layers} layers of {literal(sc.model.name)} per stage, "
        f"{w.tokens} tokens per micro-batch, EP{w.ep}, {w.routing} routing, {c.compute_sms} compute SMs, "
        f"profile `{literal(sc.profile_path.name)}`): F {c.forward_ms:.2f} ms (its all-to-all exposed), "
        f"B {c.backward_ms:.2f} ms of which W {c.weight_ms:.2f} ms, F&B {c.overlapped_ms:.2f} ms "
        "(DualPipe's overlapped pair)."
    )


def closed_forms(result: RunResult) -> dict[str, float | None]:
    times = result.times
    if times is None:
        return {}
    if len({*times.f}) > 1 or len({*times.b}) > 1 or len({*times.w}) > 1 or (times.fb and len({*times.fb}) > 1):
        return {}  # no closed form for uneven stages
    fb = times.fb[0] if times.fb else None
    v = result.scenario.pipeline.virtual_stages
    pp = result.scenario.pipeline.pp
    return {m.name: theory.bubble(m.name, pp, times.f[0], times.b[0], times.w[0], fb, v) for m in result.metrics}


COMPARISON_NOTE = (
    "Bubble = step time - busy time of a device. Device-time = step time x devices (DualPipeV "
    "uses half the devices). The closed-form bubble is Table 2 of the DeepSeek-V3 report (and "
    "(PP-1)(F+B)/v for interleaved) for uniform stages and free transfers; it is exact only when "
    "W = B/2 = F and F&B = F + B. Peak activations are in units of one model stage's activations "
    "for one micro-batch (see docs/ARCHITECTURE.md for the counting rule)."
)


def schedule_document(result: RunResult) -> Document:
    """The report of ``twin run`` for a schedule-comparison scenario: the setting, the comparison
    against the closed forms and one timeline per schedule (figures ``gantt-<schedule>``)."""
    sc = result.scenario
    plan = sc.pipeline
    doc = Document(f"Scenario `{literal(sc.name)}`", literal(" ".join(sc.description.split())))
    doc.paragraph(
        f"PP = {plan.pp} model stages, {plan.microbatches} micro-batches, "
        f"{plan.virtual_stages} virtual stages for interleaved-1f1b. " + _op_times(result) + " " + _transfers(result)
    )
    doc.heading("Results")
    headers, rows = metrics_rows(result.metrics, closed_forms(result))
    doc.table(headers, rows)
    doc.paragraph(COMPARISON_NOTE)
    doc.heading("Timelines")
    for run in result.runs:
        name = run.schedule.name
        doc.heading(name, level=3)
        figure = gantt_figure(run, time_unit="s")
        caption = f"{name}: one row per rank, boxes coloured by action kind."
        doc.figure(figure, f"gantt-{name}", caption, fmt="png", dpi=GANTT_PNG_DPI)
    return doc
