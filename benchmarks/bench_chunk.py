"""Speed of the chunk model: build and time one 4-layer F&B pair (target: under 20 ms), and how many
distinct chunk timings DualPipe needs at PP16 with 120 micro-batches (the memo's size).

    python benchmarks/bench_chunk.py [--repeat 20]

Prints the first pair (DeepEP phases simulated on the flow network, then memoised) and the steady
state (ops costed and communication timed already: building the task graph and running the stream
model), then the distinct chunk count for balanced and for random routing.
"""

from __future__ import annotations

import argparse
import time

from sim.chunk.build import ChunkConfig, build_chunk
from sim.model.stages import layers_per_stage
from sim.pipeline.ops import Op
from sim.pipeline.schedules import build_schedule

TARGET_MS = 20.0


def time_pair(repeat: int) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    setup = build_chunk(ChunkConfig())
    t1 = time.perf_counter()
    setup.timer.pair(setup.stage, setup.stage)
    t2 = time.perf_counter()
    best = float("inf")
    for _ in range(repeat):
        setup.timer._memo.clear()
        s = time.perf_counter()
        setup.timer.pair(setup.stage, setup.stage)
        best = min(best, time.perf_counter() - s)
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, best * 1e3


def distinct_chunks(pp: int, n: int, per_microbatch_routing: bool) -> tuple[int, int]:
    """(chunk timings the schedule asks for, distinct ones) for DualPipe: a chunk is identified by its
    kind and its stages' content (layer count, first/last extras) and, when routing differs per
    micro-batch, by the micro-batch too."""
    sched = build_schedule("dualpipe", pp, n, 2)
    sizes = layers_per_stage(61, pp)

    def stage_class(stage: int) -> tuple[int, bool, bool]:
        model = sched.stage_model[stage]
        return (sizes[model], model == 0, model == pp - 1)

    asked, keys = 0, set()
    for actions in sched.actions:
        for a in actions:
            asked += 1
            parts = a.parts if a.op is Op.FB else (a,)
            key = (a.op.name, *((stage_class(p.stage), p.mb if per_microbatch_routing else 0) for p in parts))
            keys.add(key)
    return asked, len(keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    build_ms, first_ms, steady_ms = time_pair(args.repeat)
    print(f"build the trace configuration (profile, network, routing, ops): {build_ms:.1f} ms")
    print(f"first 4-layer F&B pair (DeepEP phases simulated, then memoised): {first_ms:.1f} ms")
    verdict = "meets" if steady_ms < TARGET_MS else "MISSES"
    print(
        f"4-layer F&B pair, build graph and time it (best of {args.repeat}): {steady_ms:.1f} ms "
        f"({verdict} {TARGET_MS:g} ms)"
    )
    for label, per_mb in (
        ("balanced routing (all micro-batches alike)", False),
        ("routing drawn per micro-batch", True),
    ):
        asked, distinct = distinct_chunks(16, 120, per_mb)
        print(f"DualPipe PP16 x 120 micro-batches, {label}: {asked} chunk timings asked, {distinct} distinct")


if __name__ == "__main__":
    main()
