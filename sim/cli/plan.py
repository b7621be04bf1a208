"""``twin plan layouts``: the layouts of a scenario's model on its cluster that fit, ranked by step time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sim.cli.common import Format, Int, err, input_file_option, out, output_dir_option

plan_app = typer.Typer(no_args_is_help=True, help="Plan a training run: the layouts that fit, ranked.")

Top = Int(1, 100_000)
Limit = Int(1, 100_000)
Workers = Int(1, 1024)


def _base(scenario: Path, recompute: bool = False) -> dict[str, Any]:
    """The scenario's data as a search base: paths absolute, the layout keys the points set removed."""
    from sim.config import scenario_data
    from sim.model.catalog import CATALOG
    from sim.overrides import resolve_paths

    data, folder = scenario_data(scenario)
    base = resolve_paths(dict(data), folder)
    model = base.get("model")
    if isinstance(model, dict) and isinstance(model.get("config"), str) and model["config"].lower() not in CATALOG:
        path = Path(model["config"])
        model["config"] = str(path if path.is_absolute() else (folder / path).resolve())
    for section, keys in (
        ("pipeline", ("virtual_stages", "microbatches", "schedules", "pp")),
        ("training", ("layers_per_stage", "tp", "cp", *(("recompute",) if recompute else ()))),
        ("workload", ("ep",)),
    ):
        part = base.get(section)
        if isinstance(part, dict):
            for key in keys:
                part.pop(key, None)
    base.setdefault("pipeline", {})["pp"] = 1  # set by every point
    return base


def _modes(given: str | None) -> tuple[str, ...]:
    """The ``--recompute`` modes (one-line error naming the flag on a bad one)."""
    from sim.errors import TwinError
    from sim.model.layer import RECOMPUTE

    if given is None:
        return ()
    modes = tuple(dict.fromkeys(m.strip() for m in given.split(",") if m.strip()))
    bad = [m for m in modes if m not in RECOMPUTE]
    if bad or not modes:
        raise TwinError(f"--recompute: {bad[0] if bad else given!r} is not one of {', '.join(RECOMPUTE)}")
    return modes


@plan_app.command("layouts")
def layouts_cmd(
    scenario: Annotated[
        Path, typer.Argument(help="a training scenario: its model, cluster, GPUs and batch", callback=input_file_option)
    ],
    top: Annotated[int, typer.Option("--top", parser=Top, help="layouts to list")] = 10,
    limit: Annotated[int, typer.Option("--limit", parser=Limit, help="most layouts to simulate")] = 100,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="folder for the search's sweep [default: out/<name>-layouts]",
            callback=output_dir_option,
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", parser=Workers, help="local processes")] = None,
    recompute: Annotated[
        str | None,
        typer.Option(
            "--recompute",
            help="activation recomputations to try with every layout, comma-separated: selective, none, full "
            "[default: the scenario's]",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Every layout a planner would try for the scenario's model on its cluster, GPU count and global
    batch (TP, CP for long sequences, PP, schedule and virtual stages, EP for MoE models: see
    sim/experiments/layouts.py), run as a resumable sweep; the ones that fit, ranked by step time."""
    import yaml

    from sim.config import load_scenario
    from sim.errors import ScenarioError
    from sim.experiments.layouts import candidates, layout_label
    from sim.sweep.compare import load_results
    from sim.sweep.runner import default_workers, run_sweep
    from sim.sweep.spec import sweep_from_data

    sc = load_scenario(scenario)
    if sc.training is None:
        raise ScenarioError("training", "a layout search needs a training scenario", str(scenario))
    modes = _modes(recompute)
    found = candidates(sc, limit, modes)
    if not found.points:
        raise ScenarioError(
            "training.gpus", "no layout of these GPUs and batch forms pipeline ranks of whole nodes", str(scenario)
        )
    name = f"{sc.name}-layouts"
    folder = output or Path("out") / name
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "base.yaml"
    base.write_text(yaml.safe_dump(_base(scenario, bool(modes)), sort_keys=False))
    sweep = sweep_from_data({"name": name, "base": base.name, "points": list(found.points)}, folder / "layouts.yaml")
    target = folder / "layouts.parquet"
    n = workers or default_workers()

    def progress(done: int, total: int, failed: int) -> None:
        if not quiet and total and fmt is Format.table and (done == total or done % max(1, total // 10) == 0):
            err.print(f"{done}/{total} layouts run ({failed} refused)")

    outcome = run_sweep(sweep, target, workers=n, progress=progress)
    frame, _ = load_results(target)
    ok = frame[frame["status"] == "ok"].sort_values("step_time_s", kind="stable")
    refused = frame[frame["status"] != "ok"]
    reasons: dict[str, int] = {}
    for text in refused["error"].fillna(""):
        reason = str(text).split(": ", 1)[-1]
        key = "more memory per GPU than it has" if "GiB per GPU" in reason else reason[:100]
        reasons[key] = reasons.get(key, 0) + 1
    rows = []
    for rec in ok.head(top).to_dict("records"):
        gpus = int(rec["gpus"])
        rows.append(
            {
                "layout": layout_label({str(k): v for k, v in rec.items()}),
                "schedule": rec["schedule"],
                "dp": int(rec["dp"]),
                "microbatches": int(rec["microbatches"]),
                "step_time_s": float(rec["step_time_s"]),
                "tokens_per_s_per_gpu": float(rec["tokens_per_day"]) / 86400 / gpus,
                "mfu_causal": float(rec["mfu_causal"]),
                "memory_peak_GiB": float(rec["memory_peak_GiB"]),
            }
        )
    ranked_reasons = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    for why, n in found.dropped.items():  # refused before simulating
        ranked_reasons[why] = ranked_reasons.get(why, 0) + n
    ranked_reasons = dict(sorted(ranked_reasons.items(), key=lambda kv: -kv[1]))
    summary = {
        "scenario": sc.name,
        "simulated": outcome.total,
        "fit": len(ok),
        "refused": ranked_reasons,
        "over_limit": found.over_limit,
        "results": str(target),
        "top": rows,
    }
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    tried = outcome.total + sum(found.dropped.values()) + found.over_limit
    table = Table(title=f"{sc.name}: {len(ok)} of {tried} layouts fit, fastest first")
    for col in ("layout", "schedule", "DP", "mb", "step s", "tok/s/GPU", "MFU", "GiB"):
        table.add_column(col, justify="left" if col in ("layout", "schedule") else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["layout"],
            str(r["schedule"]).replace("interleaved-1f1b", "interleaved"),
            str(r["dp"]),
            str(r["microbatches"]),
            f"{r['step_time_s']:.3f}",
            f"{r['tokens_per_s_per_gpu']:,.0f}",
            f"{r['mfu_causal']:.1%}" if not math.isnan(r["mfu_causal"]) else "-",
            f"{r['memory_peak_GiB']:.1f}",
        )
    out.print(table)
    if reasons:
        out.print("refused: " + "; ".join(f"{n} x {why}" for why, n in list(ranked_reasons.items())[:5]))
    if found.over_limit:
        out.print(f"{found.over_limit} more layouts not run (--limit {limit}; one of each TP, CP and PP in turn)")
    out.print(f"every row: {target}")


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}..{values[-1]}"


@plan_app.command("run")
def run_cmd(
    run_file: Annotated[
        Path, typer.Argument(help="a run file: phases of a base scenario (scenarios/runs/)", callback=input_file_option)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="folder for run.json [default: nothing written]", callback=output_dir_option
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """A whole training run: each distinct step of its phases simulated once (a batch ramp's steps at their
    own batch), integrated over the token budget: steps, tokens, days, GPU-hours, dollars and MFU per phase
    and in total, beside the published figures (sim/experiments/run_plan.py)."""
    from sim.experiments.run_plan import load_run, plan_run, totals

    spec = load_run(run_file)

    def progress(n: int) -> None:
        if not quiet and fmt is Format.table:
            err.print(f"{n} distinct step(s) simulated")

    results, groups = plan_run(spec, run_file, progress)
    summary = {"run": spec.name, "phases": [r.to_dict() for r in results], "groups": groups, "total": totals(results)}
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "run.json").write_text(json.dumps(summary, indent=1))
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    table = Table(title=f"{spec.name}: the whole run")
    for col in ("phase", "batch", "steps", "tokens", "days", "GPU-h", "published", "USD", "MFU"):
        table.add_column(col, justify="left" if col in ("phase", "batch") else "right")

    def published(value: float | None, got: float) -> str:
        return "-" if value is None else f"{value / 1e3:,.0f}K ({got / value - 1:+.1%})"

    for r in results:
        table.add_row(
            r.name,
            _span(sorted({s.global_batch for s in r.slices})),
            f"{r.steps:,.0f}",
            f"{r.tokens / 1e12:.3f}T",
            f"{r.days:.2f}",
            f"{r.gpu_hours / 1e3:,.1f}K",
            published(r.published_gpu_hours, r.gpu_hours),
            f"{r.usd / 1e6:,.3f}M",
            f"{r.mfu:.1%}",
        )
    for g in groups:
        table.add_row(
            g["name"],
            "",
            "",
            "",
            "",
            f"{g['gpu_hours'] / 1e3:,.1f}K",
            published(g["published_gpu_hours"], g["gpu_hours"]),
            "",
            "",
        )
    t = totals(results)
    table.add_row(
        "total",
        "",
        "",
        f"{t['tokens'] / 1e12:.3f}T",
        f"{t['days']:.2f}",
        f"{t['gpu_hours'] / 1e3:,.1f}K",
        "",
        f"{t['usd'] / 1e6:,.3f}M",
        "",
    )
    out.print(table)
    out.print("USD: GPU-hours at the base's price and the fabric's share (sim/economics.py)")
