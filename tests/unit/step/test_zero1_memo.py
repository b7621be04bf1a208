"""The DP collectives' cross-step memo gives what a fresh simulation gives, and tells fabrics apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.network.context import SimContext
from sim.network.spec import load_cluster
from sim.network.topology import build_topology
from sim.step import zero1 as dp

ROOT = Path(__file__).resolve().parents[3]


def test_memo_equals_a_fresh_simulation_and_keys_on_the_fabric() -> None:
    spec = load_cluster(ROOT / "topologies" / "deepseek-v3-mpft.yaml")
    fast = build_topology(spec)
    slow = build_topology(spec.model_copy(update={"node": spec.node.model_copy(update={"nic_Gbps": 100.0})}))
    gpus = np.arange(0, 2048, 8)  # GPU 0 of 256 nodes: one ring over IB
    groups = [(gpus, 64e6, "ring")]
    dp._COLLECTIVES_MEMO.clear()
    a = dp._collectives(fast, "reducescatter", groups, 1e-2)
    assert len(dp._COLLECTIVES_MEMO) == 1
    assert (
        dp._collectives(fast, "reducescatter", groups, 1e-2)
        == a
        == dp._simulate_collectives(SimContext(fast, 1e-2), "reducescatter", groups)
    )
    b = dp._collectives(slow, "reducescatter", groups, 1e-2)
    assert b > 2 * a  # a quarter of the NIC rate (latency not scaled): not the fast fabric's entry
    other = [(gpus[:128], 64e6, "ring")]
    assert dp._collectives(fast, "reducescatter", other, 1e-2) == dp._simulate_collectives(
        SimContext(fast, 1e-2), "reducescatter", other
    )
    assert len(dp._COLLECTIVES_MEMO) == 3
