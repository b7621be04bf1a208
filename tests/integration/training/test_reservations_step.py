"""The shared step with its chunks' DeepEP phases reserved (sim/step/chunk_comm.py) gives the step it
gives with every phase started one by one: the same figures, statistics, span times and link
counters, bit for bit, on the default MPFT step (ranks on disjoint nodes: phases meet pipeline sends
and ZeRO-1 collectives on their NICs), per-GPU fidelity, and a 2:1 oversubscribed FT2 (several ranks'
phases share leaf uplinks and spines). Only the order in which spans of different devices ending at
the same instant are recorded may differ (DualPipe's mirrored ranks end chunks together), so spans are
compared as sets of (device, position, start, end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.config import load_scenario
from sim.network.flows import FlowNetwork
from sim.run import simulate_training
from sim.step import zero1
from tests.integration.training.test_step import scenario_file

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

ROOT = Path(__file__).resolve().parents[3]
FT2 = str(ROOT / "topologies" / "deepseek-v3-ft2.yaml")


def _run(tmp: pytest.TempPathFactory, reservations: bool, monkeypatch: pytest.MonkeyPatch, **over: Any) -> Any:
    monkeypatch.setattr(FlowNetwork, "reservations", reservations)
    granted = []
    real = FlowNetwork.reserve

    def reserve(self, kinds, caps, holder, first=0):  # type: ignore[no-untyped-def]
        ok = real(self, kinds, caps, holder, first)
        granted.append(ok)
        return ok

    monkeypatch.setattr(FlowNetwork, "reserve", reserve)
    zero1._COLLECTIVES_MEMO.clear()  # both runs time the collectives (the network's counters count them)
    run = simulate_training(load_scenario(scenario_file(tmp.mktemp("sc"), **over)))
    figures = run.to_dict()
    figures["stats"].pop("wall_s")
    spans = sorted((s.device, s.pos, s.start, s.end) for p in run.step.pipelines for s in p.run.recorder.spans)
    transfers = sorted(t for p in run.step.pipelines for t in p.run.recorder.transfers)
    counters = run.step.links.counters(run.step.step_time, 500)
    return (figures, spans, transfers, run.step.timelines), counters, sum(granted)


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"training__fidelity": "per-gpu"},
        {"cluster__topology": FT2, "cluster__oversubscription": 2},
    ],
    ids=["default", "per-gpu", "ft2-2to1"],
)
def test_reserved_phases_give_the_step_phase_by_phase_starts_give(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, over: dict[str, Any]
) -> None:
    over = {"training__contention": "shared", **over}
    on, counters_on, granted = _run(tmp_path_factory, True, monkeypatch, **over)
    off, counters_off, none = _run(tmp_path_factory, False, monkeypatch, **over)
    assert granted > 1000 and none == 0  # thousands of chunk runs reserved their phases
    assert on == off
    assert counters_on.equals(counters_off)
