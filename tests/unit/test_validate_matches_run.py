"""``twin validate`` is ``twin run`` without the simulation: load + :func:`sim.assemble.assemble`.

Every scenario-file case of the bad-input corpus (:data:`tests.unit.test_bad_inputs.HAND`) and every
refusal that needs the scenario built (layout, memory, fabric, profile device, chunk model, balanced
layers) goes through both commands in-process: the same one line on stderr, exit status 2, nothing on
stdout, nothing written. The shipped scenarios validate. Nothing here simulates a step: a refusal
comes before the simulation and a good scenario is only validated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from tests.unit.test_bad_inputs import HAND, files  # noqa: F401  (files: the fixture of hostile input files)

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
SMALL = REPO / "tests" / "data" / "sweep" / "small-step.yaml"  # 512 GPUs, memory check off
TABLE = REPO / "scenarios" / "dualpipe-table.yaml"  # a schedule comparison on given op times
DATASHEET = REPO / "calibrate" / "profiles" / "h800-datasheet.json"
NODE = REPO / "topologies" / "h800-node.yaml"


def _corpus() -> list[Any]:
    """The corpus's cases of ``twin validate FILE`` or ``twin run FILE`` (no other argument): the file."""
    seen: dict[str, str] = {}
    for args, expected in HAND:
        if args[0] in ("validate", "run") and len(args) == 2 and not args[1].startswith("-"):
            seen.setdefault(args[1], expected)
    return [pytest.param(name, expected, id=name) for name, expected in seen.items()]


def _profile(path: Path, **device: object) -> str:
    """The H800 datasheet profile with other device fields, written to ``path``."""
    data = json.loads(DATASHEET.read_text())
    data["device"].update(device)
    path.write_text(json.dumps(data))
    return str(path)


# (file name, base scenario, dotted overrides, what the line says); profiles are written beside them
BUILT: list[tuple[str, Path, dict[str, Any], str]] = [
    # training step: layout
    ("odd_pp.yaml", DEFAULT, {"pipeline.pp": 7}, "training.gpus: 2048 GPUs do not divide into 7 pipeline ranks"),
    ("dualpipe_pp.yaml", SMALL, {"pipeline.pp": 7, "training.gpus": 448}, "pipeline.pp: dualpipe needs an even PP"),
    ("ep_rank.yaml", DEFAULT, {"workload.ep": 256}, "workload.ep: EP 256 is larger than a pipeline rank's 128 GPUs"),
    ("gpus.yaml", DEFAULT, {"training.gpus": 4096}, "training.gpus: 4096 GPUs do not fit the cluster's 2048"),
    ("batch.yaml", DEFAULT, {"training.global_batch": 100}, "training.global_batch: 100 sequences do not split"),
    ("two.yaml", DEFAULT, {"pipeline.schedules": ["dualpipe", "1f1b"]}, "a training step runs one schedule"),
    ("pp_layers.yaml", SMALL, {"pipeline.pp": 64, "training.gpus": 512}, "pipeline.pp: PP 64 has more stages"),
    # training step: memory, the fabric, the profile's device
    ("memory.yaml", DEFAULT, {"pipeline.schedules": ["zb1p"]}, "training: pipeline rank 15 needs"),
    (
        "no_cluster.yaml",
        DEFAULT,
        {"cluster": None, "training.check_memory": False},
        "no_cluster.yaml: cluster: a training step needs a cluster",  # was refused at run time only, unnamed
    ),
    ("oversub.yaml", DEFAULT, {"cluster.oversubscription": 3}, "cluster.oversubscription: must divide the 32"),
    ("odd_sms.yaml", DEFAULT, {"comm.sms": 21}, "comm.sms: must be an even number"),
    (  # the profile's own key, in the profile's file (both values are the profile's: its SMs, its device)
        "sms_profile.yaml",
        DEFAULT,
        {"profile": "small.json"},
        "small.json: device.sms: 64 SMs, but the datasheet of H800 has 132",
    ),
    ("no_sheet.yaml", DEFAULT, {"profile": "x9.json"}, "x9.json: device.name: no datasheet for 'X9'"),
    ("phase.yaml", DEFAULT, {"workload.comm_beside_compute": {"x": 2.0}}, "workload.comm_beside_compute: unknown"),
    # keys where nothing reads them (tests/unit/test_every_key_is_used.py has every key)
    ("p2p_step.yaml", DEFAULT, {"p2p.activation_bytes": 1e6}, "p2p.activation_bytes: not used by a training step"),
    ("seed_balanced.yaml", DEFAULT, {"seed": 1}, "seed: not used with balanced routing"),
    # training step: layers balanced by predicted cost, then the memory check of that layout
    (
        "balanced.yaml",
        SMALL,
        {"training.layers_per_stage": "balanced", "training.check_memory": True, "pipeline.pp": 8},
        "training: pipeline rank 1 needs",  # the rank that needs the most (109 GiB of the 80)
    ),
    # schedule comparison: schedules, given times, the chunk model, placement on the fabric
    ("table_pp.yaml", TABLE, {"pipeline.pp": 7}, "pipeline.pp: dualpipe needs an even PP"),
    ("table_n.yaml", TABLE, {"pipeline.microbatches": 4}, "pipeline.microbatches: dualpipe with PP=8 needs"),
    ("table_w.yaml", TABLE, {"ops.weight_ms": 5.0}, "ops.weight_ms: W is part of B and cannot exceed it"),
    ("table_len.yaml", TABLE, {"ops.backward_ms": [1.0, 2.0]}, "ops.backward_ms: give one value or one per"),
    (
        "table_sms.yaml",  # ops measured at 112 compute SMs: rescaled to the split (else comm.sms is unused)
        TABLE,
        {"comm.sms": 0, "ops.measured_at_compute_sms": 112},
        "comm.sms: 0 SMs for communication needs coprocessor mode",
    ),
    ("table_ep.yaml", TABLE, {"ops": None, "workload.ep": 7}, "workload.ep: experts (256) must divide evenly"),
    (
        "table_layers.yaml",  # was refused at run time only: twin validate said ok
        TABLE,
        {"ops": None, "workload.first_layer": 60, "workload.tokens": 1024},
        "workload.layers_per_stage: layers 60..63 are not in the model's 61 layers",
    ),
    (
        "table_gpus.yaml",
        TABLE,
        {"cluster": {"topology": str(NODE), "device_gpus": [0, 0, 1, 2, 3, 4, 5, 6]}},
        "cluster.device_gpus: need 8 distinct GPUs in 0..7",
    ),
    (
        "table_fabric.yaml",
        TABLE,
        {"pipeline.pp": 16, "cluster": {"topology": str(NODE)}},
        "cluster.device_gpus: need 16 distinct GPUs in 0..7",
    ),
]


def _twin(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _same_refusal(path: str, expected: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in root.iterdir())
    code_v, out_v, err_v = _twin(["validate", path], capsys)
    code_r, out_r, err_r = _twin(["run", path, "--format", "json"], capsys)
    assert (code_v, code_r) == (2, 2), (err_v, err_r)
    assert len(err_v.splitlines()) == 1 and err_v.startswith("error: ") and expected in err_v, err_v
    assert err_r == err_v
    assert out_v == out_r == ""
    assert sorted(p.name for p in root.iterdir()) == before  # no 'out' folder, nothing half-written


@pytest.mark.parametrize("name,expected", _corpus())
def test_corpus_refused_alike(name: str, expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    _same_refusal(name, expected, files, capsys)


@pytest.mark.parametrize("name,base,sets,expected", [pytest.param(*case, id=case[0]) for case in BUILT])
def test_built_refusals_alike(
    name: str,
    base: Path,
    sets: dict[str, Any],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _profile(tmp_path / "small.json", sms=64)
    _profile(tmp_path / "x9.json", name="X9")
    (tmp_path / name).write_text(yaml.safe_dump({"base": str(base), "set": sets}))
    _same_refusal(name, expected, tmp_path, capsys)


def test_the_corpus_and_the_built_cases_are_not_empty() -> None:
    assert len(_corpus()) >= 20 and len(BUILT) >= 20


def _shipped() -> list[Path]:
    """The scenario files under scenarios/ (study and sweep files aside)."""
    paths = sorted((REPO / "scenarios").glob("*.yaml")) + sorted((REPO / "scenarios" / "codesign").glob("*.yaml"))
    return [p for p in paths if not {"studies", "grid", "points"} & set(yaml.safe_load(p.read_text()))]


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shipped_scenarios_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _twin(["validate", str(path)], capsys)
    assert code == 0, err
    assert ": ok (" in out and err == ""
