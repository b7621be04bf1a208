"""Layers with the same signature have equal ops: the step shares one op list between them.

:func:`sim.model.layer.layer_signature` names what :func:`layer_ops` reads from a layer's index; the
step builds one op list per (signature, work) and hands it to every such layer, so a stage key compares
by identity. If ``layer_ops`` ever reads more of the index (a per-layer attention window, a per-layer
expert count), this test fails until the signature says so.
"""

from __future__ import annotations

from sim.model.layer import LayerWork, layer_ops, layer_signature
from sim.model.spec import DEEPSEEK_V3, parse_model

MODELS = {
    "DeepSeek-V3": DEEPSEEK_V3,
    "small, one dense layer": parse_model({"n_layers": 5, "n_dense_layers": 1, "n_routed_experts": 16}),
}


def test_equal_signatures_give_equal_ops_on_every_layer() -> None:
    for name, spec in MODELS.items():
        work = LayerWork(4096, (3000, 0, 7000, 2048))
        first: dict[tuple[object, ...], object] = {}
        signatures = set()
        for layer in range(spec.n_layers):
            sig = layer_signature(spec, layer)
            signatures.add(sig)
            ops = layer_ops(spec, layer, work if spec.is_moe(layer) else LayerWork(4096)).annotations
            if sig in first:
                assert ops == first[sig], f"{name}: layer {layer} differs from an earlier layer of its signature"
            else:
                first[sig] = ops
        # the signature separates what differs: dense and MoE layers do not share
        assert len(signatures) == (2 if 0 < spec.n_dense_layers < spec.n_layers else 1), name
