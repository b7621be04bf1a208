"""No output and no help text holds the absolute path of the checkout that wrote it: the twin runs
from a temporary copy of the checkout (``../shared`` beside it, as CI has it) and every file it
writes, everything it prints and the help of every command are searched for that copy's path.

What runs there: the help of every command and subcommand; ``twin run`` and ``twin report`` of the
DualPipe table scenario (summary, spans, traces, Gantt charts, HTML and Markdown with provenance);
a sweep whose point is refused because of a topology file (the refusal names that file in the
stored row); ``twin validate`` of a bad scenario."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim.paths import REPO

DRIVER = r"""
import contextlib, io, sys
import click, typer.main
from sim.cli import app, main

def every_command(cmd, path):
    yield path
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from every_command(sub, [*path, name])

def twin(args):
    with contextlib.suppress(SystemExit):
        main(args)

for path in every_command(typer.main.get_command(app), []):
    twin([*path, "--help"])
twin(["run", "scenarios/dualpipe-table.yaml", "-o", "out", "-q"])
twin(["report", "scenarios/dualpipe-table.yaml", "-o", "out", "-q"])
twin(["sweep", "refused.yaml", "-o", "out/refused.parquet", "--workers", "1"])
twin(["validate", "bad.yaml"])
"""


def _copy(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if not src.is_file() or rel.startswith("reports/examples/"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


def test_no_output_or_help_text_names_the_checkout(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy")
    copy = tmp_path / "checkout-elsewhere"
    _copy(copy)
    shared = REPO.parent / "shared"
    if shared.exists():
        (tmp_path / "shared").symlink_to(shared)
    (copy / "refused.yaml").write_text(
        "name: refused\nbase: scenarios/deepseek_v3_pretrain.yaml\n"
        "grid:\n  cluster.topology: [topologies/ft2-16384.yaml]\n"
    )
    (copy / "bad.yaml").write_text("name: bad\npipeline: {pp: 5, microbatches: 8}\n")
    env = {**os.environ, "PYTHONPATH": str(copy), "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )
    printed = done.stdout + done.stderr
    assert "Usage:" in printed and "refused" in printed
    out = copy / "out"
    written = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"summary.json", "spans.parquet", "report.html", "report.md", "refused.parquet"} <= names
    needle = str(copy)
    assert needle not in printed, [line for line in printed.splitlines() if needle in line][:3]
    leaks = [str(p.relative_to(out)) for p in written if needle.encode() in p.read_bytes()]
    assert leaks == []
