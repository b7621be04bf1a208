"""Numbers written as text (CSV cells, numeric flags) are plain ASCII.

Python's ``int`` and ``float`` read the decimal digits of every script: ``int("١٢")`` (Arabic-Indic)
and ``float("１２")`` (full-width) are 12. No CSV reader (pandas, a spreadsheet) and no shell user
means a number that way: such a cell is pasted text, most often from a document in another locale,
and reading it silently as a number hides that. Every reader of numbers from text refuses them with
:func:`not_ascii`'s clause, naming the first character that is not ASCII (numeric and size flags,
CSV cells, measurement tables, nccl-tests logs, schedule files); readers of files refuse a digit
separator too (:func:`not_plain`). (YAML scenario values go through pydantic, which already refuses
them.) Numbers written as text: :func:`signed_percent` (a relative change that never reads -0%).
"""

from __future__ import annotations


def not_ascii(text: str) -> str | None:
    """Why ``text`` is no plain ASCII number (``holds '١' (U+0661), not ASCII; write the digits 0-9``),
    or None when every character is ASCII (whether it is a number is then the parser's to say)."""
    if text.isascii():
        return None
    odd = next(c for c in text if not c.isascii())
    return f"holds {odd!r} (U+{ord(odd):04X}), not ASCII; write the digits 0-9"


SEPARATOR = "has a digit separator '_'; write the digits alone"  # (int and float read 1_000 as 1000)


def not_plain(text: str) -> str | None:
    """Why ``text`` is no number as a file writes one: :func:`not_ascii`'s clause, or a digit separator
    ``_`` (:data:`SEPARATOR`; no CSV writer or log prints one); None when neither. (Numeric flags take
    ``1_000`` as typed on a command line: :class:`sim.cli.common.Number`.)"""
    return not_ascii(text) or (SEPARATOR if "_" in text else None)


__all__ = ["SEPARATOR", "not_ascii", "not_plain"]


def signed_percent(change: float, decimals: int = 0) -> str:
    """A relative change (``x / ref - 1``) as a signed percentage to ``decimals`` places, ``+4%``; one
    that rounds to nothing gets up to 3 more places, its first significant digit (``-0.2%``, ``+0.004%``),
    never ``-0%`` for a change of a few tenths; below that it reads ``+0.000%`` (float noise is no change);
    no change at all, ``+0%``."""
    if change == 0:
        return f"{0:+.{decimals}f}%"
    for places in range(decimals, decimals + 4):
        text = f"{100 * change:+.{places}f}"
        if float(text) != 0:
            return text + "%"
    return f"{100 * abs(change):+.{decimals + 3}f}%"
