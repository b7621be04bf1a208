"""Memory of a long sweep: a 10,000-point sweep of a small training step (DeepSeek-V3's layers, 8 of
them, on 4 DualPipe ranks of 32 GPUs; every point a different SM split, NIC rate and node limit, so no
point reuses another's chunk timings) on the local process pool. Target (issue "As fast as an analytic
model, and unbreakable"): memory that stays flat, the sweep's process and its workers alike.

    python benchmarks/bench_sweep_memory.py [--points 10000] [--workers 2] [--every 500]

Prints, every ``--every`` points: points done, wall time, the resident memory (RSS) of the sweep's
process and the largest of its workers' now, then the peak RSS of each. Flat: a worker's RSS stops
growing after its first points (its memos are per point: the cost model, the chunk timer, the
topology's), and the sweep's process grows only by the rows it holds to rewrite its Parquet file
(about 7 KiB a point as Python objects).

Measured (2 cores, the full 10,000 points, 438 s; readings every 1,000): the largest worker 144.7,
145.2, 145.9, 128.1, 139.0, 146.0, 146.1, 146.0, 146.0, 127.6 MiB (peak 146.1 MiB: flat); the sweep's
process 141.0 MiB at 1,000 points to 190.8 MiB at 10,000, the rows it holds. Before the cost model's
memos became per instance, a worker grew by 0.37 MiB a point (500 MiB at 750 points).

Measured again 2026-12-07 (the same command, 376 s): the largest worker 131.0 MiB at 1,000 points, then
246.7, 247.4, 247.7, 247.8, 249.6, 249.8, 249.8, 249.9, 249.9 MiB (peak 250.0 MiB: one step up between
1,000 and 2,000 points, flat after it); the sweep's process 157.6 to 211.2 MiB. The step up is not
this day's change (the sources of 7248dc0 on 2,000 points: 130.2 MiB at 1,000, 282.8 at 1,500 and 2,000)
and not objects a worker keeps: 104 points spread over the same grid, one after another in one
process, held it at 138.4 to 140.6 MiB and imported no module after the first. What a worker's
allocator does then (it is spawned, so none of its pages are the parent's) was not traced.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

from sim.sweep.pool import default_workers
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parent.parent
SMALL = {  # tests/unit/test_every_key_is_used.py's "step" context
    "model.n_layers": 8,
    "model.n_dense_layers": 1,
    "pipeline.pp": 4,
    "training.gpus": 128,
    "training.global_batch": 512,
    "training.check_memory": False,
    "workload.ep": 32,
}


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            if int((child / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(child.name))
        except (OSError, ValueError):
            continue
    return out


def sweep_file(folder: Path, points: int) -> Path:
    """A sweep of at least ``points`` distinct points over the small step."""
    base = folder / "small.yaml"
    base.write_text(yaml.safe_dump({"base": str(ROOT / "scenarios" / "deepseek_v3_pretrain.yaml"), "set": SMALL}))
    sms = list(range(8, 34, 2))  # 13
    limits = [1, 2, 3, 4]
    per = -(-points // (len(sms) * len(limits)))
    nics = [round(100 + 700 * i / max(per - 1, 1), 3) for i in range(per)]
    body = {"base": str(base), "grid": {"comm.sms": sms, "model.n_limited_groups": limits, "cluster.nic_Gbps": nics}}
    path = folder / "memory.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--every", type=int, default=500, help="print a reading every this many points")
    args = ap.parse_args()
    me = os.getpid()
    peak = {"sweep": 0, "worker": 0}
    t0 = time.perf_counter()
    print(f"{'points':>7s} {'wall s':>8s} {'sweep MiB':>10s} {'worker MiB':>11s}", flush=True)

    def progress(done: int, total: int, failed: int) -> None:
        sweep_kib = _rss_kib(me)
        worker_kib = max((_rss_kib(c) for c in _children(me)), default=0)
        peak["sweep"] = max(peak["sweep"], sweep_kib)
        peak["worker"] = max(peak["worker"], worker_kib)
        if done % args.every == 0 or done == total:
            wall = time.perf_counter() - t0
            print(f"{done:7d} {wall:8.1f} {sweep_kib / 1024:10.1f} {worker_kib / 1024:11.1f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        import dataclasses

        sweep = load_sweep(sweep_file(Path(tmp), args.points))
        sweep = dataclasses.replace(sweep, points=sweep.points[: args.points])
        outcome = run_sweep(sweep, Path(tmp) / "r.parquet", workers=args.workers, progress=progress)
    print(
        f"{outcome.ran} points ({outcome.failed} failed) in {time.perf_counter() - t0:.0f} s; peak RSS: "
        f"sweep {peak['sweep'] / 1024:.1f} MiB, largest worker {peak['worker'] / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
