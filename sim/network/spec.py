"""Cluster description files (``topologies/*.yaml``): nodes, NVLink, PCIe, NICs, fabric, prices.

Defaults are the H800 nodes of DeepSeek-V3's cluster (REFERENCE.md section 3):

* NVLink: 160 GB/s per GPU per direction achievable (DeepSeek-V3 report); 400 GB/s nominal
  aggregate for H800 (900 for H100) kept as ``nvlink_nominal_GBps`` for reference only.
* NIC: one ConnectX-7 400 Gb/s (50 GB/s) per GPU, GPU i on NIC i.
* PCIe between GPU and NIC: Gen5 x16, 64 GB/s per direction nominal (a parameter; not published
  for the deployed nodes).
* Latency per hop, derived from ISCA'25 Table 5 (64 B end to end): NVLink 3.33 us over two hops
  (GPU->NVSwitch->GPU) = 1.665 us per hop; IB 2.8 us same leaf, 3.7 us cross leaf, so a leaf<->spine
  hop adds (3.7-2.8)/2 = 0.45 us; we give a NIC<->leaf hop the same 0.45 us and the rest of the
  same-leaf figure, (2.8 - 2x0.45)/2 = 0.95 us, to each GPU<->NIC (PCIe + NIC) side.
* Switch prices: fitted by least squares to the five rows of ISCA'25 Table 3 (FT2, MPFT, FT3,
  Slim Fly, Dragonfly; each within 0.5%): $10,760 per 64-port 400G switch, $2,730 per
  switch-to-switch link, $1,170 per endpoint link. These are *derived*, not published prices.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.errors import ScenarioError
from sim.yamlio import read_yaml, validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NodeSpec(_Strict):
    gpus_per_node: int = Field(8, ge=1)
    nvlink_GBps: float = Field(160.0, gt=0, description="achievable per GPU per direction")
    nvlink_nominal_GBps: float = Field(400.0, gt=0, description="datasheet aggregate; reference only")
    pcie_GBps: float = Field(64.0, gt=0, description="GPU<->NIC path per direction")
    nic_Gbps: float = Field(400.0, gt=0, description="per NIC (one per GPU)")


class LatencySpec(_Strict):
    nvlink_hop_us: float = Field(1.665, ge=0)
    pcie_nic_us: float = Field(0.95, ge=0, description="GPU<->NIC side of an IB path")
    nic_leaf_us: float = Field(0.45, ge=0)
    switch_hop_us: float = Field(0.45, ge=0, description="switch<->switch hop")


class FabricSpec(_Strict):
    kind: str = Field("mpft", description="registered fabric builder: none, ft2, mpft, ft3")
    switch_radix: int = Field(64, ge=4, description="ports per switch")
    oversubscription: float = Field(1.0, ge=1.0, description="down:up port ratio at the first switch layer")
    planes: int | None = Field(None, ge=1, description="mpft only; default gpus_per_node")
    link_Gbps: float | None = Field(None, gt=0, description="switch<->switch links; default nic_Gbps")
    ecmp_seed: int = 0


class PriceSpec(_Strict):
    switch_usd: float = Field(10_760.0, ge=0)
    switch_link_usd: float = Field(2_730.0, ge=0)
    endpoint_link_usd: float = Field(1_170.0, ge=0)


class ClusterSpec(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    nodes: int = Field(ge=1)
    node: NodeSpec = Field(default_factory=NodeSpec)
    fabric: FabricSpec = Field(default_factory=FabricSpec)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    prices: PriceSpec = Field(default_factory=PriceSpec)

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
    if spec.fabric.kind == "none" and spec.nodes > 1:
        raise ScenarioError("fabric.kind", f"'none' (no network) only fits one node, got nodes: {spec.nodes}", file)
    return spec


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a topology YAML file."""
    data = read_yaml(path, "topology")
    return parse_cluster(data, str(path))
