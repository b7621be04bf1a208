"""A topology file's ``prices:`` and the fabric cost they give (sim/economics.py, "Valid prices" and "A slower
NIC's saving ..."): every price a non-negative finite USD amount and the rule's keys in range, each refused in
one line naming the file and the key; a cost the rate rule takes past floating point refused when the fabric
is built, naming ``prices.reference_Gbps`` and ``prices.rate_exponent`` (``twin topology show``, ``twin
validate`` and ``twin run`` alike); and the fabric's cost never negative and non-decreasing in the rate, the
ISCA'25 fit at 400 Gb/s unchanged."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from sim.cli import main
from sim.economics import FABRIC_USD_EDGE, NIC_USD, FabricCost, fabric_cost, rate_factor
from sim.network.spec import PriceSpec, load_cluster
from sim.network.topology import Topology, build_topology

REPO = Path(__file__).resolve().parents[2]
MPFT = REPO / "topologies" / "deepseek-v3-mpft.yaml"
FABRICS = ("isca-ft2-2048.yaml", "deepseek-v3-mpft.yaml", "deepseek-v3-ft3.yaml", "gb200-nvl72-1152.yaml")
FIT_400G = 9_020_160.0  # ISCA'25 Table 3's fit for DeepSeek's 2048-GPU fabrics (tests/unit/test_economics.py)
# rates from the edge of floating point to MAX_RATE, both sides of the reference and of every crossover
RATES = sorted(
    {1e-300, 1e-100, 1e-12, 1e-3, 0.01, 0.5, 1.0, 5.0, 8.8, 10.0, 14.7, 15.0, 50.0, 100.0, 200.0, 399.999}
    | {400.0, 400.001, 800.0, 1600.0, 1e4, 1e6, 1e9, 1e12, 1e15}
)
EXPONENTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def _topology_file(folder: Path, prices: dict[str, str] | None = None, nic: str | None = None) -> Path:
    """DeepSeek's multi-plane fat tree with ``prices:`` written as given (YAML text) and its NIC rate."""
    text = MPFT.read_text()
    if nic is not None:
        assert text.count("  nic_Gbps: 400 ") == 1
        text = text.replace("  nic_Gbps: 400 ", f"  nic_Gbps: {nic} ")
    if prices:
        text += "prices:\n" + "".join(f"  {k}: {v}\n" for k, v in prices.items())
    path = folder / "t.yaml"
    path.write_text(text)
    return path


def _scenario_file(folder: Path, topology: Path) -> Path:
    """The default step with its profile and topology given as absolute paths (the latter ``topology``)."""
    text = (REPO / "scenarios" / "deepseek_v3_pretrain.yaml").read_text()
    text = text.replace("../calibrate/profiles/h800.json", str(REPO / "calibrate" / "profiles" / "h800.json"))
    text = text.replace("../topologies/deepseek-v3-mpft.yaml", str(topology))
    path = folder / "s.yaml"
    path.write_text(text)
    return path


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``twin ARGS`` exits 2 with one line on stderr and nothing on stdout; the line."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def _shown(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """``twin topology show PATH --format json``, which must succeed."""
    with pytest.raises(SystemExit) as info:
        main(["topology", "show", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    data: dict[str, float] = json.loads(out)
    return data


# ------------------------------------------------------------------------------ the keys' ranges
USD_KEYS = ("switch_usd", "switch_link_usd", "endpoint_link_usd", "nic_usd")
OUT_OF_RANGE: list[tuple[str, str, str]] = [
    *((k, v, why) for k in USD_KEYS for v, why in (("-1", "greater than or equal to 0"), ("-1.0e-300", "greater"))),
    *((k, v, "finite number") for k in USD_KEYS for v in (".nan", ".inf", "-.inf")),
    *((k, "1.0e308", "less than or equal to 1000000000000") for k in USD_KEYS),  # overflows any fabric
    *((k, "true", "valid number") for k in USD_KEYS),
    *((k, "'168'", "valid number") for k in USD_KEYS),
    ("reference_Gbps", "0", "greater than or equal to 1e-300"),  # it divides every rate
    ("reference_Gbps", "-400", "greater than or equal to 1e-300"),
    ("reference_Gbps", ".nan", "finite number"),
    ("reference_Gbps", ".inf", "finite number"),
    ("reference_Gbps", "1.0e308", "less than or equal to"),
    ("reference_radix", "0", "greater than or equal to 1"),  # it divides switch_usd
    ("reference_radix", "-64", "greater than or equal to 1"),
    ("reference_radix", "1.5", "valid integer"),
    ("reference_radix", "100000", "less than or equal to 65536"),
    ("rate_exponent", "-1", "greater than or equal to 0"),  # a faster port priced lower
    ("rate_exponent", "-0.5", "greater than or equal to 0"),
    ("rate_exponent", "4.5", "less than or equal to 4"),
    ("rate_exponent", "1.0e308", "less than or equal to 4"),
    ("rate_exponent", ".nan", "finite number"),
]


@pytest.mark.parametrize(("key", "value", "why"), OUT_OF_RANGE, ids=[f"{k}={v}" for k, v, _ in OUT_OF_RANGE])
def test_a_price_out_of_its_range_is_refused_naming_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, why: str
) -> None:
    path = _topology_file(tmp_path, {key: value})
    line = _refused(["topology", "show", str(path), "--format", "json"], capsys)
    assert line.startswith(f"error: {path}: prices.{key}: ") and why in line, line


@pytest.mark.parametrize(("key", "value"), [("switch_usd", "0"), ("nic_usd", "0"), ("switch_usd", "1.0e12")])
def test_the_ends_of_a_usd_range_are_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    cost = _shown(_topology_file(tmp_path, {key: value}), capsys)["cost_usd"]
    assert math.isfinite(cost) and cost >= 0


# ------------------------------------------------------------------------------ costs past floating point
OVERFLOWS = [("1.0e-90", 4.0), ("1.0e-30", 4.0), ("1.0e-300", 1.0), ("1.0e-300", 4.0), ("1.0e-60", 2.0)]


@pytest.mark.parametrize(("reference", "exponent"), OVERFLOWS)
def test_a_cost_past_floating_point_is_refused_naming_the_price_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reference: str, exponent: float
) -> None:
    """Before: ``from the scenario's magnitudes`` (no key) unless the reference rate was below 1e-100, and
    ``twin validate`` and ``twin run`` took the file (they read no price)."""
    path = _topology_file(tmp_path, {"reference_Gbps": reference, "rate_exponent": str(exponent)})
    ref = float(reference)
    keys = f"from prices.reference_Gbps = {ref:g} and prices.rate_exponent = {exponent:g}"
    line = _refused(["topology", "show", str(path)], capsys)
    assert line.startswith(f"error: {path}: the results overflow: cost_usd is "), line
    assert keys in line and f"(400 / {ref:g})^{exponent:g}" in line and "use values nearer to real ones" in line
    scenario = _scenario_file(tmp_path, path)
    assert _refused(["validate", str(scenario)], capsys) == line
    assert _refused(["run", str(scenario), "--format", "json"], capsys) == line
    with pytest.raises(Exception, match="the results overflow: cost_usd is"):
        load_cluster(path)


def test_the_refusal_threshold_is_the_runs_edge() -> None:
    from sim.run import EDGE

    assert FABRIC_USD_EDGE == EDGE


def test_free_hardware_stays_free_at_any_rate_factor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 x inf was NaN (refused as an overflow): a part priced at 0 costs 0 however fast it runs."""
    free = dict.fromkeys(USD_KEYS, "0") | {"reference_Gbps": "1.0e-300", "rate_exponent": "4"}
    assert _shown(_topology_file(tmp_path, free), capsys)["cost_usd"] == 0.0


# ------------------------------------------------------------------------------ never negative, monotone
def _fabric(name: str) -> Topology:
    return build_topology(load_cluster(REPO / "topologies" / name))


def _at(topo: Topology, prices: PriceSpec, nic: float, link: float | None = None) -> FabricCost:
    return fabric_cost(
        prices,
        switches=topo.switches,
        radix=topo.spec.fabric.switch_radix,
        switch_links=topo.switch_links,
        endpoint_links=topo.nic_links,
        nic_Gbps=nic,
        switch_link_Gbps=nic if link is None else link,
    )


def _plain_sum(topo: Topology, prices: PriceSpec, nic: float, link: float | None = None) -> float:
    """The rule's four parts summed without the credit's limit, as the code before the fix computed them
    (same operations in the same order, so "unchanged" can be asserted bit for bit)."""
    link = nic if link is None else link
    port = prices.switch_usd / prices.reference_radix * rate_factor(max(nic, link), prices)
    return (
        topo.switches * topo.spec.fabric.switch_radix * port
        + topo.switch_links * prices.switch_link_usd * rate_factor(link, prices)
        + topo.nic_links * prices.endpoint_link_usd * rate_factor(nic, prices)
        + topo.nic_links * prices.nic_usd * (rate_factor(nic, prices) - 1.0)
    )


@pytest.mark.parametrize("name", FABRICS)
@pytest.mark.parametrize("exponent", EXPONENTS)
@pytest.mark.parametrize("link", [None, 400.0])  # switch links at the NICs' rate, or fixed at 400 Gb/s
def test_the_fabric_cost_is_never_negative_and_non_decreasing_in_the_rate(
    name: str, exponent: float, link: float | None
) -> None:
    """For every rate r > 0 (1e-300 to 1e15 Gb/s): cost(r) >= 0; cost(r) <= cost(r') for r < r'; and
    cost(r) = max(0, plain sum of the four parts), so it is the plain sum wherever that is >= 0."""
    topo = _fabric(name)
    prices = PriceSpec(rate_exponent=exponent)
    totals = []
    for r in RATES:
        parts = _at(topo, prices, r, link)
        plain = _plain_sum(topo, prices, r, link)
        assert parts.total >= 0.0, (r, parts)
        assert parts.total == pytest.approx(max(0.0, plain), rel=1e-12, abs=1e-6), (r, parts, plain)
        assert parts.switches_usd >= 0 and parts.switch_links_usd >= 0 and parts.endpoint_links_usd >= 0
        totals.append(parts.total)
    assert all(a <= b for a, b in itertools.pairwise(totals)), list(zip(RATES, totals, strict=True))


@pytest.mark.parametrize("name", FABRICS)
@pytest.mark.parametrize("exponent", EXPONENTS)
def test_at_and_above_the_reference_rate_nothing_changes(name: str, exponent: float) -> None:
    """The NICs' difference is >= 0 there and the parts are the rule's, untouched; at 400 Gb/s the fit."""
    topo = _fabric(name)
    prices = PriceSpec(rate_exponent=exponent)
    for r in (400.0, 400.001, 800.0, 1600.0, 1e6, 1e15):
        parts = _at(topo, prices, r)
        assert parts.nics_usd == topo.nic_links * prices.nic_usd * (rate_factor(r, prices) - 1.0) >= 0.0
        assert parts.total == _plain_sum(topo, prices, r)  # bit for bit
    at_400 = _at(topo, prices, 400.0)
    assert at_400.nics_usd == 0.0 and at_400.total == topo.fabric_cost(priced_rates=False).total
    if name in ("isca-ft2-2048.yaml", "deepseek-v3-mpft.yaml"):
        assert at_400.total == FIT_400G


def test_a_slower_nic_still_saves_until_the_fabric_is_free() -> None:
    """The credit is kept wherever the plain sum is >= 0 (200 Gb/s: half the NIC price per NIC back, as
    tests/unit/test_economics.py states), and stops at the crossover rate r* where the plain sum is 0:
    (A + N) x (r*/400) = N at e = 1, A the fabric's parts at 400 Gb/s and N its NICs' price."""
    topo = _fabric("deepseek-v3-mpft.yaml")
    prices = PriceSpec()
    slow = _at(topo, prices, 200.0)
    assert slow.nics_usd == pytest.approx(-2048 * NIC_USD / 2, rel=1e-12)
    assert slow.total == pytest.approx(FIT_400G / 2 - 2048 * NIC_USD / 2, rel=1e-12)
    nics = topo.nic_links * prices.nic_usd
    crossover = 400.0 * nics / (FIT_400G + nics)
    assert crossover == pytest.approx(14.7075, rel=1e-4)
    assert _at(topo, prices, crossover * (1 - 1e-9)).total == 0.0
    assert _at(topo, prices, crossover * (1 + 1e-6)).total > 0.0
    tiny = _at(topo, prices, 1.0)  # the reported fault: -$320,908.80 before
    assert tiny.total == 0.0 and tiny.nics_usd == -(tiny.switches_usd + tiny.switch_links_usd + tiny.endpoint_links_usd)


@pytest.mark.parametrize(
    ("nic", "prices"), [("1", {}), ("0.001", {}), ("1.0e-300", {}), ("400", {"reference_Gbps": "1.0e15"})]
)
def test_twin_topology_show_never_prints_a_negative_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nic: str, prices: dict[str, str]
) -> None:
    """Before: cost_usd -320,908.8 at 1 Gb/s (-344,320 at a reference rate of 1e15 Gb/s, every port ~free)."""
    shown = _shown(_topology_file(tmp_path, prices, nic=nic), capsys)
    assert shown["cost_usd"] == 0.0 and shown["cost_per_endpoint_usd"] == 0.0


def test_a_sweep_point_of_a_tiny_nic_has_no_negative_fabric_cost() -> None:
    """A scenario's ``cluster.nic_Gbps: 1`` (the small step): ``fabric_cost_usd`` >= 0, the cost per trillion
    tokens at least the GPUs' alone."""
    from sim.config import scenario_data
    from sim.overrides import apply_overrides
    from sim.sweep.point import OK, run_point
    from tests.conftest import SMALL_STEP

    data, folder = scenario_data(SMALL_STEP)
    row = run_point(apply_overrides(data, {"cluster.nic_Gbps": 1.0}), str(SMALL_STEP), str(folder))
    assert row["status"] == OK, row["error"]
    assert row["fabric_cost_usd"] == 0.0
    assert row["cost_per_T_usd"] >= row["gpu_hours_per_T"] * 2.0  # $2 per GPU-hour and a fabric of >= $0
