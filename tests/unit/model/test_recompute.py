"""Activation recomputation (``training.recompute``): the op lists, the saved bytes, the chunk times
and the memory of the three modes (sim.model.layer.RECOMPUTE), against what each mode means.

- ``none`` runs exactly the selective recipe's ops less its ``recompute=True`` ones, and keeps their
  outputs (:func:`sim.step.activations.unrecomputed_tensors`) on top of the selective set.
- ``full`` keeps a layer's input only, re-runs every forward op of the layer at the head of its
  backward (the MoE all-to-alls included) and then runs ``none``'s backward; so its executed FLOPs
  are ``none``'s plus one forward, and model FLOPs (MFU's) are the same in every mode.
- Without communication (a dense layer, TP 1) a backward input pass is one compute stream, so
  ``full``'s is ``none``'s plus the forward, to rounding.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sim.chunk.build import ChunkConfig, build_chunk
from sim.model.catalog import load_model
from sim.model.layer import RECOMPUTE, REPLAY, LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3
from sim.step.activations import (
    ActivationRecipe,
    layer_activation_bytes_per_token,
    replay_bytes_per_token,
    saved_tensors,
    unrecomputed_tensors,
)
from sim.units import BF16_BYTES, FP8_TILE_BYTES

H100 = Path(__file__).resolve().parents[3] / "calibrate" / "profiles" / "h100-sxm-measured.json"
MODELS = ["deepseek-v3", "deepseek-v2-lite", "qwen3-235b-a22b", "mixtral-8x7b", "llama-3.1-8b"]


def _work(s, layer: int, tp: int, recompute: str) -> LayerWork:  # type: ignore[no-untyped-def]
    rows = (2048 * s.n_activated_experts // 2,) * 2 if s.is_moe(layer) else ()
    return LayerWork(2048, rows, tp, 1, recompute)


def _layers(s):  # type: ignore[no-untyped-def]
    return sorted({0, s.n_layers - 1})


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("tp", [1, 2])
def test_none_drops_exactly_the_recomputed_ops(name: str, tp: int) -> None:
    s = load_model(name)
    for layer in _layers(s):
        sel = layer_ops(s, layer, _work(s, layer, tp, "selective")).annotations
        none = layer_ops(s, layer, _work(s, layer, tp, "none")).annotations
        assert set(none) == set(sel)
        for a, ops in sel.items():
            assert none[a] == tuple(op for op in ops if not op.recompute)
        assert not any(op.recompute for ops in none.values() for op in ops)


@pytest.mark.parametrize("name", MODELS)
def test_full_replays_the_forward_then_runs_nones_backward(name: str) -> None:
    s = load_model(name)
    for layer in _layers(s):
        sel = layer_ops(s, layer, _work(s, layer, 1, "selective")).annotations
        none = layer_ops(s, layer, _work(s, layer, 1, "none")).annotations
        full = layer_ops(s, layer, _work(s, layer, 1, "full")).annotations
        replays = {REPLAY[a] for a in sel if a in REPLAY}
        assert set(full) == set(none) | replays
        assert (s.is_moe(layer)) == ("dispatch(R)" in full and "combine(R)" in full)
        for a in none:
            assert full[a] == none[a]
        for forward, replay in REPLAY.items():
            if forward in sel:
                assert [replace(op, annotation=forward, recompute=False) for op in full[replay]] == list(sel[forward])
                assert all(op.recompute and op.annotation == replay for op in full[replay])

        def flops(ann, executed: bool) -> float:  # type: ignore[no-untyped-def]
            return sum(op.executed_flops if executed else op.flops for ops in ann.values() for op in ops)

        # model FLOPs (MFU's convention) do not depend on what is recomputed
        assert flops(full, False) == pytest.approx(flops(sel, False), rel=1e-12)
        assert flops(none, False) == pytest.approx(flops(sel, False), rel=1e-12)
        # executed: full = none + one forward; selective lies between
        forward = sum(op.executed_flops for a in REPLAY for op in sel.get(a, ()))
        assert flops(full, True) == pytest.approx(flops(none, True) + forward, rel=1e-12)
        assert flops(none, True) <= flops(sel, True) <= flops(full, True)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="recompute must be one of"):
        layer_ops(DEEPSEEK_V3, 0, LayerWork(128, recompute="some"))
    assert RECOMPUTE == ("selective", "none", "full")


@pytest.mark.parametrize("name", MODELS)
def test_saved_bytes_of_each_mode(name: str) -> None:
    s = load_model(name)
    r = ActivationRecipe.of(s)
    for layer in _layers(s):
        sel = layer_activation_bytes_per_token(s, layer, r)
        none = layer_activation_bytes_per_token(s, layer, r, "none")
        full = layer_activation_bytes_per_token(s, layer, r, "full")
        extra = sum(t.bytes_per_token for t in unrecomputed_tensors(s, layer, r))
        assert none == pytest.approx(sel + extra, rel=1e-12)
        assert full == s.dim * BF16_BYTES
        assert [t.name for t in saved_tensors(s, layer, r, "full")] == ["layer input"]
    # what a re-run layer holds beyond the input full keeps anyway
    assert (
        replay_bytes_per_token(s, range(s.n_layers), r)
        == max(layer_activation_bytes_per_token(s, i, r, "none") for i in range(s.n_layers)) - s.dim * BF16_BYTES
    )


def test_what_none_keeps_for_llama_and_deepseek() -> None:
    # Llama (BF16 recipe): the two norm outputs the selective recipe recomputes, h BF16 each
    llama = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16"})
    assert sum(t.bytes_per_token for t in unrecomputed_tensors(llama, 0)) == 2 * 4096 * BF16_BYTES
    # DeepSeek-V3 MoE layer (FP8): norm outputs as FP8 copies (h, h, q_lora, kv_lora), q and k of
    # 128 heads x 192 and v of 128 x 128 in BF16, the shared SwiGLU output (2048) in FP8
    s = DEEPSEEK_V3
    fp8 = (7168 + 7168 + 1536 + 512 + 2048) * FP8_TILE_BYTES
    bf16 = (2 * 128 * 192 + 128 * 128) * BF16_BYTES
    assert sum(t.bytes_per_token for t in unrecomputed_tensors(s, 3)) == pytest.approx(fp8 + bf16, rel=1e-12)
    with pytest.raises(ValueError, match="recompute must be"):
        saved_tensors(s, 3, recompute="partial")


@pytest.mark.skipif(not H100.is_file(), reason="needs the shipped H100 profile")
def test_a_dense_backward_under_full_is_nones_plus_the_forward() -> None:
    base = ChunkConfig(model=load_model("llama-3.1-8b"), profile=H100, layers=2, first_layer=4, tokens=2048, ep=1)
    runs = {m: build_chunk(replace(base, recompute=m)) for m in RECOMPUTE}
    f = runs["selective"].timer.forward(runs["selective"].stage).span_s
    i = {m: s.timer.backward(s.stage, "I").span_s for m, s in runs.items()}
    assert i["full"] == pytest.approx(f + i["none"], rel=1e-9)
    assert i["none"] < i["selective"] < i["full"]
    # the forward does not change with the mode
    assert runs["full"].timer.forward(runs["full"].stage).span_s == pytest.approx(f, rel=1e-12)


@pytest.mark.parametrize("mode", RECOMPUTE)
def test_1f1b_peak_of_each_mode(mode: str) -> None:
    """1F1B's rank d holds PP - d micro-batches at its peak (Narayanan et al. 2021), each its stage's
    saved bytes under ``mode``; under ``full`` the layer whose backward runs adds its re-run forward's
    tensors (one layer of one micro-batch)."""
    from sim.step.accounting import activation_peak, stage_activations
    from sim.step.activations import activation_bytes
    from sim.step.layout import build_layout

    s = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16"})
    pp = 4
    layout, schedule = build_layout(s, "1f1b", pp, 1, 32, 8, 32, 1, 64, None, 1, recompute=mode)
    assert layout.recompute == mode
    for d in range(pp):
        place = layout.stages[d]
        one = activation_bytes(s, place.layers, s.seq_len, embedding=place.first, head=place.last, recompute=mode)
        assert stage_activations(s, layout, d) == pytest.approx(one, rel=1e-12)
        replay = replay_bytes_per_token(s, place.layers) * s.seq_len if mode == "full" else 0.0
        assert activation_peak(s, layout, schedule, d) == pytest.approx((pp - d) * one + replay, rel=1e-12)
