"""The calibration pipeline end to end on the CPU with tiny shapes (torch CPU build, gloo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from calibrate.run import run_calibration
from calibrate.shapes import V3_GEMMS, Preset, gemm_shapes
from sim.cli import main
from sim.hardware.profile import load_profile


def test_shapes_cover_deepseek_v3_gemms() -> None:
    full = gemm_shapes(Preset.named("full"))
    labels = {label for label, _ in full}
    assert set(V3_GEMMS) <= labels and "generic" in labels
    assert ("moe-up", (4096, 4096, 7168)) in full and ("head", (256, 129280, 7168)) in full
    tiny = gemm_shapes(Preset.named("tiny"))
    assert all(n % 8 == 0 and k % 8 == 0 for _, (_, n, k) in tiny)


def test_cpu_run_produces_a_valid_profile_with_provenance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cpu.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "run", "--device", "cpu", "--preset", "tiny", "--world", "2", "-o", str(out)])
    assert info.value.code == 0
    profile = load_profile(out)
    ops = {s.op for s in profile.samples}
    assert ops == {"gemm", "attention", "memory", "alltoall", "p2p"}
    assert profile.source == "measured" and profile.git_revision and profile.device.torch
    assert any(s.what == "SM-limited gemm" for s in profile.skipped)  # no green contexts on CPU
    fp8 = [s for s in profile.samples if s.op == "gemm" and s.params.get("dtype") == "fp8"]
    assert fp8 and all(s.params["scaling"] in ("blockwise", "rowwise", "tensorwise") for s in fp8)
    assert all(s.time_s > 0 for s in profile.samples)
    assert "gemm" in profile.loso_error
    a2a = [s for s in profile.samples if s.op == "alltoall"]
    assert {s.params["world"] for s in a2a} == {2} and {s.params["backend"] for s in a2a} == {"gloo"}
    # the profile feeds the predictor and the CLI
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(
            [
                "calibrate",
                "predict",
                "--profile",
                str(out),
                "--dtype",
                "bf16",
                "--m",
                "32",
                "--n",
                "64",
                "--k",
                "112",
                "--format",
                "json",
            ]
        )
    assert json.loads(capsys.readouterr().out)["time_s"] > 0


@pytest.fixture(scope="module")
def without_comm() -> tuple[Any, list[str]]:
    """One CPU run without communication benchmarks, and what it told its progress callback (the two
    tests below read the same run: each took 10 s under CI's coverage)."""
    told: list[str] = []
    return run_calibration("cpu", "tiny", world=0, comm=False, progress=told.append), told


def test_run_without_comm_records_the_skip(without_comm: tuple[Any, list[str]]) -> None:
    profile, _ = without_comm
    assert any(s.what == "p2p and all-to-all" for s in profile.skipped)
    # DeepSeek's blockwise FP8 needs a GPU: the profile says it did not run, and why
    blockwise = [s for s in profile.skipped if s.what.startswith("fp8 blockwise")]
    assert blockwise and "GPU" in blockwise[0].why


@pytest.mark.parametrize(("m", "n", "k"), [(4096, 4096, 7168), (512, 576, 7168), (256, 7168, 2048), (64, 1536, 640)])
def test_blockwise_scales_have_the_layouts_cublas_wants(m: int, n: int, k: int) -> None:
    """1x128 activation scales (M, K/128) M-major; 128x128 weight scales (L4, ceil(N/128)) K-major,
    with L = K/128 padded to a multiple of 4 (cuBLAS block scaling, as torch's scaled-mm tests build)."""
    from calibrate.bench import Bench
    from calibrate.bench_gemm import _blockwise_scales

    sa, sb = _blockwise_scales(Bench(), m, n, k)
    assert sa.shape == (m, k // 128) and sa.stride(0) == 1
    l4 = -(-(k // 128) // 4) * 4
    assert sb.shape == (l4, -(-n // 128)) and sb.stride(0) == 1
    assert (sa > 0).all() and (sb[: k // 128] > 0).all() and (sb[k // 128 :] == 0).all()


def test_bad_run_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "run", "--preset", "huge"])
    assert info.value.code == 2 and "--preset: unknown preset 'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "run", "--quick", "--preset", "full"])
    assert info.value.code == 2 and "--quick: conflicts with --preset full" in capsys.readouterr().err


def test_progress_names_each_benchmark(without_comm: tuple[Any, list[str]]) -> None:
    _, told = without_comm
    assert any(t.startswith("fp8 gemm moe-up") for t in told) and any(t.startswith("copy ") for t in told)
    assert any("(1/" in t for t in told)


def test_a_gpu_preset_on_the_cpu_says_it_will_be_long(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--quick`` (or ``--preset full``) on the CPU times GPU-sized kernels: it ran for over 5 minutes on a
    2-core host with no word. It now says so before it starts; the tiny preset (the CPU's default) does not."""
    import calibrate.run

    def refused(*_: Any, **__: Any) -> Any:  # stop where the benchmarks would start
        raise RuntimeError("stopped here")

    monkeypatch.setattr(calibrate.run, "run_calibration", refused)
    for args, told in ((["--quick"], True), (["--preset", "full"], True), (["--preset", "tiny"], False), ([], False)):
        with pytest.raises(SystemExit):
            main(["calibrate", "run", "--device", "cpu", "-o", str(tmp_path / "p.json"), *args])
        err = capsys.readouterr().err
        assert ("runs for a long time" in err) is told, (args, err)
        assert "--device: stopped here" in err
