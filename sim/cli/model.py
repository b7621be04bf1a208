"""``twin model show`` and ``twin model list``: what a model is, in the figures a planner needs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sim.cli.common import Format, Int, out
from sim.errors import ScenarioError, one_printable_line
from sim.limits import MAX_TOKENS
from sim.model.catalog import CATALOG, MODELS_DIR, load_model, resolve
from sim.model.flops import training_flops_per_token
from sim.model.params import model_params
from sim.model.spec import ModelSpec
from sim.paths import shown

model_app = typer.Typer(
    no_args_is_help=True,
    help="Model specs: parameters, active parameters, training FLOPs per token, layer pattern.",
)


def _attention(s: ModelSpec) -> str:
    if s.attention == "mla":
        q = f"query latent {s.q_lora_rank}" if s.q_lora_rank else "no query latent"
        return (
            f"MLA, {s.n_heads} heads, {q}, KV latent {s.kv_lora_rank}, "
            f"head {s.qk_nope_head_dim}+{s.qk_rope_head_dim} (v {s.v_head_dim})"
        )
    norm = ", query/key norm" if s.qk_norm else ""
    return f"{s.attention.upper()}, {s.n_heads} heads, {s.kv_heads} KV heads, head {s.attn_head_dim}{norm}"


def _ffn(s: ModelSpec) -> str:
    if not s.is_moe_model:
        return f"dense SwiGLU {s.inter_dim}"
    limit = (
        f", at most {s.n_limited_groups} nodes per token"
        if s.n_limited_groups < s.n_activated_experts
        else ", no node limit"
    )
    shared = f" + {s.n_shared_experts} shared" if s.n_shared_experts else ""
    dense = f"; dense SwiGLU {s.inter_dim} in {s.n_layers - s.moe_layers} layers" if s.moe_layers < s.n_layers else ""
    return (
        f"MoE {s.n_routed_experts} routed (top-{s.n_activated_experts}){shared}, width {s.moe_inter_dim}{limit}{dense}"
    )


def describe(s: ModelSpec, seq_len: int, source: str) -> dict[str, Any]:
    """The figures ``twin model show`` prints (JSON keys; parameters and FLOPs as plain numbers)."""
    p = model_params(s)
    causal = training_flops_per_token(s, True, seq_len)
    full = training_flops_per_token(s, False, seq_len)
    return {
        "name": s.name,
        "source": source,
        "attention": _attention(s),
        "ffn": _ffn(s),
        "hidden": s.dim,
        "layers": s.n_layers,
        "layer_pattern": s.layer_pattern(),
        "vocab": s.vocab_size,
        "tied_embeddings": s.tie_word_embeddings,
        "mtp_depth": s.mtp_depth,
        "params": p.main,
        "active_params": p.activated,
        "active_params_with_embedding_table": p.activated_with_embedding_table,
        "mtp_params": p.mtp,
        "seq_len": seq_len,
        "train_flops_per_token": {"causal": causal.main, "noncausal": full.main},
        "train_flops_per_token_with_mtp": {"causal": causal.total, "noncausal": full.total},
        "six_n_active": 6.0 * p.activated,
    }


@model_app.command("show")
def show(
    spec: Annotated[str, typer.Argument(help=f"a shipped model ({', '.join(CATALOG)}) or a config.json")],
    seq_len: Annotated[
        int | None,
        typer.Option(
            "--seq-len", parser=Int(1, MAX_TOKENS), help="tokens per sequence for the FLOPs \\[default: 4096]"
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Parameters, active parameters, training FLOPs per token (causal and not) and the layer pattern
    of a model, from its config.json (Hugging Face's or DeepSeek's format)."""
    try:
        model = load_model(spec, timed=False)
    except ScenarioError as e:
        if e.key_path == "model.config" and not e.file:  # the argument, not a scenario's key
            raise ScenarioError("SPEC", e.message) from None
        raise
    _, path = resolve(spec)
    data = describe(model, seq_len or model.seq_len, shown(path))
    if fmt is Format.json:
        print(json.dumps(data))
        return
    title = one_printable_line(f"{model.name} ({data['source']})")  # (a file's name: \n and escape codes shown)
    table = Table(title=Text(title))  # (Text: a list value is never markup)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    billions = ("params", "active_params", "active_params_with_embedding_table", "mtp_params", "six_n_active")
    labels = {
        "params": "parameters (B)",
        "active_params": "active per token (B, one embedding row)",
        "active_params_with_embedding_table": "active per token (B, whole embedding table)",
        "mtp_params": "MTP modules (B, without shared embedding/head)",
        "six_n_active": "6 x active (GFLOP/token)",
    }
    for key, value in data.items():
        if key in ("name", "source", "train_flops_per_token", "train_flops_per_token_with_mtp"):
            continue
        if key in billions:
            shown_value = f"{value / 1e9:,.2f}"
        else:
            shown_value = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        table.add_row(labels.get(key, key.replace("_", " ")), Text(shown_value))
    for kind in ("causal", "noncausal"):
        table.add_row(
            f"training GFLOP/token at {data['seq_len']:,}, {kind} attention",
            f"{data['train_flops_per_token'][kind] / 1e9:,.1f}",
        )
        if model.mtp_depth:
            table.add_row(
                f"  with the MTP modules, {kind}", f"{data['train_flops_per_token_with_mtp'][kind] / 1e9:,.1f}"
            )
    out.print(table)


@model_app.command("list")
def list_models() -> None:
    """The shipped models: their names and files (models/)."""
    table = Table(title=f"shipped models ({shown(MODELS_DIR)}/)")
    table.add_column("name")
    table.add_column("file")
    for name, (_, file) in CATALOG.items():
        table.add_row(name, file)
    out.print(table)
