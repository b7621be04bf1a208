"""Run files and sweeps of them (``twin plan run``): values and keys that were taken for something else
are one line naming the file and the key, exit status 2, before anything is simulated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from tests.conftest import REPO
from tests.integration.test_plan_run import _run_file


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    return err.strip()


def _changed_run_file(folder: Path, change: dict[str, Any]) -> Path:
    """The test run file with ``change`` made to its second phase."""
    path = _run_file(folder)
    body = yaml.safe_load(path.read_text())
    body["phases"][1] |= change
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"steps": True}, "phases.1.steps"),  # ran one step
        ({"global_batch": True}, "phases.1.global_batch"),  # a batch of one sequence
        ({"published_gpu_hours": False}, "phases.1.published_gpu_hours"),  # published as 0
    ],
)
def test_a_boolean_is_not_a_number_in_a_run_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], key: str
) -> None:
    path = _changed_run_file(tmp_path, change)
    line = _refused(["plan", "run", str(path)], capsys)
    assert line.startswith(f"error: {path}: {key}: ") and "is not a number" in line


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        # a ZeroDivisionError after run.json was written; with -q, "+2442%" against another phase's figure
        ({"published_gpu_hours": 0}, "phases.1.published_gpu_hours: Input should be greater than or equal to 1"),
        # a difference of +3e302% against a "published" 1e-300 GPU-hours
        ({"published_gpu_hours": 1e-300}, "phases.1.published_gpu_hours: Input should be greater than or equal to 1"),
        # taken as the number: a scenario refuses global_batch: '256'
        ({"steps": "12"}, "phases.1.steps: Input should be a valid integer"),
        # ramps that are not ramps: accepted, the last one simulated slices above the phase's batch
        (
            {"steps": None, "tokens": 1e11, "ramp": {"batches": [1024, 512], "over_tokens": 1e10}},
            "phases.1: ramp.batches [1024, 512] decrease somewhere; a ramp grows to the phase's global_batch",
        ),
        (
            {"steps": None, "tokens": 1e11, "ramp": {"batches": [512, 2048], "over_tokens": 1e10}},
            "phases.1: ramp.batches end at 2048, past the phase's global_batch 1024",
        ),
        # a folder where a phase names a topology: no key was named ("phases.1.set.: is a folder")
        (
            {"set": {"cluster.topology": "/tmp"}},
            "phases.1.set.cluster.topology: /tmp: is a folder, not a topology file",
        ),
        # a traceback (OverflowError: int too large to convert to float)
        ({"steps": 10**400}, "phases.1.steps: Input should be less than or equal to 1000000000000000000"),
        # exit 0: 2.1e21 tokens (the token budget of a phase is bounded by 1e18) and their days printed
        (
            {"steps": 10**15},
            "phases.1.steps: 1,000,000,000,000,000 steps of 1,024 sequences x 2,048 tokens are 2.1e+21 tokens, "
            "over the limit of 1e+18 tokens a run may have",
        ),
        ({"global_batch": 10**30}, "phases.1.global_batch: Input should be less than or equal to 1000000000000000000"),
        # exit 0: 1.2e-307 steps and 1.8e-311 days printed
        (
            {"steps": None, "tokens": 1e-300},
            "phases.1.tokens: 1e-300 tokens: less than one step of 1,024 sequences x 2,048 tokens (2,097,152 tokens)",
        ),
        (
            {"steps": None, "tokens": 1e11, "ramp": {"batches": [512], "over_tokens": 1e-300}},
            "phases.1.ramp.over_tokens: 1e-300 tokens over 1 batch(es) give each slice 1e-300 tokens: less than "
            "one step of 512 sequences x 2,048 tokens (1,048,576 tokens)",
        ),
        (
            {"steps": None, "tokens": 1e11, "ramp": {"batches": [1024], "over_tokens": 1e11 - 1000}},
            "phases.1.tokens: 100000000000 tokens leave 1000 after the ramp's ramp.over_tokens 99999999000: less "
            "than one step of 1,024 sequences x 2,048 tokens (2,097,152 tokens)",
        ),
        # validate said ok, and plan run refused only after simulating, in two lines on stderr
        (
            {"global_batch": 512},
            "phases.1.global_batch: training.global_batch: 512 sequences / (DP 32 x 1 sequence(s) per micro-batch, "
            "training.microbatch_sequences) = 16 micro-batch(es) per pipeline: dualpipe with PP=16 needs at least 32 "
            "micro-batches, got 16",
        ),
        # blamed on "phases.1: ...: pipeline.microbatches", not on the ramp's batch that makes it
        (
            {"steps": None, "tokens": 1e11, "ramp": {"batches": [512], "over_tokens": 1e10}},
            "phases.1.ramp.batches.0: training.global_batch: 512 sequences / (DP 32 x 1 sequence(s) per micro-batch, "
            "training.microbatch_sequences) = 16 micro-batch(es) per pipeline: dualpipe with PP=16 needs at least 32 "
            "micro-batches, got 16",
        ),
        # named phases.1.set.training.gpus, a key the run file does not have: the override that makes it wrong
        (
            {"set": {"pipeline.pp": 3}},
            'phases.1.set: {"pipeline.pp": 3}: training.gpus: 512 GPUs do not divide into 3 pipeline ranks',
        ),
        # an override key of '': "phases.1.set: <the base's path>: unknown key"
        ({"set": {"": 1}}, "phases.1.set: an override key is a dotted scenario key such as 'comm.sms', got ''"),
        # exit 0, no figure changed and neither string in the outputs (a sweep refuses grid.name)
        (
            {"set": {"name": "x"}},
            "phases.1.set: name: changes nothing a phase simulates (the phase is named by its name)",
        ),
        (
            {"set": {"description": "d"}},
            "phases.1.set: description: changes nothing a phase simulates (the phase is named by its name)",
        ),
    ],
)
def test_a_run_file_refuses_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], needle: str
) -> None:
    path = _changed_run_file(tmp_path, change)
    out = tmp_path / "out"
    line = _refused(["plan", "run", str(path), "-o", str(out)], capsys)
    assert line == f"error: {path}: {needle}", line
    assert not out.exists()


def test_a_group_listing_a_phase_twice_and_a_base_that_is_not_a_scenario_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group that lists a phase twice counted its GPU-hours twice; a run whose base is a profile's
    JSON was blamed on ``phases.0.set.name``."""
    path = _run_file(tmp_path)
    body = yaml.safe_load(path.read_text())
    body["groups"][0]["phases"] = ["main", "main"]
    path.write_text(yaml.safe_dump(body))
    assert _refused(["plan", "run", str(path)], capsys) == f"error: {path}: groups.0.phases: 'main' is listed twice"
    profile = REPO / "calibrate" / "profiles" / "h800.json"
    body = yaml.safe_load(_run_file(tmp_path).read_text()) | {"base": str(profile)}
    path.write_text(yaml.safe_dump(body))
    line = _refused(["plan", "run", str(path)], capsys)
    assert line.startswith(f"error: {path}: base: h800.json is not a scenario ("), line


def _run_sweep(folder: Path, point: dict[str, Any]) -> Path:
    _run_file(folder)  # run.yaml: phases main and long
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "q", "base": "run.yaml", "points": [point]}))
    return path


@pytest.mark.parametrize(
    ("point", "needle"),
    [
        # said 'no phase is named 'main'; the run's phases: main, long'
        ({"phases.main": 1}, "points[0].phases.main: a phase is set key by key, not whole"),
        # said 'the ramp takes more tokens than the phase has' (true read as 1 token)
        ({"phases.main.tokens": True}, "points[0].phases.main.tokens: true: true is not a number"),
        ({"phases.main.ramp.batches": [1024, True]}, "points[0].phases.main.ramp.batches: [1024, true]: "),
        ({"failures.checkpoint_s": False}, "points[0].failures.checkpoint_s: false: "),
        # a traceback labelling the point (OverflowError), and exit 0 for 1e30 steps
        ({"phases.long.steps": 10**400}, "points[0].phases.long.steps: 1000000000"),
        ({"phases.long.steps": 10**30}, "points[0].phases.long.steps: 1000000000000000000000000000000: Input should"),
        (
            {"phases.main.ramp.over_tokens": 1e-300},
            "points[0].phases.main.ramp.over_tokens: 1e-300: 1e-300 tokens over",
        ),
        ({"phases.main.set": {"": 1}}, 'points[0].phases.main.set: {"": 1}: an override key is a dotted'),
    ],
)
def test_a_run_sweeps_key_is_refused_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], point: dict[str, Any], needle: str
) -> None:
    if "failures.checkpoint_s" in point:
        point = {"failures": {"mtbf_gpu_hours": 5e4, "checkpoint_s": 60, "restart_s": 600}} | point
    path = _run_sweep(tmp_path, point)
    line = _refused(["plan", "run", str(path)], capsys)
    assert line.startswith(f"error: {path}: {needle}")


def test_a_phase_giving_the_training_section_whole_still_gets_its_batch(tmp_path: Path) -> None:
    """A phase's ``set`` may give ``training`` whole (the base's keys of it then go); its step's batch
    goes inside that mapping, not as ``training.global_batch`` beside it, which the nested-key check
    refused, blaming ``phases.1.global_batch``."""
    from sim.config import scenario_data
    from sim.experiments.run_plan import load_run, plan_steps
    from tests.conftest import SMALL_STEP

    base, _ = scenario_data(SMALL_STEP)
    section = {k: v for k, v in base["training"].items() if k != "global_batch"}
    path = _changed_run_file(tmp_path, {"set": {"training": section}})
    plan = plan_steps(load_run(path), path)
    assert 1024 in {s.global_batch for s in plan.slices if s.phase == 1}  # the phase's own
    assert all(
        step.sets["training"]["global_batch"] in (1024, 2048) for step in plan.steps.values() if "training" in step.sets
    )
    whole = section | {"global_batch": 64}
    path = _changed_run_file(tmp_path, {"set": {"training": whole}})
    with pytest.raises(ScenarioError, match=r"phases\.1\.set\.training\.global_batch: the phase's global_batch"):
        plan_steps(load_run(path), path)


def test_a_step_that_does_not_fit_is_refused_by_validate_as_by_plan_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """twin validate said ok for a run file whose step plan run refused (after simulating it)."""
    path = _changed_run_file(tmp_path, {"global_batch": 512})
    line = _refused(["validate", str(path)], capsys)
    assert line.startswith(f"error: {path}: phases.1.global_batch: training.global_batch: 512 sequences"), line


def test_two_groups_of_one_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two rows named alike, each with its own published delta, were printed with exit 0."""
    path = _run_file(tmp_path)
    body = yaml.safe_load(path.read_text())
    body["groups"].append(dict(body["groups"][0]) | {"published_gpu_hours": 20})
    path.write_text(yaml.safe_dump(body))
    name = body["groups"][0]["name"]
    assert (
        _refused(["plan", "run", str(path)], capsys)
        == f"error: {path}: groups.1.name: {name!r} names an earlier group too"
    )


def test_a_bad_key_inside_a_profile_a_phase_names_is_named_in_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phase's ``set: {profile: p.json}`` whose sample is refused was named ``run.yaml:
    phases.1.set.samples[268].params.alone_s`` (a key of the profile on the run file); now the profile's
    own key, and the phase's override that read it, as a sweep names a point's file."""
    import json

    from sim.hardware.profile import PROFILES_DIR

    data = json.loads((PROFILES_DIR / "h800.json").read_text())
    i = next(i for i, s in enumerate(data["samples"]) if s["op"] == "interference")
    data["samples"][i]["params"]["alone_s"] = 0.0
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(data))
    path = _changed_run_file(tmp_path, {"set": {"profile": str(profile)}})
    line = _refused(["plan", "run", str(path)], capsys)
    assert line == (
        f"error: {profile}: samples[{i}].params.alone_s: must be more than 0, got 0.0 "
        f"(read for {path}: phases.1.set.profile)"
    )
