"""Speed of the training step as the cluster grows: DeepSeek-V3's representative step (DualPipe PP16,
EP64, 120 micro-batches per pipeline, shared contention) at 1,024, 2,048, 16,384 and 65,536 GPUs, the
global batch scaled with the data-parallel degree (weak scaling). Target (issue "As fast as an
analytic model"): 16,384 GPUs within 2x of 2,048's time, 65,536 GPUs (the three-layer fat tree of
ISCA'25 Table 3) under 10 s.

    python benchmarks/bench_scaling.py [--gpus 1024 2048 16384 65536]

Each size runs in a fresh process (memo caches start empty, as in a user's run) and prints the wall
time of ``simulate_training`` (scenario loading excluded), the step time and the network's coflows.
What does not grow with the cluster: the pipeline of one rank of EP groups (representative fidelity)
and the data-parallel collectives, one coflow per phase of each group
(:func:`sim.network.collectives.collective_coflows`); what does: routing and solving the replica set's
groups, which grow with the data-parallel degree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    1024: ("scenarios/deepseek_v3_pretrain.yaml", {"training.gpus": 1024, "training.global_batch": 7680}),
    2048: ("scenarios/deepseek_v3_pretrain.yaml", {}),
    16384: ("scenarios/codesign/mpft-16384.yaml", {}),
    65536: ("scenarios/codesign/ft3-65536.yaml", {}),
}

CODE = """
import json, sys, time
from sim.config import load_scenario
from sim.run import simulate_training
sc = load_scenario(sys.argv[1])
t = time.perf_counter()
run = simulate_training(sc)
wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "step_s": run.result.step_time_s, "coflows": run.result.stats["flows"]}))
"""


def time_size(gpus: int) -> dict[str, float]:
    """One fresh process: the in-process seconds of the step at ``gpus`` GPUs, its step time, coflows."""
    path, sets = SIZES[gpus]
    with tempfile.TemporaryDirectory() as tmp:
        derived = Path(tmp) / f"scaling-{gpus}.yaml"
        derived.write_text(yaml.safe_dump({"base": str(ROOT / path), "set": sets}))
        done = subprocess.run(
            [sys.executable, "-c", CODE, str(derived)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", nargs="+", type=int, default=list(SIZES), choices=list(SIZES))
    args = ap.parse_args()
    print(f"{'GPUs':>7s} {'wall s':>8s} {'step s':>8s} {'coflows':>8s}")
    for gpus in args.gpus:
        r = time_size(gpus)
        print(f"{gpus:7d} {r['wall_s']:8.2f} {r['step_s']:8.3f} {int(r['coflows']):8d}", flush=True)


if __name__ == "__main__":
    main()
