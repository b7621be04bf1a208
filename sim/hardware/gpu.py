"""GPU specifications and the SM split between communication and compute.

The one place GPU datasheet figures live (every other module reads them from here):

* H800 SXM (REFERENCE.md section 3): Hopper, 132 SMs, 80 GB HBM3 at ~3.35 TB/s (datasheet), dense
  FP8 ~1979 TFLOPS and BF16 ~989 TFLOPS (H100 SXM datasheet figures; H800 keeps H100's compute).
* H100 SXM: the same compute and HBM as the H800 (the H800 cuts NVLink and FP64).
* H200 SXM: the H100's compute, 141 GB HBM3e at 4.8 TB/s (NVIDIA H200 datasheet).
* B200 (HGX B200, per GPU): 180 GB HBM3e at 8 TB/s (DGX B200 datasheet: 1,440 GB and 64 TB/s for 8
  GPUs), dense FP8 4,500 and BF16 2,250 TFLOPS (HGX B200 specifications: 72 and 36 PFLOPS for 8 GPUs
  with sparsity, halved for dense); 148 SMs, as the CUDA runtime reports a B200 (an assumption where
  no device was at hand).
* GB200 (one Blackwell GPU of a GB200 NVL72 rack): 186 GB HBM3e at 8 TB/s, dense FP8 5,000 and BF16
  2,500 TFLOPS (GB200 NVL72 specifications: 13.4 TB, 576 TB/s, 720 and 360 PFLOPS with sparsity for
  72 GPUs); 148 SMs assumed (the B200's die).

``DEFAULT_EFFICIENCY`` (0.7 of peak) is the *assumed* efficiency of datasheet profiles, where no
measurement exists; it is an assumption, not a measured figure.

Also here, each in one place (tests/unit/test_constants.py refuses copies):

* :data:`DEEPSEEK_COMM_SMS` = 20: the SMs DeepSeek-V3's training gives its communication kernels
  (DeepEP dispatch/combine, 10 channels of 2 SMs), leaving :data:`DEEPSEEK_COMPUTE_SMS` = 112 of
  the H800's 132 to compute (V3 report section 3.2.2; REFERENCE.md section 3; DeepSeek's trace: the
  DeepEP kernels launch 20 blocks, the FP8 GEMMs 112 CTAs).
* :data:`NIC_Gbps` = 400: one ConnectX-7 InfiniBand NIC per GPU, 400 Gb/s = 50 GB/s
  (REFERENCE.md section 3). NIC rates are given in Gb/s only; GB/s come from
  :func:`sim.units.gbit_to_gbyte`.

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
    hbm_GiB: float = 80.0  # binary: an "80 GB" H100/H800 holds 80 GiB (sim/units.py)
    hbm_TBps: float = 3.35
    fp8_dense_TFLOPS: float = 1979.0
    bf16_dense_TFLOPS: float = 989.0


H800 = GpuSpec()
H100 = GpuSpec(name="H100")
H200 = GpuSpec(name="H200", hbm_GiB=141.0, hbm_TBps=4.8)
B200 = GpuSpec(name="B200", sms=148, hbm_GiB=180.0, hbm_TBps=8.0, fp8_dense_TFLOPS=4500.0, bf16_dense_TFLOPS=2250.0)
GB200 = GpuSpec(name="GB200", sms=148, hbm_GiB=186.0, hbm_TBps=8.0, fp8_dense_TFLOPS=5000.0, bf16_dense_TFLOPS=2500.0)
DATASHEETS: dict[str, GpuSpec] = {g.name: g for g in (H800, H100, H200, B200, GB200)}


def known_gpus() -> str:
    """The GPUs with a datasheet entry, for messages: ``H800, H100, H200, B200, GB200``."""
    return ", ".join(DATASHEETS)


DEFAULT_EFFICIENCY = 0.7

DEEPSEEK_COMM_SMS = 20  # SMs for communication in DeepSeek-V3's training: 10 DeepEP channels of 2 SMs
DEEPSEEK_COMPUTE_SMS = H800.sms - DEEPSEEK_COMM_SMS  # 112: the SMs left to compute (the trace's GEMM CTAs)
NIC_Gbps = 400.0  # one ConnectX-7 400 Gb/s InfiniBand NIC per GPU (50 GB/s)


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
    comm_sms: int = DEEPSEEK_COMM_SMS
    coprocessor: bool = False
    sm_kernels: bool = True  # communication kernels that run on SMs exist (DeepEP); a dense model has none

    def __post_init__(self) -> None:
        if not 0 <= self.comm_sms < self.gpu.sms:
            raise ScenarioError("comm_sms", f"must be in 0..{self.gpu.sms - 1}, got {self.comm_sms}")
        if self.comm_sms % 2:
            raise ScenarioError(
                "comm_sms", f"must be an even number (DeepEP drives a channel with 2 SMs), got {self.comm_sms}"
            )
        if self.comm_sms == 0 and not self.coprocessor and self.sm_kernels:
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
