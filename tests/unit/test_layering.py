"""Imports go one way: sim never imports torch, reports or calibrate (only the sim.cli package reaches
reports and calibrate, and never torch)."""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "sim"
FORBIDDEN = {"torch", "reports", "calibrate"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sim_does_not_import_upper_layers() -> None:
    offenders = {}
    for path in SIM.rglob("*.py"):
        bad = _imports(path) & (FORBIDDEN - ({"reports", "calibrate"} if path.parent.name == "cli" else set()))
        if bad:
            offenders[str(path.relative_to(SIM))] = bad
    assert offenders == {}
    assert "reports" in _imports(SIM / "cli" / "__init__.py")  # the rule above is not vacuous
