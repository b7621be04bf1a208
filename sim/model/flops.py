"""Training FLOPs per token, counted from the same ops the simulator times.

Convention (the one MFU uses): every matmul ``2 m n k`` in the forward, again for the input
gradient and again for the weight gradient (so 3x the forward); attention's core ``2 s^2 (qk + v)``
per head and sequence in the forward, halved when causal (only the lower triangle is computed), and
twice that in the backward; recomputation is not counted (it is executed work, not model work);
memory-bound ops, the router's top-k and communication count 0. One MoE token costs its top-k
routed experts and the shared expert.

DeepSeek-V3 at sequence 4096 (``twin model flops``): about 250.5 GFLOP per token for the main model
with causal attention, 260.7 with the MTP module (one more MoE block, its projection and the shared
head again); ISCA'25 Table 2 gives ~250 GFLOP per token for training. Non-causal attention (every
score computed) adds 31 GFLOP.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.model.layer import LayerWork, head_ops, layer_ops, layer_signature, mtp_ops
from sim.model.ops import Operator
from sim.model.spec import ModelSpec


@dataclass(frozen=True)
class FlopCount:
    """Training FLOPs per token, by part."""

    attention_core: float
    dense_matmuls: float  # attention projections, dense FFNs, router gate
    experts: float  # routed and shared experts
    head: float
    mtp: float

    @property
    def main(self) -> float:
        return self.attention_core + self.dense_matmuls + self.experts + self.head

    @property
    def total(self) -> float:
        return self.main + self.mtp

    def to_dict(self) -> dict[str, float]:
        return {
            "attention_core": self.attention_core,
            "dense_matmuls": self.dense_matmuls,
            "experts": self.experts,
            "head": self.head,
            "mtp": self.mtp,
            "main": self.main,
            "total": self.total,
        }


def _is_expert(op: Operator) -> bool:
    return op.annotation.startswith("mlp") and op.name.startswith(("shared", "expert"))


def _layer_flops(s: ModelSpec, layer: int, t: int, causal: bool) -> tuple[float, float, float]:
    """(attention core, other matmuls, experts) FLOPs of one layer for ``t`` tokens."""
    work = LayerWork(t, (t * s.n_activated_experts,) if s.is_moe(layer) else ())
    ops = [op for ops in layer_ops(s, layer, work).annotations.values() for op in ops]
    core = sum(replace(op, causal=causal).flops for op in ops if op.kind == "attention")
    experts = sum(op.flops for op in ops if op.kind == "gemm" and _is_expert(op))
    other = sum(op.flops for op in ops if op.kind == "gemm" and not _is_expert(op))
    return core, other, experts


def training_flops_per_token(s: ModelSpec, causal: bool = True, seq_len: int | None = None) -> FlopCount:
    """Model FLOPs per token of one training step (forward and backward) at ``seq_len`` tokens per
    sequence [default: ``s.seq_len``]."""
    if seq_len is not None and seq_len != s.seq_len:
        s = s.model_copy(update={"seq_len": seq_len})
    t = s.seq_len
    by_signature: dict[tuple[object, ...], tuple[float, float, float]] = {}  # equal signatures, equal ops
    parts = []
    for layer in range(s.n_layers):
        sig = layer_signature(s, layer)
        if sig not in by_signature:
            by_signature[sig] = _layer_flops(s, layer, t, causal)
        parts.append(by_signature[sig])
    head = sum(op.flops for ops in head_ops(s, t).values() for op in ops)
    mtp = 0.0
    if s.mtp_depth:
        block = sum(_layer_flops(s, s.n_layers - 1, t, causal))  # an MoE block like the last layer
        own = sum(op.flops for ops in mtp_ops(s, t).values() for op in ops)
        mtp = s.mtp_depth * (block + own + head)
    return FlopCount(
        attention_core=sum(p[0] for p in parts) / t,
        dense_matmuls=sum(p[1] for p in parts) / t,
        experts=sum(p[2] for p in parts) / t,
        head=head / t,
        mtp=mtp / t,
    )
