"""Parameters of chunk timing, with defaults derived from DeepSeek's H800 trace.

Every default below is computed by ``calibrate.trace_calibration`` from the trace
(``shared/reference/deepseek-v3/profile-data-train.json``) and rounded; ``tests/validation/
test_trace_derivations.py`` reruns the derivation and checks these numbers. None is tuned to make a
chunk time come out.

* ``gemm_beside_comm`` = 1.05: a GEMM's duration while a DeepEP data kernel runs on the other 20 SMs,
  over the same GEMM (same annotation and position in another layer) with none beside it; median of
  the trace's matched pairs. (An H200 measured on disjoint green contexts agrees: a 20-SM copy slows
  an FP8 GEMM by ~2%, ``calibrate/profiles/h200-measured.json``.)
* ``memory_beside_comm`` = 1.18: the same for memory-bound kernels (casts, norms, permutations).
* ``comm_beside_compute`` = dispatch 1.82, cached dispatch 1.60, combine 1.31: each DeepEP data
  kernel of the trace (beside GEMMs) over the DeepEP model's standalone time of the same phase (its
  rates come from DeepEP's published standalone EP64 bandwidth, :mod:`sim.moe.deepep`). Far more
  than HBM sharing explains (a copy beside a GEMM on disjoint SMs slows ~15%); rank skew inside the
  kernels is the likely rest, which a one-GPU model cannot tell apart.
* ``launch_gap_us`` = 6.3: idle time per kernel inside the compute annotations (GPU wall minus busy,
  over kernels): launch latency and eager-mode bookkeeping on the CPU.
* ``notify_wait_us`` = 2036: the mean DeepEP notify kernel (0.75-3.8 ms), which waits for the
  slowest rank of the EP group before the data moves: rank skew the model does not produce itself.

Not from the trace (DeepSeek's trace runs DeepEP on SMs set aside):

* ``nccl_sms`` = 32: the SMs an NCCL kernel holds while it runs, taken from the compute beside it, for
  Megatron-Core's NCCL all-to-all dispatcher (``workload.dispatcher: alltoall``, which sets no SMs aside).
  NCCL runs one CTA per channel on an SM of its own: "NCCL CTAs won't share an SM with compute kernels"
  (S. Jeaugey, NVIDIA/nccl issue #689, 2023); an all-to-all is lowered to send/receive work on the
  point-to-point channels, and its kernel was measured (CUPTI, NCCL 2.31) at 32 CTAs with no limit set
  (NVIDIA/nccl issue #2421, 2026, its table's AlltoAll column; the ring AllReduce beside it also 32).
  While one runs, a compute op beside it has ``compute SMs - nccl_sms`` SMs: it progresses at its time
  on all of them over its time on the rest, as the cost model gives both (:meth:`OpCoster.beside_nccl`),
  times the interference factor above. The number of channels NCCL picks for a given size and fabric
  is not modelled (small messages may use fewer).

``interference`` chooses where the compute/communication slowdowns come from: ``trace`` (these),
``profile`` (the calibration profile's fitted HBM-sharing model, :mod:`sim.hardware.interference`)
or ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.errors import ScenarioError

GEMM_BESIDE_COMM = 1.05
MEMORY_BESIDE_COMM = 1.18
COMM_BESIDE_COMPUTE = {"dispatch": 1.82, "dispatch-cached": 1.60, "combine": 1.31}
LAUNCH_GAP_US = 6.3
NOTIFY_WAIT_US = 2036.0
NCCL_SMS = 32  # NVIDIA/nccl issues #689 and #2421 (module docstring)
INTERFERENCE_SOURCES = ("trace", "profile", "none")


@dataclass(frozen=True)
class ChunkParams:
    gemm_beside_comm: float = GEMM_BESIDE_COMM
    memory_beside_comm: float = MEMORY_BESIDE_COMM
    comm_beside_compute: dict[str, float] = field(default_factory=lambda: dict(COMM_BESIDE_COMPUTE))
    launch_gap_us: float = LAUNCH_GAP_US
    notify_wait_us: float = NOTIFY_WAIT_US
    interference: str = "trace"
    nccl_sms: int = NCCL_SMS  # SMs an NCCL kernel takes from the compute (the alltoall dispatcher)

    def __post_init__(self) -> None:
        if self.interference not in INTERFERENCE_SOURCES:
            raise ScenarioError(
                "interference", f"unknown source {self.interference!r}; choose from {', '.join(INTERFERENCE_SOURCES)}"
            )
        for name, value in (
            ("gemm_beside_comm", self.gemm_beside_comm),
            ("memory_beside_comm", self.memory_beside_comm),
        ):
            if value < 1:
                raise ScenarioError(name, f"a slowdown must be >= 1, got {value}")
        for phase, value in self.comm_beside_compute.items():
            if value < 1:
                raise ScenarioError(f"comm_beside_compute.{phase}", f"a slowdown must be >= 1, got {value}")
        if self.launch_gap_us < 0 or self.notify_wait_us < 0:
            raise ScenarioError("launch_gap_us", "times must be >= 0")
        if self.nccl_sms < 0:
            raise ScenarioError("nccl_sms", f"a count of SMs must be >= 0, got {self.nccl_sms}")

    def key(self) -> tuple[object, ...]:
        return (
            self.gemm_beside_comm,
            self.memory_beside_comm,
            tuple(sorted(self.comm_beside_compute.items())),
            self.launch_gap_us,
            self.notify_wait_us,
            self.interference,
            self.nccl_sms,
        )
