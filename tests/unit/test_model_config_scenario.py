"""``model.config`` in a scenario, and what a dense model changes in one (issue 19).

* ``model: {config: NAME or PATH, ...}`` is the model the config gives, the section's other keys
  overriding its fields; a path resolves against the scenario's folder; an error inside the config
  names the config file and its own key, an unknown name lists the shipped ones;
* a dense model has no EP group and no DeepEP kernels: ``workload.ep`` other than 1 and the routing
  keys are refused, naming the key; unless given, no SMs are set aside for communication.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.assemble import assemble
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.model.catalog import MODELS_DIR, load_model
from tests.conftest import REPO

MPFT = str(REPO / "topologies" / "deepseek-v3-mpft.yaml")


def _scenario(folder: Path, model: dict[str, object], **sections: object) -> Path:
    body = {
        "name": "dense",
        "model": model,
        "pipeline": {"pp": 4, "schedules": ["1f1b"]},
        "training": {"gpus": 64, "global_batch": 256},
        "cluster": {"topology": MPFT},
        **sections,
    }
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_a_shipped_name_with_overrides(tmp_path: Path) -> None:
    sc = load_scenario(_scenario(tmp_path, {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16"}))
    expected = load_model("llama-3.1-8b").model_copy(update={"n_layers": 8, "dtype": "bf16"})
    assert sc.model == expected
    assert sc.model.name == "Llama-3.1-8B"


def test_a_config_path_resolves_against_the_scenario_folder(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_bytes(
        (MODELS_DIR / "mistralai__Mixtral-8x7B-v0.1.config.json").read_bytes()
    )
    sc = load_scenario(_scenario(tmp_path, {"config": "cfg/config.json", "n_layers": 4}, workload={"ep": 8}))
    assert (sc.model.name, sc.model.n_routed_experts, sc.model.n_layers) == ("cfg", 8, 4)


def test_an_error_inside_the_config_names_its_file_and_key(tmp_path: Path) -> None:
    data = json.loads((MODELS_DIR / "meta-llama__Llama-3.1-8B.config.json").read_text()) | {"mlp_bias": True}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ScenarioError) as info:
        load_scenario(_scenario(tmp_path, {"config": "bad.json"}))
    assert info.value.key_path == "mlp_bias" and str(info.value.file).endswith("bad.json")
    with pytest.raises(ScenarioError, match=r"s\.yaml: model\.config: 'llama-9b' is neither a shipped model"):
        load_scenario(_scenario(tmp_path, {"config": "llama-9b"}))
    with pytest.raises(ScenarioError, match=r"model\.config: a shipped model's name or a config.json path"):
        load_scenario(_scenario(tmp_path, {"config": 3}))


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"workload": {"ep": 8}}, "workload.ep"),
        ({"workload": {"routing": "skewed"}}, "workload.routing"),
        ({"workload": {"notify_wait_us": 5.0}}, "workload.notify_wait_us"),
        ({"seed": 3}, "seed"),
        # these changed nothing and were accepted: no DeepEP kernel to interfere or move off the SMs,
        # no EP group to route on its own
        ({"workload": {"interference": "none"}}, "workload.interference"),
        ({"comm": {"coprocessor": True}}, "comm.coprocessor"),
        ({"training": {"gpus": 64, "global_batch": 256, "fidelity": "per-gpu"}}, "training.fidelity"),
    ],
)
def test_a_dense_model_refuses_the_moe_keys(tmp_path: Path, sections: dict[str, object], key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_scenario(tmp_path, {"config": "llama-3.1-8b", "n_layers": 8}, **sections))
    assert info.value.key_path == key and "dense" in info.value.message


def test_a_dense_model_sets_aside_no_sms_unless_told(tmp_path: Path) -> None:
    plain = load_scenario(_scenario(tmp_path, {"config": "llama-3.1-8b", "n_layers": 8}, workload={"ep": 1}))
    assert (plain.workload.ep, plain.comm.sms) == (1, 0)
    told = load_scenario(_scenario(tmp_path, {"config": "llama-3.1-8b", "n_layers": 8}, comm={"sms": 8}))
    assert told.comm.sms == 8
    assert (assemble(plain).split.compute_sms, assemble(told).split.compute_sms) == (132, 124)
