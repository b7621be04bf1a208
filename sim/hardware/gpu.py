"""GPU specifications and the SM split between communication and compute.

The one place GPU datasheet figures live (every other module reads them from here):

* H800 SXM (REFERENCE.md section 3): Hopper, 132 SMs, 80 GB HBM3 at ~3.35 TB/s (datasheet), dense
  FP8 ~1979 TFLOPS and BF16 ~989 TFLOPS (H100 SXM datasheet figures; H800 keeps H100's compute).
* H100 SXM: the same compute and HBM as the H800 (the H800 cuts NVLink and FP64).
* H200 SXM: the H100's compute, 141 GB HBM3e at 4.8 TB/s (NVIDIA H200 datasheet).

``DEFAULT_EFFICIENCY`` (0.7 of peak) is the *assumed* efficiency of datasheet profiles, where no
measurement exists; it is an assumption, not a measured figure.

The compute cost model receives ``sms - comm_sms`` SMs. With a calibration profile that holds
green-context samples, GEMM throughput at that SM count is measured (interpolated); without one it
scales linearly with the SMs it gets (the analytical default: a GEMM big enough to fill every SM runs
in waves whose count is inversely proportional to the SM count). Co-processor mode leaves all SMs to
compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.errors import ScenarioError

if TYPE_CHECKING:
    from sim.hardware.costmodel import CostModel


@dataclass(frozen=True)
class GpuSpec:
    name: str = "H800"
    sms: int = 132
    hbm_GB: float = 80.0
    hbm_TBps: float = 3.35
    fp8_dense_TFLOPS: float = 1979.0
    bf16_dense_TFLOPS: float = 989.0


H800 = GpuSpec()
H100 = GpuSpec(name="H100")
H200 = GpuSpec(name="H200", hbm_GB=141.0, hbm_TBps=4.8)
DATASHEETS: dict[str, GpuSpec] = {g.name: g for g in (H800, H100, H200)}
DEFAULT_EFFICIENCY = 0.7


def datasheet_for(device_name: str) -> GpuSpec | None:
    """The datasheet entry whose name is a word of ``device_name`` ("NVIDIA H100 80GB HBM3" -> H100)."""
    words = device_name.replace("-", " ").upper().split()
    for name, gpu in DATASHEETS.items():
        if name in words:
            return gpu
    return None


@dataclass(frozen=True)
class SmSplit:
    """How a GPU's SMs are shared: ``comm_sms`` drive communication kernels, the rest compute."""

    gpu: GpuSpec = H800
    comm_sms: int = 20
    coprocessor: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.comm_sms < self.gpu.sms:
            raise ScenarioError("comm_sms", f"must be in 0..{self.gpu.sms - 1}, got {self.comm_sms}")
        if self.comm_sms == 0 and not self.coprocessor:
            raise ScenarioError("comm_sms", "0 SMs for communication needs coprocessor mode")

    @property
    def compute_sms(self) -> int:
        return self.gpu.sms if self.coprocessor else self.gpu.sms - self.comm_sms

    def gemm_throughput_fraction(self, model: CostModel | None = None) -> float:
        """Fraction of the full-GPU GEMM throughput left to compute: measured when ``model`` (a
        calibration profile's cost model) is given, else the analytical default, linear in SMs."""
        return self.throughput_at(self.compute_sms, model)

    def throughput_at(self, sms: int, model: CostModel | None = None) -> float:
        """GEMM throughput on ``sms`` of this GPU's SMs, as a fraction of all of them."""
        if model is None:
            return sms / self.gpu.sms
        if model.all_sms != self.gpu.sms:
            raise ScenarioError(
                "profile", f"profile is for a GPU with {model.all_sms} SMs, the cluster's has {self.gpu.sms}"
            )
        return model.sm_throughput(sms)
