"""Co-design studies end to end: ``twin report`` on a study file runs its points, and the report's
figures equal direct runs of the same what-ifs; a rerun runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from reports.codesign_report import codesign_document, findings, headline
from sim.config import load_scenario
from sim.experiments.codesign import load_codesign
from sim.run import simulate_training
from sim.sweep.point import METRIC_BY_NAME
from tests.conftest import SMALL_STEP as SMALL

ROOT = Path(__file__).resolve().parents[3]


def _file(folder: Path, studies: list[dict], name: str = "cd.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"name": "tiny", "base": str(SMALL), "studies": studies}, sort_keys=False))
    return path


def test_report_figures_equal_direct_runs_and_a_rerun_runs_nothing(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        [
            {"key": "sms", "title": "SMs", "label": "{comm.sms} SMs", "grid": {"comm.sms": [12]}},
            {
                "key": "both",
                "title": "Both",
                "metrics": ["step_time_s", "ep_comm_exposed_s"],
                "variants": [
                    {"label": "twelve", "set": {"comm.sms": 12}},  # the same point as above: runs once
                    {"label": "too big", "set": {"workload.ep": 1024}},
                ],
            },
        ],
    )
    spec = load_codesign(path)
    assert len(spec.sweep.points) == 3  # base, 12 SMs, EP 1024
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sim", "report", str(path), "-o", str(out), "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    folder = out / "tiny"
    html = (folder / "report.html").read_text()
    md = (folder / "report.md").read_text()
    frame = pd.read_parquet(folder / "results.parquet")
    assert "http://" not in html and "https://" not in html
    assert (folder / "figures" / "study-sms.png").is_file() and (folder / "figures" / "study-both.png").is_file()
    derived = tmp_path / "d.yaml"
    derived.write_text(f"base: {SMALL}\nset: {{comm.sms: 12}}\n")
    direct = simulate_training(load_scenario(derived)).result.step_time_s
    base = simulate_training(load_scenario(SMALL)).result.step_time_s
    assert frame.loc[frame["point"] == 1, "step_time_s"].item() == direct
    change = METRIC_BY_NAME["step_time_s"].change_text(base, direct)
    lines = findings(spec.studies[1], frame)
    assert lines[0].startswith("**twelve**: step time") and change in lines[0]
    assert lines[1].startswith("**too big**: not possible:") and "workload.ep" in lines[1]
    fits = frame.loc[frame["point"] == 1, "memory_peak_GiB"].item() <= 80  # 78.4 GiB of the H800's 80
    faster = direct < base
    name = "12 SMs" if faster else "none beats the base (closest: 12 SMs)"
    assert fits and headline(spec.studies[0], frame) == (name, change, change)
    assert f"| 12 SMs | {direct:.3f} s | {change} |" in md
    doc = codesign_document(spec, frame, [])
    assert [t for lvl, t in doc.headings() if lvl == 2] == ["Summary", "SMs", "Both", "Provenance"]
    r = subprocess.run(cmd[:-1], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "0 of 3 points run (3 kept from results.parquet" in " ".join(r.stdout.split())
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "results.parquet"), frame)
