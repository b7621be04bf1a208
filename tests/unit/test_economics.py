"""Prices of what changes: the rate and radix rule on the fabric and NICs, the reference point (ISCA'25
Table 3, tests/unit/network/test_topology.py) kept, and hardware without a price flagged, never free."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.economics import (
    ENDPOINT_LINK_USD,
    HOURS_PER_YEAR,
    NIC_USD,
    SWITCH_LINK_USD,
    SWITCH_USD,
    fabric_cost,
    not_modelled_note,
    rate_factor,
    unpriced_hardware,
)
from sim.network.spec import PriceSpec, load_cluster
from sim.network.topology import Topology, build_topology

FT2 = Path(__file__).resolve().parents[2] / "topologies" / "isca-ft2-2048.yaml"


def _ft2(**changes: float) -> Topology:
    spec = load_cluster(FT2)
    node = spec.node.model_copy(update={k: v for k, v in changes.items() if k in ("nic_Gbps", "nvlink_GBps")})
    fabric = spec.fabric.model_copy(update={k: v for k, v in changes.items() if k in ("link_Gbps", "switch_radix")})
    prices = spec.prices.model_copy(update={k: v for k, v in changes.items() if k in PriceSpec.model_fields})
    return build_topology(spec.model_copy(update={"node": node, "fabric": fabric, "prices": prices}))


def test_at_the_reference_rate_the_fit_is_unchanged_and_nics_cost_nothing_extra() -> None:
    topo = _ft2()
    parts = topo.fabric_cost()
    assert (topo.switches, topo.switch_links, topo.nic_links) == (96, 2048, 2048)
    assert parts.switches_usd == 96 * SWITCH_USD  # 64 ports at SWITCH_USD / 64 each
    assert parts.switch_links_usd == 2048 * SWITCH_LINK_USD
    assert parts.endpoint_links_usd == 2048 * ENDPOINT_LINK_USD
    assert parts.nics_usd == 0.0  # the 400G NIC is in the GPU-hour price
    assert topo.cost_usd == parts.total == topo.fabric_cost(priced_rates=False).total


def test_doubling_the_rate_doubles_every_port_and_pays_the_nic_difference() -> None:
    base, fast = _ft2(), _ft2(nic_Gbps=800.0)
    assert (fast.switches, fast.switch_links, fast.nic_links) == (base.switches, base.switch_links, base.nic_links)
    # the rule at e = 1: (800 / 400)^1 = 2 on switches, switch links and endpoint links; NIC_USD x (2 - 1) per NIC
    expected = 2 * (96 * SWITCH_USD + 2048 * SWITCH_LINK_USD + 2048 * ENDPOINT_LINK_USD) + 2048 * NIC_USD
    assert fast.cost_usd == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(18_384_640.0, rel=1e-12)  # $18.38M for the $9.02M fabric at 400G
    assert fast.fabric_cost(priced_rates=False).total == base.cost_usd  # without the upgrade's price


def test_the_exponent_is_the_assumption_the_cost_follows() -> None:
    base = _ft2().cost_usd
    free = _ft2(nic_Gbps=800.0, rate_exponent=0.0)
    assert free.cost_usd == base  # e = 0: bandwidth free, the model before the rule
    half = _ft2(nic_Gbps=800.0, rate_exponent=0.5)
    nic = 2048 * NIC_USD * (2**0.5 - 1)
    assert half.cost_usd == pytest.approx(base * 2**0.5 + nic, rel=1e-12)
    slow = _ft2(nic_Gbps=200.0)  # a slower NIC saves on the same rule
    assert slow.fabric_cost().nics_usd == pytest.approx(-2048 * NIC_USD / 2, rel=1e-12)


def test_switches_are_priced_per_port_at_their_fastest_port() -> None:
    prices = PriceSpec()
    one = fabric_cost(
        prices, switches=1, radix=64, switch_links=0, endpoint_links=0, nic_Gbps=400, switch_link_Gbps=400
    )
    big = fabric_cost(
        prices, switches=1, radix=128, switch_links=0, endpoint_links=0, nic_Gbps=400, switch_link_Gbps=400
    )
    assert big.switches_usd == 2 * one.switches_usd == 2 * SWITCH_USD
    mixed = fabric_cost(
        prices, switches=1, radix=64, switch_links=1, endpoint_links=1, nic_Gbps=400, switch_link_Gbps=800
    )
    assert mixed.switches_usd == 2 * SWITCH_USD  # the switch carries 800G links: an 800G switch
    assert mixed.switch_links_usd == 2 * SWITCH_LINK_USD and mixed.endpoint_links_usd == ENDPOINT_LINK_USD
    assert mixed.nics_usd == 0.0
    assert rate_factor(1600.0, prices) == 4.0


def test_a_topology_file_can_change_every_price_and_the_rule() -> None:
    topo = _ft2(switch_usd=64.0, switch_link_usd=0.0, endpoint_link_usd=0.0, nic_usd=10.0, nic_Gbps=800.0)
    assert topo.cost_usd == 96 * 64 * 2 + 2048 * 10


def test_hardware_without_a_price_is_flagged_with_its_reason() -> None:
    assert unpriced_hardware(coprocessor=False, nvlink_GBps=160.0, priced_nvlink_GBps=160.0) == ()
    assert not_modelled_note(()) is None
    nv = unpriced_hardware(coprocessor=False, nvlink_GBps=360.0, priced_nvlink_GBps=160.0)
    co = unpriced_hardware(coprocessor=True, nvlink_GBps=160.0, priced_nvlink_GBps=160.0)
    assert len(nv) == len(co) == 1 and "NVLink at 360 GB/s" in nv[0] and "co-processor" in co[0]
    note = not_modelled_note(nv + co)
    assert note is not None and note.startswith("hardware cost not modelled: NVLink") and "co-processor" in note


def test_in_network_operations_and_a_scale_up_domain_are_flagged_unpriced() -> None:
    base = {"coprocessor": False, "nvlink_GBps": 160.0, "priced_nvlink_GBps": 160.0}
    net = unpriced_hardware(**base, in_network=True)  # type: ignore[arg-type]
    rack = unpriced_hardware(**base, scale_up=True)  # type: ignore[arg-type]
    assert len(net) == len(rack) == 1 and "in-network" in net[0] and "NVL72" in rack[0]


def test_a_runs_cost_is_its_gpu_hours_at_the_price_and_its_share_of_the_fabric(tmp_path: Path) -> None:
    """``twin run`` gives the step's cost per trillion tokens (economics.* changed nothing it printed):
    GPU-hours per trillion tokens x the GPU-hour price, plus the job's share of the fabric written off
    over its life, as the sweep's row gives it (one function, ``TrainingRun.costs``)."""
    import yaml

    from sim.config import load_scenario
    from sim.run import simulate_training
    from tests.conftest import SMALL_STEP

    path = tmp_path / "priced.yaml"
    path.write_text(yaml.safe_dump({"base": str(SMALL_STEP), "name": "priced", "set": {"economics.gpu_hour_usd": 3.0}}))
    run = simulate_training(load_scenario(path))
    cost = run.to_dict()["cost"]
    assert isinstance(cost, dict)
    hours, gpus = run.result.gpu_hours_per_trillion_tokens, int(run.result.layout["gpus"])
    assert cost["gpu_usd_per_T"] == hours * 3.0
    topology = run.assembly.topology if run.assembly is not None else None
    assert topology is not None
    share = topology.cost_usd * min(1.0, gpus / topology.gpus)
    assert cost["fabric_usd"] == share
    years = run.scenario.economics.fabric_life_years
    assert cost["fabric_usd_per_T"] == pytest.approx(hours * share / gpus / (years * HOURS_PER_YEAR), rel=1e-12)
    assert cost["usd_per_T"] == cost["gpu_usd_per_T"] + cost["fabric_usd_per_T"] and cost["not_modelled"] is None
