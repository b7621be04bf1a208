"""``twin topology show`` and ``twin collective``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sim.cli.common import Float, Format, Int, Number, check_printed, err, flag_errors, out, progress_bar, refuse_given
from sim.config import read_for
from sim.errors import ScenarioError
from sim.limits import MAX_BYTES, MAX_GPUS, MAX_SEED, require_memory
from sim.network.collectives import ALGORITHMS, KINDS
from sim.network.nccl_sweep import SIZE_FORMS, nccl_tests_text, parse_size, run_sweep, sweep_sizes
from sim.network.routing import ecmp_hashes_among
from sim.network.spec import build_cluster, load_cluster
from sim.network.tolerance import COMPLETION_RTOL

DEFAULT_BYTES = 32 << 20  # nccl-tests' default -b and -e (32M)
FLOW_BYTES = 512  # memory per simultaneous flow (route, rates, bookkeeping), measured at 1-4 M flows


def max_alltoall_gpus() -> int:
    """The largest all-to-all whose flow table fits in 80% of the memory available now."""
    from sim.limits import available_memory

    return int((0.8 * available_memory() / FLOW_BYTES) ** 0.5)


topology_app = typer.Typer(no_args_is_help=True, help="Cluster topologies: counts, bisection, cost.")


@topology_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="topology YAML (see topologies/)")],
    fmt: Annotated[Format, typer.Option("--format", help="table, or json on stdout")] = Format.table,
) -> None:
    """Counts of GPUs, nodes, switches and links, bisection bandwidth and cost."""
    from sim.run import check_figures_finite

    topo = build_cluster(file)
    title = f"{topo.spec.name} ({topo.layout.kind if topo.layout else 'single node'})"
    summary = topo.summary()
    check_figures_finite(str(file), topo.spec.model_dump(), summary)
    _emit(summary, fmt, title, "{:,.0f}")


class Size(Number):
    """A size flag read as nccl-tests reads ``-b``/``-e``/``-i`` (``8``, ``1K``, ``128M``, ``1G``); a
    :class:`Number` so that the checks every numeric flag gets (``tests/unit/test_bad_inputs.py``) apply."""

    def __init__(self) -> None:
        super().__init__(float, 1, MAX_BYTES)

    @property
    def allowed(self) -> str:
        return f"{SIZE_FORMS} in [1, {MAX_BYTES:g}]"

    def __call__(self, given: Any) -> Any:
        if isinstance(given, str):
            given = parse_size(given)
        return super().__call__(given)


def _size_option(flags: tuple[str, str], what: str, default: str) -> Any:
    help_text = f"{what}: 8, 1K, 128M, 1G \\[default: {default}]"  # (a string show_default is shown in parentheses)
    return typer.Option(*flags, parser=Size(), metavar="SIZE", show_default=False, help=help_text)


def collective_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(KINDS)}")],
    cluster: Annotated[Path, typer.Option("--topology", "--cluster", help="topology YAML, as cluster.topology")],
    gpus: Annotated[int, typer.Option("--gpus", parser=Int(2, MAX_GPUS), help="ranks: GPUs 0..N-1 of the cluster")],
    minbytes: Annotated[float | None, _size_option(("-b", "--minbytes"), "smallest size", "32M")] = None,
    maxbytes: Annotated[float | None, _size_option(("-e", "--maxbytes"), "largest size", "32M")] = None,
    stepfactor: Annotated[
        int,
        typer.Option("-f", "--stepfactor", parser=Int(1, 1 << 20), help="multiply each size by this; 1: add -i"),
    ] = 1,
    stepbytes: Annotated[float, _size_option(("-i", "--stepbytes"), "increment when -f is 1", "1M")] = float(1 << 20),
    size_bytes: Annotated[
        float | None,
        typer.Option(
            "--size-bytes",
            parser=Float(1, MAX_BYTES),
            help="one size, the same as -b X -e X (kept for older scripts)",
        ),
    ] = None,
    algorithm: Annotated[str, typer.Option("--algorithm", help=f"one of {', '.join(ALGORITHMS)}")] = "ring",
    seed: Annotated[
        int | None, typer.Option("--seed", parser=Int(0, MAX_SEED), help="ECMP hash seed \\[default: the topology's]")
    ] = None,
    completion_rtol: Annotated[
        float,
        typer.Option(
            "--completion-rtol",
            parser=Float(0, 1, hi_open=True),
            help="flows within this fraction of their age finish together; 0 = exact",
        ),
    ] = COMPLETION_RTOL,
    fmt: Annotated[Format, typer.Option("--format", help="table: nccl-tests' output; json: one record a line")] = (
        Format.table
    ),
) -> None:
    """Simulate a collective on the flow-level network over nccl-tests' size sweep, printed as nccl-tests does.

    Sizes: -b 8 -e 128M -f 2 (or -i 1M with -f 1); one size: -b 1G -e 1G, or --size-bytes 1e9.

    Columns: size, count, type, redop, root; time (us), algbw, busbw (GB/s), #wrong out-of-place and in-place.

    The twin moves no data (#wrong is N/A) and models no in-place difference (in-place repeats out-of-place).
    """
    if stepfactor > 1:
        refuse_given(
            ctx, ("stepbytes",), f"not used with -f {stepfactor} (sizes grow by the factor; -i adds with -f 1)"
        )
    if size_bytes is not None:
        if minbytes is not None or maxbytes is not None:
            raise ScenarioError("--size-bytes", "give either --size-bytes or -b/-e, not both")
        minbytes = maxbytes = size_bytes
    low = int(minbytes if minbytes is not None else DEFAULT_BYTES)
    high = int(maxbytes if maxbytes is not None else DEFAULT_BYTES)
    if maxbytes is None and low > high:
        raise ScenarioError("--maxbytes", f"defaults to 32M (as in nccl-tests), less than -b {low:,} B; give -e")
    with flag_errors():
        sizes = sweep_sizes(max(low, 1), high, stepfactor, int(stepbytes))
    with read_for("--topology", "topology"):
        spec = load_cluster(cluster)
    if gpus > spec.gpus:
        raise ScenarioError("--gpus", f"need 2..{spec.gpus} GPUs on this cluster ({cluster}), got {gpus}")
    if gpus <= spec.node.gpus_per_node:  # the collective's GPUs are the cluster's first: one node's
        refuse_given(ctx, ("seed",), f"not used: {gpus} GPUs are one node (NVLink alone: no switch hashes a flow)")
        if algorithm == "hierarchical":  # (its phase across nodes has one GPU a ring: it ran the ring itself)
            why = f"not used: {gpus} GPUs are one node, so a hierarchical {kind} is the ring inside it; give ring"
            raise ScenarioError("--algorithm", why)
    if size_bytes is not None and size_bytes != int(size_bytes):  # (1.5 was cut to 1 B: a row of 0 elements)
        raise ScenarioError("--size-bytes", f"a size is a whole number of bytes, got {size_bytes:g}")
    flows = gpus * (gpus - 1) if kind == "alltoall" else 64 * gpus
    require_memory(
        flows * FLOW_BYTES,
        f"this {kind} of {gpus:,} GPUs has {flows:,} flows at once; its flow table",
        "--gpus",
        f"use fewer GPUs (at most about {max_alltoall_gpus():,} for an all-to-all here)",
    )
    topo = build_cluster(cluster)
    if gpus > spec.node.gpus_per_node and not ecmp_hashes_among(topo, gpus):
        leaf = "sit under one leaf switch per plane, and ECMP hashes only flows between leaves"
        why = f"not used: GPUs 0..{gpus - 1} {leaf}"
        refuse_given(ctx, ("seed",), why)
    with flag_errors(), _progress(len(sizes), f"{kind} on {gpus} GPUs") as advance:
        rows = run_sweep(topo, kind, gpus, sizes, algorithm, seed, completion_rtol, advance)
    records = [r.record() for r in rows]
    for record in records:
        check_printed(record, topology=(cluster, topo.spec))
    if fmt is Format.json:
        print("\n".join(json.dumps(r) for r in records))
        return
    where = f"GPUs 0..{gpus - 1} of {topo.spec.name}"
    print(nccl_tests_text(rows, where, (low, high, stepfactor, int(stepbytes))), end="")


@contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[[int], None] | None]:
    """A bar on a terminal's stderr for a sweep of several sizes (each one a simulation)."""
    if total < 2 or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task(f"{what}: {total} sizes", total=total)
        yield lambda done: bar.update(task, completed=done)


def _emit(data: Mapping[str, object], fmt: Format, title: str, float_format: str) -> None:
    """Print a flat mapping as JSON or as a two-column table."""
    if fmt is Format.json:
        print(json.dumps(data))
        return
    table = Table(title=Text(title))  # (Text: a topology's name or a list value is never read as markup)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, Text(float_format.format(value) if isinstance(value, float) else f"{value}"))
    out.print(table)
