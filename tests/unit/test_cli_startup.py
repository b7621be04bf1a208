"""The command line starts fast and reads as text: ``twin --help`` and ``twin --version`` import none of
the heavy libraries (each command's module is imported only when it runs), every command's help has
no ``<bool>`` type after an on/off flag, no reST double backticks and no source line breaks inside a
paragraph, and the listing of ``twin --help`` names every command."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from sim.cli import COMMANDS, app

HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "torch", "simpy", "pydantic", "pyarrow")


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_the_root_loads_no_heavy_library(args: list[str]) -> None:
    code = (
        f"import sys\nfrom sim.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('loaded:', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "loaded: ", done.stdout


def _every_command() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        paths.append(path)
        for name in getattr(cmd, "list_commands", lambda _ctx: [])(None):
            walk(cmd.get_command(None, name), [*path, name])  # type: ignore[attr-defined]

    walk(root, [])
    return paths


def test_every_help_reads_as_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.cli import main

    monkeypatch.setenv("COLUMNS", "300")
    paths = _every_command()
    assert {p[0] for p in paths if p} == set(COMMANDS)
    for path in paths:
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        text = capsys.readouterr().out
        assert "Usage: twin" in text, path
        assert "<bool>" not in text and "``" not in text, (path, text)
        assert "--install-completion" not in text, path
        described = [
            line for line in text.splitlines() if line.strip() and not line.strip().startswith(("│", "╭", "╰", "Usage"))
        ]
        assert len(described) <= 6, (path, described)  # paragraphs reflowed: a few lines, not the docstring's


def test_a_json_run_loads_only_what_the_simulation_needs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``twin run --format json`` on the default step prints its figures without loading the libraries
    of outputs (pandas, pyarrow, matplotlib), of calibration (torch; scipy: the shipped profile carries
    its GEMM fit) or of inspection (networkx), and writes nothing."""
    cwd = tmp_path_factory.mktemp("json-run")
    lazy = ("pandas", "pyarrow", "matplotlib", "torch", "scipy", "networkx")
    code = (
        "import sys\nfrom sim.cli import main\ntry:\n    main(['run', '--format', 'json'])\n"
        "except SystemExit:\n    pass\n"
        f"print('loaded:', ','.join(m for m in {lazy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    assert done.stdout.splitlines()[-1] == "loaded: ", done.stdout
    assert '"step_time_s"' in done.stdout.splitlines()[0]
    assert not any(cwd.iterdir())


# ------------------------------------------------------------------ leaving without the teardown
# The console script leaves by os._exit once the command is over (sim.cli._leave): the exit status,
# everything printed and the exit handlers must be as a normal exit leaves them.
LEAVE = (
    "import atexit, sys, threading\nfrom pathlib import Path\nimport sim.cli\n"
    "atexit.register(lambda: Path(sys.argv[1]).write_text('handlers ran'))\n"
    "if sys.argv[2] == 'thread':\n"
    "    threading.Thread(target=lambda: __import__('time').sleep(0.3)).start()\n"
    "print('x' * 200_000)\n"  # more than a pipe holds: printed only if stdout is flushed
    "sim.cli._leave(3)\n"
    "print('returned')\n"
)


@pytest.mark.parametrize("thread", [False, True])
def test_leaving_keeps_status_output_and_exit_handlers(tmp_path, thread: bool) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    mode = "thread" if thread else "alone"
    done = subprocess.run([sys.executable, "-c", LEAVE, str(marker), mode], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "x" * 200_000
    assert marker.read_text() == "handlers ran"
    if thread:  # another thread runs: _leave returns and the normal exit waits for it
        assert lines[1:] == ["returned"] and done.returncode == 0
    else:
        assert lines[1:] == [] and done.returncode == 3


def test_the_console_script_keeps_its_status_and_error_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(tmp_path / "none.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'none.yaml'}: no such scenario file"
    version = subprocess.run([sys.executable, "-m", "sim", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("clustertwin ")


def test_every_stated_default_shows_in_the_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A help text's own ``[default: ...]`` (a default the flag works out: ``out/<name>``, the
    datasheet's, EP/8) is shown: rich reads an unescaped ``[default: ...]`` as a style tag and dropped it
    from 38 flags' help."""
    import re

    from sim.cli import main

    monkeypatch.setenv("COLUMNS", "300")  # (one line per option: the stated default is not wrapped)
    root = typer.main.get_command(app)
    checked = 0
    for path in _every_command():
        cmd = root
        for name in path:
            cmd = cmd.get_command(None, name)  # type: ignore[attr-defined]
        stated = [
            re.sub(r"\s+", " ", m.group(0)).replace("\\", "")
            for p in getattr(cmd, "params", [])
            for m in re.finditer(r"\\?\[default: [^\]]*\]", getattr(p, "help", None) or "")
        ]
        if not stated:
            continue
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        text = re.sub(r"[\s│]+", " ", capsys.readouterr().out)
        for default in stated:
            assert default in text, (path, default)
            checked += 1
    assert checked >= 38
