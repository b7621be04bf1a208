"""Errors with a key path, so a bad input can be reported in one line."""

from __future__ import annotations

SHOWN_CHARS = 40  # a value quoted in an error line: at most this many characters of it


def shown(text: str) -> str:
    """``text`` (a value as an error line quotes it) cut to :data:`SHOWN_CHARS`, saying how long it was:
    a 401-digit number is not repeated in full, twice, in a one-line error."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[: SHOWN_CHARS - 12]}... ({len(text):,} characters)"


PATH_CHARS = 300  # a file's path in an error line: at most about this many characters of it (its ends)


def shown_path(path: str) -> str:
    """``path`` (a file an error line names) cut in its middle past :data:`PATH_CHARS`, saying how long
    it was: a name of 5,000 characters (refused by the system as too long) was repeated in full."""
    if len(path) <= PATH_CHARS:
        return path
    half = PATH_CHARS // 2 - 20
    return f"{path[:half]}...{path[-half:]} ({len(path):,} characters)"


def long_words_cut(text: str) -> str:
    """``text`` with each word (a run without spaces: a path, a name) longer than :data:`PATH_CHARS` cut
    in its middle as :func:`shown_path` cuts a path: the last guard of an error line, for the lines that
    quote what was given inside their message (``cannot read PATH``)."""
    if len(text) <= PATH_CHARS:
        return text
    words = []
    for word in text.split(" "):
        body = word.rstrip(":;,)")  # (the punctuation after a path stays after its cut)
        words.append(shown_path(body) + word[len(body) :])
    return " ".join(words)


def one_printable_line(text: str) -> str:
    """``text`` (a label, a name, a path) as one line of plain text: each character that is not printable
    (a newline in a file name or a key, a terminal's escape code, a tab, a bidirectional override) written
    as Python writes it in a string (``\\n``, ``\\x1b``, ``\\u202e``), so an error or a table stays one
    line and prints nothing a terminal would act on; printable text as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def kind_of(value: object) -> str:
    """What a parsed YAML or JSON value is, in those formats' words (an error says ``got a list``, not
    Python's ``got list``, or ``got NoneType`` for a file holding ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class TwinError(Exception):
    """Base class of every error the twin reports to a user (exit status 2)."""


class ScenarioError(TwinError):
    """Bad input: names the file (if any), the key path and what is allowed.

    ``str(err)`` is a single line such as
    ``scenarios/x.yaml: pipeline.pp: dualpipe needs an even PP, got 7``.
    """

    def __init__(self, key_path: str, message: str, file: str | None = None) -> None:
        self.key_path = key_path
        self.message = message
        self.file = file
        super().__init__(key_path, message, file)  # args rebuild the error (simpy re-raises that way)

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        parts = [p for p in (self.file and shown_path(self.file), self.key_path) if p]
        prefix = ": ".join(parts)
        text = " ".join(self.message.split())
        return f"{prefix}: {text}" if prefix else text

    def with_file(self, file: str) -> ScenarioError:
        return type(self)(self.key_path, self.message, file)

    def with_prefix(self, prefix: str) -> ScenarioError:
        """Re-root the key path, e.g. ``pp`` -> ``pipeline.pp``."""
        return type(self)(f"{prefix}.{self.key_path}" if prefix else self.key_path, self.message, self.file)


class MemoryLimitError(ScenarioError):
    """A layout that needs more memory per GPU than the GPU has (the memory check's refusal; a study
    reruns such a layout with the check off and notes it)."""


class LayoutError(ScenarioError):
    """An impossible parallel layout (e.g. odd PP for DualPipe, too few micro-batches).

    ``key_path`` is the bare parameter name (``pp``, ``microbatches``, ``virtual_stages``); the
    config loader re-roots it under ``pipeline.`` and the CLI shows it as ``--pp``.
    """


class DeadlockError(TwinError):
    """A schedule cannot run to completion; the message says which devices wait on what."""


class StreamsDeadlock(RuntimeError):
    """A chunk's task graph in which no task can start (:func:`sim.chunk.streams.run_streams`): a bug
    in the graph's construction, not in the user's input. (Kept here, not in that module: mypyc, which
    compiles it, cannot compile a subclass of a builtin exception.)"""
