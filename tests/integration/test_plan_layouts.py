"""``twin plan layouts`` (issue 19): the layouts a planner would try, run as a sweep, ranked.

What must hold: every candidate forms a layout (the arithmetic of :func:`candidates` agrees with the
layout builder: none is refused for a reason the enumeration claims to have ruled out); the ranking
is by step time, each row's figures are the step's own (a point run alone gives the same step time);
the search resumes (a rerun simulates nothing new); bad input is one line with exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.config import load_scenario
from sim.experiments.layouts import candidates, fitting, formed
from sim.sweep.compare import load_results
from tests.conftest import REPO

SCENARIO = REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml"


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["plan", "layouts", *args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_candidates_form_layouts_and_respect_the_model() -> None:
    sc = load_scenario(SCENARIO)
    found = candidates(sc)
    assert found.points
    for p in found.points:
        tp, pp = p["training.tp"], p["pipeline.pp"]
        assert 8 % tp == 0 and sc.model.n_kv_heads % tp == 0 and pp <= sc.model.n_layers
        assert "workload.ep" not in p  # a dense model has no EP
    every = formed(sc)
    unchecked = fitting(sc, None, every)  # no GPU memory to check: every layout that forms
    assert unchecked.points == every.points and unchecked.dropped == every.dropped
    assert len(found.points) + sum(found.dropped.values()) == len(every.points) + sum(every.dropped.values())


def test_the_ranking_is_exact_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The search's top 3 are the top 3 of every layout simulated (its certificate: the 3rd's step time is
    at most the lower bound of every layout it did not simulate, and a step is never below its bound),
    having simulated fewer; a rerun simulates nothing new."""
    every_args = [str(SCENARIO), "--top", "1000", "-o", str(tmp_path / "all"), "-j", "1", "--format", "json"]
    code, out, err = _plan(capsys, *every_args)
    assert code == 0, err
    every = json.loads(out)
    assert every["exact"] and every["simulated"] == every["fitting"] == len(candidates(load_scenario(SCENARIO)).points)
    times = [r["step_time_s"] for r in every["top"]]
    assert times == sorted(times) and len(times) == every["fit"] > 3
    args = [str(SCENARIO), "--top", "3", "-o", str(tmp_path / "s"), "-j", "1", "--format", "json"]
    code, out, err = _plan(capsys, *args)
    assert code == 0, err
    d = json.loads(out)
    assert d["exact"] and d["top"] == every["top"][:3]  # the same rows, figure for figure
    assert d["simulated"] < every["simulated"]  # (5 of 40 on 2026-12-06)
    assert d["top"][-1]["step_time_s"] <= d["next_bound_s"]
    # the scenario's own layout (pipeline: {pp: 4, schedules: [1f1b]}) is searched over, and said so
    assert d["searched_keys"] == ["pipeline.schedules", "pipeline.pp"]
    own, full_own = d["own_layout"], every["own_layout"]
    assert own["layout"] == full_own["layout"] == "TP1 PP4 1f1b" and own["searched"]
    # not among the 3 fastest, so not simulated: its bound is at least the least bound left and at most its
    # step (which the full search simulated, ranked below the 3rd)
    assert not own["simulated"] and full_own["rank"] > 3
    assert d["next_bound_s"] <= own["bound_s"] <= full_own["step_time_s"]
    code, out, _ = _plan(capsys, *args)  # resumed: the sweep's rows are reused, the ranking is the same
    assert code == 0 and json.loads(out)["top"] == d["top"] and json.loads(out)["simulated"] == d["simulated"]
    best = d["top"][0]  # a row is the step itself
    assert best["tokens_per_s_per_gpu"] == pytest.approx(
        load_scenario(SCENARIO).training.global_batch * 8192 / best["step_time_s"] / 64  # type: ignore[union-attr, operator]
    )
    # the table says what was refused (layouts refused before simulating too) and why the rest need not run
    assert d["refused"]
    code, table, _ = _plan(capsys, *args[:-2])
    assert code == 0 and "refused: " in table and "exact: " in table and "cannot be faster than" in table
    # every refusal is counted in the line: the 5 commonest reasons, then how many more (it listed 5 reasons
    # under "416 refused, below" and left the rest out without a word)
    line = next(x for x in table.splitlines() if x.startswith("refused: "))
    listed = [int(part.split(" x ", 1)[0]) for part in line.removeprefix("refused: ").split("; ") if " x " in part]
    more = int(line.split("; ")[-1].split(" more for ")[0]) if " more for " in line else 0
    assert sum(listed) + more == sum(d["refused"].values()) and len(listed) == min(5, len(d["refused"]))
    # a search with another --recompute into the same folder: the other layouts' rows are dropped, not a
    # refusal advising --restart (which this command does not have)
    code, out, err = _plan(capsys, *args, "--recompute", "full")
    assert code == 0, err
    assert all("recompute full" in r["layout"] for r in json.loads(out)["top"])


def test_a_limit_stops_short_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--limit 2 with --top 3 on two workers: two steps simulated, the two most promising (the least
    bounds: a pool that finishes them in any order is handed no more), and the ranking marked not
    exact, in the JSON and in the table; a rerun with a smaller limit keeps the rows it has and says
    how many."""
    args = [str(SCENARIO), "--top", "3", "--limit", "2", "-o", str(tmp_path / "s"), "-j", "2"]
    code, out, err = _plan(capsys, *args, "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert d["simulated"] == 2 and not d["exact"] and len(d["top"]) == 2
    bounds = pd.read_parquet(Path(d["results"]).with_name("layouts.screening.parquet"))  # (compare refuses bounds)
    ran, _ = load_results(Path(d["results"]))
    least = set(bounds.sort_values(["step_time_s", "point"], kind="stable")["point_id"][:2])
    assert set(ran["point_id"]) == least
    assert d["next_bound_s"] == sorted(bounds["step_time_s"])[2]
    code, table, _ = _plan(capsys, *args)
    assert code == 0 and "not certain: 2 of 40 steps simulated (--limit 2, the least bounds" in table
    assert "raise --limit" in table
    code, table, _ = _plan(capsys, *[("1" if a == "2" and args[i - 1] == "--limit" else a) for i, a in enumerate(args)])
    assert code == 0 and "not certain: 2 of 40 steps simulated (--limit 1, the least bounds" in table


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _plan(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2 and err.count("\n") == 1 and "missing.yaml" in err
    code, _, err = _plan(capsys, str(SCENARIO), "--top", "0")
    assert code == 2 and "--top" in err


def test_recomputation_is_searched_where_asked(capsys: pytest.CaptureFixture[str]) -> None:
    from sim.experiments.layouts import layout_label

    sc = load_scenario(SCENARIO)
    plain = formed(sc)  # (the enumeration, in product order; candidates() takes them in turn)
    both = formed(sc, recompute=("selective", "full"))
    assert len(both.points) == 2 * len(plain.points)  # every layout under each mode
    assert [p["training.recompute"] for p in both.points[:2]] == ["selective", "full"]
    assert {k: v for k, v in both.points[1].items() if k != "training.recompute"} == plain.points[0]
    assert layout_label(both.points[1]).endswith("recompute full")
    assert "recompute" not in layout_label(both.points[0])
    code, _, err = _plan(capsys, str(SCENARIO), "--recompute", "most")
    assert code == 2 and err.count("\n") == 1 and "--recompute: unknown recomputation 'most'" in err
    code, _, err = _plan(capsys, str(SCENARIO), "--recompute", "none,none")  # was run as one
    assert code == 2 and "--recompute: a recomputation is listed twice" in err


def test_a_folder_of_user_files_is_refused_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o into a folder twin did not write: refused in one line, the user's base.yaml not overwritten."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "base.yaml").write_text("my own notes\n")
    code, _, err = _plan(capsys, str(SCENARIO), "--limit", "1", "-j", "1", "-o", str(folder), "-q")
    assert code == 2 and err.count("\n") == 1 and "--output" in err and "did not write" in err
    assert (folder / "base.yaml").read_text() == "my own notes\n"
    assert sorted(p.name for p in folder.iterdir()) == ["base.yaml"]


def test_the_search_lists_only_layouts_that_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario with training.check_memory: false (the small step's): the search still checks memory (it
    listed 380, 612 and 1238 GiB layouts on 80 GiB H800s as fitting); the counts printed are the
    results' rows, and every combination is counted once: fitting, or refused with its reason. The small
    step on 256 GPUs (EP16): 86 layouts fit, each bounded before the 3 are simulated (the small step's
    own 183 took 30 s)."""
    small = tmp_path / "small-256.yaml"
    small.write_text(
        yaml.safe_dump(
            {
                "base": str(REPO / "tests" / "data" / "sweep" / "small-step.yaml"),
                "name": "small-256",
                "set": {"training.gpus": 256, "workload.ep": 16},
            }
        )
    )
    sc = load_scenario(small)
    assert sc.training is not None and not sc.training.check_memory
    every = formed(sc)
    total = len(every.points) + sum(every.dropped.values())
    args = [str(small), "--limit", "3", "--top", "10", "-o", str(tmp_path / "s"), "-j", "1", "-q"]
    code, out, err = _plan(capsys, *args, "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    frame, _ = load_results(Path(d["results"]))
    assert d["simulated"] == len(frame) == 3 and d["fit"] == int((frame["status"] == "ok").sum()) == 3
    assert len(d["top"]) == d["fit"] and all(r["memory_peak_GiB"] <= 80.0 for r in d["top"])
    assert (frame["memory_peak_GiB"] <= 80.0).all()
    assert "training.check_memory" in d["searched_keys"]  # the scenario's false is not taken, and said so
    assert d["refused"]["more memory per GPU than it has"] > 0  # dropped before simulating, counted
    assert d["fitting"] + sum(d["refused"].values()) == total  # nothing refused when simulated
    code, table, _ = _plan(capsys, *args)  # resumed: the same counts in the table
    assert code == 0 and f"{d['fitting']} layouts fit the GPU's memory ({total - d['fitting']} refused" in table
    assert "training.check_memory" in table


def test_a_search_where_nothing_fits_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every layout over memory (DeepSeek-V3 on 16 GPUs): one line naming memory, nothing simulated (it
    said no layout formed pipeline ranks of whole nodes)."""
    small = tmp_path / "small.yaml"
    base = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
    small.write_text(f"base: {base}\nset:\n  training.gpus: 16\n  training.global_batch: 64\n")
    code, _, err = _plan(capsys, str(small), "--limit", "1", "-j", "1", "-q", "-o", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1, err
    assert "training.gpus: the 36 layouts of these GPUs and batch that form all need more memory per GPU" in err
    assert "80 GiB" in err and not (tmp_path / "o").exists()


def test_a_gpu_without_a_datasheet_is_refused_before_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile of a GPU the twin has no datasheet for (no HBM size): every step refuses it, so the
    search does too, at once and in the step's words (it bounded every layout, each refused, then ran
    them as unbounded until an error about the next bound's infinity hid the reason)."""
    profile = json.loads((REPO / "calibrate" / "profiles" / "h100-sxm-measured.json").read_text())
    profile["device"]["name"] = "NVIDIA A100-SXM4-80GB"
    (tmp_path / "p.json").write_text(json.dumps(profile))
    (tmp_path / "s.yaml").write_text(f"base: {SCENARIO}\nset:\n  profile: p.json\n")
    code, _, err = _plan(capsys, str(tmp_path / "s.yaml"), "--limit", "2", "-j", "1", "-o", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1
    assert "p.json: device.name: no datasheet for 'NVIDIA A100-SXM4-80GB'" in err
    assert not (tmp_path / "o").exists()
