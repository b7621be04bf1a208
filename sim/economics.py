"""What a step costs: GPU time at a rental price plus the scale-out network's capital cost spread over its
life, with every price, its source, and the rule that prices hardware the sources do not list.

Prices and their sources:

* ``GPU_HOUR_USD`` = $2 per GPU-hour: the H800 rental price DeepSeek assumes for its training cost
  (DeepSeek-V3 report, arXiv 2412.19437, Table 1: 2.788M GPU-hours = $5.576M). It is used for every
  GPU unless a scenario sets ``economics.gpu_hour_usd``; it is a price, not a measurement. It is taken
  to cover the server as rented (GPUs, NVLink, the node's 400 Gb/s NICs) and not the scale-out network
  (switches and cables), so that fabrics can be compared on one footing.
* The fabric at the **reference point**, 400 Gb/s ports (``PRICE_REFERENCE_Gbps``) and 64-port switches
  (``PRICE_REFERENCE_RADIX``): ``SWITCH_USD`` = $10,760 per switch, ``SWITCH_LINK_USD`` = $2,730 per
  switch-to-switch link, ``ENDPOINT_LINK_USD`` = $1,170 per endpoint (NIC-to-switch) link, fitted by least
  squares to the five rows of ISCA'25 Table 3 ("Insights into DeepSeek-V3", arXiv 2505.09343: FT2, MPFT,
  FT3, Slim Fly, Dragonfly; each row within 0.5%). Derived, not published prices: the table gives only
  totals, all of 400G InfiniBand with 64-port switches. It counts switches and links, not NICs (every
  topology it compares has one per endpoint).

The **rate and radix rule** (an assumption: no public list price exists for 800 Gb/s InfiniBand, nor for
a switch of another radix in the fitted table). Hardware is priced by its port capacity:

* a switch of radix ``k`` whose ports run at ``r`` Gb/s costs ``SWITCH_USD / 64 x k x (r / 400)^e``:
  a constant price per port at a given rate (the fit's $168 per 400G port), so radix is priced linearly;
* a switch-to-switch or endpoint link at ``r`` Gb/s costs its reference price x ``(r / 400)^e``;
* a switch's ports are priced at the fastest rate they carry (the NICs' or the switch links', whichever
  is higher): a switch generation is bought for its fastest port;
* ``e`` = ``RATE_PRICE_EXPONENT`` = 1: a **constant price per Gb/s of port capacity** (a faster
  generation costs the same per bit it moves). ``e`` = 0 makes bandwidth free (the model before this
  rule); ``e`` = 0.5 prices a doubling at x1.41. It is ``prices.rate_exponent`` in a topology file.
  What a result depends on: the fabric's cost at rate ``r`` is its 400G cost x ``(r/400)^e``, so the
  800G fabric costs 2x at e = 1 and every figure built on it moves with ``e``.

**NICs** (one per GPU). The reference NIC (ConnectX-7, 400 Gb/s) is inside the GPU-hour price (the rented
server comes with it); a NIC at another rate ``r`` adds ``NIC_USD x ((r / 400)^e - 1)`` per GPU (negative
for a slower one). ``NIC_USD`` = $168 is an assumption: one port of the fitted switch (``SWITCH_USD /
64``), since the fitted table has no NIC and no public NIC list price is at hand. A NIC carries its own
ASIC and PCIe interface, so this is likely a floor; it is ``prices.nic_usd`` in a topology file. Each
$1,000 per NIC at 400G adds about $0.0285 per GPU-hour to an 800G row (e = 1, 4 years), 1.4% of the $2
GPU-hour.

**A slower NIC's saving is credited against the network, never beyond it** (:func:`fabric_cost`). The
credit ``NIC_USD x ((r / 400)^e - 1)`` tends to ``-NIC_USD`` per NIC as ``r`` falls, while the switches and
cables it connects to shrink with ``(r / 400)^e`` to nothing, so the plain sum is negative for a small
enough rate (at e = 1, below 8.8 to 14.7 Gb/s on the shipped topologies: a 1 Gb/s NIC gave DeepSeek's
2048-GPU fabric a cost of -$320,909). A network does not pay for its job: what is left of the credit would
cut the GPU-hour rent itself, and that price (one rental price for the server as a whole) has no NIC line
to cut. So the NIC credit is at most the cost of the rest of the fabric at that rate: the fabric's cost is
``max(0, switches + switch links + endpoint links + NIC difference)``. Each of those four terms is
non-decreasing in the rate (``e >= 0``), so the cost is **never negative and non-decreasing in the rate**;
it is unchanged wherever the plain sum is not negative, which holds at and above the reference rate
(there the NIC difference is >= 0: the ISCA'25 fit at 400 Gb/s is exact) and at 200 Gb/s on every shipped
topology. A zero price stays zero at any rate (a free part is free however fast), never 0 x inf = NaN.

**Valid prices** (``prices:`` in a topology file, :class:`sim.network.spec.PriceSpec`): every USD price is a
finite amount in [0, 1e12] (0: free); ``reference_Gbps`` a rate in (0, 1e15] Gb/s (it divides every rate),
``reference_radix`` a port count in [1, 65536] (it divides ``switch_usd``), ``rate_exponent`` in [0, 4] (a
negative one would price a faster port lower, breaking the monotone rule above). A topology whose fabric
cost by these rules is not finite, or past :data:`FABRIC_USD_EDGE` (1e100, where only inputs at the edge
of floating point take a figure), is refused when it is built, naming the price rule's keys:
``t.yaml: the results overflow: cost_usd is inf, from prices.reference_Gbps = 1e-90 and
prices.rate_exponent = 4 (...)`` (:func:`sim.network.topology.build_topology`).

**Not modelled** (:func:`unpriced_hardware`): hardware that no price here covers. Its rows carry a
``cost_note`` saying so and no cost with the change priced (never the base's price in silence); their
cost at the base's prices (the step-time change alone) is still given.

* an NVLink rate other than the topology's: NVLink's generation comes with the GPU and its server
  (H800: 400 GB/s nominal, H100: 900), and the GPU-hour price is the H800's; no separate price exists.
* a communication co-processor (``comm.coprocessor``): a hypothetical part (DeepSeek-V3 report, section
  3.5, suggests one); no design or price exists.
* switch multicast and in-network reduction of the all-to-all (``comm.multicast``,
  ``comm.in_network_reduce``): ISCA'25 asks for them; no switch offers them for this traffic at a price.
* an NVL72 scale-up domain (``cluster.scale_up``): the racks' NVSwitch trays and copper spines, and the
  GPUs of a rack outside the job, have no price here.

``cost per trillion tokens = GPU-hours per trillion tokens x (GPU-hour price + fabric cost per GPU-hour)``,
the fabric's cost being the job's share of its endpoints spread over ``FABRIC_LIFE_YEARS`` of
round-the-clock use (four years: an assumption, a common depreciation period for network equipment, not a
published figure; ``economics.fabric_life_years``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

GPU_HOUR_USD = 2.0
FABRIC_LIFE_YEARS = 4.0
HOURS_PER_YEAR = 365.25 * 24

PRICE_REFERENCE_Gbps = 400.0  # every price below is for 400 Gb/s ports (ISCA'25 Table 3's InfiniBand)
PRICE_REFERENCE_RADIX = 64  # and 64-port switches
SWITCH_USD = 10_760.0  # one 64-port 400G switch (ISCA'25 Table 3 fit)
SWITCH_LINK_USD = 2_730.0  # one switch-to-switch link (ISCA'25 Table 3 fit)
ENDPOINT_LINK_USD = 1_170.0  # one NIC-to-switch link (ISCA'25 Table 3 fit)
NIC_USD = SWITCH_USD / PRICE_REFERENCE_RADIX  # assumption: a 400G NIC priced as one 400G switch port
RATE_PRICE_EXPONENT = 1.0  # assumption: price proportional to port capacity (constant $ per Gb/s)
# a fabric cost past this is an overflow in all but name (as sim.run.EDGE, which this layer cannot import)
FABRIC_USD_EDGE = 1e100

NVLINK_NOT_MODELLED = (
    "NVLink's generation comes with the GPU and its server (H800: 400 GB/s nominal, H100: 900) and the "
    "GPU-hour price is the H800's; no separate price exists"
)
COPROCESSOR_NOT_MODELLED = "a communication co-processor is a proposal (V3 report, 3.5) with no design or price"
IN_NETWORK_NOT_MODELLED = "switch multicast and reduction for the all-to-all are proposals (ISCA'25) with no price"
SCALE_UP_NOT_MODELLED = "NVL72 racks (NVSwitch trays, copper spines, a rack's GPUs outside the job) have no price"


class Prices(Protocol):
    """The prices a topology file gives (``prices:``; :class:`sim.network.spec.PriceSpec`)."""

    @property
    def switch_usd(self) -> float: ...
    @property
    def switch_link_usd(self) -> float: ...
    @property
    def endpoint_link_usd(self) -> float: ...
    @property
    def nic_usd(self) -> float: ...
    @property
    def reference_Gbps(self) -> float: ...
    @property
    def reference_radix(self) -> int: ...
    @property
    def rate_exponent(self) -> float: ...


def rate_factor(rate_Gbps: float, prices: Prices) -> float:
    """Price of a port, link or NIC at ``rate_Gbps`` over its price at the reference rate: (r / ref)^e
    (inf where that overflows a float: the figures built on it are then refused as not finite)."""
    try:
        return float((rate_Gbps / prices.reference_Gbps) ** prices.rate_exponent)
    except OverflowError:
        return float("inf")


@dataclass(frozen=True)
class FabricCost:
    """Capital cost of a scale-out network, in US dollars, by part."""

    switches_usd: float
    switch_links_usd: float
    endpoint_links_usd: float
    nics_usd: float  # the NICs beyond the reference NIC the GPU-hour price includes (negative: slower,
    # at most the other three parts: the total is never negative)

    @property
    def total(self) -> float:
        return self.switches_usd + self.switch_links_usd + self.endpoint_links_usd + self.nics_usd


def fabric_cost(
    prices: Prices,
    *,
    switches: int,
    radix: int,
    switch_links: int,
    endpoint_links: int,
    nic_Gbps: float,
    switch_link_Gbps: float,
    priced_rates: bool = True,
) -> FabricCost:
    """Cost of ``switches`` switches of ``radix`` ports, ``switch_links`` switch-to-switch links at
    ``switch_link_Gbps`` and ``endpoint_links`` NIC-to-switch links (one NIC each) at ``nic_Gbps``, by the
    rate and radix rule (module docstring). ``priced_rates=False`` prices every port at the reference rate
    (the hardware as the base prices it: no rate change paid for).

    The NICs' part is ``endpoint_links x nic_usd x ((nic_Gbps / reference_Gbps)^e - 1)``, a credit for a
    NIC slower than the one the GPU-hour price includes, **credited at most up to the other three parts**:

        total = max(0, switches_usd + switch_links_usd + endpoint_links_usd + NICs' difference)

    Why: as the rate falls the credit tends to ``-nic_usd`` per NIC while the switches and cables shrink
    with ``(r / reference_Gbps)^e`` to nothing, so the plain sum turns negative (a 1 Gb/s NIC: DeepSeek's
    2048-GPU fabric at -$320,909); a network does not pay its job, and the rest of the credit would cut the
    GPU-hour rent, a price for the whole server with no NIC line to cut. Exact conditions (for every rate
    > 0, prices >= 0 and ``e >= 0``; ``tests/unit/test_topology_prices.py``): the total is >= 0; it is
    non-decreasing in ``nic_Gbps`` and ``switch_link_Gbps`` (each part is, and so is max(0, .) of their
    sum); it equals the plain sum wherever that is >= 0, at and above the reference rate in particular
    (the NICs' part is then >= 0 and untouched: ISCA'25 Table 3's fit at 400 Gb/s is unchanged). A zero
    price or count is zero at any rate (never 0 x inf)."""

    def factor(rate: float) -> float:
        return rate_factor(rate, prices) if priced_rates else 1.0

    def priced(count: float, usd: float, by: float) -> float:
        return count * usd * by if count and usd else 0.0  # free (or none) at any rate, never 0 x inf

    nic = factor(nic_Gbps)
    port = prices.switch_usd / prices.reference_radix
    switches_usd = switches * radix * (port * factor(max(nic_Gbps, switch_link_Gbps))) if switches and port else 0.0
    switch_links_usd = priced(switch_links, prices.switch_link_usd, factor(switch_link_Gbps))
    endpoint_links_usd = priced(endpoint_links, prices.endpoint_link_usd, nic)
    nics_usd = priced(endpoint_links, prices.nic_usd, nic - 1.0)
    rest = switches_usd + switch_links_usd + endpoint_links_usd
    if nics_usd < -rest:  # a slower NIC's credit stops at the network's cost (docstring)
        nics_usd = -rest
    return FabricCost(switches_usd, switch_links_usd, endpoint_links_usd, nics_usd)


def unpriced_hardware(
    *,
    coprocessor: bool,
    nvlink_GBps: float,
    priced_nvlink_GBps: float,
    in_network: bool = False,
    scale_up: bool = False,
) -> tuple[str, ...]:
    """Why a scenario's hardware has no price here: one line per part (empty when everything is priced).
    ``priced_nvlink_GBps`` is the NVLink of the topology file, the node the GPU-hour price rents."""
    out = []
    if nvlink_GBps != priced_nvlink_GBps:
        out.append(f"NVLink at {nvlink_GBps:g} GB/s (the topology's: {priced_nvlink_GBps:g}): {NVLINK_NOT_MODELLED}")
    if coprocessor:
        out.append(f"co-processor: {COPROCESSOR_NOT_MODELLED}")
    if in_network:
        out.append(f"multicast / in-network reduction: {IN_NETWORK_NOT_MODELLED}")
    if scale_up:
        out.append(f"NVL72 domain: {SCALE_UP_NOT_MODELLED}")
    return tuple(out)


def not_modelled_note(reasons: tuple[str, ...]) -> str | None:
    """The row's ``cost_note``: 'hardware cost not modelled: ...', or None where everything is priced."""
    return "hardware cost not modelled: " + "; ".join(reasons) if reasons else None


@dataclass(frozen=True)
class Cost:
    """Cost of training per trillion tokens, in US dollars, and its parts."""

    fabric_usd: float  # capital cost of the fabric share the job uses
    fabric_usd_per_gpu_hour: float
    gpu_usd_per_T: float
    fabric_usd_per_T: float

    @property
    def usd_per_T(self) -> float:
        return self.gpu_usd_per_T + self.fabric_usd_per_T


def training_cost(
    gpu_hours_per_T: float,
    job_gpus: int,
    fabric_usd: float,
    fabric_gpus: int,
    gpu_hour_usd: float = GPU_HOUR_USD,
    fabric_life_years: float = FABRIC_LIFE_YEARS,
) -> Cost:
    """Cost per trillion tokens of a job of ``job_gpus`` on a fabric of ``fabric_gpus`` endpoints costing
    ``fabric_usd`` (the job is charged its share of the fabric)."""
    share = fabric_usd * min(1.0, job_gpus / fabric_gpus) if fabric_gpus > 0 else 0.0
    per_gpu_hour = share / job_gpus / (fabric_life_years * HOURS_PER_YEAR) if job_gpus > 0 else 0.0
    return Cost(share, per_gpu_hour, gpu_hours_per_T * gpu_hour_usd, gpu_hours_per_T * per_gpu_hour)
