"""``twin calibrate import-measurements`` refuses a time faster than the GPU's datasheet roofline: a
unit slip (seconds under a ``milliseconds`` header), not a kernel (docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibrate.measurements import _roofline_times, import_measurements
from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware.gpu import H100 as H100_SPEC
from tests.conftest import SHARED

MEASURED = SHARED / "measurements" / "h100-sxm-2026-11-23"
needs_shared = pytest.mark.needs_shared(MEASURED)
H100 = "NVIDIA H100 80GB HBM3"

SLIP = """family,dtype,scaling,M,N,K,sms,milliseconds
moe_up,fp8,blockwise,4096,4096,7168,132,0.000262
moe_up,fp8,blockwise,8192,4096,7168,132,0.000500
moe_up,fp8,blockwise,16384,4096,7168,132,0.000980
"""


def _refused(tmp_path: Path, name: str, text: str, device: str = "H800") -> str:
    table = tmp_path / name
    table.write_text(text)
    with pytest.raises(ScenarioError) as info:
        import_measurements(table, device)
    return str(info.value)


def test_seconds_under_a_milliseconds_header_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's table: 0.000262 ms for 2 x 4096 x 4096 x 7168 FLOPs would be 9.2e5 TFLOPS, where the
    H800's FP8 dense peak (1979 TFLOPS) takes at least 121.5 us. It was imported (a 1156% error in the
    fit) and predicted 0.34 us; now refused naming the file, row and column, and nothing is written."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "gemm.csv").write_text(SLIP)
    out = tmp_path / "slip.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "--device", "H800", "-o", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2 and not out.exists()
    assert "gemm.csv: row 2, column milliseconds: 0.000262 ms is 464x faster than the H800's FP8 dense peak" in err
    assert "2.405e+11 FLOPs in 2.62e-07 s is 9.18e+05 TFLOPS; at 1979 TFLOPS on 132 of 132 SMs" in err
    assert "at least 121.5 us); check the unit" in err


def test_the_bound_is_each_kernels_own(tmp_path: Path) -> None:
    """A GEMM on fewer SMs against its share of the peak, BF16 against the BF16 peak; attention's
    matmul FLOPs (the backward 2.5 times the forward) at the BF16 peak; a copy's bytes read and written
    at the HBM bandwidth; an interference row's copy and GEMM."""
    # 2 x 8192^3 FLOPs on 8 of 132 SMs at 989 TFLOPS: at least 18.3 ms; 5 ms is too fast for 8 SMs by more
    # than the slack of 2 (and would be fine on all of them); 10 ms, 1.83x, is within it (boost clocks)
    msg = _refused(tmp_path, "g.csv", "family,dtype,scaling,M,N,K,sms,seconds\ng,bf16,none,8192,8192,8192,8,0.005\n")
    assert "row 2, column seconds: 0.005 s is 3.67x faster than the H800's BF16 dense peak allows" in msg
    assert "1.1e+12 FLOPs in 0.005 s is 220 TFLOPS; at 59.94 TFLOPS on 8 of 132 SMs they take at least 18.34 ms" in msg
    for sms in (8, 132):
        fine = tmp_path / f"fine{sms}.csv"
        fine.write_text(f"family,dtype,scaling,M,N,K,sms,seconds\ng,bf16,none,8192,8192,8192,{sms},0.010\n")
        assert import_measurements(fine, "H800").samples[0].time_s == 0.010
    head = "heads,seq,qk_head_dim,v_head_dim,causal,forward_seconds,backward_microseconds\n"
    msg = _refused(tmp_path, "a.csv", head + "128,4096,192,128,True,0.00121273601,4.1387521\n")
    assert "row 2, column backward_microseconds: 4.1387521 us is" in msg and "BF16 dense peak" in msg
    msg = _refused(tmp_path, "c.csv", "bytes_copied,sms,milliseconds\n1048576,132,2.26559993e-05\n")
    assert "row 2, column milliseconds: 2.26559993e-05 ms is" in msg
    assert "H800's HBM bandwidth allows (2.097e+06 bytes read and written" in msg and "3.35 TB/s" in msg
    msg = _refused(tmp_path, "f.csv", "tokens,hidden,seconds\n4096,7168,1e-6\n")
    assert "row 2, column seconds: 1e-6 s is" in msg and "HBM bandwidth" in msg
    head = (
        "compute_sms,comm_sms,gemm,gemm_alone_seconds,gemm_beside_copy_seconds,copy_bytes,copy_alone_seconds,"
        "copy_beside_gemm_seconds\n"
    )
    ok = "120,8,fp8_moe_up_8192,0.000379380798,0.000410282421,268435456,0.000887307167,0.00110075124\n"
    msg = _refused(tmp_path, "i.csv", head + ok + ok.replace("0.000887307167", "8.87e-8").replace("120,8", "96,32"))
    assert "row 3, column copy_alone_seconds: 8.87e-8 s is" in msg
    msg = _refused(tmp_path, "j.csv", head + ok.replace("0.000410282421", "4.1e-7"))
    assert "row 2, column gemm_beside_copy_seconds: 4.1e-7 s is" in msg and "FP8 dense peak" in msg
    assert "on 120 of 132 SMs" in msg


@needs_shared
def test_every_real_h100_measurement_is_within_the_roofline(tmp_path: Path) -> None:
    """The shared H100 folder imports for the H100: none of its real timings beats the datasheet. The
    nearest: the one-call BF16 GEMM on 8 SMs at 96% of 8/132 of the BF16 peak, the FP8 one on 16 SMs at
    89%, the 4 GiB copy at 90% of 3.35 TB/s (docs/calibration.md)."""
    profile = import_measurements(MEASURED, H100)
    nearest: dict[str, float] = {}
    for sample in profile.samples:
        for column, seconds, bound in _roofline_times(sample, H100_SPEC, 132):
            key = f"{sample.op}:{sample.params.get('dtype', sample.params.get('kernel'))}:{column}"
            nearest[key] = max(nearest.get(key, 0.0), bound.least_s / seconds)
    print({k: round(v, 3) for k, v in sorted(nearest.items())})
    assert max(nearest.values()) < 1
    assert nearest["gemm:bf16:<time>"] == pytest.approx(0.96, abs=0.01)
    assert nearest["gemm:fp8:<time>"] == pytest.approx(0.89, abs=0.01)
    assert nearest["memory:copy:<time>"] == pytest.approx(0.90, abs=0.01)
    assert len(nearest) >= 8  # GEMMs, attention forward and backward, copies, casts, interference


def test_microseconds_under_a_milliseconds_header_are_refused(tmp_path: Path) -> None:
    """The slip the other way: a GEMM of 4096 x 4096 x 7168 at 250 ms (2,057 times the 121.5 us its FP8
    FLOPs take at the H800's peak) was imported, and the fit then predicted a GEMM 8 times larger 4
    times faster. Over 1000x the least time and over 1 ms: refused. Under either bound: taken (a
    launch-bound kernel of 30 us is 25x its roofline in the H100 folder)."""
    head = "family,dtype,scaling,M,N,K,sms,milliseconds\n"
    msg = _refused(tmp_path, "g.csv", head + "proj,fp8,blockwise,4096,4096,7168,132,250\n")
    assert msg.endswith(
        "g.csv: row 2, column milliseconds: 250 ms is 2,057x the least time the H800's datasheet allows its work "
        "(121.5 us: FP8 dense peak on 132 of 132 SMs, and HBM for a GEMM's inputs); over 1000x that is a unit "
        "slip, not a kernel; check the unit"
    )
    # a memory-bound GEMM (M = 1): its least time is its weights read from HBM (29 MB at 3.35 TB/s: 8.8
    # us), so 9 ms (1,027x that, and over 1 ms) is refused and 8 ms (912x) taken; its FLOPs alone would
    # allow 0.03 us, and a real 30 us over 1000x that
    msg = _refused(tmp_path, "m.csv", head + "proj,fp8,blockwise,1,4096,7168,132,9.0\n")
    assert "9.0 ms is 1,027x the least time" in msg
    for ms in ("8.0", "0.9"):  # under 1000x its least time; a time under 1 ms whatever the ratio
        fine = tmp_path / f"fine{ms}.csv"
        fine.write_text(head + f"proj,fp8,blockwise,{'1' if ms == '8.0' else '16'},4096,7168,132,{ms}\n")
        assert import_measurements(fine, "H800").samples[0].time_s == pytest.approx(float(ms) * 1e-3)
    msg = _refused(tmp_path, "c.csv", "bytes_copied,sms,milliseconds\n1048576,132,2000\n")  # a copy alike
    assert "row 2, column milliseconds: 2000 ms is" in msg and "HBM bandwidth" in msg
