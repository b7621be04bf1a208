"""Every bad input gets one clear line, the newer commands (issue 23): a second table of hostile inputs.

The first table (``tests/unit/test_bad_inputs.py``) covers every command's flags and its scenario,
topology and profile files. This one covers the files of the newer commands: sweep files and their
results and journals (``twin sweep``), co-design study files and report folders (``twin report``),
results files (``twin compare``), and the calibration imports (``twin calibrate import-trace``,
``import-measurements``, ``import-nccl-tests``, ``predict``). Each case runs ``sim.cli.main``
in-process and asserts what the first table does: exit status 2, exactly one line on stderr that
starts with ``error:`` and names the file and key or the flag, no traceback, nothing on stdout and
no file left behind. No case runs a simulation: every sweep and study is refused before its first
point runs (the hostile files are written once and hard-linked into each case's working folder).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calibrate.nccl_tests import parse_log
from sim.cli import main
from tests.unit.test_bad_inputs import refused_in_one_line

REPO = Path(__file__).resolve().parents[2]
SMALL = str(REPO / "tests" / "data" / "sweep" / "small-step.yaml")  # a training step (sweeps need one)
COMPARISON = str(REPO / "scenarios" / "dualpipe-table.yaml")  # a schedule comparison: no training section
PROFILE = str(REPO / "calibrate" / "profiles" / "h800-datasheet.json")
NCCL_LOG = REPO / "tests" / "data" / "nccl-tests" / "alltoall_perf-h200-1gpu.log"
H100 = "NVIDIA H100 80GB HBM3"
ARABIC = "".join(chr(0x0660 + d) for d in range(10))  # the Arabic-Indic digits 0-9 (int reads them)

# ---------------------------------------------------------------------------------------------- files


def _sweep(body: str, base: str = SMALL) -> str:
    return f"base: {base}\n{body}"


SWEEPS: dict[str, str] = {  # sweep files (the base is the small training step unless given)
    "sw_list.yaml": "- 1\n- 2\n",
    "sw_scalar.yaml": "42\n",
    "sw_text.yaml": "just some text\n",
    "sw_unknown.yaml": _sweep("grid: {comm.sms: [20]}\ngird: {comm.sms: [24]}\n"),
    "sw_dup.yaml": _sweep("grid: {comm.sms: [20]}\ngrid: {comm.sms: [24]}\n"),
    "sw_base_int.yaml": "base: 5\ngrid: {comm.sms: [20]}\n",
    "sw_base_empty.yaml": "base: ''\ngrid: {comm.sms: [20]}\n",
    "sw_base_list.yaml": "base: [a.yaml]\ngrid: {comm.sms: [20]}\n",
    "sw_base_missing.yaml": "base: nope.yaml\ngrid: {comm.sms: [20]}\n",
    "sw_base_folder.yaml": "base: folder\ngrid: {comm.sms: [20]}\n",
    "sw_base_garbage.yaml": "base: garbage.bin\ngrid: {comm.sms: [20]}\n",
    "sw_base_list_file.yaml": "base: list.yaml\ngrid: {comm.sms: [20]}\n",
    "sw_base_bad.yaml": "base: unknown_key.yaml\ngrid: {comm.sms: [20]}\n",
    "sw_base_comparison.yaml": _sweep("grid: {seed: [1, 2]}\n", COMPARISON),
    "sw_base_self.yaml": "base: sw_base_self.yaml\ngrid: {comm.sms: [20]}\n",
    "sw_base_pipe.yaml": "base: pipe\ngrid: {comm.sms: [20]}\n",
    "sw_grid_list.yaml": _sweep("grid: [comm.sms, 20]\n"),
    "sw_grid_empty.yaml": _sweep("grid: {}\n"),
    "sw_grid_scalar.yaml": _sweep("grid: 20\n"),
    "sw_axis_empty.yaml": _sweep("grid: {comm.sms: []}\n"),
    "sw_axis_scalar.yaml": _sweep("grid: {comm.sms: 20}\n"),
    "sw_axis_null.yaml": _sweep("grid: {comm.sms: null}\n"),
    "sw_axis_map.yaml": _sweep("grid: {comm.sms: {a: 1}}\n"),
    "sw_nan.yaml": _sweep("grid: {comm.sms: [20, .nan]}\n"),
    "sw_inf.yaml": _sweep("grid: {comm.sms: [.inf]}\n"),
    "sw_neg_inf.yaml": _sweep("grid: {cluster.nic_Gbps: [-.inf]}\n"),
    "sw_nan_nested.yaml": _sweep("grid: {comm: [{sms: .nan}]}\n"),
    "sw_neg.yaml": _sweep("grid: {comm.sms: [-4]}\n"),
    "sw_overflow.yaml": _sweep("grid: {comm.sms: [1e400]}\n"),
    "sw_bool.yaml": _sweep("grid: {comm.sms: [true]}\n"),
    "sw_float_int.yaml": _sweep("grid: {training.gpus: [512.5]}\n"),
    "sw_zero_gpus.yaml": _sweep("grid: {training.gpus: [0]}\n"),
    "sw_str_bool.yaml": _sweep("grid: {comm.coprocessor: [maybe]}\n"),
    "sw_unknown_key.yaml": _sweep("grid: {comm.sm: [20]}\n"),
    "sw_unknown_section.yaml": _sweep("grid: {comms.sms: [20]}\n"),
    "sw_space_key.yaml": _sweep("grid: {comm sms: [20]}\n"),
    "sw_dots_key.yaml": _sweep("grid: {comm..sms: [20]}\n"),
    "sw_digit_key.yaml": _sweep("grid: {1comm: [20]}\n"),
    "sw_int_key.yaml": _sweep("grid: {1: [20]}\n"),
    "sw_value_key.yaml": _sweep("grid: {comm.sms.x: [1]}\n"),
    "sw_section_scalar.yaml": _sweep("grid: {comm: [5]}\n"),
    "sw_name_key.yaml": _sweep("grid: {name: ['a b']}\n"),
    "sw_huge_grid.yaml": _sweep(
        "grid:\n" + "".join(f"  a{i}.b: [{', '.join(str(v) for v in range(10))}]\n" for i in range(7))
    ),
    "sw_dup_grid.yaml": _sweep("grid: {comm.sms: [20, 24, 20]}\n"),
    "sw_dup_points.yaml": _sweep("points: [{comm.sms: 20}, {comm.sms: 20}]\n"),
    "sw_dup_grid_points.yaml": _sweep("grid: {comm.sms: [20, 24]}\npoints: [{comm.sms: 24}]\n"),
    "sw_dup_null_points.yaml": _sweep("points: [null, {}]\n"),
    "sw_dup_null_key.yaml": _sweep("points: [{cluster.nic_Gbps: null}, {}]\n"),
    "sw_no_cluster.yaml": _sweep("points: [{cluster: null}]\n"),
    "sw_two_schedules.yaml": _sweep("points: [{pipeline.schedules: [1f1b, zb1p]}]\n"),
    "sw_dup_int_float.yaml": _sweep("points: [{cluster.nic_Gbps: 400}, {cluster.nic_Gbps: 400.0}]\n"),
    # one file named by an absolute path with '//' and with '/../' (were three points, three equal rows)
    "sw_dup_unnormalised.yaml": _sweep(
        f"grid: {{profile: [{PROFILE}, {PROFILE.replace('/profiles/', '/profiles//')}, "
        f"{PROFILE.replace('/profiles/', '/profiles/../profiles/')}]}}\n"
    ),
    "sw_no_points.yaml": _sweep(""),
    "sw_empty_points.yaml": _sweep("points: []\n"),
    "sw_points_map.yaml": _sweep("points: {comm.sms: 20}\n"),
    "sw_points_scalar_item.yaml": _sweep("points: [20]\n"),
    "sw_points_list_item.yaml": _sweep("points: [[comm.sms, 20]]\n"),
    "sw_points_bad_key.yaml": _sweep("points: [{comm.sms: 20}, {comm.smz: 24}]\n"),
    "sw_points_space_key.yaml": _sweep("points: [{'comm sms': 20}]\n"),
    "sw_points_nan.yaml": _sweep("points: [{comm.sms: .nan}]\n"),
    "sw_training_null.yaml": _sweep("points: [{training: null}]\n"),  # (was blamed on the base)
    "sw_grid_training_null.yaml": _sweep("grid: {training: [null]}\n"),
    "sw_topology_device.yaml": _sweep("points: [{cluster.topology: /dev/zero}]\n"),  # (was "no such file")
    "sw_points_bad_value.yaml": _sweep("points: [{pipeline.pp: seven}]\n"),
    "sw_points_topology.yaml": _sweep("points: [{cluster.topology: nope.yaml}]\n"),
    "sw_points_topology_folder.yaml": _sweep("points: [{cluster.topology: folder}]\n"),
    "sw_points_profile.yaml": _sweep("points: [{profile: nope.json}]\n"),
    "sw_name_int.yaml": _sweep("name: 5\ngrid: {comm.sms: [20]}\n"),
    "sw_name_empty.yaml": _sweep("name: ''\ngrid: {comm.sms: [20]}\n"),
    "sw_name_slash.yaml": _sweep("name: ../escape\ngrid: {comm.sms: [20]}\n"),
    "sw_name_dots.yaml": _sweep("name: '..'\ngrid: {comm.sms: [20]}\n"),
    "sw_description.yaml": _sweep("description: [1, 2]\ngrid: {comm.sms: [20]}\n"),
    "ok_sweep.yaml": _sweep("name: ok\ngrid: {comm.sms: [20]}\n"),
}

STUDIES: dict[str, Any] = {  # co-design study files: the studies list (the base is the small step)
    "cd_empty_studies.yaml": [],
    "cd_studies_map.yaml": {"key": "a"},
    "cd_studies_scalar.yaml": 5,
    "cd_study_scalar.yaml": [5],
    "cd_study_list.yaml": [["a"]],
    "cd_study_unknown.yaml": [{"key": "a", "grid": {"comm.sms": [12]}, "titel": "x"}],
    "cd_key_missing.yaml": [{"grid": {"comm.sms": [12]}}],
    "cd_key_int.yaml": [{"key": 5, "grid": {"comm.sms": [12]}}],
    "cd_key_empty.yaml": [{"key": "", "grid": {"comm.sms": [12]}}],
    "cd_key_dup.yaml": [{"key": "a", "grid": {"comm.sms": [12]}}, {"key": "a", "grid": {"comm.sms": [16]}}],
    "cd_nothing.yaml": [{"key": "a"}],
    "cd_grid_list.yaml": [{"key": "a", "grid": ["comm.sms", 12]}],
    "cd_grid_empty.yaml": [{"key": "a", "grid": {}}],
    "cd_axis_empty.yaml": [{"key": "a", "grid": {"comm.sms": []}}],
    "cd_axis_scalar.yaml": [{"key": "a", "grid": {"comm.sms": 12}}],
    "cd_grid_nan.yaml": [{"key": "a", "grid": {"comm.sms": [float("nan")]}}],
    "cd_grid_inf.yaml": [{"key": "a", "grid": {"comm.sms": [float("inf")]}}],
    "cd_grid_neg.yaml": [{"key": "a", "grid": {"comm.sms": [-2]}}],
    "cd_grid_str.yaml": [{"key": "a", "grid": {"training.gpus": ["many"]}}],
    "cd_grid_bad_key.yaml": [{"key": "a", "grid": {"comm sms": [12]}}],
    "cd_grid_huge.yaml": [{"key": "a", "grid": {f"a{i}.b": list(range(10)) for i in range(7)}}],
    "cd_label_int.yaml": [{"key": "a", "grid": {"comm.sms": [12]}, "label": 5}],
    "cd_label_unknown.yaml": [{"key": "a", "grid": {"comm.sms": [12]}, "label": "{comm.smz}"}],
    "cd_variants_map.yaml": [{"key": "a", "variants": {"set": {"comm.sms": 12}}}],
    "cd_variants_scalar.yaml": [{"key": "a", "variants": 5}],
    "cd_variant_scalar.yaml": [{"key": "a", "variants": [5]}],
    "cd_variant_unknown.yaml": [{"key": "a", "variants": [{"sets": {"comm.sms": 12}}]}],
    "cd_set_scalar.yaml": [{"key": "a", "variants": [{"set": 12}]}],
    "cd_set_list.yaml": [{"key": "a", "variants": [{"set": ["comm.sms", 12]}]}],
    "cd_set_bad_key.yaml": [{"key": "a", "variants": [{"set": {"comm..sms": 12}}]}],
    "cd_set_unknown.yaml": [{"key": "a", "variants": [{"set": {"comm.smz": 12}}]}],
    "cd_set_nan.yaml": [{"key": "a", "variants": [{"set": {"comm.sms": float("nan")}}]}],
    "cd_set_bad_value.yaml": [{"key": "a", "variants": [{"set": {"training.gpus": -8}}]}],
    "cd_set_topology.yaml": [{"key": "a", "variants": [{"set": {"cluster.topology": "nope.yaml"}}]}],
    "cd_both.yaml": [{"key": "a", "variants": [{"set": {"comm.sms": 12}, "scenario": "derived_ok.yaml"}]}],
    "cd_scenario_int.yaml": [{"key": "a", "variants": [{"scenario": 5}]}],
    "cd_scenario_empty.yaml": [{"key": "a", "variants": [{"scenario": ""}]}],
    "cd_scenario_missing.yaml": [{"key": "a", "variants": [{"scenario": "nope.yaml"}]}],
    "cd_scenario_folder.yaml": [{"key": "a", "variants": [{"scenario": "folder"}]}],
    "cd_scenario_garbage.yaml": [{"key": "a", "variants": [{"scenario": "garbage.bin"}]}],
    "cd_scenario_pipe.yaml": [{"key": "a", "variants": [{"scenario": "pipe"}]}],
    "cd_scenario_plain.yaml": [{"key": "a", "variants": [{"scenario": "list.yaml"}]}],
    "cd_scenario_loop.yaml": [{"key": "a", "variants": [{"scenario": "loop_a.yaml"}]}],
    "cd_scenario_set_scalar.yaml": [{"key": "a", "variants": [{"scenario": "derived_set_scalar.yaml"}]}],
    "cd_scenario_set_key.yaml": [{"key": "a", "variants": [{"scenario": "derived_set_key.yaml"}]}],
    "cd_scenario_set_value.yaml": [{"key": "a", "variants": [{"scenario": "derived_set_value.yaml"}]}],
    "cd_variant_label_empty.yaml": [{"key": "a", "variants": [{"label": "", "set": {"comm.sms": 12}}]}],
    "cd_variant_label_int.yaml": [{"key": "a", "variants": [{"label": 5, "set": {"comm.sms": 12}}]}],
    "cd_metrics_str.yaml": [{"key": "a", "metrics": "step_time_s", "grid": {"comm.sms": [12]}}],
    "cd_metrics_empty.yaml": [{"key": "a", "metrics": [], "grid": {"comm.sms": [12]}}],
    "cd_metrics_unknown.yaml": [{"key": "a", "metrics": ["speed"], "grid": {"comm.sms": [12]}}],
    "cd_metrics_int.yaml": [{"key": "a", "metrics": [5], "grid": {"comm.sms": [12]}}],
}


def _parquet(path: Path, columns: dict[str, list[Any]], metadata: dict[bytes, bytes] | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def _results(**changes: list[Any] | None) -> dict[str, list[Any]]:
    """Columns of a two-point results file as twin sweep writes them, with ``changes`` (None: left out)."""
    from sim.sweep.point import METRICS

    cols: dict[str, list[Any] | None] = {
        "point": [0, 1],
        "point_id": ["0123456789abcdef", "fedcba9876543210"],
        "label": ["comm.sms=20", "comm.sms=24"],
        "status": ["ok", "ok"],
        "error": [None, None],
    }
    for m in METRICS:
        cols[m.name] = [1.0, 2.0]
    cols.update(changes)
    return {k: v for k, v in cols.items() if v is not None}


@functools.cache
def _point_id() -> str:
    """The point id of the one point of ``ok_sweep.yaml`` (the same in every working folder)."""
    import yaml

    from sim.sweep.spec import sweep_from_data

    return sweep_from_data(yaml.safe_load(SWEEPS["ok_sweep.yaml"]), Path("ok_sweep.yaml")).points[0].point_id


def _write_files(tmp_path: Path) -> None:
    """Write the hostile input files into ``tmp_path`` (paths in them are relative to it)."""
    import yaml

    def write(name: str, text: str | bytes) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    # what any input may be instead of a file of its kind
    write("garbage.bin", bytes(range(256)) * 8)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    write("empty.yaml", "")
    write("list.yaml", "- 1\n- 2\n")
    write("deep.yaml", "a: " + "[" * 500 + "]" * 500 + "\n")
    bomb = ["a: &a [1,1,1,1,1,1,1,1,1,1]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        bomb.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    write("bomb.yaml", "\n".join(bomb) + "\n")
    write("existing.txt", "keep me\n")
    write("unknown_key.yaml", f"base: {SMALL}\nset: {{comm.sms: 20}}\npipelin: {{}}\n")

    # sweeps, and the results and journals beside them
    for name, text in SWEEPS.items():
        write(name, text)
    pid = _point_id()
    write("res/garbage.parquet", bytes(range(256)) * 8)
    write("res/empty.parquet", b"")
    write("res/text.parquet", "point,point_id\n0,abc\n")
    write("res/magic.parquet", b"PAR1")
    _parquet(tmp_path / "res" / "plain.parquet", {"a": [1]})
    _parquet(tmp_path / "res" / "foreign.parquet", _results())
    one = {k: v[:1] for k, v in _results(point_id=[pid, pid], step_time_s=["fast", "fast"]).items()}
    _parquet(tmp_path / "res" / "badfig.parquet", one)
    one = {k: v[:1] for k, v in _results(point_id=[pid, pid], step_time_s=[-9.7, -9.7]).items()}
    _parquet(tmp_path / "res" / "negative.parquet", one)  # (twin compare refuses it: so does a resume)
    (tmp_path / "res" / "folder.parquet").mkdir()
    good = {"point": 0, "point_id": pid, "label": "comm.sms=20", "status": "ok", "error": None, "step_time_s": 1.0}
    journals = {
        "foreign": [{**good, "point_id": "0000000000000000"}],
        "figure": [{**good, "step_time_s": "fast"}],
        "int_column": [{**good, "gpus": 2.5}],
        "status": [{**good, "status": 5}],
        "status_word": [{**good, "status": "great"}],
        "point_id_int": [{**good, "point_id": 5}],
        "bool_figure": [{**good, "mfu_causal": True}],
        "nested": [{**good, "step_time_s": {"a": 1}}],
        "zero_step": [{**good, "step_time_s": 0.0}],
        "negative_cost": [{**good, "cost_per_T_usd": -5.0}],
        "negative_rate": [{**good, "tokens_per_day": -1e9}],
    }
    for name, rows in journals.items():
        write(f"jn/{name}.parquet.journal", "".join(json.dumps(r) + "\n" for r in rows))
    write("jn/nan.parquet.journal", json.dumps(good).replace('"ok"', "NaN") + "\n")
    write("jn/inf.parquet.journal", json.dumps(good).replace("1.0", "Infinity") + "\n")
    (tmp_path / "jn" / "folder.parquet.journal").mkdir()
    os.mkfifo(tmp_path / "jn" / "pipe.parquet.journal")
    write("jn/locked.parquet.lock", "")
    (tmp_path / "jn" / "lockdir.parquet.lock").mkdir()

    # co-design study files and the scenarios their variants name
    write("derived_ok.yaml", f"base: {SMALL}\nset: {{comm.sms: 12}}\n")
    write("derived_set_scalar.yaml", f"base: {SMALL}\nset: 12\n")
    write("derived_set_key.yaml", f"base: {SMALL}\nset: {{'comm sms': 12}}\n")
    write("derived_set_value.yaml", f"base: {SMALL}\nset: {{comm.sms: -12}}\n")
    write("loop_a.yaml", "base: loop_b.yaml\nset: {comm.sms: 12}\n")
    write("loop_b.yaml", "base: loop_a.yaml\nset: {comm.sms: 16}\n")
    for name, studies in STUDIES.items():
        write(name, yaml.safe_dump({"name": "tiny", "base": SMALL, "studies": studies}, sort_keys=False))
    write("cd_no_base.yaml", yaml.safe_dump({"name": "tiny", "studies": [{"key": "a", "grid": {"comm.sms": [12]}}]}))
    write("cd_base_int.yaml", "name: tiny\nbase: 5\nstudies: [{key: a, grid: {comm.sms: [12]}}]\n")
    write("cd_base_missing.yaml", "name: tiny\nbase: nope.yaml\nstudies: [{key: a, grid: {comm.sms: [12]}}]\n")
    write("cd_base_folder.yaml", "name: tiny\nbase: folder\nstudies: [{key: a, grid: {comm.sms: [12]}}]\n")
    write("cd_base_comparison.yaml", f"name: tiny\nbase: {COMPARISON}\nstudies: [{{key: a, grid: {{seed: [3]}}}}]\n")
    write("cd_unknown.yaml", f"name: tiny\nbase: {SMALL}\nstudies: [{{key: a, grid: {{comm.sms: [12]}}}}]\nextra: 1\n")
    write("cd_dup.yaml", f"name: tiny\nbase: {SMALL}\nstudies: []\nstudies: [{{key: a}}]\n")
    one_study = "studies: [{key: a, grid: {comm.sms: [12]}}]\n"
    for name, value in (("int", "5"), ("empty", "''"), ("slash", "../escape"), ("list", "[a, b]")):
        write(f"cd_name_{name}.yaml", f"name: {value}\nbase: {SMALL}\n{one_study}")
    write("cd_ok.yaml", f"name: tiny\nbase: {SMALL}\n{one_study}")

    # report folders twin did not make
    write("theirs/dualpipe-table/notes.txt", "their file\n")
    write("theirs/tiny/notes.txt", "their file\n")
    write("clash/dualpipe-table", "a file where the report's folder goes\n")
    write("clash/tiny", "a file where the study's folder goes\n")
    kept = {"twin_version": "0", "files": {"report:kept": ["results.parquet"]}}  # (sim.outputs.KEPT)
    write("cached/tiny/.clustertwin.json", json.dumps(kept) + "\n")
    write("cached/tiny/results.parquet", bytes(range(256)) * 8)
    write("unlisted/tiny/.clustertwin.json", json.dumps({"twin_version": "0", "files": {}}) + "\n")
    write("unlisted/tiny/results.parquet", bytes(range(256)) * 8)  # the user's: never read as the cache

    # results files for twin compare
    write("cmp/empty.parquet", b"")
    write("cmp/garbage.parquet", bytes(range(256)) * 8)
    write("cmp/results.json", json.dumps(_results()))
    write("cmp/results.csv", "point,status,step_time_s\n0,ok,1.0\n")
    write("cmp/magic.parquet", b"PAR1\x00\x00\x00\x00PAR1")
    _parquet(tmp_path / "cmp" / "full.parquet", _results())
    full = (tmp_path / "cmp" / "full.parquet").read_bytes()
    write("cmp/truncated.parquet", full[: len(full) // 2])
    write("cmp/no_footer.parquet", full[:-8])
    _parquet(tmp_path / "cmp" / "no_status.parquet", _results(status=None))
    _parquet(tmp_path / "cmp" / "no_point.parquet", _results(point=None))
    _parquet(tmp_path / "cmp" / "no_step.parquet", _results(step_time_s=None))
    _parquet(tmp_path / "cmp" / "str_step.parquet", _results(step_time_s=["fast", "slow"]))
    _parquet(tmp_path / "cmp" / "str_cost.parquet", _results(cost_per_T_usd=["cheap", "dear"]))
    _parquet(tmp_path / "cmp" / "str_point.parquet", _results(point=["a", "b"]))
    _parquet(tmp_path / "cmp" / "null_point.parquet", _results(point=[None, 1]))
    _parquet(tmp_path / "cmp" / "float_point.parquet", _results(point=[0.5, 1.0]))
    _parquet(tmp_path / "cmp" / "int_status.parquet", _results(status=[1, 0]))
    _parquet(tmp_path / "cmp" / "nan_ok.parquet", _results(step_time_s=[float("nan"), 1.0]))
    _parquet(tmp_path / "cmp" / "inf.parquet", _results(step_time_s=[float("inf"), 1.0]))
    _parquet(tmp_path / "cmp" / "neg_inf.parquet", _results(tokens_per_day=[float("-inf"), 1.0]))
    _parquet(tmp_path / "cmp" / "dup_point.parquet", _results(point=[0, 0]))
    _parquet(tmp_path / "cmp" / "dup_id.parquet", _results(point_id=["0123456789abcdef"] * 2))
    _parquet(tmp_path / "cmp" / "list_step.parquet", _results(step_time_s=[[1.0], [2.0]]))
    _parquet(tmp_path / "cmp" / "bool_step.parquet", _results(step_time_s=[True, False]))
    # the screening rows of twin sweep --best (lower bounds, not steps): marked, and as written before the mark
    bounds = {"name": "s-screening", "points": 2, "lower_bounds": True}
    _parquet(tmp_path / "cmp" / "bounds.parquet", _results(), {b"clustertwin.sweep": json.dumps(bounds).encode()})
    old = {b"clustertwin.sweep": json.dumps({"name": "s-screening", "points": 2}).encode()}
    _parquet(tmp_path / "cmp" / "x.screening.parquet", _results(), old)

    # calibration imports: traces
    write("tr/empty.json", "")
    write("tr/truncated.json", '{"traceEvents": [{"name": "a", "ph": "X"')
    write("tr/nan.json", '{"traceEvents": [{"name": "a", "cat": "kernel", "ts": NaN, "dur": 1}]}')
    write("tr/inf.json", '{"traceEvents": [{"name": "a", "cat": "kernel", "ts": 0, "dur": Infinity}]}')
    write("tr/dup.json", '{"traceEvents": [], "traceEvents": []}')
    write("tr/deep.json", "[" * 100_000 + "]" * 100_000)
    write("tr/no_events.json", "{}")
    write("tr/events_map.json", '{"traceEvents": {}}')
    write("tr/events_empty.json", '{"traceEvents": []}')
    write("tr/events_ints.json", '{"traceEvents": [1, 2, 3]}')
    write("tr/annotation_no_name.json", '{"traceEvents": [{"cat": "user_annotation", "ts": 0, "dur": 5}]}')
    write("tr/annotation_int_name.json", '{"traceEvents": [{"cat": "user_annotation", "name": 5, "ts": 0, "dur": 5}]}')
    write("tr/annotation_str_ts.json", '{"traceEvents": [{"cat": "user_annotation", "name": "a", "ts": "0"}]}')
    write("tr/kernel_no_args.json", '{"traceEvents": [{"cat": "kernel", "name": "k", "ts": 0, "dur": 5}]}')
    kernel = '{"cat": "kernel", "name": "k", "ph": "X", "ts": 0, "dur": 5, "args": {"stream": 7, "correlation": 1}}'
    write("tr/no_annotations.json", '{"traceEvents": [' + kernel + "]}")  # (a profile of 1 sample, "0 layers")
    write("tr/latin1.json", '{"traceEvents": [{"name": "caf\xe9"}]}'.encode("latin-1"))
    write("tr/utf16.json", '{"traceEvents": []}'.encode("utf-16"))

    # calibration imports: measurement tables
    gemm = "family,dtype,scaling,M,N,K,sms,seconds\n"
    row = "moe_up,fp8,blockwise,64,4096,7168,132,1e-5\n"
    tables = {
        "empty": "",
        "blank_header": "\n\n1,2\n",
        "header_only": gemm,
        "unknown_col": "bytes_copied,sms,seconds,colour\n1024,132,1e-5,red\n",
        "dup_col": "bytes_copied,bytes_copied,seconds\n1024,1024,1e-5\n",
        "two_times": "bytes_copied,seconds,milliseconds\n1024,1e-5,1e-2\n",
        "no_table": "tokens,seconds\n4096,1e-3\n",
        "text_cell": gemm + "moe_up,fp8,blockwise,sixty-four,4096,7168,132,1e-5\n",
        "nan_cell": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,nan\n",
        "nan_dim": gemm + "moe_up,fp8,blockwise,nan,4096,7168,132,1e-5\n",
        "inf_time": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,inf\n",
        "inf_dim": gemm + "moe_up,fp8,blockwise,inf,4096,7168,132,1e-5\n",
        "huge_time": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,1e300\n",
        "tiny_time": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,1e-300\n",
        "neg_time": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,-1e-5\n",
        "zero_time": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,0\n",
        "zero_dim": gemm + "moe_up,fp8,blockwise,0,4096,7168,132,1e-5\n",
        "frac_dim": gemm + "moe_up,fp8,blockwise,64.5,4096,7168,132,1e-5\n",
        "huge_dim": gemm + "moe_up,fp8,blockwise,1e30,4096,7168,132,1e-5\n",
        "short_row": gemm + "moe_up,fp8,blockwise,64,4096\n",
        "long_row": gemm + "moe_up,fp8,blockwise,64,4096,7168,132,1e-5,extra\n",
        "dtype": gemm + "moe_up,int4,blockwise,64,4096,7168,132,1e-5\n",
        "scaling": gemm + "moe_up,fp8,columnwise,64,4096,7168,132,1e-5\n",
        "family": gemm + ",fp8,blockwise,64,4096,7168,132,1e-5\n",
        "sms": gemm + "moe_up,fp8,blockwise,64,4096,7168,200,1e-5\n",
        "causal": "heads,seq,qk_head_dim,v_head_dim,causal,forward_seconds,backward_seconds\n"
        "128,4096,192,128,maybe,1e-3,2e-3\n",
        "interference": "compute_sms,comm_sms,gemm,gemm_alone_us,gemm_beside_copy_us,copy_bytes,"
        "copy_alone_us,copy_beside_gemm_us\n120,20,fp8_moe_up_4096,100,110,1048576,50,60\n",
        # a GEMM label of no dtype (pydantic's traceback, exit 1, before: found by a fuzz of every cell)
        "interference_label": "compute_sms,comm_sms,gemm,gemm_alone_us,gemm_beside_copy_us,copy_bytes,"
        "copy_alone_us,copy_beside_gemm_us\n100,20,fp4_moe_up_4096,100,110,1048576,50,60\n",
        "nul": gemm + "moe_up,fp8,block\x00wise,64,4096,7168,132,1e-5\n",
        "quote": gemm + 'moe_up,fp8,"blockwise,64,4096,7168,132,1e-5\n',
        "huge_field": gemm + "moe_up,fp8,blockwise," + "9" * 200_000 + ",4096,7168,132,1e-5\n",
        # one measurement counted twice: rows appended again, a table pasted with its header
        "pasted_rows": gemm + row + row.replace("moe_up", "q_a") + row,
        "pasted_header": gemm + row + gemm + row,
        # a dtype and a scaling that do not go together (pydantic's traceback, exit 1, before)
        "fp8_none": gemm + "moe_up,fp8,none,64,4096,7168,132,1e-5\n",
        "bf16_blockwise": gemm + "moe_up,bf16,blockwise,64,4096,7168,132,1e-5\n",
    }
    for name, text in tables.items():
        write(f"ms/{name}.csv", text)
    write("ms/latin1.csv", (gemm + "moe_up,fp8,blockwise,64,4096,7168,132,1e-5 caf\xe9\n").encode("latin-1"))
    (tmp_path / "ms_empty").mkdir()
    write("ms_readme_only/README.md", "# 2026-01-01 nothing measured\n")
    write("ms_bad_date/README.md", "# 2026-13-45 measured on one H100\n")  # (written as the profile's date)
    write("ms_bad_date/good.csv", gemm + row)
    write("2026-99-99_run/good.csv", gemm + row)
    write("ms_csv_folder/good.csv", gemm + row)
    (tmp_path / "ms_csv_folder" / "sub.csv").mkdir()
    write("ms_csv_pipe/good.csv", gemm + row)
    os.mkfifo(tmp_path / "ms_csv_pipe" / "pipe.csv")
    write("ms_bad_readme/good.csv", gemm + row)
    write("ms_bad_readme/README.md", bytes(range(128, 256)))
    write("ms_mixed/good.csv", gemm + row)
    write("ms_mixed/bad.csv", gemm + "moe_up,fp8,blockwise,64,4096,7168,132,fast\n")
    write("ms_ok/good.csv", gemm + row)
    write("ms_copied/gemm.csv", gemm + row)  # a table and its copy: every row counted twice
    write("ms_copied/gemm_copy.csv", gemm + row)
    write("ms_across/a.csv", gemm + row)  # a row of a.csv repeated in b.csv
    write("ms_across/b.csv", gemm + row.replace("moe_up", "q_a") + row)

    # calibration imports: nccl-tests logs
    log = NCCL_LOG.read_text()
    lines = log.splitlines(keepends=True)
    header_at = next(i for i, line in enumerate(lines) if line.lstrip("#").split()[:2] == ["size", "count"])
    first_row = next(i for i, line in enumerate(lines) if i > header_at and line.strip()[:1].isdigit())
    data_row = lines[first_row + 1]
    before, after = "".join(lines[:first_row]), "".join(lines[first_row + 2 :])

    def with_row(text: str) -> str:
        return before + text + after

    cells = data_row.split()
    logs = {
        "empty": "",
        "no_header": "# nccl-tests version 2.19.6\n# Collective test starting: alltoall_perf\n",
        "no_rows": "".join(lines[: header_at + 2]),
        "no_ranks": "".join(line for line in lines if "Rank" not in line),
        "short_row": with_row(" ".join(cells[:6]) + "\n"),
        "long_row": with_row(" ".join([*cells, "9"]) + "\n"),
        "word_size": with_row(" ".join(["big", *cells[1:]]) + "\n"),
        "word_count": with_row(" ".join([cells[0], "many", *cells[2:]]) + "\n"),
        "word_time": with_row(" ".join([*cells[:5], "fast", *cells[6:]]) + "\n"),
        "nan_time": with_row(" ".join([*cells[:5], "nan", *cells[6:]]) + "\n"),
        "inf_time": with_row(" ".join([*cells[:5], "inf", *cells[6:]]) + "\n"),
        "nan_busbw": with_row(" ".join([*cells[:7], "nan", *cells[8:]]) + "\n"),
        "huge_time": with_row(" ".join([*cells[:5], "1e300", *cells[6:]]) + "\n"),
        "neg_size": with_row(" ".join(["-32", *cells[1:]]) + "\n"),
        # numbers Python reads but nccl-tests never prints: other scripts' digits, digit separators
        "arabic_size": with_row(" ".join([cells[0].translate(str.maketrans("0123456789", ARABIC)), *cells[1:]]) + "\n"),
        "sep_time": with_row(" ".join([*cells[:5], cells[5].replace(".", "_"), *cells[6:]]) + "\n"),
        "wide_time": with_row(" ".join([*cells[:9], "\uff10" + cells[9][1:], *cells[10:]]) + "\n"),
    }
    logs["copy"] = log
    logs["pasted_row"] = with_row(data_row + data_row)  # one row twice: counted twice in the fit
    logs["twice"] = log + log  # a second run's header (and its rows) in one file
    logs["one_byte"] = log.replace("66.90", "66.91")  # a copy with one byte changed: every row counted twice
    logs["h100"] = log.replace("NVIDIA H200", "NVIDIA H100 80GB HBM3")
    rank = next(line for line in lines if "Rank" in line)
    logs["two_gpus"] = log.replace(rank, rank + rank.replace("Rank  0", "Rank  1").replace("H200", "H100 80GB HBM3"))
    # measurements nccl-tests marks as wrong, or that say other than what is read (accepted before)
    logs["wrong"] = with_row(" ".join([*cells[:8], "17", *cells[9:]]) + "\n")
    logs["ms_units"] = log.replace("(us)", "(ms)")
    logs["float8"] = with_row(" ".join([*cells[:2], "float8", *cells[3:]]) + "\n")
    logs["count_over"] = with_row(" ".join([cells[0], cells[0], *cells[2:]]) + "\n")  # size floats in size B
    logs["rank_gap"] = log.replace(rank, rank + rank.replace("Rank  0", "Rank  5"))
    logs["rank_twice"] = log.replace(rank, rank + rank)
    logs["ngpus8"] = log.replace("nGpus 1", "nGpus 8")
    uneven = rank.replace("Rank  0", "Rank  1") + rank.replace("Rank  0", "Rank  2").replace(" vm ", " other ")
    logs["uneven_hosts"] = log.replace(rank, rank + uneven)
    for name, text in logs.items():
        write(f"nccl/alltoall_{name}.log", text)
    write("nccl/mystery.log", log.replace("Collective test starting: alltoall_perf", "Collective test starting"))

    # profiles and batches for predict
    datasheet = json.loads(Path(PROFILE).read_text())
    profiles = {
        "empty": "",
        "truncated": Path(PROFILE).read_text()[:100],
        "object": "{}",
        "string": '"profile"',
        "nan_peak": json.dumps(datasheet).replace('"hbm_TBps": ', '"hbm_TBps": NaN, "x": ', 1),
        "inf_efficiency": json.dumps({**datasheet, "efficiency": 0.5}).replace(
            '"efficiency": 0.5', '"efficiency": Infinity'
        ),
        "zero_sms": json.dumps({**datasheet, "device": {**datasheet["device"], "sms": 0}}),
        "extra_key": json.dumps({**datasheet, "colour": "red"}),
        "bad_source": json.dumps({**datasheet, "source": "guessed"}),
        "bad_sample": json.dumps(
            {
                **datasheet,
                "samples": [{"op": "gemm", "params": {"m": 1, "n": 1, "k": 1, "dtype": "bf16"}, "time_s": -1}],
            }
        ),
        "sample_op": json.dumps({**datasheet, "samples": [{"op": "fft", "params": {}, "time_s": 1e-3}]}),
        "sample_params": json.dumps({**datasheet, "samples": [{"op": "gemm", "params": [1, 2], "time_s": 1e-3}]}),
        "attention_str": json.dumps(
            {**datasheet, "samples": [{"op": "attention", "params": {"heads": "many"}, "time_s": 1e-3}]}
        ),
        "attention_huge": json.dumps(  # a whole number past a float: OverflowError from math.isfinite
            {**datasheet, "samples": [{"op": "attention", "params": {"seq": 10**400}, "time_s": 1e-3}]}
        ),
        "gemm_str_shape": json.dumps(
            {
                **datasheet,
                "samples": [
                    {"op": "gemm", "params": {"m": "x", "n": 1, "k": 1, "dtype": "fp8", "sms": 132}, "time_s": 1e-3}
                ],
            }
        ),
        "dup": Path(PROFILE).read_text().replace("{", '{"source": "trace", ', 1),
        # numbers as text or as true/false: converted before (true read as 1 TFLOPS)
        "peak_bool": json.dumps({**datasheet, "peaks": {**datasheet["peaks"], "fp8_dense_TFLOPS": True}}),
        "peak_text": json.dumps({**datasheet, "peaks": {**datasheet["peaks"], "fp8_dense_TFLOPS": "1979"}}),
        "clock_negative": json.dumps({**datasheet, "device": {**datasheet["device"], "clock_mhz": -5}}),
        "loso_negative": json.dumps({**datasheet, "loso_error": {"gemm": -3.0}}),
    }
    gemm = {"m": 64, "n": 64, "k": 64, "dtype": "fp8", "scaling": "blockwise", "sms": 132}
    attention = {"heads": 128, "seq": 4096, "qk_dim": 192, "v_dim": 128, "causal": 1, "sms": 132, "phase": "fwd"}
    hostile_samples = {  # a value a fit takes the log of or divides by, or a name the model has no entry for
        "gemm_zero_m": ("gemm", {**gemm, "m": 0}),
        "gemm_neg_n": ("gemm", {**gemm, "n": -64}),
        "gemm_zero_sms": ("gemm", {**gemm, "sms": 0}),
        "gemm_many_sms": ("gemm", {**gemm, "sms": 999}),
        "gemm_dtype": ("gemm", {**gemm, "dtype": "int4"}),
        "attention_zero_heads": ("attention", {**attention, "heads": 0}),
        "attention_phase": ("attention", {**attention, "phase": "sideways"}),
        "memory_neg_bytes": ("memory", {"kernel": "copy", "bytes": -5, "sms": 132}),
        # what the cost model reads without a default: a KeyError at the first prediction before
        "attention_no_seq": ("attention", {k: v for k, v in attention.items() if k != "seq"}),
        "memory_no_bytes": ("memory", {"kernel": "copy", "sms": 132}),
        "interference_no_alone": (
            "interference",
            {"kernel": "gemm", "compute_sms": 112, "comm_sms": 20, "copy_bytes": 1e9, "dtype": "fp8"},
        ),
        "interference_kernel": (
            "interference",
            {"kernel": "fft", "alone_s": 1e-3, "compute_sms": 112, "comm_sms": 20, "copy_bytes": 1e9},
        ),
        "collective_no_gpus": ("collective", {"collective": "all_reduce", "nodes": 2, "bytes": 1e6}),
        "alltoall_world_text": ("alltoall", {"bytes": 1e6, "world": "abc"}),
        # a sample the fit left out without a word, or read under a default it does not have
        "gemm_no_m": ("gemm", {k: v for k, v in gemm.items() if k != "m"}),
        "gemm_no_dtype": ("gemm", {k: v for k, v in gemm.items() if k != "dtype"}),
        "gemm_scaling": ("gemm", {**gemm, "scaling": "bogus"}),
        "gemm_bool": ("gemm", {**gemm, "m": True}),
        "memory_kernel_number": ("memory", {"kernel": 5, "bytes": 1e6, "sms": 132}),
    }
    for name, (op, params) in hostile_samples.items():
        profiles[name] = json.dumps({**datasheet, "samples": [{"op": op, "params": params, "time_s": 1e-3}]})
    # a profile that holds the samples of NCCL_LOG already (its sources list the log's bytes)
    held = {"name": NCCL_LOG.name, "sha256": hashlib.sha256(NCCL_LOG.read_bytes()).hexdigest(), "bytes": len(log)}
    profiles["holds_nccl"] = json.dumps({**datasheet, "sources": [*datasheet.get("sources", []), held]})
    # an H100 profile (the log ran on an H200), and an H200 one holding the log's rows (not its bytes)
    profiles["h100"] = json.dumps({**datasheet, "device": {**datasheet["device"], "name": "H100"}})
    held_rows = [s.model_dump() for s in parse_log(NCCL_LOG)]
    h200 = {**datasheet["device"], "name": "H200"}
    profiles["h200_rows"] = json.dumps({**datasheet, "device": h200, "samples": held_rows})
    # a profile that holds the samples of a trace already (its sources list the trace's bytes)
    trace = (tmp_path / "tr" / "kernel_no_args.json").read_bytes()
    held = {"name": "kernel_no_args.json", "sha256": hashlib.sha256(trace).hexdigest(), "bytes": len(trace)}
    profiles["holds_trace"] = json.dumps({**datasheet, "sources": [*datasheet.get("sources", []), held]})
    for name, text in profiles.items():
        write(f"pf/{name}.json", text)
    batch = "op,dtype,M,N,K\n"
    batches = {
        "empty": "",
        "unknown_col": "op,dtype,M,N,K,colour\ngemm,fp8,64,64,64,red\n",
        "missing_col": "op,dtype,M,N\ngemm,fp8,64,64\n",
        "op": batch + "attention,fp8,64,64,64\n",
        "nan": batch + "gemm,fp8,nan,64,64\n",
        "inf": batch + "gemm,fp8,64,inf,64\n",
        "blank": batch + "gemm,fp8,,64,64\n",
        "frac": batch + "gemm,fp8,64,64,6.5\n",
        "dtype": batch + "gemm,int4,64,64,64\n",
        "scaling": "op,dtype,scaling,M,N,K\ngemm,fp8,columnwise,64,64,64\n",
        "sms": "op,dtype,M,N,K,sms\ngemm,fp8,64,64,64,500\n",
        "beside": "op,dtype,M,N,K,beside_comm_sms\ngemm,fp8,64,64,64,500\n",
        "long_row": batch + "gemm,fp8,64,64,64,1\n",
        "nul": batch + "gemm,fp\x008,64,64,64\n",
        "dup_col": "op,dtype,M,N,K,M\ngemm,fp8,64,64,64,128\n",  # the last M was taken
        "header_only": batch,  # an empty result, exit 0, before
        "short_row": batch + "gemm,fp8,64,64\n",
    }
    for name, text in batches.items():
        write(f"bt/{name}.csv", text)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The hostile files, written once; a sweep writing ``jn/locked.parquet`` holds its lock throughout."""
    root = tmp_path_factory.mktemp("hostile")
    _write_files(root)
    with open(root / "jn" / "locked.parquet.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield root


@pytest.fixture
def files(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of hostile input files (hard links to the template's: a case only reads them, and
    the held lock is the same file); the test runs inside it."""
    work = tmp_path / "work"
    shutil.copytree(template, work, symlinks=True, copy_function=os.link)
    monkeypatch.chdir(work)
    return work


# ---------------------------------------------------------------------------------------------- cases


def _into(output: str) -> list[str]:
    """A valid sweep (validated, never run: each case stops it while its results are read) into ``output``."""
    return ["sweep", "ok_sweep.yaml", "-o", output]


def _trace(*args: str) -> list[str]:
    return ["calibrate", "import-trace", *args]


def _measure(source: str, *args: str) -> list[str]:
    return ["calibrate", "import-measurements", source, "--device", H100, *args]


def _nccl(*args: str) -> list[str]:
    return ["calibrate", "import-nccl-tests", *args]


def _profile(profile: str) -> list[str]:
    return ["calibrate", "predict", "--profile", profile]


def _predict(*args: str) -> list[str]:
    return ["calibrate", "predict", "--profile", PROFILE, *args]


SWEEP: list[tuple[list[str], str]] = [
    # the file itself
    (["sweep", "missing.yaml"], "missing.yaml: no such sweep file"),
    (["sweep", "folder"], "folder: is a folder, not a sweep file"),
    (["sweep", "/dev/zero"], "/dev/zero: not a regular file"),
    (["sweep", "empty.yaml"], "empty.yaml: the file is empty: a sweep file is a mapping of keys"),
    (["sweep", "sw_list.yaml"], "sw_list.yaml: a sweep file is a mapping"),
    (["sweep", "sw_scalar.yaml"], "sw_scalar.yaml: a sweep file is a mapping"),
    (["sweep", "sw_text.yaml"], "sw_text.yaml: a sweep file is a mapping"),
    (["sweep", "deep.yaml"], "deep.yaml: nested deeper than"),
    (["sweep", "bomb.yaml"], "bomb.yaml: expands to more than"),
    (["sweep", "sw_unknown.yaml"], "sw_unknown.yaml: gird: unknown key"),
    (["sweep", "sw_dup.yaml"], "sw_dup.yaml: grid: duplicate key"),
    # its base scenario
    (["sweep", "sw_base_int.yaml"], "sw_base_int.yaml: base: give the base scenario file"),
    (["sweep", "sw_base_empty.yaml"], "sw_base_empty.yaml: base: give the base scenario file"),
    (["sweep", "sw_base_list.yaml"], "sw_base_list.yaml: base: give the base scenario file"),
    (["sweep", "sw_base_missing.yaml"], "sw_base_missing.yaml: base: nope.yaml: no such file"),
    (["sweep", "sw_base_folder.yaml"], "sw_base_folder.yaml: base: folder: is a folder"),
    (["sweep", "sw_base_garbage.yaml"], "garbage.bin: not a UTF-8"),
    (["sweep", "sw_base_pipe.yaml"], "pipe: not a regular file"),
    (["sweep", "sw_base_list_file.yaml"], "list.yaml: the base scenario must be a mapping"),
    (["sweep", "sw_base_bad.yaml"], "unknown_key.yaml: pipelin: a derived scenario"),
    (["sweep", "sw_base_comparison.yaml"], f"sw_base_comparison.yaml: base: {COMPARISON} has no training or serve"),
    (["sweep", "sw_base_self.yaml"], "sw_base_self.yaml: base: names this sweep file itself"),
    # the grid
    (["sweep", "sw_grid_list.yaml"], "sw_grid_list.yaml: grid: a mapping of dotted keys"),
    (["sweep", "sw_grid_empty.yaml"], "sw_grid_empty.yaml: grid: a mapping of dotted keys"),
    (["sweep", "sw_grid_scalar.yaml"], "sw_grid_scalar.yaml: grid: a mapping of dotted keys"),
    (["sweep", "sw_axis_empty.yaml"], "sw_axis_empty.yaml: grid.comm.sms: give a non-empty list"),
    (["sweep", "sw_axis_scalar.yaml"], "sw_axis_scalar.yaml: grid.comm.sms: give a non-empty list"),
    (["sweep", "sw_axis_null.yaml"], "sw_axis_null.yaml: grid.comm.sms: give a non-empty list"),
    (["sweep", "sw_axis_map.yaml"], "sw_axis_map.yaml: grid.comm.sms: give a non-empty list"),
    (["sweep", "sw_nan.yaml"], "sw_nan.yaml: grid.comm.sms: .nan is not a finite number"),
    (["sweep", "sw_inf.yaml"], "sw_inf.yaml: grid.comm.sms: .inf is not a finite number"),
    (["sweep", "sw_neg_inf.yaml"], "sw_neg_inf.yaml: grid.cluster.nic_Gbps: -.inf is not a finite number"),
    (["sweep", "sw_nan_nested.yaml"], "sw_nan_nested.yaml: grid.comm: .nan is not a finite number"),
    (["sweep", "sw_neg.yaml"], "sw_neg.yaml: grid.comm.sms: -4"),
    (["sweep", "sw_overflow.yaml"], "sw_overflow.yaml: grid.comm.sms: .inf is not a finite number"),
    (["sweep", "sw_bool.yaml"], "sw_bool.yaml: grid.comm.sms: true"),
    (["sweep", "sw_float_int.yaml"], "sw_float_int.yaml: grid.training.gpus: 512.5"),
    (["sweep", "sw_zero_gpus.yaml"], "sw_zero_gpus.yaml: grid.training.gpus: 0"),
    (["sweep", "sw_str_bool.yaml"], 'sw_str_bool.yaml: grid.comm.coprocessor: "maybe"'),
    (["sweep", "sw_unknown_key.yaml"], "sw_unknown_key.yaml: grid.comm.sm: 20: unknown key"),
    (["sweep", "sw_unknown_section.yaml"], "sw_unknown_section.yaml: grid.comms.sms"),
    (["sweep", "sw_space_key.yaml"], "sw_space_key.yaml: grid.comm sms: an override key is a dotted"),
    (["sweep", "sw_dots_key.yaml"], "sw_dots_key.yaml: grid.comm..sms: an override key is a dotted"),
    (["sweep", "sw_digit_key.yaml"], "sw_digit_key.yaml: grid.1comm: an override key is a dotted"),
    (["sweep", "sw_int_key.yaml"], "sw_int_key.yaml: grid.1: an override key is a dotted"),
    (["sweep", "sw_value_key.yaml"], "sw_value_key.yaml: grid.comm.sms.x: 1: comm.sms is a value"),
    (["sweep", "sw_section_scalar.yaml"], "sw_section_scalar.yaml: grid.comm: 5"),
    (["sweep", "sw_name_key.yaml"], "sw_name_key.yaml: grid.name: a point's name changes nothing it simulates"),
    (["sweep", "sw_huge_grid.yaml"], "sw_huge_grid.yaml: grid: 10,000,000 combinations; at most 1,000,000"),
    # points and duplicates
    (["sweep", "sw_dup_grid.yaml"], "sw_dup_grid.yaml: grid: repeats the point grid #0"),
    (["sweep", "sw_dup_points.yaml"], "sw_dup_points.yaml: points[1]: repeats the point points[0] ("),
    (["sweep", "sw_dup_grid_points.yaml"], "sw_dup_grid_points.yaml: points[0]: repeats the point grid #1"),
    (["sweep", "sw_dup_null_points.yaml"], "sw_dup_null_points.yaml: points[1]: repeats the point points[0]"),
    (["sweep", "sw_dup_int_float.yaml"], "sw_dup_int_float.yaml: points[1]: repeats the point points[0]"),
    (["sweep", "sw_dup_unnormalised.yaml"], "sw_dup_unnormalised.yaml: grid: repeats the point grid #0"),
    (["sweep", "sw_dup_null_key.yaml"], "sw_dup_null_key.yaml: points[1]: repeats the point points[0] ({})"),
    (["sweep", "sw_no_cluster.yaml"], "sw_no_cluster.yaml: points[0].cluster: null: a training step needs a cluster"),
    (
        ["sweep", "sw_two_schedules.yaml"],
        'sw_two_schedules.yaml: points[0].pipeline.schedules: ["1f1b", "zb1p"]: a training step runs one schedule',
    ),
    (["sweep", "sw_no_points.yaml"], "sw_no_points.yaml: the sweep has no points"),
    (["sweep", "sw_empty_points.yaml"], "sw_empty_points.yaml: points: the sweep has no points"),
    (["sweep", "sw_points_map.yaml"], "sw_points_map.yaml: points: a list of override mappings"),
    (["sweep", "sw_points_scalar_item.yaml"], "sw_points_scalar_item.yaml: points[0]: a mapping of dotted keys"),
    (["sweep", "sw_points_list_item.yaml"], "sw_points_list_item.yaml: points[0]: a mapping of dotted keys"),
    (["sweep", "sw_points_bad_key.yaml"], "sw_points_bad_key.yaml: points[1].comm.smz: 24: unknown key"),
    (["sweep", "sw_points_space_key.yaml"], "sw_points_space_key.yaml: points[0]: an override key is a dotted"),
    (["sweep", "sw_points_nan.yaml"], "sw_points_nan.yaml: points[0].comm.sms: .nan is not a finite number"),
    (
        ["sweep", "sw_training_null.yaml"],
        'sw_training_null.yaml: points[0]: {"training": null}: pipeline.microbatches: required',
    ),
    (["sweep", "sw_grid_training_null.yaml"], 'sw_grid_training_null.yaml: grid: {"training": null}: pipeline.'),
    (
        ["sweep", "sw_topology_device.yaml"],
        'points[0].cluster.topology: "/dev/zero": /dev/zero is not a regular file (a device, pipe or socket)',
    ),
    (["sweep", "sw_points_bad_value.yaml"], 'sw_points_bad_value.yaml: points[0].pipeline.pp: "seven"'),
    (["sweep", "sw_points_topology.yaml"], "sw_points_topology.yaml: points[0].cluster.topology"),
    (["sweep", "sw_points_topology_folder.yaml"], "sw_points_topology_folder.yaml: points[0].cluster.topology"),
    (["sweep", "sw_points_profile.yaml"], "sw_points_profile.yaml: points[0].profile"),
    # name and description
    (["sweep", "sw_name_int.yaml"], "sw_name_int.yaml: name: a non-empty string"),
    (["sweep", "sw_name_empty.yaml"], "sw_name_empty.yaml: name: a non-empty string"),
    (["sweep", "sw_name_slash.yaml"], "sw_name_slash.yaml: name: '../escape' is not a name"),
    (["sweep", "sw_name_dots.yaml"], "sw_name_dots.yaml: name: '..' is not a name"),
    (["sweep", "sw_description.yaml"], "sw_description.yaml: description: a string"),
    # the output and the workers
    (_into("folder"), "--output: folder is a folder"),
    (_into("res/"), "--output: res is a folder"),
    (_into(""), "--output: give a file name"),
    (_into("x.csv"), "--output: must be a Parquet file"),
    (_into("existing.txt/x.parquet"), "--output: existing.txt is a file, not a folder"),
    (_into("pipe"), "--output: pipe exists and is not a regular file"),
    (_into("/dev/null"), "--output: /dev/null exists and is not a regular file"),
    (["sweep", "ok_sweep.yaml", "-j", "0"], "--workers: must be a whole number in [1, 1,024], got '0'"),
    (["sweep", "ok_sweep.yaml", "-j", "-3"], "--workers: must be a whole number in [1, 1,024]"),
    (["sweep", "ok_sweep.yaml", "-j", "1e9"], "--workers: must be a whole number in [1, 1,024]"),
    (["sweep", "ok_sweep.yaml", "-j", "two"], "--workers: must be a whole number"),
    (["sweep", "ok_sweep.yaml", "-j", ""], "--workers: must be a whole number"),
    (["sweep", "ok_sweep.yaml", "-j", "1.5"], "--workers: must be a whole number"),
    (["sweep", "ok_sweep.yaml", "-j"], "-j: needs a value"),
    (["sweep", "ok_sweep.yaml", "--best", "0"], "--best: must be a whole number in [1, 100,000], got '0'"),
    (["sweep", "ok_sweep.yaml", "--best", "two"], "--best: must be a whole number"),
    (["sweep", "ok_sweep.yaml", "--best"], "--best: needs a value"),
    (["sweep", "ok_sweep.yaml", "--by", "tokens_per_day"], "--by: ranks the points of --best; give --best K"),
    (["sweep", "ok_sweep.yaml", "--best", "3", "--by", "memory_peak_GiB"], "--by: --best ranks by step_time_s"),
    (["sweep", "ok_sweep.yaml", "--best", "3", "--by", ""], "--by: --best ranks by step_time_s"),
    (["sweep", "ok_sweep.yaml", "--restart=yes"], "--restart: is a switch"),
    (["sweep"], "SWEEP_FILE: required argument is missing"),
    # results and journals already there
    (_into("res/garbage.parquet"), "garbage.parquet: cannot read it as sweep results"),
    (_into("res/empty.parquet"), "empty.parquet: cannot read it as sweep results"),
    (_into("res/text.parquet"), "text.parquet: cannot read it as sweep results"),
    (_into("res/magic.parquet"), "magic.parquet: cannot read it as sweep results"),
    (_into("res/plain.parquet"), "plain.parquet: not a sweep results file"),
    (_into("res/foreign.parquet"), "foreign.parquet: holds 2 point(s) that are not in"),
    (_into("res/badfig.parquet"), "badfig.parquet: row 1: step_time_s: 'fast' is not a number"),
    (_into("res/negative.parquet"), "negative.parquet: row 1: step_time_s: must be > 0 (a duration) in an ok point"),
    (_into("res/folder.parquet"), "--output: res/folder.parquet is a folder"),
    (_into("jn/foreign.parquet"), "jn/foreign.parquet.journal: holds 1 point(s) that are not in"),
    (_into("jn/figure.parquet"), "figure.parquet.journal: line 1: step_time_s: 'fast' is not a number"),
    (_into("jn/int_column.parquet"), "line 1: gpus: 2.5 is not a whole number"),
    (_into("jn/status.parquet"), "status.parquet.journal: line 1: status: 5 is not text"),
    (_into("jn/status_word.parquet"), "line 1: status: 'great' is not one of ok, infeasible, error"),
    (_into("jn/point_id_int.parquet"), "point_id_int.parquet.journal: line 1: point_id: 5 is not text"),
    (_into("jn/bool_figure.parquet"), "line 1: mfu_causal: True is not a number"),
    (_into("jn/nested.parquet"), "line 1: step_time_s: {'a': 1} is not a number"),
    (_into("jn/nan.parquet"), "nan.parquet.journal: line 1: status: nan is not text"),
    (_into("jn/inf.parquet"), "inf.parquet.journal: line 1: step_time_s: inf is not a finite number"),
    (_into("jn/zero_step.parquet"), "line 1: step_time_s: must be > 0 (a duration) in an ok point, got 0.0"),
    (_into("jn/negative_cost.parquet"), "line 1: cost_per_T_usd: must be >= 0 in an ok point, got -5.0"),
    (_into("jn/negative_rate.parquet"), "line 1: tokens_per_day: must be >= 0 in an ok point, got -1000000000.0"),
    (_into("jn/folder.parquet"), "folder.parquet.journal: is a folder, not a journal file"),
    (_into("jn/pipe.parquet"), "pipe.parquet.journal: not a regular file"),
    (_into("jn/lockdir.parquet"), "lockdir.parquet: cannot take the lock lockdir.parquet.lock"),
    (_into("jn/locked.parquet"), "locked.parquet: another sweep is writing this file now"),
]

STUDY: list[tuple[list[str], str]] = [
    (["report", "cd_empty_studies.yaml"], "cd_empty_studies.yaml: studies: a co-design file lists its studies"),
    (["report", "cd_studies_map.yaml"], "cd_studies_map.yaml: studies: a co-design file lists its studies"),
    (["report", "cd_studies_scalar.yaml"], "cd_studies_scalar.yaml: studies: a co-design file lists its studies"),
    (["report", "cd_study_scalar.yaml"], "cd_study_scalar.yaml: studies[0]: a mapping with key"),
    (["report", "cd_study_list.yaml"], "cd_study_list.yaml: studies[0]: a mapping with key"),
    (["report", "cd_study_unknown.yaml"], "cd_study_unknown.yaml: studies[0].titel: unknown key"),
    (["report", "cd_key_missing.yaml"], "cd_key_missing.yaml: studies[0].key: a unique, non-empty name"),
    (["report", "cd_key_int.yaml"], "cd_key_int.yaml: studies[0].key: a unique, non-empty name"),
    (["report", "cd_key_empty.yaml"], "cd_key_empty.yaml: studies[0].key: a unique, non-empty name"),
    (["report", "cd_key_dup.yaml"], "cd_key_dup.yaml: studies[1].key: a unique, non-empty name"),
    (["report", "cd_nothing.yaml"], "cd_nothing.yaml: studies[0]: a study needs variants and/or a grid"),
    (["report", "cd_grid_list.yaml"], "cd_grid_list.yaml: studies[0].grid: a mapping of dotted keys"),
    (["report", "cd_grid_empty.yaml"], "cd_grid_empty.yaml: studies[0].grid: a mapping of dotted keys"),
    (["report", "cd_axis_empty.yaml"], "cd_axis_empty.yaml: studies[0].grid.comm.sms: give a non-empty list"),
    (["report", "cd_axis_scalar.yaml"], "cd_axis_scalar.yaml: studies[0].grid.comm.sms: give a non-empty list"),
    (["report", "cd_grid_nan.yaml"], "cd_grid_nan.yaml: studies[0].grid.comm.sms: .nan is not a finite"),
    (["report", "cd_grid_inf.yaml"], "cd_grid_inf.yaml: studies[0].grid.comm.sms: .inf is not a finite"),
    (["report", "cd_grid_neg.yaml"], "cd_grid_neg.yaml: studies[0].grid.comm.sms: -2"),
    (["report", "cd_grid_str.yaml"], 'cd_grid_str.yaml: studies[0].grid.training.gpus: "many"'),
    (["report", "cd_grid_bad_key.yaml"], "cd_grid_bad_key.yaml: studies[0].grid.comm sms: an override key"),
    (["report", "cd_grid_huge.yaml"], "cd_grid_huge.yaml: studies[0].grid: 10,000,000 combinations"),
    (["report", "cd_label_int.yaml"], "cd_label_int.yaml: studies[0].label: a string"),
    (["report", "cd_label_unknown.yaml"], "cd_label_unknown.yaml: studies[0].label: {comm.smz} is not a key"),
    (["report", "cd_variants_map.yaml"], "cd_variants_map.yaml: studies[0].variants: a list"),
    (["report", "cd_variants_scalar.yaml"], "cd_variants_scalar.yaml: studies[0].variants: a list"),
    (["report", "cd_variant_scalar.yaml"], "cd_variant_scalar.yaml: studies[0].variants[0]: a mapping"),
    (["report", "cd_variant_unknown.yaml"], "cd_variant_unknown.yaml: studies[0].variants[0].sets: unknown key"),
    (["report", "cd_set_scalar.yaml"], "cd_set_scalar.yaml: studies[0].variants[0].set: a mapping"),
    (["report", "cd_set_list.yaml"], "cd_set_list.yaml: studies[0].variants[0].set: a mapping"),
    (["report", "cd_set_bad_key.yaml"], "cd_set_bad_key.yaml: studies[0].variants[0].set: an override key"),
    (["report", "cd_set_unknown.yaml"], "cd_set_unknown.yaml: studies[0].variants[0].set.comm.smz: 12: unknown key"),
    (["report", "cd_set_nan.yaml"], "cd_set_nan.yaml: studies[0].variants[0].set.comm.sms: .nan is not a finite"),
    (["report", "cd_set_bad_value.yaml"], "cd_set_bad_value.yaml: studies[0].variants[0].set.training.gpus: -8"),
    (["report", "cd_set_topology.yaml"], "cd_set_topology.yaml: studies[0].variants[0].set.cluster.topology"),
    (["report", "cd_both.yaml"], "cd_both.yaml: studies[0].variants[0]: give either scenario or set"),
    (["report", "cd_scenario_int.yaml"], "cd_scenario_int.yaml: studies[0].variants[0].scenario: give a derived"),
    (["report", "cd_scenario_empty.yaml"], "cd_scenario_empty.yaml: studies[0].variants[0].scenario: give a"),
    (["report", "cd_scenario_missing.yaml"], "nope.yaml: no such scenario file"),
    (["report", "cd_scenario_folder.yaml"], "folder: is a folder, not a scenario file"),
    (["report", "cd_scenario_garbage.yaml"], "garbage.bin: not a UTF-8"),
    (["report", "cd_scenario_pipe.yaml"], "pipe: not a regular file"),
    (["report", "cd_scenario_plain.yaml"], "cd_scenario_plain.yaml: studies[0].variants[0].scenario: list.yaml"),
    (["report", "cd_scenario_loop.yaml"], "cd_scenario_loop.yaml: studies[0].variants[0].scenario: loop_a.yaml"),
    (["report", "cd_scenario_set_scalar.yaml"], "derived_set_scalar.yaml: set: a mapping"),
    (["report", "cd_scenario_set_key.yaml"], "derived_set_key.yaml: set: an override key"),
    (
        ["report", "cd_scenario_set_value.yaml"],
        "cd_scenario_set_value.yaml: studies[0].variants[0].scenario: comm.sms: -12",
    ),
    (["report", "cd_variant_label_empty.yaml"], "cd_variant_label_empty.yaml: studies[0].variants[0].label"),
    (["report", "cd_variant_label_int.yaml"], "cd_variant_label_int.yaml: studies[0].variants[0].label"),
    (["report", "cd_metrics_str.yaml"], "cd_metrics_str.yaml: studies[0].metrics: a list of figures"),
    (["report", "cd_metrics_empty.yaml"], "cd_metrics_empty.yaml: studies[0].metrics: a list of figures"),
    (["report", "cd_metrics_unknown.yaml"], "cd_metrics_unknown.yaml: studies[0].metrics: unknown figure 'speed'"),
    (["report", "cd_metrics_int.yaml"], "cd_metrics_int.yaml: studies[0].metrics: unknown figure 5"),
    (["report", "cd_no_base.yaml"], "cd_no_base.yaml: base: give the base scenario file"),
    (["report", "cd_base_int.yaml"], "cd_base_int.yaml: base: give the base scenario file"),
    (["report", "cd_base_missing.yaml"], "cd_base_missing.yaml: base: nope.yaml: no such file"),
    (["report", "cd_base_folder.yaml"], "cd_base_folder.yaml: base: folder: is a folder"),
    (["report", "cd_base_comparison.yaml"], f"cd_base_comparison.yaml: base: {COMPARISON} has no training or serve"),
    (["report", "cd_unknown.yaml"], "cd_unknown.yaml: extra: unknown key"),
    (["report", "cd_dup.yaml"], "cd_dup.yaml: studies: duplicate key"),
    (["report", "cd_name_int.yaml"], "cd_name_int.yaml: name: a non-empty string"),
    (["report", "cd_name_empty.yaml"], "cd_name_empty.yaml: name: a non-empty string"),
    (["report", "cd_name_slash.yaml"], "cd_name_slash.yaml: name: '../escape' is not a name"),
    (["report", "cd_name_list.yaml"], "cd_name_list.yaml: name: a non-empty string"),
]

REPORT: list[tuple[list[str], str]] = [
    (["report", COMPARISON, "-o", "theirs"], "--output: theirs/dualpipe-table holds files twin did not write"),
    (["report", COMPARISON, "-o", "clash"], "--output: clash/dualpipe-table is a file; give a folder"),
    (["report", "cd_ok.yaml", "-o", "theirs"], "--output: theirs/tiny holds files twin did not write"),
    (["report", "cd_ok.yaml", "-o", "clash"], "--output: clash/tiny is a file; give a folder"),
    (["report", "cd_ok.yaml", "-o", "existing.txt"], "--output: existing.txt is a file; give a folder"),
    (["report", "cd_ok.yaml", "-o", "existing.txt/sub"], "--output: existing.txt is a file, not a folder"),
    (["report", "cd_ok.yaml", "-o", "/proc/x"], "--output: cannot write in /proc"),
    (["report", "cd_ok.yaml", "-o", "cached"], "results.parquet: cannot read it as sweep results"),
    (["report", "cd_ok.yaml", "-o", "unlisted"], "holds results.parquet, which twin did not write"),
    (["report", COMPARISON, "-o", ""], "--output: give a folder to write in"),
    (["report", COMPARISON, "-o", "/"], "--output: give a folder to write in"),
    (["report", COMPARISON, "-o", "pipe"], "--output: pipe is a file; give a folder"),
    (["report", "sw_list.yaml"], "sw_list.yaml: a scenario must be a mapping"),
    (["report", "ok_sweep.yaml"], "ok_sweep.yaml: grid: a sweep file: run it with twin sweep"),
    (["report", "/dev/zero"], "/dev/zero: not a regular file"),
    (["report", "folder"], "folder: is a folder, not a scenario file"),
    (["report", COMPARISON, "extra.yaml"], "unexpected extra argument"),
]

COMPARE: list[tuple[list[str], str]] = [
    (["compare", "cmp/empty.parquet"], "empty.parquet: cannot read it as Parquet"),
    (["compare", "cmp/garbage.parquet"], "garbage.parquet: cannot read it as Parquet"),
    (["compare", "cmp/results.json"], "results.json: cannot read it as Parquet"),
    (["compare", "cmp/results.csv"], "results.csv: cannot read it as Parquet"),
    (["compare", "cmp/magic.parquet"], "magic.parquet: cannot read it as Parquet"),
    (["compare", "cmp/truncated.parquet"], "truncated.parquet: cannot read it as Parquet"),
    (["compare", "cmp/no_footer.parquet"], "no_footer.parquet: cannot read it as Parquet"),
    (["compare", "folder"], "RESULTS: folder is a folder"),
    (["compare", "pipe"], "RESULTS: pipe is not a regular file"),
    (["compare", "/dev/null"], "RESULTS: /dev/null is not a regular file"),
    (["compare", "cmp/missing.parquet"], "RESULTS: no such file: cmp/missing.parquet"),
    (["compare", "cmp/no_status.parquet"], "no_status.parquet: not a twin sweep results file (no column 'status')"),
    (["compare", "cmp/no_point.parquet"], "no_point.parquet: not a twin sweep results file (no column 'point')"),
    (["compare", "cmp/no_step.parquet"], "no_step.parquet: not a twin sweep results file (no column 'step_time_s')"),
    (["compare", "cmp/str_step.parquet"], "str_step.parquet: step_time_s: a column of numbers"),
    (["compare", "cmp/str_cost.parquet"], "str_cost.parquet: cost_per_T_usd: a column of numbers"),
    (["compare", "cmp/bool_step.parquet"], "bool_step.parquet: step_time_s: a column of numbers"),
    (["compare", "cmp/list_step.parquet"], "list_step.parquet: step_time_s: a column of numbers"),
    (["compare", "cmp/str_point.parquet"], "str_point.parquet: point: a column of whole numbers"),
    (["compare", "cmp/null_point.parquet"], "null_point.parquet: point: a column of whole numbers"),
    (["compare", "cmp/float_point.parquet"], "float_point.parquet: point: a column of whole numbers"),
    (["compare", "cmp/int_status.parquet"], "int_status.parquet: status: a column of text"),
    (["compare", "cmp/nan_ok.parquet"], "nan_ok.parquet: point 0: step_time_s: NaN in a point whose status is ok"),
    (["compare", "cmp/inf.parquet"], "inf.parquet: point 0: step_time_s: inf is not a finite number"),
    (["compare", "cmp/neg_inf.parquet"], "neg_inf.parquet: point 0: tokens_per_day: -inf is not a finite number"),
    (["compare", "cmp/dup_point.parquet"], "dup_point.parquet: point: point 0 is in two rows"),
    (["compare", "cmp/dup_id.parquet"], "dup_id.parquet: point_id: point 0123456789abcdef is in two rows"),
    (["compare", "cmp/full.parquet", "--by", ""], "--by: unknown figure ''"),
    (["compare", "cmp/full.parquet", "--by", "STEP_TIME_S"], "--by: unknown figure 'STEP_TIME_S'"),
    (["compare", "cmp/full.parquet", "--against", "speed"], "--against: unknown figure 'speed'"),
    (["compare", "cmp/full.parquet", "--against", "step_time_s"], "--against: must differ from --by"),
    (
        ["compare", "cmp/full.parquet", "--by", "tokens_per_day", "--against", "tokens_per_day"],
        "--against: must differ",
    ),
    (["compare", "cmp/full.parquet", "--top", "0"], "--top: must be a whole number in [1, 100,000]"),
    (["compare", "cmp/full.parquet", "--top", "nan"], "--top: must be a whole number"),
    (["compare", "cmp/full.parquet", "--plot", "folder"], "--plot: folder is a folder"),
    (["compare", "cmp/full.parquet", "--plot", "noext"], "--plot: unknown file extension none"),
    (["compare", "cmp/full.parquet", "--plot", "/proc/x.png"], "--plot: cannot write in /proc"),
    (["compare", "cmp/full.parquet", "--plot", "existing.txt/p.png"], "--plot: existing.txt is a file, not a folder"),
    (["compare", "cmp/full.parquet", "--plot", "/dev/null"], "--plot: /dev/null exists and is not a regular file"),
    (["compare", "cmp/full.parquet", "--format", "csv"], "--format: 'csv' is not one of"),
    (["compare"], "RESULTS: required argument is missing"),
    # --best's screening rows: bounds shown as step times (with a footnote on costs no row lacked a price for)
    (
        ["compare", "cmp/bounds.parquet"],
        "error: cmp/bounds.parquet: holds lower bounds (the screening rows of twin sweep --best), not steps: its "
        "step_time_s are bounds no step takes; compare the steps, in the output of that sweep",
    ),
    (
        ["compare", "cmp/x.screening.parquet", "--by", "tokens_per_day"],
        "error: cmp/x.screening.parquet: holds lower bounds (the screening rows of twin sweep --best), not "
        "steps: its step_time_s are bounds no step takes; compare the steps, in x.parquet beside it",
    ),
]

# finite flags whose product is past sim.run.EDGE: a step time of 4.6e307 was printed with exit 0 (refused
# only once it reached inf); then a transfer past MAX_TIME, or one beside which an op time is lost: a step
# of 4.6e19 with every bubble 1.0 and no activation at the last device (1e18 bytes at 1 byte a time unit)
SCHEDULES: list[tuple[list[str], str]] = [
    (
        ["schedules", "compare", "--p2p-bandwidth", "1e-300", "--p2p-bytes", "1e6"],
        "error: --p2p-bytes: 1e+06 bytes at --p2p-bandwidth 1e-300: a transfer of 1e+306 time units, over the "
        "1e+12 a time may be; give values nearer to real ones",
    ),
    (
        ["schedules", "compare", "--p2p-bandwidth", "1e-200", "--p2p-bytes", "1e6", "--format", "json"],
        "error: --p2p-bytes: 1e+06 bytes at --p2p-bandwidth 1e-200: a transfer of 1e+206 time units",
    ),
    (
        ["schedules", "compare", "--p2p-bytes", "1e18", "--p2p-bandwidth", "1", "--schedules", "1f1b"],
        "error: --p2p-bytes: 1e+18 bytes at --p2p-bandwidth 1: a transfer of 1e+18 time units, over the 1e+12",
    ),
    (
        ["schedules", "compare", "--p2p-latency", "1e12", "--f", "1e-6", "--schedules", "1f1b"],
        "error: --f: 1e-06 is below 2^-40 of a transfer of 1e+12 time units, so the step's sums keep under 13 bits",
    ),
]

TRACE: list[tuple[list[str], str]] = [
    (_trace("tr/empty.json"), "empty.json: malformed JSON at line 1"),
    (_trace("tr/truncated.json"), "truncated.json: malformed JSON"),
    (_trace("tr/nan.json"), "nan.json: traceEvents[0].ts: NaN is not a number"),
    (_trace("tr/inf.json"), "inf.json: traceEvents[0].dur: Infinity is not a number"),
    (_trace("tr/dup.json"), "dup.json: duplicate key 'traceEvents'"),
    (_trace("tr/deep.json"), "deep.json: JSON nested too deeply"),
    (_trace("tr/latin1.json"), "latin1.json: not a UTF-8"),
    (_trace("tr/utf16.json"), "utf16.json: not a UTF-8"),
    (_trace("tr/no_events.json"), "no_events.json: traceEvents: a profiler trace is"),
    (_trace("tr/events_map.json"), "events_map.json: traceEvents: a profiler trace is"),
    (_trace("tr/events_empty.json"), "events_empty.json: traceEvents: no GPU kernel events"),
    (_trace("tr/events_ints.json"), "events_ints.json: traceEvents[0]: an event is a JSON object"),
    (_trace("tr/annotation_no_name.json"), "annotation_no_name.json: traceEvents"),
    (_trace("tr/annotation_int_name.json"), "annotation_int_name.json: traceEvents"),
    (_trace("tr/annotation_str_ts.json"), "annotation_str_ts.json: traceEvents"),
    (_trace("tr/kernel_no_args.json"), "kernel_no_args.json: traceEvents"),
    (_trace("tr/no_annotations.json"), "no_annotations.json: traceEvents: no layer annotations"),
    (_trace("pipe"), "TRACE: pipe is not a regular file"),
    (_trace("tr/missing.json"), "TRACE: no such file: tr/missing.json"),
    (_trace(PROFILE, "--base", "pf/empty.json"), "empty.json: malformed JSON"),
    (_trace(PROFILE, "--base", "pf/nan_peak.json"), "nan_peak.json: peaks.hbm_TBps: NaN"),
    (_trace(PROFILE, "--base", "folder"), "--base: folder is a folder"),
    (_trace(PROFILE, "--device", ""), "--device: no datasheet for ''"),
    (
        _trace("tr/kernel_no_args.json", "--base", "pf/holds_trace.json"),
        "holds_trace.json: --base: already holds the samples of tr/kernel_no_args.json (its sources list kernel_no",
    ),
    (_trace(PROFILE, "-o", "/dev/null"), "--output: /dev/null exists and is not a regular"),
    (_trace(PROFILE, "-o", "existing.txt/p.json"), "--output: existing.txt is a file"),
]

MEASURE: list[tuple[list[str], str]] = [
    (_measure("ms/missing.csv"), "missing.csv: no such file or folder"),
    (_measure("ms_empty"), "ms_empty: no *.csv tables in the folder"),
    (_measure("ms_readme_only"), "ms_readme_only: no *.csv tables"),
    (_measure("ms_bad_date"), "ms_bad_date/README.md: line 1: 2026-13-45 is not a date (the measurement's: YYYY-"),
    (_measure("2026-99-99_run"), "2026-99-99_run: 2026-99-99 is not a date"),
    (_measure("pipe"), "pipe: not a regular file"),
    (_measure("/dev/zero"), "/dev/zero: not a regular file"),
    (_measure("garbage.bin"), "garbage.bin: not a UTF-8"),
    (_measure("ms/empty.csv"), "empty.csv: empty table: no header row"),
    (_measure("ms/blank_header.csv"), "blank_header.csv: empty table"),
    (_measure("ms/header_only.csv"), "header_only.csv: no measurements"),
    (_measure("ms/unknown_col.csv"), "row 1, column colour: unknown"),
    (_measure("ms/dup_col.csv"), "row 1, column bytes_copied: a column"),
    (_measure("ms/two_times.csv"), "two_times.csv: row 1, column"),
    (_measure("ms/no_table.csv"), "no_table.csv: row 1: the columns"),
    (_measure("ms/text_cell.csv"), "row 2, column M: 'sixty-four'"),
    (_measure("ms/nan_cell.csv"), "row 2, column seconds: nan is not"),
    (_measure("ms/nan_dim.csv"), "row 2, column M: nan is not"),
    (_measure("ms/inf_time.csv"), "row 2, column seconds: inf is not allowed"),
    (_measure("ms/inf_dim.csv"), "row 2, column M: inf is not allowed"),
    (_measure("ms/huge_time.csv"), "row 2, column seconds: 1e300 is more than"),
    (_measure("ms/tiny_time.csv"), "row 2, column seconds: 1e-300 is less than a nanosecond"),
    (_measure("ms_mixed", "--sms", "1000"), "--sms: 1000: the H100 datasheet has 132 SMs"),
    (_measure("ms/neg_time.csv"), "row 2, column seconds: -1e-5 is not"),
    (_measure("ms/zero_time.csv"), "row 2, column seconds: 0 is not"),
    (_measure("ms/zero_dim.csv"), "row 2, column M: 0 is not allowed"),
    (_measure("ms/frac_dim.csv"), "row 2, column M: 64.5 must be"),
    (_measure("ms/huge_dim.csv"), "row 2, column M: 1e30 is more than"),
    (_measure("ms/short_row.csv"), "short_row.csv: row 2"),
    (_measure("ms/long_row.csv"), "long_row.csv: row 2: has 9 fields; the header has 8"),
    (_measure("ms/dtype.csv"), "row 2, column dtype: 'int4' is not"),
    (_measure("ms/scaling.csv"), "row 2, column scaling: 'columnwise'"),
    (_measure("ms/family.csv"), "row 2, column family: missing value"),
    (_measure("ms/sms.csv"), "row 2, column sms: must be in 1..132"),
    (_measure("ms/causal.csv"), "row 2, column causal: 'maybe'"),
    (_measure("ms/interference.csv"), "row 2, column compute_sms: 120"),
    (_measure("ms/interference_label.csv"), "column gemm: 'fp4_moe_up_4096' does not start with the GEMM's dtype"),
    (_measure("ms/nul.csv"), "nul.csv: row 2"),
    (_measure("ms/quote.csv"), "quote.csv: row 2"),
    (_measure("ms/huge_field.csv"), "huge_field.csv: row 2: malformed CSV: field larger than field limit"),
    (_measure("ms/latin1.csv"), "latin1.csv: not a UTF-8"),
    (_measure("ms_csv_folder"), "sub.csv: is a folder, not a measurement table file"),
    (_measure("ms_csv_pipe"), "pipe.csv: not a regular file"),
    (_measure("ms_bad_readme"), "README.md: not a UTF-8"),
    (_measure("ms_mixed"), "bad.csv: row 2, column seconds: 'fast'"),
    (["calibrate", "import-measurements", "ms_mixed", "--device", "TPU v5"], "--device: no datasheet for 'TPU v5'"),
    (["calibrate", "import-measurements", "ms_mixed"], "--device: name the GPU"),
    # a GPU the twin has no datasheet for needs every figure; the line names the known ones (a typo's fix)
    (
        ["calibrate", "datasheet", "--name", "A100", "-o", "x.json"],
        "--sms: no datasheet for 'A100' (the twin knows H800, H100, H200, B200, GB200): give --sms, --fp8-tflops",
    ),
    (_measure("ms_mixed", "--sms", "0"), "--sms: must be a whole"),
    (_measure("ms_mixed", "-o", "folder"), "--output: folder is a"),
    (_measure("ms_copied"), "ms_copied/gemm_copy.csv: holds the same bytes as gemm.csv: give each table once"),
    (_measure("ms/pasted_rows.csv"), "pasted_rows.csv: row 4: repeats row 2, time included (the same gemm"),
    (_measure("ms/pasted_header.csv"), "pasted_header.csv: row 3: a second header row: the table is pasted twice"),
    (_measure("ms_across"), "ms_across/b.csv: row 3: repeats row 2 of a.csv, time included"),
    (_measure("ms/fp8_none.csv"), "fp8_none.csv: row 2, column scaling: 'none' is not a scaling of fp8 (blockwise,"),
    (_measure("ms/bf16_blockwise.csv"), "row 2, column scaling: 'blockwise' is not a scaling of bf16 (none)"),
    (_measure("ms_ok", "-o", "ms_ok/new.json"), "--output: ms_ok/new.json is inside the measurement folder ms_ok"),
    (_measure("ms_ok", "-o", "ms_ok/sub/new.json"), "--output: ms_ok/sub/new.json is inside the measurement"),
]

NCCL: list[tuple[list[str], str]] = [
    (_nccl("nccl/alltoall_empty.log"), "alltoall_empty.log: no nccl-tests column header"),
    (_nccl("nccl/alltoall_no_header.log"), "alltoall_no_header.log: no nccl-tests"),
    (_nccl("nccl/alltoall_no_rows.log"), "alltoall_no_rows.log: no result rows"),
    (_nccl("nccl/alltoall_no_ranks.log"), "alltoall_no_ranks.log: --gpus: the log has"),
    (_nccl("nccl/alltoall_short_row.log"), "alltoall_short_row.log: line 11: expected 13 columns"),
    (_nccl("nccl/alltoall_long_row.log"), "alltoall_long_row.log: line 11: expected 13 columns"),
    (_nccl("nccl/alltoall_word_size.log"), "word_size.log: line 11: size 'big' is not a whole number"),
    (_nccl("nccl/alltoall_neg_size.log"), "neg_size.log: line 11: size '-32' is not a whole number"),
    (_nccl("nccl/alltoall_word_count.log"), "word_count.log: line 11: count 'many' is not a whole number"),
    (_nccl("nccl/alltoall_word_time.log"), "word_time.log: line 11: out-of-place time/algbw/busbw are not numbers"),
    (_nccl("nccl/alltoall_nan_time.log"), "nan_time.log: line 11: out-of-place time/algbw/busbw must be finite"),
    (_nccl("nccl/alltoall_inf_time.log"), "inf_time.log: line 11: out-of-place time/algbw/busbw must be finite"),
    (_nccl("nccl/alltoall_nan_busbw.log"), "nan_busbw.log: line 11: out-of-place time/algbw/busbw must be finite"),
    (
        _nccl("nccl/alltoall_huge_time.log"),
        "huge_time.log: line 11: out-of-place time/algbw/busbw must be finite numbers and the time at",
    ),
    (_nccl("nccl/mystery.log"), "mystery.log: cannot tell the collective"),
    (_nccl("garbage.bin"), "garbage.bin: no nccl-tests column header"),
    (_nccl(str(NCCL_LOG), "nccl/missing.log"), "LOGS: no such file: nccl/missing.log"),
    (_nccl(str(NCCL_LOG), "pipe"), "LOGS: pipe is not a regular file"),
    (_nccl("/dev/zero"), "LOGS: /dev/zero is not a regular file"),
    (_nccl(str(NCCL_LOG), "--profile", "pf/nan_peak.json"), "nan_peak.json: peaks"),
    (_nccl(str(NCCL_LOG), "--profile", "pf/string.json"), "string.json: a profile is"),
    (_nccl(str(NCCL_LOG), "--device", "TPU"), "--device: no datasheet for 'TPU'"),
    (_nccl("nccl/alltoall_pasted_row.log"), "pasted_row.log: line 12: repeats the row of line 11"),
    (_nccl("nccl/alltoall_wrong.log"), "line 11: out-of-place #wrong is 17: the collective's results were wrong"),
    (_nccl("nccl/alltoall_ms_units.log"), "alltoall_ms_units.log: line 10: the units row says (ms); nccl-tests prints"),
    (_nccl("nccl/alltoall_float8.log"), "alltoall_float8.log: line 11: type 'float8' is not one nccl-tests prints"),
    (_nccl("nccl/alltoall_count_over.log"), "line 11: count 32 x 4 B (float) is more than the size, 32 B"),
    (_nccl("nccl/alltoall_rank_gap.log"), "alltoall_rank_gap.log: Rank lines: rank(s) 0, 5 are not 0 to 1: rank 1"),
    (_nccl("nccl/alltoall_rank_twice.log"), "alltoall_rank_twice.log: line 7: rank 0 has a second Rank line"),
    (_nccl("nccl/alltoall_ngpus8.log"), "alltoall_ngpus8.log: line 3: nThread 1 x nGpus 8 ranks a process, but 1"),
    (
        _nccl("nccl/alltoall_uneven_hosts.log"),
        "Rank lines: the ranks are split unevenly over the hosts (1 on other, 2 on vm)",
    ),
    (
        _nccl("nccl/alltoall_twice.log"),
        "alltoall_twice.log: line 35: rank 0 has a second Rank line: a log pasted twice",
    ),
    (_nccl(str(NCCL_LOG), str(NCCL_LOG)), "LOGS: " + str(NCCL_LOG) + " is given twice"),
    (_nccl(str(NCCL_LOG), "nccl/alltoall_copy.log"), "LOGS: nccl/alltoall_copy.log holds the same bytes as"),
    (_nccl(str(NCCL_LOG), "--profile", "pf/holds_nccl.json"), "holds_nccl.json: --profile: already holds the samples"),
    (
        _nccl(str(NCCL_LOG), "--profile", PROFILE, "--device", "H100"),
        "--device: names the GPU of a new profile, not used with --profile",
    ),
    (_nccl(str(NCCL_LOG), "-o", "folder"), "--output: folder is a folder"),
    (
        _nccl(str(NCCL_LOG), "nccl/alltoall_one_byte.log"),
        f"alltoall_one_byte.log: line 12: repeats line 12 of {NCCL_LOG}: the same measurement (alltoall, 1 GPUs",
    ),
    (
        _nccl("nccl/alltoall_one_byte.log", "--profile", "pf/h200_rows.json"),
        "alltoall_one_byte.log: line 12: repeats a sample the --profile holds (from nccl-tests alltoall_perf",
    ),
    (
        _nccl(str(NCCL_LOG), "--device", "H100"),
        f"--device: H100, but the Rank lines of {NCCL_LOG} name 'NVIDIA H200': give --device H200 or leave it out",
    ),
    (
        _nccl(str(NCCL_LOG), "--profile", "pf/h100.json"),
        "h100.json: --profile: its device is 'H100', but the Rank lines of",
    ),
    (
        _nccl(str(NCCL_LOG), "nccl/alltoall_h100.log"),
        "LOGS: " + str(NCCL_LOG) + " ran on 'NVIDIA H200', nccl/alltoall_h100.log on 'NVIDIA H100 80GB HBM3'",
    ),
    (
        _nccl("nccl/alltoall_two_gpus.log"),
        "two_gpus.log: Rank lines: rank 0 names 'NVIDIA H200', rank 1 'NVIDIA H100 80GB HBM3': one kind of GPU",
    ),
    (_nccl(), "LOGS: required argument is missing"),
    (
        _nccl("nccl/alltoall_arabic_size.log"),
        "arabic_size.log: line 11: size '\u0663\u0662' is not a whole number: it holds '\u0663' (U+0663), not ASCII",
    ),
    (
        _nccl("nccl/alltoall_sep_time.log"),
        "sep_time.log: line 11: out-of-place time '5_04' is not a number: it has a digit separator '_'",
    ),
    (
        _nccl("nccl/alltoall_wide_time.log"),
        "wide_time.log: line 11: in-place time '\uff10.19' is not a number: it holds '\uff10' (U+FF10), not ASCII",
    ),
    (
        _nccl(str(NCCL_LOG), "--gpus", "8", "--nodes", "1"),
        f"--gpus: 8, but the Rank lines of {NCCL_LOG} show 1 rank(s): give --gpus 1 or leave it out",
    ),
    (
        _nccl(str(NCCL_LOG), "--nodes", "2"),
        f"--nodes: 2, but the Rank lines of {NCCL_LOG} show 1 host(s): give --nodes 1 or leave it out",
    ),
    (
        _nccl("nccl/alltoall_no_ranks.log", "--gpus", "8"),
        "alltoall_no_ranks.log: --nodes: the log has no '# Rank' lines: give --gpus and --nodes",
    ),
]

PREDICT: list[tuple[list[str], str]] = [
    (_profile("pf/empty.json"), "empty.json: malformed JSON at line 1"),
    (_profile("pf/truncated.json"), "truncated.json: malformed JSON"),
    (_profile("pf/object.json"), "object.json: device: required key is missing"),
    (_profile("pf/string.json"), "string.json: a profile is a JSON object, got a string"),
    (_profile("pf/nan_peak.json"), "nan_peak.json: peaks.hbm_TBps: NaN is not"),
    (_profile("pf/inf_efficiency.json"), "inf_efficiency.json: efficiency: Infinity"),
    (_profile("pf/zero_sms.json"), "zero_sms.json: device.sms"),
    (_profile("pf/extra_key.json"), "extra_key.json: colour: unknown key"),
    (_profile("pf/bad_source.json"), "bad_source.json: source"),
    (_profile("pf/bad_sample.json"), "bad_sample.json: samples[0].time_s"),
    (_profile("pf/sample_op.json"), "sample_op.json: samples[0].op"),
    (_profile("pf/sample_params.json"), "sample_params.json: samples[0].params"),
    (_profile("pf/attention_str.json"), "samples[0].params.heads: must be a whole number >= 1, got 'many'"),
    (_profile("pf/attention_huge.json"), "params.seq: must be a whole number >= 1, got a whole number of 401 digits"),
    (_profile("pf/gemm_str_shape.json"), "str_shape.json: samples[0].params.m: must be a whole number >= 1, got 'x'"),
    (_profile("pf/dup.json"), "dup.json: duplicate key 'source'"),
    # sample values the fits cannot take: a traceback from scipy, a KeyError, a warning, or ignored
    (_profile("pf/gemm_zero_m.json"), "gemm_zero_m.json: samples[0].params.m: must be a whole number >= 1, got 0"),
    (_profile("pf/gemm_neg_n.json"), "gemm_neg_n.json: samples[0].params.n: must be a whole number >= 1, got -64"),
    (_profile("pf/gemm_zero_sms.json"), "gemm_zero_sms.json: samples[0].params.sms: must be a whole number >= 1"),
    (_profile("pf/gemm_many_sms.json"), "gemm_many_sms.json: samples[0].params.sms: 999 is more SMs than"),
    (_profile("pf/gemm_dtype.json"), "gemm_dtype.json: samples[0].params.dtype: unknown dtype 'int4'"),
    (_profile("pf/attention_zero_heads.json"), "attention_zero_heads.json: samples[0].params.heads: must be"),
    (_profile("pf/attention_phase.json"), "attention_phase.json: samples[0].params.phase: unknown phase"),
    (_profile("pf/memory_neg_bytes.json"), "memory_neg_bytes.json: samples[0].params.bytes: must be 0 or more"),
    (["calibrate", "show", "pf/gemm_zero_m.json"], "zero_m.json: samples[0].params.m: must be a whole number >= 1"),
    (_profile("pf/attention_no_seq.json"), "attention_no_seq.json: samples[0].params: seq is missing"),
    (_profile("pf/memory_no_bytes.json"), "memory_no_bytes.json: samples[0].params: bytes is missing"),
    (_profile("pf/interference_no_alone.json"), "interference_no_alone.json: samples[0].params: alone_s is missing"),
    (_profile("pf/interference_kernel.json"), "samples[0].params.kernel: 'fft' is not an interference kernel"),
    (_profile("pf/collective_no_gpus.json"), "collective_no_gpus.json: samples[0].params: gpus is missing"),
    (_profile("pf/alltoall_world_text.json"), "samples[0].params.world: must be a whole number >= 1, got 'abc'"),
    (_profile("pf/gemm_no_m.json"), "gemm_no_m.json: samples[0].params: m is missing"),
    (_profile("pf/gemm_no_dtype.json"), "gemm_no_dtype.json: samples[0].params: dtype is missing"),
    (_profile("pf/gemm_scaling.json"), "gemm_scaling.json: samples[0].params.scaling: unknown scaling 'bogus'"),
    (_profile("pf/gemm_bool.json"), "gemm_bool.json: samples[0].params.m: True is not a number"),
    (_profile("pf/memory_kernel_number.json"), "samples[0].params.kernel: must be text, got 5"),
    (_profile("pf/peak_bool.json"), "peak_bool.json: peaks.fp8_dense_TFLOPS: Input should be a valid number"),
    (_profile("pf/peak_text.json"), "peak_text.json: peaks.fp8_dense_TFLOPS: Input should be a valid number"),
    (_profile("pf/clock_negative.json"), "clock_negative.json: device.clock_mhz"),
    (_profile("pf/loso_negative.json"), "loso_negative.json: loso_error.gemm: -3.0 is below 0"),
    (_profile("garbage.bin"), "garbage.bin: not a UTF-8"),
    (_profile("pf/missing.json"), "--profile: no such profile: pf/missing.json"),
    (_predict("--batch", "bt/empty.csv"), "empty.csv: row 1: empty file"),
    (_predict("--batch", "bt/unknown_col.csv"), "row 1: unknown column 'colour'"),
    (_predict("--batch", "bt/missing_col.csv"), "row 1: missing column 'K'"),
    (_predict("--batch", "bt/op.csv"), "op.csv: row 2, column op: 'attention'"),
    (_predict("--batch", "bt/nan.csv"), "nan.csv: row 2, column M: must be"),
    (_predict("--batch", "bt/inf.csv"), "inf.csv: row 2, column N: must be"),
    (_predict("--batch", "bt/blank.csv"), "blank.csv: row 2, column M: missing"),
    (_predict("--batch", "bt/frac.csv"), "frac.csv: row 2, column K: must be"),
    (_predict("--batch", "bt/dtype.csv"), "dtype.csv: row 2, column dtype"),
    (_predict("--batch", "bt/scaling.csv"), "scaling.csv: row 2, column scaling"),
    (_predict("--batch", "bt/sms.csv"), "sms.csv: row 2, column sms: must be"),
    (_predict("--batch", "bt/beside.csv"), "beside.csv: row 2, column beside"),
    (_predict("--batch", "bt/long_row.csv"), "long_row.csv: row 2: has"),
    (_predict("--batch", "bt/nul.csv"), "nul.csv: row 2, column dtype: unknown dtype"),
    (_predict("--batch", "pipe"), "--batch: pipe is not a regular file"),
    (_predict("--batch", "bt/dup_col.csv"), "dup_col.csv: row 1, column M: named twice"),
    (_predict("--batch", "bt/header_only.csv"), "header_only.csv: no rows: a header and nothing to predict"),
    (_predict("--batch", "bt/short_row.csv"), "short_row.csv: row 2: has 4 fields; the header has 5"),
    (_predict("--dtype", "int4"), "--dtype: unknown dtype 'int4'"),
    (_predict("--scaling", "columnwise"), "--scaling: fp8 has no scaling 'columnwise'"),
    (_predict("--op", "attention", "--phase", "sideways"), "--phase: unknown phase 'sideways'"),
    (_predict("--op", "memory", "--bytes", "1e6", "--kernel", "x"), "--kernel"),
    (_predict("--op", "alltoall", "--bytes", "1e6"), "--op: the profile has fewer than 2 alltoall samples"),
    (_predict("--op", ""), "--op: unknown op ''"),
]

TABLE = {
    "sweep": SWEEP,
    "study": STUDY,
    "report": REPORT,
    "compare": COMPARE,
    "import-trace": TRACE,
    "import-measurements": MEASURE,
    "import-nccl-tests": NCCL,
    "predict": PREDICT,
}
XFAIL: dict[str, str] = {}  # the id of a case that cannot be fixed -> why (strict: it must keep failing)


def _cases() -> list[Any]:
    cases = []
    for group, rows in TABLE.items():
        for args, expected in rows:
            case_id = f"{group}: " + " ".join(a.replace(str(REPO) + "/", "") for a in args)
            marks = [pytest.mark.xfail(strict=True, reason=XFAIL[case_id])] if case_id in XFAIL else []
            cases.append(pytest.param(args, expected, id=case_id[:100], marks=marks))
    return cases


@pytest.mark.parametrize("args,expected", _cases())
def test_bad_input_one_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_in_one_line(args, expected, files, capsys)


@pytest.mark.parametrize("args,expected", SCHEDULES, ids=[" ".join(a) for a, _ in SCHEDULES])
def test_schedule_figures_past_the_edge_are_refused(
    args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(A command of the first table, ``tests/unit/test_bad_inputs.py``, with too few cases for a group.)"""
    refused_in_one_line(args, expected, files, capsys)


def test_at_least_150_cases() -> None:
    assert sum(len(rows) for rows in TABLE.values()) >= 150
    assert all(len(rows) >= 10 for rows in TABLE.values())


# ------------------------------------------------------------------ twin validate on the same files
_FILE_CASES = [
    (args, expected) for args, expected in SWEEP + STUDY if len(args) == 2 and args[0] in ("sweep", "report")
]


@pytest.mark.parametrize("args,expected", _FILE_CASES, ids=[" ".join(a)[:100] for a, _ in _FILE_CASES])
def test_validate_refuses_a_bad_plan_file_as_its_command_does(
    args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``twin validate FILE`` on a sweep or co-design file (a mapping with ``grid``, ``points`` or
    ``studies``) refuses it with the very line ``twin sweep FILE`` or ``twin report FILE`` gives. A file
    that is not recognisably one (missing, not a mapping, a base alone) is checked as a scenario: one
    line or an ok, never a traceback."""
    import yaml

    path = Path(args[1])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (UnicodeDecodeError, yaml.YAMLError, OSError, RecursionError):  # deep.yaml nests 500 lists
        raw = None
    with pytest.raises(SystemExit) as ran:
        main(args)
    assert ran.value.code == 2
    _, command_err = capsys.readouterr()
    plan = isinstance(raw, dict) and any(k in raw for k in ("grid", "points", "studies"))
    if plan:
        refused_in_one_line(["validate", args[1]], expected, files, capsys)
        _, _ = capsys.readouterr()
        with pytest.raises(SystemExit):
            main(["validate", args[1]])
        assert capsys.readouterr().err == command_err
        return
    code = 0
    try:
        main(["validate", args[1]])
    except SystemExit as done:
        code = int(done.code or 0)
    printed, err = capsys.readouterr()
    assert "Traceback" not in err
    assert (code, len(err.splitlines())) == (2, 1) if code else "ok" in printed


def test_most_bad_plan_files_are_recognised_by_validate(files: Path) -> None:
    """The equivalence above is not vacuous: all but a handful of file-level cases (missing, a folder,
    not a mapping, a base alone) are recognisably sweep or co-design files."""
    import yaml

    recognised = 0
    for _, name in (args for args, _ in _FILE_CASES):
        path = Path(name)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (UnicodeDecodeError, yaml.YAMLError, OSError, RecursionError):  # deep.yaml nests 500 lists
            continue
        recognised += isinstance(raw, dict) and any(k in raw for k in ("grid", "points", "studies"))
    assert recognised >= 120 and len(_FILE_CASES) - recognised <= 10
