"""Sweeps: expansion and validation of sweep files, derived scenarios, the results store and its
journal, a point that kills its worker, refusals of ``twin sweep`` and ``twin compare``, the Pareto
front. (Sweeps that run training steps: tests/integration/sweep/test_sweep.py.)"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.code_digest import code_digest
from sim.config import load_scenario
from sim.economics import HOURS_PER_YEAR, training_cost
from sim.errors import ScenarioError, TwinError
from sim.sweep.pareto import pareto_front, pareto_front_reference
from sim.sweep.point import FAILED, INFEASIBLE, OK, run_point
from sim.sweep.spec import Sweep, load_sweep
from sim.sweep.store import Store, journal_path
from tests.conftest import SMALL_STEP as SMALL
from tests.conftest import twin, write_sweep

CODE = code_digest()  # rows of this revision of the simulator (another's are run again)

ROOT = Path(__file__).resolve().parents[3]

# ------------------------------------------------------------------------------------ sweep files


def _ok_row(sweep: Sweep, i: int, **more: object) -> dict[str, object]:
    """Point ``i``'s row as this revision computes it from the files it reads now (``more`` replaces keys)."""
    point = sweep.points[i]
    row = {"point": i, "point_id": point.point_id, "status": OK, "error": "", "step_time_s": 1.0, "twin_code": CODE}
    return row | {"twin_inputs": sweep.input_digest(point)} | more


def test_grid_then_points_in_order(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        {"grid": {"comm.sms": [12, 20], "cluster.nic_Gbps": [200, 400]}, "points": [{"comm.coprocessor": True}]},
    )
    sweep = load_sweep(path)
    got = [p.overrides for p in sweep.points]
    assert got == [
        {"comm.sms": 12, "cluster.nic_Gbps": 200},
        {"comm.sms": 12, "cluster.nic_Gbps": 400},
        {"comm.sms": 20, "cluster.nic_Gbps": 200},
        {"comm.sms": 20, "cluster.nic_Gbps": 400},
        {"comm.coprocessor": True},
    ]
    assert [p.index for p in sweep.points] == list(range(5))
    assert sweep.keys == ("comm.sms", "cluster.nic_Gbps", "comm.coprocessor")
    assert len({p.point_id for p in sweep.points}) == 5


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"grid": {"comm.smz": [1]}}, "grid.comm.smz: 1: unknown key"),
        ({"grid": {"comm.sms": [20, -3]}}, "grid.comm.sms: -3:"),
        ({"points": [{}, {"pipeline.pp": "x"}]}, "points[1].pipeline.pp:"),
        ({"points": [{"pipeline.pp.x": 1}]}, "points[0].pipeline.pp.x: 1: pipeline.pp is a value"),
        ({"points": [{"comm.sms": 12}, {"comm.sms": 12}]}, "points[1]: repeats the point"),
        ({"grid": {"comm.sms": []}}, "grid.comm.sms: give a non-empty list"),
        ({"grid": {"comm..sms": [1]}}, "grid.comm..sms: an override key is a dotted scenario key"),
        ({}, "the sweep has no points"),
        ({"gird": {}}, "gird: unknown key; allowed: name, description, base, grid, points"),
        ({"base": "/nonexistent.yaml", "points": [{}]}, "base: /nonexistent.yaml: no such file"),
        ({"base": "/tmp", "points": [{}]}, "base: /tmp: is a folder"),
        ({"points": [{"cluster.topology": "nope.yaml"}]}, "points[0].cluster.topology:"),
        # a key and its section in one point: the section given whole silently won (comm.sms=8 ran 20 SMs)
        ({"grid": {"comm.sms": [8], "comm": [{"sms": 20}]}}, "grid.comm.sms: also set by grid.comm"),
        (
            {"points": [{"pipeline": {"pp": 8}, "pipeline.pp": 16}]},
            "points[0].pipeline.pp: also set by points[0].pipeline",
        ),
        # labels only: two steps alike
        ({"grid": {"name": ["a", "b"]}}, "grid.name: a point's name changes nothing it simulates"),
        ({"points": [{"description": "x"}]}, "points[0].description: a point's description changes nothing"),
        # the same scenario written two ways
        ({"grid": {"comm.sms": [16]}, "points": [{"comm.sms": 16.0}]}, "points[0]: repeats the point grid #0"),
    ],
)
def test_bad_sweeps_name_the_key(tmp_path: Path, body: dict, needle: str) -> None:
    path = write_sweep(tmp_path, body)
    with pytest.raises(ScenarioError) as e:
        load_sweep(path)
    line = str(e.value)
    assert "\n" not in line
    assert needle in line
    assert line.startswith(str(path))


def test_a_point_that_runs_the_base_scenario_under_another_name_is_a_repeat(tmp_path: Path) -> None:
    """Duplicates are found on the scenario a point runs, not its text: a topology given as written and
    as an absolute path, or a section given whole with what the base holds, ran one step twice."""
    topology = (ROOT / "topologies" / "deepseek-v3-mpft.yaml").resolve()
    from sim.config import scenario_data

    base, _ = scenario_data(SMALL)
    relative = os.path.relpath(topology, tmp_path)
    body = {"points": [{"cluster.topology": relative}, {"cluster.topology": str(topology)}]}
    with pytest.raises(ScenarioError, match=r"points\[1\]: repeats the point points\[0\]"):
        load_sweep(write_sweep(tmp_path, body))
    whole = {
        "points": [{"comm.sms": base["comm"]["sms"] + 2}, {"comm": {**base["comm"], "sms": base["comm"]["sms"] + 2}}]
    }
    with pytest.raises(ScenarioError, match=r"points\[1\]: repeats the point points\[0\]"):
        load_sweep(write_sweep(tmp_path, whole))


def test_bad_sweep_from_the_command_line_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [20, "twenty"]}})
    out = tmp_path / "r.parquet"
    r = twin("sweep", str(path), "-o", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and 'grid.comm.sms: "twenty"' in r.stderr
    assert not out.exists() and not journal_path(out).exists()


def test_base_without_training_is_refused(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"base": str(ROOT / "scenarios" / "schedule-comparison.yaml"), "grid": {"seed": [1]}})
    with pytest.raises(ScenarioError, match="has no training or serve section"):
        load_sweep(path)


def test_base_without_training_is_named_whole_however_deep_its_folder(tmp_path: Path) -> None:
    """The refusal names the base as a path (cut only past ``PATH_CHARS``), not as a value cut at 40
    characters: CI's checkout sits deeper than this one, and its line read ``/check/work/main/scenarios/d...``."""
    deep = tmp_path / ("a" * 60) / "comparison.yaml"
    deep.parent.mkdir()
    shutil.copy(ROOT / "scenarios" / "schedule-comparison.yaml", deep)
    path = write_sweep(tmp_path, {"base": str(deep), "grid": {"seed": [1]}})
    with pytest.raises(ScenarioError, match=f"base: {re.escape(str(deep))} has no training or serve section"):
        load_sweep(path)


SERVE_BASE = str(ROOT / "scenarios" / "serve" / "deepseek-v3-h800.yaml")


@pytest.mark.parametrize(
    ("point", "key", "message"),
    [
        # the serve scenario's own checks (not the schema): a pool's attention TP must divide its unit
        ({"serve.decode.attention_tp": 5}, "points[1].serve.decode.attention_tp", "must divide the unit"),
        ({"model.seq_len": 4096}, "points[1].model.seq_len", "not used by a serve scenario"),
        ({"serve.traffic": None}, "points[1].serve.traffic", "give traffic (rate_per_s or trace)"),
        # a file the point names, read as its run reads it
        ({"serve.expert_load": "no-such.csv"}, "points[1].serve.expert_load", "no such file"),
    ],
)
def test_a_serving_point_is_checked_as_its_run_checks_it_before_anything_runs(
    tmp_path: Path, point: dict, key: str, message: str
) -> None:
    """Serving points meet the serve scenario's own checks when the sweep is read (they were
    checked against the schema alone, and failed only when their point ran): one line naming the
    point's key, exit status 2, nothing written."""
    path = write_sweep(tmp_path, {"base": SERVE_BASE, "points": [{"serve.duration_s": 60}, point]})
    with pytest.raises(ScenarioError) as err:
        load_sweep(path)
    assert err.value.key_path == key and message in err.value.message
    out = tmp_path / "r.parquet"
    r = twin("sweep", str(path), "-o", str(out))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert not out.exists() and not journal_path(out).exists()


def test_a_sweep_of_decode_floors_is_refused_when_read(tmp_path: Path) -> None:
    """A serve base without traffic (a decode floor alone) gives a sweep point nothing to simulate:
    refused when the sweep is read, not point by point as infeasible rows."""
    base = str(ROOT / "scenarios" / "serve" / "decode-floor.yaml")
    path = write_sweep(tmp_path, {"base": base, "grid": {"cluster.nic_Gbps": [400, 800]}})
    with pytest.raises(ScenarioError, match=r"a sweep point simulates traffic: give serve\.traffic"):
        load_sweep(path)


@pytest.mark.parametrize("base", [None, SERVE_BASE])
def test_a_bad_topology_a_point_names_is_refused_naming_that_file_and_key(tmp_path: Path, base: str | None) -> None:
    """A point's topology file is read when the sweep is read, as the point's run reads it (training
    and serving points): a bad key inside it is one line naming that file and the key."""
    topo = yaml.safe_load((ROOT / "topologies" / "deepseek-v3-ft2.yaml").read_text())
    (tmp_path / "bad-topo.yaml").write_text(yaml.safe_dump(topo | {"bogus_key": 1}))
    body: dict = {"points": [{"cluster.topology": "bad-topo.yaml"}]} | ({"base": base} if base else {})
    path = write_sweep(tmp_path, body)
    with pytest.raises(ScenarioError) as err:
        load_sweep(path)
    assert err.value.file == str(tmp_path / "bad-topo.yaml") and err.value.key_path == "bogus_key"


def test_path_overrides_resolve_against_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    rel = os.path.relpath(ROOT / "topologies" / "deepseek-v3-ft2.yaml", tmp_path / "sub")
    path = write_sweep(tmp_path / "sub", {"points": [{"cluster.topology": rel}]})
    sweep = load_sweep(path)
    data = sweep.scenario_data(sweep.points[0])
    assert Path(data["cluster"]["topology"]) == (ROOT / "topologies" / "deepseek-v3-ft2.yaml").resolve()
    assert sweep.points[0].overrides["cluster.topology"] == rel  # recorded as written


# ------------------------------------------------------------------------------- derived scenarios


def test_derived_scenario_equals_its_base_with_the_overrides(tmp_path: Path) -> None:
    derived = load_scenario(SMALL)
    base = load_scenario(ROOT / "scenarios" / "deepseek_v3_pretrain.yaml")
    assert derived.name == "small-step"
    assert derived.training is not None and derived.training.gpus == 512
    assert derived.workload.ep == 32
    assert derived.profile_path.resolve() == base.profile_path.resolve()  # resolved against the base's folder
    assert derived.cluster_spec() == base.cluster_spec()


def test_derived_scenario_errors(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text(f"base: {SMALL}\nset: {{comm.sms: -1}}\n")
    with pytest.raises(ScenarioError, match=r"d\.yaml: comm\.sms"):
        load_scenario(bad)
    bad.write_text(f"base: {SMALL}\npipeline: {{pp: 4}}\n")
    with pytest.raises(ScenarioError, match="a derived scenario"):
        load_scenario(bad)
    bad.write_text("base: d.yaml\n")
    with pytest.raises(ScenarioError, match="its own base"):
        load_scenario(bad)


# ---------------------------------------------------------------------------------------- rows


def test_a_point_that_raises_is_recorded_not_dropped() -> None:
    data = yaml.safe_load(SMALL.read_text())
    row = run_point({"name": "x"}, str(SMALL), str(SMALL.parent))  # not a valid scenario: infeasible line
    assert row["status"] == INFEASIBLE and "pipeline" in row["error"]
    row = run_point(data, str(SMALL), "/nonexistent-folder-for-a-bug")  # a derived file handed raw: base key
    assert row["status"] in (INFEASIBLE, FAILED) and row["error"]


def test_a_row_figure_that_overflows_makes_the_point_infeasible_naming_the_input(tmp_path: Path) -> None:
    """A fabric written off over 1e-310 years gave cost_per_T_usd = inf: the sweep wrote it (exit 0), then
    refused its own file on reading it back. The run's figures hold the cost and are checked."""
    sweep = load_sweep(write_sweep(tmp_path, {"points": [{"economics.fabric_life_years": 1e-310}]}))
    row = run_point(sweep.scenario_data(sweep.points[0]), str(sweep.base_path), str(sweep.base_folder))
    assert row["status"] == INFEASIBLE and np.isnan(row["cost_per_T_usd"])
    assert row["error"] == (
        "the results overflow: cost.usd_per_T is inf, from economics.fabric_life_years = 1e-310; "
        "use values nearer to real ones"
    )


def test_override_columns_keep_their_values_whatever_their_size(tmp_path: Path) -> None:
    drawn = {"workload.routing": "random"}  # (a seed of balanced routing is refused: it draws nothing)
    points = [{"seed": 1, **drawn}, {"seed": 10**19, **drawn}, {"cluster.nic_Gbps": 400}, {"cluster.nic_Gbps": 12.5}]
    sweep = load_sweep(write_sweep(tmp_path, {"points": points}))
    assert sweep.override_dtypes["seed"] == "json"  # 10**19 does not fit Int64
    assert sweep.override_dtypes["cluster.nic_Gbps"] == "float64"
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    from sim.sweep.runner import _row

    for p in sweep.points:
        store.add(_row(sweep, p, {"status": INFEASIBLE, "error": "x"}, sweep.input_digest(p)))
    store.write()
    store.release()
    df = pd.read_parquet(out)
    assert list(df["seed"].fillna("-")) == ["1", str(10**19), "-", "-"]
    assert list(df["cluster.nic_Gbps"])[2:] == [400.0, 12.5]


def test_a_row_after_a_cut_journal_line_is_kept(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 16, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    store.add(_ok_row(sweep, 0))
    store.release()
    with open(journal_path(out), "a") as f:
        f.write('{"point": 1, "point_id": "')  # killed in the middle of a line
    again = Store(sweep, out)
    again.add(_ok_row(sweep, 2))
    again.release()
    third = Store(sweep, out)
    assert third.done() == {sweep.points[0].point_id, sweep.points[2].point_id}
    third.release()


def test_journal_rows_survive_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    row = {"point": 0, "point_id": sweep.points[0].point_id, "label": "x", "comm.sms": 12, "status": OK, "error": ""}
    row["step_time_s"] = 1.0
    row["twin_code"] = CODE
    row["twin_inputs"] = sweep.input_digest(sweep.points[0])
    store.add(row)
    store.release()  # as if killed: no Parquet written yet
    with open(journal_path(out), "a") as f:
        f.write('{"point": 1, "point_id": "')  # a line cut short
    again = Store(sweep, out)
    assert again.done() == {sweep.points[0].point_id}
    again.release()


def test_a_corrupt_results_file_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12]}})
    out = tmp_path / "r.parquet"
    out.write_bytes(b"not parquet at all")
    r = twin("sweep", str(path), "-o", str(out))
    assert r.returncode == 2 and "r.parquet: cannot read it as sweep results" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet", "s.yaml"]  # no lock, no journal
    assert out.read_bytes() == b"not parquet at all"


def test_two_sweeps_cannot_write_one_file(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    try:
        with pytest.raises(ScenarioError, match="another sweep is writing"):
            Store(sweep, out)
    finally:
        store.release()


@pytest.mark.parametrize("order", [[13, 8, 12, 16, 20], [8, 12, 13, 16, 20, 24, 28]])
def test_a_point_that_kills_its_worker_is_recorded_and_the_others_run(tmp_path: Path, order: list[int]) -> None:
    from sim.sweep.runner import _local
    from tests.unit.sweep.crashing import crash_on_13

    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": order}}))
    rows = {p.overrides["comm.sms"]: r for p, _, r in _local(sweep, list(sweep.points), 2, fn=crash_on_13)}
    assert sorted(rows) == sorted(order)  # every point once
    assert rows[13]["status"] == FAILED and "died while it ran alone" in rows[13]["error"]
    assert all(r["status"] == OK and r["step_time_s"] == sms for sms, r in rows.items() if sms != 13)


def test_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path, {"grid": {"comm.sms": [12]}})
    out = tmp_path / "r.parquet"
    r = twin("sweep", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.startswith("error: --scheduler: cannot reach")
    assert not out.exists()


# ----------------------------------------------------------------------------------- compare


def test_compare_refuses_a_file_that_is_not_sweep_results(tmp_path: Path) -> None:
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    r = twin("compare", str(bad))
    assert r.returncode == 2 and "not a twin sweep results file" in r.stderr


VALUES = st.one_of(st.integers(0, 6).map(float), st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(VALUES, VALUES), max_size=40),
    st.sampled_from(["min", "max"]),
    st.sampled_from(["min", "max"]),
)
def test_pareto_front_matches_the_pairwise_reference(points: list[tuple[float, float]], bx: str, by: str) -> None:
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    assert list(pareto_front(x, y, bx, by)) == list(pareto_front_reference(x, y, bx, by))


def test_pareto_front_closed_case() -> None:
    x = np.array([1.0, 2.0, 3.0, 2.0, 4.0])
    y = np.array([5.0, 3.0, 1.0, 4.0, 1.0])
    assert list(pareto_front(x, y)) == [0, 1, 2]  # (2,4) is beaten by (2,3); (4,1) by (3,1)


# ---------------------------------------------------------------------------------- economics


def test_cost_per_trillion_tokens_closed_form() -> None:
    c = training_cost(180_000.0, 2048, 9e6, 2048, gpu_hour_usd=2.0, fabric_life_years=4.0)
    assert c.gpu_usd_per_T == 360_000.0
    per_gpu_hour = 9e6 / 2048 / (4 * HOURS_PER_YEAR)
    assert c.fabric_usd_per_T == pytest.approx(180_000 * per_gpu_hour)
    half = training_cost(180_000.0, 1024, 9e6, 2048)
    assert half.fabric_usd == 4.5e6 and half.fabric_usd_per_gpu_hour == pytest.approx(per_gpu_hour)


def test_rows_another_revision_computed_are_run_again(tmp_path: Path) -> None:
    """A results file is a cache of this simulator's rows: a row with another code digest (or none, from
    before the digest was kept) is dropped on reading and counted, so the point runs again."""
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 16, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    for i, code in enumerate((CODE, "0123456789abcdef", None)):
        store.add(_ok_row(sweep, i, error=None, twin_code=code))
    store.write()
    store.release()
    again = Store(sweep, out)
    assert again.done() == {sweep.points[0].point_id} and again.stale == 2
    again.release()


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"p2p.latency_us": 5}, "points[0].p2p.latency_us: 5: not used by a training step"),
        ({"workload.comm_beside_compute": {"dispatch": -2}}, "a slowdown must be >= 1, got -2.0"),
    ],
)
def test_a_point_the_scenario_checks_refuse_is_refused_before_the_sweep_runs(
    tmp_path: Path, point: dict, message: str
) -> None:
    """The scenario's own checks (keys used, the DeepEP overheads) run on every point when the sweep is
    read, as docs/sweeps.md promises; these points used to become infeasible rows of a run."""
    with pytest.raises(ScenarioError) as err:
        load_sweep(write_sweep(tmp_path, {"points": [point]}))
    assert message in str(err.value)


def test_a_restart_keeps_the_old_results_until_new_rows_replace_them(tmp_path: Path) -> None:
    """``--restart`` deleted the results file (and its journal) before the first new point: an
    interrupted restart lost every row, and a Parquet file of the user's that is not a sweep's results
    (refused without ``--restart``) was deleted too. Now the old rows are dropped, not the old file,
    which the first write replaces whole; the other file is refused either way."""
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    store.add(_ok_row(sweep, 0))
    store.write()
    store.release()
    before = out.read_bytes()
    again = Store(sweep, out, restart=True)
    assert again.done() == set() and out.read_bytes() == before  # (interrupted here: the old file stands)
    again.add(_ok_row(sweep, 1))
    again.write()
    again.release()
    assert list(pd.read_parquet(out)["point_id"]) == [sweep.points[1].point_id]
    user = tmp_path / "mine.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(user)
    mine = user.read_bytes()
    with pytest.raises(ScenarioError, match="not a sweep results file"):
        Store(sweep, user, restart=True)
    assert user.read_bytes() == mine


def test_a_restart_stopped_before_its_first_write_never_gives_the_old_rows_back(tmp_path: Path) -> None:
    """The old file stays until a restart's first write; a restart stopped before it (Ctrl-C before the
    first point, a kill after one) left the old rows for the next plain run to count as done, so one
    file held rows of two topologies. The restart's journal now starts with a line that discards them."""
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}}))
    out = tmp_path / "r.parquet"
    store = Store(sweep, out)
    for i in range(2):
        store.add(_ok_row(sweep, i))
    store.write()
    store.release()
    before = out.read_bytes()
    stopped = Store(sweep, out, restart=True)
    stopped.release()  # (stopped before any point ended)
    assert out.read_bytes() == before
    plain = Store(sweep, out)
    assert plain.done() == set()
    plain.add(_ok_row(sweep, 1))
    plain.release()  # (killed after one point: the journal holds it after the restart's line)
    again = Store(sweep, out)
    assert again.done() == {sweep.points[1].point_id}
    again.write()
    again.release()
    assert list(pd.read_parquet(out)["point_id"]) == [sweep.points[1].point_id]
    assert Store(sweep, out).done() == {sweep.points[1].point_id}  # (the journal went with the write)


def test_a_results_name_too_long_for_its_journal_is_refused_up_front(tmp_path: Path) -> None:
    """A valid 250-byte name left no room for ``.journal`` beside it: the sweep ran, then failed writing
    the journal ("File name too long")."""
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"comm.sms": [12]}}))
    with pytest.raises(TwinError, match="too long for the journal beside it"):
        Store(sweep, tmp_path / ("l" * 242 + ".parquet"))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".lock"] == []


def test_a_sweep_of_steps_never_resumes_into_lower_bounds_nor_they_into_steps(tmp_path: Path) -> None:
    """--best's screening rows copied to Y.screening.parquet were resumed by `twin sweep S -o
    Y.screening.parquet` as done, the bounds kept as step times: the store refuses rows of the other kind
    (from the file's metadata or the journal's lines) in one line; --restart discards them."""
    from sim.sweep.screen import screening_sweep

    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"cluster.nic_Gbps": [200, 400]}}))
    bounds = screening_sweep(sweep)
    row = {
        "point": 0,
        "point_id": sweep.points[0].point_id,
        "status": OK,
        "step_time_s": 1.0,
        "twin_code": CODE,
        "twin_inputs": sweep.input_digest(sweep.points[0]),
    }

    def written(kind: object, out: Path, parquet: bool = True) -> Path:
        store = Store(kind, out)  # type: ignore[arg-type]
        store.add(dict(row))
        if parquet:
            store.write()
        store.release()
        return out

    held = "holds lower bounds (the screening rows of twin sweep --best), not steps: resuming would keep the bounds"
    y = written(bounds, tmp_path / "Y.screening.parquet")
    with pytest.raises(ScenarioError, match=f"^{y}: {re.escape(held)}"):
        Store(sweep, y)
    j = written(bounds, tmp_path / "J.screening.parquet", parquet=False)  # killed before its first write
    with pytest.raises(ScenarioError, match=f"^{journal_path(j)}: {re.escape(held)}"):
        Store(sweep, j)
    s = written(sweep, tmp_path / "S.screening.parquet")
    with pytest.raises(ScenarioError, match="holds steps, not the lower bounds --best screens with"):
        Store(bounds, s)
    k = written(sweep, tmp_path / "K.screening.parquet", parquet=False)  # steps killed before their first write
    with pytest.raises(ScenarioError, match=f"^{journal_path(k)}: holds steps, not the lower bounds"):
        Store(bounds, k)
    resumed = Store(bounds, written(bounds, tmp_path / "B.parquet"))  # its own kind resumes
    assert resumed.rows
    resumed.release()
    Store(sweep, y, restart=True).release()  # discarded on request


def test_a_file_of_the_wrong_kind_a_point_names_says_which_point(tmp_path: Path) -> None:
    """A point naming a profile's JSON as its topology was refused naming only that file ("h800.json: name:
    required key is missing"): the line now says which sweep file and point named it."""
    profile = ROOT / "calibrate" / "profiles" / "h800.json"
    path = write_sweep(tmp_path, {"points": [{"comm.sms": 12}, {"cluster.topology": str(profile)}]})
    with pytest.raises(ScenarioError) as err:
        load_sweep(path)
    assert str(err.value) == f"{profile}: name: required key is missing (read for {path}: points[1].cluster.topology)"


def test_every_key_a_schema_lets_be_null_defaults_to_null() -> None:
    """A sweep takes a key given as null for the key left out (sim.sweep.spec.scenario_key: two such points
    are one, refused as a repeat). That holds while every key the scenario and serve schemas let be null
    defaults to null: walked here, section by section."""
    import typing

    from pydantic import BaseModel

    from sim.config import Scenario
    from sim.serve.spec import ServeScenario

    nullable: list[str] = []

    def walk(model: type[BaseModel], where: str, seen: set[type]) -> list[str]:
        wrong: list[str] = []
        if model in seen:
            return wrong
        seen.add(model)
        for name, f in model.model_fields.items():
            args = typing.get_args(f.annotation) or (f.annotation,)
            if type(None) in args:
                nullable.append(f"{where}{f.alias or name}")
                if f.is_required() or f.default is not None:
                    wrong.append(f"{where}{f.alias or name}")
            for arg in args:
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    wrong += walk(arg, f"{where}{f.alias or name}.", seen)
        return wrong

    assert walk(Scenario, "", set()) == [] and walk(ServeScenario, "", set()) == []
    assert {"cluster.nic_Gbps", "serve.traffic"} <= set(nullable)  # (the walk reaches nested sections)
