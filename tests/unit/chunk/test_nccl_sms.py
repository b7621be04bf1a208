"""The SMs NCCL's kernels take from the compute beside them (``ChunkParams.nccl_sms``, the alltoall
dispatcher; sources in sim/chunk/overheads.py). NCCL holds ``nccl_sms`` SMs of its own while a kernel
runs, so a compute op beside it runs on the rest: its progress rate is its time on all the compute SMs
over its time on the rest (the cost model's SM scaling), times the interference factor. Exact
conditions tested: DeepEP's dispatcher (SMs set aside) and a co-processor are unchanged; ``nccl_sms: 0``
is the model without it; each compute task's factor is the cost model's ratio at 132 and 100 SMs;
without interference factors the overlapped pair lies between its span with no NCCL SMs and with 32 SMs
set aside throughout; a forward chunk, whose all-to-all has nothing computing beside it, is unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.overheads import GEMM_BESIDE_COMM, MEMORY_BESIDE_COMM, NCCL_SMS, ChunkParams

A2A = ChunkConfig(layers=2, tokens=1024, ep=16, dispatcher="alltoall", comm_sms=0)


def _pair(config: ChunkConfig):  # type: ignore[no-untyped-def]
    s = build_chunk(config)
    return s, s.timer.pair(s.stage, s.stage)


def test_compute_beside_nccl_runs_on_the_sms_it_leaves() -> None:
    s, pair = _pair(A2A)
    assert s.compute_sms == 132 and NCCL_SMS == 32
    coster = s.timer.coster
    named: dict[str, set] = {}  # type: ignore[type-arg]
    for lo in s.stage.layers:
        for ops in lo.annotations.values():
            for o in ops:
                named.setdefault(o.name, set()).add(o)
    slower = checked = 0
    for t in pair.tasks:
        if t.stream == "comm" or len(named.get(t.name, ())) != 1:  # (a name two ops share: not told apart)
            continue
        (op,) = named[t.name]
        checked += 1
        base = GEMM_BESIDE_COMM if op.kind in ("gemm", "attention") else MEMORY_BESIDE_COMM
        alone = coster.kernel_time(op)
        ratio = coster.kernel_time(op, 132 - 32) / alone if op.kind != "small" and alone > 0 else 1.0
        assert t.slow_beside_comm == pytest.approx(base * ratio, rel=1e-12)
        slower += op.kind == "gemm" and ratio > 1.05  # a GEMM on 100 of 132 SMs is markedly slower
    assert slower > 0 and checked > 10


def test_the_pair_lies_between_all_sms_and_the_rest_throughout_and_the_forward_does_not_change() -> None:
    """Without interference factors (``interference: none``: the all-to-all's time then does not depend
    on the compute beside it), each compute op progresses between its rate on 132 SMs and its rate on
    100: the pair is longer than with no NCCL SMs and no longer than with 32 SMs set aside throughout."""
    none = ChunkParams(interference="none")
    _, without = _pair(replace(A2A, params=replace(none, nccl_sms=0)))
    _, with_ = _pair(replace(A2A, params=none))
    _, aside = _pair(replace(A2A, comm_sms=32, params=replace(none, nccl_sms=0)))
    assert without.span_s < with_.span_s <= aside.span_s
    s1 = build_chunk(A2A)
    f0 = build_chunk(replace(A2A, params=ChunkParams(nccl_sms=0)))
    assert s1.timer.forward(s1.stage).span_s == f0.timer.forward(f0.stage).span_s  # F: nothing beside it


@pytest.mark.parametrize(
    "config",
    [ChunkConfig(layers=2, tokens=1024, ep=16), replace(A2A, coprocessor=True)],
    ids=["deepep", "coprocessor"],
)
def test_no_nccl_kernel_on_the_sms_changes_nothing(config: ChunkConfig) -> None:
    _, pair = _pair(config)
    _, without = _pair(replace(config, params=ChunkParams(nccl_sms=0)))
    assert [(t.start, t.end) for t in pair.tasks] == [(t.start, t.end) for t in without.tasks]


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(Exception, match="nccl_sms"):
        ChunkParams(nccl_sms=-1)
