"""Speed of sweeps: the 1,000-point sweep of the default scenario in representative mode
(``scenarios/sweeps/thousand.yaml``) on a local process pool and on a local dask.distributed cluster.
Target (issue "Reports people can read and share, resumable sweeps ..."): 1,000 points in under
10 minutes on this machine's 2 cores.

    python benchmarks/bench_sweep.py [--points N] [--dask-points N] [--workers W]

Each path prints points, wall time (expansion and validation included, process start included) and
points per second; the two paths' rows are compared on the points both ran (they must be identical).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.sweep.pool import default_workers
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "scenarios" / "sweeps" / "thousand.yaml"


def _run(points: int, workers: int, folder: Path, scheduler: str | None = None) -> tuple[float, Path]:
    start = time.perf_counter()
    sweep = load_sweep(SWEEP)
    sweep = dataclasses.replace(sweep, points=sweep.points[:points])
    out = folder / ("dask.parquet" if scheduler else "local.parquet")
    outcome = run_sweep(sweep, out, workers=workers, scheduler=scheduler)
    wall = time.perf_counter() - start
    assert outcome.ran == points
    return wall, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000, help="points of the sweep on the local pool")
    ap.add_argument("--dask-points", type=int, default=None, help="points on dask [default: --points]")
    ap.add_argument("--workers", type=int, default=default_workers(), help="processes (and dask workers)")
    args = ap.parse_args()
    n_dask = args.points if args.dask_points is None else args.dask_points
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wall, local = _run(args.points, args.workers, folder)
        rate = args.points / wall
        print(f"local pool, {args.workers} processes: {args.points} points in {wall:.1f} s = {rate:.2f} points/s")
        if n_dask:
            from distributed import LocalCluster

            start = time.perf_counter()
            with LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                up = time.perf_counter() - start
                wall, dask = _run(n_dask, args.workers, folder, cluster.scheduler_address)
            print(
                f"dask LocalCluster, {args.workers} workers: {n_dask} points in {wall:.1f} s = {n_dask / wall:.2f} "
                f"points/s (cluster start {up:.1f} s, not counted)"
            )
            a = pd.read_parquet(local).head(n_dask)
            b = pd.read_parquet(dask)
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
            print(f"rows identical on the {n_dask} points both ran")


if __name__ == "__main__":
    main()
