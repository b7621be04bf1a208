"""Pieces shared by the command modules: consoles, formats, and the numeric flag parsers.

Every numeric flag of every command is declared with ``parser=Int(lo, hi)`` or
``parser=Float(lo, hi)``: the value is checked for type, finiteness and range while the command
line is parsed, before any work starts, and a bad value is one line such as
``error: --ep: must be a whole number in 1..1,048,576, got '0'`` (``tests/unit/test_bad_inputs.py``
checks that no numeric flag lacks one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sim.errors import ScenarioError, long_words_cut, one_printable_line  # (commands take the first two here)
from sim.keys import as_flag  # the command modules take it from here
from sim.number_text import not_ascii

if TYPE_CHECKING:
    from sim.moe.spec import MoESpec

out = Console()
err = Console(stderr=True)
ARGV: list[str] = []  # the arguments of the running command, as invoke() received them (for provenance)


class _Silent:
    """A status line that shows nothing (``-q``)."""

    def update(self, _message: str) -> None:
        return None


class _Shown:
    """A status line's spinner, whose text ``update`` changes."""

    def __init__(self, spinner: Any) -> None:
        self._spinner = spinner

    def update(self, message: str) -> None:
        self._spinner.update(text=message)


@contextmanager
def status(message: str, quiet: bool = False) -> Iterator[Any]:
    """A spinner on stderr with ``message`` (``.update()`` changes it), or nothing with ``-q``. Unlike
    rich's ``Console.status`` it leaves stdout alone: that one routes what is printed to stdout meanwhile
    through stderr's console, so ``twin run ... --format json > x.json`` on a terminal put the JSON on the
    screen and left ``x.json`` empty."""
    if quiet:
        yield _Silent()
        return
    live, spinner = _spinner_live(message)
    with live:
        yield _Shown(spinner)


def _spinner_live(message: str, auto_refresh: bool = True) -> tuple[Any, Any]:
    """rich's Live showing a spinner with ``message`` on stderr, cleared when it stops, leaving stdout
    alone (see :func:`status`); not started."""
    from rich.live import Live
    from rich.spinner import Spinner

    spinner = Spinner("dots", text=message, style="status.spinner")
    live = Live(
        spinner, console=err, transient=True, redirect_stdout=False, redirect_stderr=False, auto_refresh=auto_refresh
    )
    return live, spinner


def progress_bar(*columns: Any, **options: Any) -> Any:
    """rich's progress bar on stderr, cleared when done, leaving stdout alone: rich's default routes what is
    printed to stdout meanwhile through stderr's console (``twin run --format json > x.json`` on a terminal
    put the JSON on the screen and left ``x.json`` empty). ``options``: ``disable``, ``auto_refresh``."""
    from rich.progress import Progress

    return Progress(*columns, console=err, transient=True, redirect_stdout=False, **options)


@contextmanager
def checking_points(quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A loader's ``progress(done, total)`` (:func:`sim.sweep.spec.load_sweep`) that shows a spinner on
    stderr with the points checked, from its first call with some done (a sweep of a few hundred points
    loads in well under a second and shows nothing), cleared when the block ends; nothing with ``-q``."""
    shown: list[Any] = []  # (the Live, its spinner) once started

    def progress(done: int, total: int) -> None:
        if quiet or done == 0 or (done >= total and not shown):
            return
        text = f"checking the points: {done:,} of {total:,}"
        if not shown:  # (refreshed here, once a call: no thread left behind when a sweep's workers fork)
            shown.extend(_spinner_live(text, auto_refresh=False))
            shown[0].start()
        shown[1].update(text=text)
        shown[0].refresh()

    try:
        yield progress
    finally:
        if shown:
            shown[0].stop()


class Format(StrEnum):
    """Output format of the commands that print results."""

    table = "table"
    json = "json"


@contextmanager
def flag_errors() -> Iterator[None]:
    """Around a command's calls into domain code: a parameter error (``node_limit``) names the
    command-line flag (``--n-limited-groups``), through the one table of :mod:`sim.keys`."""
    try:
        yield
    except ScenarioError as e:
        raise as_flag(e) from None


def given_on_command_line(ctx: typer.Context) -> set[str]:
    """The names of the parameters given on the command line (not left to their defaults)."""
    given = set()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")  # (typer's own click: compared by name)
        if getattr(source, "name", "") == "COMMANDLINE":
            given.add(str(param.name))
    return given


def refuse_given(ctx: typer.Context, names: Iterable[str], why: str) -> None:
    """Refuse the first of the parameters ``names`` given on the command line (not left to its
    default), naming its flag: ``error: --pp: <why>; remove it``."""
    wanted = set(names) & given_on_command_line(ctx)
    for param in ctx.command.params:
        if param.name in wanted:
            flag = str(param.opts[0]) if param.opts[0].startswith("-") else str(param.name).upper()
            raise ScenarioError(flag, f"{why}; remove it")


def refuse_unbound_node_limit(ctx: typer.Context, spec: MoESpec, default: int) -> None:
    """Refuse ``--n-limited-groups`` where its value (``spec``'s) in place of ``default`` changes
    nothing: EP within one node, a limit above the EP group's nodes, or neither it nor ``default``
    limiting a token (:func:`sim.moe.spec.unused_node_limit`, the rule a scenario's
    ``model.n_limited_groups`` is held to)."""
    from sim.moe.spec import unused_node_limit

    if "node_limit" not in given_on_command_line(ctx):
        return
    why = unused_node_limit(spec, default)
    if why is not None:
        flag = next(str(p.opts[0]) for p in ctx.command.params if p.name == "node_limit")
        raise ScenarioError(flag, why)


def check_printed(
    figures: dict[str, Any],
    flags: dict[str, float | None] | None = None,
    profile: Path | None = None,
    topology: tuple[Path, Any] | None = None,
) -> None:
    """A command's figures, printed or written as they are, all finite and short of :data:`sim.run.EDGE`
    (a time of 1e298 s is an overflow in all but name) before anything is printed, plotted or written;
    else one line naming the ``flags`` given (``--name`` or a parameter name: value), the keys of the
    ``profile`` file and of the ``topology`` (its path and its spec) at the edge of floating point that
    produced it, as ``twin run`` names them (:func:`sim.run.check_figures_finite`)."""
    import json

    from sim.run import EDGE, check_figures_finite
    from sim.yamlio import MAX_JSON_BYTES, read_text

    given = {(k if k.startswith("--") else "--" + k.replace("_", "-")): v for k, v in (flags or {}).items()}
    files: list[tuple[str, object]] = []
    if profile is not None:
        files.append((str(profile), json.loads(read_text(profile, "profile", MAX_JSON_BYTES))))
    if topology is not None:
        files.append((str(topology[0]), topology[1].model_dump()))
    check_figures_finite("", {k: v for k, v in given.items() if v is not None}, figures, files=files, huge=EDGE)


def _num(x: float) -> str:
    if abs(x) < 1e10 and (isinstance(x, int) or x.is_integer()):
        return f"{int(x):,}"
    return f"{x:g}"


class Number:
    """A numeric flag's parser: type, finiteness and range (``lo``/``hi`` inclusive unless open)."""

    def __init__(self, kind: type, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open

    @property
    def allowed(self) -> str:
        what = "a whole number" if self.kind is int else "a finite number"
        return f"{what} in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"

    def _bad(self, given: Any) -> ValueError:
        shown = repr(given) if isinstance(given, str) else _num(given)
        return ValueError(f"must be {self.allowed}, got {shown}")

    def __call__(self, given: Any) -> Any:
        value: int | float
        if isinstance(given, bool):
            raise self._bad(given)
        if isinstance(given, int | float):
            value = given
        else:
            text = str(given).strip().replace("_", "")
            if not_ascii(text) is not None:  # int and float read every script's digits (sim.number_text)
                raise self._bad(given)
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise self._bad(given) from None
        if not math.isfinite(value):
            raise self._bad(given)
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise self._bad(given)
                value = int(value)
        else:
            value = float(value)
        below = value <= self.lo if self.lo_open else value < self.lo
        above = value >= self.hi if self.hi_open else value > self.hi
        if below or above:
            raise self._bad(given)
        return value


def Int(lo: int, hi: int) -> Number:
    """A whole number in [lo, hi] (``1e6`` is accepted: it is whole)."""
    return Number(int, lo, hi)


def Float(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Number:
    """A finite number in [lo, hi] (``(lo`` / ``hi)`` when open)."""
    return Number(float, lo, hi, lo_open=lo_open, hi_open=hi_open)


def int_list(text: str, flag: str, parse: Number, limit: int = 64) -> list[int]:
    """A comma-separated list of whole numbers, each checked by ``parse`` (e.g. ``--sms 4,8,16``)."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ScenarioError(flag, f"give one or more whole numbers like 20 or 4,8,16, got {text!r}")
    if len(parts) > limit:
        raise ScenarioError(flag, f"give at most {limit} values, got {len(parts)}")
    values = []
    for p in parts:
        if not p:
            raise ScenarioError(flag, f"empty item in {text!r}; give values like 4,8,16")
        try:
            values.append(int(parse(p)))
        except ValueError as e:
            raise ScenarioError(flag, f"{e}") from None
    return values


def name_list(text: str, flag: str, known: Any, what: str = "name") -> list[str]:
    """A comma-separated list of distinct names from ``known`` (e.g. ``--schedules 1f1b,zb1p``)."""
    names = [s.strip() for s in text.split(",")]
    if not any(names):
        raise ScenarioError(flag, f"give one or more of {', '.join(known)}, got {text!r}")
    for n in names:
        if n not in known:
            raise ScenarioError(flag, f"unknown {what} {n!r}; choose from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ScenarioError(flag, f"a {what} is listed twice")
    return names


def input_file(path: Path | None, flag: str, what: str = "file") -> None:
    """An input file flag must name an existing regular file (checked before work starts)."""
    if path is None:
        return
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioError(flag, f"no such {what}: {path}") from None
    except OSError as e:
        raise ScenarioError(flag, f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise ScenarioError(flag, f"{path} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise ScenarioError(flag, f"{path} is not a regular file (a device, pipe or socket)")


# ---- the command-line boundary: one line, exit status 2 -------------------------------------------


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived: unwinds like KeyboardInterrupt so temporaries are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _param_name(param: Any) -> str:
    if param is None:
        return ""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    if getattr(param, "param_type_name", "") == "argument" or not opts:
        return str(getattr(param, "name", "") or "").upper()
    return opts[0]  # the primary name: the scenario key's, where an old name is kept as an alias


_PYDANTIC = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}


def usage_line(e: Exception) -> str:
    """A typer/click usage error as one line ``FLAG: what was wrong (got X)``."""
    ce = click_exceptions()

    if isinstance(e, ce.NoSuchOption):
        msg = f"{e.option_name}: no such option"
        if e.possibilities:
            msg += f"; did you mean {', '.join(sorted(e.possibilities))}?"
        return msg
    if isinstance(e, ce.MissingParameter):
        name = _param_name(e.param) or (str(e.param_hint) if e.param_hint else "")
        what = "argument" if getattr(e.param, "param_type_name", "") == "argument" else "option"
        return f"{name}: required {what} is missing"
    if isinstance(e, ce.BadParameter):
        name = _param_name(e.param) or (str(e.param_hint) if e.param_hint else "")
        msg = " ".join(str(e.message).split()).removeprefix("Value error, ").rstrip(".")
        errors = getattr(e.__cause__, "errors", None)
        if callable(errors):
            try:
                first = errors()[0]
            except (IndexError, TypeError, AttributeError):
                first = {}
            msg = _PYDANTIC.get(first.get("type", ""), msg)
            given = first.get("input")
            if isinstance(given, str) and repr(given) not in msg and "got " not in msg:
                msg += f", got {given!r}"
        return f"{name}: {msg}" if name else msg
    if isinstance(e, ce.BadOptionUsage):
        msg = " ".join(str(e.message).split())
        if "requires an argument" in msg:
            return f"{e.option_name}: needs a value"
        if "does not take a value" in msg:
            return f"{e.option_name}: is a switch and takes no value (give --flag or leave it out)"
        return msg
    return " ".join(str(getattr(e, "message", e)).split())


def click_exceptions() -> Any:
    """click's exception classes: vendored as ``typer._click`` by recent typer, else click itself."""
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


def utf8_arguments(args: list[str], command: Any) -> None:
    """Every argument is UTF-8 text. A name holding a byte that is not (a Latin-1 file name, ``$'p\\xfe'``)
    reaches Python as a lone surrogate, which no output can hold (JSON, a report's provenance, Parquet's
    path): ``twin run -o``, ``report``, ``serve`` and ``plan run`` broke on it with a UnicodeEncodeError
    traceback, leaving an empty folder. Refused before anything runs, naming the option of ``command``
    (the click command the arguments go to) whose value it is (``-o VALUE``, ``--output=VALUE``,
    ``-oVALUE``), or ``argument`` for a positional one."""
    import os

    for i, arg in enumerate(args):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as e:
            bad = os.fsencode(arg[e.start])[0]
            flag, arg = _option_of(command, args, i)
            why = f"{os.fsencode(arg)!r} holds the byte 0x{bad:02X}, which is not UTF-8; give a name in UTF-8"
            raise ScenarioError(flag, why) from None


def _option_of(command: Any, args: list[str], i: int) -> tuple[str, str]:
    """(the option whose value ``args[i]`` is, that value) for the subcommand ``args`` name; ("argument",
    ``args[i]``) where it is a positional argument (or a boolean flag stands before it). (Read by the
    attributes every click command has: typer carries its own copy of click's classes.)"""
    for word in args[:i]:  # the subcommand: group names are walked down (twin's commands load lazily)
        get = getattr(command, "get_command", None)
        sub = get(None, word) if callable(get) and not word.startswith("-") else None
        command = sub if sub is not None else command
    valued = [
        name
        for p in getattr(command, "params", [])
        if getattr(p, "param_type_name", "") == "option" and not p.is_flag and not p.count
        for name in p.opts
    ]
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        flag, value = arg.split("=", 1)
        return flag, value
    short = next((n for n in valued if len(n) == 2 and arg.startswith(n) and len(arg) > 2), None)
    if short is not None:  # -oVALUE
        return short, arg[2:]
    if i and args[i - 1] in valued:
        return args[i - 1], arg
    return "argument", arg


def _aborted(e: BaseException) -> str:
    """click turns an ``EOFError`` anywhere in a command into ``Abort``: the line says which, not only
    ``aborted`` (a ``.pyc`` cut short by a full disk raised ``EOF read where object expected`` at every
    later import, and the line gave no clue)."""
    cause = e.__cause__ or e.__context__
    if isinstance(cause, EOFError):
        return f"aborted: EOFError: {cause}" if str(cause) else "aborted: EOFError (end of input)"
    return "aborted"


def _interruption(line: str) -> str:
    """``line`` ('interrupted', 'terminated') and where the results are, if the signal came as a commit
    ended (:func:`sim.outputs.landed_before_interruption`; the module is loaded where a command wrote)."""
    import sys

    outputs = sys.modules.get("sim.outputs")
    landed = outputs.landed_before_interruption() if outputs is not None else ""
    return f"{line} {landed}" if landed else line


class NamedStream:
    """A command's ``sys.stdout``: an OSError writing or flushing it (a full disk under ``> file``, an I/O
    error) names it, as a failed output file is named (``error: stdout: No space left on device``, which
    said only ``No space left on device``). Everything else is the stream's own."""

    def __init__(self, stream: Any, name: str) -> None:
        self._stream = stream
        self._name = name

    def _named(self, err: OSError) -> OSError:
        if err.filename is None:
            err.filename = self._name
        return err

    def write(self, text: str) -> Any:
        try:
            return self._stream.write(text)  # (what the stream returns: some return None)
        except OSError as e:
            raise self._named(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            raise self._named(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def invoke(app: Any, argv: list[str] | None, prepare: Any = None, exiting: bool = False) -> int:
    """Run the typer ``app`` on ``argv``; every user error becomes one line ``error: ...`` on stderr
    and status 2. SIGTERM/SIGHUP unwind like Ctrl-C (temporaries removed; status 143/129/130);
    warnings (numpy's) are shown only when the command succeeds. ``exiting`` (the console script):
    once the command is over the process only exits, so a signal that comes then is ignored rather
    than killing the process mid-teardown with the default action (its work is already in place)."""
    import os
    import signal
    import sys
    import threading
    import warnings

    import typer
    import typer.main

    ce = click_exceptions()

    from sim.errors import TwinError

    def on_signal(signum: int, _frame: Any) -> None:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # cleanup must not be interrupted
            signal.signal(s, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # the width now, not when the consoles were made (one process, several commands)
        out.width = err.width = int(columns)
    saved = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            saved[s] = signal.signal(s, on_signal)
    line = None
    code = 0
    caught: list[warnings.WarningMessage] = []
    if "sim.outputs" in sys.modules:  # (an earlier command's commit is not this one's)
        sys.modules["sim.outputs"].forget_landed()
    stdout = sys.stdout
    main_thread = threading.current_thread() is threading.main_thread()  # (sys.stdout is the process's)
    if main_thread and stdout is not None and not isinstance(stdout, NamedStream):
        sys.stdout = NamedStream(stdout, "stdout")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                command = typer.main.get_command(app)
                utf8_arguments(ARGV, command)
                if prepare is not None:
                    prepare(command)
                rv = command.main(args=argv, prog_name="twin", standalone_mode=False)
                code = rv if isinstance(rv, int) else 0
                if code == 130:  # (typer turns a KeyboardInterrupt inside the command into exit 130)
                    line = _interruption("interrupted")
            except ce.NoArgsIsHelpError:
                code = 2  # the help was printed
            except ce.UsageError as e:
                line, code = usage_line(e), 2
            except typer.Abort as e:
                line, code = _aborted(e), 1
            except TwinError as e:
                line, code = str(e), 2
            except KeyboardInterrupt:
                line, code = _interruption("interrupted"), 130
            except Terminated as e:
                line, code = _interruption("terminated"), 128 + e.signum
            except RecursionError:
                line, code = "input nested too deeply", 2
            except MemoryError:
                line, code = "ran out of memory; use a smaller size", 2
            except OSError as e:  # (a file name of thousands of characters: cut below, long_words_cut)
                where = f"{e.filename}: " if e.filename else ""
                line, code = f"{where}{e.strerror or e}", 2
    finally:
        for s, handler in saved.items():
            signal.signal(s, signal.SIG_IGN if exiting else handler)
        if main_thread:
            sys.stdout = stdout
    if code == 0:  # once the recording has stopped (inside it, showing one records it again: for ever)
        shown = set()
        for w in caught:
            origin = (str(w.message), w.category, w.filename, w.lineno)
            if origin not in shown:  # each once, as the "default" filter would have shown them
                shown.add(origin)
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if line is not None:
        print(f"error: {long_words_cut(one_printable_line(line))}", file=sys.stderr)
    return code


def output_dir_option(_ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` for an output-folder option: checked before the command runs."""
    from sim.outputs import check_output_dir

    check_output_dir(value, _param_name(param))
    return value


# the options of a command that simulates a scenario into DIR/<scenario name>/ (twin run, twin serve)
RunOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="folder; the outputs go to DIR/<scenario name>/ \\[default: out; with --format json nothing is "
        "written unless -o is given]",
        callback=output_dir_option,
    ),
]
RunFormat = Annotated[Format, typer.Option("--format", help="table, or json on stdout")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress, no summary")]


def file_name(text: str) -> Path:
    """``parser=`` of an output-file option: an empty name is refused as given (``Path('')`` reads as
    ``.``, so ``-o ''`` was refused as ``got '.'``, a name never given); the rest is checked by
    :func:`output_file_option`."""
    if not text:
        raise ValueError("give a file name, got ''")
    return Path(text)


def output_file_option(_ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` for an output-file option (JSON, CSV ...): checked before the command runs."""
    from sim.outputs import check_output_file

    check_output_file(value, _param_name(param))
    return value


def json_file_option(_ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` for a JSON output (a trace, a partial profile): a writable ``.json`` file (a trace
    written over a user's ``notes.txt`` replaced it, exit 0)."""
    from sim.outputs import check_output_file

    check_output_file(value, _param_name(param), (".json",))
    return value


def plot_file_option(_ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` for a plot option: a writable file with a known extension (.png, .svg, .pdf)."""
    from sim.outputs import PLOT_SUFFIXES, check_output_file

    check_output_file(value, _param_name(param), PLOT_SUFFIXES)
    return value


def input_file_option(_ctx: Any, param: Any, value: Path | None) -> Path | None:
    """``callback=`` for an input-file option: an existing regular file."""
    name = _param_name(param)
    input_file(value, name, "profile" if "profile" in name.lower() else "file")
    return value


def input_files_option(_ctx: Any, param: Any, value: list[Path] | None) -> list[Path] | None:
    """``callback=`` for a list of input files: each an existing regular file."""
    for path in value or []:
        input_file(path, _param_name(param))
    return value


def require_routing_memory(tokens: int, ep: int) -> None:
    """Routing ``tokens`` on each of ``ep`` GPUs fits this machine's memory
    (:func:`sim.limits.require_memory`, :data:`sim.limits.ROUTING_TOKEN_GPU_BYTES` a token and GPU);
    else refused naming the flag further past its default (``twin chunk --ep 1048576`` was blamed on
    ``--tokens``)."""
    from sim.limits import ROUTING_TOKEN_GPU_BYTES, require_memory
    from sim.model.spec import DEEPSEEK_V3
    from sim.step.layout import DEFAULT_EP

    flag = "--ep" if ep / DEFAULT_EP > tokens / DEEPSEEK_V3.seq_len else "--tokens"
    hint = "use a smaller --ep" if flag == "--ep" else "use fewer --tokens"
    require_memory(tokens * ep * ROUTING_TOKEN_GPU_BYTES, f"routing {tokens:,} tokens on each of {ep} GPUs", flag, hint)
