"""Every published figure the twin is compared with, beside the twin's value (the data of
docs/validation.md, rendered by :mod:`reports.validation`; ``twin check published``).

Nothing here is fitted to the figure it is compared with: where a figure was used to derive a model
constant it says so (the trace's annotations gave the interference factors; DeepEP's EP64 figure gave
the per-channel RDMA rates), and the report marks those rows "used in calibration". Sources:

* DeepSeek's H800 trace (deepseek-ai/profile-data): one DualPipe F&B chunk pair, 4 MoE layers, EP64,
  20 DeepEP SMs (:mod:`sim.experiments.trace_validation`);
* the model: training FLOPs per token (ISCA'25 Table 2, ~250 GFLOP at a 4K context), parameters
  (DeepSeek-V3 report: 671B main, 37B activated; V3 README: 685B with the MTP module);
* the training step: 2.664M H800 GPU-hours for 14.8T pre-training tokens (V3 report Table 1), against
  the default scenario's step as given and with layers split by predicted cost;
* the whole run: V3 report Table 1's GPU-hours per phase (pre-training, context extension) against
  ``twin plan run scenarios/runs/deepseek-v3.yaml`` (batch ramp and context phases simulated step by step);
* pipeline bubbles: V3 report Table 2 at its exact point (F = W = B/2, F&B = F + B, free transfers);
* DeepEP's normal kernels (DeepEP README, H800 + CX7; :mod:`sim.experiments.deepep_table`);
* GEMM times measured on a second H100 (``h100-sxm-device.json``) predicted by the profile of the
  shared H100 measurements (``h100-sxm-measured.json``), which never saw them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.assemble import step_layout
from sim.config import default_scenario_path, load_scenario
from sim.experiments.deepep_table import DeepEPRow
from sim.experiments.deepep_table import rows as deepep_rows
from sim.experiments.trace_validation import validate_trace
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import PROFILES_DIR, load_profile
from sim.model.flops import training_flops_per_token
from sim.model.params import model_params
from sim.model.spec import DEEPSEEK_V3
from sim.pipeline import theory
from sim.pipeline.costs import OpTimes
from sim.results import metrics
from sim.run import run_schedule, simulate_training

# DeepSeek-V3 report (arXiv 2412.19437), Table 1: 2.664M H800 GPU-hours of pre-training on 14.8T tokens.
PUBLISHED_GPU_HOURS_PER_T = 2.664e6 / 14.8
SECTIONS = ("trace", "model", "step", "run", "contention", "dualpipe", "deepep", "gemm")
RUN_FILE = "runs/deepseek-v3.yaml"  # the shipped run, beside the default scenario (scenarios/)
CONTENTION_FABRICS = (  # (label, cluster.topology relative to the default scenario's folder)
    ("MPFT (DeepSeek's multi-plane fat tree, the default)", None),
    ("FT2 (two-layer fat tree, one plane), 2048 GPUs", "../topologies/deepseek-v3-ft2.yaml"),
    ("FT3 (three-layer fat tree), 2048 GPUs", "../topologies/deepseek-v3-ft3.yaml"),
)
BUBBLE_SCHEDULES = ("1f1b", "zb1p", "dualpipe", "dualpipev")
GEMM_DEVICE = "h100-sxm-device.json"  # measured on a second H100, not fitted
GEMM_REFERENCE = "h100-sxm-measured.json"  # the shared H100 measurements the profile is fitted to
GEMM_MIN_M = 512


@dataclass(frozen=True)
class Figure:
    """A published figure beside the twin's, in the same unit; ``unit`` and ``suffix`` say how both are
    shown (``671e9`` with unit 1e9 and suffix ``B`` is ``671.0B``)."""

    name: str
    source: str
    published: float
    shown: str  # the published figure as its source writes it ("~250", "671B")
    twin: float
    unit: float = 1.0
    suffix: str = ""

    @property
    def error(self) -> float:
        """Relative error of the twin (twin / published - 1)."""
        return self.twin / self.published - 1


def model_figures() -> tuple[Figure, ...]:
    """DeepSeek-V3's training FLOPs per token and parameter counts, counted from the layer model."""
    flops = training_flops_per_token(DEEPSEEK_V3).main / 1e9
    p = model_params(DEEPSEEK_V3)
    return (
        Figure("training GFLOP per token (4K context)", "ISCA'25 Table 2", 250, "~250", flops),
        Figure("parameters, main model", "V3 report", 671e9, "671B", p.main, 1e9, "B"),
        Figure("activated per token", "V3 report", 37e9, "37B", p.activated, 1e9, "B"),
        Figure("checkpoint incl. MTP", "V3 README", 685e9, "685B", p.checkpoint, 1e9, "B"),
    )


@dataclass(frozen=True)
class StepCheck:
    """The default scenario's step against the published GPU-hours (``figures``: as given, then with
    ``training.layers_per_stage: balanced``) and what the step itself is."""

    figures: tuple[Figure, Figure]
    global_batch: int  # sequences per step
    seq_len: int
    step_time_s: float
    mfu_causal: float
    mfu_noncausal: float


def step_check() -> StepCheck:
    """Simulate the default scenario's training step, as given and with balanced layers."""
    sc = load_scenario(default_scenario_path())
    run = simulate_training(sc)
    assert sc.training is not None
    balanced_sc = sc.model_copy(update={"training": sc.training.model_copy(update={"layers_per_stage": "balanced"})})
    balanced = simulate_training(balanced_sc).result
    r = run.result
    layout, _ = step_layout(sc)
    pub = PUBLISHED_GPU_HOURS_PER_T
    shown = f"{pub / 1e3:.1f}K"
    return StepCheck(
        (
            Figure(
                "H800 GPU-hours per trillion tokens",
                "V3 report Table 1: 2.664M for 14.8T pre-training tokens",
                pub,
                shown,
                r.gpu_hours_per_trillion_tokens,
                1e3,
                "K",
            ),
            Figure(
                "the same, layers split by predicted cost (`training.layers_per_stage: balanced`)",
                "(layer map not published)",
                pub,
                shown,
                balanced.gpu_hours_per_trillion_tokens,
                1e3,
                "K",
            ),
        ),
        layout.global_batch,
        sc.model.seq_len,
        r.step_time_s,
        r.mfu(True),
        r.mfu(False),
    )


@dataclass(frozen=True)
class RunRow:
    """A phase, group or the whole of the shipped DeepSeek-V3 run (``twin plan run``) against Table 1."""

    label: str
    gpu_hours: float
    days: float | None  # None for a group of phases (their days are in the phases' rows)
    published_gpu_hours: float | None


def run_check() -> tuple[RunRow, ...]:
    """The shipped run (scenarios/runs/deepseek-v3.yaml): each phase, each published group, and the
    phases together against the V3 report's Table 1 (pre-training 2,664K, context extension 119K; its
    post-training 5K is not modelled, so the total is compared with 2,783K)."""
    from sim.experiments.run_plan import load_run, plan_run

    path = default_scenario_path().parent / RUN_FILE
    spec = load_run(path)
    results, groups = plan_run(spec, path)
    rows = [RunRow(r.name, r.gpu_hours, r.days, r.published_gpu_hours) for r in results]
    rows += [RunRow(g["name"], g["gpu_hours"], None, g["published_gpu_hours"]) for g in groups]
    published = [r.published_gpu_hours for r in rows if r.published_gpu_hours is not None]
    rows.append(
        RunRow(
            "pre-training and context extension",
            sum(r.gpu_hours for r in results),
            sum(r.days for r in results),
            sum(published) if published else None,
        )
    )
    return tuple(rows)


@dataclass(frozen=True)
class ContentionRow:
    """One fabric's default step with ``training.contention`` isolated and shared: the step and the
    last-ending rank's bubble, exposed EP and exposed DP (s), and what the shared run's coflows lost to
    sharing by tag and link block (ms, summed over coflows)."""

    fabric: str
    isolated: tuple[float, float, float, float]
    shared: tuple[float, float, float, float]
    lost_ms: dict[str, float]


def _figures(result: Any) -> tuple[float, float, float, float]:
    last = result.ranks[result.reported_rank]
    return (result.step_time_s, last.bubble_s, last.ep_comm_exposed_s, last.dp_comm_exposed_s)


def contention_rows() -> tuple[ContentionRow, ...]:
    """The default step on each of :data:`CONTENTION_FABRICS`, isolated and shared."""
    from sim.experiments.study import variant

    sc = load_scenario(default_scenario_path())
    out = []
    for label, topology in CONTENTION_FABRICS:
        base = {} if topology is None else {"cluster.topology": topology}
        iso = simulate_training(variant(sc, base | {"training.contention": "isolated"}))
        shared = simulate_training(variant(sc, base | {"training.contention": "shared"}))
        lost = dict(shared.step.stats.get("coflow_delay_ms", {}))
        out.append(ContentionRow(label, _figures(iso.result), _figures(shared.result), lost))
    return tuple(out)


@dataclass(frozen=True)
class BubbleRow:
    """A schedule's pipeline bubble: Table 2's closed form and the simulated one (units of F)."""

    schedule: str
    closed_form: float
    twin: float


@dataclass(frozen=True)
class Bubbles:
    pp: int
    microbatches: int
    rows: tuple[BubbleRow, ...]


def bubbles(pp: int = 16, n: int = 40) -> Bubbles:
    """DualPipe's Table 2 (V3 report) reproduced by simulation at its exact point (F = W = B/2 = 1,
    F&B = F + B, no transfer cost): each schedule's largest device bubble beside the closed form."""
    f, b = 1.0, 2.0
    w, fb = b / 2, f + b
    rows = []
    for name in BUBBLE_SCHEDULES:
        formula = theory.bubble(name, pp, f, b, w, fb)
        run = run_schedule(name, pp, n, OpTimes.uniform(pp, f, b, w, fb))
        assert formula is not None
        rows.append(BubbleRow(name, formula, max(metrics(run).bubble)))
    return Bubbles(pp, n, tuple(rows))


@dataclass(frozen=True)
class GemmCheck:
    """GEMM times of a second H100 (M >= :data:`GEMM_MIN_M`, every dtype and FP8 scaling, SM-limited
    runs included) predicted by the profile of the shared H100 measurements."""

    data: str  # the measured profile's file name
    shapes: int
    median_abs_error: float
    median_error: float  # the bias


def gemm_check() -> GemmCheck:
    """Relative errors of the reference profile's GEMM model on the device profile's samples."""
    dev = load_profile(PROFILES_DIR / GEMM_DEVICE)
    ref = CostModel(load_profile(PROFILES_DIR / GEMM_REFERENCE))
    errs = []
    for s in dev.samples:
        p = s.params
        if s.op != "gemm" or "m" not in p or int(p["m"]) < GEMM_MIN_M:
            continue
        dtype = str(p["dtype"])
        scaling = str(p["scaling"]) if dtype == "fp8" and "scaling" in p else None
        t = ref.gemm_time(int(p["m"]), int(p["n"]), int(p["k"]), dtype, int(p.get("sms", ref.all_sms)), scaling)
        errs.append(t / s.time_s - 1)
    e = np.array(errs)
    return GemmCheck(GEMM_DEVICE, len(e), float(np.median(np.abs(e))), float(np.median(e)))


@dataclass(frozen=True)
class PublishedFigures:
    """Everything docs/validation.md shows, section by section (:data:`SECTIONS`)."""

    trace: dict[str, Any]  # the layout of ``twin check trace --format json``
    model: tuple[Figure, ...]
    step: StepCheck
    run: tuple[RunRow, ...]
    contention: tuple[ContentionRow, ...]
    bubbles: Bubbles
    deepep: tuple[DeepEPRow, ...]
    gemm: GemmCheck


def published_figures(
    trace_reference: Mapping[str, Any], progress: Callable[[str], None] | None = None
) -> PublishedFigures:
    """Run every comparison; ``trace_reference`` is DeepSeek's trace read into figures
    (:func:`calibrate.trace_figures.trace_figures`); ``progress`` is called with each section's name."""

    def step(name: str) -> None:
        if progress is not None:
            progress(name)

    step("trace")
    trace = validate_trace(trace_reference)
    step("model")
    model = model_figures()
    step("step")
    training = step_check()
    step("run")
    run = run_check()
    step("contention")
    contention = contention_rows()
    step("dualpipe")
    pipeline = bubbles()
    step("deepep")
    deepep = tuple(deepep_rows())
    step("gemm")
    return PublishedFigures(trace, model, training, run, contention, pipeline, deepep, gemm_check())
