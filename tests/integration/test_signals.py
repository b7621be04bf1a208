"""Interrupted runs leave nothing half-written: SIGTERM at random moments of a whole ``twin run`` (four
runs of the CLI as a process) leaves no temporary folder. The training step's run writes its report in a
forked child (:func:`sim.outputs.written_beside`): killed while it writes, nothing of the child's
appears afterwards either."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "dualpipe-table.yaml"
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"


def _twin_run(out: Path, scenario: Path = SCENARIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(scenario), "-o", str(out), "-q"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigterm_at_random_moments_leaves_no_temp_folder(tmp_path: Path) -> None:
    rng = random.Random(12)
    start = time.monotonic()
    proc = _twin_run(tmp_path / "ref")
    proc.wait(timeout=120)
    full = time.monotonic() - start  # one whole run, so the kills spread over all of it
    for trial in range(3):
        out = tmp_path / f"out{trial}"
        proc = _twin_run(out)
        time.sleep(rng.uniform(0.3, 1.05) * full)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 128 + signal.SIGTERM), err
        if proc.returncode:
            assert err.decode().strip().splitlines()[-1] == "error: terminated"
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
        assert leftovers == []


def test_sigterm_while_a_step_writes_its_outputs_leaves_nothing_behind(tmp_path: Path) -> None:
    """Kills spread over the second half of a default step's run (simulation, then outputs: the trace
    here, the report and Gantt chart in the child); two seconds later, nothing new has appeared."""
    rng = random.Random(7)
    start = time.monotonic()
    proc = _twin_run(tmp_path / "ref", DEFAULT)
    proc.wait(timeout=180)
    full = time.monotonic() - start
    assert proc.returncode == 0
    written = sorted(p.name for p in (tmp_path / "ref" / "deepseek-v3-pretrain").iterdir())
    assert {"gantt.png", "summary.md", "trace.json", "spans.parquet", "summary.json"} <= set(written)
    for trial in range(3):
        out = tmp_path / f"out{trial}"
        proc = _twin_run(out, DEFAULT)
        time.sleep(rng.uniform(0.5, 0.98) * full)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 128 + signal.SIGTERM), err
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
        time.sleep(2.0)  # a child still writing would show here
        after = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
        assert after == before
        assert [p for p in after if Path(p).name.startswith(".") and "clustertwin" not in p] == []
        if proc.returncode == 0:  # it finished first: every file is there
            assert set(written) <= {Path(p).name for p in after}
