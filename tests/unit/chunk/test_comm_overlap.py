"""TP communication overlap (``training.tp_comm_overlap``) and ring attention (``training.cp_comm:
p2p``): each TP all-gather runs beside the GEMM after it, each reduce-scatter beside the GEMM before it;
each CP exchange of keys and values beside its attention kernel (sim.chunk.timer._Graph.chain).

What must hold, from that rule alone: the same tasks run; an overlapped all-gather is still running
when its partner is queued, an overlapped reduce-scatter is queued before its GEMM ends; what comes after
the pair waits for both; the chunk is no longer than without overlap, but for the extra time of the
GEMMs Transformer Engine's ring exchange computes in TP row chunks (sim.chunk.timer.ring_exchange_gemms,
tests/unit/chunk/test_ring_exchange.py), and shorter by at most the TP or CP collectives' time (only
communication can be hidden), and no shorter than its compute alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim.chunk.op_cost import OpCoster
from sim.chunk.overheads import ChunkParams
from sim.chunk.timer import ChunkResult, ChunkTimer, Stage
from sim.chunk.tp_comm import TpModel
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile
from sim.model.catalog import load_model
from sim.model.layer import LayerWork, layer_ops
from sim.network.context import SimContext
from sim.network.spec import load_cluster
from sim.network.topology import build_topology
from tests.conftest import REPO

TP = 4
TOKENS = 8192


@pytest.fixture(scope="module")
def timer() -> ChunkTimer:
    topo = build_topology(load_cluster(REPO / "topologies" / "h100-ib-1024.yaml"))
    cost = CostModel(load_profile(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"))
    tp = TpModel(SimContext(topo, 0.0), [np.arange(TP) + 8 * g for g in range(2)])
    return ChunkTimer(OpCoster(cost, cost.all_sms, ChunkParams()), None, ChunkParams(), tp=tp)


def _stage(overlap: bool, first: bool = False, last: bool = False) -> Stage:
    s = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16"})
    layers = tuple(layer_ops(s, i, LayerWork(TOKENS, (), TP)) for i in (4, 5))
    return Stage(layers, (None, None), first, last, s, TOKENS, TP, overlap)


def _runs(timer: ChunkTimer, what: str, **kw: bool) -> tuple[ChunkResult, ChunkResult]:
    def one(overlap: bool) -> ChunkResult:
        st = _stage(overlap, **kw)
        return timer.forward(st) if what == "F" else timer.backward(st, what)

    return one(False), one(True)


@pytest.mark.parametrize("what", ["F", "IW", "I"])
@pytest.mark.parametrize("extras", [False, True])
def test_overlap_hides_at_most_the_tp_collectives(timer: ChunkTimer, what: str, extras: bool) -> None:
    plain, over = _runs(timer, what, first=extras, last=extras)
    assert [t.name for t in plain.tasks] == [t.name for t in over.tasks]
    tp_time = sum(t.work for t in plain.tasks if t.name.startswith("tp.") or ".tp" in t.name)
    compute = sum(t.work + t.delay for t in over.tasks if t.stream == "compute")
    extra = sum(o.work - q.work for q, o in zip(plain.tasks, over.tasks, strict=True) if o.kind == "gemm")
    assert tp_time > 0 and extra > 0  # (the ring exchange's GEMMs in TP row chunks)
    assert over.span_s <= plain.span_s * (1 + 1e-12) + extra
    assert over.span_s >= plain.span_s - tp_time - 1e-12
    assert over.span_s >= compute * (1 - 1e-9)
    assert over.span_s < plain.span_s  # a GEMM beside every collective to hide it under (more than the chunking costs)


@pytest.mark.parametrize("what", ["F", "IW"])
def test_each_collective_runs_beside_its_gemm(timer: ChunkTimer, what: str) -> None:
    _, over = _runs(timer, what)
    tasks = over.tasks
    pairs = 0
    for i, t in enumerate(tasks):
        if t.stream != "comm" or t.kind != "comm":
            continue
        same = [j for j, u in enumerate(tasks) if u.annotation == t.annotation and u.layer == t.layer]
        if t.name.endswith(("attn_in", "mlp_in")) and "grad" not in t.name:  # forward all-gathers
            gemm = next(j for j in same if j > i and tasks[j].kind == "gemm")
            assert tasks[gemm].queued <= t.end + 1e-12  # the GEMM did not wait for the all-gather
            after = next((j for j in same if j > gemm and tasks[j].stream == "compute"), None)
            if after is not None:
                assert tasks[after].queued >= t.end - 1e-12  # what follows the pair waits for it
            pairs += 1
        elif t.name.endswith(("attn_out", "mlp_out")):  # forward reduce-scatters
            gemm = max(j for j in same if j < i and tasks[j].kind == "gemm")
            assert t.queued <= tasks[gemm].end + 1e-12  # queued while its GEMM still ran
            pairs += 1
    assert pairs >= (4 if what == "F" else 0)


def test_without_tp_the_flag_changes_nothing(timer: ChunkTimer) -> None:
    s = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16"})
    layers = tuple(layer_ops(s, i, LayerWork(TOKENS)) for i in (4, 5))
    plain = Stage(layers, (None, None), False, False, s, TOKENS, 1)
    spans = [timer.forward(st).span_s for st in (plain, replace(plain, tp_overlap=True))]
    assert spans[0] == spans[1]


def test_a_step_with_overlap_and_its_refusal_without_tp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from sim.assemble import assemble
    from sim.config import load_scenario
    from sim.errors import ScenarioError
    from sim.run import simulate_training

    def scenario(tp: int, overlap: bool, **more: object) -> object:
        body = {
            "name": f"tp{tp}-{overlap}",
            "model": {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16"},
            "pipeline": {"pp": 4, "schedules": ["1f1b"]},
            "training": {"gpus": 64, "global_batch": 32, "tp": tp, "tp_comm_overlap": overlap, **more},
            "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
            "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
        }
        path = tmp_path / f"{body['name']}.yaml"
        path.write_text(yaml.safe_dump(body))
        return load_scenario(path)

    plain, over = (simulate_training(scenario(4, o)).to_dict() for o in (False, True))  # type: ignore[arg-type]
    assert over["layout"]["tp_comm_overlap"] == 1 and "tp_comm_overlap" not in plain["layout"]
    assert over["step_time_s"] < plain["step_time_s"]
    assert over["stats"]["coflow_GB"]["tp@nv_up"] == pytest.approx(plain["stats"]["coflow_GB"]["tp@nv_up"])
    with pytest.raises(ScenarioError, match=r"needs training\.tp > 1") as err:
        assemble(scenario(1, True))  # type: ignore[arg-type]
    assert err.value.key_path == "training.tp_comm_overlap"
    with pytest.raises(ScenarioError, match=r"needs training\.cp > 1") as err:
        assemble(scenario(2, False, cp_comm="p2p"))  # type: ignore[arg-type]
    assert err.value.key_path == "training.cp_comm"


CP = 4


@pytest.fixture(scope="module")
def cp_timer() -> ChunkTimer:
    """CP groups across nodes (one GPU of each of 4 nodes), as TP 8 makes them."""
    topo = build_topology(load_cluster(REPO / "topologies" / "h100-ib-1024.yaml"))
    cost = CostModel(load_profile(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"))
    cp = TpModel(SimContext(topo, 0.0), [np.arange(CP) * 8 + i for i in range(8)])
    return ChunkTimer(OpCoster(cost, cost.all_sms, ChunkParams()), None, ChunkParams(), cp=cp)


@pytest.mark.parametrize("what", ["F", "IW"])
def test_ring_attention_runs_the_kv_exchange_beside_the_attention(cp_timer: ChunkTimer, what: str) -> None:
    s = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16", "seq_len": 32768})
    layers = tuple(layer_ops(s, i, LayerWork(s.seq_len // CP, (), 1, CP)) for i in (4, 5))
    runs = []
    for ring in (False, True):
        st = Stage(layers, (None, None), False, False, s, s.seq_len // CP, 1, False, ring)
        runs.append(cp_timer.forward(st) if what == "F" else cp_timer.backward(st, what))
    plain, ring_run = runs
    assert [t.name for t in plain.tasks] == [t.name for t in ring_run.tasks]
    cp_time = sum(t.work for t in plain.tasks if t.name.startswith("cp."))
    assert cp_time > 0
    assert plain.span_s - cp_time - 1e-12 <= ring_run.span_s < plain.span_s
    tasks = ring_run.tasks
    for i, t in enumerate(tasks):
        if t.name.startswith("cp.kv") and not t.name.endswith(".grad"):  # the exchange before an attention
            attn = next(j for j in range(i + 1, len(tasks)) if tasks[j].kind == "attention")
            assert tasks[attn].queued <= t.end + 1e-12
            after = next(j for j in range(attn + 1, len(tasks)) if tasks[j].stream == "compute")
            assert tasks[after].queued >= t.end - 1e-12
