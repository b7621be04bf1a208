"""Megatron-LM's FLOP convention against the twin's own count, term by term.

``megatron_flops_per_token`` follows ``num_floating_point_operations`` of Megatron-LM; the twin's count
(:func:`sim.model.flops.training_flops_per_token`) sums the ops it times. The two differ by exactly the
terms the module docstring names, so the difference is closed form: Megatron leaves out the router's
gate GEMMs (6 h E per MoE layer, main model and MTP blocks), adds MLA's ``+ 1`` norm terms (6 per
latent rank per layer) and the MTP modules' ``3 h`` norm term, and counts the MTP modules, which the
twin's ``main`` figure leaves out (its ``total`` has them). Every shipped vocabulary is a multiple of
128, so no padding enters; a TP that changes the padding is checked apart.
"""

from __future__ import annotations

import pytest

from sim.model.catalog import CATALOG, load_model
from sim.model.flops import training_flops_per_token
from sim.model.megatron_flops import megatron_flops_per_token, padded_vocab


@pytest.mark.parametrize("name", sorted(CATALOG))
@pytest.mark.parametrize("seq", [4096, 8192, 131072])
def test_megatron_count_differs_from_the_twins_by_the_named_terms(name: str, seq: int) -> None:
    s = load_model(name, timed=False)
    assert padded_vocab(s) == s.vocab_size
    ours = training_flops_per_token(s, causal=True, seq_len=seq).total
    gates = 6 * s.dim * s.n_routed_experts * (s.moe_layers + s.mtp_depth)
    norms = 0
    if s.attention == "mla":
        norms = 6 * (s.n_layers + s.mtp_depth) * (s.q_lora_rank + s.kv_lora_rank) + 6 * s.mtp_depth * 3 * s.dim
    assert megatron_flops_per_token(s, seq) == pytest.approx(ours - gates + norms, rel=1e-12)


def test_dense_gqa_models_count_alike() -> None:
    for name in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"):
        s = load_model(name)
        assert megatron_flops_per_token(s, 8192) == training_flops_per_token(s, True, 8192).main


def test_vocabulary_padding_follows_tp() -> None:
    """Megatron pads to a multiple of 128 x TP: Llama's 128,256 = 1002 x 128 = 501 x 256 is already one
    at TP 1 and 2, and becomes 126 x 1024 = 129,024 at TP 8; the logits grow by 6 h x 768."""
    s = load_model("llama-3.1-405b")
    assert [padded_vocab(s, tp) for tp in (1, 2, 8)] == [128256, 128256, 129024]
    extra = megatron_flops_per_token(s, 8192, tp=8) - megatron_flops_per_token(s, 8192)
    assert extra == pytest.approx(6 * s.dim * 768)
