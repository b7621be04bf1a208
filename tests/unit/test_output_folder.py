"""A folder that several commands write into (sim.outputs.owned_outputs): each command replaces only
its own files, a folder twin did not write is refused untouched, and two commands finishing at once
leave one complete result each, never a mix."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.outputs import MARKER, owned_outputs
from tests.conftest import REPO


def _write(folder: Path, owner: str, files: dict[str, str]) -> None:
    with owned_outputs(folder, owner) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def _visible(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_each_command_replaces_only_its_own_files(tmp_path: Path) -> None:
    out = tmp_path / "out" / "step"
    _write(out, "run", {"summary.md": "run 1", "gantt.png": "g", "old-only.txt": "x"})
    _write(out, "report", {"report.md": "report 1", "figures/a.png": "a", "figures/b.png": "b"})
    _write(out, "run", {"summary.md": "run 2", "gantt.png": "g2"})  # no longer writes old-only.txt
    assert _visible(out) == {"summary.md", "gantt.png", "report.md", "figures/a.png", "figures/b.png"}
    assert (out / "summary.md").read_text() == "run 2" and (out / "report.md").read_text() == "report 1"
    _write(out, "report", {"report.md": "report 2", "figures/a.png": "a2"})  # figures/ replaced whole
    assert _visible(out) == {"summary.md", "gantt.png", "report.md", "figures/a.png"}
    assert [p.name for p in out.parent.iterdir()] == ["step"]  # no temporary left beside it


def test_a_users_file_inside_a_folder_twin_writes_stays(tmp_path: Path) -> None:
    """A report's ``figures/`` is replaced with each run; a file the user put there was deleted with it.
    Twin's own files of the run before go (``b.png``), the user's stay (in subfolders too)."""
    out = tmp_path / "out" / "step"
    _write(out, "report", {"report.md": "1", "figures/a.png": "a", "figures/b.png": "b", "figures/x/c.png": "c"})
    (out / "figures" / "mine.png").write_text("mine")
    (out / "figures" / "x" / "notes.txt").write_text("notes")
    (out / "figures" / "mine").mkdir()
    (out / "figures" / "mine" / "deep.txt").write_text("deep")
    _write(out, "report", {"report.md": "2", "figures/a.png": "a2"})
    assert _visible(out) == {
        "report.md",
        "figures/a.png",
        "figures/mine.png",
        "figures/x/notes.txt",
        "figures/mine/deep.txt",
    }
    assert (out / "figures" / "a.png").read_text() == "a2" and (out / "figures" / "mine.png").read_text() == "mine"
    _write(out, "report", {"report.md": "3"})  # no figures now: twin's go, the user's stay
    assert _visible(out) == {"report.md", "figures/mine.png", "figures/x/notes.txt", "figures/mine/deep.txt"}
    _write(out, "report", {"report.md": "4", "figures/a.png": "a4"})
    (out / "figures" / "mine.png").unlink()
    (out / "figures" / "x" / "notes.txt").unlink()
    (out / "figures" / "mine" / "deep.txt").unlink()
    _write(out, "report", {"report.md": "5"})  # a folder left with only twin's files goes whole
    assert _visible(out) == {"report.md"} and not (out / "figures").exists()


def test_a_command_never_replaces_a_file_another_wrote(tmp_path: Path) -> None:
    """``twin serve`` then ``twin run`` of a step named alike into one folder: the run's summary.json and
    trace.json replaced the serve's without a word (and a run plan's report.md a report's). Refused now,
    nothing replaced; the command's own files and the other's names it does not share still go."""
    out = tmp_path / "out" / "sv0"
    _write(out, "serve", {"summary.json": "serve", "trace.json": "serve", "report.html": "serve"})
    with pytest.raises(ScenarioError, match=r"holds twin serve's summary\.json, trace\.json; give another folder"):
        _write(out, "run", {"summary.json": "run", "trace.json": "run", "gantt.png": "run"})
    assert _visible(out) == {"summary.json", "trace.json", "report.html"}
    assert (out / "summary.json").read_text() == "serve" and [p.name for p in out.parent.iterdir()] == ["sv0"]
    _write(out, "serve", {"summary.json": "serve 2"})  # its own: replaced, the rest of its files removed
    assert _visible(out) == {"summary.json"} and (out / "summary.json").read_text() == "serve 2"
    plan = tmp_path / "out" / "r1"
    _write(plan, "plan-run", {"report.md": "plan", "phases.parquet": "p"})
    with pytest.raises(ScenarioError, match=r"r1 holds twin plan run's report\.md; give another folder"):
        _write(plan, "report", {"report.md": "report", "figures/a.png": "a"})
    assert _visible(plan) == {"report.md", "phases.parquet"} and (plan / "report.md").read_text() == "plan"


def test_a_folder_an_older_marker_lists_whole_is_twins_whole(tmp_path: Path) -> None:
    """A marker written before it listed folders' files names ``figures`` alone: every file in it is
    twin's (kept for ever as the user's, it was not); a name listed for a file that is gone takes nothing."""
    import json

    out = tmp_path / "out" / "step"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_text("old")
    (out / "report.md").write_text("r")
    (out / MARKER).write_text(json.dumps({"twin_version": "0", "files": {"report": ["figures", "report.md"]}}))
    _write(out, "report", {"report.md": "2", "figures/a.png": "a"})
    assert _visible(out) == {"report.md", "figures/a.png"}
    _write(out, "report", {"report.md": "3"})  # no figures now: the old folder goes whole, as before
    assert _visible(out) == {"report.md"}
    gone = tmp_path / "out" / "gone"
    gone.mkdir()
    (gone / MARKER).write_text(json.dumps({"twin_version": "0", "files": {"serve": ["summary.json"]}}))
    _write(gone, "run", {"summary.json": "run"})  # serve's summary.json is no longer there: nothing taken
    assert (gone / "summary.json").read_text() == "run"


def test_a_failure_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "step"
    _write(out, "run", {"summary.md": "kept"})
    with pytest.raises(RuntimeError), owned_outputs(out, "run") as tmp:
        (tmp / "summary.md").write_text("half")
        raise RuntimeError("interrupted")
    assert _visible(out) == {"summary.md"} and (out / "summary.md").read_text() == "kept"
    with pytest.raises(RuntimeError), owned_outputs(tmp_path / "new", "run"):
        raise RuntimeError("interrupted")
    assert not (tmp_path / "new").exists()
    # a first run into a new -o DIR (its result goes to DIR/<name>/) left an empty DIR, and its parents
    with pytest.raises(RuntimeError), owned_outputs(tmp_path / "a" / "b" / "name", "run"):
        raise RuntimeError("the disk is full")
    assert not (tmp_path / "a").exists()
    import sim.outputs as outputs  # a failure in the commit itself (the disk full at the first marker)

    real = outputs._write_manifest

    def full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    outputs._write_manifest = full  # type: ignore[assignment]
    try:
        with pytest.raises(OSError), owned_outputs(tmp_path / "c" / "d" / "name", "run"):
            pass
    finally:
        outputs._write_manifest = real
    assert not (tmp_path / "c").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there stays, empty or not
    with pytest.raises(RuntimeError), owned_outputs(tmp_path / "kept" / "name", "run"):
        raise RuntimeError("the disk is full")
    assert (tmp_path / "kept").is_dir()


@pytest.mark.parametrize("name", ["notes.txt", "sub"])
def test_a_folder_twin_did_not_write_is_refused_and_untouched(tmp_path: Path, name: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("the user's") if name.endswith(".txt") else (out / name).mkdir()
    with pytest.raises(ScenarioError) as info, owned_outputs(out, "run"):
        pytest.fail("the work must not start")
    assert "--output" in str(info.value) and "did not write" in str(info.value)
    assert [p.name for p in out.iterdir()] == [name] and not (out / MARKER).exists()


def _racer(folder: str, tag: str, start: float) -> None:
    time.sleep(max(0.0, start - time.time()))
    with owned_outputs(Path(folder), "run") as tmp:
        for i in range(40):
            (tmp / f"f{i}.txt").write_text(tag)
            time.sleep(0.001)


def test_two_runs_into_one_folder_at_once_leave_one_complete_result(tmp_path: Path) -> None:
    out = tmp_path / "step"
    start = time.time() + 0.5
    procs = [mp.get_context("fork").Process(target=_racer, args=(str(out), tag, start)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    tags = {(out / f"f{i}.txt").read_text() for i in range(40)}
    assert len(tags) == 1 and _visible(out) == {f"f{i}.txt" for i in range(40)}


def test_a_full_disk_while_claiming_a_folder_is_one_line_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker's temporary was written with no clean-up: on a full disk the error named no file
    ("No space left on device") and ``.clustertwin.json.PID.tmp`` stayed for good."""
    from sim.errors import TwinError
    from sim.outputs import claim_output_folder

    real = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.startswith(MARKER):
            real(self, "{", encoding="utf-8")  # part of it written, then the disk is full
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    folder = tmp_path / "x"
    with pytest.raises(TwinError, match=rf"{MARKER}: could not write it \(No space left on device\)"):
        claim_output_folder(folder)
    assert list(folder.iterdir()) == []


def test_a_long_valid_name_is_written(tmp_path: Path) -> None:
    """A temporary's name adds a dot, the PID and 8 characters to its file's: a valid 240-character
    output name failed ("File name too long", naming the temporary)."""
    from sim.outputs import atomic_write_text

    for name in ("l" * 240 + ".json", "é" * 118 + ".json"):  # (the second: 241 bytes in 123 characters)
        path = tmp_path / name
        atomic_write_text(path, "{}")
        assert path.read_text() == "{}" and path.name in [p.name for p in tmp_path.iterdir()]
    assert len(list(tmp_path.iterdir())) == 2  # no temporary left


def test_a_run_into_a_folder_of_another_commands_summary_is_refused_before_it_simulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``twin run -o DIR`` where ``DIR/<name>`` holds ``twin serve``'s summary.json: refused in one line
    before the step is simulated (the refusal came after the work, when the files were put in place: a
    default step's half-minute lost), nothing written."""
    from sim.cli import main
    from sim.outputs import check_output_folder

    step = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
    name = load_scenario(step).name
    out = tmp_path / "out" / name
    _write(out, "serve", {"summary.json": "serve"})
    with pytest.raises(ScenarioError, match=r"holds twin serve's summary\.json; give another folder"):
        check_output_folder(out, owner="run", writes=("summary.json", "summary.md"))
    check_output_folder(out, owner="serve", writes=("summary.json",))  # its own: fine

    def not_simulated(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before the folder was checked")

    monkeypatch.setattr("sim.run.simulate_training", not_simulated)
    with pytest.raises(SystemExit) as info:
        main(["run", str(step), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "holds twin serve's summary.json" in err
    assert _visible(out) == {"summary.json"} and (out / "summary.json").read_text() == "serve"


def test_files_a_command_keeps_in_place_are_its_own_or_refused(tmp_path: Path) -> None:
    """claim_output_folder(owner, keeps): a kept name that the user or another command wrote is refused
    before any work and left as it was (twin plan layouts read another sweep's layouts.parquet as its
    cache and dropped its rows, and wrote over the user's base.yaml); the owner's own are taken again,
    and a result it later puts in place under the same name stays its own."""
    from sim.outputs import KEPT, claim_output_folder

    out = tmp_path / "step"
    _write(out, "report", {"report.md": "r"})  # a twin folder (its marker)
    (out / "base.yaml").write_text("my notes")
    with pytest.raises(
        ScenarioError, match=re.escape("holds base.yaml, which twin did not write; give another folder")
    ):
        claim_output_folder(out, owner="plan-layouts", keeps=("base.yaml", "layouts.parquet"))
    assert (out / "base.yaml").read_text() == "my notes"
    (out / "base.yaml").unlink()
    with pytest.raises(ScenarioError, match=re.escape("holds twin report's report.md; give another folder")):
        claim_output_folder(out, owner="plan-run", keeps=("report.md",))
    claim_output_folder(out, owner="plan-layouts", keeps=("base.yaml", "layouts.parquet"))
    (out / "base.yaml").write_text("kept by the search")
    claim_output_folder(out, owner="plan-layouts", keeps=("base.yaml", "layouts.parquet"))  # its own: taken
    import json

    files = json.loads((out / MARKER).read_text())["files"]
    assert files["plan-layouts" + KEPT] == ["base.yaml", "layouts.parquet"] and files["report"] == ["report.md"]
    with pytest.raises(ScenarioError, match=re.escape("holds twin plan layouts's base.yaml")):  # (as another's result)
        _write(out, "run", {"base.yaml": "a run's"})
    # a command that also puts a kept file in place as a result (twin plan run's steps.parquet)
    claim_output_folder(out, owner="plan-run", keeps=("steps.parquet",))
    (out / "steps.parquet").write_text("rows")
    _write(out, "plan-run", {"steps.parquet": "rows", "report.md2": "x"})
    claim_output_folder(out, owner="plan-run", keeps=("steps.parquet",))  # still its own
    _write(out, "plan-run", {"report.md2": "y"})  # a result without it: the kept file stays
    assert (out / "steps.parquet").exists() and (out / "base.yaml").read_text() == "kept by the search"
    _write(out, "plan-run", {"steps.parquet": "rows", "report.md2": "z"})  # with it again, then without
    _write(out, "plan-run", {"report.md2": "w"})  # (the kept entry was dropped: this removed the cache)
    assert (out / "steps.parquet").exists()
    assert json.loads((out / MARKER).read_text())["files"]["plan-run" + KEPT] == ["steps.parquet"]


def test_plan_layouts_refuses_a_folder_holding_another_sweeps_results(tmp_path: Path) -> None:
    from tests.conftest import SMALL_STEP, twin, write_sweep

    out = tmp_path / "T"
    assert twin("report", str(SMALL_STEP), "-o", str(out), "-q").returncode == 0
    folder = out / load_scenario(SMALL_STEP).name
    sweep = write_sweep(tmp_path, {"grid": {"comm.sms": [12, 20]}})
    assert twin("sweep", str(sweep), "-o", str(folder / "layouts.parquet"), "-q").returncode == 0
    before = (folder / "layouts.parquet").read_bytes()
    r = twin("plan", "layouts", str(SMALL_STEP), "-o", str(folder), "-q", "--limit", "1", "--top", "1")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: --output: {folder} holds layouts.parquet, which twin did not write; give another folder, "
        "or move it away"
    ]
    assert (folder / "layouts.parquet").read_bytes() == before and not (folder / "base.yaml").exists()


def test_a_link_where_twin_writes_a_folder_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A report folder's ``figures`` made a link to another folder: renaming the new figures onto the
    link failed after all the work, as ``.NAME.report.PID.XXXXXXXX/figures: Not a directory`` (a
    temporary's path, no flag). Refused now naming the flag and the link, before the work where the
    command knows it writes that folder, and at the latest before anything is replaced; twin never
    writes through the link, which stays, its target untouched."""
    from sim.outputs import check_output_folder

    out = tmp_path / "out" / "step"
    _write(out, "report", {"report.md": "1", "figures/a.png": "a"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    shutil.rmtree(out / "figures")
    (out / "figures").symlink_to(other)
    refusal = re.escape(
        f"--output: {out}/figures is a link (to {other}); twin does not write through links: remove it or give "
        "another folder"
    )
    with pytest.raises(ScenarioError, match=refusal):  # figures/ is in the report's files of the marker
        check_output_folder(out, owner="report", writes=("report.html", "report.md"))
    (out / "figures").unlink()
    (out / "figures").mkdir()
    with pytest.raises(ScenarioError, match=refusal), owned_outputs(out, "report") as tmp:
        (tmp / "report.md").write_text("2")
        (tmp / "figures").mkdir()
        (tmp / "figures" / "a.png").write_text("a2")
        (out / "figures").rmdir()
        (out / "figures").symlink_to(other)  # made while the work ran: refused before anything is replaced
    assert [p.name for p in other.iterdir()] == ["keep.txt"] and (out / "figures").is_symlink()
    assert sorted(p.name for p in out.parent.iterdir()) == ["step"]  # no temporary left
    assert (out / "report.md").read_text() == "1"
    check_output_folder(out, owner="run", writes=("summary.json",))  # a run writes no figures/: fine
    _write(out, "run", {"summary.json": "run"})
    (out / "figures").unlink()
    (out / "figures").symlink_to(tmp_path / "other" / "keep.txt")  # a link to a file: replaced, as a file's is
    _write(out, "report", {"report.md": "3", "figures/a.png": "a3"})
    assert not (out / "figures").is_symlink() and (out / "figures" / "a.png").read_text() == "a3"
    assert (other / "keep.txt").read_text() == "mine"


def test_a_report_into_a_folder_with_a_linked_figures_folder_is_refused_before_it_simulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``twin report S -o DIR`` where ``DIR/<name>/figures`` is a link to a folder (in a folder a run
    wrote, so the report has not listed figures/ yet): one line naming --output and the link, before
    the step is simulated (it came after ~5 s of work, naming a temporary folder)."""
    from sim.cli import main

    step = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
    out = tmp_path / "out" / load_scenario(step).name
    _write(out, "run", {"summary.json": "run"})
    (tmp_path / "elsewhere").mkdir()
    (out / "figures").symlink_to(tmp_path / "elsewhere")

    def not_simulated(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before the folder was checked")

    monkeypatch.setattr("sim.run.simulate", not_simulated)
    monkeypatch.setattr("sim.run.simulate_training", not_simulated)
    with pytest.raises(SystemExit) as info:
        main(["report", str(step), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert f"--output: {out}/figures is a link (to {tmp_path / 'elsewhere'}); twin does not write through" in err
    assert list((tmp_path / "elsewhere").iterdir()) == [] and _visible(out) == {"summary.json"}


def test_a_folder_that_is_a_link_to_another_file_system_is_written(tmp_path: Path) -> None:
    """``DIR/<name>`` a link to a folder on another file system: the temporary beside the link could not
    be renamed into it ("Invalid cross-device link", after all the work); it is made inside the folder."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system as the test's folder here")
        link = tmp_path / "out" / "step"
        link.parent.mkdir()
        link.symlink_to(other)
        _write(link, "report", {"report.md": "r", "figures/a.png": "a"})
        assert _visible(Path(other)) == {"report.md", "figures/a.png"}
        hidden = {p.name for p in Path(other).iterdir() if p.name.startswith(".")}
        assert hidden <= {MARKER, ".clustertwin.lock"}  # (no temporary left)
        assert link.is_symlink()


@pytest.mark.parametrize(
    ("marker", "key"),
    [
        ('{"files": {"run": [".."]}}', "files.run[0]"),  # removed the folder above: -o and the user's files
        ('{"files": {"run": [""]}}', "files.run[0]"),  # removed the folder itself
        ('{"files": {"run": ["a/../../x"]}}', "files.run[0]"),
        ('{"files": {"run": ["/etc"]}}', "files.run[0]"),
        ('{"files": {"run": "summary.md"}}', "files.run"),  # read letter by letter ('.' among them)
        ('{"files": []}', "files"),
        ("null", "files"),
        ("{", ""),  # not JSON
    ],
)
def test_a_marker_twin_did_not_write_is_refused_and_nothing_removed(tmp_path: Path, marker: str, key: str) -> None:
    """A marker's names say what twin may replace and remove; an edited one listing ``..`` made the next
    ``twin run -o`` remove the output folder's parent, then say "nothing was replaced"."""
    out = tmp_path / "out" / "step"
    _write(out, "run", {"summary.md": "run 1"})
    (out / "notes.txt").write_text("mine")
    (tmp_path / "out" / "keep.txt").write_text("other")
    (out / MARKER).write_text(marker)
    with pytest.raises(ScenarioError) as info:
        _write(out, "run", {"summary.md": "run 2"})
    err = str(info.value)
    assert err.startswith(f"{out / MARKER}: {key + ': ' if key else ''}") and len(err.splitlines()) == 1, err
    assert (out / "notes.txt").read_text() == "mine" and (tmp_path / "out" / "keep.txt").read_text() == "other"
    assert (out / "summary.md").read_text() == "run 1"


def test_what_twin_did_not_write_where_it_puts_its_files_is_refused(tmp_path: Path) -> None:
    """The user's file at a name twin writes, in a folder twin wrote (its marker listing nothing there),
    was overwritten; the user's folder at a name where twin writes a file was removed with its files."""
    out = tmp_path / "out" / "step"
    _write(out, "run", {"summary.md": "run 1", "trace.json": "t"})
    (out / "trace.json").unlink()
    (out / "trace.json").mkdir()
    (out / "trace.json" / "notes.txt").write_text("analysis")
    with pytest.raises(ScenarioError, match=re.escape(f"{out}/trace.json/notes.txt is not a file twin wrote")):
        _write(out, "run", {"summary.md": "run 2", "trace.json": "t2"})
    assert (out / "trace.json" / "notes.txt").read_text() == "analysis" and (out / "summary.md").read_text() == "run 1"
    (out / "report.md").write_text("mine")  # not listed
    with pytest.raises(ScenarioError, match=re.escape(f"{out}/report.md is not a file twin wrote")):
        _write(out, "report", {"report.md": "twin's"})
    assert (out / "report.md").read_text() == "mine"
    (out / "figures").mkdir()
    (out / "figures" / "a.png").write_text("mine")  # the user's, at a name the report writes in figures/
    (out / "report.md").unlink()
    with pytest.raises(ScenarioError, match=re.escape(f"{out}/figures/a.png is not a file twin wrote")):
        _write(out, "report", {"report.md": "twin's", "figures/a.png": "twin's"})
    assert (out / "figures" / "a.png").read_text() == "mine"
    _write(out, "report", {"report.md": "twin's", "figures/b.png": "twin's"})  # beside the user's: kept
    assert (out / "figures" / "a.png").read_text() == "mine" and (out / "figures" / "b.png").exists()


def test_a_users_folder_where_a_run_writes_a_file_is_refused_before_it_simulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's folder of notes at the name of a comparison's trace was refused only when the results
    were put in place, after the work; every name ``twin run`` writes is checked first."""
    from sim.cli import main

    scenario = REPO / "scenarios" / "schedule-comparison.yaml"
    out = tmp_path / "out" / load_scenario(scenario).name
    _write(out, "run", {"summary.md": "run", "trace-1f1b.json": "t"})
    (out / "trace-1f1b.json").unlink()
    (out / "trace-1f1b.json").mkdir()
    (out / "trace-1f1b.json" / "notes.txt").write_text("analysis")

    def not_simulated(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before the folder was checked")

    monkeypatch.setattr("sim.cli.run.simulate", not_simulated)
    with pytest.raises(SystemExit) as info:
        main(["run", str(scenario), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert f"{out}/trace-1f1b.json/notes.txt is not a file twin wrote" in err
    assert (out / "trace-1f1b.json" / "notes.txt").read_text() == "analysis"


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("report.md", True),  # a folder of the user's where the report goes
        # the report's charts (reports.serve_report.CHARTS, PNGs beside report.md) were checked only as the
        # files were put in place: nothing was replaced, but the simulation was lost
        ("latency.png", False),
        ("gpu-busy.png", False),
    ],
)
def test_what_is_the_users_where_serve_writes_is_refused_before_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, folder: bool
) -> None:
    """As for twin run: the names twin serve writes with traffic are checked before the deployment is
    built and simulated, and what the user has there is kept."""
    from sim.cli import main
    from sim.serve.spec import load_serve

    scenario = REPO / "scenarios" / "serve" / "deepseek-v3-h100-96.yaml"
    out = tmp_path / "out" / load_serve(scenario).name
    _write(out, "serve", {"summary.json": "{}"})
    mine = out / name / "notes.txt" if folder else out / name
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("mine")

    def not_built(*_a: object, **_k: object) -> None:
        raise AssertionError("built before the folder was checked")

    monkeypatch.setattr("sim.serve.deployment.build", not_built)
    with pytest.raises(SystemExit) as info:
        main(["serve", str(scenario), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"{mine} is not a file twin wrote" in err, err
    assert mine.read_text() == "mine"


def test_serve_reports_charts_are_the_names_it_checks() -> None:
    """The figures serve_document draws are exactly CHARTS (the names twin serve checks up front)."""
    from reports.serve_report import CHARTS, serve_document
    from sim.serve.deployment import build, simulate_serve
    from sim.serve.spec import load_serve

    sc = load_serve(REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml")
    sc = sc.model_copy(update={"serve": sc.serve.model_copy(update={"duration_s": 2.0})})
    doc = serve_document(simulate_serve(sc, build(sc)))
    assert tuple(doc.figures()) == CHARTS


@pytest.mark.parametrize(
    ("args", "flag", "name"),
    [
        (["check", "deepep", "-o"], "--output", "link.md"),
        (["chunk", "--trace-out"], "--trace-out", "link.json"),
        (["alltoall", "--sms", "4,8", "--plot"], "--plot", "link.png"),
        (["calibrate", "datasheet", "-o"], "--output", "link.json"),
        (["schedules", "trace", "1f1b", "-o"], "--output", "link.json"),
    ],
)
def test_an_output_file_that_is_a_link_is_refused_and_kept(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    flag: str,
    name: str,
) -> None:
    """A file written beside the output and renamed onto it replaced a link with a plain file (the user's
    link gone, its target as it was): refused before any work, as for a sweep's results and a folder."""
    from sim.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("precious")
    (tmp_path / name).symlink_to("precious.txt")
    with pytest.raises(SystemExit) as info:
        main([*args, name])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    why = f"{name} is a link (to precious.txt); twin does not write through links: give the file itself"
    assert err == f"error: {flag}: {why}\n"
    assert (tmp_path / name).is_symlink() and (tmp_path / "precious.txt").read_text() == "precious"


@pytest.mark.parametrize("name", ["notes.txt", "t.parquet"])
def test_a_chunk_trace_is_a_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    """--trace-out notes.txt wrote 114 KB of trace JSON over the user's notes, exit 0."""
    from sim.cli import main

    (tmp_path / name).write_text("mine")
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--trace-out", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: --trace-out: unknown file extension"), err
    assert (tmp_path / name).read_text() == "mine"


def test_a_topology_name_with_control_codes_is_refused_and_a_model_files_name_is_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A topology ``name`` with an escape code and a newline broke twin collective's nccl-tests header into
    two lines and coloured the terminal; a model file's name split twin model show's title over lines."""
    from sim.cli import main

    topo = tmp_path / "esc.yaml"
    topo.write_text('name: "a\\x1b[31mRED\\nnewline"\nnodes: 2\nfabric: {kind: ft2}\n')
    with pytest.raises(SystemExit) as info:
        main(["topology", "show", str(topo)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert (
        err
        == f"error: {topo}: name: 'a\\x1b[31mRED\\nnewline': a name is printable text (no newline or control code)\n"
    )
    model = tmp_path / "x\x1b[31mred\nnl.json"
    from sim.model.catalog import CATALOG, MODELS_DIR

    model.write_bytes((MODELS_DIR / CATALOG["llama-3.1-8b"][1]).read_bytes())  # (a shipped config)
    with pytest.raises(SystemExit) as info:
        main(["model", "show", str(model)])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "\x1b" not in out and "x\\x1b[31mred\\nnl" in out


def _disk_full(*_args: object, **_kwargs: object) -> None:
    raise OSError(28, "No space left on device")


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_commit_cut_short_leaves_a_folder_the_next_run_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk full at the final marker (the files already in place) said "nothing was replaced" and left
    the marker empty, so every later run refused the folder ("summary.json is not a file twin wrote"). The
    marker now lists what is about to land before it lands, and the message says the results are in place."""
    import sim.outputs as outputs
    from sim.errors import TwinError

    out = tmp_path / "step"
    real = outputs._write_manifest
    calls: list[bool] = []

    def full_at_the_end(folder: Path, files: dict[str, list[str]], committed: bool = False) -> None:
        calls.append(committed)
        if not committed:
            return real(folder, files, committed)
        with monkeypatch.context() as m:  # (the real write, its rename failing as on a full disk)
            m.setattr(outputs.os, "replace", _disk_full)
            return real(folder, files, committed)

    monkeypatch.setattr(outputs, "_write_manifest", full_at_the_end)
    with pytest.raises(TwinError, match=r"could not update it \(No space left on device\); the results are in place"):
        _write(out, "serve", {"summary.json": "1"})
    assert calls[-2:] == [False, True] and (out / "summary.json").read_text() == "1"  # (the intent, then the final)
    monkeypatch.setattr(outputs, "_write_manifest", real)
    _write(out, "serve", {"summary.json": "2"})  # not refused: the marker lists it as twin's
    assert (out / "summary.json").read_text() == "2"


def test_the_disk_full_at_the_first_marker_replaces_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.outputs as outputs
    from sim.errors import TwinError

    out = tmp_path / "step"
    _write(out, "run", {"summary.md": "old"})

    real = outputs._write_manifest

    def full(folder: Path, files: dict[str, list[str]], committed: bool = False) -> None:
        with monkeypatch.context() as m:
            m.setattr(outputs.os, "replace", _disk_full)
            return real(folder, files, committed)

    monkeypatch.setattr(outputs, "_write_manifest", full)
    with pytest.raises(TwinError, match=r"could not write it \(No space left on device\); nothing was replaced"):
        _write(out, "run", {"summary.md": "new"})
    assert (out / "summary.md").read_text() == "old" and _visible(out) == {"summary.md"}


def test_a_folder_a_killed_commit_moved_aside_is_recovered(tmp_path: Path) -> None:
    """A commit killed after moving ``figures/`` aside as ``.figures.PID.old`` left it for good (the user's
    files in it), and the report's folder without figures/. The next write puts it back, or carries the
    user's files into the new figures/ and removes it."""
    out = tmp_path / "step"
    _write(out, "report", {"report.md": "r1", "figures/a.png": "a1"})
    (out / "figures" / "mine.txt").write_text("user")
    pid = _dead_pid()
    os.replace(out / "figures", out / f".figures.{pid}.old")  # killed right after the move
    _write(out, "run", {"summary.md": "s"})  # another command's commit: figures/ is put back
    assert (out / "figures" / "mine.txt").read_text() == "user" and (out / "figures" / "a.png").read_text() == "a1"
    assert not list(out.glob(".figures.*.old"))
    os.replace(out / "figures", out / f".figures.{pid}.old")
    _write(out, "report", {"report.md": "r2", "figures/a.png": "a2"})  # the report's own: the user's file kept
    assert (out / "figures" / "mine.txt").read_text() == "user" and (out / "figures" / "a.png").read_text() == "a2"
    assert not list(out.glob(".figures.*.old"))


def test_a_users_dotfolder_named_like_a_moved_folder_stays(tmp_path: Path) -> None:
    out = tmp_path / "step"
    _write(out, "run", {"summary.md": "s"})
    mine = out / f".notes.{_dead_pid()}.old"
    mine.mkdir()
    (mine / "x.txt").write_text("mine")
    _write(out, "run", {"summary.md": "s2"})
    assert (mine / "x.txt").read_text() == "mine" and not (out / "notes").exists()


def test_a_commit_killed_after_its_new_folder_landed_carries_the_users_files_over(tmp_path: Path) -> None:
    """Killed between putting the new ``figures/`` in place and carrying the user's files over from the old
    one (``.figures.PID.old``): the next write carries them over and removes the old folder."""
    out = tmp_path / "step"
    _write(out, "report", {"report.md": "r1", "figures/a.png": "a1"})
    (out / "figures" / "mine.txt").write_text("user")
    old = out / f".figures.{_dead_pid()}.old"
    shutil.copytree(out / "figures", old)
    (out / "figures" / "mine.txt").unlink()  # the new folder, without the user's file yet
    _write(out, "run", {"summary.md": "s"})
    assert (out / "figures" / "mine.txt").read_text() == "user" and not old.exists()


def test_a_commit_failing_on_an_error_leaves_a_marker_of_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker written before a commit names every file about to land; a commit that then fails on an
    error (not a kill) rewrites it to what landed, so a name that never did is not claimed as twin's."""
    import json

    import sim.outputs as outputs

    out = tmp_path / "step"
    _write(out, "run", {"a.txt": "1"})
    real = os.replace

    def fail_on_b(src: object, dst: object, *args: object, **kwargs: object) -> None:
        if Path(str(dst)).name == "b.txt":
            raise OSError(5, "Input/output error")
        real(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs.os, "replace", fail_on_b)
    with pytest.raises(OSError):
        _write(out, "run", {"a.txt": "2", "b.txt": "2"})
    monkeypatch.setattr(outputs.os, "replace", real)
    listed = json.loads((out / MARKER).read_text())["files"]["run"]
    assert "a.txt" in listed and "b.txt" not in listed and not (out / "b.txt").exists()


def test_a_ctrl_c_during_the_commit_says_the_results_are_in_place(tmp_path: Path) -> None:
    """A Ctrl-C while the commit puts the files in place is held back until the commit is whole, then
    delivered: the command says "interrupted" with exit 130 as before, and now that the results are in
    place (it said only "interrupted", so a user took the run for lost). In a process of its own, whose
    main thread gets the signal (as a user's ``twin`` does)."""
    import subprocess
    import sys

    from tests.conftest import SMALL_STEP

    code = (
        "import os, signal, sys\n"
        "import sim.outputs as outputs\n"
        "real = outputs._write_manifest\n"
        "def ctrl_c_at_the_end(folder, files, committed=False):\n"
        "    real(folder, files, committed)\n"
        "    if committed:  # (inside the commit's held signals: delivered as it ends)\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "outputs._write_manifest = ctrl_c_at_the_end\n"
        "from sim.cli import main\n"
        f"main(['run', {str(SMALL_STEP)!r}, '-o', {str(tmp_path)!r}, '-q'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    folder = next(tmp_path.glob("*/summary.json")).parent
    assert done.returncode == 130
    assert done.stderr == f"error: interrupted after the results were put in place in {folder}\n"
    assert {p.name for p in folder.iterdir()} >= {"summary.json", "summary.md", "spans.parquet", "trace.json"}
