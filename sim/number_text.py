"""Numbers written as text (CSV cells, numeric flags) are plain ASCII.

Python's ``int`` and ``float`` read the decimal digits of every script: ``int("١٢")`` (Arabic-Indic)
and ``float("１２")`` (full-width) are 12. No CSV reader (pandas, a spreadsheet) and no shell user
means a number that way: such a cell is pasted text, most often from a document in another locale,
and reading it silently as a number hides that. Every reader of numbers from text refuses them with
:func:`not_ascii`'s clause, naming the first character that is not ASCII. (YAML scenario values go
through pydantic, which already refuses them.)
"""

from __future__ import annotations


def not_ascii(text: str) -> str | None:
    """Why ``text`` is no plain ASCII number (``holds '١' (U+0661), not ASCII; write the digits 0-9``),
    or None when every character is ASCII (whether it is a number is then the parser's to say)."""
    if text.isascii():
        return None
    odd = next(c for c in text if not c.isascii())
    return f"holds {odd!r} (U+{ord(odd):04X}), not ASCII; write the digits 0-9"


__all__ = ["not_ascii"]
