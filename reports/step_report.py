"""The report of ``twin run`` for a training step (:func:`step_document`, reads the run's results only),
and its pieces (summary rows, layout text, breakdown parts, per-rank rows) that the full report of
``twin report`` (:mod:`reports.training_report`) shares."""

from __future__ import annotations

from reports.document import Document, literal
from reports.gantt import GANTT_PNG_DPI, STEP_CAPTION, gantt_figure
from reports.provenance import git_revision
from sim.experiments.published import PUBLISHED_GPU_HOURS_PER_T
from sim.model.spec import DEEPSEEK_V3
from sim.run import TrainingRun
from sim.step.accounting import RankBreakdown, StepResult
from sim.units import GiB


def is_moe(run: TrainingRun) -> bool:
    """Whether the scenario's model has routed experts (a dense model has no routing, EP or expert DP)."""
    return bool(run.scenario.model.n_routed_experts)


def _sets(run: TrainingRun) -> str:
    rset = run.step.dp[0].rset
    ranks = " and ".join(str(r) for r in rset.ranks)
    expert = f", expert DP {rset.expert_dp}" if is_moe(run) else ""
    return f"rank 0's: ranks {ranks}, DP {rset.dp}{expert}"


def _ms(x: float) -> str:
    return f"{x * 1e3:,.1f}"


def compares_with_published(run: TrainingRun) -> bool:
    """Whether DeepSeek-V3's published GPU-hours per trillion tokens is this step's to compare: the
    scenario's model is DeepSeek-V3's, as the report measured it (another model's figure is not)."""
    return run.scenario.model == DEEPSEEK_V3


def summary_rows(run: TrainingRun) -> list[tuple[str, str]]:
    """(figure, value) of the step's summary: step time, tokens, throughput, GPU-hours (against the
    published figure for DeepSeek-V3's model), cost, TFLOPS, MFU, peak memory."""
    r = run.result
    d = r.to_dict()
    hours = r.gpu_hours_per_trillion_tokens
    ratio = hours / PUBLISHED_GPU_HOURS_PER_T - 1
    published = f" (DeepSeek-V3 published: {PUBLISHED_GPU_HOURS_PER_T / 1e3:,.1f} K, {ratio:+.1%})"
    published = published if compares_with_published(run) else ""
    return [
        ("step time", f"{r.step_time_s:.3f} s"),
        ("tokens per step", f"{r.tokens_per_step:,}"),
        ("tokens per day", f"{r.tokens_per_day / 1e9:,.1f} B"),
        ("GPU-hours per trillion tokens", f"{hours / 1e3:,.1f} K{published}"),
        ("cost per trillion tokens", cost_text(run)),
        ("TFLOPS per GPU (causal / non-causal)", f"{r.tflops_per_gpu(True):.0f} / {r.tflops_per_gpu(False):.0f}"),
        ("MFU vs dense BF16 peak (causal / non-causal)", f"{r.mfu(True):.1%} / {r.mfu(False):.1%}"),
        (
            "peak memory per GPU",
            f"{max(x.memory.total for x in r.ranks) / GiB:.1f} GiB (rank {d['memory_rank']}; "
            f"{literal(run.gpu.name)}: {run.gpu.hbm_GiB:g} GiB)",
        ),
    ]


def cost_text(run: TrainingRun) -> str:
    """The step's cost per trillion tokens with its parts and prices (``economics``), or, where some
    hardware has no price, the GPUs' part and why the rest is not priced."""
    c, e = run.costs, run.scenario.economics
    gpus = f"GPUs ${c.priced.gpu_usd_per_T / 1e3:,.0f}K at ${e.gpu_hour_usd:,.2f} a GPU-hour"
    if c.note:
        return f"{gpus}; {literal(c.note)}"
    share = f"${c.priced.fabric_usd / 1e6:,.1f}M over {e.fabric_life_years:g} years"
    fabric = f"fabric ${c.priced.fabric_usd_per_T / 1e3:,.0f}K ({share})"
    return f"${c.priced.usd_per_T / 1e3:,.0f}K: {gpus}, {fabric}"


PUBLISHED_NOTE = (
    "The published comparison is a whole run (ramp, long-context extension excluded: Table 1's "
    "pre-training line) against one steady-state step; the twin is not fitted to it."
)


def layout_text(run: TrainingRun) -> str:
    """One paragraph: the model, GPUs, ranks, EP and DP (a dense model: DP only), micro-batches, what
    ZeRO-1 (or FSDP) shards over which group, fidelity, routing (MoE only)."""
    sc = run.scenario
    lay = run.result.to_dict()["layout"]
    t = sc.training
    assert t is not None
    head = (
        f"{literal(sc.model.name)} on {lay['gpus']} GPUs: {lay['pipeline_ranks']} pipeline ranks "
        f"({sc.pipeline.schedules[0]}, PP {sc.pipeline.pp}) x {lay['gpus_per_rank']} GPUs each; "
    )
    batch = (
        f"{lay['microbatches']} micro-batches of {lay['microbatch_sequences']} "
        f"sequence(s) ({lay['tokens_per_microbatch']} tokens) per pipeline; global batch "
        f"{lay['global_batch_sequences']} sequences. "
    )
    if is_moe(run):
        return (
            head
            + f"EP {lay['ep']}, DP {lay['dp']} (non-expert), {lay['expert_dp']} replicas of each expert; "
            + batch
            + f"ZeRO-1 groups span the ranks holding the same layers ({_sets(run)}). Fidelity: {t.fidelity}; "
            f"routing: {sc.workload.routing}; data-parallel overlap: {t.dp_overlap}."
        )
    dp = run.step.dp[0].rset.dp
    what = "layers and tensor-parallel shard (one group per TP index)" if lay.get("tp", 1) > 1 else "layers"
    zero = (
        "FSDP shards every weight's parameters, gradients and optimizer state"
        if lay.get("fsdp")
        else "ZeRO-1 shards every weight's optimizer state (gradients reduce-scattered, parameters all-gathered)"
    )
    return (
        head
        + f"DP {lay['dp']} (a dense model: no experts); "
        + batch
        + f"{zero} over the GPUs holding the same {what} ({_sets(run)}), 1/{dp} on each GPU. "
        f"Fidelity: {t.fidelity}; data-parallel overlap: {t.dp_overlap}."
    )


def breakdown_parts(b: RankBreakdown) -> list[tuple[str, float]]:
    """The eight parts of a rank's step (seconds; they add up to the step time)."""
    return [
        ("forward only (F)", b.forward_only_s),
        ("backward only (B, I)", b.backward_only_s),
        ("weight gradients only (W)", b.weight_only_s),
        ("overlapped F&B", b.overlapped_fb_s),
        ("pipeline bubble", b.bubble_s),
        ("optimizer", b.optimizer_s),
        ("exposed DP communication", b.dp_comm_exposed_s),
        ("waiting for other ranks", b.wait_s),
    ]


PER_RANK_HEADERS = [
    "rank",
    "F",
    "B/I",
    "W",
    "F&B",
    "bubble",
    "optimizer",
    "DP comm",
    "wait",
    "comm in chunks",
    "memory GiB",
]
OVER_RANK_NAMES = {
    "bubble_s": "pipeline bubble",
    "ep_comm_exposed_s": "comm exposed inside chunks (EP, TP, CP)",
    "dp_comm_exposed_s": "exposed DP communication",
    "wait_s": "waiting for other ranks",
}
BREAKDOWN_NOTE = (
    "The pipeline bubble is the pipeline's makespan (its last action, on any rank) minus the rank's busy "
    "time, as the schedule table counts it; exposed DP communication is what runs after the makespan; "
    "waiting is the rest of the data-parallel phase (the gradient-norm barrier, the slowest optimizer shard "
    "of the replica set, the step's end)."
)


def over_rank_rows(r: StepResult) -> list[list[str]]:
    """Mean and worst over the ranks (ms), beside the critical path's rank."""
    rows = []
    for key, stats in r.over_ranks().items():
        mine = getattr(r.reported, key)
        rows.append(
            [OVER_RANK_NAMES[key], _ms(mine), _ms(stats["mean"]), f"{_ms(stats['worst'])} (rank {stats['worst_rank']})"]
        )
    return rows


def per_rank_rows(r: StepResult) -> list[list[str]]:
    """One row per rank (ms, memory in GiB) under :data:`PER_RANK_HEADERS`."""
    return [
        [
            str(x.rank),
            _ms(x.forward_only_s),
            _ms(x.backward_only_s),
            _ms(x.weight_only_s),
            _ms(x.overlapped_fb_s),
            _ms(x.bubble_s),
            _ms(x.optimizer_s),
            _ms(x.dp_comm_exposed_s),
            _ms(x.wait_s),
            _ms(x.ep_comm_exposed_s),
            f"{x.memory.total / GiB:.1f}",
        ]
        for x in r.ranks
    ]


def memory_text(run: TrainingRun) -> str:
    r = run.result
    m = max(r.ranks, key=lambda x: x.memory.total).memory.to_dict()
    return (
        f"Memory of rank {r.to_dict()['memory_rank']} (GiB): params {m['params']:.1f}, grads {m['grads']:.1f}, "
        f"optimizer {m['optimizer']:.1f}, activations at peak {m['activations_peak']:.1f}, total {m['total']:.1f} "
        "(DeepEP/NCCL buffers and allocator fragmentation not counted; docs/memory.md)."
    )


def chunk_collectives(run: TrainingRun) -> bool:
    """Whether the layout runs TP, CP or expert-TP collectives inside the chunks (beside DeepEP's, on the same
    communication stream: ``ep_comm_exposed_s`` counts them too)."""
    lay = run.result.to_dict()["layout"]
    return any(int(lay.get(k, 1)) > 1 for k in ("tp", "cp", "etp"))


def ep_exposed_text(b: RankBreakdown, moe: bool = True, collectives: bool = False) -> str:
    """What compute waited on inside the chunks: DeepEP's all-to-alls (MoE), TP and CP collectives
    (``collectives``), both, or nothing (a dense model without TP or CP)."""
    what = [x for x, on in (("DeepEP all-to-alls", moe), ("TP/CP/expert-TP collectives", collectives)) if on]
    if not what:
        return "A dense model without TP or CP: no communication inside the chunks."
    return (
        f"Inside those chunks, compute waited {_ms(b.ep_comm_exposed_s)} ms on {' and '.join(what)} "
        "(communication stream busy, both compute streams idle)."
    )


def step_document(run: TrainingRun) -> Document:
    """The report: summary, layout, the breakdown of the rank that ends last, every rank's, memory, the timeline of
    the pipeline the step waits for (the figure ``gantt``: ``gantt.png`` beside ``report.md``) and where
    every input came from."""
    sc = run.scenario
    r = run.result
    b = r.reported
    doc = Document(f"Training step: {literal(sc.name)}", literal(" ".join(sc.description.split())))
    doc.heading("Summary")
    doc.table(["figure", "value"], [list(x) for x in summary_rows(run)], align="lr")
    if compares_with_published(run):
        doc.paragraph(PUBLISHED_NOTE)
    doc.heading("Layout")
    doc.paragraph(layout_text(run))
    doc.heading(f"Where the time goes (rank {r.reported_rank}, which ends the step)")
    doc.table(
        ["part", "ms", "share"],
        [[name, _ms(v), f"{v / r.step_time_s:.1%}"] for name, v in breakdown_parts(b)]
        + [["**step**", f"**{_ms(r.step_time_s)}**", "100%"]],
    )
    doc.paragraph(BREAKDOWN_NOTE + " " + ep_exposed_text(b, is_moe(run), chunk_collectives(run)))
    doc.table(["over the ranks (ms)", f"rank {r.reported_rank}", "mean", "worst"], over_rank_rows(r), align="lrrr")
    doc.heading("Per rank (ms)")
    doc.table(PER_RANK_HEADERS, per_rank_rows(r), align="r" * len(PER_RANK_HEADERS))
    doc.paragraph(memory_text(run))
    doc.heading("Timeline")
    doc.figure(
        gantt_figure(run.step.reported_pipeline().run, title=sc.name, time_unit="s", dp=run.step.timelines),
        "gantt",
        f"The pipeline the step waits for. {STEP_CAPTION}",
        fmt="png",
        dpi=GANTT_PNG_DPI,
    )
    s = r.stats
    doc.heading("Provenance")
    doc.bullets(
        [
            f"scenario `{literal(sc.name)}`, seed {sc.seed}; profile `{literal(sc.profile_path.name)}`; topology "
            f"`{literal(sc.cluster_spec().name)}`; twin revision `{git_revision()}`",
            f"{s['actions']} actions, {s['chunk_timings']} distinct chunk timings, {s['routed_layers']} routed "
            f"layers, {s['events']} engine events; simulated in {s['wall_s']:.2f} s",
            "files: `summary.json` (the figures), `spans.parquet` (every span: device (pipeline rank), stream, "
            "layer, op, micro-batch), `trace.json` (Perfetto: one process per rank, one track per stream)",
        ]
    )
    return doc
