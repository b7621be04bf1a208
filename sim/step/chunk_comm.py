"""A chunk's DeepEP phases on the shared network, one after another as its plan says.

Each phase starts at its form's value (:meth:`sim.chunk.plan.CommPlan.start`, from the ends of the
phases before it) as a coflow, and its end, which the network reports by a callback, fixes the next
start. Callbacks, not a process: a step runs some 32,000 phases, and each resume of a process is a
trip through the event queue.

Most phases meet nothing on the network (the default step: 28,000 of 32,000 run solo, 94% of those
to their end), so each is two events and a round of bookkeeping for an outcome known in advance.
When the chunk's remaining phases would all start solo now (:meth:`FlowNetwork.reserve
<sim.network.flows.FlowNetwork.reserve>`: none of their kinds shares a link with a coflow running
or reserved, no plain flow runs, each fits at its cap), the chunk reserves their kinds and works out
every start and end itself, with the very float operations the event-by-event path performs (a
timeout lands at ``now + delay``; a solo coflow ends at ``start + B / (B / time alone)``), then
waits for one event at the last end (:func:`sim.engine.clock.at`, so that end is reached exactly).
If something conflicting starts first, the network interrupts the reservation at that time: the
phases that had ended by then are counted as ended, the one running is handed to the network as a
solo coflow from its start, or the next start is scheduled, and the chunk goes on phase by phase from
there (reserving again when it can). What the network and the chunk then hold is what the phase-by-
phase path would hold at that time (events at the same instant taken as having come first), so the
step's result does not depend on the reservations (tested: the same bits with them turned off).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import simpy

from sim.chunk.plan import CommPlan
from sim.engine.clock import after, at
from sim.network.flows import FlowNetwork

TAG = "deepep"  # the phases' tag in the network's statistics and link log

Chain = list[tuple[float, float, float]]  # per reserved phase: (start offset from t0, start, end)


class ChunkComm:
    """The phases of one run of a chunk from ``env.now`` (``t0``). ``loads``: each phase's (links,
    bytes per link) arrays; ``kinds``: their coflow kinds when every one is known to the network and
    the chunk may reserve (phases that all carry bytes over links for a positive time), else None.
    ``done`` fires when the last phase has ended; ``ends`` are the phases' ends from ``t0``;
    ``starts`` their starts from ``t0`` as their forms gave them (a phase's time on the network is
    its end minus that)."""

    __slots__ = (
        "_chain",
        "_first",
        "_solo",
        "done",
        "durations",
        "ends",
        "env",
        "forms",
        "kinds",
        "loads",
        "net",
        "starts",
        "t0",
        "tags",
    )

    def __init__(
        self,
        env: simpy.Environment,
        net: FlowNetwork,
        plan: CommPlan,
        loads: Sequence[tuple[np.ndarray, np.ndarray]],
        kinds: Sequence[int] | None = None,
        tags: Sequence[str] | None = None,
        solo: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        self.env, self.net, self.loads, self.kinds = env, net, loads, kinds
        # with kinds: each phase's bytes on its most loaded link and its rate there alone (its cap), as
        # solo_rates gives them (the caller keeps them per chunk: a step reserves 5,000 times)
        self._solo = solo if solo is not None or kinds is None else solo_rates(net, kinds, plan.durations)
        self.tags = tags  # each phase's tag in the network's statistics [default: DeepEP's]
        self.forms = plan.start_forms
        self.durations = plan.durations
        self.t0 = env._now
        self.ends: list[float] = []
        self.starts: list[float] = []
        self.done = env.event()
        self._chain: Chain | None = None  # the reserved phases, from index _first
        self._first = 0
        self._next()

    def _next(self) -> None:
        ends = self.ends
        k = len(ends)
        if k == len(self.loads):
            self.done.succeed()
            return
        if self.kinds is not None and self._reserve(k):
            return
        offset, terms = self.forms[k]  # CommPlan.start, inline: the step evaluates 30,000 of them
        for j, c in terms:
            v = ends[j] + c  # j < k: a phase's form names only the phases before it
            if v > offset:
                offset = v
        self.starts.append(offset)
        start = self.t0 + offset
        now = self.env._now
        if start > now:
            after(self.env, start - now, self._launch)
        else:
            self._launch(None)

    def _launch(self, _event: object) -> None:
        k = len(self.ends)
        links, nbytes = self.loads[k]
        self.net.start_coflow(links, nbytes, self.durations[k], 0.0, self._tag(k), self._ended)

    def _tag(self, k: int) -> str:
        return TAG if self.tags is None else self.tags[k]

    def _ended(self, at: float) -> None:
        self.ends.append(at - self.t0)
        self._next()

    # ------------------------------------------------------------------ reserved phases (docstring)
    def _reserve(self, k: int) -> bool:
        """Reserve phases ``k`` onwards and work out their times; False (nothing done) if refused."""
        assert self.kinds is not None
        assert self._solo is not None
        all_sizes, caps = self._solo
        if not self.net.reserve(self.kinds, caps, self._interrupted, k):  # the same lists each time (memoised)
            return False
        sizes = all_sizes[k:]
        t0, forms = self.t0, self.forms
        ends = list(self.ends)
        now = self.env._now
        chain: Chain = []
        for i, size in enumerate(sizes):
            offset, terms = forms[k + i]
            for j, c in terms:
                v = ends[j] + c
                if v > offset:
                    offset = v
            start = t0 + offset
            s = now + (start - now) if start > now else now  # the start's timeout lands there
            finish = s + size / caps[k + i]  # the solo coflow's end, as _start_solo works it out
            e = s + (finish - s)  # and where its timeout lands
            chain.append((offset, s, e))
            ends.append(e - t0)
            now = e
        self._chain, self._first = chain, k
        at(self.env, now, lambda _e: self._chain_done(chain))
        return True

    def _commit(self, chain: Chain, count: int) -> None:
        """The first ``count`` reserved phases have ended: record and count them."""
        assert self.kinds is not None
        t0, k = self.t0, self._first
        starts, ends = self.starts, self.ends
        began: list[float] = []
        finished: list[float] = []
        for i in range(count):
            offset, s, e = chain[i]
            starts.append(offset)
            ends.append(e - t0)
            began.append(s)
            finished.append(e)
        tags = [TAG] * count if self.tags is None else list(self.tags[k : k + count])
        self.net.ran_solo(self.kinds[k : k + count], began, finished, tags)

    def _chain_done(self, chain: Chain) -> None:
        if self._chain is not chain:  # interrupted: the phases went on one by one
            return
        self._chain = None
        self.net.release(self.kinds[self._first :] if self.kinds is not None else ())
        self._commit(chain, len(chain))
        self._next()

    def _interrupted(self, now: float) -> None:
        """Something conflicting starts at ``now``: hold what phase-by-phase starts would hold."""
        chain = self._chain
        assert chain is not None and self.kinds is not None
        self._chain = None
        k = self._first
        self.net.release(self.kinds[k:])
        ended = 0
        while ended < len(chain) and chain[ended][2] <= now:
            ended += 1
        self._commit(chain, ended)
        if ended == len(chain):
            self._next()  # the last phase ended at this instant
            return
        offset, s, e = chain[ended]
        j = k + ended
        self.starts.append(offset)
        if s <= now:  # running: a solo coflow since its start, ending at e unless the newcomer slows it
            self.net.start_solo_at(self.kinds[j], s, e, self.durations[j], self._tag(j), self._ended)
        else:  # between two phases: the next one starts on time
            at(self.env, s, self._launch)


def solo_rates(net: FlowNetwork, kinds: Sequence[int], durations: Sequence[float]) -> tuple[list[float], list[float]]:
    """Each phase's bytes on its most loaded link and its cap there, ``bytes / time alone``: the rate
    :meth:`FlowNetwork.start_coflow <sim.network.flows.FlowNetwork.start_coflow>` tests for a solo
    start, and from which a solo coflow's end is worked out."""
    sizes = [net.coflows.size_of(kind) for kind in kinds]
    return sizes, [size / d for size, d in zip(sizes, durations, strict=True)]


__all__ = ["ChunkComm", "solo_rates"]
