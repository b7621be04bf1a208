"""The compute-side hardware asks of the DeepSeek-V3 report (section 5.2), as op-list what-ifs
(scenario section ``compute``).

DeepSeek-V3's FP8 recipe spends memory-bound kernels on what its GPUs cannot do inside a GEMM
(REFERENCE.md section 10; :mod:`sim.model.layer` names each kernel):

- ``online_quantization: true``, the ask "fuse FP8 cast with TMA access" ("online quantisation"): an
  activation is read from HBM, quantised to FP8 and written back, then read again by the GEMM. With the
  cast fused into the producer or the copy that moves it, the FP8 cast kernels vanish: every op of kernel
  ``fp8-cast`` (the 1x128 casts of GEMM inputs, of the saved SwiGLU inputs, of the gradients before
  their dispatch) and ``fp8-cast-e5m6`` (the attention output's E5M6 store).
- ``transposed_reads: true``, the ask "support transposed GEMM operations": the backward reads an
  activation, dequantises, transposes and re-quantises it to 128x1 tiles for the weight gradient (and
  transposes the output gradient). With GEMMs that read the FP8 operand transposed, those kernels vanish:
  every op of kernel ``fp8-cast-channel`` (per-channel cast and transpose) and ``transpose``.
- ``fp8_scaling: native``, the ask for native fine-grained (microscaling) quantisation: block-scaled GEMMs
  run at the tensor-wise scaled GEMM's measured speed (the profile's own ``tensorwise`` samples of the same
  shapes), and the software scale transposes (the ``*.scales`` launches) vanish.
- ``fp8_scaling: current``, not an ask but another recipe: FP8 with per-tensor current scaling, as
  Transformer Engine's ``Float8CurrentScaling`` runs it (NVIDIA's "FP8-CS" Megatron recipes). Its GEMMs
  are tensor-wise scaled (the profile's ``tensorwise`` samples; no scale transposes), and each cast first
  reduces the whole tensor to its absolute maximum before it can scale it: a second read of the BF16
  input before the cast's own pass (Transformer Engine's ``compute_amax`` then cast), so every
  ``fp8-cast`` op moves ``BF16_BYTES`` more per element. The layer model keeps its casts where
  DeepSeek's recipe has them (the 1x128 tiles' scale bytes included: 1/64 of a byte per element).
- ``fp8_accumulation: full``, the ask for full-precision accumulation in the tensor cores: an FP8 GEMM
  no longer promotes its partial sums to CUDA cores every 128 elements of K, and runs the profile's
  measured promotion factor faster (:mod:`sim.hardware.promotion`: tensor-wise FP8 against BF16 on the
  same shapes; 1.088 for the H800 profile). Only GEMMs without software block scaling gain: a
  block-scaled GEMM multiplies each 128-element block's partial sums by that block's scales on the CUDA
  cores, at the promotion, so its partial sums leave the tensor cores anyway. Alone, on DeepSeek's
  recipe (every layer GEMM block-scaled), the key changes nothing; with ``fp8_scaling: native`` both the
  scaling and the promotion go (the two asks are one change to the tensor core, as in Blackwell's
  microscaling formats).

What stays: the GEMMs' FLOPs (model and executed), every tensor kept for the backward (the same bytes are
stored, only the extra round trips go), the restores of FP8 copies (``cast-back``), and the stage extras
(embedding, head, the MTP module's own projection). A BF16 recipe has none of these kernels, so the keys
are refused there. Tests (``tests/unit/model/test_compute_whatifs.py``): exactly the named kernels (and
their bytes) leave, FLOPs do not change, each what-if shortens a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.model.ops import Operator
from sim.units import BF16_BYTES, FP8_CAST_BYTES

ONLINE_QUANTIZATION_KERNELS = frozenset({"fp8-cast", "fp8-cast-e5m6"})
TRANSPOSED_READ_KERNELS = frozenset({"fp8-cast-channel", "transpose"})
FP8_SCALINGS = ("software", "native", "current")
TENSORWISE_GEMMS = frozenset({"native", "current"})  # scalings whose GEMMs run tensor-wise scaled
AMAX_KERNELS = frozenset({"fp8-cast"})  # the casts that, under current scaling, read their input twice
FP8_ACCUMULATIONS = ("promoted", "full")


@dataclass(frozen=True)
class ComputeWhatIfs:
    """The what-ifs of one run (all off: DeepSeek's H800 as it is)."""

    online_quantization: bool = False
    transposed_reads: bool = False
    fp8_scaling: str = "software"
    fp8_accumulation: str = "promoted"

    @property
    def any(self) -> bool:
        return (
            self.online_quantization
            or self.transposed_reads
            or self.fp8_scaling != "software"
            or self.fp8_accumulation != "promoted"
        )

    def removes(self, op: Operator) -> bool:
        """Whether the what-ifs make ``op`` vanish."""
        if op.kind == "memory" and self.online_quantization and op.kernel in ONLINE_QUANTIZATION_KERNELS:
            return True
        if op.kind == "memory" and self.transposed_reads and op.kernel in TRANSPOSED_READ_KERNELS:
            return True
        scales = op.kind == "small" and op.name.split(".")[-1].startswith("scales")
        return self.fp8_scaling in TENSORWISE_GEMMS and scales

    def accumulates_fully(self, op: Operator) -> bool:
        """Whether ``op`` (after native scaling) keeps its partial sums in the tensor cores: an FP8 GEMM
        without software block scaling, under ``fp8_accumulation: full``."""
        fp8_gemm = op.kind == "gemm" and op.dtype == "fp8"
        return self.fp8_accumulation == "full" and fp8_gemm and op.scaling != "blockwise"

    def apply(self, ops: tuple[Operator, ...]) -> tuple[Operator, ...]:
        """``ops`` under the what-ifs (the module docstring)."""
        if not self.any:
            return ops
        out = []
        for op in ops:
            if self.removes(op):
                continue
            if self.fp8_scaling in TENSORWISE_GEMMS and op.kind == "gemm" and op.scaling == "blockwise":
                op = replace(op, scaling="tensorwise")
            if self.fp8_scaling == "current" and op.kind == "memory" and op.kernel in AMAX_KERNELS:
                op = replace(op, nbytes=op.nbytes * (1.0 + BF16_BYTES / FP8_CAST_BYTES))  # amax: the BF16 read again
            if self.accumulates_fully(op):
                op = replace(op, accumulation="full")
            out.append(op)
        return tuple(out)


NO_WHATIFS = ComputeWhatIfs()

__all__ = [
    "AMAX_KERNELS",
    "FP8_ACCUMULATIONS",
    "FP8_SCALINGS",
    "NO_WHATIFS",
    "ONLINE_QUANTIZATION_KERNELS",
    "TENSORWISE_GEMMS",
    "TRANSPOSED_READ_KERNELS",
    "ComputeWhatIfs",
]
