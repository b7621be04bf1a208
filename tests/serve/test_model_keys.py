"""The model's keys a serve scenario reads differently from a training scenario: ``model.dtype``
(the served checkpoint's weights and the GEMMs that read them), ``model.tie_word_embeddings`` (one
table for the embedding and the output head) and ``model.seq_len`` (a training length: refused).

The weights per GPU are checked against the training side's own parameter split
(:func:`sim.model.params.stage_params`: the FP8-GEMM parameters and the rest), so the bytes per
parameter and the tied head come from the same counts as a training step's memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.model.params import stage_params
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.serve.deployment import Pool, build
from sim.serve.forward import Shape
from sim.serve.kvcache import weights_per_gpu
from sim.units import BF16_BYTES, FP8_BLOCK, FP8_BYTES, FP32_BYTES
from tests.conftest import REPO
from tests.serve.conftest import pool, scenario

H800 = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
FP8_WEIGHT = FP8_BYTES + FP32_BYTES / FP8_BLOCK**2  # an FP8 weight element and its 128x128 block's scale share


def _whole(s: ModelSpec) -> float:
    """Bytes of ``s`` held whole on one GPU (TP 1, every routed expert, no MTP), from the training
    side's split: FP8-GEMM weights block-scaled under fp8, everything else (and all under bf16) BF16."""
    p = stage_params(s, range(s.n_layers), ep=1, embedding=True, head=True)
    gemm = FP8_WEIGHT if s.dtype == "fp8" else BF16_BYTES
    return p.fp8_gemm * gemm + p.high_precision * BF16_BYTES


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_weights_per_gpu_follow_dtype_and_tied_embeddings(dtype: str, tied: bool) -> None:
    """bf16 weights were counted as FP8 (dtype accepted, the weights unchanged), and a tied head was
    counted beside its embedding table (tie_word_embeddings accepted, nothing changed)."""
    s = DEEPSEEK_V3.model_copy(update={"dtype": dtype, "tie_word_embeddings": tied})
    assert weights_per_gpu(s, 1, s.n_routed_experts, False) == pytest.approx(_whole(s), rel=1e-12)


def test_bf16_weights_are_two_bytes_per_parameter_and_a_tied_table_counts_once() -> None:
    """Exactly, from the parameter count: BF16 weights are 2 bytes a parameter; a tied head saves its
    [vocab, dim] weight (split over TP) and nothing else."""
    s = DEEPSEEK_V3.model_copy(update={"dtype": "bf16"})
    p = stage_params(s, range(s.n_layers), ep=1, embedding=True, head=True)
    assert weights_per_gpu(s, 1, s.n_routed_experts, False) == BF16_BYTES * p.total
    tied = s.model_copy(update={"tie_word_embeddings": True})
    for tp in (1, 2, 4):
        saved = weights_per_gpu(s, tp, 8, True) - weights_per_gpu(tied, tp, 8, True)
        assert saved == pytest.approx(BF16_BYTES * s.vocab_size * s.dim / tp, rel=1e-12)


def _pools(dtype: str | None) -> dict[str, Pool]:
    """DeepSeek-V2-Lite on one-node units (its preset gives no dtype: FP8 by default)."""
    model = {"config": "deepseek-v2-lite"} | ({} if dtype is None else {"dtype": dtype})
    one = {"nodes": 1, "unit_nodes": 1}
    sc = scenario(
        {
            "duration_s": 1,
            "traffic": {"rate_per_s": 1},
            "prefill": pool(kernels="normal", **one),
            "decode": pool(**one),
        },
        model=model,
    )
    return build(sc).pools


def test_bf16_prefill_and_decode_gemms_run_in_bf16() -> None:
    """A bf16 model's prefill GEMMs ran as FP8 (at the FP8 peak): only a decode moved, in the 5th
    digit. Now every GEMM of a forward is a BF16 GEMM (the training step's BF16 recipe,
    :func:`sim.model.layer.bf16_recipe`), with the FP8 casts and scale transposes gone."""
    fp8, bf16 = _pools(None), _pools("bf16")
    ops = bf16["prefill"].model._attention_ops(4096, True)
    assert all(op.dtype == "bf16" for op in ops if op.kind == "gemm")
    assert not any("scales" in op.name for op in ops)
    prefill = Shape("prefill", 8192, 4, 0)
    pre_fp8, pre_bf16 = fp8["prefill"].model, bf16["prefill"].model
    # the expert GEMMs at the BF16 peak (half the FP8 one on H800); the attention part loses its FP8
    # casts, so the forward as a whole slows less
    assert pre_bf16.moe_part(8192, False).slowest_s > 1.2 * pre_fp8.moe_part(8192, False).slowest_s
    assert pre_bf16.forward(prefill).time_s > 1.05 * pre_fp8.forward(prefill).time_s
    decode = Shape("decode", 64, 64, 2000)
    # weight-read-bound GEMMs read 2 bytes a weight, not 1; the dispatch moves BF16. (FP8's casts cost
    # it back part: each takes at least the profile's launch floor, 1.98 us, where a 64-token cast came
    # out in nanoseconds before the floor: BF16 was 6% slower, now 2%.)
    assert bf16["decode"].model.forward(decode).time_s > fp8["decode"].model.forward(decode).time_s
    assert bf16["decode"].model.forward(decode).comm_s > 1.2 * fp8["decode"].model.forward(decode).comm_s
    assert (
        bf16["decode"].memory.weights_bytes > 1.5 * fp8["decode"].memory.weights_bytes
    )  # embedding, head: BF16 in both
    assert bf16["decode"].memory.kv_tokens < fp8["decode"].memory.kv_tokens


def _serve(tmp_path: Path, capsys: pytest.CaptureFixture[str], model: dict) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": str(H800), "set": {"serve.duration_s": 0.5, **model}}))
    with pytest.raises(SystemExit) as info:
        main(["serve", str(path), "--format", "json", "-q"])
    return int(info.value.code or 0), capsys.readouterr().err


def test_seq_len_is_refused_in_a_serve_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """model.seq_len (a training sequence) was accepted and read by nothing in serving."""
    code, err = _serve(tmp_path, capsys, {"model.seq_len": 8192})
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 's.yaml'}: model.seq_len: not used by a serve scenario")
    assert "serve.traffic.input_tokens" in err


def test_a_preset_carrying_its_dtype_is_not_refused() -> None:
    """DeepSeek-V3's config file carries ``dtype: fp8`` (and Hugging Face configs their
    ``tie_word_embeddings``): a preset's own keys are the model it names, used as given."""
    sc = scenario(
        {"duration_s": 1, "traffic": {"rate_per_s": 1}, "prefill": pool(kernels="normal"), "decode": pool()},
        model={"config": "deepseek-v3"},
    )
    assert sc.model.dtype == "fp8" and "dtype" in sc.model.model_fields_set
    assert build(sc).pools
