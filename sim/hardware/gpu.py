"""GPU specifications and the SM split between communication and compute.

H800 SXM (REFERENCE.md section 3): Hopper, 132 SMs, 80 GB HBM3 at ~3.35 TB/s (datasheet), dense
FP8 ~1979 TFLOPS and BF16 ~989 TFLOPS (H100 SXM datasheet figures; H800 keeps H100's compute).

The compute cost model receives ``sms - comm_sms`` SMs. Until calibrated curves exist (green-context
measurements of the calibration work), GEMM throughput scales linearly with the SMs it gets (the
analytical default: a GEMM big enough to fill every SM runs in waves whose count is inversely
proportional to the SM count). Co-processor mode leaves all SMs to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ScenarioError


@dataclass(frozen=True)
class GpuSpec:
    name: str = "H800"
    sms: int = 132
    hbm_GB: float = 80.0
    hbm_TBps: float = 3.35
    fp8_dense_TFLOPS: float = 1979.0
    bf16_dense_TFLOPS: float = 989.0


H800 = GpuSpec()


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

    def gemm_throughput_fraction(self) -> float:
        """Fraction of the full-GPU GEMM throughput left to compute (analytical: linear in SMs)."""
        return self.compute_sms / self.gpu.sms
