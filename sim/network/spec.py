"""Cluster description files (``topologies/*.yaml``): nodes, NVLink, PCIe, NICs, fabric, prices.

Defaults are the H800 nodes of DeepSeek-V3's cluster (REFERENCE.md section 3):

* NVLink: 160 GB/s per GPU per direction achievable (DeepSeek-V3 report); 400 GB/s nominal
  aggregate for H800 (900 for H100) kept as ``nvlink_nominal_GBps`` for reference only.
* NIC: one ConnectX-7 400 Gb/s (50 GB/s) per GPU, GPU i on NIC i.
* PCIe between GPU and NIC: Gen5 x16, 64 GB/s per direction nominal (a parameter; not published
  for the deployed nodes).
* NVLink domain (``node.scale_up_gpus``): by default a node; a rack of several nodes on one NVSwitch
  fabric (NVL72: 72 GPUs, :data:`NVL72_GPUS`) where given, in which any two GPUs talk over NVLink at the
  node's ``nvlink_GBps``. A scenario's ``cluster.scale_up: nvl72`` sets it to the GPUs of an EP group.
* Latency per hop, derived from ISCA'25 Table 5 (64 B end to end): NVLink 3.33 us over two hops
  (GPU->NVSwitch->GPU) = 1.665 us per hop; IB 2.8 us same leaf, 3.7 us cross leaf, so a leaf<->spine
  hop adds (3.7-2.8)/2 = 0.45 us; we give a NIC<->leaf hop the same 0.45 us and the rest of the
  same-leaf figure, (2.8 - 2x0.45)/2 = 0.95 us, to each GPU<->NIC (PCIe + NIC) side.
* Prices (``prices:``): switches, switch links and endpoint links fitted to ISCA'25 Table 3 at 400 Gb/s
  and 64 ports, a NIC's price, and the rule that prices other rates and radixes (``rate_exponent``);
  the figures, their sources and the assumptions are in :mod:`sim.economics`, their one home.
* ``fabric.oversubscription`` k (an integer, default 1 = non-blocking): the first switch layer (FT2 and
  MPFT leaves, FT3 edges) keeps its radix/2 endpoint ports and gets k times fewer uplinks, so the layers
  above shrink with them (fewer spines, or aggregation and core switches, and cables) and the fabric's
  cost follows; the convention and its reason are in :mod:`sim.network.topology`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sim.economics import (
    ENDPOINT_LINK_USD,
    NIC_USD,
    PRICE_REFERENCE_RADIX,
    RATE_PRICE_EXPONENT,
    SWITCH_LINK_USD,
    SWITCH_USD,
    PRICE_REFERENCE_Gbps,
)
from sim.errors import ScenarioError, one_printable_line
from sim.hardware.gpu import NIC_Gbps
from sim.limits import MAX_GPUS, MAX_GPUS_PER_NODE, MAX_RATE, MAX_SEED, MIN_RATE
from sim.yamlio import read_yaml, validation_error

MAX_US = 1e9  # any latency (us)
MAX_USD = 1e12  # any price


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


NVL72_GPUS = 72  # GPUs in one NVLink domain of a GB200 NVL72 rack (NVIDIA's GB200 NVL72 specifications)


class NodeSpec(_Strict):
    gpus_per_node: int = Field(8, ge=1, le=MAX_GPUS_PER_NODE)
    nvlink_GBps: float = Field(160.0, ge=MIN_RATE, le=MAX_RATE, description="achievable per GPU per direction")
    nvlink_nominal_GBps: float = Field(
        400.0, ge=MIN_RATE, le=MAX_RATE, description="datasheet aggregate; reference only"
    )
    pcie_GBps: float = Field(64.0, ge=MIN_RATE, le=MAX_RATE, description="GPU<->NIC path per direction")
    nic_Gbps: float = Field(NIC_Gbps, ge=MIN_RATE, le=MAX_RATE, description="per NIC (one per GPU)")
    scale_up_gpus: int | None = Field(
        None,
        ge=1,
        le=MAX_GPUS,
        description="GPUs per NVLink domain: consecutive GPUs, whole nodes, that reach each other over NVLink "
        "(an NVL72 rack) [default: a node's]",
    )

    @property
    def domain_gpus(self) -> int:
        """GPUs per NVLink domain: ``scale_up_gpus``, else a node's (a GB200 NVL72 file whose node is its
        72 GPUs; an H800's 8). DeepEP routes among them over NVLink as one node of its two-hop routing;
        tokens cross IB only between domains. The one rule (the fabric, the step, serving and
        ``twin alltoall`` read it here)."""
        return self.scale_up_gpus or self.gpus_per_node


class LatencySpec(_Strict):
    nvlink_hop_us: float = Field(1.665, ge=0, le=MAX_US)
    pcie_nic_us: float = Field(0.95, ge=0, le=MAX_US, description="GPU<->NIC side of an IB path")
    nic_leaf_us: float = Field(0.45, ge=0, le=MAX_US)
    switch_hop_us: float = Field(0.45, ge=0, le=MAX_US, description="switch<->switch hop")


class FabricSpec(_Strict):
    kind: str = Field("mpft", description="registered fabric builder: none, ft2, mpft, ft3")
    switch_radix: int = Field(64, ge=4, le=65536, description="ports per switch")
    oversubscription: int = Field(
        1,
        ge=1,
        le=65536,
        description="down:up ratio at the first switch layer, k:1 (1 = non-blocking); fewer uplinks, same "
        "endpoints per switch; must divide switch_radix/2 (sim/network/topology.py)",
    )
    core_oversubscription: int = Field(
        1,
        ge=1,
        le=65536,
        description="ft3 only: aggregation down:up ratio k:1 between pods (Meta's Llama 3 cluster: 7); "
        "ceil(radix/2 / k) uplinks of radix/2 / k links' bandwidth together (sim/network/topology.py)",
    )
    rail_optimised: bool = Field(
        False,
        description="ft2, ft3: NIC i of every node under the same first-layer switches (a rail), as NVIDIA's "
        "SuperPODs; default: a node's NICs under one switch",
    )
    planes: int | None = Field(None, ge=1, le=MAX_GPUS_PER_NODE, description="mpft only; default gpus_per_node")
    link_Gbps: float | None = Field(
        None, ge=MIN_RATE, le=MAX_RATE, description="switch<->switch links; default nic_Gbps"
    )
    ecmp_seed: int = Field(0, ge=0, le=MAX_SEED)


class PriceSpec(_Strict):
    """Hardware prices at the reference rate and radix, and the rule for others (sim/economics.py)."""

    switch_usd: float = Field(SWITCH_USD, ge=0, le=MAX_USD, description="a switch of reference_radix ports")
    switch_link_usd: float = Field(SWITCH_LINK_USD, ge=0, le=MAX_USD, description="a switch-to-switch link")
    endpoint_link_usd: float = Field(ENDPOINT_LINK_USD, ge=0, le=MAX_USD, description="a NIC-to-switch link")
    nic_usd: float = Field(NIC_USD, ge=0, le=MAX_USD, description="a NIC (assumption: one switch port)")
    reference_Gbps: float = Field(PRICE_REFERENCE_Gbps, ge=MIN_RATE, le=MAX_RATE, description="port rate of the prices")
    reference_radix: int = Field(PRICE_REFERENCE_RADIX, ge=1, le=65536, description="ports of switch_usd's switch")
    rate_exponent: float = Field(
        RATE_PRICE_EXPONENT,
        ge=0,
        le=4,
        description="price ~ (rate / reference_Gbps)^e; 1 = constant price per Gb/s (an assumption)",
    )


class ClusterSpec(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    nodes: int = Field(ge=1, le=MAX_GPUS)
    node: NodeSpec = Field(default_factory=NodeSpec)
    fabric: FabricSpec = Field(default_factory=FabricSpec)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    prices: PriceSpec = Field(default_factory=PriceSpec)

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        """A name is printed in titles and nccl-tests-style headers: a newline or an escape code in it
        broke the log's lines and coloured the terminal."""
        if not name.isprintable():
            raise ValueError(f"'{one_printable_line(name)}': a name is printable text (no newline or control code)")
        return name

    @property
    def gpus(self) -> int:
        return self.nodes * self.node.gpus_per_node


def parse_cluster(data: object, file: str | None = None) -> ClusterSpec:
    """Validate a parsed YAML mapping; errors name the file and key path."""
    if not isinstance(data, dict):
        raise ScenarioError("", "a cluster file must be a mapping of keys", file)
    try:
        spec = ClusterSpec.model_validate(data)
    except ValidationError as err:
        e = validation_error(err, ClusterSpec)
        raise ScenarioError(e.key_path, e.message, file) from None
    if spec.gpus > MAX_GPUS:
        raise ScenarioError(
            "nodes",
            f"{spec.nodes:,} nodes x {spec.node.gpus_per_node} GPUs is over the limit of {MAX_GPUS:,} GPUs",
            file,
        )
    domain = spec.node.scale_up_gpus
    if domain is not None and (domain % spec.node.gpus_per_node or spec.gpus % domain):
        raise ScenarioError(
            "node.scale_up_gpus",
            f"must be whole nodes of {spec.node.gpus_per_node} GPUs dividing the cluster's {spec.gpus}, got {domain}",
            file,
        )
    if spec.fabric.kind == "none" and spec.nodes > 1:
        raise ScenarioError("fabric.kind", f"'none' (no network) only fits one node, got nodes: {spec.nodes}", file)
    return spec


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a topology YAML file; the fabric is built once to check it (planes, capacity), so every
    error names the file."""
    spec = parse_cluster(read_yaml(path, "topology"), str(path))
    build_cluster_spec(spec, str(path))
    return spec


def build_cluster_spec(spec: ClusterSpec, file: str | None = None) -> Any:
    """Build the network of ``spec``; errors name ``file``."""
    from sim.network.topology import build_topology

    try:
        return build_topology(spec)
    except ScenarioError as err:
        raise (err if err.file or file is None else err.with_file(file)) from None


def build_cluster(path: str | Path) -> Any:
    """Read a topology YAML file and build its network; every error names the file."""
    return build_cluster_spec(parse_cluster(read_yaml(path, "topology"), str(path)), str(path))
