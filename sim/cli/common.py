"""Pieces shared by the command modules."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)
