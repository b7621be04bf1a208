"""A serve sweep refuses what ``twin serve`` refuses, at the same place. Before: a point naming a trace
with a NaN arrival, or an expert-load file with a NaN load, ran as an ``infeasible`` row (the sweep
exited 0) and ``twin validate`` said ok; a NIC of 1e-300 Gb/s gave an ``ok`` row with a goodput of 0
and a TTFT of NaN, where ``twin serve`` refuses the overflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.errors import ScenarioError
from sim.sweep.point import INFEASIBLE, run_point
from sim.sweep.spec import load_sweep
from tests.conftest import twin
from tests.serve.conftest import PROFILE, SERVE_FOLDER, TOPOLOGY, pool

TRACE = "arrival_s,input_tokens,output_tokens,cached_tokens\n0.1,100,10,0\nnan,100,10,0\n"
LOAD = "expert,load\n0,nan\n1,1\n"


def _base(tmp_path: Path) -> Path:
    """A small serve scenario (one co-located unit of two nodes, 0.5 s of Poisson traffic) in ``tmp_path``."""
    data = {
        "name": "small-serve",
        "profile": str((SERVE_FOLDER / PROFILE).resolve()),
        "cluster": {"topology": str((SERVE_FOLDER / TOPOLOGY).resolve())},
        "serve": {
            "duration_s": 0.5,
            "traffic": {"rate_per_s": 20, "input_tokens": 500, "output_tokens": 20},
            "colocated": pool(),
        },
    }
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("point", "file", "text", "line"),
    [
        ({"serve.traffic": {"trace": "t.csv"}}, "t.csv", TRACE, "line 3: arrival_s: must be finite and >= 0, got nan"),
        ({"serve.expert_load": "l.csv"}, "l.csv", LOAD, "line 2: expert in 0..255 once, load finite and >= 0"),
    ],
)
def test_a_bad_line_of_a_file_a_point_reads_refuses_the_sweep(
    tmp_path: Path, point: dict[str, object], file: str, text: str, line: str
) -> None:
    base = _base(tmp_path)
    (tmp_path / file).write_text(text)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(base), "points": [point]}))
    with pytest.raises(ScenarioError) as err:
        load_sweep(sweep)
    assert str(err.value).startswith(f"{tmp_path / file}: {line}")
    assert str(err.value).endswith(f" (read for {sweep}: points[0].{next(iter(point))})")
    r = twin("validate", str(sweep))  # as twin validate says, exit 2, one line
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and line in r.stderr


def test_twin_validate_reads_a_serve_scenarios_trace(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TRACE)
    scenario = tmp_path / "trace.yaml"
    scenario.write_text(yaml.safe_dump({"base": str(_base(tmp_path)), "set": {"serve.traffic": {"trace": "t.csv"}}}))
    for command in (["validate"], ["serve", "-q", "--format", "json"]):
        r = twin(*command, str(scenario))
        assert r.returncode == 2 and r.stderr.strip().endswith("line 3: arrival_s: must be finite and >= 0, got nan")


def test_an_overflowing_serve_point_is_infeasible_with_twin_serves_reason(tmp_path: Path) -> None:
    base = _base(tmp_path)
    data = yaml.safe_load(base.read_text())
    data["cluster"]["nic_Gbps"] = 1e-300
    row = run_point(data, str(base), str(tmp_path))
    assert row["status"] == INFEASIBLE, row
    assert row["error"].startswith("the results overflow: ") and "from cluster.nic_Gbps = 1e-300" in row["error"]
    one = tmp_path / "one.yaml"
    one.write_text(json.dumps(data))
    r = twin("serve", "-q", "--format", "json", str(one))
    assert r.returncode == 2 and "the results overflow: " in r.stderr and "cluster.nic_Gbps = 1e-300" in r.stderr
