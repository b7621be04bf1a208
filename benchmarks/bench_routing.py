"""Speed of MoE routing: one micro-batch of the whole model on one EP group, i.e. 4096 tokens on
each of 64 GPUs through 58 MoE layers (gating + node-limited selection + deduplicated traffic).
Target: under 1 s on this machine.

    python benchmarks/bench_routing.py [--layers 58] [--random-layers 3]

Balanced gating is timed over all layers. Random gating draws 4096 x 64 x 256 scores per layer
(67M floats, in cache-sized blocks), so it is timed over a few layers and extrapolated.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.moe.alltoall import route_choices
from sim.moe.spec import MoESpec
from sim.moe.traffic import layer_traffic


def one_layer(spec: MoESpec, gate: str, tokens: int, rng: np.random.Generator) -> tuple[float, float]:
    src = np.repeat(np.arange(spec.ep), tokens)
    t0 = time.perf_counter()
    choices = route_choices(spec, len(src), gate, rng)  # gating + selection, block by block
    t1 = time.perf_counter()
    layer_traffic(choices, src, spec)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=58)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--random-layers", type=int, default=3)
    a = ap.parse_args()
    spec = MoESpec()
    rng = np.random.default_rng(0)
    for gate, layers in (("balanced", a.layers), ("random", a.random_layers)):
        parts = np.array([one_layer(spec, gate, a.tokens, rng) for _ in range(layers)])
        per_layer = parts.sum(axis=1).mean()
        sel, traffic = parts.mean(axis=0)
        total = per_layer * a.layers
        verdict = "meets" if total < 1.0 else "MISSES"
        print(
            f"{gate:<9} {a.tokens} tokens x {spec.ep} GPUs: per layer {per_layer:.3f} s (gating + selection "
            f"{sel:.3f}, traffic {traffic:.3f}); {a.layers} layers {total:.1f} s "
            f"({'measured' if layers == a.layers else f'extrapolated from {layers}'}) - {verdict} the 1 s target"
        )


if __name__ == "__main__":
    main()
