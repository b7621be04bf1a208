"""``twin plan run`` (issue 21): a whole run integrated over its phases and batch ramp.

What must hold, from the definition (sim/experiments/run_plan.py): each slice's steps x batch x
sequence are its tokens; its GPU-hours are steps x step time x GPUs / 3600 (the step's own GPU-hours
per trillion tokens agree); days are steps x step time / 86400; every distinct step is simulated once;
a ramp's step runs at its own batch, not scaled from the steady state (half the batch has the same
bubble, so its step takes more than half as long); bad input is one line with exit status 2. The
report of ``-o DIR`` (reports/training_run_report.py): its tables hold the JSON's figures cell for cell,
in the Markdown and the HTML; its timeline lays the phases end to end, adding up to the run's days and,
hatched, its lost days; a folder of someone else's files is refused before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.experiments.run_plan import load_run, plan_run, totals
from tests.conftest import SMALL_STEP


def _run_file(folder: Path, **more: object) -> Path:
    body = {
        "name": "tiny",
        "base": str(SMALL_STEP),
        "phases": [
            {
                "name": "main",
                "tokens": 1.0e11,
                "global_batch": 2048,
                "ramp": {"batches": [1024, 2048], "over_tokens": 2.0e10},
                "published_gpu_hours": 1000.0,
            },
            {"name": "long", "steps": 10, "global_batch": 1024, "set": {"model.seq_len": 2048}},
        ],
        "groups": [{"name": "all", "phases": ["main", "long"], "published_gpu_hours": 2000.0}],
        **more,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_the_run_integrates_its_steps(tmp_path: Path) -> None:
    path = _run_file(tmp_path)
    simulated: list[int] = []
    results, groups = plan_run(load_run(path), path, simulated.append)
    assert simulated == [1, 2, 3]  # (1024, 4096), (2048, 4096) and (1024, 2048): each once
    main_phase, long_phase = results
    assert [s.global_batch for s in main_phase.slices] == [1024, 2048, 2048]
    assert sum(s.tokens for s in main_phase.slices) == pytest.approx(1.0e11)
    for r in results:
        for s in r.slices:
            assert s.steps * s.global_batch * s.seq_len == pytest.approx(s.tokens, rel=1e-12)
            gpus = int(s.step["gpus"])
            hours = s.steps * float(s.step["step_time_s"]) * gpus / 3600
            assert float(s.step["gpu_hours_per_T"]) * s.tokens / 1e12 == pytest.approx(hours, rel=1e-9)
        assert r.days == pytest.approx(sum(s.seconds for s in r.slices) / 86400, rel=1e-12)
    assert long_phase.steps == pytest.approx(10) and long_phase.slices[0].seq_len == 2048
    half, full = main_phase.slices[0].step, main_phase.slices[1].step
    assert float(half["step_time_s"]) > float(full["step_time_s"]) / 2  # the same bubble, half the work
    assert groups[0]["gpu_hours"] == pytest.approx(main_phase.gpu_hours + long_phase.gpu_hours)
    t = totals(results)
    assert t["gpu_hours"] == pytest.approx(sum(r.gpu_hours for r in results))


def test_the_cli_prints_the_phases_and_the_total(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run_file(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "--format", "json", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    d = json.loads(out)
    assert [p["name"] for p in d["phases"]] == ["main", "long"]
    assert set(d["phases"][0]) >= {"name", "steps", "tokens", "gpu_hours", "days", "usd", "mfu"}
    assert set(d["total"]) >= {"gpu_hours", "days", "usd"}
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == d
    # progress on stderr with JSON too (-q was accepted there and did nothing); -q silences it
    assert "distinct step(s) simulated" in err
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "--format", "json", "-q"])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None) and json.loads(out) == d and err == ""
    # the table in a narrow terminal: a number is never cut ('242,9…'), a column that does not fit is named
    import io

    from rich.console import Console

    from sim.cli import plan_run

    terminal = plan_run.out
    for width in (40, 60, 80, 200):
        screen = io.StringIO()
        plan_run.out = Console(file=screen, width=width)
        try:
            plan_run._print_run(d)
        finally:
            plan_run.out = terminal
        text = screen.getvalue()
        assert "…" not in text and f"{d['phases'][0]['steps']:,.0f}" in text
        assert all(p["name"] in text for p in d["phases"])  # (at 40 columns the phase column shrank to nothing)
        assert ("not shown at" in text) is (width < 200)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"phases": [{"name": "x", "global_batch": 2048}]}, "phases.0"),  # neither tokens nor steps
        ({"phases": [{"name": "x", "steps": 1, "batch": 5}]}, "phases.0.batch"),
        ({"groups": [{"name": "g", "phases": ["nope"], "published_gpu_hours": 1.0}]}, "groups"),
    ],
)
def test_bad_run_files_are_one_line(tmp_path: Path, change: dict, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _run_file(tmp_path)
    body = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError) as info:
        load_run(path)
    assert info.value.key_path.startswith(key.split(".")[0]) and str(path) in str(info.value)
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "run", str(path)])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2 and err.count("\n") == 1


@pytest.mark.parametrize("given", ["global_batch", "ramp"])
def test_a_batch_set_beside_the_phases_own_is_refused(
    tmp_path: Path, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phase's ``set: {training.global_batch: ...}`` beside its own global_batch (or ramp) was
    silently ignored (twin validate said ok): refused, naming it."""
    path = _run_file(tmp_path)
    body = yaml.safe_load(path.read_text())
    phase = body["phases"][0] if given == "ramp" else body["phases"][1]
    phase["set"] = {**phase.get("set", {}), "training.global_batch": 4096}
    if given == "ramp":
        del phase["global_batch"]
    path.write_text(yaml.safe_dump(body))
    index = 0 if given == "ramp" else 1
    for command in (["plan", "run", str(path)], ["validate", str(path)]):
        with pytest.raises(SystemExit) as info:
            main(command)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.strip() == (
            f"error: {path}: phases.{index}.set.training.global_batch: the phase's {given} sets its batch; "
            "remove it here"
        )


def test_failures_cost_youngs_overhead_apart(tmp_path: Path) -> None:
    """Daly's wall time for exponential failures: a job of G GPUs fails every M = MTBF x 3600 / G seconds;
    checkpoints every tau = sqrt(2 C M) (Young's) cost (M / tau) e^(R/M) (e^((tau + C)/M) - 1) - 1 of the
    time, Young's C / tau + (tau / 2 + R) / M to first order."""
    import math

    from sim.experiments.run_plan import FailureSpec, failure_overhead

    f = FailureSpec(mtbf_gpu_hours=50000.0, checkpoint_s=60.0, restart_s=600.0)
    tau, overhead = failure_overhead(f, 512)
    m = 50000.0 * 3600 / 512
    assert tau == pytest.approx((2 * 60.0 * m) ** 0.5)
    assert overhead == pytest.approx(m / tau * math.exp(600.0 / m) * math.expm1((tau + 60.0) / m) - 1, rel=1e-12)
    assert overhead == pytest.approx(60.0 / tau + (tau / 2 + 600.0) / m, rel=0.02)  # tau / M = 0.018
    # Young's interval is the best: any other costs more
    for other in (tau / 2, tau * 2):
        assert failure_overhead(f.model_copy(update={"interval_s": other}), 512)[1] > overhead
    assert failure_overhead(f.model_copy(update={"mtbf_gpu_hours": 1e5}), 512)[1] < overhead
    path = _run_file(tmp_path, failures={"mtbf_gpu_hours": 50000.0, "checkpoint_s": 60.0, "restart_s": 600.0})
    results, _ = plan_run(load_run(path), path)
    for r in results:
        days, hours = r.lost()
        assert days == pytest.approx(r.days * overhead, rel=1e-9)  # every step of the tiny run on 512 GPUs
        assert hours == pytest.approx(days * 24 * 512, rel=1e-9)
        usd = sum(s.lost(f)[1] * s.usd / s.gpu_hours for s in r.slices)  # at each slice's cost per GPU-hour
        assert r.to_dict()["failures"] == {"lost_days": days, "lost_gpu_hours": hours, "lost_usd": pytest.approx(usd)}
    assert totals(results)["lost_days"] == pytest.approx(sum(r.lost()[0] for r in results))


# --------------------------------------------------------------------------- the run's report (-o DIR)
FAILURES = {"mtbf_gpu_hours": 5000.0, "checkpoint_s": 60.0, "restart_s": 600.0}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The tiny run with failures, through ``twin plan run RUN -o DIR --format json``: (DIR, its JSON)."""
    folder = tmp_path_factory.mktemp("run")
    path = _run_file(folder, failures=FAILURES)
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "--format", "json", "-o", str(folder / "out")])
    assert info.value.code in (0, None)
    return folder / "out", json.loads((folder / "out" / "run.json").read_text())


def _md_table(md: str, heading: str) -> list[list[str]]:
    """The rows (header first, the separator left out) of the first table under ``## heading``."""
    section = md.split(f"\n## {heading}\n", 1)[1]
    lines = [ln for ln in section.split("\n## ", 1)[0].splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for i, ln in enumerate(lines) if i != 1]


def _close(cell: str, value: float, decimals: int, scale: float = 1.0) -> None:
    """The cell shows ``value / scale`` rounded to ``decimals`` (commas, %, + allowed)."""
    shown = float(cell.replace(",", "").rstrip("%"))
    assert abs(shown - value / scale) <= 0.5 * 10**-decimals + 1e-9, (cell, value)


def test_the_reports_tables_are_the_json_figures(written: tuple[Path, dict]) -> None:
    out, d = written
    md = (out / "report.md").read_text()
    header, *rows = _md_table(md, "Phases")
    assert header[:8] == ["phase", "batch (sequences)", "steps", "tokens (T)", "days", "GPU-hours", "USD", "MFU"]
    phases, groups, total = rows[: len(d["phases"])], rows[len(d["phases"]) : -1], rows[-1]
    for cells, p in zip(phases, d["phases"], strict=True):
        assert cells[0] == p["name"]
        _close(cells[2], p["steps"], 0)
        _close(cells[3], p["tokens"], 3, 1e12)
        _close(cells[4], p["days"], 2)
        _close(cells[5], p["gpu_hours"], 0)
        _close(cells[6], p["usd"], 0)
        _close(cells[7], p["mfu"], 1, 0.01)
        if "published_gpu_hours" in p:
            _close(cells[8], p["published_gpu_hours"], 0)
            _close(cells[9], p["gpu_hours"] / p["published_gpu_hours"] - 1, 1, 0.01)
        else:
            assert cells[8:] == ["-", "-"]
    for cells, g in zip(groups, d["groups"], strict=True):
        assert cells[0].startswith(g["name"])
        _close(cells[5], g["gpu_hours"], 0)
        _close(cells[8], g["published_gpu_hours"], 0)
    t = d["total"]
    assert total[0] == "total"
    _close(total[2], sum(p["steps"] for p in d["phases"]), 0)
    _close(total[4], t["days"], 2)
    _close(total[5], t["gpu_hours"], 0)
    _close(total[6], t["usd"], 0)
    assert t["days"] == pytest.approx(sum(p["days"] for p in d["phases"]), rel=1e-12)
    # the cost: the GPU price's part and the fabric's share add up to the dollars, per phase and in total
    _, *cost = _md_table(md, "Cost")
    for cells, p in zip(cost, [*d["phases"], {"name": "total", **t}], strict=True):
        assert cells[0] == p["name"]
        assert p["gpu_usd"] + p["fabric_usd"] == pytest.approx(p["usd"], rel=1e-12)
        _close(cells[2], p["gpu_usd"], 0)
        _close(cells[3], p["fabric_usd"], 0)
        lost = p.get("failures") or {"lost_gpu_hours": t["lost_gpu_hours"]}
        _close(cells[5], lost["lost_gpu_hours"], 0)
    _, *steps = _md_table(md, "Steps")
    assert len(steps) == sum(len(p["slices"]) for p in d["phases"])
    # the HTML holds the same tables, cell for cell
    import re

    html = (out / "report.html").read_text()
    first = html.split("<table>", 2)[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", first)
    assert cells == [c for r in rows for c in r]


def test_the_timeline_lays_the_phases_end_to_end(written: tuple[Path, dict]) -> None:
    from reports.training_run_report import timeline

    _, d = written
    segments = timeline(d)
    t = 0.0
    for s in segments:  # end to end, from 0
        assert s.start == pytest.approx(t, abs=1e-12)
        t = s.start + s.days
    slices = [s for s in segments if s.kind == "slice"]
    lost = [s for s in segments if s.kind == "lost"]
    assert sum(s.days for s in slices) == pytest.approx(d["total"]["days"], rel=1e-12)
    assert sum(s.days for s in lost) == pytest.approx(d["total"]["lost_days"], rel=1e-12)
    assert t == pytest.approx(d["total"]["days"] + d["total"]["lost_days"], rel=1e-12)
    for p in d["phases"]:
        mine = [s for s in slices if s.phase == p["name"]]
        assert sum(s.days for s in mine) == pytest.approx(p["days"], rel=1e-12)
        assert [s.batch for s in mine] == [x["global_batch"] for x in p["slices"]]
    assert [s.batch for s in slices[:2]] == [1024, 2048]  # the ramp's slices first, then the steady batch


def test_the_report_is_written_beside_run_json(written: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = written
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for name in ("timeline", "cost"):
        assert f"![{name}](figures/{name}.png)" in md and (out / "figures" / f"{name}.png").stat().st_size > 5000
        assert f'<figure id="fig-{name}"><svg' in html
    assert [h for h in md.splitlines() if h.startswith("## ")] == [
        "## Summary", "## Phases", "## Timeline", "## Cost", "## Steps", "## Provenance",
    ]  # fmt: skip
    assert "http://" not in html and "https://" not in html
    # a folder of someone else's files is refused before anything runs, and left as it was
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    path = _run_file(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(path), "-o", str(foreign)])
    assert info.value.code == 2
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
