"""Speed of the training step: the default DeepSeek-V3 step (2048 GPUs, DualPipe PP16, 120 micro-
batches) in both fidelity modes, balanced and randomly routed. Targets (issue "The DeepSeek-V3 training
step"): representative under 2 s wall, per-GPU under 60 s.

    python benchmarks/bench_step.py [--cases representative:balanced per-gpu:random ...]

Each case prints the wall time of ``simulate_training`` (scenario loading excluded, first run in the
process, so memo caches start empty), the engine's events (action spans and pipeline transfers), the
distinct chunk timings the chunk model computed, the MoE layers routed and the step time.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import yaml

from sim.config import default_scenario_path, load_scenario
from sim.run import simulate_training

ROOT = Path(__file__).resolve().parent.parent
CASES = ["representative:balanced", "per-gpu:balanced", "representative:random", "per-gpu:random"]


def scenario(
    fidelity: str, routing: str, folder: Path, topology: str = "deepseek-v3-mpft.yaml", contention: str = "shared"
) -> Path:
    """The default scenario with absolute paths and the given fidelity, routing, topology file (under
    topologies/) and contention, written to ``folder``."""
    data = copy.deepcopy(yaml.safe_load(default_scenario_path().read_text()))
    data["profile"] = str(ROOT / "calibrate" / "profiles" / "h800.json")
    data["cluster"]["topology"] = str(ROOT / "topologies" / topology)
    data["training"]["fidelity"] = fidelity
    data["training"]["contention"] = contention
    data["workload"]["routing"] = routing
    path = folder / f"{fidelity}-{routing}-{Path(topology).stem}-{contention}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=CASES, help="fidelity:routing pairs")
    args = ap.parse_args()
    print(f"{'case':28s} {'wall s':>8s} {'events':>8s} {'chunks':>7s} {'routed':>7s} {'step s':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            fidelity, routing = case.split(":")
            sc = load_scenario(scenario(fidelity, routing, Path(tmp)))
            t0 = time.perf_counter()
            run = simulate_training(sc)
            wall = time.perf_counter() - t0
            s = run.result.stats
            print(
                f"{case:28s} {wall:8.2f} {s['events']:8d} {s['chunk_timings']:7d} {s['routed_layers']:7d} "
                f"{run.result.step_time_s:8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
