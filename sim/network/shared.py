"""The run's one flow network: a simpy environment, a topology and the FlowNetwork on it.

Everything that moves bytes in a run (pipeline sends, every EP group's DeepEP dispatch and combine)
runs as a process on this one network, so flows that overlap in time share links. ``run`` starts
processes together at the network's current time and advances it until they have all finished.
"""

from __future__ import annotations

from collections.abc import Iterable

import simpy

from sim.network.flows import FlowNetwork
from sim.network.topology import Topology


class SharedNetwork:
    def __init__(self, topo: Topology, completion_rtol: float = 1e-2) -> None:
        self.topo = topo
        self.env = simpy.Environment()
        self.net = FlowNetwork(self.env, topo, completion_rtol=completion_rtol)

    def run(self, processes: Iterable[simpy.events.ProcessGenerator]) -> float:
        """Start ``processes`` now and run until all have finished; returns the elapsed time."""
        t0 = self.env.now
        started = [self.env.process(p) for p in processes]
        if started:
            self.env.run(until=self.env.all_of(started))
        return self.env.now - t0
