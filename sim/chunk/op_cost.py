"""How long each op of a layer takes alone on the compute SMs: the cost model, per op kind.

* ``gemm``: :meth:`CostModel.gemm_time` at the compute SM count (grouped expert GEMMs as one GEMM of
  all their rows: the same tiles, one launch);
* ``attention``: :meth:`CostModel.attention_time` per sequence, times the sequences;
* ``memory``: :meth:`CostModel.memory_time` of the op's kernel class where the profile has samples of
  it (a trace-calibrated profile holds the op's whole multi-kernel time there), else as a fused
  streaming kernel, at the profile's copy bandwidth (the FP8 casts on the measured H100 and H200, whose
  torch-ops cast samples are their own class: :data:`sim.hardware.profile.TORCH_FP8_CAST`), plus a tiny
  kernel per extra launch;
* ``small``: ``kernels`` x :meth:`CostModel.small_kernel_time`;
* every op also pays ``launch_gap_us`` per kernel (:mod:`sim.chunk.overheads`).

Times are memoised per op (ops are frozen dataclasses), so a chunk of identical layers is costed
once per distinct op.
"""

from __future__ import annotations

from dataclasses import replace

from sim.chunk.overheads import ChunkParams
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.model.ops import Operator


class OpCoster:
    """Alone-on-the-compute-SMs durations of ops, seconds."""

    def __init__(self, model: CostModel, compute_sms: int, params: ChunkParams) -> None:
        self.model = model
        self.compute_sms = compute_sms
        self.params = params
        self._alone: dict[Operator, float] = {}  # this coster's (a class-wide lru_cache keeps every coster)
        # the same op objects come back for every chunk (stages share their layers' op lists): looked
        # up by identity first, which spares hashing the op's 23 fields (the entry keeps it alive)
        self._by_id: dict[int, tuple[Operator, float]] = {}
        self._beside: dict[tuple[Operator, int], float] = {}  # beside_nccl's ratios
        self._chunked: dict[tuple[Operator, int], float] = {}  # in_chunks' times

    def key(self) -> tuple[object, ...]:
        return (id(self.model), self.compute_sms, self.params.key())

    def alone(self, op: Operator) -> float:
        """The op's kernels back to back, alone on the compute SMs, without launch gaps."""
        mine = self._by_id.get(id(op))
        if mine is not None and mine[0] is op:
            return mine[1]
        hit = self._alone.get(op)
        if hit is None:
            hit = self._alone[op] = self.kernel_time(op)
        self._by_id[id(op)] = (op, hit)
        return hit

    def gap(self, op: Operator) -> float:
        """Idle launch time before the op's kernels: ``launch_gap_us`` per kernel."""
        return op.kernels * self.params.launch_gap_us * 1e-6

    def in_chunks(self, op: Operator, chunks: int) -> float:
        """A GEMM computed as ``chunks`` GEMMs of ``op.m / chunks`` rows each, back to back (Transformer
        Engine's ring-exchange TP overlap: :func:`sim.chunk.timer.ring_exchange_gemms`), without launch gaps."""
        if chunks <= 1 or op.kind != "gemm" or op.m % chunks:
            return self.alone(op)
        key = (op, chunks)
        hit = self._chunked.get(key)
        if hit is None:
            hit = self._chunked[key] = chunks * self.kernel_time(replace(op, m=op.m // chunks))
        return hit

    def beside_nccl(self, op: Operator, nccl_sms: int) -> float:
        """How much slower the op runs while an NCCL kernel holds ``nccl_sms`` of the compute SMs: its
        kernels' time on the other ``compute_sms - nccl_sms`` over their time on all (the cost model's
        SM scaling, :mod:`sim.chunk.overheads`); 1 where it takes none; refused where it would leave none."""
        rest = self.compute_sms - nccl_sms
        if rest < 1:
            raise ScenarioError(
                "nccl_sms", f"{nccl_sms} SMs for NCCL leave none of the {self.compute_sms} compute SMs to compute"
            )
        if nccl_sms <= 0 or op.kind == "small":
            return 1.0
        key = (op, rest)
        hit = self._beside.get(key)
        if hit is None:
            alone = self.alone(op)
            hit = self._beside[key] = self.kernel_time(op, rest) / alone if alone > 0 else 1.0
        return hit

    def kernel_time(self, op: Operator, sms: int | None = None) -> float:
        """The op's kernels back to back, without launch gaps (on ``sms`` SMs; default the compute SMs)."""
        m = self.model
        sms = self.compute_sms if sms is None else sms
        if (op.kind == "gemm" and op.m == 0) or (op.kind == "memory" and op.nbytes == 0):
            # a GPU whose experts no token chose (routing skewed far enough: twin chunk --skew-alpha 5)
            # has no rows to run them on: no work (their launches are the chunk's launch gaps)
            return 0.0
        if op.kind == "gemm":
            fp8 = op.dtype == "fp8"
            return m.gemm_time(
                op.m, op.n, op.k, op.dtype, sms, op.scaling if fp8 else None, accumulation=op.accumulation
            )
        if op.kind == "attention":
            per = m.attention_time(op.heads, op.seq, op.qk_dim, op.v_dim, op.causal, op.phase, sms)
            return per * op.sequences / op.cp
        if op.kind == "memory":
            if m.has_memory_kernel(op.kernel):
                return m.memory_time(op.nbytes, op.kernel, sms)
            return m.memory_time(op.nbytes, None, sms) + (op.kernels - 1) * m.small_kernel_time()
        if op.kind == "small":
            return op.kernels * m.small_kernel_time()
        raise ValueError(f"op {op.name}: {op.kind} ops are timed by the communication model")
