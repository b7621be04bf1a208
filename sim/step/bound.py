"""A lower bound on a training step's time, without the event loop (``twin sweep --best``,
:mod:`sim.sweep.screen`).

The bound is the step with every transfer free and every DeepEP phase and collective alone:

1. each action takes its chunk's time alone (the chunk model, DeepEP phases simulated alone on the
   fabric: the durations both contention modes start from, :mod:`sim.step.actions`);
2. the pipeline runs those durations with free sends (:func:`sim.pipeline.maxplus.free_send_ends`,
   every EP group's pipeline with per-GPU fidelity);
3. the DP phase runs each replica set's collectives alone after it (:func:`sim.step.simulate.isolated_dp`:
   reduce-scatters from each stage's gradients or the pipeline's end, barrier, optimizer, all-gathers).
   With FSDP (whose gathers and reduce-scatters run inside the pipeline) the bound is the pipeline's end.

Why it is a lower bound on both contention modes. The step's times are a fixed-order max-plus system
of these durations and delays: FIFO streams in the schedule's order, data dependencies, the DP
phase's order (by stage readiness, then the barrier); its times are monotone in every duration and
delay. The isolated step adds send times (flows on the fabric, at least nothing); the shared step
adds those and stretches every DeepEP phase, send and collective that shares a link (at least its
time alone: :mod:`sim.network.coflow`), FSDP's waits for weights too. So

    bound <= isolated step <= shared step

(``tests/integration/training/test_bound.py`` checks both on layouts with and without ZeRO-1's
tail overlap, per-GPU fidelity and FSDP). It costs the chunk timings and the DP collectives' times
alone (memoised across points that share a fabric): about 0.15 s for the default step against 0.3 s
isolated and 0.8 s shared.
"""

from __future__ import annotations

from sim.engine.collector import collector_paused
from sim.pipeline.maxplus import free_send_ends
from sim.step.simulate import isolated_dp, setup
from sim.step.spec import StepSpec


def step_lower_bound(spec: StepSpec) -> float:
    """A lower bound on the step time of ``spec`` in seconds (see the module docstring)."""
    _, _, _, sources, model = setup(spec)
    schedule = spec.schedule
    finished: list[tuple[int, int, float]] = []
    with collector_paused():
        for source in sources:
            durations = [[source.duration(a, schedule) for a in acts] for acts in schedule.actions]
            for device, ends in enumerate(free_send_ends(schedule, durations)):
                finished += [(device, pos, end) for pos, end in enumerate(ends)]
        if spec.inputs.layout.fsdp:
            return max((end for _, _, end in finished), default=0.0)
        _, timelines = isolated_dp(spec, model, finished)
    return max(t.end for t in timelines)


__all__ = ["step_lower_bound"]
