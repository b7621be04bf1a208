"""The Perfetto trace of a serving run (sim/serve/timeline.py): one process per pool, one track per unit,
a slice per kept forward with the forward's times, tokens and requests, a KV-occupancy counter per decode
(or co-located) unit; JSON with finite numbers only."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.serve.loop import Span
from sim.serve.metrics import ServeResult
from sim.serve.timeline import COUNTER_PREFIX, perfetto_json
from tests.unit.serve_runs import SPLIT, no_request_run, run, split_run


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> ServeResult:
    return split_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def colocated(tmp_path_factory: pytest.TempPathFactory) -> ServeResult:
    serve = (
        "  duration_s: 8\n"
        "  traffic: {rate_per_s: 20, input_tokens: 1000, output_tokens: 100}\n"
        "  colocated: {nodes: 8, unit_nodes: 4, experts_per_gpu: 9, kernels: low_latency}\n"
    )
    return run(tmp_path_factory.mktemp("serve"), "colocated", serve)


def _refuse(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def _load(text: str) -> dict[str, Any]:
    """The trace, refusing NaN and Infinity (which json.loads would accept)."""
    trace = json.loads(text, parse_constant=_refuse)
    assert isinstance(trace, dict)
    return trace


def _events(trace: dict[str, Any], ph: str) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e["ph"] == ph]


def _names(trace: dict[str, Any]) -> tuple[dict[int, str], dict[tuple[int, int], str]]:
    meta = _events(trace, "M")
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    return procs, threads


def _check_slices(trace: dict[str, Any], result: ServeResult) -> None:
    """The X events are the spans: one each, on its pool's process and its unit's track, same times."""
    slices = _events(trace, "X")
    spans = result.spans
    assert len(slices) == len(spans) > 0
    procs, threads = _names(trace)
    pid_of = {name.split()[0]: pid for pid, name in procs.items()}
    got = sorted((e["pid"], e["tid"], e["ts"], e["name"], e["args"]["tokens"], e["args"]["requests"]) for e in slices)
    want = sorted((pid_of[s.pool], s.unit, round(s.start_s * 1e6, 3), s.kind, s.tokens, s.requests) for s in spans)
    assert got == want
    assert all(threads[(e["pid"], e["tid"])] == f"unit {e['tid']}" for e in slices)
    # durations: nanosecond rounding per slice, the same sum as the spans'
    total = sum(e["dur"] for e in slices)
    assert total == pytest.approx(sum((s.end_s - s.start_s) * 1e6 for s in spans), abs=2e-3 * len(spans))
    assert all(math.isfinite(e["ts"]) and math.isfinite(e["dur"]) and e["dur"] >= 0 for e in slices)
    # a unit runs one forward at a time: its track's slices follow one another, never overlap
    tracks: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in slices:
        tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["dur"]))
    for track in tracks.values():
        track.sort()
        for (ts, dur), (nxt, _) in itertools.pairwise(track):
            assert round(ts + dur, 3) <= nxt


def _check_counters(trace: dict[str, Any], result: ServeResult, role: str) -> None:
    counters = _events(trace, "C")
    procs, _ = _names(trace)
    pid = next(p for p, name in procs.items() if name.startswith(role))
    assert counters and {e["pid"] for e in counters} == {pid}
    by_unit: dict[str, list[float]] = {}
    for e in counters:
        assert math.isfinite(e["ts"]) and set(e["args"]) == {"used"}
        assert 0.0 <= e["args"]["used"] <= 1.0
        by_unit.setdefault(e["name"], []).append(e["ts"])
    sampled = {f"{COUNTER_PREFIX} {k.split('/')[1]}" for k, (t, _) in result.kv_occupancy.items() if len(t)}
    assert set(by_unit) == sampled
    for key, (t, used) in result.kv_occupancy.items():
        ts = by_unit.get(f"{COUNTER_PREFIX} {key.split('/')[1]}", [])
        assert ts == sorted(ts) and 0 < len(ts) <= len(t)
        # the counter's points are the samples where the value changed: the first is the first sample
        assert ts[0] == round(float(t[0]) * 1e6, 3)
        assert max(e["args"]["used"] for e in counters if e["name"].endswith(f" {key.split('/')[1]}")) == (
            pytest.approx(float(np.max(used)), abs=1e-6)
        )


def test_split_pools(split: ServeResult) -> None:
    trace = _load(perfetto_json(split, "split <title>"))
    assert trace["displayTimeUnit"] == "ms"
    assert trace["otherData"]["title"] == "split <title>"
    procs, threads = _names(trace)
    assert [procs[p].split()[0] for p in sorted(procs)] == ["prefill", "decode"]
    assert procs[1] == "prefill pool (2 units of 16 GPUs, DP 4)"
    assert sorted(threads) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    _check_slices(trace, split)
    assert {e["name"] for e in _events(trace, "X")} == {"prefill", "decode"}
    assert {e["name"] for e in _events(trace, "X") if e["pid"] == 1} == {"prefill"}
    _check_counters(trace, split, "decode")
    other = trace["otherData"]
    assert other["spans"] == len(split.spans) and other["forwards"] == sum(p.forwards for p in split.pools.values())
    assert not other["spans_cut"] and other["dropped_spans"] == 0 and other["dropped_kv_samples"] == 0


def test_colocated_pool(colocated: ServeResult) -> None:
    trace = _load(perfetto_json(colocated, "co"))
    procs, threads = _names(trace)
    assert list(procs.values()) == ["colocated pool (2 units of 32 GPUs, DP 32)"]
    assert sorted(threads) == [(1, 0), (1, 1)]
    _check_slices(trace, colocated)
    assert {e["name"] for e in _events(trace, "X")} == {"prefill", "decode"}  # both kinds on one track
    _check_counters(trace, colocated, "colocated")


def test_cut_timeline(tmp_path: Path) -> None:
    """With ``serve.timeline_spans`` below the forwards run, the trace has those kept and says so."""
    serve = "  duration_s: 3\n  timeline_spans: 25\n  traffic: {rate_per_s: 10, input_tokens: 800, output_tokens: 50}\n"
    result = run(tmp_path, "cut", serve + SPLIT)
    trace = _load(perfetto_json(result, "cut"))
    assert len(_events(trace, "X")) == len(result.spans) == 25
    assert trace["otherData"]["spans_cut"] and trace["otherData"]["forwards"] > 25


def test_no_requests(tmp_path: Path) -> None:
    """No request arrived: every pool and unit named, no slice, no counter, still JSON."""
    result = no_request_run(tmp_path, "zero", f"  duration_s: 1\n  traffic: {{rate_per_s: 0.001}}\n{SPLIT}")
    assert len(result.requests) == 0
    trace = _load(perfetto_json(result, "zero"))
    assert not _events(trace, "X") and not _events(trace, "C")
    _, threads = _names(trace)
    assert len(threads) == 4


def test_non_finite_left_out(split: ServeResult) -> None:
    """A span or a KV sample with a non-finite time (the loop makes none) is left out and counted, so the
    text stays JSON."""
    spans = [
        *split.spans[:10],
        Span("decode", 0, math.nan, 1.0, "decode", 1, 1),
        Span("decode", 1, 0.0, math.inf, "decode", 1, 1),
    ]
    t, used = split.kv_occupancy["decode/0"]
    kv = {"decode/0": (np.append(t[:5], np.nan), np.append(used[:5], 0.5)), "decode/1": (t[:3], np.full(3, np.inf))}
    broken = dataclasses.replace(split, spans=spans, kv_occupancy=kv)
    trace = _load(perfetto_json(broken, "broken"))
    assert len(_events(trace, "X")) == 10
    assert trace["otherData"]["dropped_spans"] == 2 and trace["otherData"]["dropped_kv_samples"] == 4
    assert all(e["name"] == f"{COUNTER_PREFIX} 0" for e in _events(trace, "C"))
