"""The shipped co-design what-ifs priced as sim/economics.py says: IB 800 Gb/s pays for its faster fabric
and NICs by the rate rule, NVLink 900 and the co-processor have no price and say so (never the base's)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.config import scenario_data
from sim.experiments.codesign import load_codesign
from sim.network.spec import load_cluster
from sim.network.topology import build_topology
from sim.overrides import apply_overrides, resolve_paths
from sim.sweep.point import OK, run_point
from tests.conftest import SMALL_STEP

ROOT = Path(__file__).resolve().parents[3]


def _row(overrides: dict) -> dict:
    data, folder = scenario_data(SMALL_STEP)
    return run_point(apply_overrides(data, overrides), str(SMALL_STEP), str(folder))


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    """The small step as itself and with the shipped what-ifs' overrides (scenarios/codesign.yaml)."""
    spec = load_codesign(ROOT / "scenarios" / "codesign.yaml")
    whatifs = {s.key: s.variants[1].overrides for s in spec.studies if s.key in ("ib-2x", "nvlink-900", "coprocessor")}
    out = {"base": _row({})}
    for key, sets in whatifs.items():
        out[key] = _row(resolve_paths(sets, ROOT / "scenarios"))
    assert all(r["status"] == OK for r in out.values()), {k: r["error"] for k, r in out.items()}
    return out


def test_ib_800_pays_for_its_fabric_and_nics_by_the_rule(rows: dict[str, dict]) -> None:
    base, ib = rows["base"], rows["ib-2x"]
    assert base["cost_note"] is None and ib["cost_note"] is None
    assert base["cost_per_T_usd"] == base["cost_per_T_base_prices_usd"]  # 400G: the reference prices
    fabric = build_topology(load_cluster(ROOT / "topologies" / "deepseek-v3-mpft.yaml"))
    share = 512 / fabric.gpus  # the small step's GPUs of the 2048-GPU fabric
    assert base["fabric_cost_usd"] == pytest.approx(fabric.cost_usd * share, rel=1e-12)
    # 800 Gb/s: every switch port and cable at 2x (constant price per Gb/s), each NIC NIC_USD more
    parts = fabric.fabric_cost()
    nic = fabric.spec.prices.nic_usd
    expected = (
        2 * (parts.switches_usd + parts.switch_links_usd + parts.endpoint_links_usd) + fabric.gpus * nic
    ) * share
    assert ib["fabric_cost_usd"] == pytest.approx(expected, rel=1e-12)
    # without the upgrade's price: the base's cost per GPU-hour, over the faster step's GPU-hours
    scaled = base["cost_per_T_base_prices_usd"] * ib["gpu_hours_per_T"] / base["gpu_hours_per_T"]
    assert ib["cost_per_T_base_prices_usd"] == pytest.approx(scaled, rel=1e-12)
    assert ib["cost_per_T_usd"] > ib["cost_per_T_base_prices_usd"]


@pytest.mark.parametrize(("key", "needle"), [("nvlink-900", "NVLink at 360 GB/s"), ("coprocessor", "co-processor")])
def test_hardware_without_a_price_is_flagged_not_given_the_base_price(
    rows: dict[str, dict], key: str, needle: str
) -> None:
    row = rows[key]
    assert row["cost_note"].startswith("hardware cost not modelled: ") and needle in row["cost_note"]
    assert math.isnan(row["cost_per_T_usd"])  # unknown, not the base's price
    base = rows["base"]
    scaled = base["cost_per_T_base_prices_usd"] * row["gpu_hours_per_T"] / base["gpu_hours_per_T"]
    assert row["cost_per_T_base_prices_usd"] == pytest.approx(scaled, rel=1e-12)  # the step-time change alone
