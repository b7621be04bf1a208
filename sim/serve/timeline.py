"""A serving run as a Chrome/Perfetto trace (``trace.json``; open it in ui.perfetto.dev).

* One process per pool (``prefill``, ``decode``, ``colocated``, in that order), one thread (track) per
  unit of the pool, every unit named even when it ran nothing.
* One complete slice (``"ph": "X"``) per forward the loop kept (:class:`~sim.serve.loop.Span`; the
  loop keeps the first ``serve.timeline_spans`` forwards of the run, ``otherData`` says how many it
  ran): named by its kind (``prefill`` or ``decode``), with the forward's ``tokens`` and
  ``requests`` as arguments. A unit runs one forward at a time, so a track's slices follow one
  another; times in microseconds to the nanosecond, a slice's end rounded like the next start (as
  :func:`sim.step.timeline.perfetto_json` does), so touching slices never overlap.
* One counter track per decode and co-located unit, ``KV cache unit N``: the share of the unit's KV
  cache in use (reserved prompts and the tokens generated so far) at each decode step's start, as the
  loop samples it (the whole run, thinned to at most :data:`sim.serve.loop.KV_SAMPLES` points: the
  summary's peak is every step's, sim.serve.loop.Unit.kv_peak).

The text is JSON with finite numbers only (``json.loads`` reads it back; a non-finite time or
occupancy, which the loop never makes, is left out and counted in ``otherData``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sim.outputs import JSON_COMPACT, QuotedStrings
from sim.serve.metrics import ServeResult

POOL_ORDER = ("prefill", "decode", "colocated")
COUNTER_PREFIX = "KV cache unit"


def _pool_ids(result: ServeResult) -> dict[str, int]:
    """Each pool's process id (1, 2, ...): the known roles in :data:`POOL_ORDER`, any other after them."""
    roles = list(result.pools)
    roles += [s.pool for s in result.spans if s.pool not in roles]
    roles += [k.rsplit("/", 1)[0] for k in result.kv_occupancy if k.rsplit("/", 1)[0] not in roles]
    known = [r for r in POOL_ORDER if r in roles]
    ordered = known + sorted({r for r in roles if r not in POOL_ORDER})
    return {role: i + 1 for i, role in enumerate(ordered)}


def _units(result: ServeResult, role: str) -> list[int]:
    """The unit indices of a pool: every unit it has, and any a span or a counter names."""
    pool = result.pools.get(role)
    units = set(range(pool.units)) if pool is not None else set()
    units |= {s.unit for s in result.spans if s.pool == role}
    units |= {int(k.rsplit("/", 1)[1]) for k in result.kv_occupancy if k.rsplit("/", 1)[0] == role}
    return sorted(units)


def _pool_label(result: ServeResult, role: str) -> str:
    pool = result.pools.get(role)
    if pool is None:
        return f"{role} pool"
    units = "unit" if pool.units == 1 else "units"
    return f"{role} pool ({pool.units} {units} of {pool.gpus_per_unit} GPUs, DP {pool.dp})"


def _metadata(result: ServeResult, pids: dict[str, int]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for role, pid in pids.items():
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": _pool_label(result, role)}})
        events.append({"ph": "M", "pid": pid, "name": "process_sort_index", "args": {"sort_index": pid}})
        for unit in _units(result, role):
            meta = {"ph": "M", "pid": pid, "tid": unit}
            events.append({**meta, "name": "thread_name", "args": {"name": f"unit {unit}"}})
            events.append({**meta, "name": "thread_sort_index", "args": {"sort_index": unit}})
    return events


def _counters(result: ServeResult, pids: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
    """The KV-occupancy counters (a point where the value changes) and the samples left out (not finite)."""
    events: list[dict[str, Any]] = []
    dropped = 0
    for key in sorted(result.kv_occupancy, key=lambda k: (pids[k.rsplit("/", 1)[0]], int(k.rsplit("/", 1)[1]))):
        role, unit = key.rsplit("/", 1)
        t, used = (np.asarray(a, dtype=np.float64) for a in result.kv_occupancy[key])
        ok = np.isfinite(t) & np.isfinite(used)
        dropped += int((~ok).sum())
        ts = np.round(t[ok] * 1e6, 3).tolist()
        values = np.round(used[ok], 6).tolist()
        last = None
        name = f"{COUNTER_PREFIX} {unit}"
        for at, value in zip(ts, values, strict=True):
            if value == last:
                continue
            last = value
            events.append({"ph": "C", "pid": pids[role], "name": name, "ts": at, "args": {"used": value}})
    return events, dropped


def perfetto_json(result: ServeResult, title: str) -> str:
    """The run's trace (module docstring) as compact JSON text."""
    pids = _pool_ids(result)
    head = _metadata(result, pids)
    spans = result.spans
    start = np.array([s.start_s for s in spans], dtype=np.float64)
    end = np.array([s.end_s for s in spans], dtype=np.float64)
    ok = np.isfinite(start) & np.isfinite(end) & (end >= start)
    ts = np.round(start * 1e6, 3)
    dur = np.round(np.round(end * 1e6, 3) - ts, 3)
    quoted, compact = QuotedStrings(), JSON_COMPACT
    parts = [json.dumps(head, separators=compact)[1:-1]] if head else []
    for s, keep, t, d in zip(spans, ok.tolist(), ts.tolist(), dur.tolist(), strict=True):
        if not keep:
            continue
        parts.append(
            f'{{"ph":"X","cat":"forward","pid":{pids[s.pool]},"tid":{int(s.unit)},"name":{quoted(str(s.kind))},'
            f'"ts":{t!r},"dur":{d!r},"args":{{"tokens":{int(s.tokens)},"requests":{int(s.requests)}}}}}'
        )
    counters, dropped_samples = _counters(result, pids)
    if counters:
        parts.append(json.dumps(counters, separators=compact, allow_nan=False)[1:-1])
    forwards = sum(p.forwards for p in result.pools.values())
    other = {
        "title": title,
        "scenario": result.scenario,
        "spans": int(ok.sum()),
        "forwards": forwards,
        "spans_cut": forwards > len(spans),
        "dropped_spans": int((~ok).sum()),
        "dropped_kv_samples": dropped_samples,
    }
    rest = json.dumps({"displayTimeUnit": "ms", "otherData": other}, separators=compact, allow_nan=False)
    return '{"traceEvents":[' + ",".join(p for p in parts if p) + "]," + rest[1:]
