"""The ``twin`` command: thin commands over sim.run / sim.results and reports.

Every user error (bad scenario, impossible layout, invalid schedule) prints one line
``error: <file>: <key>: <what is allowed>`` to stderr and exits with status 2.

Start-up is kept short: this module imports typer and nothing of the simulator. Each command lives
in its own module (:data:`COMMANDS`), imported only when that command runs or shows its help, so
``twin --help`` and ``twin --version`` load neither numpy, pandas, scipy, matplotlib nor torch (a
test checks it). The listing of ``twin --help`` comes from :data:`COMMANDS`' one-line summaries.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from sim import __version__

# typer 0.29 lists an on/off flag with the type column ``<bool>``, which reads as if the flag took a
# value (``--quiet <bool>``); a flag takes none, so its type column stays empty.
_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type(self, ctx)  # type: ignore[method-assign]


@dataclass(frozen=True)
class Command:
    module: str  # under sim.cli
    attr: str  # a command function or a typer.Typer group in that module
    summary: str  # the line ``twin --help`` lists


COMMANDS: dict[str, Command] = {
    "run": Command("run", "run_cmd", "Simulate a scenario (default: a DeepSeek-V3 step) and write its outputs."),
    "serve": Command("serve", "serve_cmd", "Simulate a serving deployment: TTFT, TPOT, tokens/s per node, goodput."),
    "report": Command("report", "report_cmd", "Write the HTML and Markdown report of a scenario or a co-design study."),
    "validate": Command(
        "validate", "validate_cmd", "Check a scenario, sweep, co-design or run file without running it."
    ),
    "check": Command(
        "validate",
        "check_app",
        "The twin beside DeepSeek's trace, DeepEP's figures, the kernels, every published figure.",
    ),
    "sweep": Command("sweep", "sweep_cmd", "Run every point of a sweep in parallel; a rerun skips what is done."),
    "compare": Command("sweep", "compare_cmd", "Rank a sweep's points by one figure; the Pareto front of two."),
    "chunk": Command(
        "chunk", "chunk_cmd", "Time a chunk of layers on the compute, weight-gradient and DeepEP streams."
    ),
    "alltoall": Command("moe", "alltoall_cmd", "Dispatch and combine of one MoE layer: time, bytes, DeepEP bandwidth."),
    "balance": Command("moe", "balance_cmd", "Auxiliary-loss-free balancing on skewed routing, step by step."),
    "collective": Command(
        "network", "collective_cmd", "A collective on the flow-level network, as nccl-tests prints it."
    ),
    "schedules": Command("schedules", "schedules_app", "Pipeline schedules: list, show, check, compare, plot, trace."),
    "topology": Command("network", "topology_app", "Cluster topologies: counts, bisection, cost."),
    "calibrate": Command("calibrate", "calibrate_app", "Calibration profiles: datasheet, import, run, show, predict."),
    "model": Command("model", "model_app", "Model specs: parameters, active parameters, FLOPs per token."),
    "plan": Command("plan", "plan_app", "Plan a training run: rank the layouts that fit; cost a whole run."),
    "compile": Command(
        "compile", "compile_cmd", "Compile the step's event loop (optional, once): 0.75x the time, the same bits."
    ),
}

_BACKTICKS = re.compile(r"``([^`]+)``")


def _plain(text: str | None) -> str | None:
    """Help text as a terminal shows it: paragraphs reflowed, reST's ````code```` as 'code'."""
    if not text:
        return text
    text = _BACKTICKS.sub(r"'\1'", text)
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def _tidy(cmd: Any) -> Any:
    """Reflow the help of ``cmd`` and of every subcommand under it (docstrings keep their source line
    breaks); a subcommand's listed line is the first sentence of its help."""
    cmd.help = _plain(cmd.help)
    cmd.params = [p for p in cmd.params if p.name not in ("install_completion", "show_completion")]
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)
        if not sub.short_help and sub.help:
            first = sub.help.split("\n\n")[0]
            sub.short_help = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]
    return cmd


class LazyGroup(TyperGroup):
    """The root group: commands of :data:`COMMANDS` are imported when first asked for; while the
    root's help is formatted they are listed from their summaries, without importing them."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        entry = COMMANDS.get(cmd_name)
        if cmd is not None or entry is None:
            return cmd
        if self._listing:
            import click

            return click.Command(cmd_name, help=entry.summary, short_help=entry.summary)
        obj = getattr(importlib.import_module(f"sim.cli.{entry.module}"), entry.attr)
        if isinstance(obj, typer.Typer):
            cmd = typer.main.get_group(obj)  # a group even with one subcommand (twin topology show)
        else:
            single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
            single.command(cmd_name)(obj)
            cmd = typer.main.get_command(single)
        cmd = _tidy(cmd)
        cmd.name, cmd.short_help = cmd_name, entry.summary
        self.commands[cmd_name] = cmd
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="clustertwin: a discrete-event twin of a GPU training cluster.",
)


def _version(value: bool) -> None:
    if value:
        print(f"clustertwin {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", is_eager=True, callback=_version)
    ] = False,
) -> None:
    """clustertwin: a discrete-event twin of a GPU training cluster."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit status 2 (sim.cli.common.invoke)."""
    from sim.cli.common import invoke

    code = invoke(app, argv, exiting=argv is None)
    if argv is None:  # the console script: the process only exits now
        _leave(code)
    raise SystemExit(code)  # argv given: called in-process (tests)


def _leave(code: int) -> None:
    """Exit with ``code`` without the interpreter's teardown, which frees every object of the run one
    by one (about 0.09 s of a default ``twin run --format json``, 7% of it) for nothing: the exit
    handlers run (a process pool's, a temporary folder's), the output is flushed, then ``os._exit``.
    Returns (the caller exits normally) where another thread still runs, which a normal exit would
    wait for, or where flushing fails (a closed pipe: the normal exit reports it as before)."""
    import atexit
    import os
    import sys
    import threading

    if threading.active_count() != 1:
        return
    getattr(atexit, "_run_exitfuncs")()  # noqa: B009 - CPython's own exit handlers, as a normal exit runs them
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # (None: started with the stream closed, '>&-')
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code)
