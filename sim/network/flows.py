"""A flow-level network on the simpy engine: max-min fair sharing, recomputed as flows come and go.

``FlowNetwork.send_batch`` starts flows between GPUs and returns a simpy event that fires when the
last of them has been delivered. Each flow crosses the links of its route at its max-min fair rate;
rates are recomputed whenever flows start or finish (flows starting at the same instant are batched
into one recomputation). A flow's data is delivered its path latency (sum of per-hop latencies)
after its last byte leaves.

``completion_rtol`` trades accuracy for speed when thousands of flows finish at slightly different
times (ECMP collisions give each its own rate): at each completion event, flows whose remaining
time is at most ``completion_rtol`` x their age so far also complete, so each flow's duration is
shortened by at most that fraction and the number of recomputations stays near
ln(last/first completion time) / completion_rtol. 0 means exact.

Invariants (tested): no link carries more than its capacity at any instant; every flow finishes;
the bytes carried by each link equal the bytes of the flows that cross it.

Coflows. ``send_coflow`` starts one entity standing for many flows that progress together (a
DeepEP phase of a whole pipeline rank, a rank's pipeline sends, a ZeRO-1 collective): it carries
``link_bytes[i]`` over ``links[i]``, and alone it takes ``time_alone_s`` (what its own per-flow
model gave: SM channel limits, stragglers, its own ECMP collisions). Its rate is measured on its
most loaded link (``B`` bytes): it loads link ``i`` with ``link_bytes[i] / B`` x its rate and is
capped at ``B / time_alone_s``. It shares links max-min fairly with every other flow and coflow
(weighted water-filling, :mod:`sim.network.maxmin`), so alone it takes exactly ``time_alone_s``
and beside others no less. A coflow completes exactly (no ``completion_rtol``). While only coflows
run, each at its cap, and no link is over capacity, that allocation is already max-min fair: a
start or an end then costs O(its links), not a recomputation.

Solo coflows. A coflow that starts while no running coflow shares a link with it (no coflow of a
conflicting kind: :class:`sim.network.coflow.CoflowTable` works those out per kind), no plain flow
runs, and whose cap puts no link over capacity runs at its cap until something conflicting starts:
it ends at ``start + B / cap`` on a timer of its own, without entering the table's loads, heap and
wake-ups (most of a step's DeepEP phases: 28,000 of the default step's 32,000 coflows start so).
When a conflicting coflow or any plain flow starts, the solo coflows it would meet join the table
as if they had been there from their start (at their cap, which nothing changed while they were
solo), in the order they started, and sharing proceeds as above; their own timers go stale. The
reference mode (``incremental=False``) never runs coflows solo.

Reservations. A caller that will start coflows one after another, each when the previous one ends
(a chunk's DeepEP phases, :mod:`sim.step.chunk_comm`), can :meth:`FlowNetwork.reserve` their kinds:
granted when each of them would run solo now (and nothing conflicting is reserved), it then works out
their starts and ends itself, with no event per coflow, and reports them with :meth:`ran_solo`.
Whatever would change that (a coflow of a conflicting kind, any plain flow) first *interrupts* the
reservation: its holder is called with the time and puts the network where coflow-by-coflow starts
would have left it (the one running then as a solo coflow from its start, :meth:`start_solo_at`),
then the newcomer is handled as above. A reservation stands for exactly what the coflows would
have done one by one: each would have found no conflicting coflow at its start (any that came
later interrupted), no plain flow, and room at its cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.engine import clock
from sim.network.coflow import CoflowTable
from sim.network.linklog import CarriedLog, LinkLog
from sim.network.maxmin import maxmin_rates
from sim.network.routing import Routes, merge_routes, route, tree_bytes, tree_keys
from sim.network.tolerance import COMPLETION_RTOL
from sim.network.topology import Topology

__all__ = ["COMPLETION_RTOL", "FlowNetwork", "FlowStats"]

_REL_DONE = 1e-9


@dataclass(slots=True)
class _Solo:
    """A coflow running alone at its cap (see the module docstring)."""

    kind: int
    start: float
    time_alone_s: float
    latency_s: float
    done: simpy.Event | Callable[[float], None]
    tag: str


@dataclass(slots=True)
class _Path:
    """A one-flow route as :meth:`FlowNetwork._send_one` reads it: its links (``unique``: each once),
    its latency (a one-element array) and the link block of each link."""

    routes: Routes
    links: np.ndarray
    unique: bool
    latency: np.ndarray
    blocks: np.ndarray


def _ended_batches(batch: np.ndarray, latency: np.ndarray) -> list[tuple[int, int, float]]:
    """(batch, how many of its flows ended, their longest path latency) for the flows that ended now,
    in the order of each batch's last ended flow: the order in which :meth:`FlowNetwork._finish_done`
    fires the batches it completes. Flows are kept in the order they were sent and batch ids grow, so
    a batch's ended flows are one run of ``batch`` (checked; else flow by flow); ``now + max(lat)``
    is ``max(now + lat)`` (adding ``now`` is monotone in floats)."""
    if len(batch) < 16 or not (batch[1:] >= batch[:-1]).all():
        return [(b, 1, lat) for b, lat in zip(batch.tolist(), latency.tolist(), strict=True)]
    starts = np.flatnonzero(np.concatenate(((True,), batch[1:] != batch[:-1])))
    counts = np.diff(np.append(starts, len(batch)))
    longest = np.maximum.reduceat(latency, starts)
    return list(zip(batch[starts].tolist(), counts.tolist(), longest.tolist(), strict=True))


@dataclass
class _Batch:
    event: simpy.Event
    pending: int
    deliver_at: float = 0.0
    routes: Routes | None = None  # when its flows are exactly these routes' flows (keys memoised solves)
    size: int = 0
    start: float = 0.0
    tag: str = "flows"
    blocks: np.ndarray | None = None  # bytes per link block (logged when the run's log is on)


@dataclass
class FlowStats:
    """Counters of what the network did (for benchmarks and reports). Coflows are counted per kind as
    they start and folded into ``link_bytes`` and ``coflow_bytes`` when those are read."""

    flows: int = 0
    recomputes: int = 0
    completions: int = 0
    plain_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per link, plain flows
    table: CoflowTable | None = None
    block_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    block_names: tuple[str, ...] = ()

    @property
    def link_bytes(self) -> np.ndarray:
        """Bytes each link carried (plain flows and coflows)."""
        out = self.plain_bytes.copy()
        if self.table is not None:
            for kind, n in self.table.sent.items():
                links, link_bytes, _ = self.table.kind_arrays(kind)
                out[links] += n * link_bytes
        return out

    @property
    def coflow_delay_s(self) -> dict[tuple[str, str], float]:
        """Time the coflows of each tag lost to sharing, by the link block that held them back
        ((tag, block) -> seconds, summed over coflows; their time alone excluded)."""
        out: dict[tuple[str, str], float] = {}
        if self.table is None:
            return out
        for (tag, link), v in self.table.delay.items():
            block = self.block_names[self.block_of[link]] if 0 <= link < len(self.block_of) else "virtual"
            out[(tag, block)] = out.get((tag, block), 0.0) + v
        return out

    def block_index(self, links: np.ndarray) -> np.ndarray:
        """The link block of each of ``links`` (virtual links: the last, ``virtual``)."""
        n = len(self.block_of)
        return np.where(links < n, self.block_of[np.minimum(links, n - 1)], len(self.block_names) - 1)

    def block_bytes(self, links: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """Bytes per link block of ``nbytes[i]`` on ``links[i]`` (virtual links in the last, ``virtual``)."""
        return np.bincount(self.block_index(links), weights=nbytes, minlength=len(self.block_names))

    @property
    def coflow_bytes(self) -> dict[tuple[str, str], float]:
        """Bytes the coflows of each tag put on each link block ((tag, block) -> bytes)."""
        out: dict[tuple[str, str], float] = {}
        if self.table is None:
            return out
        for (kind, tag), n in self.table.sent_by_tag.items():
            links, link_bytes, _ = self.table.kind_arrays(kind)
            per_block = self.block_bytes(links, link_bytes)
            for b in np.flatnonzero(per_block).tolist():
                key = (tag, self.block_names[b])
                out[key] = out.get(key, 0.0) + n * float(per_block[b])
        return out


class FlowNetwork:
    """Max-min fair flow network over a :class:`Topology`, driven by a simpy environment."""

    SOLVE_MEMO_SIZE = 4096  # memoised plain-flow solves kept (keyed by the active batches' routes)
    PATHS_SIZE = 4096  # one-flow routes whose links and blocks are kept worked out
    ROUTES_MEMO_SIZE = 256  # batches' routes kept by routes_of (an EP group's notify: 64 x 63 flows each)
    reservations = True  # whether :meth:`reserve` may grant (False: every coflow one by one; tests compare)

    def __init__(
        self,
        env: simpy.Environment,
        topo: Topology,
        seed: int | None = None,
        completion_rtol: float = COMPLETION_RTOL,
        on_rates: Callable[[float, np.ndarray, np.ndarray], None] | None = None,
        incremental: bool = True,
        solo: bool = True,
    ) -> None:
        self.env = env
        self.topo = topo
        self.seed = seed
        self.completion_rtol = completion_rtol
        self.on_rates = on_rates  # test hook: (time, link load in bytes/s, capacity) after each recompute
        self.capacity = topo.capacity.copy()  # grows with virtual links
        self.stats = FlowStats(plain_bytes=np.zeros(topo.num_links))
        # active flows (compacted arrays)
        self._remaining = np.zeros(0)
        self._size = np.zeros(0)
        self._rate = np.zeros(0)
        self._latency = np.zeros(0)
        self._start = np.zeros(0)
        self._batch = np.zeros(0, dtype=np.int64)
        self._entry_flow = np.zeros(0, dtype=np.int64)
        self._entry_link = np.zeros(0, dtype=np.int64)
        self._batches: dict[int, _Batch] = {}
        self._users = np.zeros(topo.num_links, dtype=np.int64)  # active plain-flow entries on each link
        self._solve_memo: dict[tuple[int, ...], tuple[list[Routes | None], np.ndarray]] = {}
        self._next_batch = 0
        self._route_cache: dict[tuple[int, int], Routes] = {}
        self._routes_memo: dict[tuple[bytes, bytes], Routes] = {}
        self._alone_memo: dict[tuple[int, bytes], tuple[Routes, np.ndarray]] = {}
        self._paths: dict[int, _Path] = {}  # by id of the route (the entry keeps it alive)
        self._last = 0.0
        self._generation = 0
        self._recompute_pending = False
        self._wake_at = np.inf  # when the next completion wakes the network
        self.coflows = CoflowTable(self.capacity)
        self._block_names = (*topo.blocks, "virtual")
        self._block_of = np.full(topo.num_links, len(topo.blocks), dtype=np.int64)
        for b, block in enumerate(topo.blocks.values()):
            self._block_of[block.offset : block.offset + block.count] = b
        self.stats.table = self.coflows
        self.stats.block_of = self._block_of
        self.stats.block_names = self._block_names
        self._free_virtual: dict[int, list[np.ndarray]] = {}  # released virtual links, by count
        self._post: list[tuple[Callable[[float], None], float]] = []  # ended coflows' callbacks
        self._solo: dict[int, _Solo] = {}  # coflows running alone at their cap, by id
        self._solo_by_kind: dict[int, set[int]] = {}
        self._solo_next = 0
        self._reserved: dict[int, Callable[[float], None]] = {}  # kinds held by a reservation: its holder
        self.incremental = incremental  # False: every change re-solves every flow and coflow (the reference)
        self.solo = solo and incremental  # coflows that meet nobody run on timers of their own (docstring)
        self.log: LinkLog | None = None  # what finished, from the run's origin (SimContext.start_main turns it on)
        self.origin = 0.0

    def add_virtual_links(self, capacity_Bps: np.ndarray) -> np.ndarray:
        """Extra capacity constraints (e.g. the SMs driving a GPU's communication); returns their ids.

        A flow passes through a virtual link when it is named in ``send_batch(..., extra_links=...)``.
        """
        capacity_Bps = np.asarray(capacity_Bps, dtype=np.float64)
        pool = self._free_virtual.get(len(capacity_Bps))
        if pool:  # released ones of that count: the arrays keep their size (a big fabric's are long)
            ids = pool.pop()
            self.capacity[ids] = capacity_Bps
            return ids
        ids = np.arange(len(self.capacity), len(self.capacity) + len(capacity_Bps))
        self.capacity = np.concatenate([self.capacity, capacity_Bps])
        self.stats.plain_bytes = np.concatenate([self.stats.plain_bytes, np.zeros(len(capacity_Bps))])
        self._users = np.concatenate([self._users, np.zeros(len(capacity_Bps), dtype=np.int64)])
        self.coflows.grow_links(self.capacity)
        return ids

    def release_virtual_links(self, ids: np.ndarray) -> None:
        """Virtual links that no flow crosses any more, to be handed out again by
        :meth:`add_virtual_links` (with the capacity given then)."""
        if self._users[ids].any():
            raise RuntimeError("cannot release virtual links that active flows cross")
        self._free_virtual.setdefault(len(ids), []).append(ids)

    def rewind(self, now: float) -> None:
        """The clock was set back to ``now`` (:meth:`sim.network.context.SimContext.run_alone`): only
        an idle network can follow it."""
        if len(self._remaining) or self.coflows.active or self._solo or self._reserved:
            raise RuntimeError("cannot rewind a network with active flows")
        self._last = now
        self._generation += 1
        self._wake_at = np.inf
        self._recompute_pending = False

    @contextmanager
    def scratch_coflows(self) -> Iterator[None]:
        """Coflows started inside run on a table of their own, dropped at the end (measurements
        alone, :meth:`sim.network.context.SimContext.run_alone`): the kinds they bring do not refine
        the run's link classes (:mod:`sim.network.link_classes`) nor count in its statistics."""
        if self.coflows.active or self._solo or self._reserved:
            raise RuntimeError("scratch coflows need an idle coflow table")
        kept = self.coflows
        self.coflows = self.stats.table = CoflowTable(self.capacity)
        try:
            yield
        finally:
            self.coflows = self.stats.table = kept

    @property
    def active_coflows(self) -> int:
        return len(self.coflows.active) + len(self._solo) + len(set(self._reserved.values()))

    def send_coflow(
        self, links: np.ndarray, link_bytes: np.ndarray, time_alone_s: float, latency_s: float = 0.0, tag: str = ""
    ) -> simpy.Event:
        """Start a coflow now (see the module docstring); the event fires ``latency_s`` after its
        last byte (value: that time). Pass the same ``links`` and ``link_bytes`` arrays for coflows of
        the same kind (their sharing with other kinds is worked out once)."""
        event = self.env.event()
        self.start_coflow(links, link_bytes, time_alone_s, latency_s, tag, event)
        return event

    def start_coflow(
        self,
        links: np.ndarray,
        link_bytes: np.ndarray,
        time_alone_s: float,
        latency_s: float,
        tag: str,
        done: simpy.Event | Callable[[float], None],
    ) -> None:
        """:meth:`send_coflow` that ends by succeeding ``done``, or by calling ``done(time)`` at that
        time (no event: a caller that chains thousands of coflows, :mod:`sim.step.shared`)."""
        if len(links) == 0 or not time_alone_s > 0:
            self._fire(done, self.env._now + max(time_alone_s, 0.0) + latency_s)
            return
        table = self.coflows
        kind = table.kind_of(links, link_bytes)
        self.stats.flows += 1
        if self._reserved:
            self._interrupt(table.conflicts(kind))
        if (
            self.solo
            and not len(self._remaining)
            and table.runs_solo(kind, table.size_of(kind) / time_alone_s, self._solo_by_kind)
        ):
            self._start_solo(kind, self.env._now, time_alone_s, latency_s, tag, done)
            return
        self._advance()
        if self._solo_by_kind:
            self._join_solos(kind)
        slot = table.add(kind, time_alone_s, latency_s, done, tag, self.env._now)
        if table.dirty or len(self._remaining) or self._recompute_pending or not self.incremental:
            self._schedule_step()
        else:  # at its cap and nothing over capacity: only the next wake may move earlier
            self._wake_by(table.end_time(slot))

    def _start_solo(
        self,
        kind: int,
        start: float,
        time_alone_s: float,
        latency_s: float,
        tag: str,
        done: simpy.Event | Callable[[float], None],
        end: float | None = None,
    ) -> None:
        """A solo coflow from ``start``; its timer fires ``end - now`` from now (or, given ``end``, at
        exactly ``end``: a coflow started at ``start`` on a reservation, :meth:`start_solo_at`)."""
        table = self.coflows
        table.count(kind, tag)
        sid = self._solo_next
        self._solo_next += 1
        self._solo[sid] = _Solo(kind, start, time_alone_s, latency_s, done, tag)
        mine = self._solo_by_kind.get(kind)
        if mine is None:
            self._solo_by_kind[kind] = {sid}
        else:
            mine.add(sid)
        if end is None:
            now = self.env._now
            size = table.size_of(kind)
            finish = now + size / (size / time_alone_s)  # as the table computes it: start + bytes / cap
            clock.after(self.env, finish - now, lambda _e: self._end_solo(sid))
        else:
            clock.at(self.env, end, lambda _e: self._end_solo(sid))

    # ------------------------------------------------------------------ reservations (docstring)
    def reserve(
        self, kinds: Sequence[int], caps: Sequence[float], holder: Callable[[float], None], first: int = 0
    ) -> bool:
        """Hold ``kinds[first:]`` (coflows of these kinds at ``caps[first:]``, to run one after another) for
        ``holder``, called with the time if something conflicting starts before :meth:`release`.
        Granted (True) when no plain flow runs and each would run solo now: no coflow in the table,
        solo or reserved shares a link with it, and alone at its cap it fits. (A caller that reserves
        the rest of the same lists again and again passes the same list objects: the kinds they
        conflict with are worked out once, :meth:`CoflowTable.reservable`.)"""
        if not (self.solo and self.reservations) or len(self._remaining):
            return False
        table = self.coflows
        conflicts = table.reservable(kinds, caps, first)
        if conflicts is None:
            return False
        reserved = self._reserved
        if reserved and not conflicts.isdisjoint(reserved):
            return False
        if not conflicts.isdisjoint(table.active_kinds()) or not conflicts.isdisjoint(self._solo_by_kind):
            return False
        for kind in kinds[first:]:
            reserved[kind] = holder
        return True

    def release(self, kinds: Iterable[int]) -> None:
        """End a reservation of ``kinds`` (its coflows are over, or its holder was interrupted)."""
        for kind in kinds:
            self._reserved.pop(kind, None)

    def ran_solo(self, kinds: Sequence[int], starts: list[float], ends: list[float], tags: list[str]) -> None:
        """Count the coflows of ``kinds`` that ran solo on a reservation, ``kinds[i]`` from ``starts[i]``
        to ``ends[i]`` with tag ``tags[i]`` (what :meth:`start_coflow` and each solo end would have
        counted and logged; a reservation's phases in order, one call for the lot)."""
        n = len(starts)
        if not len(kinds) == len(ends) == len(tags) == n:
            raise ValueError(
                f"{len(kinds)} kinds, {n} starts, {len(ends)} ends, {len(tags)} tags: one of each per coflow"
            )
        self.stats.flows += n
        self.stats.completions += n
        table, log, origin = self.coflows, self.log, self.origin
        sent, by_tag = table.sent, table.sent_by_tag
        for i in range(n):
            kind = kinds[i]
            key = (kind, tags[i])
            sent[kind] = sent.get(kind, 0) + 1
            by_tag[key] = by_tag.get(key, 0) + 1
        if log is not None:
            log.add_coflows([s - origin for s in starts], [e - origin for e in ends], kinds, tags)

    def start_solo_at(
        self, kind: int, start: float, end: float, time_alone_s: float, tag: str, done: Callable[[float], None]
    ) -> None:
        """A reserved coflow running now, started at ``start`` and, solo, ending at ``end``: a solo
        coflow from ``start`` (its holder was interrupted; the newcomer may make it join the table)."""
        self.stats.flows += 1
        self._start_solo(kind, start, time_alone_s, 0.0, tag, done, end)

    def _interrupt(self, kinds: set[int] | None) -> None:
        """Interrupt the reservations holding any of ``kinds`` (every one: None), in the order granted."""
        reserved = self._reserved
        if kinds is None:
            hit = set(reserved)
        else:
            if reserved.keys().isdisjoint(kinds):  # most starts meet no reservation (walks the smaller)
                return
            hit = {k for k in reserved if k in kinds} if len(reserved) < 64 else set(reserved).intersection(kinds)
        holders = list(dict.fromkeys(h for k, h in reserved.items() if k in hit))
        now = self.env._now
        for holder in holders:
            holder(now)

    def _end_solo(self, sid: int) -> None:
        solo = self._solo.pop(sid, None)
        if solo is None:  # it joined the table: its end is the table's
            return
        mine = self._solo_by_kind[solo.kind]
        mine.discard(sid)
        if not mine:
            del self._solo_by_kind[solo.kind]
        now = self.env._now
        self.stats.completions += 1
        if self.log is not None:
            self.log.add_coflow(solo.start - self.origin, now - self.origin, solo.kind, solo.tag)
        if isinstance(solo.done, simpy.Event) or solo.latency_s > 0.0:
            self._fire(solo.done, now + solo.latency_s)
        else:
            solo.done(now)

    def _join_solos(self, kind: int | None) -> None:
        """Move the solo coflows that conflict with ``kind`` (every one: None) into the table, as if they
        had started there (at their cap since their start), in the order they started."""
        table = self.coflows
        kinds = (
            list(self._solo_by_kind)
            if kind is None
            else [k for k in self._solo_by_kind if table.conflicts_with(kind, (k,))]
        )
        sids = [sid for k in kinds for sid in self._solo_by_kind.pop(k)]
        sids.sort(key=lambda sid: (self._solo[sid].start, sid))
        for sid in sids:
            solo = self._solo.pop(sid)
            slot = table.add(
                solo.kind, solo.time_alone_s, solo.latency_s, solo.done, solo.tag, solo.start, counted=True
            )
            self._wake_by(table.end_time(slot))

    def _wake_by(self, done_at: float) -> None:
        """Something started without a re-solve ends at ``done_at``: move the next wake-up there if it
        is earlier (the later one goes stale by its generation)."""
        if done_at < self._wake_at:
            self._generation += 1
            self._wake_at = done_at
            gen = self._generation
            clock.after(self.env, done_at - self.env._now, lambda _e: self._on_wake(gen))

    def _schedule_step(self) -> None:
        if not self._recompute_pending:
            self._recompute_pending = True
            clock.after(self.env, 0.0, self._on_recompute)

    @property
    def active_flows(self) -> int:
        return len(self._remaining)

    def send(self, src: int, dst: int, nbytes: float, tag: str = "flows") -> simpy.Event:
        """One flow; the event fires on delivery. Routes of single flows are cached per GPU pair."""
        routes = self._route_cache.get((src, dst))
        if routes is None:
            routes = self._route_cache[(src, dst)] = route(self.topo, np.array([src]), np.array([dst]), self.seed)
        return self.send_routes(routes, np.array([float(nbytes)]), tag)

    def route(self, src: np.ndarray, dst: np.ndarray) -> Routes:
        """The paths :meth:`send_batch` would give flows ``src[i] -> dst[i]`` (to send them again and
        again with :meth:`send_routes`)."""
        return route(self.topo, np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), self.seed)

    def routes_of(self, src: np.ndarray, dst: np.ndarray) -> Routes:
        """:meth:`route`, memoised by the arrays' contents: the same :class:`Routes` object for the same
        flows, so a batch sent again and again along them alone also finds its max-min rates memoised
        (DeepEP's notify, every rank to every other of an EP group, before each phase)."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        key = (src.tobytes(), dst.tobytes())
        hit = self._routes_memo.get(key)
        if hit is None:
            if len(self._routes_memo) >= self.ROUTES_MEMO_SIZE:
                self._routes_memo.clear()
            hit = self._routes_memo[key] = route(self.topo, src, dst, self.seed)
        return hit

    def send_batch(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        nbytes: np.ndarray,
        extra_links: np.ndarray | None = None,
        tag: str = "flows",
        trees: np.ndarray | None = None,
    ) -> simpy.Event:
        """Start many flows now; the event fires when all are delivered (value: delivery time).

        ``extra_links`` (flows x m, -1 for none) adds virtual links to each flow's route. ``trees``
        (a tree id per flow, 0..n-1): the flows of one id, which carry the same bytes, are one flow
        along the union of their routes (a multicast or reduction tree, :func:`merge_routes`).
        """
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        nbytes = np.broadcast_to(np.asarray(nbytes, dtype=np.float64), src.shape).copy()
        if trees is not None:  # the virtual links go with each branch: its sender's SMs
            routes = route(self.topo, src, dst, self.seed, tree_keys(src, dst, trees))
        else:  # a phase's messages come back in every chunk that moves the same traffic
            routes = self.routes_of(src, dst)
        if extra_links is not None and len(src):  # (no flows: an EP group of one GPU sends nothing)
            routes = _with_extra(routes, np.asarray(extra_links, dtype=np.int64).reshape(len(src), -1))
        if trees is not None:
            nbytes, n = tree_bytes(nbytes, trees)
            routes = merge_routes(routes, trees, n)
        return self.send_routes(routes, nbytes, tag)

    def send_routes(self, routes: Routes, nbytes: np.ndarray, tag: str = "flows") -> simpy.Event:
        """Start flows along precomputed routes (one per entry of ``nbytes``); ``tag`` names them in
        the run's link log."""
        if self._reserved:  # plain flows are solved with every coflow: reserved ones run one by one,
            self._interrupt(None)
        if self._solo:  # and the solo ones join the table
            self._join_solos(None)
        if len(nbytes) == 1 and self.incremental:
            return self._send_one(routes, float(nbytes[0]), tag)
        event = self.env.event()
        counts = np.diff(routes.indptr)
        self.stats.flows += len(nbytes)
        if routes.links.size:
            weights = np.repeat(nbytes, counts)
            if routes.links.size > len(self.capacity):  # a big batch: one pass over every link
                self.stats.plain_bytes += np.bincount(routes.links, weights=weights, minlength=len(self.capacity))
            else:  # summed per link touched (a bincount over every link costs more than a small send)
                touched, entry = np.unique(routes.links, return_inverse=True)
                self.stats.plain_bytes[touched] += np.bincount(entry, weights=weights)
        # flows with nothing to carry (no bytes or no links) are delivered after their latency only
        moving = (nbytes > 0) & (counts > 0)
        batch_id = self._next_batch
        self._next_batch += 1
        now = self.env._now
        deliver_now = float(routes.latency[~moving].max()) if (~moving).any() else 0.0
        if not moving.any():
            self._fire(event, now + deliver_now)
            return event
        whole = routes if bool(moving.all()) else None
        blocks = None
        if self.log is not None:
            entry_moving = np.repeat(moving, counts)
            blocks = self.stats.block_bytes(routes.links[entry_moving], np.repeat(nbytes, counts)[entry_moving])
        pending = int(moving.sum())
        self._batches[batch_id] = _Batch(event, pending, now + deliver_now, whole, pending, now, tag, blocks)
        self._advance()
        base = len(self._remaining)
        keep = np.flatnonzero(moving)
        kept_counts = counts[keep]
        entry_links = routes.links[np.repeat(moving, counts)]
        local_flow = np.repeat(np.arange(len(keep)), kept_counts)
        # Alone: no active flow or coflow crosses any of its links, and no re-solve is pending. Max-min
        # fairness decomposes over link-disjoint groups (each water-filling round treats a link only
        # with the entries that cross it), so the batch's rates among itself are its rates in the
        # whole, bit for bit, and nobody else's change.
        alone = (
            self.incremental
            and not self._recompute_pending
            and not self.coflows.active
            and not self._users[entry_links].any()
        )
        if not alone:
            rates = np.zeros(len(keep))
        elif whole is not None:
            rates = self._alone_rates(whole, local_flow, entry_links)
        else:
            rates = maxmin_rates(local_flow, entry_links, self.capacity, len(keep))
        np.add.at(self._users, entry_links, 1)
        self._entry_flow = np.concatenate([self._entry_flow, base + local_flow])
        self._entry_link = np.concatenate([self._entry_link, entry_links])
        self._remaining = np.concatenate([self._remaining, nbytes[keep]])
        self._size = np.concatenate([self._size, nbytes[keep]])
        self._rate = np.concatenate([self._rate, rates])
        self._latency = np.concatenate([self._latency, routes.latency[keep]])
        self._start = np.concatenate([self._start, np.full(len(keep), now)])
        self._batch = np.concatenate([self._batch, np.full(len(keep), batch_id)])
        if not alone:
            self._schedule_step()
            return event
        self._report_rates()
        self._wake_by(now + float((nbytes[keep] / rates).min()))
        return event

    def _alone_rates(self, routes: Routes, local_flow: np.ndarray, entry_links: np.ndarray) -> np.ndarray:
        """Max-min rates of a whole batch alone on its links: a function of its routes and their links'
        capacities (a virtual link may come back with another), memoised by both."""
        key = (id(routes), self.capacity[entry_links].tobytes())
        hit = self._alone_memo.get(key)
        if hit is not None and hit[0] is routes:
            return hit[1]
        rates = maxmin_rates(local_flow, entry_links, self.capacity, routes.num_flows)
        if len(self._alone_memo) >= self.ROUTES_MEMO_SIZE:
            self._alone_memo.clear()
        self._alone_memo[key] = (routes, rates)  # the routes kept: their id names no other object meanwhile
        return rates

    def _path(self, routes: Routes) -> _Path:
        """What :meth:`_send_one` reads of a one-flow route, worked out once per route object."""
        hit = self._paths.get(id(routes))
        if hit is None or hit.routes is not routes:
            if len(self._paths) >= self.PATHS_SIZE:
                self._paths.clear()
            links = routes.links
            blocks = self.stats.block_index(links)
            unique = len(np.unique(links)) == len(links)
            hit = self._paths[id(routes)] = _Path(routes, links, unique, routes.latency[:1], blocks)
        return hit

    def _send_one(self, routes: Routes, nbytes: float, tag: str) -> simpy.Event:
        """:meth:`send_routes` of one flow (a pipeline send), without the batch's array work: the same
        state, rates and events (a route that crosses each link once is added with plain indexing,
        which is ``np.add.at`` for distinct indices)."""
        event = self.env.event()
        self.stats.flows += 1
        path = self._path(routes)
        links = path.links
        now = self.env._now
        if not (nbytes > 0 and links.size):
            if links.size:
                np.add.at(self.stats.plain_bytes, links, nbytes)
            self._fire(event, now + float(routes.latency[0]))
            return event
        if path.unique:
            self.stats.plain_bytes[links] += nbytes
        else:
            np.add.at(self.stats.plain_bytes, links, nbytes)
        batch_id = self._next_batch
        self._next_batch += 1
        blocks = None
        if self.log is not None:  # FlowStats.block_bytes of the route, its block of each link worked out once
            blocks = np.bincount(path.blocks, weights=np.full(len(links), nbytes), minlength=len(self._block_names))
        self._batches[batch_id] = _Batch(event, 1, now, routes, 1, now, tag, blocks)
        self._advance()
        users = self._users
        alone = not self._recompute_pending and not self.coflows.active and not users[links].any()
        rate = float(self.capacity[links].min()) if alone else 0.0  # max-min of one flow alone
        if path.unique:
            users[links] += 1
        else:
            np.add.at(users, links, 1)
        n = len(self._remaining)
        self._entry_flow = np.concatenate([self._entry_flow, np.full(len(links), n)])
        self._entry_link = np.concatenate([self._entry_link, links])
        # one element each (np.append would ravel and check every time: a send is called thousands of times)
        self._remaining = np.concatenate((self._remaining, (nbytes,)))
        self._size = np.concatenate((self._size, (nbytes,)))
        self._rate = np.concatenate((self._rate, (rate,)))
        self._latency = np.concatenate((self._latency, path.latency))
        self._start = np.concatenate((self._start, (now,)))
        self._batch = np.concatenate((self._batch, (batch_id,)))
        if not alone:
            self._schedule_step()
            return event
        self._report_rates()
        self._wake_by(now + nbytes / rate)
        return event

    def carried(self) -> CarriedLog | None:
        """The run's link log, ready to read (None before :meth:`SimContext.start_main`)."""
        if self.log is None:
            return None
        kinds = [(links, link_bytes) for links, link_bytes, _ in self.coflows.sent_kinds()]
        return CarriedLog(self.log, self.kind_block_bytes(), self._block_names, kinds)

    def kind_block_bytes(self) -> list[np.ndarray]:
        """Per coflow kind: the bytes one coflow of it puts on each link block."""
        return [self.stats.block_bytes(links, link_bytes) for links, link_bytes, _ in self.coflows.sent_kinds()]

    def _fire(self, event: simpy.Event | Callable[[float], None], at: float) -> None:
        delay = max(0.0, at - self.env._now)
        if delay == 0.0:
            self._succeed(event, at)
        else:
            clock.after(self.env, delay, lambda _e: self._succeed(event, at))

    @staticmethod
    def _succeed(event: simpy.Event | Callable[[float], None], at: float) -> None:
        if isinstance(event, simpy.Event):
            event.succeed(at)
        else:
            event(at)

    def _advance(self) -> None:
        now = self.env._now
        dt = now - self._last
        if dt > 0:
            if len(self._remaining):
                self._remaining -= self._rate * dt
        self._last = now

    def _finish_coflows(self) -> None:
        table = self.coflows
        if not table.active:
            return
        now = self.env._now
        done = table.pop_ended(now)
        self.stats.completions += len(done)
        for slot in done:
            latency = table.lat[slot]
            if self.log is not None:
                start = table.started[slot] - self.origin
                self.log.add_coflow(start, now - self.origin, table.kind[slot], table.tag[slot])
            then = table.remove(slot, now)
            if isinstance(then, simpy.Event) or latency > 0.0:
                assert isinstance(then, simpy.Event) or callable(then)
                self._fire(then, now + latency)
            else:
                assert callable(then)
                self._post.append((then, now))  # called once the network has settled (end of _step)

    def _finish_done(self) -> bool:
        """Deliver the flows that are done; True when none of the flows left shares a link with them
        (their rates stay max-min fair: no re-solve needed)."""
        if not len(self._remaining):
            return True
        now = self.env._now
        done = self._remaining <= np.maximum(_REL_DONE * self._size, 1e-6)
        if self.completion_rtol > 0 and len(self._remaining):
            # remaining / rate where the rate is positive, inf elsewhere (what the division gives there
            # for what is not already done, without a floating-point state to set and restore)
            left = np.divide(self._remaining, self._rate, out=np.full(len(self._rate), np.inf), where=self._rate > 0)
            done |= left <= self.completion_rtol * (now - self._start)
        if not done.any():
            return True
        self.stats.completions += int(done.sum())
        for batch_id, ended, lat in _ended_batches(self._batch[done], self._latency[done]):
            b = self._batches[batch_id]
            b.pending -= ended
            b.deliver_at = max(b.deliver_at, now + lat)
            if b.pending == 0:
                del self._batches[batch_id]
                if self.log is not None and b.blocks is not None:
                    self.log.batches.append((b.start - self.origin, now - self.origin, b.tag, b.blocks))
                self._fire(b.event, b.deliver_at)
        if done.all():  # every plain flow ended (a lone pipeline send, most often): nothing to compact
            np.subtract.at(self._users, self._entry_link, 1)
            self._entry_flow = self._entry_flow[:0]
            self._entry_link = self._entry_link[:0]
            self._remaining = self._remaining[:0]
            self._size = self._size[:0]
            self._rate = self._rate[:0]
            self._latency = self._latency[:0]
            self._start = self._start[:0]
            self._batch = self._batch[:0]
            return True  # only plain flows count in the users: their links have none left
        keep = ~done
        new_index = np.cumsum(keep) - 1
        entry_keep = keep[self._entry_flow]
        freed = self._entry_link[~entry_keep]
        np.subtract.at(self._users, freed, 1)
        untouched = not self._users[freed].any()
        self._entry_flow = new_index[self._entry_flow[entry_keep]]
        self._entry_link = self._entry_link[entry_keep]
        self._remaining = self._remaining[keep]
        self._size = self._size[keep]
        self._rate = self._rate[keep]
        self._latency = self._latency[keep]
        self._start = self._start[keep]
        self._batch = self._batch[keep]
        return untouched

    def _on_recompute(self, _event: object) -> None:
        self._recompute_pending = False
        self._step()

    def _on_wake(self, generation: int) -> None:
        if generation == self._generation:
            self._step(recompute=self._recompute_pending)

    def _step(self, recompute: bool = True) -> None:
        """Deliver what is done and re-solve what changed; ``recompute`` False: a wake-up at a
        completion (flows started since the last solve come with a recompute of their own). Then
        call the callbacks of the coflows that ended (they may start more)."""
        self._settle(recompute)
        while self._post:
            post, self._post = self._post, []
            for done, at in post:
                done(at)

    def _settle(self, recompute: bool) -> None:
        self._advance()
        plain = len(self._remaining)
        untouched = self._finish_done()
        running = len(self.coflows.active)
        self._finish_coflows()
        untouched = untouched and len(self.coflows.active) == running  # an ended coflow frees its links too
        self._generation += 1
        self._wake_at = np.inf
        table = self.coflows
        coflows = bool(table.active)
        if len(self._remaining) < plain and table.below:
            # plain flows ended: the coflows they held below their caps may rise (with plain flows left
            # everything is solved again below; without, only these components)
            table.dirty |= table.below
        if not len(self._remaining) and not coflows:
            return
        if len(self._remaining) and not coflows and untouched and not recompute and self.incremental:
            pass  # only link-disjoint flows ended: the others' rates are still max-min fair
        elif len(self._remaining) or not self.incremental:
            self._solve()
        elif table.dirty:
            self.stats.recomputes += table.solve_dirty(self.env._now)
            self._report_rates()
        dt = np.inf
        if len(self._remaining):
            dt = float((self._remaining / self._rate).min())
        if coflows:
            dt = min(dt, table.next_end() - self.env._now)
        gen = self._generation
        now = self.env._now
        wake = now + max(dt, 0.0)
        if dt > 0.0 and wake == now:
            # the next completion is closer than the clock can tell apart from now (times far from
            # the origin: its spacing there is one ulp): wake at the next time it can hold, or the
            # flows would never advance and the loop would wake at this time for ever
            wake = float(np.nextafter(now, np.inf))
            dt = wake - now  # exact (Sterbenz), and now + dt is wake
        self._wake_at = wake
        clock.after(self.env, max(dt, 0.0), lambda _e: self._on_wake(gen))

    def _solve(self) -> None:
        """Max-min rates of every active flow and coflow together."""
        n = len(self._remaining)
        table = self.coflows
        slots, cf_flow, cf_link, cf_weight = table.entries()
        if not slots:
            key = self._batches_key() if self.incremental else None  # the reference solves everything
            hit = None if key is None else self._solve_memo.get(key)
            if hit is None:
                self._rate = maxmin_rates(self._entry_flow, self._entry_link, self.capacity, n)
                if key is not None:
                    if len(self._solve_memo) >= self.SOLVE_MEMO_SIZE:
                        self._solve_memo.clear()
                    keep = [b.routes for b in self._batches.values()]
                    self._solve_memo[key] = (keep, self._rate.copy())
            else:
                self._rate = hit[1].copy()
        else:
            entry_flow = np.concatenate([self._entry_flow, n + cf_flow])
            entry_link = np.concatenate([self._entry_link, cf_link])
            weight = np.concatenate([np.ones(len(self._entry_link)), cf_weight])
            cap = np.concatenate([np.full(n, np.inf), table.caps(slots)])
            rates = maxmin_rates(entry_flow, entry_link, self.capacity, n + len(slots), weight=weight, cap=cap)
            self._rate = rates[:n]
            table.set_rates(slots, rates[n:], self.env._now)
        self.stats.recomputes += 1
        self._report_rates()

    def _batches_key(self) -> tuple[int, ...] | None:
        """What the max-min rates of the active plain flows depend on, when every active batch still
        has all the flows of its routes: those routes, in the order their flows sit in the arrays
        (rates depend on paths only, not on bytes). A collective's ring steps repeat the same few sets
        of batches hundreds of times. None when a batch is partly delivered."""
        key = []
        for b in self._batches.values():
            if b.routes is None or b.pending != b.size:
                return None
            key.append(id(b.routes))
        return tuple(key)

    def _report_rates(self) -> None:
        if self.on_rates is None:
            return
        load = self.coflows.classes.link_load()
        if len(self._remaining):
            load += np.bincount(self._entry_link, weights=self._rate[self._entry_flow], minlength=len(self.capacity))
        self.on_rates(self.env._now, load, self.capacity)


def _with_extra(routes: Routes, extra: np.ndarray) -> Routes:
    """Append each flow's virtual links (``extra[f]``, -1 = none) to its route."""
    counts = np.diff(routes.indptr)
    valid = extra >= 0
    new_counts = counts + valid.sum(axis=1)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(new_counts, out=indptr[1:])
    links = np.empty(indptr[-1], dtype=np.int64)
    flow_of_entry = np.repeat(np.arange(len(counts)), counts)
    offset_in_flow = np.arange(len(routes.links)) - routes.indptr[flow_of_entry]
    links[indptr[flow_of_entry] + offset_in_flow] = routes.links
    rank_extra = np.cumsum(valid, axis=1) - 1
    rows, cols = np.nonzero(valid)
    links[indptr[rows] + counts[rows] + rank_extra[rows, cols]] = extra[rows, cols]
    return Routes(indptr, links, routes.latency)
