"""``twin compile``: build the step's event loop with mypyc, kept for these sources (:mod:`sim.compiled`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from sim.cli.common import ScenarioError, err, out


def compile_cmd(
    check: Annotated[
        bool, typer.Option("--check", help="say whether runs load a build of these sources; build nothing")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="build again though a build of these sources is kept")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress, no summary")] = False,
) -> None:
    """Compile the step's event loop with mypyc (optional; about a minute, once per version of the
    sources): later runs load it in place of its sources and take about 0.75x the time, with the same
    results bit for bit (checked on four runs before the build is kept). Needs mypy (pip install -e
    '.[compiled]'), a C compiler and Python's headers. TWIN_COMPILED=0 turns it off."""
    from sim import compiled

    if check:
        if force:
            raise ScenarioError("--force", "not used with --check (which builds nothing); give one or the other")
        _status()
        return
    say = (lambda _m: None) if quiet else (lambda m: err.print(m, markup=False, highlight=False, soft_wrap=True))
    built = compiled.build(say, force=force)
    if quiet:
        return
    if built.reused:
        out.print(
            f"a build of these sources is kept in {built.folder}: runs load it (--force builds it again)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    lines = [
        f"compiled {len(compiled.MODULES)} modules in {built.compile_s:.0f} s into {built.folder}",
        "checked on the same figures, bit for bit, from the sources and compiled (seconds, whole run):",
        *(f"  twin {what}: {a:.2f} s, then {b:.2f} s" for what, a, b in built.checks),
        "runs of these sources now load it (an edited source is not: twin compile again)",
    ]
    if os.environ.get(compiled.OFF, "") == "0":
        lines.append(f"({compiled.OFF}=0 is set here: runs with it use the sources)")
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _status() -> None:
    from sim import compiled

    if os.environ.get(compiled.OFF, "") == "0":
        line = f"{compiled.OFF}=0: runs use the sources"
    elif compiled.active() is not None:
        line = f"runs load the build in {compiled.active()} ({len(compiled.MODULES)} modules compiled)"
    else:
        try:
            where = str(compiled.cache_root())
        except RuntimeError:  # (no home folder)
            where = f"a cache folder (there is no home folder: set {compiled.CACHE})"
        line = (
            f"no build of these sources under {where} (key {compiled.build_key()}): runs use the sources; twin "
            "compile builds one"
        )
    out.print(line, markup=False, highlight=False, soft_wrap=True)


__all__ = ["compile_cmd"]
