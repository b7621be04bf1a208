"""Scenario loading and assembling: a good file loads and assembles; every kind of bad input gives one
line naming file and key, from the loader (schema, files) or from assemble (what needs building)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sim.assemble import Assembly, assemble, chunk_params
from sim.cli import main
from sim.config import default_scenario_path, load_scenario
from sim.errors import ScenarioError
from sim.network.spec import ClusterSpec
from sim.run import op_times
from tests.conftest import REPO, write_sm_sweep_profile

GOOD = {
    "name": "t",
    "pipeline": {"pp": 4, "microbatches": 8, "schedules": ["1f1b", "dualpipe"]},
    "ops": {"forward_ms": 1.0, "backward_ms": [2.0, 2.0, 2.5, 2.0], "weight_ms": 1, "overlapped_ms": 3.0},
}


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def _assembled(path: Path) -> Assembly:
    """What ``twin validate`` does: load, then assemble."""
    return assemble(load_scenario(path))


def _with(path: str, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = data
    for k in parents:
        node = node[k]
    node[last] = value
    return data


def test_default_scenario_loads() -> None:
    sc = load_scenario(default_scenario_path())
    assert sc.training is not None and sc.pipeline.pp == 16 and sc.pipeline.schedules == ["dualpipe"]
    layout = assemble(sc).layout
    assert layout is not None and (layout.dp, layout.expert_dp, layout.microbatches) == (128, 2, 120)


def test_schedule_comparison_scenario_loads() -> None:
    sc = load_scenario(default_scenario_path().parent / "schedule-comparison.yaml")
    assert sc.training is None and sc.pipeline.pp == 16 and len(sc.pipeline.schedules) == 5


def test_good_scenario_and_units(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, GOOD))
    t = assemble(sc).times
    assert t.f == (1e-3,) * 4 and t.b[2] == pytest.approx(2.5e-3) and t.fb == (3e-3,) * 4
    with pytest.raises(ValidationError):  # frozen
        sc.pipeline.pp = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    "data,expected",
    [
        (_with("pipeline.ppp", 4), "pipeline.ppp: unknown key; allowed: pp, microbatches, virtual_stages, schedules"),
        (_with("colour", "red"), "colour: unknown key; allowed: name, description, seed"),
        (_with("pipeline.pp", "four"), "pipeline.pp: Input should be a valid integer (got 'four')"),
        (_with("pipeline.pp", 7), "pipeline.pp: dualpipe needs an even PP"),
        (_with("pipeline.microbatches", 6), "pipeline.microbatches: dualpipe with PP=4 needs at least 8 micro-batches"),
        (_with("pipeline.microbatches", 0), "pipeline.microbatches: Input should be greater than or equal to 1"),
        (_with("pipeline.schedules", ["1f1b", "pipedream"]), "pipeline.schedules: unknown schedule 'pipedream'"),
        (_with("ops.forward_ms", -1.0), "ops.forward_ms[0]: times must be >= 0"),
        (_with("ops.weight_ms", 5.0), "ops.weight_ms: W is part of B and cannot exceed it"),
        (_with("ops.backward_ms", [1.0, 2.0]), "ops.backward_ms: give one value or one per model stage (4), got 2"),
        (_with("p2p", {"bandwidth_GBps": 0}), "p2p.bandwidth_GBps: Input should be greater than or equal to 1e-300"),
        ({"name": "t", "pipeline": {"pp": 4, "microbatches": 8}, "workload": {"ep": 0}}, "workload.ep: Input should"),
        (_with("comm", {"profile": "x.json"}), "comm.profile: moved: the calibration profile is the scenario's"),
        (_with("model", {"n_layers": 2}), "model.n_dense_layers: 3 exceeds n_layers (2)"),
        (_with("model", {"dims": 7168}), "model.dims: unknown key"),
        ("pipeline: [1, 2\n", "malformed YAML at line 2"),
        # a character YAML does not allow was PyYAML's ReaderError traceback (exit 1)
        ("name: t\n\x07\n", "malformed YAML at line 2, column 1: the character U+0007 is not allowed; remove it"),
        ("name: t\x00\n", "malformed YAML at line 1, column 8: the character U+0000 is not allowed; remove it"),
        ("- 1\n- 2\n", "a scenario must be a mapping"),
    ],
)
def test_bad_input_gives_one_line_naming_file_and_key(tmp_path: Path, data: object, expected: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        _assembled(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert expected in msg
    assert "\n" not in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_sm_split_rescales_given_compute_times(tmp_path: Path) -> None:
    """Times measured at 112 compute SMs, run with another split: rescaled by the profile's measured GEMM
    throughput against SMs (the default H800 profile)."""
    base = yaml.safe_load(yaml.safe_dump(GOOD))
    base["ops"]["measured_at_compute_sms"] = 112
    with_sms = load_scenario(_write(tmp_path, base))
    assert assemble(with_sms).times.f == pytest.approx((1e-3,) * 4)  # 20 comm SMs: 112 compute, as measured
    base["comm"] = {"sms": 0, "coprocessor": True}
    offload = load_scenario(_write(tmp_path, base))
    faster = assemble(offload).times.f[0]
    assert 1e-3 * 112 / 132 * 0.95 < faster < 1e-3
    base["comm"] = {"sms": 0}
    with pytest.raises(ScenarioError, match=r"comm\.sms: .*coprocessor"):
        _assembled(_write(tmp_path, base))


def test_sm_split_uses_the_scenario_profile(tmp_path: Path) -> None:
    """With a profile of green-context samples, compute time scales by its measured throughput."""
    from sim.hardware.costmodel import CostModel
    from sim.hardware.profile import load_profile

    prof = write_sm_sweep_profile(tmp_path / "h100-sweep.json")
    base = yaml.safe_load(yaml.safe_dump(GOOD))
    base["ops"]["measured_at_compute_sms"] = 112
    base["comm"] = {"sms": 40}
    base["profile"] = "h100-sweep.json"  # relative to the scenario file
    sc = load_scenario(_write(tmp_path, base))
    model = CostModel(load_profile(prof))
    expected = model.sm_throughput(112) / model.sm_throughput(92)
    assert assemble(sc).times.f[0] == pytest.approx(1e-3 * expected)
    linear = 112 / 92
    assert 1.0 < expected < linear  # sublinear loss: fewer SMs run at higher efficiency


@pytest.mark.parametrize(
    ("profile", "expected"),
    [  # each names the file that holds the wrong key: the scenario's profile key, or the profile's own
        ("missing.json", "s.yaml: profile: no such profile"),
        ("small.json", "small.json: device.sms: 64 SMs, but the datasheet of H800 has 132"),
    ],
)
def test_bad_profile(tmp_path: Path, profile: str, expected: str) -> None:
    write_sm_sweep_profile(tmp_path / "small.json", sms_total=64)
    base = yaml.safe_load(yaml.safe_dump(GOOD))
    base["ops"]["measured_at_compute_sms"] = 112  # given op times are rescaled by the profile (else it is unused)
    base["profile"] = profile
    with pytest.raises(ScenarioError) as info:
        _assembled(_write(tmp_path, base))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_without_ops_the_chunk_model_gives_the_times(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "pipeline": {"pp": 4, "microbatches": 8, "schedules": ["1f1b", "dualpipe"]},
        "workload": {"layers_per_stage": 1, "tokens": 1024, "ep": 16},
    }
    parts = _assembled(_write(tmp_path, data))
    assert parts.times is None and parts.chunk is not None  # built and routed, timed by the run
    t, c = op_times(parts)
    assert c is not None and c.layers == 1 and c.compute_sms == 112
    assert t.f[0] == pytest.approx(c.forward_ms / 1e3) and t.fb is not None
    assert t.w[0] <= t.b[0] and t.fb[0] < t.f[0] + t.b[0]  # the pair overlaps


def test_workload_interference_parameters_override_the_trace_defaults(tmp_path: Path) -> None:
    from sim.chunk.overheads import COMM_BESIDE_COMPUTE, GEMM_BESIDE_COMM

    data = {
        "name": "w",
        "pipeline": {"pp": 4, "microbatches": 8},
        "workload": {"memory_beside_comm": 1.0, "comm_beside_compute": {"combine": 1.0}, "notify_wait_us": 0.0},
    }
    params = chunk_params(load_scenario(_write(tmp_path, data)).workload)
    assert params.memory_beside_comm == 1.0 and params.notify_wait_us == 0.0
    assert params.gemm_beside_comm == GEMM_BESIDE_COMM  # not given: the trace's
    assert params.comm_beside_compute == {**COMM_BESIDE_COMPUTE, "combine": 1.0}
    data["workload"] = {"comm_beside_compute": {"broadcast": 2.0}}
    with pytest.raises(ScenarioError, match=r"workload\.comm_beside_compute: unknown phase 'broadcast'"):
        _assembled(_write(tmp_path, data))
    data["workload"] = {"gemm_beside_comm": 0.5}
    with pytest.raises(ScenarioError, match=r"workload\.gemm_beside_comm: Input should be greater than or equal to 1"):
        load_scenario(_write(tmp_path, data))


def test_a_layer_split_with_an_empty_stage_names_its_key(tmp_path: Path) -> None:
    """A stage given 0 layers in training.layers_per_stage was blamed on pipeline.pp."""
    base = Path(__file__).resolve().parents[1] / "data" / "sweep" / "small-step.yaml"
    split = {"model.n_layers": 8, "model.n_dense_layers": 1, "pipeline.pp": 4, "training.gpus": 128}
    split |= {"training.global_batch": 512, "training.layers_per_stage": [0, 4, 3, 1]}
    path = _write(tmp_path, {"name": "split", "base": str(base), "set": split})
    with pytest.raises(ScenarioError) as info:
        _assembled(path)
    assert str(info.value) == f"{path}: training.layers_per_stage: stage 0 has no layers; give each stage one or more"


SMALL = Path(__file__).resolve().parents[1] / "data" / "sweep" / "small-step.yaml"


@pytest.mark.parametrize(
    ("base_set", "expected"),
    [
        ("{comm.smz: 12}", "comm.smz: unknown key"),
        ("{comm.sms: -4}", "comm.sms: Input should be greater than or equal to 0"),
        ("{workload.ep: 3}", "workload.ep: EP 3 does not divide"),  # refused by assemble, not the loader
    ],
)
def test_a_bad_key_in_a_bases_own_set_names_the_base_file(
    tmp_path: Path, base_set: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A derived scenario whose base has its own ``base`` + ``set``: a bad key in the base's ``set`` is
    one line naming the base's file (not the derived one that names it) and the key, exit status 2."""
    base = tmp_path / "base.yaml"
    base.write_text(f"base: {SMALL}\nset: {base_set}\n")
    derived = tmp_path / "derived.yaml"
    derived.write_text("base: base.yaml\nset: {cluster.nic_Gbps: 800}\n")
    with pytest.raises(SystemExit) as info:
        main(["validate", str(derived)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {base}: {expected}"), err
    assert "derived.yaml" not in err[0]
    with pytest.raises(ScenarioError) as e:  # the same line as the base's own
        assemble(load_scenario(base))
    assert str(e.value).startswith(f"{base}: {expected}")


def test_a_derived_files_own_set_is_its_own_and_overrides_its_bases(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(f"base: {SMALL}\nset: {{comm.sms: -4}}\n")
    derived = tmp_path / "derived.yaml"
    derived.write_text("base: base.yaml\nset: {comm.sms: 16, training.gpus: -8}\n")
    with pytest.raises(ScenarioError, match=r"derived\.yaml: training\.gpus"):
        load_scenario(derived)
    derived.write_text("base: base.yaml\nset: {comm.sms: 16}\n")  # the base's bad value overridden
    assert load_scenario(derived).comm.sms == 16
    # an error no base meets alone is the derived file's, though a base sets its key (small-step's gpus):
    # named at its overrides, then the key they make wrong (training.gpus, a key the file does not have)
    derived.write_text("base: base.yaml\nset: {comm.sms: 16, pipeline.pp: 3}\n")
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(derived))
    assert str(info.value) == (
        f'{derived}: set: {{"comm.sms": 16, "pipeline.pp": 3}}: training.gpus: 512 GPUs do not divide into 3 '
        "pipeline ranks"
    )


def test_a_key_set_beside_its_whole_section_is_refused(tmp_path: Path) -> None:
    """``set: {training: {gpus: 64}, training.gpus: 128}`` ran with whichever came last (128 GPUs, the
    section's other keys dropped): one line names both."""
    path = _write(tmp_path, {"name": "d", "base": str(SMALL), "set": {"training": {"gpus": 64}, "training.gpus": 128}})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == (
        f"{path}: set.training.gpus: also set by set.training (the whole section): give the key once, in one of "
        "the two forms"
    )


LLAMA_H100 = Path(__file__).resolve().parents[2] / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (
            "1e18",
            "training.microbatch_sequences: 1,000,000,000,000,000,000 sequence(s) of model.seq_len 8,192 tokens "
            "are 8,192,000,000,000,000,000,000 tokens per micro-batch on a GPU, over the limit of 16,777,216",
        ),
        (
            "100000000000",
            "training.microbatch_sequences: 100,000,000,000 sequence(s) of model.seq_len 8,192 tokens are "
            "819,200,000,000,000 tokens per micro-batch on a GPU, over the limit of 16,777,216",
        ),
        (
            "1000",
            "training.microbatch_sequences: 1,000 sequences per micro-batch of one GPU are more than the whole "
            "step's training.global_batch (256)",
        ),
    ],
)
def test_microbatch_sequences_out_of_reach_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, line: str
) -> None:
    """A micro-batch of more sequences than a GPU's tokens or the whole step holds names
    ``training.microbatch_sequences`` (it blamed ``training.global_batch``), in validate and run alike."""
    monkeypatch.chdir(tmp_path)
    Path("d.yaml").write_text(f"base: {LLAMA_H100}\nset:\n  training.microbatch_sequences: {value}\n")
    for command in ("validate", "run"):
        with pytest.raises(SystemExit) as info:
            main([command, "d.yaml"])
        out, err = capsys.readouterr()
        assert (info.value.code, out, err) == (2, "", f"error: d.yaml: {line}\n"), command


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        (
            "cluster.topology",
            REPO / "calibrate" / "profiles" / "h800.json",
            "h800.json: name: required key is missing (read as a topology: the file scenario key "
            "cluster.topology names)",
        ),
        (
            "profile",
            REPO / "topologies" / "h100-ib-1024.yaml",
            "h100-ib-1024.yaml: malformed JSON at line 1: Expecting value (read as a calibration profile: the file "
            "scenario key profile names)",
        ),
    ],
)
def test_a_file_of_the_wrong_kind_says_which_key_named_it(tmp_path: Path, key: str, value: Path, line: str) -> None:
    """A profile's JSON given as the topology was refused naming only that file and a key of it ("h800.json:
    name: required key is missing"): the line now says which of the scenario's keys named the file."""
    path = _write(tmp_path, {"name": "wk", "base": str(SMALL), "set": {key: str(value)}})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).endswith(line)


def test_bases_that_name_each_other_are_a_loop(tmp_path: Path) -> None:
    """Two scenarios that are each other's base: 'more than 8 levels of base scenarios' (which read as a
    chain too deep), now named as the loop it is; a deep chain without a loop is still refused as deep."""
    (tmp_path / "la.yaml").write_text("name: la\nbase: lb.yaml\n")
    (tmp_path / "lb.yaml").write_text("name: lb\nbase: lc.yaml\n")
    (tmp_path / "lc.yaml").write_text("name: lc\nbase: la.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "la.yaml")
    assert info.value.file == str(tmp_path / "lc.yaml") and info.value.key_path == "base"
    assert info.value.message == "la.yaml: the bases form a loop (la.yaml -> lb.yaml -> lc.yaml -> la.yaml)"
    for i in range(12):  # a chain of 12 distinct files
        (tmp_path / f"d{i}.yaml").write_text(f"name: d{i}\nbase: d{i + 1}.yaml\n")
    with pytest.raises(ScenarioError, match="more than 8 levels of base scenarios"):
        load_scenario(tmp_path / "d0.yaml")


def test_a_topology_file_edited_between_two_reads_is_read_again(tmp_path: Path) -> None:
    """Parsed topologies are kept by file and text (a sweep's points read one file 1,000 times): an edit
    in between is seen, the same text gives the same (frozen) spec."""
    topo = tmp_path / "t.yaml"
    topo.write_text((REPO / "topologies" / "deepseek-v3-mpft.yaml").read_text())
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({"base": str(default_scenario_path()), "set": {"cluster.topology": str(topo)}}))

    def spec() -> ClusterSpec:
        cluster = load_scenario(scenario).cluster
        assert cluster is not None
        return cluster.spec

    first = spec()
    assert spec() is first
    topo.write_text(topo.read_text().replace(f"nodes: {first.nodes}", f"nodes: {first.nodes // 2}"))
    assert spec().nodes == first.nodes // 2


@pytest.mark.parametrize(
    ("training", "line"),
    [
        (
            {"global_batch": 256},
            "training.global_batch: 256 sequences / (DP 128 x 1 sequence(s) per micro-batch, "
            "training.microbatch_sequences) = 2 micro-batch(es) per pipeline: dualpipe with PP=16 needs at least 32 "
            "micro-batches, got 2",
        ),
        (
            {"microbatch_sequences": 120},
            "training.global_batch: 15360 sequences / (DP 128 x 120 sequence(s) per micro-batch, "
            "training.microbatch_sequences) = 1 micro-batch(es) per pipeline: dualpipe needs an even number of "
            "micro-batches (half per direction), got 1",
        ),
    ],
)
def test_micro_batches_made_by_the_batch_are_blamed_on_the_batch(
    tmp_path: Path, training: dict[str, int], line: str
) -> None:
    """The schedule's count of micro-batches comes from the batch where the file gives no
    ``pipeline.microbatches``: it was blamed on that key all the same."""
    data = yaml.safe_load(default_scenario_path().read_text())
    data["training"].update(training)
    data["profile"] = str(default_scenario_path().parent / data["profile"])
    data["cluster"]["topology"] = str(default_scenario_path().parent / data["cluster"]["topology"])
    path = _write(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(path))
    assert str(info.value) == f"{path}: {line}"
