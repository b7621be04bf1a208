"""Speed of the flow-level network: wall time and flow events/s (flow starts + completions per
second of wall time) for

1. one uniform EP64 all-to-all among 64 GPUs on 8 nodes (4,032 flows)       target < 50 ms
2. DeepSeek's whole EP traffic at once: 32 concurrent EP64 all-to-alls on the 2,048-GPU
   multi-plane fat tree (~129k flows), EP groups on 8 consecutive nodes    target < 30 s
   (and, as a stress case, EP groups strided across leaves so that ECMP collisions give
   thousands of distinct flow rates)
3. a global all-to-all at growing GPU counts, with the fitted growth exponent of wall time
   against flow count.

    python benchmarks/bench_network.py [--max-gpus 1024] [--completion-rtol 0.01]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import simpy

from sim.network.flows import FlowNetwork
from sim.network.spec import load_cluster
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology, build_topology

TOPOLOGY = Path(__file__).resolve().parent.parent / "topologies" / "deepseek-v3-mpft.yaml"
TOKEN_BYTES = 4096 * 7168  # one micro-batch of 4096 tokens, hidden 7168, FP8 dispatch (1 byte)


def alltoall_pairs(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    src, dst = [], []
    for gpus in groups:
        s, d = np.repeat(gpus, len(gpus)), np.tile(gpus, len(gpus))
        keep = s != d
        src.append(s[keep])
        dst.append(d[keep])
    return np.concatenate(src), np.concatenate(dst)


def run(topo: Topology, groups: list[np.ndarray], rtol: float) -> tuple[float, float, int, int]:
    src, dst = alltoall_pairs(groups)
    per_pair = TOKEN_BYTES / len(groups[0])
    env = simpy.Environment()
    net = FlowNetwork(env, topo, completion_rtol=rtol)
    t0 = time.perf_counter()
    net.send_batch(src, dst, np.full(len(src), per_pair))
    env.run()
    return time.perf_counter() - t0, env.now, len(src), net.stats.recomputes


def ep_groups(nodes: list[np.ndarray], g: int = 8) -> list[np.ndarray]:
    return [(n[:, None] * g + np.arange(g)).ravel() for n in nodes]


def report(label: str, wall: float, sim_t: float, flows: int, recomputes: int, target: float | None = None) -> None:
    verdict = "" if target is None else ("  meets" if wall < target else "  MISSES") + f" target {target:g} s"
    print(
        f"{label:<46}{flows:>9,} flows  wall {wall:8.3f} s  {2 * flows / wall:>12,.0f} flow events/s"
        f"  recomputes {recomputes:>4}  simulated {sim_t * 1e3:7.3f} ms{verdict}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-gpus", type=int, default=1024)
    ap.add_argument("--completion-rtol", type=float, default=COMPLETION_RTOL)
    ap.add_argument("--skip-stress", action="store_true", help="skip the strided (ECMP collision) case")
    a = ap.parse_args()
    topo = build_topology(load_cluster(TOPOLOGY))
    print(f"topology {topo.spec.name}: {topo.gpus} GPUs, {topo.num_links:,} directed links; rtol {a.completion_rtol:g}")

    wall, sim_t, flows, rec = min(run(topo, ep_groups([np.arange(8)]), a.completion_rtol) for _ in range(3))
    report("EP64 all-to-all, 8 nodes", wall, sim_t, flows, rec, 0.05)

    packed = ep_groups([np.arange(8) + 8 * k for k in range(32)])
    report("32 x EP64, groups on consecutive nodes", *run(topo, packed, a.completion_rtol), 30.0)
    if not a.skip_stress:
        strided = ep_groups([np.arange(8) * 32 + k for k in range(32)])
        report("32 x EP64, groups strided across leaves", *run(topo, strided, a.completion_rtol), 30.0)

    points = []
    n = 64
    while n <= min(a.max_gpus, topo.gpus):
        wall, sim_t, flows, rec = run(topo, [np.arange(n)], a.completion_rtol)
        report(f"global all-to-all, {n} GPUs", wall, sim_t, flows, rec)
        points.append((flows, wall))
        n *= 2
    if len(points) >= 2:
        (f0, w0), (f1, w1) = points[0], points[-1]
        print(f"wall time grows as flows^{math.log(w1 / w0) / math.log(f1 / f0):.2f} from {f0:,} to {f1:,} flows")


if __name__ == "__main__":
    main()
