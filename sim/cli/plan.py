"""``twin plan layouts``: the layouts of a scenario's model on its cluster that fit, ranked by step time;
``twin plan run``: a whole training run, or a sweep of one (:mod:`sim.cli.plan_run`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sim.cli.common import Format, Int, err, input_file_option, out, output_dir_option

# What the layout search keeps in its folder (resumed from by the next search of the same scenario)
LAYOUT_FILES = ("base.yaml", "layouts.parquet", "layouts.screening.parquet")

plan_app = typer.Typer(
    no_args_is_help=True, help="Plan a training run: rank the layouts that fit (layouts); cost a whole run (run)."
)

Top = Int(1, 100_000)
Limit = Int(1, 100_000)  # steps simulated
Workers = Int(1, 1024)


def _base(scenario: Path, recompute: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The scenario's data as a search base: paths absolute, the layout keys the points set removed and
    ``training.check_memory`` left at its default (true); and the keys removed that the scenario gave (the
    search sets them: said, not silently replaced)."""
    from sim.config import scenario_data
    from sim.model.catalog import CATALOG
    from sim.overrides import resolve_paths

    data, folder = scenario_data(scenario)
    base = resolve_paths(dict(data), folder)
    removed: list[str] = []
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
                if part.pop(key, None) is not None:
                    removed.append(f"{section}.{key}")
    base.setdefault("pipeline", {})["pp"] = 1  # set by every point
    # a search is about what fits: every point checks its memory (the scenario's check_memory: false
    # runs one step that does not fit; a search listed layouts over the GPU's memory as fitting)
    training = base.get("training")
    if isinstance(training, dict) and training.pop("check_memory", None) is False:
        removed.append("training.check_memory")
    return base, removed


def _number(x: Any) -> float | None:
    """A figure of a result row, None where it is not a number (JSON has no NaN)."""
    return None if x is None or x != x else float(x)


def _modes(given: str | None) -> tuple[str, ...]:
    """The ``--recompute`` modes (one-line error naming the flag on a bad one)."""
    from sim.cli.common import name_list
    from sim.model.layer import RECOMPUTE

    if given is None:
        return ()
    return tuple(name_list(given, "--recompute", RECOMPUTE, "recomputation"))


@plan_app.command("layouts")
def layouts_cmd(
    scenario: Annotated[
        Path, typer.Argument(help="a training scenario: its model, cluster, GPUs and batch", callback=input_file_option)
    ],
    top: Annotated[int, typer.Option("--top", parser=Top, help="layouts to list")] = 10,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", parser=Limit, help="most steps to simulate (every layout that fits is bounded; the best first)"
        ),
    ] = 100,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="folder for the search's sweep \\[default: out/<name>-layouts]",
            callback=output_dir_option,
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", parser=Workers, help="local processes \\[default: the CPUs]")
    ] = None,
    recompute: Annotated[
        str | None,
        typer.Option(
            "--recompute",
            help="activation recomputations to try with every layout, comma-separated: selective, none, full "
            "\\[default: the scenario's]",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines")] = False,
) -> None:
    """Every layout a planner would try for the scenario's model on its cluster, GPU count and global
    batch (TP, CP for long sequences, PP, schedule and virtual stages, EP for MoE models: see
    sim/experiments/layouts.py), ranked by step time: every layout that fits is bounded below, then
    steps run in the order of their bounds until the --top fastest are certain (or --limit steps have
    run). Both stages are resumable sweeps."""
    import yaml

    from sim.config import load_scenario
    from sim.errors import ScenarioError
    from sim.experiments.layouts import OVER_MEMORY, fitting, formed, gpu_memory_GiB, layout_label
    from sim.outputs import atomic_write_text, check_name_fits, claim_output_folder
    from sim.run import EDGE, _read_files, check_figures_finite
    from sim.sweep.compare import load_results
    from sim.sweep.pool import default_workers
    from sim.sweep.screen import best_of
    from sim.sweep.spec import sweep_from_data

    sc = load_scenario(scenario)
    if sc.training is None:
        raise ScenarioError("training", "a layout search needs a training scenario", str(scenario))
    modes = _modes(recompute)
    hbm = gpu_memory_GiB(sc)
    if hbm is None:  # no datasheet (or no readable profile): every step refuses it alike
        from sim.assemble import assemble

        assemble(sc)  # the step's own one-line refusal, naming the key, before 40 layouts are refused by it
    _own_bound_finite(sc)
    found = fitting(sc, hbm, formed(sc, modes))  # (candidates(), with the GPU's memory read once)
    if not found.points and found.dropped.get(OVER_MEMORY):
        raise ScenarioError(
            "training.gpus",
            f"the {found.dropped[OVER_MEMORY]} layouts of these GPUs and batch that form all need more memory "
            f"per GPU than the GPU's {hbm:g} GiB; give more GPUs or fewer "
            "training.microbatch_sequences, or try --recompute full",
            str(scenario),
        )
    if not found.points:
        if not found.dropped:  # (an MoE model whose expert count no EP the search tries divides)
            raise ScenarioError(
                "model.n_routed_experts",
                f"no layout to try: EP is tried at 8 to 512 GPUs, and none divides the model's "
                f"{sc.model.n_routed_experts} experts",
                str(scenario),
            )
        why, count = max(found.dropped.items(), key=lambda kv: kv[1])
        raise ScenarioError(
            "training.gpus",
            f"no layout of these GPUs and batch can run: of the {sum(found.dropped.values())} combinations tried, "
            f"{count} refused as: {why}",
            str(scenario),
        )
    name = f"{sc.name}-layouts"
    if output is None:  # (else refused as a file name too long, unnamed)
        check_name_fits(sc.name, Path("out"), "the search goes to", str(scenario), "-layouts", "-o DIR")
    folder = output or Path("out") / name
    # a folder of the user's files is refused, never written into; so is a file of the names kept here
    # that this command did not keep (another sweep's rows in layouts.parquet, the user's base.yaml)
    claim_output_folder(folder, owner="plan-layouts", keeps=LAYOUT_FILES)
    base = folder / "base.yaml"
    data, searched = _base(scenario, bool(modes))
    atomic_write_text(base, yaml.safe_dump(data, sort_keys=False))
    sweep = sweep_from_data({"name": name, "base": base.name, "points": list(found.points)}, folder / "layouts.yaml")
    target = folder / "layouts.parquet"
    n = workers or default_workers()

    def stage(what: str) -> Any:
        def progress(done: int, total: int, failed: int) -> None:
            if not quiet and total and (done == total or done % max(1, total // 10) == 0):
                err.print(f"{what}: {done}/{total} ({failed} refused)", markup=False)

        return progress

    # the folder caches this search as asked now: the rows of layouts another --recompute or scenario
    # tried are dropped (the store's advice, --restart, is not a flag of this command)
    names = {"screening": "layouts bounded", "shared": "layouts simulated (most promising first)"}
    screened = best_of(
        sweep, target, top, "step_time_s", n, progress=lambda s: stage(names[s]), limit=limit, drop_foreign=True
    )
    frame, _ = load_results(target)
    ok = frame[frame["status"] == "ok"].sort_values("step_time_s", kind="stable")
    refused = frame[frame["status"] != "ok"]
    reasons: dict[str, int] = {}
    for text in refused["error"].fillna(""):
        reason = str(text).split(": ", 1)[-1]
        key = OVER_MEMORY if "GiB per GPU" in reason else reason[:100]
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
                "mfu_causal": _number(rec["mfu_causal"]),
                "memory_peak_GiB": float(rec["memory_peak_GiB"]),
            }
        )
    ranked_reasons = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    for why, count in found.dropped.items():  # refused before simulating
        ranked_reasons[why] = ranked_reasons.get(why, 0) + count
    ranked_reasons = dict(sorted(ranked_reasons.items(), key=lambda kv: -kv[1]))
    simulated = len(frame)
    not_run = len(found.points) - simulated
    # the least bound of the layouts not simulated (the next in line); None where every layout was simulated
    # or the next has no bound (it failed alone: -inf from the screening)
    next_bound = screened.next_bound if screened.next_bound is not None and math.isfinite(screened.next_bound) else None
    own = _own(sc, sweep, frame, screened.bounds)
    summary = {
        "scenario": sc.name,
        "fitting": len(found.points),  # layouts that form and fit the GPU's memory (unchecked: no HBM figure)
        "gpu_memory_GiB": hbm,
        "simulated": simulated,  # their steps run: those with no bound first, then the least bounds
        "not_simulated": not_run,
        "fit": len(ok),  # steps that ran ok
        "exact": screened.certified,  # the top rows are the fastest of every layout that fits
        "next_bound_s": next_bound,  # the least step time a layout not simulated could reach (see above)
        "refused": ranked_reasons,
        "searched_keys": searched,  # the scenario's, replaced by every layout's
        "own_layout": own,
        "results": str(target),
        "top": rows,
    }
    # printed as they are: finite and short of the edge (a NIC of 1e-150 Gb/s printed 150-digit step times)
    check_figures_finite(
        str(scenario), sc.model_dump(), {"top": rows, "next_bound_s": next_bound}, files=_read_files(sc), huge=EDGE
    )
    if fmt is Format.json:
        print(json.dumps(summary))
        return
    dropped = sum(found.dropped.values())
    fits = "fit the GPU's memory" if hbm is not None else "form (no memory figure for this GPU to check)"
    table = Table(
        title=Text(
            f"{sc.name}: {len(found.points)} layouts {fits} ({dropped} refused, below); the {len(rows)} fastest "
            f"of the {len(ok)} that ran ({simulated} simulated)"
        )
    )  # (no markup)
    for col in ("layout", "schedule", "DP", "mb", "step s", "tok/s/GPU", "MFU", "GiB"):
        table.add_column(col, justify="left" if col in ("layout", "schedule") else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            Text(str(r["layout"])),
            Text(str(r["schedule"]).replace("interleaved-1f1b", "interleaved")),
            str(r["dp"]),
            str(r["microbatches"]),
            f"{r['step_time_s']:.3f}",
            f"{r['tokens_per_s_per_gpu']:,.0f}",
            "-" if r["mfu_causal"] is None else f"{r['mfu_causal']:.1%}",
            f"{r['memory_peak_GiB']:.1f}",
        )
    out.print(table)
    if screened.certified and not_run and rows:
        out.print(
            f"exact: {simulated} of {len(found.points)} steps simulated; the {not_run} others cannot be faster than "
            f"{next_bound:.3f} s (their lower bounds), the last of the {len(rows)} listed takes "
            f"{rows[-1]['step_time_s']:.3f} s",
            markup=False,
        )
    elif screened.certified:
        out.print(f"exact: every one of the {simulated} layouts simulated", markup=False)
    else:
        best_left = "" if next_bound is None else f": one not simulated could reach {next_bound:.3f} s"
        out.print(
            f"not certain: {simulated} of {len(found.points)} steps simulated (--limit {limit}, the least bounds "
            f"first){best_left}; raise --limit for an exact ranking",
            markup=False,
        )
    out.print(f"the scenario's own layout, {own['layout']}: {_own_text(own)}", markup=False)
    if ranked_reasons:  # (refused when simulated, and before: found.dropped)
        shown = list(ranked_reasons.items())[:5]
        rest = sum(ranked_reasons.values()) - sum(n for _, n in shown)
        more = f"; {rest} more for {len(ranked_reasons) - len(shown)} other reason(s) (--format json lists all)"
        out.print("refused: " + "; ".join(f"{n} x {why}" for why, n in shown) + (more if rest else ""), markup=False)
    if searched:
        out.print(f"searched, not taken from {scenario.name}: {', '.join(searched)}", markup=False)
    out.print(f"every row: {target}", markup=False)


def _own_bound_finite(sc: Any) -> None:
    """Before the search: the scenario's own layout's overflow refused now, naming its inputs, as ``twin
    run`` refuses it (:func:`sim.run.check_bound_finite`; not after every layout is bounded and run, each
    refused alike). A layout of its own that the step refuses is skipped: the search tries others."""
    from sim.assemble import assemble
    from sim.errors import TwinError
    from sim.run import check_bound_finite

    try:
        asm = assemble(sc)
    except TwinError:
        return
    if asm.step is not None:
        check_bound_finite(asm)


def _own(sc: Any, sweep: Any, frame: Any, bounds: dict[str, float]) -> dict[str, Any]:
    """Where the scenario's own layout stands in the search: its label and schedule, whether it was a
    candidate (``searched``: it forms and fits; else why not), whether its step was simulated, its rank
    among the ok steps and its step time, or, not simulated, its lower bound (``bounds``: by point id)."""
    from sim.experiments.layouts import formed, layout_label, own_layout

    mine = next((p for p in sweep.points if p.overrides == own_layout(sc, p.overrides)), None)
    name = sc.pipeline.schedules[0]
    if mine is None:
        like = next((p for p in formed(sc).points if p == own_layout(sc, p)), None)
        why = "over the GPU's memory or refused by the layout builder" if like else "not a layout it tries"
        if like is None:  # the keys a candidate of this model has (EP for an MoE model)
            like = {"workload.ep": None} if sc.model.is_moe_model else {}
        label = layout_label(own_layout(sc, like))
        return {"layout": f"{label} {name}", "searched": False, "why": why}
    got: dict[str, Any] = {"layout": f"{layout_label(mine.overrides)} {name}", "searched": True, "simulated": False}
    rows = frame[frame["point_id"] == mine.point_id]
    if len(rows):
        got["simulated"] = True
        row = rows.iloc[0]
        if row["status"] == "ok":
            ok = frame[frame["status"] == "ok"]
            got["step_time_s"] = float(row["step_time_s"])
            got["rank"] = 1 + int((ok["step_time_s"] < row["step_time_s"]).sum())
        return got
    if mine.point_id in bounds:
        got["bound_s"] = bounds[mine.point_id]
    return got


def _own_text(own: dict[str, Any]) -> str:
    """:func:`_own`'s finding as the table's line says it."""
    if not own["searched"]:
        return f"not searched: {own['why']} (see refused)"
    if own.get("rank") is not None:
        return f"rank {own['rank']} of those simulated, {own['step_time_s']:.3f} s"
    if own["simulated"]:
        return "refused when simulated (see refused)"
    if own.get("bound_s") is not None:
        return f"not simulated: its lower bound is {own['bound_s']:.3f} s"
    return "not simulated"


@plan_app.command("run")
def run_cmd(
    run_file: Annotated[
        Path,
        typer.Argument(
            help="a run file: phases of a base scenario (scenarios/runs/); or a sweep of one: a sweep file whose "
            "base is a run file and whose grid or points set its keys (scenarios/sweeps/run-ramp.yaml)",
            callback=input_file_option,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="folder for run.json and the report (a sweep: sweep.json, steps.parquet and the report) "
            "\\[default: nothing written]",
            callback=output_dir_option,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", parser=Workers, help="a sweep: local processes \\[default: the CPUs]"),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="a sweep with -o: discard the steps already in DIR/steps.parquet")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no progress; with -o, no table either (the files hold it)")
    ] = False,
) -> None:
    """A whole training run: each distinct step of its phases simulated once (a batch ramp's steps at their
    own batch), integrated over the token budget: steps, tokens, days, GPU-hours, dollars and MFU per phase
    and in total, beside the published figures (sim/experiments/run_plan.py); with -o, run.json and the
    run's report (phases table, timeline, cost). A sweep file over a run (sim/experiments/run_sweep.py)
    gives every point's totals and phases; its distinct steps are simulated once for all points (with -o,
    kept in DIR/steps.parquet: a rerun simulates only what is missing)."""
    from sim.cli.plan_run import run_file as run_one
    from sim.cli.plan_run import sweep_file
    from sim.experiments.run_sweep import is_run_sweep

    if is_run_sweep(run_file):
        sweep_file(run_file, output, fmt, quiet, workers, restart)
        return
    for flag, given in (("--workers", workers is not None), ("--restart", restart)):
        if given:
            from sim.errors import ScenarioError

            raise ScenarioError(flag, "applies to a sweep of a run (a sweep file), not to a run file")
    run_one(run_file, output, fmt, quiet)
