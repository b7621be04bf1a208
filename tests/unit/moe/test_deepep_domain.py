"""DeepEP's node is the topology's NVLink domain (``NodeSpec.domain_gpus``, the one rule): ``node.scale_up_gpus``
where given, else a node of the topology, not always 8 GPUs. ``twin alltoall --topology`` and a
training scenario's MoE layer took 8-GPU nodes whatever the file said: EP 64 inside one 72-GPU GB200
domain sent 106 MB a GPU over IB and reached 4 nodes a token; on 1-GPU nodes it still sent NVLink bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.network.spec import ClusterSpec
from tests.conftest import REPO


def _alltoall(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    with pytest.raises(SystemExit) as info:
        main(["alltoall", "--format", "json", *args])
    assert info.value.code == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_the_domain_is_the_scale_up_domain_else_a_node() -> None:
    node = {"name": "n", "nodes": 16, "fabric": {"kind": "ft2"}}
    assert ClusterSpec.model_validate(node | {"node": {"gpus_per_node": 4}}).node.domain_gpus == 4
    assert ClusterSpec.model_validate(node | {"node": {"gpus_per_node": 72}}).node.domain_gpus == 72
    spec = ClusterSpec.model_validate(node | {"node": {"gpus_per_node": 8, "scale_up_gpus": 64}})
    assert spec.node.domain_gpus == 64


def test_an_ep_group_inside_one_domain_sends_nothing_over_ib(capsys: pytest.CaptureFixture[str]) -> None:
    gb200 = _alltoall(capsys, "--topology", str(REPO / "topologies" / "gb200-nvl72-1152.yaml"), "--ep", "64")
    assert gb200["dispatch"]["ib_bytes_per_gpu"] == 0.0  # type: ignore[index]
    assert gb200["nodes_per_token"] == {"mean": 1.0, "max": 1}
    h800 = _alltoall(capsys, "--topology", str(REPO / "topologies" / "deepseek-v3-mpft.yaml"), "--ep", "64")
    assert h800 == _alltoall(capsys, "--ep", "64")  # (the default's own nodes: 8 GPUs)


def test_one_gpu_nodes_send_no_nvlink_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g1.yaml"
    path.write_text(
        yaml.safe_dump({"name": "g1", "nodes": 64, "node": {"gpus_per_node": 1}, "fabric": {"kind": "ft2"}})
    )
    data = _alltoall(capsys, "--topology", str(path), "--ep", "64", "--n-limited-groups", "8")
    assert data["dispatch"]["nvlink_bytes_per_gpu"] == 0.0  # type: ignore[index]
    assert data["dispatch"]["ib_bytes_per_gpu"] > 0  # type: ignore[index,operator]


def test_a_training_steps_moe_layer_takes_the_topologys_node(tmp_path: Path) -> None:
    """The scenario's MoE layer (sim.assemble.moe_spec, its checks) and the step's own (sim.step.simulate.setup)
    likewise: 4-GPU nodes are 4-GPU nodes to DeepEP."""
    from sim.assemble import moe_spec
    from sim.config import load_scenario

    topo = yaml.safe_load((REPO / "topologies" / "deepseek-v3-mpft.yaml").read_text())
    topo["node"]["gpus_per_node"] = 4
    topo["nodes"] = topo["nodes"] * 2
    topo["fabric"]["planes"] = 4  # (a plane a GPU of the node)
    (tmp_path / "t4.yaml").write_text(yaml.safe_dump(topo))
    base = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base": str(base), "set": {"cluster.topology": "t4.yaml"}}))
    sc = load_scenario(tmp_path / "s.yaml")
    spec = moe_spec(sc)
    assert spec.gpus_per_node == 4 and spec.nodes == 16  # EP 64 over 16 nodes of 4
    assert moe_spec(load_scenario(base)).gpus_per_node == 8
    from sim.assemble import assemble
    from sim.step.simulate import setup

    step = assemble(sc).step
    assert step is not None
    _, routing, _, _, _ = setup(step)  # the step's own MoE layer, the one it simulates
    assert routing.moe.gpus_per_node == 4
