"""One event loop, one network: the shared step against the isolated one.

What must hold, and why:
* sharing only ever slows: every coflow alone takes its isolated time and no less beside others, and
  a chunk's span is monotone in its phases' durations, so no rank ends earlier (step, exposed EP);
* with nobody to share with (one rank: no sends, phases of one rank never overlap on its FIFO comm
  stream, one replica set) the shared step is the isolated step, exactly when the per-flow models
  that give each coflow its time alone are exact (``cluster.completion_rtol: 0``; with 1e-2 they let
  flows finish up to 1% early, faster than the coflow's most loaded link allows);
* bytes are conserved: every send moves each GPU's activation over its NIC; DeepEP's IB bytes leave and
  enter NICs alike, and in a two-layer fat tree exactly 4/7 of them cross a leaf uplink (an EP group
  of 8 nodes fills two leaves of 4 nodes: each node has 3 peers under its own leaf and 4 under the
  other); on the multi-plane fat tree none does (an EP group's NICs of one plane sit under one leaf).
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.run import TrainingRun
from tests.integration.training.test_step import ROOT, step

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

FT2 = str(ROOT / "topologies" / "deepseek-v3-ft2.yaml")


def _both(tmp: pytest.TempPathFactory, **over: Any) -> tuple[TrainingRun, TrainingRun]:
    return step(tmp, training__contention="isolated", **over), step(tmp, training__contention="shared", **over)


def test_sharing_never_speeds_a_rank_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    iso, shared = _both(tmp_path_factory)
    assert shared.result.step_time_s >= iso.result.step_time_s
    for a, b in zip(iso.result.ranks, shared.result.ranks, strict=True):
        assert b.ep_comm_exposed_s >= a.ep_comm_exposed_s - 1e-9
    assert iso.step.stats.get("coflow_delay_ms") is None  # isolated: no coflow on the network


def test_alone_the_shared_step_is_the_isolated_step(tmp_path_factory: pytest.TempPathFactory) -> None:
    over = {
        "training__gpus": 128,
        "training__global_batch": 256,  # DP 128: 2 micro-batches
        "training__check_memory": False,
        "pipeline__pp": 1,
        "pipeline__schedules": ["1f1b"],
        "cluster__completion_rtol": 0.0,
    }
    iso, shared = _both(tmp_path_factory, **over)
    assert shared.step.stats["coflow_delay_ms"] == {}  # nothing ever ran below its cap
    assert shared.result.step_time_s == pytest.approx(iso.result.step_time_s, rel=1e-12)
    a, b = iso.result.ranks[0], shared.result.ranks[0]
    assert b.ep_comm_exposed_s == pytest.approx(a.ep_comm_exposed_s, rel=1e-9)
    assert b.dp_comm_exposed_s == pytest.approx(a.dp_comm_exposed_s, rel=1e-9)


def test_bytes_are_conserved_and_cross_switches_where_the_fabric_says(tmp_path_factory: pytest.TempPathFactory) -> None:
    for topo, cross in ((None, 0.0), (FT2, 4 / 7)):
        run = step(tmp_path_factory, **({} if topo is None else {"cluster__topology": topo}))
        gb = run.step.stats["coflow_GB"]
        lay = run.step.spec.inputs.layout
        sends = len(run.step.pipelines[0].run.recorder.transfers)
        assert gb["pipeline@nic_up"] == pytest.approx(sends * lay.gpus_per_rank * run.step.spec.activation_bytes / 1e9)
        assert gb["pipeline@nic_down"] == pytest.approx(gb["pipeline@nic_up"])
        assert gb["deepep@nic_down"] == pytest.approx(gb["deepep@nic_up"])
        uplink = "leaf_up" if "leaf_up" in run.step.spec.topology.blocks else "edge_up"
        assert gb.get(f"deepep@{uplink}", 0.0) == pytest.approx(cross * gb["deepep@nic_up"], rel=1e-9)


def test_on_ft2_deepep_and_the_sends_meet_on_the_leaf_uplinks(tmp_path_factory: pytest.TempPathFactory) -> None:
    iso, shared = _both(tmp_path_factory, cluster__topology=FT2)
    lost = shared.step.stats["coflow_delay_ms"]
    assert lost["deepep@leaf_up"] > 0 and lost["pipeline@leaf_up"] > 0
    assert shared.result.step_time_s > iso.result.step_time_s
    # on DeepSeek's multi-plane fat tree, DeepEP never waits on a switch port
    mpft = step(tmp_path_factory).step.stats["coflow_delay_ms"]
    assert not any(k.startswith("deepep@leaf") for k in mpft)


def test_the_link_counters_add_up_to_the_bytes_every_coflow_carried(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The trace's link counters come from the run's log of finished coflows; each coflow's bytes are
    spread over the bins it lived in, so per tag and link block they sum to the network's own count."""
    from sim.step.timeline import timeline

    run = step(tmp_path_factory)
    tl = timeline(run.step)
    got = (tl.links.groupby(["tag", "block"])["bytes"].sum() / 1e9).to_dict()
    want = run.step.stats["coflow_GB"]
    assert {f"{t}@{b}" for t, b in got} == set(want)
    for (tag, block), gb in got.items():
        assert gb == pytest.approx(want[f"{tag}@{block}"], rel=1e-9)
    assert tl.links["end_s"].max() == pytest.approx(run.result.step_time_s)
    assert len(tl.transfers) == sum(len(p.run.recorder.transfers) for p in run.step.pipelines)


def test_the_trace_slices_nest_strictly_on_every_track(tmp_path_factory: pytest.TempPathFactory) -> None:
    """On every track, a slice either starts at or after the previous one's end or lies inside it, in
    the integer nanoseconds Perfetto reads (ts and dur have 3 decimals of microseconds); the DeepEP
    stream of an F&B pair holds its two chunks' phases in turn, the compute streams their annotations."""
    from sim.step.timeline import perfetto_trace, timeline

    run = step(tmp_path_factory)
    trace = perfetto_trace(timeline(run.step), "t", run.step.reported_pipeline().group)
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            start = round(e["ts"] * 1000)
            tracks.setdefault((e["pid"], e["tid"]), []).append((start, start + round(e["dur"] * 1000)))
    assert len(tracks) > 16
    for key, slices in tracks.items():
        open_ends: list[int] = []
        for start, end in sorted(slices, key=lambda x: (x[0], -x[1])):
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1], f"track {key}: [{start}, {end}] crosses its parent's end"
            open_ends.append(end)


def test_the_fast_trace_text_of_a_step_is_the_trace_dumped(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A training step's trace (chunk annotations with layers, sends, link, memory and NIC counters)
    written by :func:`perfetto_json` is ``json.dumps`` of :func:`perfetto_trace`, byte for byte."""
    import json

    from sim.step.timeline import perfetto_json, perfetto_trace, timeline

    run = step(tmp_path_factory)
    tl = timeline(run.step)
    group = run.step.reported_pipeline().group
    assert perfetto_json(tl, "t", group) == json.dumps(perfetto_trace(tl, "t", group), separators=(",", ":"))
