"""A sweep's rows are run again where the files a point reads hold something else than when the row was
computed: a point's id is its overrides as written, so ``cluster.topology: topo.yaml`` in two folders (or
a topology edited between runs) kept its id, and a resumed sweep reused the other fabric's rows without
a word (``Sweep.input_digest``, each row's ``twin_inputs``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from sim.code_digest import code_digest
from sim.model.catalog import MODELS_DIR
from sim.sweep.point import OK
from sim.sweep.spec import Point, load_sweep
from sim.sweep.store import Store
from tests.conftest import REPO, write_sweep

MPFT = REPO / "topologies" / "deepseek-v3-mpft.yaml"
FT2 = REPO / "topologies" / "deepseek-v3-ft2.yaml"


def _sweep_in(folder: Path, topology: Path) -> Path:
    folder.mkdir()
    shutil.copy(topology, folder / "topo.yaml")
    return write_sweep(folder, {"points": [{"cluster.topology": "topo.yaml"}]}, "sw.yaml")


def _row(point: Point) -> dict[str, object]:
    return {"point": point.index, "point_id": point.point_id, "status": OK, "error": "", "step_time_s": 1.0}


def test_the_same_relative_file_in_another_folder_is_run_again(tmp_path: Path) -> None:
    a, b = load_sweep(_sweep_in(tmp_path / "a", MPFT)), load_sweep(_sweep_in(tmp_path / "b", FT2))
    assert a.points[0].point_id == b.points[0].point_id  # (the same text: the same id)
    assert a.input_digest(a.points[0]) != b.input_digest(b.points[0])  # (other bytes: another digest)
    out = tmp_path / "r.parquet"
    store = Store(a, out)
    store.add(_row(a.points[0]) | {"twin_code": code_digest(), "twin_inputs": a.input_digest(a.points[0])})
    store.write()
    store.release()
    again = Store(a, out)  # the same files: kept
    assert again.done() == {a.points[0].point_id} and again.stale == 0
    again.release()
    other = Store(b, out)  # the other folder's fabric: run again, not taken
    assert other.done() == set() and other.stale == 1
    other.release()


def test_a_file_edited_between_runs_is_run_again_and_one_moved_unchanged_is_not(tmp_path: Path) -> None:
    sweep = load_sweep(_sweep_in(tmp_path / "a", MPFT))
    before = sweep.input_digest(sweep.points[0])
    topo = tmp_path / "a" / "topo.yaml"
    data = yaml.safe_load(topo.read_text())
    data["description"] = "edited"
    topo.write_text(yaml.safe_dump(data))
    assert sweep.input_digest(sweep.points[0]) != before  # (edited in place: another digest)
    topo.write_text(MPFT.read_text())
    moved = load_sweep(_sweep_in(tmp_path / "c", MPFT))
    assert moved.input_digest(moved.points[0]) == sweep.input_digest(sweep.points[0])  # the same bytes elsewhere


def test_a_points_model_config_is_the_file_beside_the_sweep(tmp_path: Path) -> None:
    """A point's ``model.config: m.json``: the sweep's check read the file beside the sweep file, the run
    the one beside the base (another file, or none: an infeasible point), and the digest followed the run.
    All three read the one beside the sweep file now; a shipped model's name stays a name."""
    config = REPO / "models" / "meta-llama__Llama-3.1-8B.config.json"
    shutil.copy(config, tmp_path / "m.json")
    base = REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"
    path = write_sweep(tmp_path, {"base": str(base), "points": [{"model.config": "m.json"}]}, "sw.yaml")
    sweep = load_sweep(path)
    data = sweep.scenario_data(sweep.points[0])
    assert data["model"]["config"] == str((tmp_path / "m.json").resolve())
    before = sweep.input_digest(sweep.points[0])
    (tmp_path / "m.json").write_text(config.read_text().replace("{", '{"_comment": "edited",', 1))
    assert sweep.input_digest(sweep.points[0]) != before


def test_the_model_catalog_is_part_of_the_twins_digest(tmp_path: Path) -> None:
    """A point's ``model.config: llama-3.1-8b`` reads a shipped file (models/*.json) by the twin's own name:
    the catalog is in ``twin_code`` (sim/code_digest.py), so a catalog edited between two runs runs the rows
    again, as a change to the code does. Checked on a copy of the package and catalog: the digest of the
    same files, and another when one catalog file changes."""
    from sim.code_digest import CATALOG, PACKAGE, code_digest, digest_of

    assert CATALOG == MODELS_DIR  # the folder the catalog reads

    def groups(pkg: Path, cat: Path) -> list[tuple[Path, list[Path]]]:
        return [(pkg, sorted(pkg.rglob("*.py"))), (cat, sorted(cat.glob("*.json")))]

    assert digest_of(groups(PACKAGE, CATALOG)) == code_digest()
    copy = tmp_path / "checkout"
    shutil.copytree(PACKAGE, copy / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CATALOG, copy / "models")
    assert digest_of(groups(copy / "sim", copy / "models")) == code_digest()  # paths relative to the checkout
    edited = copy / "models" / "meta-llama__Llama-3.1-8B.config.json"
    edited.write_text(edited.read_text().replace('"num_hidden_layers": 32', '"num_hidden_layers": 16'))
    assert '"num_hidden_layers": 16' in edited.read_text()
    assert digest_of(groups(copy / "sim", copy / "models")) != code_digest()


def test_a_points_expert_load_file_is_beside_the_sweep(tmp_path: Path) -> None:
    """``serve.expert_load`` names a CSV file unless it is ``balanced`` or ``skewed``: a point's file is
    resolved against the sweep file, as every other path a point gives (it was read against the base
    scenario's folder: refused as "no such file" though it lay beside the sweep, or another file
    there taken). The names stay names; the digest sees the file's contents."""
    from sim.overrides import resolve_paths

    assert resolve_paths({"serve.expert_load": "skewed"}, tmp_path) == {"serve.expert_load": "skewed"}
    assert resolve_paths({"serve": {"expert_load": "l.csv"}}, tmp_path) == {
        "serve": {"expert_load": str((tmp_path / "l.csv").resolve())}
    }
    experts = 256  # DeepSeek-V3's routed experts
    (tmp_path / "load.csv").write_text("expert,load\n" + "".join(f"{e},{1 + e % 7}\n" for e in range(experts)))
    base = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
    path = write_sweep(
        tmp_path,
        {"base": str(base), "points": [{"serve.duration_s": 60, "serve.expert_load": "load.csv"}]},
    )
    assert not (base.parent / "load.csv").exists()  # (so the base's folder cannot serve it)
    sweep = load_sweep(path)  # checked as its run reads it: the file beside the sweep
    (point,) = sweep.points
    assert sweep.scenario_data(point)["serve"]["expert_load"] == str((tmp_path / "load.csv").resolve())
    before = sweep.input_digest(point)
    (tmp_path / "load.csv").write_text("expert,load\n" + "".join(f"{e},1\n" for e in range(experts)))
    assert sweep.input_digest(point) != before  # an edited load runs the point again
