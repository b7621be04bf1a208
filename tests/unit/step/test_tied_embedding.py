"""The shared embedding's gradient all-reduce between the pipeline's first and last rank
(sim.step.tied_embedding), against what Megatron-Core's ``finalize_model_grads`` does.

- It runs where the last stage holds a copy of the table (a tied head or an MTP module) on another rank
  than the first stage: 1F1B, not DualPipe (which puts both ends on one rank), not an untied model
  without MTP.
- On the two ranks only, after both their reduce-scatters (it starts at the later end, the two ends'
  sets having synchronised) and before the optimizer, whose barrier it holds back.
- Each of its 2-GPU rings moves the whole table gradient, ``vocab x dim / tp`` FP32 elements, through
  each GPU's NIC once each way, so it takes at least ``bytes / NIC rate`` (the rank's rings share no
  NIC); the step grows by it (the gradient-norm barrier waits), and the two ranks' exposed DP
  communication includes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.config import load_scenario
from sim.run import TrainingRun, simulate_training
from sim.step.tied_embedding import embedding_grad_bytes, embedding_pair
from tests.conftest import REPO

PP = 4


def _run(
    folder: Path,
    name: str,
    *,
    schedule: str = "1f1b",
    contention: str = "shared",
    batch: int = 64,
    training: dict[str, object] | None = None,
    **model: object,
) -> TrainingRun:
    body = {
        "name": name,
        "model": {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16", **model},
        "pipeline": {"pp": PP, "schedules": [schedule]},
        "training": {"gpus": 64, "global_batch": batch, "contention": contention, **(training or {})},
        "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
        "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return simulate_training(load_scenario(path))


@pytest.mark.parametrize("contention", ["shared", "isolated"])
def test_a_tied_table_is_summed_between_the_pipeline_ends(tmp_path: Path, contention: str) -> None:
    untied = _run(tmp_path, "untied", contention=contention)
    tied = _run(tmp_path, "tied", contention=contention, tie_word_embeddings=True)
    spec = tied.step.spec
    lay = spec.inputs.layout
    assert embedding_pair(untied.step.spec.inputs.model, lay, untied.step.spec.schedule) is None
    pair = embedding_pair(spec.inputs.model, lay, spec.schedule)
    assert pair == (0, PP - 1)
    assert all(t.embedding_sync is None for t in untied.step.timelines)
    sync = tied.step.timelines[0].embedding_sync
    assert sync is not None and tied.step.timelines[PP - 1].embedding_sync == sync
    assert all(tied.step.timelines[d].embedding_sync is None for d in range(1, PP - 1))
    # after both ends' reduce-scatters, at the later one's end; before the optimizer
    rs_end = max(e for d in pair for _, e in tied.step.timelines[d].reduce_scatter)
    assert sync[0] == pytest.approx(rs_end, abs=1e-12)
    assert all(tied.step.timelines[d].optimizer[0] >= sync[1] for d in range(PP))
    # the whole table's FP32 gradient through each NIC, once each way
    nbytes = embedding_grad_bytes(spec.inputs.model, lay)
    assert nbytes == 128256 * 4096 / lay.tp * 4
    nic = spec.topology.spec.node.nic_Gbps / 8 * 1e9
    assert sync[1] - sync[0] >= nbytes / nic
    # exposed on the two ranks (after the pipeline, as their reduce-scatters)
    for d in pair:
        assert tied.result.ranks[d].dp_comm_exposed_s >= sync[1] - sync[0]


def test_dualpipe_keeps_both_ends_on_one_rank(tmp_path: Path) -> None:
    run = _run(tmp_path, "dualpipe", schedule="dualpipe", batch=128, tie_word_embeddings=True)  # 8 micro-batches
    assert embedding_pair(run.step.spec.inputs.model, run.step.spec.inputs.layout, run.step.spec.schedule) is None
    assert all(t.embedding_sync is None for t in run.step.timelines)


def test_the_gradient_is_sent_at_the_reductions_precision(tmp_path: Path) -> None:
    """Megatron all-reduces the same gradient buffer the data-parallel reduction sends: with
    ``training.grad_reduce_bytes: 2`` its bytes halve, and so does its time alone (one ring per GPU pair,
    bandwidth-bound at these sizes)."""
    fp32 = _run(tmp_path, "fp32", tie_word_embeddings=True)
    bf16 = _run(tmp_path, "bf16", tie_word_embeddings=True, training={"grad_reduce_bytes": 2})
    a, b = (r.step.timelines[0].embedding_sync for r in (fp32, bf16))
    assert a is not None and b is not None
    assert b[1] - b[0] == pytest.approx((a[1] - a[0]) / 2, rel=0.05)


def test_the_reports_byte_count_has_the_all_reduce_and_the_tp_collectives(tmp_path: Path) -> None:
    """The per-node bytes of the report (sim.step.traffic_bytes) count what the shared network carried,
    tag by tag: the pipeline sends and the ZeRO-1 collectives with the tied table's all-reduce (all
    tagged zero1 on the network), and the TP collectives (read from the run's link log); with
    ``contention: isolated`` the TP collectives run alone, so they are named as not counted."""
    from sim.step.traffic_bytes import node_bytes

    tied = _run(tmp_path, "tied", tie_word_embeddings=True, training={"tp": 2})
    untied = _run(tmp_path, "untied", training={"tp": 2})
    for run in (tied, untied):
        nb = node_bytes(run.step)
        carried = run.to_dict()["stats"]["coflow_GB"]
        for c, tag in (("pp", "pipeline"), ("dp", "zero1"), ("tp", "tp")):
            assert nb.ib[c].sum() / 1e9 == pytest.approx(carried.get(f"{tag}@nic_up", 0.0), rel=1e-9)
            assert nb.nvlink[c].sum() / 1e9 == pytest.approx(carried.get(f"{tag}@nv_up", 0.0), rel=1e-9)
        assert nb.present() == ["ep", "pp", "dp", "tp"] and nb.uncounted == ()
    extra = node_bytes(tied.step).ib["dp"].sum() - node_bytes(untied.step).ib["dp"].sum()
    lay = tied.step.spec.inputs.layout
    # a ring of two moves 2 x (n - 1) / n of the buffer from each GPU: the buffer, on every GPU of both ranks
    assert extra == pytest.approx(2 * lay.gpus_per_rank * embedding_grad_bytes(tied.step.spec.inputs.model, lay))
    alone = node_bytes(_run(tmp_path, "alone", contention="isolated", training={"tp": 2}).step)
    assert alone.uncounted == ("tp",) and not alone.nvlink["tp"].any()
