"""The layout search (``twin plan layouts``): every layout of a model on a cluster that a planner would
try, the ones that fit ranked by predicted step time, exactly, without simulating most of them.

The candidates vary what a Megatron-Core user varies for a fixed model, cluster, GPU count and global
batch: TP (dividing a node and the model's heads, KV heads, FFN width and vocabulary), CP (only for
sequences of 32K tokens and more), PP (powers of two up to the layers), the schedule
(1F1B, interleaved 1F1B with 2 or 4 virtual stages, DualPipe and DualPipeV for MoE models), for MoE models EP
(the divisors of the expert count from 8 up) and, where asked (``--recompute``), the activation
recomputation. Combinations that cannot form a layout (GPUs that do not split into pipeline ranks of
whole nodes, TP x CP or EP beyond a rank, a global batch that does not split into DP, fewer layers
than virtual stages, more schedule actions than a step may have: :data:`sim.limits.MAX_STEP_ACTIONS`)
are dropped before anything runs, and counted. So are
the layouts the memory model (:func:`sim.step.accounting.rank_memory`, the step's own memory check, no
simulation) puts over the GPU's memory on some rank: a search is about what fits, whatever the scenario's
``training.check_memory`` (the search's points always check it).

The rest are ranked, not sampled: every one is bounded below (:mod:`sim.sweep.screen`, the machinery of
``twin sweep --best``: each action's chunk alone, free sends, a fraction of a step's cost), then their
steps run in the order of their bounds until the ``top`` fastest are certain (the ``top``-th step time
is at most every bound not run) or ``limit`` steps have run, whichever is first. Both stages are
sweeps (:mod:`sim.sweep`), so a rerun resumes and every refusal the step makes is recorded with its
one-line reason.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sim.config import PipelineSpec, Scenario
from sim.errors import ScenarioError, TwinError
from sim.hardware.gpu import datasheet_for
from sim.hardware.profile import load_profile
from sim.layout_defaults import DEFAULT_EP, DEFAULT_GLOBAL_BATCH
from sim.limits import MAX_STEP_ACTIONS, schedule_actions
from sim.model.params import layer_params, model_params
from sim.pipeline.schedules import SCHEDULES
from sim.step.accounting import rank_memory
from sim.units import GiB

OVER_MEMORY = "more memory per GPU than it has"  # the reason counted (the CLI's key for the step's refusal)

SCHEDULE_CHOICES: tuple[tuple[str, int], ...] = (("1f1b", 1), ("interleaved-1f1b", 2), ("interleaved-1f1b", 4))
PP_CHOICES = (1, 2, 4, 8, 16, 32, 64)
TP_CHOICES = (1, 2, 4, 8, 16, 36, 72)
CP_CHOICES = (1, 2, 4, 8, 16, 32)
LONG_SEQUENCE = 32768  # CP is tried from here on


@dataclass(frozen=True)
class Candidates:
    """The layouts to rank (each a point's overrides) and why the others were dropped."""

    points: tuple[dict[str, Any], ...]
    dropped: dict[str, int]


def _divides(a: int, b: int) -> bool:
    return a > 0 and b % a == 0


def candidates(sc: Scenario, recompute: tuple[str, ...] = ()) -> Candidates:
    """The layouts of ``sc``'s model on its cluster, GPUs and global batch to rank (module docstring):
    every one that forms (:func:`formed`) and fits the GPU's memory (:func:`fitting`), each under every
    activation recomputation of ``recompute`` (none given: the scenario's own)."""
    return fitting(sc, gpu_memory_GiB(sc), formed(sc, recompute))


def gpu_memory_GiB(sc: Scenario) -> float | None:
    """The HBM of the GPU of ``sc``'s profile (its datasheet entry); None for a GPU without one (the
    step refuses it, naming the key)."""
    try:
        gpu = datasheet_for(load_profile(sc.profile_path).device.name)
    except TwinError:  # an unreadable profile: the sweep's points meet the same error, each with its line
        return None
    return None if gpu is None else gpu.hbm_GiB


def formed(sc: Scenario, recompute: tuple[str, ...] = ()) -> Candidates:
    """Every layout of ``sc``'s model that forms, in ``itertools.product`` order of TP, CP, PP, schedule,
    EP and recomputation, and why the others were dropped."""
    t = sc.training
    if t is None:
        raise ValueError("a layout search needs a training scenario")
    m = sc.model
    g = sc.cluster_spec().node.gpus_per_node
    gpus, mbs = t.gpus, t.microbatch_sequences
    tokens = m.seq_len * mbs
    batch = t.global_batch if t.global_batch is not None else DEFAULT_GLOBAL_BATCH
    tps = [
        x
        for x in TP_CHOICES
        if _divides(x, g) and all(_divides(x, n) for n in (m.n_heads, m.kv_heads, m.inter_dim, m.vocab_size, tokens))
    ]
    long = m.seq_len >= LONG_SEQUENCE
    cps = [x for x in CP_CHOICES if x == 1 or (long and _divides(2 * x, tokens))]
    pps = [x for x in PP_CHOICES if x <= m.n_layers]
    schedules = list(SCHEDULE_CHOICES) + ([("dualpipe", 1), ("dualpipev", 1)] if m.is_moe_model else [])
    if t.fsdp:  # DualPipe's two copies of a stage are not modelled under FSDP
        schedules = [s for s in schedules if s[0] != "dualpipe"]
    eps: list[int | None] = [e for e in (8, 16, 32, 64, 128, 256, 512) if _divides(e, m.n_routed_experts)]
    if not m.is_moe_model:
        eps = [None]
    dropped: Counter[str] = Counter()
    points: list[dict[str, Any]] = []
    modes: list[str | None] = list(recompute) or [None]
    for tp, cp, pp, (name, v), ep, mode in itertools.product(tps, cps, pps, schedules, eps, modes):
        why = _unformed(m.n_layers, g, gpus, batch, mbs, tp, cp, pp, name, v, ep)
        if why:
            dropped[why] += 1
            continue
        point: dict[str, Any] = {
            "training.tp": tp,
            "training.cp": cp,
            "pipeline.pp": pp,
            "pipeline.schedules": [name],
            "training.layers_per_stage": "even",
        }
        if name == "interleaved-1f1b":
            point["pipeline.virtual_stages"] = v
        if ep is not None:
            point["workload.ep"] = ep
        if mode is not None:
            point["training.recompute"] = mode
        points.append(point)
    return Candidates(tuple(points), dict(dropped))


def _unformed(
    layers: int, g: int, gpus: int, batch: int, mbs: int, tp: int, cp: int, pp: int, name: str, v: int, ep: int | None
) -> str:
    """Why these numbers form no layout ('' when they do)."""
    if name.startswith("dualpipe") and pp % 2:
        return "DualPipe needs an even PP"
    devices = SCHEDULES[name].devices(pp)
    if devices < 1 or gpus % devices:
        return "GPUs do not split into the pipeline ranks"
    per_rank = gpus // devices
    dp = per_rank // (tp * cp) if per_rank % (tp * cp) == 0 else 0
    if per_rank > 1 and per_rank % g:
        return "a pipeline rank is not whole nodes"
    if not dp:
        return "TP x CP does not divide a pipeline rank"
    if ep is not None and (ep > per_rank or per_rank % ep):
        return "EP does not divide a pipeline rank"
    if batch % (dp * mbs):
        return "the global batch does not split over DP"
    if name == "dualpipe" and (batch // (dp * mbs)) % 2:
        return "DualPipe needs an even number of micro-batches"
    if pp * v > layers:
        return "more virtual stages than layers"
    if schedule_actions(pp, batch // (dp * mbs), v) > MAX_STEP_ACTIONS:  # the step's own refusal, up front
        return "more schedule actions than a step may have"
    if v > 1 and pp == 1:
        return "virtual stages on one device are 1F1B"
    return ""


def _surely_over(total: int, experts: int, hbm_GiB: float, point: dict[str, Any]) -> bool:
    """Whether the point's weights and gradients alone (of ``total`` parameters, ``experts`` of them
    routed experts), spread as evenly as its layout allows, exceed the GPU's memory: a lower bound of
    what the memory check finds, without building anything (weights 2 bytes, gradients 4 per
    parameter; a DualPipe rank holds two stages' worth)."""
    pp, tp, ep = point["pipeline.pp"], point["training.tp"], point.get("workload.ep", 1)
    copies = 2 if point["pipeline.schedules"] == ["dualpipe"] else 1
    per_gpu = copies * ((total - experts) / (pp * tp) + experts / (pp * ep))
    return per_gpu * 6.0 / 2**30 > hbm_GiB


def memory_GiB(sc: Scenario, point: dict[str, Any]) -> float | None:
    """The most memory per GPU of any rank of ``point``'s layout of ``sc`` (GiB), by the memory model the
    step checks (:func:`sim.step.accounting.check_memory`), built as the search's sweep builds the point
    (the scenario's other training keys; micro-batches from the global batch; layers split evenly);
    None where the layout does not build (the sweep records why)."""
    need = _memory_or_refusal(sc, point)
    return need if isinstance(need, float) else None


def _memory_or_refusal(sc: Scenario, point: dict[str, Any]) -> float | TwinError:
    """:func:`memory_GiB`, or the layout builder's refusal of the point (the step's own): the point's
    scenario, as the search's base gives it (no micro-batch count, layers split evenly, the scenario's EP
    dropped: MoE's default, a dense model's 1), laid out by the step's own :func:`sim.assemble.step_layout`."""
    from sim.assemble import step_layout

    t = sc.training
    assert t is not None
    plan = {"schedules": point["pipeline.schedules"], "pp": point["pipeline.pp"], "microbatches": None}
    plan["virtual_stages"] = point.get("pipeline.virtual_stages", PipelineSpec.model_fields["virtual_stages"].default)
    training = {"tp": point["training.tp"], "cp": point["training.cp"], "layers_per_stage": "even"}
    if "training.recompute" in point:
        training["recompute"] = point["training.recompute"]
    ep = point.get("workload.ep", DEFAULT_EP if sc.model.is_moe_model else 1)
    laid = sc.model_copy(
        update={
            "pipeline": sc.pipeline.model_copy(update=plan),
            "training": t.model_copy(update=training),
            "workload": sc.workload.model_copy(update={"ep": ep}),
        }
    )
    try:
        layout, schedule = step_layout(laid)
    except TwinError as err:  # the layout builder's refusal (a LayoutError, most often)
        return err
    return max(rank_memory(sc.model, layout, schedule, d).total for d in range(layout.devices)) / GiB


def fitting(sc: Scenario, hbm_GiB: float | None, found: Candidates) -> Candidates:
    """The candidates whose every rank fits the GPU's ``hbm_GiB`` by the memory model (:func:`memory_GiB`;
    :func:`_surely_over` first, a lower bound that needs no layout built; None: no GPU to check), in
    ``found``'s order; the layouts over memory are counted among ``dropped``, as are those the layout
    builder refuses (the step's own refusal, by its message: DualPipeV with fewer micro-batches than PP)."""
    dropped = Counter(found.dropped)
    kept: list[dict[str, Any]] = []
    m = sc.model
    total = model_params(m).main
    experts = sum(layer_params(m, i).routed_experts for i in range(m.n_layers))
    fsdp = sc.training is not None and sc.training.fsdp  # sharded weights: the lower bound does not hold
    for point in found.points:
        if hbm_GiB is not None:
            if not fsdp and _surely_over(total, experts, hbm_GiB, point):
                dropped[OVER_MEMORY] += 1
                continue
            need = _memory_or_refusal(sc, point)
            if isinstance(need, TwinError):  # the step refuses it as the layout builder does: say why
                own = need.__cause__ if isinstance(need.__cause__, ScenarioError) else need  # (the schedule's)
                dropped[refusal_kind(own.message if isinstance(own, ScenarioError) else str(own))] += 1
                continue
            if need > hbm_GiB:
                dropped[OVER_MEMORY] += 1
                continue
        kept.append(point)
    return Candidates(tuple(kept), dict(dropped))


def refusal_kind(message: str) -> str:
    """A refusal's message with its numbers written N, so the layouts refused for one reason count
    together (``dualpipev with PP=N needs at least N micro-batches, got N``, whatever the PP)."""
    return re.sub(r"\d[\d,.]*", "N", message)


def own_layout(sc: Scenario, like: dict[str, Any]) -> dict[str, Any]:
    """The scenario's own layout written as the candidate ``like`` is (its keys), to compare with it."""
    assert sc.training is not None
    name = sc.pipeline.schedules[0]
    mine: dict[str, Any] = {
        "training.tp": sc.training.tp,
        "training.cp": sc.training.cp,
        "pipeline.pp": sc.pipeline.pp,
        "pipeline.schedules": [name],
        "training.layers_per_stage": "even",
    }
    if "pipeline.virtual_stages" in like:
        mine["pipeline.virtual_stages"] = sc.pipeline.virtual_stages
    if "workload.ep" in like:
        mine["workload.ep"] = sc.workload.ep
    if "training.recompute" in like:
        mine["training.recompute"] = sc.training.recompute
    return mine


def layout_label(row: dict[str, Any]) -> str:
    """``TP2 PP8 VPP4 EP32`` for a result row (its override columns)."""
    parts = [f"TP{int(row['training.tp'])}"]
    if int(row.get("training.cp") or 1) > 1:
        parts.append(f"CP{int(row['training.cp'])}")
    parts.append(f"PP{int(row['pipeline.pp'])}")
    v = row.get("pipeline.virtual_stages")
    if v is not None and v == v and int(v) > 1:
        parts.append(f"VPP{int(v)}")
    ep = row.get("workload.ep")
    if ep is not None and ep == ep:
        parts.append(f"EP{int(ep)}")
    mode = row.get("training.recompute")
    if isinstance(mode, str) and mode != "selective":
        parts.append(f"recompute {mode}")
    return " ".join(parts)
