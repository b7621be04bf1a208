"""Hostile inputs to ``twin serve`` and ``twin plan`` found by a fault audit: each one line naming the
file and the key (or the flag), exit status 2, nothing written or left behind; no case simulates.

The run-file cases of the audit (a step count past the run's token bound, a phase or a ramp slice of
less than one step, an override key of '') are in the table of ``tests/unit/test_run_file_inputs.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from tests.conftest import REPO, SMALL_STEP

PROFILE = REPO / "calibrate" / "profiles" / "h800.json"
TOPOLOGY = REPO / "topologies" / "deepseek-v3-mpft.yaml"


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and not out.strip(), (out, err)
    return err.strip()


def _serve_file(folder: Path, **top: object) -> Path:
    """A small serve scenario (two 2-node pools of low-latency kernels), ``top`` keys on top."""
    body = {
        "name": "small",
        "profile": str(PROFILE),
        "cluster": {"topology": str(TOPOLOGY)},
        "serve": {
            "duration_s": 5,
            "traffic": {"rate_per_s": 3, "input_tokens": 500, "output_tokens": 40},
            "prefill": {"nodes": 2, "unit_nodes": 2, "kernels": "low_latency", "max_batch_tokens": 1024},
            "decode": {"nodes": 2, "unit_nodes": 2, "kernels": "low_latency", "max_batch": 8},
        },
        **top,
    }
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_a_serve_profile_of_another_kind_says_which_key_named_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A topology's YAML given as ``profile``: "malformed JSON" named the topology file alone (``twin run``
    says which key named it)."""
    path = _serve_file(tmp_path, profile=str(TOPOLOGY))
    line = _refused(["serve", str(path), "-o", str(tmp_path / "out")], capsys)
    assert line.startswith(f"error: {TOPOLOGY}: malformed JSON at line 1")
    assert line.endswith("(read as a calibration profile: the file scenario key profile names)")
    assert not (tmp_path / "out").exists()


def test_a_serve_on_an_oversubscribed_fabric_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A serve takes the fabric between NICs as non-blocking: on an FT2 of 16:1 it gave the very figures
    of a non-blocking one, with exit 0 (the scenario's own ``cluster.oversubscription`` was refused)."""
    data = yaml.safe_load((REPO / "topologies" / "deepseek-v3-ft2.yaml").read_text())
    data["fabric"]["oversubscription"] = 16
    topology = tmp_path / "ft2-16.yaml"
    topology.write_text(yaml.safe_dump(data))
    path = _serve_file(tmp_path, cluster={"topology": str(topology)})
    line = _refused(["serve", str(path), "-o", str(tmp_path / "out")], capsys)
    assert line.startswith(f"error: {topology}: fabric.oversubscription: 16:1, but a serve scenario takes the fabric")
    assert not (tmp_path / "out").exists()


def test_a_serve_name_too_long_for_its_folder_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name of 300 characters (the schema's pattern takes it): the whole run was simulated, then
    'DIR/<name>: File name too long' named no key and left DIR behind, empty."""
    path = _serve_file(tmp_path, name="b" * 300)
    out = tmp_path / "o2"
    line = _refused(["serve", str(path), "-o", str(out)], capsys)
    assert line.startswith(f"error: {path}: name: 300 bytes, too long for the folder {out}/<name>/")
    assert not out.exists()


def test_a_layout_search_named_too_long_for_its_default_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``out/<name>-layouts`` past 255 bytes: 'File name too long' named the folder, not the key."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "long.yaml"
    scenario = REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"
    path.write_text(yaml.safe_dump({"base": str(scenario), "name": "a" * 250}))
    line = _refused(["plan", "layouts", str(path), "--limit", "1", "-j", "1", "-q"], capsys)
    expected = f"error: {path}: name: 258 bytes with '-layouts', too long for the folder out/<name>-layouts/"
    assert line.startswith(expected)
    assert line.endswith("give a shorter name or -o DIR")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("length", "flags", "journal"),
    [(300, [], ".parquet.journal"), (230, ["--best", "1"], ".screening.parquet.journal")],
)
def test_a_sweep_named_too_long_for_its_default_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    length: int,
    flags: list[str],
    journal: str,
) -> None:
    """``out/<name>.parquet`` and its journal past 255 bytes: the error named the results file, not the
    sweep's ``name`` (nor -o)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"name": "s" * length, "base": str(SMALL_STEP), "grid": {"comm.sms": [20]}}))
    line = _refused(["sweep", str(path), *flags], capsys)
    assert line.startswith(
        f"error: {path}: name: {length} bytes, too long for out/<name>.parquet and its journal out/<name>{journal}"
    )
    assert line.endswith("give a shorter name or -o FILE")
    assert not (tmp_path / "out").exists()


def _run_with_base(folder: Path, base: str) -> Path:
    path = folder / "run.yaml"
    phase = {"name": "main", "steps": 10, "global_batch": 1024}
    path.write_text(yaml.safe_dump({"name": "r", "base": base, "phases": [phase]}))
    return path


@pytest.mark.parametrize(
    ("base", "needle"),
    [
        # each named the base's path alone, not the run file or its key
        ("missing.yaml", "base: missing.yaml: no such scenario file"),
        ("folder", "base: folder: is a folder, not a scenario file"),
        ("/dev/null", "base: /dev/null: not a regular file (a device, pipe or socket); give a scenario file"),
        # a run file as the base: blamed its phases key as a derived scenario's
        ("other-run.yaml", "base: other-run.yaml is not a scenario (phases: a run file (a base scenario and its"),
    ],
)
def test_a_run_files_base_that_is_no_scenario_file_is_named_at_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, needle: str
) -> None:
    (tmp_path / "folder").mkdir()
    other = {"base": str(SMALL_STEP), "name": "x", "phases": [{"name": "p", "steps": 1}]}
    (tmp_path / "other-run.yaml").write_text(yaml.safe_dump(other))
    path = _run_with_base(tmp_path, base)
    out = tmp_path / "out"
    line = _refused(["plan", "run", str(path), "-o", str(out)], capsys)
    assert line.startswith(f"error: {path}: {needle}"), line
    assert not out.exists()


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        # each said the folder or the device was missing ("no such profile: /tmp")
        ("profile", "folder", "profile: folder is a folder; give a profile"),
        ("profile", "/dev/null", "profile: /dev/null is not a regular file (a device, pipe or socket); give a profile"),
        ("trace", "folder", "serve.traffic.trace: folder is a folder; give a CSV file"),
        ("expert_load", "/dev/null", "serve.expert_load: balanced, skewed or a CSV file; /dev/null is not a regular"),
    ],
)
def test_a_serve_file_key_naming_a_folder_or_a_device_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, needle: str
) -> None:
    (tmp_path / "folder").mkdir()
    path = _serve_file(tmp_path)
    body = yaml.safe_load(path.read_text())
    if key == "profile":
        body["profile"] = value
    elif key == "trace":
        body["serve"]["traffic"] = {"trace": value}
    else:
        body["serve"]["expert_load"] = value
    path.write_text(yaml.safe_dump(body))
    line = _refused(["serve", str(path), "-o", str(tmp_path / "out")], capsys)
    assert line.startswith(f"error: {path}: {needle}"), line
    assert not (tmp_path / "out").exists()


def test_a_layout_search_refuses_figures_past_the_edge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A NIC of 1e-150 Gb/s: the ranked table printed step times of 150 digits with exit 0 (finite, so
    past a check of infinities alone). Then every layout became a refused point of the search, each
    naming the input, after all of them were bounded and run. Now the bound of the scenario's own layout
    is checked first: refused at once in one line naming the input, nothing written (the ranked rows are
    still checked before printing, sim.run.check_figures_finite)."""
    path = tmp_path / "slow.yaml"
    scenario = REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"
    path.write_text(yaml.safe_dump({"base": str(scenario), "set": {"cluster.nic_Gbps": 1e-150}}))
    args = ["plan", "layouts", str(path), "--limit", "1", "-j", "1", "-q", "-o", str(tmp_path / "o")]
    line = _refused([*args, "--format", "json"], capsys)
    assert line.startswith(f"error: {path}: the results overflow: step_time_s (its lower bound) is "), line
    assert line.endswith("from cluster.nic_Gbps = 1e-150; use values nearer to real ones"), line
    assert re.search(r"e\+15\d, from", line) and re.search(r"\d{20}", line) is None  # no figure of many digits
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "scenario",
    [REPO / "scenarios" / "deepseek_v3_pretrain.yaml", REPO / "scenarios" / "serve" / "deepseek-v3-h800-trace.yaml"],
)
def test_a_scenario_given_as_a_run_file_is_called_one(scenario: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A training scenario said 'base: Field required', a derived serve scenario 'phases: Field required'."""
    line = _refused(["plan", "run", str(scenario)], capsys)
    assert line == (
        f"error: {scenario}: not a run file (a base scenario and its phases): a scenario runs with twin run, "
        "a serve scenario with twin serve"
    )


@pytest.mark.parametrize("given", [True, False], ids=["-o DIR", "out/"])
def test_a_run_name_too_long_for_its_folder_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, given: bool
) -> None:
    """``twin run`` of a scenario named 300 characters: the line blamed --output (the folder DIR/<name>
    it would write), a flag the user did not give or gave right; it names the scenario's key, as
    ``twin serve`` and ``twin report`` do."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"base": str(REPO / "scenarios" / "deepseek_v3_pretrain.yaml"), "name": "c" * 300}))
    args, folder = (["-o", str(tmp_path / "o3")], f"{tmp_path / 'o3'}") if given else ([], "out")
    line = _refused(["run", str(path), "-q", *args], capsys)
    assert line.startswith(f"error: {path}: name: 300 bytes, too long for the folder {folder}/<name>/")
    assert not (tmp_path / "o3").exists() and not (tmp_path / "out").exists()
