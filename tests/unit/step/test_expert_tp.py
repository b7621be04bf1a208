"""Expert tensor parallelism (``training.etp``, Megatron-Core's ``--expert-tensor-parallel-size``):
the expert layers' GPU order (ETP, EP, expert DP), the work and collectives of a routed expert split
over its ETP group, its parameters, and a step.

What must hold, from the definition: a rank's EP groups, ETP groups and expert-DP groups each
partition its GPUs; an ETP group holds one EP rank's experts (its members sit at the same position
of their EP groups); a GPU computes its ETP group's rows on 1/ETP of each expert's width, so the
routed experts' FLOPs per GPU for the same rows per EP rank do not change while the group gathers
the rows in and reduce-scatters the outputs; each GPU holds 1/(EP x ETP) of the routed experts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.model.catalog import load_model
from sim.model.layer import LayerWork, layer_ops
from sim.model.params import stage_params
from sim.run import simulate_training
from sim.step.layout import build_layout
from sim.units import BF16_BYTES
from tests.conftest import REPO

LITE = "deepseek-v2-lite"  # 64 routed experts of width 1408, 2 shared, 6 of them per token


def _layout(ep: int, etp: int):  # type: ignore[no-untyped-def]
    s = load_model(LITE)
    return build_layout(s, "1f1b", 4, 1, 128, 8, 128, ep, 64, None, 1, etp=etp)


@pytest.mark.parametrize(("ep", "etp"), [(8, 2), (4, 4), (16, 2), (8, 1)])
def test_the_groups_partition_a_rank(ep: int, etp: int) -> None:
    layout, _ = _layout(ep, etp)
    rank = set(layout.rank_gpus(1).tolist())
    eps = [layout.ep_group(1, g) for g in range(layout.ep_groups)]
    etps = layout.etp_groups(1)
    edps = layout.expert_dp_groups(1)
    for groups, size in ((eps, ep), (etps, etp), (edps, layout.expert_dp)):
        assert all(len(g) == size for g in groups)
        assert sorted(int(x) for g in groups for x in g) == sorted(rank)
    position = {int(x): r for g in eps for r, x in enumerate(g)}  # a GPU's EP rank
    for g in etps:  # an ETP group: one EP rank's experts, from etp EP groups
        assert len({position[int(x)] for x in g}) == 1 and list(np.diff(g)) == [1] * (etp - 1)
    for g in edps:  # an expert-DP group: the same shard of the same experts
        assert len({position[int(x)] for x in g}) == 1 and len({int(x) % etp for x in g}) == 1
    assert layout.expert_dp * ep * etp == layout.gpus_per_rank


@pytest.mark.parametrize("etp", [2, 4])
def test_a_gpu_computes_its_groups_rows_on_a_slice_of_each_expert(etp: int) -> None:
    s = load_model(LITE).model_copy(update={"dtype": "bf16"})
    t, rows = 4096, (3072,) * 8  # rows of each of 8 local experts on one EP rank
    one = layer_ops(s, 1, LayerWork(t, rows)).annotations
    split = layer_ops(s, 1, LayerWork(t, tuple(r * etp for r in rows), etp=etp)).annotations

    def routed(ann):  # type: ignore[no-untyped-def]
        return sum(op.flops for a in ("mlp(F)", "mlp(B)", "mlp(W)") for op in ann[a] if op.name.startswith("expert"))

    assert routed(split) == pytest.approx(routed(one), rel=1e-12)
    comms = {a: Counter(op.comm for op in ops if op.comm.startswith("etp")) for a, ops in split.items()}
    assert comms["mlp(F)"] == Counter({"etp-allgather": 1, "etp-reducescatter": 1})
    assert comms["mlp(B)"] == Counter({"etp-allgather": 1, "etp-reducescatter": 1})
    sizes = {op.nbytes for ops in split.values() for op in ops if op.comm.startswith("etp")}
    assert sizes == {BF16_BYTES * sum(rows) * etp * s.dim}  # BF16 model: rows x hidden each way
    assert not any(op.comm.startswith("etp") for ops in one.values() for op in ops)


def test_a_gpu_holds_its_share_of_each_expert() -> None:
    s = load_model(LITE)
    layers = range(1, 5)
    for ep, etp in ((8, 2), (4, 4), (16, 1)):
        p = stage_params(s, layers, ep=ep, etp=etp)
        whole = stage_params(s, layers, ep=1)
        assert p.expert * ep * etp == whole.expert
        assert p.non_expert == whole.non_expert


@pytest.mark.parametrize(
    ("model", "ep", "etp", "message"),
    [
        ("llama-3.1-8b", 1, 2, "the model is dense"),
        (LITE, 8, 3, "divide a node's 8 GPUs"),
        (LITE, 32, 2, "EP 32 x ETP 2 must divide"),
        ("qwen3-30b-a3b", 8, 8, "EP 8 x ETP 8 must divide"),
    ],
)
def test_impossible_etp_is_refused(model: str, ep: int, etp: int, message: str) -> None:
    s = load_model(model)
    with pytest.raises(ScenarioError, match=message) as err:
        build_layout(s, "1f1b", 4, 1, 128, 8, 128, ep, 64, None, 1, etp=etp)
    assert err.value.key_path == "training.etp"


def test_a_step_with_expert_tp(tmp_path: Path) -> None:
    """ETP 2 beside the same EP: the experts a GPU holds halve, the ETP collectives stay on NVLink."""

    def run(etp: int) -> dict[str, object]:
        body = {
            "name": f"etp{etp}",
            "model": {"config": LITE, "n_layers": 8},
            "pipeline": {"pp": 4, "schedules": ["1f1b"]},
            "training": {"gpus": 128, "global_batch": 64, "etp": etp},
            "workload": {"ep": 8},
            "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
            "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
        }
        path = tmp_path / f"etp{etp}.yaml"
        path.write_text(yaml.safe_dump(body))
        return simulate_training(load_scenario(path)).to_dict()

    one, two = run(1), run(2)
    assert two["layout"]["etp"] == 2 and two["layout"]["expert_dp"] == one["layout"]["expert_dp"] // 2
    moved = two["stats"]["coflow_GB"]
    assert moved["etp@nv_up"] > 0 and not [k for k in moved if k.startswith("etp@") and "nv_" not in k]
    assert "etp@nv_up" not in one["stats"]["coflow_GB"]
    assert two["memory_per_gpu_GiB"]["params"] < one["memory_per_gpu_GiB"]["params"]
