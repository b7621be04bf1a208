"""The report of ``twin report``: a training step and what its variants say, as a
:class:`~reports.document.Document` (one self-contained HTML file and a Markdown twin).

Renders results only: the step (:func:`sim.run.simulate_training`), its schedule and SM-split
variants and its bytes per node (:mod:`sim.experiments.study`), the provenance rows
(:mod:`reports.provenance`). ``docs/report.md`` explains every section. A schedule-comparison scenario
(no ``training`` section) gets the smaller :func:`schedules_document`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from reports.document import Document, figure_text, literal
from reports.gantt import STEP_CAPTION, gantt_figure
from reports.schedule_report import closed_forms, metrics_rows
from reports.step_report import (
    BREAKDOWN_NOTE,
    PER_RANK_HEADERS,
    PUBLISHED_NOTE,
    _ms,
    breakdown_parts,
    chunk_collectives,
    compares_with_published,
    ep_exposed_text,
    is_moe,
    layout_text,
    over_rank_rows,
    per_rank_rows,
    summary_rows,
)
from reports.timeline_view import timeline_html
from sim.experiments.published import PUBLISHED_GPU_HOURS_PER_T
from sim.experiments.study import ScheduleRow, SmPoint, Study
from sim.run import RunResult, TrainingRun
from sim.step.tied_embedding import embedding_pair
from sim.step.traffic_bytes import NodeBytes
from sim.units import GiB

PART_COLOURS = ["#4c78a8", "#54a24b", "#e0c341", "#72b7b2", "#bab0ac", "#b279a2", "#e45756", "#f2cf5b"]
COMPONENT_NAMES = {
    "ep": "EP all-to-all (DeepEP)",
    "pp": "pipeline sends",
    "dp": "ZeRO-1 collectives",
    "tp": "TP collectives",
    "cp": "CP key/value exchange",
    "etp": "expert-TP collectives",
    "fsdp": "FSDP collectives",
}
# what each component beyond EP, pipeline and ZeRO-1 holds, for the report's list (where the step has it)
COMPONENT_NOTES = {
    "tp": "TP collectives: the sequence-parallel all-gathers and reduce-scatters around every layer's split GEMMs, "
    "forward and backward, in each TP group.",
    "cp": "CP: the keys' and values' all-gathers (or ring passes) and their gradients' reduce-scatters in each CP "
    "group.",
    "etp": "Expert TP: the routed rows' all-gathers and the outputs' reduce-scatters in each expert-TP group.",
    "fsdp": "FSDP: every unit's weight all-gather before it computes (again before its backward where weights are "
    "resharded after the forward) and its gradient reduce-scatter, per micro-batch; they replace ZeRO-1's.",
}
SECTIONS = (
    "Summary",
    "Timeline",
    "Step breakdown per rank",
    "Pipeline schedules: bubbles against the closed forms",
    "SM split: communication SMs against compute",
    "Network bytes per node",
    "Memory per GPU",
    "Provenance",
)


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


# ------------------------------------------------------------------------------------------ figures


def cost_figure(run: TrainingRun) -> Figure:
    hours = run.result.gpu_hours_per_trillion_tokens / 1e3
    fig, ax = plt.subplots(figsize=(7, 1.9))
    ax.barh([1, 0], [hours, PUBLISHED_GPU_HOURS_PER_T / 1e3], color=["#4c78a8", "#bab0ac"])
    ax.set_yticks([1, 0], ["twin (one step)", "DeepSeek-V3 published"])
    for y, v in ((1, hours), (0, PUBLISHED_GPU_HOURS_PER_T / 1e3)):
        ax.text(v, y, f" {v:,.1f}K", va="center", fontsize=9)
    ax.set_xlabel("GPU-hours per trillion tokens (thousands)")
    ax.set_xlim(0, max(hours, PUBLISHED_GPU_HOURS_PER_T / 1e3) * 1.18)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def breakdown_figure(run: TrainingRun) -> Figure:
    r = run.result
    ranks = [x.rank for x in r.ranks]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    bottom = np.zeros(len(ranks))
    names = [name for name, _ in breakdown_parts(r.ranks[0])]
    for i, name in enumerate(names):
        values = np.array([breakdown_parts(x)[i][1] for x in r.ranks])
        ax.bar(ranks, values, bottom=bottom, color=PART_COLOURS[i], label=name, width=0.75)
        bottom += values
    ax.plot(ranks, [x.ep_comm_exposed_s for x in r.ranks], "kx", markersize=7, label="comm exposed (inside the chunks)")
    ax.axhline(r.step_time_s, color="black", lw=0.8, ls="--")
    ax.set_xticks(ranks)
    ax.set_xlabel("pipeline rank")
    ax.set_ylabel("seconds per step")
    ax.legend(fontsize=7.5, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def bubble_figure(rows: tuple[ScheduleRow, ...]) -> Figure:
    ran = [row for row in rows if row.ran]
    x = np.arange(len(ran))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sim = [100 * (row.bubble_ratio or 0.0) for row in ran]
    closed = [100 * (row.closed_form_ratio or 0.0) for row in ran]
    ax.bar(x - 0.2, sim, 0.4, label="simulated (the rank that ends the step)", color="#4c78a8")
    ax.bar(x + 0.2, closed, 0.4, label="closed form on the step's chunk times", color="#bab0ac")
    for i, row in enumerate(ran):
        if not row.fits:
            ax.text(i, max(sim[i], closed[i]), "does not fit", ha="center", va="bottom", fontsize=7, color="#b22")
    ax.set_xticks(x, [row.schedule for row in ran])
    ax.set_ylabel("pipeline bubble (% of the pipeline)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _exposed(collectives: bool) -> str:
    """What the SM split's exposed time counts: DeepEP alone, or with the TP/CP/expert-TP collectives that
    share its stream (``ep_comm_exposed_s`` counts both: :func:`reports.step_report.chunk_collectives`)."""
    return "exposed chunk communication" if collectives else "exposed EP communication"


def sm_figure(points: tuple[SmPoint, ...], collectives: bool = False) -> Figure:
    line = [p for p in points if not p.coprocessor and p.step_time_s is not None]
    co = [p for p in points if p.coprocessor and p.step_time_s is not None]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot([p.comm_sms for p in line], [p.step_time_s or 0.0 for p in line], "o-", color="#4c78a8", label="step time")
    right = ax.twinx()
    right.plot(
        [p.comm_sms for p in line],
        [p.ep_exposed_s or 0.0 for p in line],
        "s--",
        color="#e45756",
        label=f"{_exposed(collectives)} (the rank that ends the step)",
    )
    for p in co:
        step, exposed = p.step_time_s or 0.0, p.ep_exposed_s or 0.0
        ax.plot([p.comm_sms], [step], "*", color="#4c78a8", markersize=15, label="co-processor: step time")
        right.plot([p.comm_sms], [exposed], "*", color="#e45756", markersize=13, label="co-processor: exposed")
        ax.annotate(
            f"co-processor\n({p.compute_sms} SMs compute)",
            (p.comm_sms, step),
            textcoords="offset points",
            xytext=(8, -26),
            fontsize=7.5,
        )
    ax.set_xlabel("SMs given to DeepEP communication (the rest compute)")
    ax.set_ylabel("step time (s)")
    right.set_ylabel(f"{_exposed(collectives)} (s)")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7.5, loc="upper right")
    fig.tight_layout()
    return fig


def heatmap_figure(nb: NodeBytes) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.28 * nb.ranks + 1.8))
    for ax, medium, title in zip(
        axes, ("ib", "nvlink"), ("IB (sent through the node's NICs)", "NVLink (sent)"), strict=True
    ):
        data = nb.total(medium) / 1e12
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0)
        ax.set_title(f"{title}, TB per step", fontsize=9.5)
        ax.set_xlabel("node within the rank")
        ax.set_ylabel("pipeline rank")
        ax.set_yticks(range(nb.ranks))
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    return fig


def memory_figure(run: TrainingRun) -> Figure:
    r = run.result
    ranks = [x.rank for x in r.ranks]
    parts = [
        ("parameters", [x.memory.params for x in r.ranks]),
        ("gradients", [x.memory.grads for x in r.ranks]),
        ("optimizer (shard)", [x.memory.optimizer for x in r.ranks]),
        ("activations at peak", [x.memory.activations_peak for x in r.ranks]),
    ]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    bottom = np.zeros(len(ranks))
    for (name, values), colour in zip(parts, ["#4c78a8", "#72b7b2", "#b279a2", "#f58518"], strict=True):
        v = np.array(values) / GiB  # (the unit of the HBM line and of every memory table)
        ax.bar(ranks, v, bottom=bottom, color=colour, label=name, width=0.75)
        bottom += v
    ax.axhline(
        run.gpu.hbm_GiB, color="#b22", lw=1.2, label=figure_text(f"{run.gpu.name} HBM ({run.gpu.hbm_GiB:g} GiB)")
    )
    ax.set_xticks(ranks)
    ax.set_xlabel("pipeline rank")
    ax.set_ylabel("GiB per GPU")
    ax.set_ylim(0, max(run.gpu.hbm_GiB, float(bottom.max())) * 1.12)
    ax.legend(fontsize=7.5, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ sections


def _schedule_table(rows: tuple[ScheduleRow, ...]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "schedule",
        "ranks",
        "step (s)",
        "pipeline (s)",
        "rank",
        "bubble (s)",
        "bubble / pipeline",
        "closed form (s)",
        "closed-form ratio",
        "F/B/W/F&B (ms)",
        "peak memory (GiB)",
        "note",
    ]
    out = []
    for row in rows:
        c = row.chunks
        chunks = "-" if c is None else f"{c.f * 1e3:.1f}/{c.b * 1e3:.1f}/{c.w * 1e3:.1f}/{c.fb * 1e3:.1f}"
        out.append(
            [
                row.schedule,
                "-" if row.ranks is None else str(row.ranks),
                _f(row.step_time_s),
                _f(row.pipeline_s),
                "-" if row.rank is None else str(row.rank),
                _f(row.bubble_s),
                _pct(row.bubble_ratio),
                _f(row.closed_form_s),
                _pct(row.closed_form_ratio),
                chunks,
                _f(row.peak_memory_GiB, ".1f"),
                literal(row.note) or "fits; as given",
            ]
        )
    return headers, out


def _sm_table(points: tuple[SmPoint, ...], collectives: bool = False) -> tuple[list[str], list[list[str]]]:
    exposed = "exposed comm. (s)" if collectives else "exposed EP (s)"
    headers = ["communication SMs", "compute SMs", "step (s)", exposed, "note"]
    rows = [
        [
            f"{p.comm_sms} (co-processor)" if p.coprocessor else str(p.comm_sms),
            str(p.compute_sms),
            _f(p.step_time_s),
            _f(p.ep_exposed_s),
            literal(p.note),
        ]
        for p in points
    ]
    return headers, rows


def _bytes_table(nb: NodeBytes, step_s: float) -> tuple[list[str], list[list[str]]]:
    nodes = nb.ranks * nb.nodes_per_rank
    headers = [
        "traffic",
        "IB, all nodes (TB)",
        "NVLink, all nodes (TB)",
        "IB per node (GB/s)",
        "NVLink per node (GB/s)",
    ]
    rows = []
    for c in nb.present():
        ib, nv = nb.ib[c].sum(), nb.nvlink[c].sum()
        rows.append(
            [
                COMPONENT_NAMES[c],
                f"{ib / 1e12:,.2f}",
                f"{nv / 1e12:,.2f}",
                f"{ib / nodes / step_s / 1e9:,.1f}",
                f"{nv / nodes / step_s / 1e9:,.1f}",
            ]
        )
    ib, nv = nb.total("ib").sum(), nb.total("nvlink").sum()
    rows.append(
        [
            "**all**",
            f"{ib / 1e12:,.2f}",
            f"{nv / 1e12:,.2f}",
            f"{ib / nodes / step_s / 1e9:,.1f}",
            f"{nv / nodes / step_s / 1e9:,.1f}",
        ]
    )
    return headers, rows


def _sm_section(doc: Document, study: Study, own: int, collectives: bool = False) -> None:
    """The step against the SMs given to communication (and the co-processor). ``collectives``: TP, CP or
    expert-TP collectives run beside DeepEP on its stream, and the exposed time counts them too."""
    stream = (
        "the communication stream (DeepEP's all-to-alls and the TP/CP/expert-TP collectives beside them)"
        if collectives
        else "the DeepEP stream"
    )
    doc.paragraph(
        f"The step with `comm.sms` set to each count (DeepEP's channels = SMs / 2; the other SMs compute), and "
        f"with `comm.coprocessor: true` (communication off the SMs: all SMs compute, DeepEP's channels as with "
        f"{own} SMs), the star. E{_exposed(collectives)[1:]}: inside the chunks of the rank that ends "
        f"the step, the time {stream} was busy while neither compute stream ran."
    )
    doc.figure(
        sm_figure(study.sms, collectives),
        "sm-split",
        f"Step time and {_exposed(collectives)} against the SMs given to communication; stars: the co-processor.",
    )
    headers, rows = _sm_table(study.sms, collectives)
    doc.table(headers, rows, align="rrrrl")


def training_document(run: TrainingRun, study: Study, provenance: list[tuple[str, str]]) -> Document:
    """The full report of a training step (sections: :data:`SECTIONS`)."""
    sc = run.scenario
    r = run.result
    b = r.reported
    doc = Document(f"Training step: {literal(sc.name)}", literal(" ".join(sc.description.split())))

    doc.heading(SECTIONS[0])
    doc.table(["figure", "value"], [list(x) for x in summary_rows(run)], align="lr")
    if compares_with_published(run):
        doc.figure(
            cost_figure(run),
            "cost",
            "GPU-hours per trillion tokens: the simulated step against DeepSeek-V3's "
            "published pre-training figure (2.664M H800 GPU-hours for 14.8T tokens).",
        )
        doc.paragraph(PUBLISHED_NOTE)
    doc.paragraph(layout_text(run))

    doc.heading(SECTIONS[1])
    doc.paragraph(
        f"Every action of every pipeline rank (rank {r.reported_rank}'s pipeline is the one the step waits for), "
        + (
            "then each rank's FSDP reduce-scatters (one per unit and micro-batch) and optimizer. "
            if run.step.spec.inputs.layout.fsdp
            else "then each rank's ZeRO-1 reduce-scatter, optimizer and all-gather. "
        )
        + "Zoom into the interactive view "
        "below; the static chart under it colours boxes by action kind and writes micro-batches where they fit."
    )
    doc.html_block(timeline_html(run))
    waited = run.step.reported_pipeline()
    doc.figure(
        gantt_figure(waited.run, title=f"{sc.name}: pipeline ranks", time_unit="s", dp=run.step.timelines),
        "timeline",
        f"The pipeline of the step. {STEP_CAPTION}",
        fmt="png",
    )

    doc.heading(SECTIONS[2])
    doc.figure(
        breakdown_figure(run),
        "breakdown",
        "Each rank's step split into F, B/I, W and F&B chunk time, pipeline bubble, optimizer, exposed DP "
        "communication and waiting for other ranks (they add up to the step, dashed); crosses: compute time "
        "waiting on DeepEP inside the chunks (part of the chunk time, not an extra term).",
    )
    doc.table(
        ["part", "ms", "share"],
        [[name, _ms(v), f"{v / r.step_time_s:.1%}"] for name, v in breakdown_parts(b)]
        + [["**step**", f"**{_ms(r.step_time_s)}**", "100%"]],
        caption=f"Rank {r.reported_rank}, which ends the step (the critical path).",
    )
    doc.paragraph(BREAKDOWN_NOTE + " " + ep_exposed_text(b, is_moe(run), chunk_collectives(run)))
    doc.table(["over the ranks (ms)", f"rank {r.reported_rank}", "mean", "worst"], over_rank_rows(r), align="lrrr")
    doc.table(PER_RANK_HEADERS, per_rank_rows(r), align="r" * len(PER_RANK_HEADERS), caption="Per rank, ms.")

    doc.heading(SECTIONS[3])
    doc.paragraph(
        "Each schedule was simulated as the whole training step (same PP, batch, cluster and chunk model; "
        "`pipeline.schedules` set to it). Simulated bubble: the pipeline's makespan minus the chunk time of "
        "the rank that ends the step, as its breakdown counts it (the ZeRO-1 phase after the pipeline is not "
        "part of it); ratio over the makespan. "
        "Closed form: Table 2 of the DeepSeek-V3 report (`sim/pipeline/theory.py`; interleaved: (PP-1)(F+B)/v) "
        "on the step's own chunk times: F, B (= I + W), W and F&B of every schedule stage timed by the chunk "
        "model, averaged over the stages, per model stage; its ratio is over itself plus that rank's "
        "chunk time. The closed forms assume uniform stages and free transfers; the step has neither (the "
        "first and last stages hold the embedding, head and MTP), so the two differ. A schedule that does not "
        "fit the GPU's memory was run with the memory check off, as its note says."
    )
    headers, rows = _schedule_table(study.schedules)
    doc.table(headers, rows, align="l" + "r" * 10 + "l")
    doc.figure(
        bubble_figure(study.schedules),
        "bubbles",
        "Pipeline bubble over the pipeline's makespan (not the step, as a sweep's bubble_ratio) of every "
        "schedule: simulated (the rank that ends the step) and the closed form on the same chunk times.",
    )

    doc.heading(SECTIONS[4])
    own = sc.comm.sms
    if not study.sms:
        doc.paragraph("A dense model: no DeepEP all-to-all holds SMs, so there is no split to vary.")
    else:
        _sm_section(doc, study, own, chunk_collectives(run))

    doc.heading(SECTIONS[5])
    nb = study.bytes
    doc.paragraph(
        f"Bytes one step moves, per node of the job: {nb.ranks} pipeline ranks (rows) x {nb.nodes_per_rank} nodes "
        "each (columns; rank d holds nodes d x nodes-per-rank onwards). Counted from the pieces the simulation "
        "runs, each routed on the fabric (`sim/step/traffic_bytes.py`):"
    )
    moe = is_moe(run)
    fsdp = run.step.spec.inputs.layout.fsdp
    sent = "FP8" if sc.model.dtype == "fp8" else "BF16"  # a dispatch's payload (sim.moe.spec)
    article = "an" if sent == "FP8" else "a"
    extra = [COMPONENT_NOTES[c] for c in nb.present() if c in COMPONENT_NOTES]
    missing = [COMPONENT_NAMES[c] for c in nb.uncounted]
    step_spec = run.step.spec
    synced = (
        "; and the shared embedding table's gradient all-reduce between the first and the last pipeline rank "
        "(`sim/step/tied_embedding.py`)."
        if embedding_pair(step_spec.inputs.model, step_spec.inputs.layout, step_spec.schedule) is not None
        else "."
    )
    doc.bullets(
        [
            "EP all-to-all: every MoE layer (MTP included) of every stage, for every micro-batch through it and "
            f"every EP group of its rank: forward dispatch ({sent}) and combine (BF16), backward combine(B) ({article} "
            f"{sent} dispatch of the output gradients) and dispatch(B) (a BF16 combine); messages from the routed "
            "traffic (IB token counts to each node, deduplicated; NVLink token counts inside nodes) times "
            "the phase's bytes per token."
            if moe
            else "EP all-to-all: none (a dense model: no experts).",
            "Pipeline sends: at each route boundary between ranks, every GPU sends its micro-batch's BF16 hidden "
            "states to the same-index GPU of the next rank, and the gradient back.",
            "ZeRO-1: none (FSDP's collectives replace it)."
            if fsdp
            else "ZeRO-1: each replica set's gradient reduce-scatter and parameter all-gather (the non-expert group "
            "hierarchical: NVLink then one IB ring per local index; each expert's replicas as rings)" + synced
            if moe
            else "ZeRO-1: each replica set's gradient reduce-scatter and parameter all-gather over its DP group, "
            "all the weights alike (a dense model: no expert groups; `training.dp_algorithm` hierarchical: "
            "NVLink then one IB ring per local index, else a ring; under tensor parallelism, one ring per TP "
            "index)" + synced,
            *(
                [
                    f"{x} Counted from the step's run on the shared network (every collective that ran, per link)."
                    for x in extra
                ]
            ),
            "IB: bytes leaving the node through its NICs (PXN forwarding included); NVLink: bytes its GPUs send "
            "into the NVSwitch. Received bytes are not counted again. Not counted: DeepEP's notify exchange, "
            "the gradient-norm all-reduce"
            + (
                f"; and, this step having run with `contention: isolated` (its collectives timed alone, so no "
                f"link log), the {', '.join(missing)}."
                if missing
                else "."
            ),
        ]
    )
    what = "all traffic" if not missing else "all traffic but the " + ", ".join(missing)
    doc.figure(heatmap_figure(nb), "bytes-per-node", f"IB and NVLink bytes per node per step ({what}).")
    headers, rows = _bytes_table(nb, r.step_time_s)
    doc.table(headers, rows, caption="Per node: the average over the job's nodes, per second of the step.")

    doc.heading(SECTIONS[6])
    doc.figure(
        memory_figure(run),
        "memory",
        "Memory per GPU of every rank: BF16 parameters, FP32 gradients, the optimizer shard "
        + ("(FSDP) " if run.step.spec.inputs.layout.fsdp else "(ZeRO-1) ")
        + "and "
        "activations at the schedule's peak, against the GPU's HBM.",
    )
    doc.table(
        ["rank", "params", "grads", "optimizer", "activations", "total", "headroom"],
        [
            [
                str(x.rank),
                f"{x.memory.params / GiB:.1f}",
                f"{x.memory.grads / GiB:.1f}",
                f"{x.memory.optimizer / GiB:.1f}",
                f"{x.memory.activations_peak / GiB:.1f}",
                f"{x.memory.total / GiB:.1f}",
                f"{run.gpu.hbm_GiB - x.memory.total / GiB:.1f}",
            ]
            for x in r.ranks
        ],
        align="rrrrrrr",
        caption="GiB per GPU. DeepEP/NCCL buffers and allocator fragmentation are not counted (docs/memory.md).",
    )

    _provenance(doc, provenance, run)
    return doc


def _provenance(doc: Document, rows: list[tuple[str, str]], run: TrainingRun | None = None) -> None:
    doc.heading(SECTIONS[7])
    extra = []
    if run is not None:
        s = run.result.stats
        extra.append(
            (
                "simulation",
                f"{s['actions']} actions, {s['chunk_timings']} distinct chunk timings, {s['routed_layers']} routed "
                f"layers, {s['events']} engine events; the step simulated in {s['wall_s']:.2f} s",
            )
        )
    doc.table(["input", "where it came from"], [list(x) for x in [*rows, *extra]], align="ll")


def schedules_document(result: RunResult, provenance: list[tuple[str, str]]) -> Document:
    """The smaller report of a schedule-comparison scenario (no ``training`` section): the comparison
    against the closed forms and one timeline per schedule."""
    sc = result.scenario
    doc = Document(f"Schedule comparison: {literal(sc.name)}", literal(" ".join(sc.description.split())))
    doc.heading("Schedules against the closed forms")
    doc.paragraph(
        f"PP = {sc.pipeline.pp} model stages, {sc.pipeline.microbatches} micro-batches, "
        f"{sc.pipeline.virtual_stages} virtual stages for interleaved-1f1b. Every schedule ran on the same op "
        "times (`twin run` on this scenario gives the same figures). Closed form: Table 2 of the DeepSeek-V3 "
        "report for uniform stages and free transfers, exact only when W = B/2 = F and F&B = F + B; '-' where "
        "the stages are not uniform. This scenario has no `training` section, so the step-only sections (breakdown, "
        "SM split, bytes per node, memory) are not part of this report."
    )
    headers, rows = metrics_rows(result.metrics, closed_forms(result))
    doc.table(headers, rows, align="l" + "r" * (len(headers) - 1))
    doc.heading("Timelines")
    for run in result.runs:
        name = run.schedule.name
        doc.figure(gantt_figure(run, time_unit="s"), f"gantt-{name}", f"{name}: one row per rank.", fmt="png", dpi=80)
    _provenance(doc, provenance)
    return doc
