"""A GPU whose experts no token chose runs its routed experts on no rows. Under routing skewed far
enough (``twin chunk --routing skewed --skew-alpha 5``, within the flag's [0, 50]) one GPU received 0
rows, its ``experts_swiglu.restore`` had 0 bytes, and the chunk was refused with ``--bytes: must be at
least 1 byte, got 0`` (a flag twin chunk does not have). An op on no rows does no work: 0 s."""

from __future__ import annotations

import json

import pytest

from sim.chunk.op_cost import OpCoster
from sim.cli import main
from sim.model.layer import Operator


def test_an_op_on_no_rows_takes_no_time() -> None:
    coster = OpCoster.__new__(OpCoster)  # (kernel_time reads its model only for ops with work)
    coster.model, coster.compute_sms = None, 112  # type: ignore[assignment]
    assert (
        coster.kernel_time(Operator("experts_swiglu.restore", "mlp(B)", "memory", nbytes=0.0, kernel="cast-back")) == 0
    )
    assert coster.kernel_time(Operator("experts_down.dgrad", "mlp(B)", "gemm", m=0, n=2048, k=7168, groups=8)) == 0


@pytest.mark.parametrize("flags", [["--skew-alpha", "5"], ["--dirichlet", "0.01"]])
def test_a_chunk_routed_skewed_far_enough_to_leave_a_gpu_no_rows_runs(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--routing", "skewed", *flags, "--format", "json"])
    assert info.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["span_ms"] < 1e4
