"""Operators of a layer: what runs, on which stream, and how much work it is.

An :class:`Operator` is one step of a layer's forward (``F``), input-gradient (``B``) or weight-gradient
(``W``) part, in the order DeepSeek's training code launches it. Its ``kind`` says how the cost model
times it:

* ``gemm``: ``x[m, k] @ W[k, n]`` in ``dtype`` (FP8 with ``scaling``, or BF16); grouped expert GEMMs
  are one op whose ``m`` is the rows of every expert on the GPU (the routed token counts);
* ``attention``: the attention core (``heads``, ``seq`` tokens per sequence, q/k and v head dims,
  causal), ``sequences`` of them, forward or backward; under context parallelism (``cp``) a GPU's
  balanced share, ``1/cp`` of it (its queries, two zig-zag chunks of the sequence, against the keys
  before them);
* ``memory``: a memory-bound kernel moving ``nbytes`` (read + written), of a named ``kernel`` class
  (norm, fp8-cast, permute, ...), which a profile may calibrate;
* ``small``: ``kernels`` tiny launch-bound kernels (eager-mode bookkeeping, scale transposes);
* ``comm``: a DeepEP dispatch or combine (timed by the network model, not the cost model).

``kernels`` is the number of GPU kernels the op launches in DeepSeek's implementation: the launch
model charges a gap per kernel, and the trace calibration matches kernels to ops by it, in order.
``flops`` are model FLOPs (what MFU counts); ops that recompute forward work in the backward
(``recompute=True``) do FLOPs that MFU does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter

KINDS = ("gemm", "attention", "memory", "small", "comm")
STREAMS = ("compute", "wgrad", "comm")


@dataclass(frozen=True)
class Operator:
    name: str
    annotation: str  # DeepSeek's CPU annotation: attn(F), mlp(B), dispatch(F), ...
    kind: str
    stream: str = "compute"
    kernels: int = 1
    # gemm
    m: int = 0
    n: int = 0
    k: int = 0
    dtype: str = "fp8"
    scaling: str = "blockwise"
    accumulation: str = "promoted"  # FP8: partial sums promoted to CUDA cores, or "full" in the tensor cores
    groups: int = 1
    # attention
    heads: int = 0
    seq: int = 0
    qk_dim: int = 0
    v_dim: int = 0
    causal: bool = True
    phase: str = "fwd"
    sequences: int = 1
    cp: int = 1  # context parallelism: this GPU's balanced 1/cp share of the attention over the sequence
    # memory
    nbytes: float = 0.0
    kernel: str = ""
    # comm: "dispatch" or "combine"; cached: the layout of an earlier dispatch is reused
    comm: str = ""
    cached: bool = False
    recompute: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"op {self.name}: unknown kind {self.kind!r}")
        if self.stream not in STREAMS:
            raise ValueError(f"op {self.name}: unknown stream {self.stream!r}")

    def __hash__(self) -> int:
        """The hash the dataclass would give (of every field, in order), worked out once per object: a
        stage's memo key hashes its thousand ops. Kept out of pickles (:meth:`__getstate__`): string
        hashes differ between processes."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(_FIELDS(self))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @property
    def part(self) -> str:
        """F, B or W: the letter inside the annotation's parentheses."""
        return self.annotation[self.annotation.index("(") + 1]

    @property
    def flops(self) -> float:
        """Model FLOPs of the op, the convention MFU uses: matmuls 2mnk; the attention backward twice its
        forward; 0 for recomputation, memory-bound and communication ops."""
        if self.recompute:
            return 0.0
        if self.kind == "attention" and self.phase == "bwd":
            return self.executed_flops * 2.0 / ATTENTION_BWD_RATIO
        return self.executed_flops

    @property
    def executed_flops(self) -> float:
        """FLOPs the GPU executes (recomputation included)."""
        if self.kind == "gemm":
            return 2.0 * self.m * self.n * self.k
        if self.kind == "attention":
            per = attention_flops(self.heads, self.seq, self.qk_dim, self.v_dim, self.causal)
            return per * self.sequences * (ATTENTION_BWD_RATIO if self.phase == "bwd" else 1.0) / self.cp
        return 0.0


# executed backward matmuls of flash attention: S recomputed, dV, dP, dQ, dK = 5 against the forward's 2
ATTENTION_BWD_RATIO = 2.5


_FIELDS = attrgetter(*(f.name for f in fields(Operator)))  # an op's fields as one tuple


def attention_flops(heads: int, seq: int, qk: int, v: int, causal: bool) -> float:
    """Forward matmul FLOPs of one sequence: QK^T (2 s^2 qk) and PV (2 s^2 v) per head; causal
    masking halves them (the lower triangle, diagonal blocks aside)."""
    return 2.0 * heads * seq * seq * (qk + v) * (0.5 if causal else 1.0)
