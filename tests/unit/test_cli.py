"""The twin command: output shapes, exit status 2 with one line on bad input, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    code = info.value.code if isinstance(info.value.code, int) else 1
    return code, captured.out, captured.err


def test_compare_json_shape_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "schedules",
        "compare",
        "--pp",
        "8",
        "--microbatches",
        "20",
        "--f",
        "1",
        "--b",
        "2",
        "--w",
        "1",
        "--fb",
        "3",
    ]
    code, out, _ = _run([*args, "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    rows = {r["name"]: r for r in data["schedules"]}
    assert set(rows) == {"1f1b", "zb1p", "interleaved-1f1b", "dualpipe", "dualpipev"}
    for r in rows.values():
        assert set(r) >= {"name", "devices", "step_time", "bubble", "peak_activations", "param_copies"}
        assert len(r["bubble"]["per_device"]) == r["devices"] == len(r["peak_activations"]["per_device"])
    assert rows["1f1b"]["bubble"]["max"] == pytest.approx(21.0)
    assert rows["dualpipe"]["bubble"]["max"] == pytest.approx(6.0)
    assert rows["dualpipev"]["devices"] == 4 and rows["dualpipev"]["param_copies"] == 2.0
    code, out, _ = _run([*args, "--format", "table"], capsys)
    assert code == 0 and "dualpipev" in out and "bubble" in out


@pytest.mark.parametrize(
    "args,expected",
    [
        (["schedules", "compare", "--pp", "7"], "error: --pp: dualpipe needs an even PP"),
        (
            ["schedules", "show", "dualpipe", "--pp", "8", "-n", "10"],
            "error: --microbatches: dualpipe with PP=8 needs at least 16",
        ),
        (["schedules", "compare", "--b", "-1"], "error: --b: must be a finite number in [0, "),
        (["schedules", "compare", "--schedules", "1f1b,pipedream"], "error: --schedules: unknown schedule 'pipedream'"),
        (["run", "does-not-exist.yaml"], "error: does-not-exist.yaml: no such scenario file"),
    ],
)
def test_bad_input_exit_2_one_line(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(args, capsys)
    assert code == 2
    assert err.strip().startswith(expected)
    assert len(err.strip().splitlines()) == 1


def test_a_backward_shorter_than_the_default_w_where_no_schedule_splits_it(capsys: pytest.CaptureFixture[str]) -> None:
    """1F1B and GPipe never split B into I and W, so --w cannot be given to them, and its default (1)
    must not bound --b: B = 0.5 was refused as "W=1.0 > B=0.5". 1F1B's step is (M + P - 1)(F + B)
    with no send cost: (20 + 8 - 1) x 1.5 = 40.5."""
    code, out, _ = _run(["schedules", "compare", "--schedules", "1f1b,gpipe", "--b", "0.5", "--format", "json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["schedules"]}
    assert rows["1f1b"]["step_time"] == pytest.approx(40.5) and rows["gpipe"]["step_time"] == pytest.approx(40.5)


def test_show_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["schedules", "show", "1f1b", "--pp", "2", "-n", "2", "--format", "text"], capsys)
    assert code == 0 and out.splitlines() == ["device  0: 0F0 0F1 0B0 0B1", "device  1: 1F0 1B0 1F1 1B1"]
    code, out, _ = _run(["schedules", "show", "zb1p", "--pp", "2", "-n", "2", "--format", "json"], capsys)
    assert json.loads(out)["actions"][1] == ["1F0", "1I0", "1F1", "1I1", "1W0", "1W1"]


def test_check_file_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["schedules", "show", "dualpipev", "--pp", "6", "-n", "9"], capsys)
    f = tmp_path / "v.txt"
    f.write_text(out)
    code, out, _ = _run(["schedules", "check", "--file", str(f)], capsys)
    assert code == 0 and "valid" in out
    for extra, flag in ((["--pp", "4"], "--pp"), (["-n", "12"], "--microbatches"), (["dualpipe"], "NAME")):
        # the file is the schedule: a schedule's size or name beside it was silently ignored
        code, _, err = _run(["schedules", "check", *extra, "--file", str(f)], capsys)
        assert (
            code == 2 and err.strip() == f"error: {flag}: not used with --file (its lines are the schedule); remove it"
        )
    f.write_text("0F0 0B0\n1F0 1X0\n")  # device 1 has an unknown op
    code, _, err = _run(["schedules", "check", "--file", str(f)], capsys)
    assert code == 2 and f"{f}: line 2:" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "0F0 0F1 0B0 0B1\n1F0 1B0 1F1\n",  # micro-batch 1 never runs its backward on stage 1
            "schedule 'f' is invalid: stage 1 micro-batch 1: B x0, I x0, W x0; expected B once or I and W once each",
        ),
        (
            "0F0 0B0 0F1 0B1\n1B0 1F0 1F1 1B1\n",  # device 1 runs a backward before its forward
            "schedule 'f' deadlocks: device 0 waits at action 1 (0B0) for gradient of 1B0/1I0 (device 1); "
            "device 1 waits at action 0 (1B0) for activation of 1F0 (device 1)",
        ),
    ],
)
def test_check_file_errors_name_the_file(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid or deadlocking ``--file f.txt`` was reported as ``error: schedule 'f' is invalid: ...``,
    naming neither the file nor its folder (only the stem): every error names the file, as ScenarioError
    writes it (``f.txt: ...``), the rest of the message kept."""
    f = tmp_path / "f.txt"
    f.write_text(text)
    code, out, err = _run(["schedules", "check", "--file", str(f)], capsys)
    assert (code, out, err) == (2, "", f"error: {f}: {message}\n")


def test_plot_and_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "g.png"
    assert _run(["schedules", "plot", "dualpipev", "--pp", "8", "-n", "10", "-o", str(png)], capsys)[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trace = tmp_path / "t.json"
    assert _run(["schedules", "trace", "dualpipe", "--pp", "4", "-n", "8", "-o", str(trace)], capsys)[0] == 0
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert {e["pid"] for e in slices} == {0, 1, 2, 3}  # one process per pipeline rank, as twin run writes
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_console_script_reports_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\npipeline: {pp: 4, microbatches: 8, bogus: 1}\nops: {forward_ms: 1, backward_ms: 2, weight_ms: 1}\n"
    )
    proc = subprocess.run([sys.executable, "-m", "sim", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {bad}: pipeline.bogus: unknown key; allowed: pp, microbatches, virtual_stages, schedules"
    )


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sim import __version__

    code, printed, _ = _run(["--version"], capsys)
    assert code == 0 and printed.strip() == f"clustertwin {__version__}"


_ROOT = Path(__file__).resolve().parents[2]
_PLAN_FILES = {  # every shipped sweep, co-design and run file -> the command its ok line names
    **{f"scenarios/sweeps/{p.name}": "twin sweep" for p in (_ROOT / "scenarios" / "sweeps").glob("*.yaml")},
    "scenarios/sweeps/run-ramp.yaml": "twin plan run",
    "scenarios/codesign.yaml": "twin report",
    "scenarios/runs/deepseek-v3.yaml": "twin plan run",
}


@pytest.mark.parametrize("name", sorted(_PLAN_FILES))
def test_validate_takes_every_shipped_sweep_codesign_and_run_file(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``twin validate`` checks the files ``twin sweep``, ``twin report`` and ``twin plan run`` take (it
    used to read them as scenarios and blame their ``grid``, ``studies`` or ``phases`` key)."""
    monkeypatch.chdir(_ROOT)
    code, printed, err = _run(["validate", name], capsys)
    assert (code, err) == (0, "")
    assert printed.startswith(f"{name}: ok (") and printed.rstrip().endswith(f"; {_PLAN_FILES[name]} {name})")
    assert len(printed.splitlines()) == 1


def test_validate_refuses_a_bad_run_file_as_plan_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = _ROOT / "scenarios" / "deepseek_v3_pretrain.yaml"
    bad = {
        "run_empty.yaml": f"name: r\nbase: {base}\nphases: []\n",
        "run_dup.yaml": f"name: r\nbase: {base}\nphases: [{{name: a, tokens: 1.0e9}}, {{name: a, tokens: 1.0e9}}]\n",
        "run_key.yaml": f"name: r\nbase: {base}\nphases: [{{name: a, tokns: 1.0e9}}]\n",
    }
    for file, text in bad.items():
        Path(file).write_text(text)
        code, _, planned = _run(["plan", "run", file], capsys)
        assert code == 2 and planned.startswith(f"error: {file}: phases")
        assert _run(["validate", file], capsys) == (2, "", planned)


@pytest.mark.parametrize(
    ("args", "spinner"),
    [
        (["run", str(REPO / "scenarios" / "schedule-comparison.yaml")], "simulating"),
        (["serve", str(REPO / "scenarios" / "serve" / "decode-floor.yaml")], "building the deployment"),
        (["run"], "building the step"),  # the default training step's progress bar
    ],
    ids=["run-schedules", "serve", "run-step"],
)
def test_quiet_silences_the_spinner_on_a_terminal(
    args: list[str], spinner: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-q`` ("no progress") left these commands' spinner on a terminal; the training step's bar obeyed it.
    And rich's spinner routed stdout through stderr while it spun: ``twin run SCHEDULES.yaml --format json >
    x.json`` on a terminal printed the JSON on the screen and left ``x.json`` empty, as the training step's
    progress bar did for ``twin run --format json > x.json``. Stdout holds it now."""
    import io

    from rich.console import Console

    from sim.cli import common, run

    for quiet in (False, True):
        screen = io.StringIO()
        terminal = Console(file=screen, force_terminal=True, width=100)
        monkeypatch.setattr(common, "err", terminal)
        monkeypatch.setattr(run, "err", terminal)  # (the training step's bar is run's own)
        with pytest.raises(SystemExit) as info:
            main([*args, "--format", "json", *(["-q"] if quiet else [])])
        assert info.value.code == 0 and capsys.readouterr().out.startswith("{")
        assert (spinner in screen.getvalue()) is not quiet


def test_a_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    """Started with stdout closed (``>&-``: ``sys.stdout`` is None), ``twin run -o DIR`` failed before writing
    (the forked writer flushed None) and the other commands after it (the exit flushed None): an
    AttributeError traceback, exit 1. They run, and write what they write."""
    from tests.conftest import SMALL_STEP

    for args in (
        ["schedules", "show", "1f1b", "--pp", "2", "--microbatches", "2"],
        ["run", str(SMALL_STEP), "-o", "o"],
    ):
        command = " ".join([sys.executable, "-m", "sim", *args])
        done = subprocess.run(["sh", "-c", f"exec 1>&-; {command}"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert any((tmp_path / "o").glob("*/summary.json"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_stdout_is_named() -> None:
    """``twin run --format json > /dev/full`` (a disk that fills under ``> file``) said "error: No space left
    on device" without naming what it could not write; a file it writes itself is named, and now stdout is."""
    from tests.conftest import SMALL_STEP

    for args in (["--help"], ["run", str(SMALL_STEP), "--format", "json"]):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "sim", *args], stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO
            )
        assert done.returncode == 2
        assert done.stderr == "error: stdout: No space left on device\n"


def test_a_stdout_whose_write_returns_nothing_still_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdout a command names in its errors passes on what the stream's write returns: some return
    None (logging adapters, progress-bar file wrappers), and a wrapper that made it an int broke them."""

    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    sink = Sink()
    monkeypatch.setattr(sys, "stdout", sink)
    with pytest.raises(SystemExit) as info:
        main(["model", "show", "deepseek-v3", "--format", "json"])
    assert info.value.code == 0 and json.loads(sink.text)["name"] == "DeepSeek-V3"
    assert sys.stdout is sink  # put back as it was


def test_a_ctrl_c_while_the_command_imports_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script's entry (``sim.entry``): a Ctrl-C during typer's and rich's imports, before the
    command's own handling, printed a KeyboardInterrupt traceback."""
    import builtins

    from sim import entry

    real = builtins.__import__

    for module in ("sim.cli", "sim.cli.common"):  # the package, then what its main imports before invoke()

        def interrupted(name: str, *args: object, module: str = module, **kwargs: object) -> object:
            if name == module:
                raise KeyboardInterrupt
            return real(name, *args, **kwargs)  # type: ignore[arg-type]

        with monkeypatch.context() as m:
            m.setattr(builtins, "__import__", interrupted)
            m.setattr(sys, "argv", ["twin", "--version"])
            with pytest.raises(SystemExit) as info:
                entry.main()
        assert info.value.code == 130 and capsys.readouterr().err == "error: interrupted\n"


def test_the_run_table_gives_every_ranks_mean_and_worst_beside_the_reported_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported rank's bubble and exposed communication jump when another rank ends the step; the
    third line gives each as the mean over the ranks (what a sweep's ``_mean`` columns hold) and the worst."""
    from sim.config import load_scenario
    from sim.run import simulate_training
    from tests.conftest import SMALL_STEP

    monkeypatch.setenv("COLUMNS", "400")  # one line each
    with pytest.raises(SystemExit) as info:
        main(["run", str(SMALL_STEP), "-o", str(tmp_path)])
    assert info.value.code == 0
    ranks = simulate_training(load_scenario(SMALL_STEP)).result.ranks

    def spread(key: str) -> str:  # from every rank's own figure
        values = [getattr(x, key) for x in ranks]
        worst = max(values)
        return f"{sum(values) / len(values):.3f} (worst {worst:.3f}, rank {values.index(worst)})"

    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("over the"))
    assert line == (
        f"over the {len(ranks)} ranks, mean: bubble {spread('bubble_s')}, DP comm {spread('dp_comm_exposed_s')}, "
        f"comm exposed inside chunks {spread('ep_comm_exposed_s')}"
    )
