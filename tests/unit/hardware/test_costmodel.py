"""Profiles (schema, provenance, device checks) and the cost model (roofline, interpolation, LOSO)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibrate.profiles import datasheet_profile
from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import Profile, Sample, dump_profile, load_profile

REPO = Path(__file__).resolve().parents[3]


def _synthetic_efficiency(m: float, n: float, k: float) -> float:
    """A smooth 'true' efficiency: small GEMMs are inefficient, large ones approach 80% of peak."""
    return 0.8 * (1 - np.exp(-m / 700)) * (1 - np.exp(-n / 1500)) * (1 - np.exp(-k / 1500))


def _profile_with(shapes: list[tuple[int, int, int]]) -> Profile:
    base = datasheet_profile()
    model = CostModel(base)
    samples = [
        Sample(
            op="gemm",
            params={"m": m, "n": n, "k": k, "dtype": "fp8"},
            time_s=model.gemm_roofline(m, n, k, "fp8") / _synthetic_efficiency(m, n, k),
        )
        for m, n, k in shapes
    ]
    return base.model_copy(update={"samples": samples, "source": "measured"})


def test_roofline_sm_scaling_and_datasheet_efficiency() -> None:
    model = CostModel(datasheet_profile(efficiency=0.5))
    flops = 2 * 8192 * 8192 * 8192
    assert model.gemm_time(8192, 8192, 8192, "fp8") == pytest.approx(flops / (1979e12 * 0.5))
    assert model.gemm_time(8192, 8192, 8192, "fp8", sms=66) == pytest.approx(
        2 * model.gemm_time(8192, 8192, 8192, "fp8")
    )
    # a skinny GEMM is memory bound: bytes / HBM
    m, n, k = 1, 16384, 16384
    assert model.gemm_roofline(m, n, k, "bf16") == pytest.approx(((m * k + k * n) * 2 + m * n * 2) / 3.35e12)


TRUTH = {"k0": 400.0, "t0_us": 6.0, "gamma": 0.9, "bw": 0.7}
TRUE_EFF = {"blockwise": 0.66, "rowwise": 0.71, "tensorwise": 0.78}


def _truth(m: int, n: int, k: int, sms: int, scaling: str) -> float:
    """Ground truth of the model's own form (wave quantisation, K fill, launch, memory roofline)."""
    from sim.hardware.gemm_model import Peaks, roofline_parts

    peaks = Peaks(1979e12, 989e12, 3.35e12, 132)
    a = [np.array([float(v)]) for v in (m, n, k, sms)]
    flop_time, nbytes, wave = roofline_parts(a[0], a[1], a[2], a[3], "fp8", peaks)
    compute = flop_time / (TRUE_EFF[scaling] * wave ** TRUTH["gamma"] * k / (k + TRUTH["k0"]))
    return float(TRUTH["t0_us"] * 1e-6 + np.maximum(compute, nbytes / (3.35e12 * TRUTH["bw"]))[0])


def _synthetic_profile(noise: float, seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    families = {"up": (4096, 7168), "down": (7168, 2048), "qa": (1536, 7168), "o": (7168, 16384), "kv": (576, 7168)}
    samples = []
    for family, (n, k) in families.items():
        for m in (128, 256, 512, 1024, 2048, 4096, 8192, 16384):
            for scaling in TRUE_EFF:
                for sms in (132, 96) if family == "up" else (132,):
                    t = _truth(m, n, k, sms, scaling) * float(np.exp(rng.normal(0, noise)))
                    params = {"m": m, "n": n, "k": k, "dtype": "fp8", "scaling": scaling, "sms": sms, "family": family}
                    samples.append(Sample(op="gemm", params=params, time_s=t))
    return datasheet_profile().model_copy(update={"samples": samples, "source": "measured"})


def test_predictor_recovers_synthetic_ground_truth() -> None:
    """Samples drawn from known parameters (3% noise): the fit finds them, and held-out shapes (other
    N, K, M and SM counts) come within 3% of the truth (median)."""
    model = CostModel(_synthetic_profile(noise=0.03))
    fit = model.describe()["fp8"]
    for scaling, e in TRUE_EFF.items():
        assert fit[f"e:{scaling}"] == pytest.approx(e, rel=0.05)
    assert fit["k0"] == pytest.approx(TRUTH["k0"], rel=0.3)
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(60):
        m, n, k = (int(rng.integers(lo, hi)) for lo, hi in ((512, 16000), (1100, 12000), (1100, 12000)))
        sms = int(rng.choice([64, 112, 120, 132]))
        scaling = str(rng.choice(list(TRUE_EFF)))
        truth = _truth(m, n, k, sms, scaling)
        errors.append(abs(model.gemm_time(m, n, k, "fp8", sms, scaling) - truth) / truth)
    assert np.median(errors) < 0.03


def test_noise_free_samples_are_reproduced_and_families_predicted() -> None:
    """Without noise the model is exact: every sample reproduced, and a whole family left out is
    predicted from the others (leave-one-family-out error ~0)."""
    model = CostModel(_synthetic_profile(noise=0.0))
    for s in model.profile.samples[::7]:
        p = s.params
        assert model.gemm_time(int(p["m"]), int(p["n"]), int(p["k"]), "fp8", int(p["sms"]), str(p["scaling"])) == (
            pytest.approx(s.time_s, rel=1e-3)
        )
    lofo = model.lofo_error()
    assert lofo["gemm"] < 0.01 and set(lofo) >= {"gemm:fp8:blockwise", "gemm:fp8:rowwise", "gemm:fp8:tensorwise"}


def test_smooth_efficiency_not_of_the_model_form_is_still_followed() -> None:
    """A smooth efficiency the model cannot express exactly: the residual smoother brings held-out
    shapes inside the sampled grid within 5% (median)."""
    sizes = (1024, 2048, 4096, 7168)
    train = [(m, n, k) for m in (256, 512, 1024, 2048, 4096, 8192, 16384) for n in sizes for k in sizes]
    model = CostModel(_profile_with(train))
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(60):
        mm, nn, kk = (int(rng.integers(lo, hi)) for lo, hi in ((512, 16000), (1100, 7000), (1100, 7000)))
        truth = model.gemm_roofline(mm, nn, kk, "fp8") / _synthetic_efficiency(mm, nn, kk)
        errors.append(abs(model.gemm_time(mm, nn, kk, "fp8", scaling="tensorwise") - truth) / truth)
    assert np.median(errors) < 0.05
    loso = model.loso_error("fp8")
    assert loso is not None and loso < 0.1


def test_unmeasured_scaling_borrows_the_nearest_and_bad_scalings_are_refused() -> None:
    samples = [s for s in _synthetic_profile(0.0).samples if s.params["scaling"] == "rowwise"]
    model = CostModel(datasheet_profile().model_copy(update={"samples": samples}))
    assert model.gemm_time(4096, 4096, 7168, "fp8", scaling="blockwise") == pytest.approx(
        model.gemm_time(4096, 4096, 7168, "fp8", scaling="rowwise")
    )
    with pytest.raises(ScenarioError, match="fp8 has no scaling 'colwise'"):
        model.gemm_time(4096, 4096, 7168, "fp8", scaling="colwise")
    with pytest.raises(ScenarioError, match="bf16 has no scaling 'rowwise'"):
        model.gemm_time(4096, 4096, 7168, "bf16", scaling="rowwise")


def test_profile_round_trip_and_refusals(tmp_path: Path) -> None:
    profile = _profile_with([(1024, 1024, 1024), (4096, 4096, 4096)])
    path = tmp_path / "p.json"
    path.write_text(dump_profile(profile))
    assert load_profile(path, device="H800") == profile
    with pytest.raises(ScenarioError, match="profile is for 'H800', but 'H100' was requested"):
        load_profile(path, device="H100")
    data = json.loads(path.read_text())
    data["samples"][0]["op"] = "conv"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match=r"samples\[0\]\.op"):
        load_profile(path)
    path.write_text("{")
    with pytest.raises(ScenarioError, match="malformed JSON"):
        load_profile(path)


def test_shipped_profiles_load() -> None:
    for path in sorted((REPO / "calibrate" / "profiles").glob("*.json")):
        p = load_profile(path)
        assert p.device.name and p.git_revision and p.source in ("measured", "trace", "datasheet")


def test_cli_predict_show_datasheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "d.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "datasheet", "-o", str(sheet), "--efficiency", "0.5"])
    assert info.value.code == 0
    capsys.readouterr()
    args = ["calibrate", "predict", "--profile", str(sheet), "--op", "gemm", "--dtype", "fp8"]
    with pytest.raises(SystemExit):
        main([*args, "--m", "4096", "--n", "4096", "--k", "7168", "--sms", "112", "--format", "json"])
    t = json.loads(capsys.readouterr().out)["time_s"]
    assert t == pytest.approx(2 * 4096 * 4096 * 7168 / (1979e12 * 112 / 132 * 0.5))
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", str(sheet), "--dtype", "int4"])
    assert info.value.code == 2 and "--dtype: unknown dtype 'int4'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "show", str(sheet), "--format", "json"])
    assert json.loads(capsys.readouterr().out)["source"] == "datasheet"


def test_attention_and_comm_predictions() -> None:
    base = datasheet_profile(efficiency=0.5)
    model = CostModel(base)
    flops = 2 * 128 * 4096**2 * (192 + 128) * 0.5
    assert model.attention_time(128, 4096) == pytest.approx(flops / (989e12 * 0.5))
    assert model.attention_time(128, 4096, phase="fwd+bwd") == pytest.approx(3.5 * model.attention_time(128, 4096))
    assert model.attention_time(128, 4096, phase="bwd") == pytest.approx(2.5 * model.attention_time(128, 4096))
    # alpha-beta fit recovers alpha = 5 us, beta = 20 GB/s from exact samples
    comm = [Sample(op="alltoall", params={"bytes": b}, time_s=5e-6 + b / 20e9) for b in (1e4, 1e6, 1e8)]
    fitted = CostModel(base.model_copy(update={"samples": comm}))
    assert fitted.comm_time("alltoall", 1e7) == pytest.approx(5e-6 + 1e7 / 20e9, rel=1e-6)
    with pytest.raises(ScenarioError, match="fewer than 2 p2p samples"):
        fitted.comm_time("p2p", 1e6)
    alone = CostModel(base.model_copy(update={"samples": comm[:1]}))  # one sample: it said "it has: alltoall"
    with pytest.raises(ScenarioError, match=r"fewer than 2 alltoall samples \(one, at 10,000 B: a line needs"):
        alone.comm_time("alltoall", 1e6)
    # samples that give no line (a profile written by hand; an import refuses them): all at one size
    # (two at 1 KiB predicted a 1 GB all-to-all at 21 s), or times that fall as the size grows
    for times, problem in (
        ({1024.0: 20.03e-6, 1024.5: 25e-6}, None),  # (two sizes, however close: a line)
        ({1024.0: 20.03e-6}, "every one is at 1,024 B"),
        ({1e4: 9e-4, 1e8: 1e-4}, "the times do not grow with the size"),
    ):
        rows = [Sample(op="alltoall", params={"bytes": b}, time_s=t) for b, t in times.items()]
        if len(rows) == 1:
            rows.append(Sample(op="alltoall", params={"bytes": 1024.0, "world": 2}, time_s=25e-6))
        model = CostModel(base.model_copy(update={"samples": rows}))
        if problem is None:
            assert model.comm_time("alltoall", 1e9) > 0
            continue
        with pytest.raises(ScenarioError, match=f"the profile's alltoall samples: {problem}"):
            model.comm_time("alltoall", 1e9)
    # an attention sample sets the efficiency for its class
    sample = Sample(
        op="attention",
        params={"heads": 128, "seq": 4096, "qk_dim": 192, "v_dim": 128, "causal": 1, "phase": "fwd"},
        time_s=1e-3,
    )
    measured = CostModel(base.model_copy(update={"samples": [sample]}))
    assert measured.attention_time(128, 4096) == pytest.approx(1e-3)


def test_memory_time_interpolates_measured_bandwidth() -> None:
    """Without samples: bytes / (HBM x assumed efficiency). With samples: their times, exact at the
    measured sizes and linear in bytes between them, per kernel when asked (tests/unit/hardware/
    test_memory_curve.py: never falling as bytes rise, the launch floor)."""
    base = datasheet_profile(efficiency=0.7)
    hbm = base.peaks.hbm_TBps * 1e12
    assert CostModel(base).memory_time(1e9) == pytest.approx(1e9 / (hbm * 0.7))
    fractions = {1e6: 0.2, 1e8: 0.6, 1e10: 0.9}
    samples = [
        Sample(op="memory", params={"kernel": "copy", "bytes": b}, time_s=b / (hbm * f)) for b, f in fractions.items()
    ]
    samples.append(Sample(op="memory", params={"kernel": "fp8-cast", "bytes": 1e8}, time_s=1e8 / (hbm * 0.3)))
    model = CostModel(base.model_copy(update={"samples": samples}))
    for b, f in fractions.items():
        assert model.memory_time(b, "copy") == pytest.approx(b / (hbm * f))
    between = model.memory_time(1e7, "copy")
    assert 1e7 / (hbm * 0.6) < between < 1e7 / (hbm * 0.2)
    assert model.memory_time(1e8, "fp8-cast") == pytest.approx(1e8 / (hbm * 0.3))
    with pytest.raises(ScenarioError, match="no memory samples of kernel 'transpose'"):
        model.memory_time(1e8, "transpose")


def test_the_measured_torch_cast_is_not_the_recipes_cast() -> None:
    """The H100 and H200 measurements time an FP8 quantisation written with torch ops (several passes,
    ~7% of HBM bandwidth): kept as its own class, ``fp8-cast-torch``, while the layer model's casts
    (one fused pass in DeepSeek's and Transformer Engine's recipes) move their bytes as the profile's
    copies do; the H800 profile has DeepSeek's fused casts from its trace, far faster than the torch ops."""
    from sim.hardware.profile import PROFILES_DIR, TORCH_FP8_CAST, load_profile

    nbytes = 355_991_552.0  # 16384 x 7168: BF16 in, FP8 and a scale per 1x128 tile out
    for name in ("h100-sxm-measured.json", "h200-measured.json"):
        model = CostModel(load_profile(PROFILES_DIR / name))
        assert model.has_memory_kernel(TORCH_FP8_CAST) and not model.has_memory_kernel("fp8-cast")
        torch_ops = model.memory_time(nbytes, TORCH_FP8_CAST)
        assert nbytes / torch_ops < 0.1 * model.peaks.hbm_Bps  # what the measurement says of torch's ops
        assert model.memory_time(nbytes, None) == model.memory_time(nbytes, "copy")  # the recipe's: a copy's
        assert model.memory_time(nbytes, None) < torch_ops / 5
    h800 = CostModel(load_profile(PROFILES_DIR / "h800.json"))
    assert h800.has_memory_kernel("fp8-cast")
    assert h800.memory_time(nbytes, "fp8-cast") < h800.memory_time(nbytes, TORCH_FP8_CAST) / 5


def test_an_fp8_layer_is_faster_than_a_bf16_one_on_the_h100() -> None:
    """Llama 3.1 70B's layer at TP 4, 8,192 tokens, on the measured H100: FP8 GEMMs run at about twice
    BF16's speed (the profile's tensor-wise fit) and the casts cost a few copies, so the FP8 layer's
    kernels take less time than BF16's (they took 12% more while the torch-ops cast timed the casts)."""
    from sim.chunk.op_cost import OpCoster
    from sim.chunk.overheads import ChunkParams
    from sim.hardware.profile import PROFILES_DIR, load_profile
    from sim.model.catalog import load_model
    from sim.model.layer import LayerWork, layer_ops

    coster = OpCoster(CostModel(load_profile(PROFILES_DIR / "h100-sxm-measured.json")), 132, ChunkParams())

    def layer_s(dtype: str) -> float:
        s = load_model("llama-3.1-70b").model_copy(update={"dtype": dtype, "seq_len": 8192})
        ops = layer_ops(s, 5, LayerWork(8192, tp=4)).annotations.values()
        return sum(coster.alone(op) for group in ops for op in group if op.kind != "comm")

    assert layer_s("fp8") < 0.9 * layer_s("bf16")
