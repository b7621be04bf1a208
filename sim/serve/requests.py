"""The requests a deployment serves: Poisson arrivals, or a trace file.

Trace format (CSV, a header line, one request per line, any order; ``docs/serving.md``)::

    arrival_s,input_tokens,output_tokens[,cached_tokens]
    0.000,2000,500,1100

``arrival_s`` seconds from the start (finite, >= 0); ``input_tokens`` >= 1 (the whole prompt);
``output_tokens`` >= 1 (the first comes from the prefill); ``cached_tokens`` how much of the prompt
the prompt cache holds (0 <= cached < input) [default: ``prompt_cache_hit`` x input]. Requests
arriving after ``duration_s`` are dropped. Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from sim.errors import ScenarioError
from sim.number_text import not_ascii
from sim.serve.spec import MAX_REQUESTS, TrafficSpec
from sim.yamlio import read_text

COLUMNS = ("arrival_s", "input_tokens", "output_tokens", "cached_tokens")
MAX_TOKENS = 1_048_576
Num = TypeVar("Num", int, float)  # what csv_number reads a value as


@dataclass(frozen=True)
class Requests:
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cached_tokens: np.ndarray
    line: np.ndarray | None = None  # a trace's requests: each one's line in the file

    def __len__(self) -> int:
        return len(self.arrival_s)


def _cached(inputs: np.ndarray, hit: float) -> np.ndarray:
    return np.minimum(np.floor(inputs * hit), inputs - 1).astype(np.int64)


def fixed_new_tokens(t: TrafficSpec) -> tuple[int, int]:
    """Fixed-length Poisson traffic (``lengths: fixed``): every request's new prompt tokens (its prompt
    less its cached prefix, as :func:`poisson` draws it) and that cached prefix."""
    cached = int(_cached(np.array([t.input_tokens], dtype=np.int64), t.prompt_cache_hit)[0])
    return t.input_tokens - cached, cached


def poisson_count(t: TrafficSpec, duration_s: float, rng: np.random.Generator, key: str = "serve.traffic") -> int:
    """How many requests arrive at ``t.rate_per_s`` over ``duration_s`` (``rng``'s first draw): at most
    :data:`MAX_REQUESTS` expected, and one at least: a run of none has no figure to give (its percentiles
    null), so it is refused as an empty trace is, naming the key that leaves no request (the duration
    where it is under a second, else the rate)."""
    assert t.rate_per_s is not None
    rate = t.rate_per_s
    mean = rate * duration_s
    if mean > MAX_REQUESTS:
        raise ScenarioError(
            f"{key}.rate_per_s", f"{mean:.3g} requests in {duration_s:g} s; at most {MAX_REQUESTS} are simulated"
        )
    n = int(rng.poisson(mean))
    if n == 0:
        why = f"({mean:.3g} expected, none drawn); raise one of them"
        if duration_s < 1:
            raise ScenarioError(
                "serve.duration_s",
                f"{duration_s:g} s of arrivals at {key}.rate_per_s {rate:g} requests/s bring no request {why}",
            )
        raise ScenarioError(
            f"{key}.rate_per_s", f"{rate:g} requests/s over serve.duration_s {duration_s:g} s arrive no request {why}"
        )
    return n


def poisson(t: TrafficSpec, duration_s: float, rng: np.random.Generator, key: str = "serve.traffic") -> Requests:
    """Poisson arrivals at ``t.rate_per_s`` over ``duration_s`` (one at least: :func:`poisson_count`);
    lengths fixed or exponential."""
    n = poisson_count(t, duration_s, rng, key)
    arrival = np.sort(rng.uniform(0.0, duration_s, size=n))
    if t.lengths == "fixed":
        inputs = np.full(n, t.input_tokens, dtype=np.int64)
        outputs = np.full(n, t.output_tokens, dtype=np.int64)
    else:
        inputs = np.maximum(1, np.ceil(rng.exponential(t.input_tokens, size=n))).astype(np.int64)
        outputs = np.maximum(1, np.ceil(rng.exponential(t.output_tokens, size=n))).astype(np.int64)
        inputs, outputs = np.minimum(inputs, MAX_TOKENS), np.minimum(outputs, MAX_TOKENS)
    return Requests(arrival, inputs, outputs, _cached(inputs, t.prompt_cache_hit))


def csv_records(text: str, name: str) -> list[tuple[int, list[str]]]:
    """Each record of a CSV text (a header line, then data) with the file's line it is on. A value holding
    a line break (a quote left open: ``"1`` then ``0",5,5`` was read as 10, and every later line was counted
    one short) is refused naming the line it starts on and its column (the header's name for it), as is a
    value past the csv module's field limit (a quote never closed)."""
    lines = text.splitlines()
    reader = csv.reader(lines)
    records: list[tuple[int, list[str]]] = []
    line = 1  # the line the next record starts on (reader.line_num: the line the last one ended on)
    try:
        for row in reader:
            if reader.line_num != line:  # one record over several lines: a value holds a line break
                j = max(len(next(csv.reader([lines[line - 1]]), [])) - 1, 0)  # the first line's last value
                header = [h.strip() for h in records[0][1]] if records else []
                col = f": {header[j]}" if j < len(header) and header[j] else ""
                runs = f"a quoted value runs on to line {reader.line_num} (a quote left open?)"
                raise ScenarioError(f"line {line}{col}", runs, name)
            records.append((line, row))
            line = reader.line_num + 1
    except csv.Error as err:
        raise ScenarioError(f"line {line}", f"not read as CSV: {err} (a quote left open?)", name) from None
    return records


def csv_number(cell: str, parse: Callable[[str], Num], where: str, name: str, what: str = "a number") -> Num:
    """``cell``, a value of the CSV file ``name`` (``where``: its line and column), read by ``parse``
    (``float``, or ``int`` for an id), or a one-line error: ``line 3: load: not a number: 'x'``
    (``what`` it must be). A CSV number is plain ASCII without digit separators: Python's int and float
    also read ``1_000`` as 1000 and other scripts' digits (Arabic-Indic ``١٢``, full-width ``１２``) as
    12, which no CSV reader does; both are refused (:mod:`sim.number_text`)."""
    shown = cell.strip()
    odd = not_ascii(cell)
    if odd is not None:
        raise ScenarioError(where, f"not {what}: {shown!r} {odd}", name)
    try:
        if "_" in cell:
            raise ValueError(cell)
        return parse(cell)
    except ValueError:
        raise ScenarioError(where, f"not {what}: {shown!r}", name) from None


def read_trace(path: Path, hit: float, duration_s: float) -> Requests:
    """The trace file's requests arriving within ``duration_s``, sorted by arrival."""
    name = str(path)
    records = csv_records(read_text(path, "trace", 512 << 20), name)
    if not records:
        raise ScenarioError("", f"empty trace; the header is {','.join(COLUMNS[:3])}[,cached_tokens]", name)
    header = [h.strip() for h in records[0][1]]
    if header not in (list(COLUMNS[:3]), list(COLUMNS)):
        raise ScenarioError(
            "line 1", f"the header must be {','.join(COLUMNS[:3])}[,cached_tokens], got {','.join(header)}", name
        )
    data: list[list[float]] = []
    line_of: list[int] = []  # each request's line in the file
    for i, row in records[1:]:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ScenarioError(f"line {i}", f"{len(row)} values, the header has {len(header)}", name)
        vals = []
        for col, cell in zip(header, row, strict=True):
            v = csv_number(cell, float, f"line {i}: {col}", name)
            if not math.isfinite(v) or v < 0:
                raise ScenarioError(f"line {i}: {col}", f"must be finite and >= 0, got {cell.strip()}", name)
            if col != "arrival_s" and (v != int(v) or v > MAX_TOKENS):
                raise ScenarioError(
                    f"line {i}: {col}", f"a whole number of tokens up to {MAX_TOKENS}, got {cell.strip()}", name
                )
            vals.append(v)
        if vals[1] < 1 or vals[2] < 1:
            col = "input_tokens" if vals[1] < 1 else "output_tokens"
            raise ScenarioError(f"line {i}: {col}", "must be >= 1", name)
        if len(vals) == 4 and vals[3] >= vals[1]:
            raise ScenarioError(
                f"line {i}: cached_tokens", "must be below input_tokens (one token at least is prefilled)", name
            )
        if len(data) >= MAX_REQUESTS:
            raise ScenarioError(f"line {i}", f"more than {MAX_REQUESTS} requests", name)
        data.append(vals)
        line_of.append(i)
    if not data:
        raise ScenarioError("", "the trace has no requests", name)
    a = np.array(data)
    order = np.argsort(a[:, 0], kind="stable")
    a, line = a[order], np.array(line_of, dtype=np.int64)[order]
    within = a[:, 0] <= duration_s
    a, line = a[within], line[within]
    if len(a) == 0:
        raise ScenarioError("", f"no request arrives within serve.duration_s ({duration_s:g} s)", name)
    inputs = a[:, 1].astype(np.int64)
    cached = a[:, 3].astype(np.int64) if a.shape[1] == 4 else _cached(inputs, hit)
    return Requests(a[:, 0].copy(), inputs, a[:, 2].astype(np.int64), cached, line)
