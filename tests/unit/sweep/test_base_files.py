"""A sweep's base names files (its topology, its profile) that every point reads: they are read, and the
fabric built, before any point runs. A base naming a missing topology, or one whose price rule
overflows when its fabric is built, ran every point and wrote each as infeasible, exit 0; it is
refused in one line, exit 2, nothing written. A point's own bad fabric stays its own infeasible row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.unit.test_bad_inputs import refused_in_one_line

REPO = Path(__file__).resolve().parents[3]


def _base(folder: Path, topology: str) -> Path:
    text = (REPO / "scenarios" / "deepseek_v3_pretrain.yaml").read_text()
    text = text.replace("../calibrate/profiles/h800.json", str(REPO / "calibrate" / "profiles" / "h800.json"))
    text = text.replace("../topologies/deepseek-v3-mpft.yaml", topology)
    path = folder / "s.yaml"
    path.write_text(text)
    return path


def _overflowing_topology(folder: Path) -> Path:
    path = folder / "t.yaml"
    path.write_text(
        (REPO / "topologies" / "deepseek-v3-mpft.yaml").read_text()
        + "prices:\n  reference_Gbps: 1.0e-90\n  rate_exponent: 4\n"
    )
    return path


OVERFLOW = "t.yaml: the results overflow: cost_usd is inf, from prices.reference_Gbps = 1e-90"


@pytest.mark.parametrize(
    ("topology", "points", "expected"),
    [
        ("missing.yaml", "grid:\n  comm.sms: [16, 20]", "s.yaml: cluster.topology: no such topology file: "),
        ("t.yaml", "grid:\n  comm.sms: [16, 20]", OVERFLOW),
        # the first point changes the cluster (its own run builds its fabric): the next one checks the base's
        ("t.yaml", "points:\n  - {cluster.nic_Gbps: 200}\n  - {comm.sms: 16}", OVERFLOW),
    ],
)
def test_a_base_whose_files_fail_is_refused_before_any_point(
    topology: str,
    points: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _overflowing_topology(tmp_path)
    _base(tmp_path, str(tmp_path / topology))
    (tmp_path / "sw.yaml").write_text(f"base: s.yaml\n{points}\n")
    monkeypatch.chdir(tmp_path)
    refused_in_one_line(["sweep", "sw.yaml", "-o", "o.parquet", "-q"], expected, tmp_path, capsys)


def test_a_points_own_fabric_that_overflows_is_its_row(tmp_path: Path) -> None:
    """Only the point that sets the rate the price rule cannot take is refused (its run refuses it)."""
    from sim.sweep.runner import run_sweep
    from sim.sweep.spec import load_sweep

    topology = tmp_path / "t.yaml"
    topology.write_text(
        (REPO / "topologies" / "deepseek-v3-mpft.yaml").read_text()
        + "prices:\n  reference_Gbps: 1.0e-80\n  rate_exponent: 4\n"
    )
    _base(tmp_path, str(REPO / "topologies" / "deepseek-v3-mpft.yaml"))
    (tmp_path / "sw.yaml").write_text(f"base: s.yaml\npoints:\n  - {{}}\n  - {{cluster.topology: {topology}}}\n")
    sweep = load_sweep(tmp_path / "sw.yaml")
    assert len(sweep.points) == 2
    run_sweep(sweep, tmp_path / "o.parquet", workers=1)
    rows = pd.read_parquet(tmp_path / "o.parquet").sort_values("point")
    assert list(rows["status"]) == ["ok", "infeasible"]
