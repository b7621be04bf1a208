"""Pieces shared by the command modules."""

from __future__ import annotations

from enum import StrEnum

from rich.console import Console

from sim.errors import ScenarioError

out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    """Output format of the commands that print results."""

    table = "table"
    json = "json"


def as_flag(err: ScenarioError) -> ScenarioError:
    """Re-express a parameter error (``node_limit``) as the command-line flag (``--node-limit``)."""
    return ScenarioError("--" + err.key_path.replace("_", "-"), err.message)
