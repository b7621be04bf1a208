"""The YAML merge key ``<<`` is refused in every twin input file (sim/yamlio.py).

A merge key's keys are overridden silently by the mapping's own (``set: {<<: {comm.sms: 12}, comm.sms:
16}`` ran as 16), which is the duplicate key the loader refuses; and a top-level ``<<: {set: ...}`` beside
``set:`` validated. Every file kind read through :func:`sim.yamlio.read_yaml` (scenario, derived scenario,
sweep, run, topology) now says, in one line naming the file and the key path, to write the keys out.
Anchors and plain aliases stay accepted, and every YAML file of the repository still reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from sim.errors import ScenarioError
from sim.yamlio import parse_yaml, read_yaml
from tests.unit.test_bad_inputs import refused_in_one_line

REPO = Path(__file__).resolve().parents[2]
SMALL = str(REPO / "tests" / "data" / "sweep" / "small-step.yaml")
TOPO = str(REPO / "topologies" / "h800-node.yaml")

MERGED = "the YAML merge key << (line {line}) is not accepted; write the merged keys out"


@pytest.mark.parametrize(
    "text,where,line",
    [
        ("set: {<<: {comm.sms: 12}, comm.sms: 16}\n", "set.<<", 1),  # the tester's case: ran as 16
        ("<<: {set: {comm.sms: 16}}\nset: {comm.sms: 12}\n", "<<", 1),  # beside set: validated "ok"
        ("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n", "c.<<", 3),  # the usual form: an anchor merged
        ("a: &x {b: 1}\nc:\n  <<: [*x]\n", "c.<<", 3),  # a list of mappings merged
        ("a: [{<<: {b: 1}}]\n", "a[0].<<", 1),  # in a list
        ("a: {!!merge m: {b: 1}}\n", "a.m", 1),  # the merge tag written out on another key
    ],
)
def test_the_merge_key_is_refused(text: str, where: str, line: int) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_yaml(text, "f.yaml")
    assert str(info.value) == f"f.yaml: {where}: {MERGED.format(line=line)}"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a: &x {b: 1}\nc: *x\n", {"a": {"b": 1}, "c": {"b": 1}}),  # anchors and aliases: still read
        ("a: &x [1, 2]\nc: [*x, *x]\n", {"a": [1, 2], "c": [[1, 2], [1, 2]]}),
        ('"<<": 3\n', {"<<": 3}),  # a quoted '<<' is a plain key (a schema calls it unknown)
    ],
)
def test_anchors_aliases_and_a_quoted_key_are_still_read(text: str, expected: Any) -> None:
    assert parse_yaml(text, "f.yaml") == expected


def test_every_yaml_file_of_the_repository_still_reads() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "*.yaml", "*.yml"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed
    for name in listed:
        read_yaml(REPO / name)  # no merge key in the project's own files


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Input files of every kind that use the merge key; the test runs in their folder."""
    monkeypatch.chdir(tmp_path)
    base = f"base: {SMALL}\n"
    (tmp_path / "derived_set.yaml").write_text(base + "name: d\nset: {<<: {comm.sms: 12}, comm.sms: 16}\n")
    (tmp_path / "derived_top.yaml").write_text(base + "name: d\n<<: {set: {comm.sms: 16}}\nset: {comm.sms: 12}\n")
    scenario = (REPO / "scenarios" / "dualpipe-table.yaml").read_text()
    (tmp_path / "scenario.yaml").write_text(scenario + "extra: &x {name: other}\n<<: *x\n")
    (tmp_path / "sweep.yaml").write_text(base + "grid: {<<: {comm.sms: [20]}, comm.sms: [24]}\n")
    (tmp_path / "sweep_points.yaml").write_text(base + "points:\n  - &p {comm.sms: 20}\n  - {<<: *p, comm.sms: 24}\n")
    phase = "  - {<<: {steps: 5}, name: p, steps: 10, global_batch: 1024}\n"
    (tmp_path / "run.yaml").write_text(base + "name: r\nphases:\n" + phase)
    topo = (REPO / "topologies" / "h800-node.yaml").read_text()
    (tmp_path / "topo.yaml").write_text(topo + "<<: {name: other}\n")
    return tmp_path


CLI: list[tuple[list[str], str]] = [
    (["validate", "derived_set.yaml"], "derived_set.yaml: set.<<: the YAML merge key << (line 3)"),
    (["validate", "derived_top.yaml"], "derived_top.yaml: <<: the YAML merge key << (line 3)"),
    (["run", "derived_set.yaml"], "derived_set.yaml: set.<<: the YAML merge key"),
    (["validate", "scenario.yaml"], "scenario.yaml: <<: the YAML merge key"),
    (["sweep", "sweep.yaml"], "sweep.yaml: grid.<<: the YAML merge key << (line 2)"),
    (["sweep", "sweep_points.yaml"], "sweep_points.yaml: points[1].<<: the YAML merge key << (line 4)"),
    (["plan", "run", "run.yaml"], "run.yaml: phases[0].<<: the YAML merge key << (line 4)"),
    (["topology", "show", "topo.yaml"], "topo.yaml: <<: the YAML merge key"),
]


@pytest.mark.parametrize("args,expected", [pytest.param(a, e, id=" ".join(a)) for a, e in CLI])
def test_every_file_kind_refuses_the_merge_key_in_one_line(
    args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused_in_one_line(args, expected, files, capsys)
