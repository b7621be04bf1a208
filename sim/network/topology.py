"""Cluster topologies as arrays of directed links, with a networkx view.

Every physical link is two directed links (one per direction), each with its own capacity. Links
are stored in named *blocks* of consecutive ids so that routing is arithmetic on indices (fast and
vectorised); :meth:`Topology.graph` builds the equivalent networkx ``MultiDiGraph`` for inspection,
max-flow checks and custom analysis.

Blocks (``g`` = global GPU index, node = g // G, local = g % G):

* ``nv_up[g]`` GPU -> its NVSwitch, ``nv_down[g]`` NVSwitch -> GPU (NVLink); the NVSwitch fabric is a
  node's, or a rack's where ``node.scale_up_gpus`` makes NVLink domains of several nodes (NVL72)
* ``pcie_up[g]`` GPU -> NIC g, ``pcie_down[g]`` NIC g -> GPU (the PCIe path)
* ``nic_up[g]`` NIC -> first switch, ``nic_down[g]`` first switch -> NIC
* two-layer trees (``ft2``; ``mpft`` = one per plane): ``leaf_up[(plane, leaf, port)]`` leaf ->
  spine ``port % spines``, ``leaf_down`` the reverse
* three-layer trees (``ft3``): ``edge_up[(pod, edge, port)]`` edge -> agg ``port`` of its pod,
  ``edge_down`` the reverse; ``agg_up[(pod, agg, port)]`` agg -> core ``(agg*u + port) % cores`` with
  ``u`` the aggregation switch's uplinks (radix/2, fewer under core oversubscription), ``agg_down`` the
  reverse.

In a multi-plane fat tree NIC ``local`` of every node sits in plane ``local % planes``; each plane
is a two-layer fat tree over its NICs. Switch counts for 64-port switches reproduce ISCA'25 Table 3.

Oversubscription ``k`` (``fabric.oversubscription``; a scenario's ``cluster.oversubscription``), an
integer >= 1, 1 = non-blocking. **Convention: the same endpoints per first-layer switch, k times fewer
uplinks.** A first-layer switch (FT2 leaf, MPFT leaf of every plane, FT3 edge) keeps its ``radix/2``
down ports and has ``radix/(2k)`` uplinks (k must divide radix/2: 1, 2, 4, 8, 16 or 32 at radix 64);
its other ports stay unused. Its uplink capacity is its downlink capacity / k, the bisection is divided
by k, and the layers above are non-blocking and sized by the uplinks they serve: ``ceil(leaves * up /
radix)`` spines; in FT3 ``radix/(2k)`` aggregation switches per pod (each still radix/2 down, radix/2
up) and ``ceil(pods * aggs * radix/2 / radix)`` cores. So a k:1 fabric has the same leaves (edges) and
fewer spines (aggregation and core switches) and switch cables, and costs less by exactly those.
Why not the other convention (all ports used, down:up = k:1, more endpoints per leaf): (1) it is exact
only when k+1 divides the radix (k = 1, 3, 7, ... at 64 ports), so 2:1 and 4:1 would not be k:1;
(2) it moves endpoints between leaves, changing which traffic stays under a leaf, so a sweep over k
would not measure the uplinks alone; (3) thinning the spine layer of a non-blocking design is how an
oversubscribed tree of the same leaves is built. Leaves are priced whole (their idle ports are paid
for). FT3 applies the ratio once, at the edge layer, so that k means k:1 end to end in both trees;
oversubscribing its aggregation layer as well would compound to k*k between pods.

Core oversubscription ``k_o`` (``fabric.core_oversubscription``, FT3 only) is the other ratio, between
pods alone (the Llama 3 paper's 1:7): an aggregation switch keeps its radix/2 ports to its pod's edges
and gets ``ceil(radix/2 / k_o)`` uplinks that carry radix/2 / k_o links' bandwidth together (each at
that share of it), so the pod boundary is thinned exactly k_o:1 whether or not k_o divides radix/2; the
cores shrink with the uplinks. Rail-optimised wiring (``fabric.rail_optimised``, FT2 and FT3) numbers
the endpoints rail by rail (NIC ``i`` of every node, node after node), so a rail fills consecutive
first-layer switches (:meth:`Topology.endpoint_of`); a flow between two GPUs of one index turns at
their first-layer switch when their nodes' NICs share it (within ``radix/2`` nodes of a rail).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from sim.economics import FABRIC_USD_EDGE, FabricCost, fabric_cost, rate_factor
from sim.errors import ScenarioError
from sim.network.spec import ClusterSpec
from sim.registry import Registry

if TYPE_CHECKING:  # networkx only for inspection (Topology.graph), imported there
    import networkx as nx

NVLINK, PCIE, NIC, SWITCH = 0, 1, 2, 3
KIND_NAMES = ("nvlink", "pcie", "nic", "switch")


@dataclass(frozen=True)
class Block:
    offset: int
    count: int

    def ids(self, index: np.ndarray | int) -> np.ndarray | int:
        return self.offset + index


@dataclass(frozen=True)
class TreeLayout:
    """Shape of a fat tree: radix ``k``, first-layer down/up ports ``down``/``up``.

    Two-layer: ``leaves`` and ``spines`` per plane. Three-layer: ``pods`` of ``k/2`` edges and
    ``up`` aggregation switches, and ``cores``.
    """

    kind: str
    planes: int
    endpoints: int  # per plane
    k: int
    down: int
    up: int
    leaves: int = 0
    spines: int = 0
    pods: int = 0
    edges_per_pod: int = 0
    cores: int = 0
    agg_up: int = 0  # FT3: uplinks per aggregation switch (radix/2, fewer under core oversubscription)
    rails: bool = False  # rail-optimised: NIC i of every node on consecutive endpoints (same switches)


@dataclass
class Topology:
    """A built cluster: link arrays (SI units), blocks, fabric layout and counts."""

    spec: ClusterSpec
    capacity: np.ndarray  # bytes/s per directed link
    latency: np.ndarray  # seconds per directed link
    kind: np.ndarray  # NVLINK, PCIE, NIC or SWITCH
    blocks: dict[str, Block]
    layout: TreeLayout | None
    switches: int
    _graph: nx.MultiDiGraph | None = field(default=None, repr=False)
    route_key: tuple[object, ...] | None = field(default=None, repr=False, compare=False)  # routing.shape_key's

    @property
    def gpus(self) -> int:
        return self.spec.gpus

    @property
    def nodes(self) -> int:
        return self.spec.nodes

    @property
    def gpus_per_node(self) -> int:
        return self.spec.node.gpus_per_node

    @property
    def domain_gpus(self) -> int:
        """GPUs per NVLink domain (``node.scale_up_gpus``, else a node's): consecutive GPUs that reach
        each other over NVLink, without a NIC."""
        return self.spec.node.domain_gpus

    @property
    def num_links(self) -> int:
        return len(self.capacity)

    @property
    def switch_links(self) -> int:
        """Physical switch-to-switch links (each is two directed links)."""
        return int(np.count_nonzero(self.kind == SWITCH)) // 2

    @property
    def nic_links(self) -> int:
        return int(np.count_nonzero(self.kind == NIC)) // 2

    def bisection_Bps(self) -> float:
        """Bandwidth across the cut between the first and second half of the nodes, one direction.

        Single node (with or without a fabric above it): half the GPUs' NVLink. Fat trees: per plane, the
        smaller of the half's NIC
        bandwidth and its first-layer uplink bandwidth (which is where oversubscription bites), and in
        FT3 its pods' aggregation uplink bandwidth (where core oversubscription bites);
        this is the min cut for cuts along switch boundaries (checked against networkx max-flow).
        """
        g = self.gpus_per_node
        if self.layout is None or self.nodes < 2:  # (one node's halves meet on NVLink: its fabric is not crossed)
            return self.gpus / 2 * self.spec.node.nvlink_GBps * 1e9
        lay = self.layout
        nic = self.spec.node.nic_Gbps / 8 * 1e9
        link = (self.spec.fabric.link_Gbps or self.spec.node.nic_Gbps) / 8 * 1e9
        half = self.nodes // 2 * g // lay.planes  # endpoints per plane in the first half
        first_layer = math.ceil(half / lay.down)
        cut = lay.planes * min(half * nic, first_layer * lay.up * link)
        if lay.kind == "ft3":  # and the pods' uplinks, thinned by core oversubscription
            pods_half = math.ceil(half / (lay.edges_per_pod * lay.down))
            if pods_half < lay.pods:
                per_agg = lay.k // 2 / self.spec.fabric.core_oversubscription * link
                cut = min(cut, pods_half * lay.up * per_agg)
        return cut

    def fabric_cost(self, priced_rates: bool = True) -> FabricCost:
        """Capital cost by part: switches, switch links, endpoint links and NICs at their rates and radix
        (:func:`sim.economics.fabric_cost`); ``priced_rates=False`` prices them at the reference rate (the
        hardware as the base prices it). At 400 Gb/s and 64 ports: ISCA'25 Table 3's fit, NICs 0."""
        nic = self.spec.node.nic_Gbps
        return fabric_cost(
            self.spec.prices,
            switches=self.switches,
            radix=self.spec.fabric.switch_radix,
            switch_links=self.switch_links,
            endpoint_links=self.nic_links,
            nic_Gbps=nic,
            switch_link_Gbps=self.spec.fabric.link_Gbps or nic,
            priced_rates=priced_rates,
        )

    @cached_property
    def cost_usd(self) -> float:
        return self.fabric_cost().total

    def summary(self) -> dict[str, float | int]:
        """Counts of ``twin topology show`` (links are physical, i.e. bidirectional pairs)."""
        endpoints = self.nic_links if self.layout else self.gpus
        return {
            "gpus": self.gpus,
            "nodes": self.nodes,
            "switches": self.switches,
            "switch_links": self.switch_links,
            "nic_links": self.nic_links,
            "bisection_GBps": self.bisection_Bps() / 1e9,
            # per GPU and direction, as simulated; beside it the datasheet's aggregate (reference only)
            "nvlink_GBps": self.spec.node.nvlink_GBps,
            "nvlink_nominal_GBps": self.spec.node.nvlink_nominal_GBps,
            "cost_usd": self.cost_usd,
            "cost_per_endpoint_usd": self.cost_usd / endpoints if endpoints else 0.0,
        }

    def endpoint_of(self, gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plane, endpoint index within the plane) of each GPU's NIC."""
        assert self.layout is not None
        g = self.gpus_per_node
        planes = self.layout.planes
        local = gpus % g
        if self.layout.rails:  # one plane: rail i holds NIC i of every node, node after node
            return np.zeros_like(gpus), local * self.nodes + gpus // g
        return local % planes, (gpus // g) * (g // planes) + local // planes

    def graph(self) -> nx.MultiDiGraph:
        """The topology as a networkx MultiDiGraph; edge keys are link ids."""
        if self._graph is None:
            self._graph = _to_graph(self)
        return self._graph


def _vertex_namer(topo: Topology) -> dict[str, Callable[[int], tuple[object, object]]]:
    """For each block, a function from index in block to (source vertex, target vertex)."""
    lay = topo.layout

    def gpu(i: int) -> tuple[str, int]:
        return ("gpu", i)

    def nvsw(i: int) -> tuple[str, int]:
        return ("nvswitch", i // topo.domain_gpus)  # one NVSwitch fabric per NVLink domain

    def nic(i: int) -> tuple[str, int]:
        return ("nic", i)

    names: dict[str, Callable[[int], tuple[object, object]]] = {
        "nv_up": lambda i: (gpu(i), nvsw(i)),
        "nv_down": lambda i: (nvsw(i), gpu(i)),
        "pcie_up": lambda i: (gpu(i), nic(i)),
        "pcie_down": lambda i: (nic(i), gpu(i)),
    }
    if lay is None:
        return names
    if lay.kind in ("ft2", "mpft"):
        per_plane = lay.leaves * lay.up

        def first(i: int) -> tuple[str, int, int]:
            plane, e = topo.endpoint_of(np.array([i]))
            return ("leaf", int(plane[0]), int(e[0]) // lay.down)

        def leaf_port(i: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
            plane, rest = divmod(i, per_plane)
            leaf, port = divmod(rest, lay.up)
            return ("leaf", plane, leaf), ("spine", plane, port % lay.spines)

        names["leaf_up"] = leaf_port
        names["leaf_down"] = lambda i: leaf_port(i)[::-1]
    else:

        def first(i: int) -> tuple[str, int, int]:
            edge = int(topo.endpoint_of(np.array([i]))[1][0]) // lay.down
            return ("edge", edge // lay.edges_per_pod, edge % lay.edges_per_pod)

        def edge_port(i: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
            pod, rest = divmod(i, lay.edges_per_pod * lay.up)
            edge, port = divmod(rest, lay.up)
            return ("edge", pod, edge), ("agg", pod, port)

        def agg_port(i: int) -> tuple[tuple[str, int, int], tuple[str, int]]:
            pod, rest = divmod(i, lay.up * lay.agg_up)
            agg, port = divmod(rest, lay.agg_up)
            return ("agg", pod, agg), ("core", (agg * lay.agg_up + port) % lay.cores)

        names["edge_up"] = edge_port
        names["edge_down"] = lambda i: edge_port(i)[::-1]
        names["agg_up"] = agg_port
        names["agg_down"] = lambda i: agg_port(i)[::-1]
    names["nic_up"] = lambda i: (nic(i), first(i))
    names["nic_down"] = lambda i: (first(i), nic(i))
    return names


def _to_graph(topo: Topology) -> nx.MultiDiGraph:
    import networkx as nx

    graph: nx.MultiDiGraph = nx.MultiDiGraph(name=topo.spec.name)
    for name, block in topo.blocks.items():
        namer = _vertex_namer(topo)[name]
        for i in range(block.count):
            link = block.offset + i
            u, v = namer(i)
            graph.add_edge(
                u,
                v,
                key=link,
                capacity=float(topo.capacity[link]),
                latency=float(topo.latency[link]),
                kind=KIND_NAMES[int(topo.kind[link])],
            )
    return graph


class _Links:
    """Accumulates blocks of directed links."""

    def __init__(self) -> None:
        self.blocks: dict[str, Block] = {}
        self.cap: list[np.ndarray] = []
        self.lat: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.size = 0

    def add(self, name: str, count: int, kind: int, capacity: float, latency: float) -> None:
        self.blocks[name] = Block(self.size, count)
        self.cap.append(np.full(count, capacity))
        self.lat.append(np.full(count, latency))
        self.kind.append(np.full(count, kind, dtype=np.int8))
        self.size += count


def _ports(spec: ClusterSpec) -> tuple[int, int]:
    """(down, up) ports of a first-layer switch: radix/2 down and, at oversubscription k, radix/(2k) up
    (module docstring: same endpoints per switch, k times fewer uplinks). k = 1 is the non-blocking split."""
    k, o = spec.fabric.switch_radix, spec.fabric.oversubscription
    down = max(1, min(k - 1, round(k / 2)))
    if o == 1:
        return down, k - down
    if down % o:
        options = ", ".join(str(d) for d in range(1, down + 1) if down % d == 0)
        raise ScenarioError(
            "fabric.oversubscription",
            f"must divide the {down} endpoint ports of a radix-{k} first-layer switch (it gets {down}/k uplinks): "
            f"one of {options}; got {o}",
        )
    return down, down // o


FabricBuilder = Callable[[ClusterSpec, "_Links"], tuple[TreeLayout | None, int]]
FABRICS: Registry[FabricBuilder] = Registry("fabric")
register_fabric = FABRICS.register


@register_fabric("none")
def _no_fabric(spec: ClusterSpec, links: _Links) -> tuple[TreeLayout | None, int]:
    if spec.fabric.oversubscription != 1:
        raise ScenarioError("fabric.oversubscription", "only a fat tree (ft2, mpft, ft3) has uplinks to oversubscribe")
    if spec.fabric.rail_optimised:
        raise ScenarioError("fabric.rail_optimised", "only a fat tree (ft2, ft3) has switches to wire rails to")
    if spec.fabric.core_oversubscription != 1:
        raise ScenarioError("fabric.core_oversubscription", "ft3 only: a three-layer fat tree's pods")
    for key in ("switch_radix", "link_Gbps", "planes", "ecmp_seed"):  # (defaults: nothing to say)
        if key in spec.fabric.model_fields_set:
            raise ScenarioError(f"fabric.{key}", "not used: 'none' has no switches (one node, on NVLink alone)")
    # nothing leaves the node: its NICs, their PCIe side and the switches' prices are never reached
    for section, keys in (
        ("node", ("nic_Gbps", "pcie_GBps")),
        ("latency", ("pcie_nic_us", "nic_leaf_us", "switch_hop_us")),
        ("prices", tuple(type(spec.prices).model_fields)),
    ):
        given = getattr(spec, section).model_fields_set
        for key in keys:
            if key in given:
                raise ScenarioError(
                    f"{section}.{key}", "not used: with fabric 'none' nothing leaves the node (NVLink alone)"
                )
    return None, 0


def _one_plane(spec: ClusterSpec) -> None:
    """ft2 and ft3 are one plane: ``planes`` is mpft's."""
    if spec.fabric.planes is not None:
        raise ScenarioError("fabric.planes", f"mpft only: {spec.fabric.kind} is one plane (NIC i of every node in it)")


def _nic_links(spec: ClusterSpec, links: _Links) -> None:
    nic = spec.node.nic_Gbps / 8 * 1e9
    links.add("nic_up", spec.gpus, NIC, nic, spec.latency.nic_leaf_us * 1e-6)
    links.add("nic_down", spec.gpus, NIC, nic, spec.latency.nic_leaf_us * 1e-6)


def _switch_link(spec: ClusterSpec) -> tuple[float, float]:
    return (spec.fabric.link_Gbps or spec.node.nic_Gbps) / 8 * 1e9, spec.latency.switch_hop_us * 1e-6


def _two_layer(spec: ClusterSpec, links: _Links, planes: int) -> tuple[TreeLayout | None, int]:
    """Per plane: ``ceil(endpoints / down)`` leaves of ``down`` endpoint ports and ``up`` uplinks (``up =
    down / oversubscription``), uplink ``p`` to spine ``p % spines``, and the fewest spines whose ports
    take every leaf's links to them. At oversubscription k the leaves are the same and there are about
    k times fewer spines and leaf-spine links (module docstring). A plane of one leaf has no spines and
    no uplinks: none of its traffic leaves the leaf, so neither is priced nor crossed."""
    if spec.fabric.core_oversubscription != 1:
        raise ScenarioError("fabric.core_oversubscription", "ft3 only: a two-layer tree has no layer between pods")
    g, k = spec.node.gpus_per_node, spec.fabric.switch_radix
    if g % planes:
        raise ScenarioError("fabric.planes", f"must divide gpus_per_node ({g}), got {planes}")
    down, up = _ports(spec)
    endpoints = spec.gpus // planes
    leaves = math.ceil(endpoints / down)
    if leaves > k:
        raise ScenarioError(
            "nodes",
            f"a two-layer fat tree of radix {k} holds at most {k * down} endpoints per plane, "
            f"got {endpoints}; use more planes (mpft) or ft3",
        )
    if leaves == 1:  # every endpoint of the plane on one leaf: no traffic leaves it, no spine layer is built
        spines = 0
    else:
        spines = math.ceil(leaves * up / k)
        while leaves * math.ceil(up / spines) > k:
            spines += 1
    _nic_links(spec, links)
    cap, hop = _switch_link(spec)
    uplinks = planes * leaves * up if spines else 0  # (a leaf's up ports stay empty without spines)
    links.add("leaf_up", uplinks, SWITCH, cap, hop)
    links.add("leaf_down", uplinks, SWITCH, cap, hop)
    kind = "mpft" if planes > 1 or spec.fabric.kind == "mpft" else "ft2"
    rails = _rails(spec, kind)
    layout = TreeLayout(kind, planes, endpoints, k, down, up, leaves=leaves, spines=spines, rails=rails)
    return layout, planes * (leaves + spines)


def _rails(spec: ClusterSpec, kind: str) -> bool:
    """Rail-optimised wiring, where the fabric takes it (one plane: mpft's planes are rails already)."""
    if spec.fabric.rail_optimised and kind == "mpft":
        raise ScenarioError("fabric.rail_optimised", "mpft's planes are rails already (NIC i in plane i)")
    return spec.fabric.rail_optimised


@register_fabric("ft2")
def _ft2(spec: ClusterSpec, links: _Links) -> tuple[TreeLayout | None, int]:
    _one_plane(spec)
    return _two_layer(spec, links, 1)


@register_fabric("mpft")
def _mpft(spec: ClusterSpec, links: _Links) -> tuple[TreeLayout | None, int]:
    return _two_layer(spec, links, spec.fabric.planes or spec.node.gpus_per_node)


@register_fabric("ft3")
def _ft3(spec: ClusterSpec, links: _Links) -> tuple[TreeLayout | None, int]:
    """Pods of radix/2 edges, each with ``down`` endpoint ports and one uplink to each of the pod's ``up``
    aggregation switches (``up = down / oversubscription``); every aggregation switch has ``agg_up``
    uplinks (radix/2, or ``ceil(radix/2 / core_oversubscription)`` carrying radix/2 / k_o links'
    bandwidth) to ``ceil(pods * up * agg_up / radix)`` cores. Oversubscription k thins the edge uplinks
    (k times fewer aggregation switches per pod, cores and cables), so k is the end-to-end ratio; core
    oversubscription thins what leaves a pod (module docstring)."""
    _one_plane(spec)
    k = spec.fabric.switch_radix
    half = k // 2
    down, up = _ports(spec)
    per_pod = half * down
    pods = math.ceil(spec.gpus / per_pod)
    if pods > k:
        raise ScenarioError(
            "nodes", f"a three-layer fat tree of radix {k} holds at most {k * per_pod} endpoints, got {spec.gpus}"
        )
    ko = spec.fabric.core_oversubscription
    if ko > half:
        raise ScenarioError("fabric.core_oversubscription", f"at most the {half} uplinks of an aggregation switch")
    agg_up = math.ceil(half / ko)  # uplinks carrying half / ko links' bandwidth together: exactly k_o:1
    cores = math.ceil(pods * up * agg_up / k)
    _nic_links(spec, links)
    cap, hop = _switch_link(spec)
    links.add("edge_up", pods * half * up, SWITCH, cap, hop)
    links.add("edge_down", pods * half * up, SWITCH, cap, hop)
    links.add("agg_up", pods * up * agg_up, SWITCH, cap * half / ko / agg_up, hop)
    links.add("agg_down", pods * up * agg_up, SWITCH, cap * half / ko / agg_up, hop)
    rails = _rails(spec, "ft3")
    layout = TreeLayout(
        "ft3", 1, spec.gpus, k, down, up, pods=pods, edges_per_pod=half, cores=cores, agg_up=agg_up, rails=rails
    )
    return layout, pods * (half + up) + cores


def build_topology(spec: ClusterSpec) -> Topology:
    """Build the link arrays of a cluster description with its registered fabric builder."""
    node, lat = spec.node, spec.latency
    builder = FABRICS.get(spec.fabric.kind)
    if builder is None:
        raise ScenarioError("fabric.kind", f"unknown fabric {spec.fabric.kind!r}; choose from {', '.join(FABRICS)}")
    links = _Links()
    nv, pcie = node.nvlink_GBps * 1e9, node.pcie_GBps * 1e9
    links.add("nv_up", spec.gpus, NVLINK, nv, lat.nvlink_hop_us * 1e-6)
    links.add("nv_down", spec.gpus, NVLINK, nv, lat.nvlink_hop_us * 1e-6)
    links.add("pcie_up", spec.gpus, PCIE, pcie, lat.pcie_nic_us * 1e-6)
    links.add("pcie_down", spec.gpus, PCIE, pcie, lat.pcie_nic_us * 1e-6)
    layout, switches = builder(spec, links)
    topo = Topology(
        spec=spec,
        capacity=np.concatenate(links.cap),
        latency=np.concatenate(links.lat),
        kind=np.concatenate(links.kind),
        blocks=links.blocks,
        layout=layout,
        switches=switches,
    )
    _check_cost(topo)
    return topo


def _check_cost(topo: Topology) -> None:
    """Refuse a fabric whose cost by the price rule (:func:`sim.economics.fabric_cost`) is not finite or past
    :data:`sim.economics.FABRIC_USD_EDGE`, naming the price rule's keys. Every USD price is at most 1e12 and
    every rate at most 1e15 Gb/s, so only the rate factor ``(r / prices.reference_Gbps)^prices.rate_exponent``
    takes a cost there (a reference rate far below the ports'): a fabric is built where every command reads
    its topology (``twin run``, ``twin validate``, ``twin topology show``, a sweep's point, with a
    scenario's ``cluster.nic_Gbps``), so they refuse it alike, before any figure is written."""
    if topo.layout is None:  # nothing leaves the node: no fabric, no price read
        return
    total = topo.cost_usd
    if math.isfinite(total) and abs(total) <= FABRIC_USD_EDGE:
        return
    prices = topo.spec.prices
    rate = max(topo.spec.node.nic_Gbps, topo.spec.fabric.link_Gbps or topo.spec.node.nic_Gbps)
    factor = rate_factor(rate, prices)
    raise ScenarioError(
        "",
        f"the results overflow: cost_usd is {total:g}, from prices.reference_Gbps = {prices.reference_Gbps:g} and "
        f"prices.rate_exponent = {prices.rate_exponent:g} (a {rate:g} Gb/s port costs ({rate:g} / "
        f"{prices.reference_Gbps:g})^{prices.rate_exponent:g} = {factor:g} times its price at reference_Gbps); "
        "use values nearer to real ones",
    )
