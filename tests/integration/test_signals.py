"""Interrupted runs leave nothing half-written: SIGTERM at random moments of a whole ``twin run`` (four
runs of the CLI as a process) leaves no temporary folder."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "dualpipe-table.yaml"


def _twin_run(out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(SCENARIO), "-o", str(out), "-q"],
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
