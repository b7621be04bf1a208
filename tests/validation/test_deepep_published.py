"""The DeepEP model against DeepEP's published H800 figures (deepseek-ai/DeepEP README, "Normal
kernels with NVLink and RDMA forwarding": 4096 tokens, hidden 7168, top-4 groups, top-8 of 256,
FP8 dispatch, BF16 combine; bottleneck bandwidth, RDMA figures are logical bandwidth).

Tolerance 20%. The per-channel RDMA rates are derived from DeepSeek's trace and the EP64 figure
(so EP64 agrees by construction; EP8, EP16 and EP32 are predictions). EP16 is a known gap (+28%):
the twin finds it NVLink-bound at 160 GB/s, DeepEP measures less, and the per-channel NVLink
forwarding rate that would decide it is not derivable from the trace; it is marked xfail(strict) so
that a model change that closes it is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.experiments.deepep_table import PUBLISHED, predict

TOLERANCE = 0.20


@pytest.mark.parametrize(
    "ep",
    [8, pytest.param(16, marks=pytest.mark.xfail(strict=True, reason="known gap: twin +28% at EP16")), 32, 64],
)
def test_dispatch_and_combine_bandwidth_within_tolerance(ep: int) -> None:
    dispatch, combine, _, _ = predict(ep, 20)
    pub_d, pub_c = PUBLISHED[ep]
    assert dispatch == pytest.approx(pub_d, rel=TOLERANCE)
    assert combine == pytest.approx(pub_c, rel=TOLERANCE)


def test_cli_writes_the_table(tmp_path: Path) -> None:
    """``twin validate deepep -o FILE.md``: every published EP size at 20 and 24 SMs (docs/deepep.md)."""
    target = tmp_path / "deepep.md"
    with pytest.raises(SystemExit) as info:
        main(["check", "deepep", "-o", str(target)])
    assert info.value.code == 0
    lines = target.read_text().splitlines()
    assert lines[0].startswith("# DeepEP")  # a Document: title, then the table
    lines = lines[2:]
    assert lines[0].startswith("| EP | link | SMs |") and len(lines) == 2 + 2 * len(PUBLISHED)
    assert [line.split("|")[3].strip() for line in lines[2:4]] == ["20", "24"]
