"""``twin chunk`` (time a chunk of layers on the streams) and ``twin check trace`` (the F&B pair of
DeepSeek's trace, predicted and compared with the trace: :mod:`sim.experiments.trace_validation`, with
the trace read by :mod:`calibrate.trace_figures`)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.export import chunk_trace
from sim.chunk.overheads import ChunkParams
from sim.chunk.timer import ChunkResult
from sim.cli.common import (
    Format,
    Int,
    as_flag,
    check_printed,
    input_file_option,
    json_file_option,
    out,
    refuse_given,
    refuse_unbound_node_limit,
    require_routing_memory,
)
from sim.cli.moe import DirichletOpt, SkewAlphaOpt, refuse_unused_seed, refuse_unused_skew
from sim.config import read_for
from sim.errors import ScenarioError
from sim.experiments.trace_validation import ANNOTATIONS, DATASHEET, FRACTIONS, figures, validate_trace
from sim.hardware.gpu import DEEPSEEK_COMM_SMS
from sim.hardware.profile import DEFAULT_PROFILE, load_profile
from sim.limits import MAX_GPUS, MAX_LAYERS, MAX_SEED, MAX_SMS, MAX_TOKENS
from sim.model.catalog import load_model_config
from sim.model.spec import DEEPSEEK_V3, parse_model
from sim.moe.gating import GATES, Gating
from sim.moe.spec import MoESpec
from sim.number_text import signed_percent
from sim.outputs import atomic_write_text
from sim.paths import shown
from sim.step.layout import DEFAULT_EP


class ChunkKind(StrEnum):
    pair = "pair"
    forward = "forward"
    backward = "backward"
    input = "input"
    weight = "weight"


def _time(config: ChunkConfig, kind: ChunkKind) -> ChunkResult:
    setup = build_chunk(config)
    timer, stage = setup.timer, setup.stage
    if kind is ChunkKind.pair:
        return timer.pair(stage, stage)
    if kind is ChunkKind.forward:
        return timer.forward(stage)
    return timer.backward(stage, {"backward": "IW", "input": "I", "weight": "W"}[kind.value])


def chunk_cmd(
    ctx: typer.Context,
    layers: Annotated[
        int,
        typer.Option(
            "--layers-per-stage",
            "--layers",
            parser=Int(1, MAX_LAYERS),
            help="layers in the chunk, from --first-layer (workload.layers_per_stage)",
        ),
    ] = 4,
    first_layer: Annotated[
        int | None,
        typer.Option(
            "--first-layer", parser=Int(0, MAX_LAYERS), help="first layer, 0-based \\[default: the first MoE layer]"
        ),
    ] = None,
    kind: Annotated[ChunkKind, typer.Option("--kind", help="pair (F&B), forward, backward (I+W), input, weight")] = (
        ChunkKind.pair
    ),
    sms: Annotated[
        int, typer.Option("--sms", parser=Int(0, MAX_SMS), help="SMs for DeepEP (the rest compute)")
    ] = DEEPSEEK_COMM_SMS,
    coprocessor: Annotated[bool, typer.Option("--coprocessor", help="communication off the SMs")] = False,
    ep: Annotated[
        int, typer.Option("--ep", parser=Int(1, MAX_GPUS), help="expert-parallel group size (GPUs)")
    ] = DEFAULT_EP,
    tokens: Annotated[
        int,
        typer.Option("--tokens", parser=Int(1, MAX_TOKENS), help="tokens per micro-batch per GPU (workload.tokens)"),
    ] = DEEPSEEK_V3.seq_len,
    node_limit: Annotated[
        int | None,
        typer.Option(
            "--n-limited-groups",
            "--node-limit",
            parser=Int(1, MAX_GPUS),
            help="max nodes per token, M (model.n_limited_groups) \\[default: the model's; DeepSeek-V3: 4]",
        ),
    ] = None,
    routing: Annotated[str, typer.Option("--routing", help="balanced, random, skewed or replay")] = "balanced",
    routing_table: Annotated[
        Path | None, typer.Option("--routing-table", help="CSV/Parquet for replay", callback=input_file_option)
    ] = None,
    skew_alpha: SkewAlphaOpt = 1.0,
    dirichlet: DirichletOpt = None,
    seed: Annotated[
        int, typer.Option("--seed", parser=Int(0, MAX_SEED), help="routing draws (random and skewed routing only)")
    ] = 0,
    profile: Annotated[
        Path,
        typer.Option(
            "--profile",
            help=f"calibration profile \\[default: {shown(DEFAULT_PROFILE)}]",
            callback=input_file_option,
            show_default=False,
        ),
    ] = DEFAULT_PROFILE,
    model_config: Annotated[
        Path | None,
        typer.Option(
            "--model-config", help="config.json of the model \\[default: DeepSeek-V3]", callback=input_file_option
        ),
    ] = None,
    interference: Annotated[str, typer.Option("--interference", help="trace, profile or none")] = "trace",
    trace_out: Annotated[
        Path | None, typer.Option("--trace-out", help="Chrome/Perfetto trace to write", callback=json_file_option)
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Time a chunk of layers (default: DeepSeek's trace configuration, an F&B pair of 4 MoE layers)
    on the compute, weight-gradient and DeepEP streams."""
    if routing not in (*GATES, "replay"):
        raise ScenarioError("--routing", f"unknown routing {routing!r}; choose from {', '.join(GATES)}, replay")
    if routing != "replay":
        refuse_given(ctx, ("routing_table",), f"not used by --routing {routing} (only replay reads a table)")
    refuse_unused_seed(ctx, routing)
    refuse_unused_skew(ctx, routing, dirichlet)
    if coprocessor and sms != 0:  # (--sms 0 says the same)
        refuse_given(ctx, ("sms",), "not used with --coprocessor (communication runs off the SMs: all of them compute)")
    require_routing_memory(tokens, ep)
    with read_for("--model-config", "model config"):
        model = load_model_config(model_config) if model_config is not None else ChunkConfig().model
    if node_limit is not None:
        default = model.n_limited_groups
        try:
            model = parse_model({**model.model_dump(exclude_unset=True), "n_limited_groups": node_limit})
        except ScenarioError as e:
            raise ScenarioError("--n-limited-groups", e.message) from None
        if model.is_moe_model:
            spec = MoESpec.of_model(model, ep)
            refuse_unbound_node_limit(ctx, spec, default)
    if kind is ChunkKind.weight:  # (weight gradients: no DeepEP phase beside them)
        refuse_given(ctx, ("interference",), "not used by --kind weight (a weight pass has no communication)")
        if routing == "balanced" and node_limit is not None and model.is_moe_model:
            # the routing reaches a weight pass only through its experts' token counts: where balanced routing
            # gives the same counts at this limit as at the model's (whole periods of its pattern), nothing moves
            from dataclasses import replace

            from sim.moe.alltoall import balanced_traffic

            spec = MoESpec.of_model(model, ep)
            loads = balanced_traffic(spec, tokens).tokens_per_expert
            if (loads == balanced_traffic(replace(spec, node_limit=default), tokens).tokens_per_expert).all():
                why = "not used by --kind weight with balanced routing (its experts get the same tokens at this limit)"
                refuse_given(ctx, ("node_limit",), why)
    first = model.n_dense_layers if first_layer is None else first_layer
    last = model.n_layers + model.mtp_depth - 1  # the last layer a chunk may hold (MTP's after the model's)
    if first > last:  # only a given --first-layer (the default is the first MoE layer, in the model)
        mtp = {0: "", 1: " and its MTP layer"}.get(model.mtp_depth, f" and {model.mtp_depth} MTP layers")
        raise ScenarioError(
            "--first-layer", f"must be in 0..{last} (the model's {model.n_layers} layers{mtp}), got {first}"
        )
    if not any(layer >= model.n_layers or model.is_moe(layer) for layer in range(first, first + layers)):
        refuse_given(
            ctx,
            ("ep", "routing", "routing_table", "seed", "skew_alpha", "dirichlet", "node_limit", "interference"),
            f"not used: the chunk's layers {first}..{first + layers - 1} are dense (the model's layers are "
            f"{model.layer_pattern()}), so nothing is routed or dispatched",
        )
    with read_for("--profile", "calibration profile"):  # (read here, so its errors say which flag named it)
        calibrated = load_profile(profile)
    if interference == "profile":
        from sim.hardware.costmodel import CostModel
        from sim.hardware.interference import unfit_profile_source

        unfit = unfit_profile_source(CostModel(calibrated).interference_mode, Path(profile).name)
        if unfit is not None:
            raise ScenarioError("--interference", unfit)
    try:
        params = ChunkParams(interference=interference)
        config = ChunkConfig(
            model=model,
            profile=profile,
            layers=layers,
            first_layer=first_layer,
            tokens=tokens,
            ep=ep,
            routing=Gating(routing, routing_table, skew_alpha, dirichlet),
            seed=seed,
            comm_sms=sms,
            coprocessor=coprocessor,
            params=params,
        )
        result = _time(config, kind)
    except ScenarioError as e:
        raise as_flag(e) from None
    if not result.compute_beside_comm():  # (a forward or input pass runs its kernels one after another)
        why = f"not used: no compute kernel of this {kind.value} chunk runs beside a DeepEP data kernel, so "
        refuse_given(ctx, ("interference",), why + "no interference source changes its times")
    fig = figures(result)
    check_printed(fig, profile=profile)
    if trace_out is not None:
        atomic_write_text(trace_out, json.dumps(chunk_trace(result, f"{kind.value}, {layers} layers")))
    if fmt is Format.json:
        print(json.dumps(fig))
        return
    table = Table(title=f"{kind.value} chunk, {layers} layers, EP{ep}, {sms} SMs for DeepEP, {routing} routing")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("span (ms)", f"{fig['span_ms']:.2f}")
    for name, ms in fig["annotations"].items():
        table.add_row(f"{name} (ms, mean per layer)", f"{ms:.3f}")
    for key in FRACTIONS:
        table.add_row(key.replace("_", " "), f"{fig[key]:.1%}")
    out.print(table)
    if trace_out is not None:
        out.print(f"wrote {trace_out}", markup=False)


def trace_validation(profile: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """``twin check trace``: DeepSeek's trace read into figures (:mod:`calibrate.trace_figures`) and
    predicted beside them (:func:`sim.experiments.trace_validation.validate_trace`)."""
    from calibrate.trace_figures import trace_figures

    return validate_trace(trace_figures(), profile)


def print_validation(v: dict[str, Any]) -> None:
    table = Table(title="DeepSeek's F&B chunk pair (4 MoE layers, EP64, 20 SMs for DeepEP): twin vs trace")
    for col in ("figure", "trace", "twin", "error", "datasheet", "error "):
        table.add_column(col, justify="left" if col == "figure" else "right")

    def row(name: str, trace: float, sim: float, sheet: float, pct: bool = False) -> None:
        if pct:
            table.add_row(
                name,
                f"{trace:.1%}",
                f"{sim:.1%}",
                f"{100 * (sim - trace):+.1f} pt",
                f"{sheet:.1%}",
                f"{100 * (sheet - trace):+.1f} pt",
            )
        else:
            table.add_row(
                name,
                f"{trace:.2f}",
                f"{sim:.2f}",
                signed_percent(sim / trace - 1, 1),
                f"{sheet:.2f}",
                signed_percent(sheet / trace - 1, 1),
            )

    row("span (ms)", v["span_ms"]["trace"], v["span_ms"]["sim"], v["span_ms"]["datasheet"])
    for name in ANNOTATIONS:
        a = v["annotations"][name]
        row(f"{name} (ms per layer)", a["trace_ms"], a["sim_ms"], a["datasheet_ms"])
    for key in FRACTIONS:
        f = v[key]
        row(key.replace("_", " "), f["trace"], f["sim"], f["datasheet"], pct=True)
    out.print(table)
    out.print(f"twin: profile {v['profile']}; datasheet: {DATASHEET.name} (no trace information)", markup=False)


__all__ = ["chunk_cmd", "print_validation", "trace_validation"]
