"""A run's one simulation context: one simpy environment, one flow network over the whole cluster,
one span recorder.

``run`` (the step, the schedule comparison) and every standalone command (``twin collective``,
``twin alltoall``, ``twin chunk``) make one and hand it to everything that moves bytes or uses time:
the pipeline engine, the DeepEP phases, the data-parallel collectives. So flows that overlap in
time share links, and one clock orders every event of a run.

Some figures are taken *alone* before the run's main event loop starts (a DeepEP phase's time on
its own, which the chunk model needs; a collective's time on its own, which a coflow needs as its
cap): :meth:`SimContext.run_alone` runs such processes on the same environment and network while
nothing else is active, returns the time they took, and sets the clock back to where it was (the
network is idle again, and the only events left are its stale wake-ups; coflows started alone run on
a scratch table, so their kinds do not refine the run's link classes). Measurements alone take
no simulated time, so every one of them, and the main loop, starts at the same instant whatever was
memoised before: the same inputs give the same bits in a fresh process and in a warm one.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import simpy

from sim.engine import clock
from sim.engine.recorder import Recorder
from sim.network.flows import FlowNetwork
from sim.network.linklog import LinkLog
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology


class SimContext:
    """The environment, the network over ``topology`` (none without a cluster) and the recorder."""

    def __init__(
        self, topology: Topology | None = None, completion_rtol: float = COMPLETION_RTOL, seed: int | None = None
    ) -> None:
        self.env = simpy.Environment()
        self.topo = topology
        self.net: FlowNetwork | None = (
            None if topology is None else FlowNetwork(self.env, topology, seed=seed, completion_rtol=completion_rtol)
        )
        self.recorder = Recorder()
        self.origin = 0.0

    @property
    def network(self) -> FlowNetwork:
        if self.net is None:
            raise ValueError("this run has no cluster network")
        return self.net

    def idle(self) -> bool:
        net = self.net
        return net is None or (net.active_flows == 0 and net.active_coflows == 0)

    def run_alone(self, processes: Iterable[simpy.events.ProcessGenerator]) -> float:
        """Start ``processes`` now, with nothing else on the network, and run until all have finished;
        returns the time they took."""
        if not self.idle():
            raise RuntimeError("run_alone needs an idle network (it times processes on their own)")
        processes = list(processes)
        if not processes:
            return 0.0
        env = self.env
        t0 = env._now
        # measured from a clock at 0: elapsed = (t0 + d) - t0 would round d at the magnitude of t0, so
        # the same processes timed before a run's loop (t0 = 0) and after it (t0 = the step's end, as
        # the isolated mode's collectives are) would differ in the last bits, and a memo of such times
        # (sim/step/zero1.py) would keep whichever a process computed first
        env._now = 0.0
        if self.net is not None:
            self.net.rewind(0.0)
        started = [env.process(p) for p in processes]
        log = None if self.net is None else self.net.log
        if self.net is not None:
            self.net.log = None  # taken alone: not on the run's clock, not in its link log
        try:
            with self.net.scratch_coflows() if self.net is not None else nullcontext():
                if not clock.run(env, env.all_of(started)):  # (simpy's env.run, as a loop of its own)
                    raise RuntimeError("processes run alone never finished: no events were left")
        finally:
            if self.net is not None:
                self.net.log = log
        elapsed = env._now
        if not self.idle():
            raise RuntimeError("processes run alone left flows on the network")
        # set the clock back: only the network's stale wake-ups (and no process) are left queued
        env._queue.clear()
        env._now = t0
        if self.net is not None:
            self.net.rewind(t0)
        return elapsed

    def start_main(self) -> float:
        """Mark the start of the run's main event loop (the origin of its reported times); the network
        logs what it carries from here (:mod:`sim.network.linklog`)."""
        self.origin = self.env._now
        if self.net is not None:
            self.net.origin = self.origin
            if self.net.log is None:
                self.net.log = LinkLog()
        return self.origin
