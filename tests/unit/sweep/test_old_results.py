"""Results written before memory was given in GiB (columns memory_*_GB, 1e9 B against the nominal 80)
are read in GiB, so twin compare ranks old and new files on one footing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.sweep.compare import load_results


def test_memory_columns_in_gb_are_read_in_gib(tmp_path: Path) -> None:
    old = pd.DataFrame(
        {
            "point": [0, 1],
            "status": ["ok", "ok"],
            "step_time_s": [21.0, 22.0],
            "memory_peak_GB": [69.98, 90.0],
            "memory_headroom_GB": [10.02, -10.0],
            "memory_capacity_GB": [80.0, 80.0],
        }
    )
    path = tmp_path / "old.parquet"
    old.to_parquet(path)
    frame, _ = load_results(path)
    assert not any(c.endswith("_GB") for c in frame.columns)
    assert frame["memory_peak_GiB"].tolist() == pytest.approx([69.98e9 / 2**30, 90e9 / 2**30])
    assert frame["memory_headroom_GiB"].tolist() == pytest.approx([80 - 69.98e9 / 2**30, 80 - 90e9 / 2**30])
