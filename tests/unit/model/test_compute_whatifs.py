"""The compute-side hardware what-ifs (``compute.*``, sim.model.compute_whatifs): exactly the named
kernels vanish (with their bytes), FLOPs stay, and a chunk gets shorter by no more than what left.

With the chunk's interference off its streams run fixed durations in a fixed order, so removing tasks
cannot lengthen it, and it shortens by at most the removed tasks' time (each delays what follows it by
at most its own duration).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.overheads import ChunkParams
from sim.model.compute_whatifs import ONLINE_QUANTIZATION_KERNELS, TRANSPOSED_READ_KERNELS, ComputeWhatIfs
from sim.model.layer import LayerWork, layer_ops
from sim.model.spec import DEEPSEEK_V3

CASES = {
    "online": ComputeWhatIfs(online_quantization=True),
    "transposed": ComputeWhatIfs(transposed_reads=True),
    "native": ComputeWhatIfs(fp8_scaling="native"),
    "all": ComputeWhatIfs(True, True, "native"),
}


def _ops(layer: int, what: ComputeWhatIfs) -> list:  # type: ignore[type-arg]
    rows = (4096 * 8 // 4,) * 4 if DEEPSEEK_V3.is_moe(layer) else ()
    ann = layer_ops(DEEPSEEK_V3, layer, LayerWork(4096, rows, compute=what)).annotations
    return [op for ops in ann.values() for op in ops]


@pytest.mark.parametrize("layer", [0, 3])  # a dense and an MoE layer
@pytest.mark.parametrize("name", list(CASES))
def test_exactly_the_named_kernels_leave(layer: int, name: str) -> None:
    what = CASES[name]
    base, after = _ops(layer, ComputeWhatIfs()), _ops(layer, what)
    kept = [op for op in base if not what.removes(op)]
    assert [op.name for op in after] == [op.name for op in kept]
    gone = [op for op in base if what.removes(op)]
    assert gone  # each what-if has kernels to remove in DeepSeek's recipe
    if what.online_quantization:
        assert {op.kernel for op in gone if op.kind == "memory"} >= ONLINE_QUANTIZATION_KERNELS & {
            op.kernel for op in base
        }
    if what.transposed_reads:
        assert any(op.kernel in TRANSPOSED_READ_KERNELS for op in gone)
    removed_bytes = sum(op.nbytes for op in gone)
    assert sum(op.nbytes for op in base) - sum(op.nbytes for op in after) == pytest.approx(removed_bytes)
    for attr in ("flops", "executed_flops"):
        assert sum(getattr(op, attr) for op in after) == pytest.approx(sum(getattr(op, attr) for op in base))
    blockwise = [op for op in after if op.kind == "gemm" and op.scaling == "blockwise"]
    assert bool(blockwise) == (what.fp8_scaling == "software")


@pytest.mark.parametrize("name", list(CASES))
def test_a_chunk_shortens_by_no_more_than_what_left(name: str) -> None:
    base_cfg = ChunkConfig(layers=2, tokens=1024, ep=16, params=ChunkParams(interference="none"))
    base = build_chunk(base_cfg)
    what = build_chunk(replace(base_cfg, compute=CASES[name]))
    totals = [0.0, 0.0]
    for kind in ("F", "B"):
        b = base.timer.forward(base.stage) if kind == "F" else base.timer.backward(base.stage)
        w = what.timer.forward(what.stage) if kind == "F" else what.timer.backward(what.stage)
        kept = {(t.name, t.layer, t.step) for t in w.tasks}
        left = sum(t.work + t.delay for t in b.tasks if (t.name, t.layer, t.step) not in kept)
        assert w.span_s <= b.span_s * (1 + 1e-12)
        if CASES[name].fp8_scaling == "software":  # removal only: the bound holds exactly
            assert w.span_s >= b.span_s - left - 1e-12
        totals[0] += b.span_s
        totals[1] += w.span_s
    assert totals[1] < totals[0]  # each removes work from the backward's compute stream at least


def test_a_bf16_recipe_refuses_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from sim.config import load_scenario
    from sim.errors import ScenarioError

    path = tmp_path / "bf16.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "bf16",
                "base": "../scenarios/deepseek_v3_pretrain.yaml",
                "set": {"model.dtype": "bf16", "compute.online_quantization": True},
            }
        )
    )
    from tests.conftest import REPO

    path.write_text(path.read_text().replace("../scenarios", str(REPO / "scenarios")))
    with pytest.raises(ScenarioError, match="FP8 recipe") as err:
        load_scenario(path)
    assert err.value.key_path == "compute.online_quantization"


def test_full_accumulation_reaches_only_gemms_without_software_block_scaling() -> None:
    """Software block scaling promotes at every block (its scales are applied there), so alone the key
    marks no GEMM; with native scaling every FP8 GEMM of the layers keeps its sums in the tensor cores."""
    alone = _ops(3, ComputeWhatIfs(fp8_accumulation="full"))
    assert alone == _ops(3, ComputeWhatIfs())
    both = _ops(3, ComputeWhatIfs(fp8_scaling="native", fp8_accumulation="full"))
    native = _ops(3, ComputeWhatIfs(fp8_scaling="native"))
    assert [replace(op, accumulation="promoted") for op in both] == native
    gemms = [op for op in both if op.kind == "gemm"]
    assert gemms and all(op.accumulation == ("full" if op.dtype == "fp8" else "promoted") for op in gemms)


def test_full_accumulation_shortens_a_natively_scaled_chunk_by_at_most_the_promotion() -> None:
    """Every FP8 GEMM divides by the factor R (or stops at its roofline), nothing else changes: the chunk
    shortens, and by no more than its GEMMs' time times (1 - 1/R) (BF16 ones, if any, do not change)."""
    native_only = ComputeWhatIfs(fp8_scaling="native")
    cfg = ChunkConfig(layers=2, tokens=1024, ep=16, params=ChunkParams(interference="none"), compute=native_only)
    native = build_chunk(cfg)
    full = build_chunk(replace(cfg, compute=ComputeWhatIfs(fp8_scaling="native", fp8_accumulation="full")))
    r = native.timer.coster.model.promotion().factor
    for kind in ("F", "B"):
        a = native.timer.forward(native.stage) if kind == "F" else native.timer.backward(native.stage)
        b = full.timer.forward(full.stage) if kind == "F" else full.timer.backward(full.stage)
        gemms = sum(t.work for t in a.tasks if t.kind == "gemm")
        assert b.span_s < a.span_s
        assert a.span_s - b.span_s <= gemms * (1 - 1 / r) * (1 + 1e-9)


@pytest.mark.parametrize("layer", [0, 3])  # a dense and an MoE layer
def test_current_scaling_runs_tensorwise_gemms_and_reads_each_cast_input_twice(layer: int) -> None:
    """``fp8_scaling: current`` (Transformer Engine's per-tensor current scaling): native's ops (tensor-wise
    GEMMs, no scale transposes), except that each ``fp8-cast`` first reduces its BF16 input to an amax: it
    moves 2 bytes more an element (its op's bytes x (1 + 2 / 3.03125)); every other op and the FLOPs alike."""
    from sim.units import BF16_BYTES, FP8_CAST_BYTES

    native = _ops(layer, ComputeWhatIfs(fp8_scaling="native"))
    current = _ops(layer, ComputeWhatIfs(fp8_scaling="current"))
    assert [op.name for op in current] == [op.name for op in native]
    casts = 0
    for a, b in zip(native, current, strict=True):
        if a.kind == "memory" and a.kernel == "fp8-cast":
            casts += 1
            assert b.nbytes == pytest.approx(a.nbytes * (1 + BF16_BYTES / FP8_CAST_BYTES), rel=1e-12)
        else:
            assert b == a
    assert casts > 0
    assert not [op for op in current if op.kind == "gemm" and op.scaling == "blockwise"]


def test_current_scaling_takes_longer_than_native_by_its_amax_passes() -> None:
    cfg = ChunkConfig(layers=2, tokens=1024, ep=16, params=ChunkParams(interference="none"))
    native = build_chunk(replace(cfg, compute=ComputeWhatIfs(fp8_scaling="native")))
    current = build_chunk(replace(cfg, compute=ComputeWhatIfs(fp8_scaling="current")))
    assert current.timer.backward(current.stage).span_s > native.timer.backward(native.stage).span_s
