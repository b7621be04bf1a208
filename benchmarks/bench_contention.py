"""What one network changes: the default DeepSeek-V3 step with ``training.contention`` shared and
isolated, on DeepSeek's multi-plane fat tree (MPFT: ranks on disjoint leaves' ports) and on a two-
and a three-layer fat tree at 2048 GPUs (FT2, FT3: several ranks' EP groups and rings share spines),
and the speed of each mode. Targets (issue "One simulation..."): the representative shared step
under 1 s in-process, isolated under 0.4 s, per-GPU under 60 s.

    python benchmarks/bench_contention.py [--fabrics mpft ft2 ft3] [--per-gpu]

For each fabric and mode: the step time, the bubble / exposed EP / exposed DP of the rank that ends
last, the in-process wall time; for the shared mode, the time each kind of coflow lost to sharing
(summed over coflows) by the link block that held it back, and the bytes each kind put on the
fabric's switch ports (leaf and spine links), which is where ranks meet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

try:
    from benchmarks.bench_step import scenario as step_scenario
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on the path, not the checkout
    from bench_step import scenario as step_scenario  # type: ignore[no-redef,import-not-found]
from sim.config import load_scenario
from sim.run import simulate_training

ROOT = Path(__file__).resolve().parent.parent
FABRICS = {
    "mpft": "deepseek-v3-mpft.yaml",
    "ft2": "deepseek-v3-ft2.yaml",
    "ft3": "deepseek-v3-ft3.yaml",
}


def scenario(fabric: str, contention: str, fidelity: str, folder: Path) -> Path:
    return step_scenario(fidelity, "balanced", folder, FABRICS[fabric], contention)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fabrics", nargs="+", default=list(FABRICS), choices=list(FABRICS))
    ap.add_argument("--per-gpu", action="store_true", help="also time per-GPU fidelity (shared) on MPFT")
    args = ap.parse_args()
    head = f"{'fabric':6s} {'mode':9s} {'step s':>8s} {'bubble':>7s} {'EP exp':>7s} {'DP exp':>7s} {'wall s':>7s}"
    print(head)
    lost: dict[str, dict[str, float]] = {}
    switch_bytes: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fabric in args.fabrics:
            for mode in ("isolated", "shared"):
                sc = load_scenario(scenario(fabric, mode, "representative", Path(tmp)))
                t0 = time.perf_counter()
                run = simulate_training(sc)
                wall = time.perf_counter() - t0
                r = run.result
                last = r.ranks[r.reported_rank]
                print(
                    f"{fabric:6s} {mode:9s} {r.step_time_s:8.3f} {last.bubble_s:7.3f} {last.ep_comm_exposed_s:7.3f} "
                    f"{last.dp_comm_exposed_s:7.3f} {wall:7.2f}",
                    flush=True,
                )
                if mode == "shared":
                    lost[fabric] = run.step.stats["coflow_delay_ms"]
                    switch_bytes[fabric] = {
                        k: v
                        for k, v in run.step.stats["coflow_GB"].items()
                        if "leaf" in k or "spine" in k or "core" in k
                    }
        if args.per_gpu:
            sc = load_scenario(scenario("mpft", "shared", "per-gpu", Path(tmp)))
            t0 = time.perf_counter()
            run = simulate_training(sc)
            print(f"per-gpu shared on mpft: {time.perf_counter() - t0:.1f} s, step {run.result.step_time_s:.3f} s")
    for fabric in lost:
        print(f"\n{fabric}: time lost to sharing (ms, summed over coflows) by tag@block")
        for k, v in sorted(lost[fabric].items(), key=lambda kv: -kv[1]):
            print(f"  {k:24s} {v:10.1f}")
        print(f"{fabric}: bytes on switch ports (GB) by tag@block")
        for k, v in sorted(switch_bytes[fabric].items()):
            print(f"  {k:24s} {v:10.1f}")


if __name__ == "__main__":
    main()
