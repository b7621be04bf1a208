"""The serving event loop: requests through prefill, the KV transfer and decode, forward by forward.

Only requests and forwards are events; a forward's duration comes from the pool's memoised
:class:`~sim.serve.forward.ForwardModel`, so ten minutes of traffic cost one event per forward and a
few per request.

* **Prefill units** take requests from their queue (a request joins the unit with the fewest queued
  new tokens: DeepSeek's prefill load balancer, REFERENCE.md section 11) in ``policy`` order (first
  come, or shortest remaining first) until ``max_batch_tokens x DP ranks`` new tokens; with
  ``chunked_prefill`` a prompt that does not fit is split and continues in the next forward. A
  prompt's cached prefix (``prompt_cache_hit``) is not computed; its new tokens attend to it. The
  forward that finishes a prompt emits its first token (TTFT ends there).
* **KV transfer** (disaggregated pools): the prompt's KV cache (MLA latent, every layer) moves from
  the prefill GPU to the decode GPU over one NIC: one IB latency plus the bytes at the NIC rate.
  It is not shared with the all-to-all traffic on the fabric (a simplification the docs state).
* **Decode units** run steps back to back while they hold requests (continuous batching): at each
  step boundary they admit waiting requests (the unit with the fewest requests takes a new one: the
  decode load balancer) while the unit holds fewer than ``max_batch x DP ranks`` and its busiest DP
  rank's KV cache has room for its requests' prompts and whole outputs (reserved at admission, so
  nothing is evicted; the ranks evenly loaded: ``ceil(n / DP ranks)`` requests of the unit's mean
  reservation, :func:`sim.serve.kvcache.requests_per_rank`, the rule the capacity figure uses too).
  A step produces one token per request, plus each accepted MTP draft (``mtp``): a request's steps
  are drawn at admission, each step accepting each draft with probability ``acceptance`` in order.
* **Co-located units** do both: a prefill forward whenever prompts wait (prefill first), decode
  steps otherwise; a finished prompt joins the same unit's decode (no KV transfer).

The loop keeps every request's times and each unit's busy time; :mod:`sim.serve.metrics` turns them
into the figures.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.serve.draft_steps import DraftSteps
from sim.serve.forward import GRID_RATIO, Forward, ForwardModel, Shape
from sim.serve.kvcache import requests_per_rank, reserved_tokens
from sim.serve.requests import Requests

CONTEXT_EXACT = 64  # KV lengths below this are exact; above, on a geometric grid (GRID_RATIO)
DRAIN_FACTOR = 4.0  # after the last arrival, run at most this many durations (and 60 s) to drain
KV_SAMPLES = 4000  # KV-occupancy points kept per unit
PROGRESS_EVERY = 8192  # events between progress reports


def bucket(x: float) -> int:
    """``x`` rounded to the grid (exact below :data:`CONTEXT_EXACT`, then to the nearest point of a
    geometric grid of ratio ``GRID_RATIO``: within 3% of itself)."""
    if x <= CONTEXT_EXACT:
        return max(0, round(x))
    k = round(math.log(x / CONTEXT_EXACT) / math.log(GRID_RATIO))
    return round(CONTEXT_EXACT * GRID_RATIO**k)


@dataclass
class Span:
    pool: str
    unit: int
    start_s: float
    end_s: float
    kind: str
    tokens: int
    requests: int


@dataclass
class Unit:
    role: str
    index: int
    model: ForwardModel
    kv_capacity: int  # tokens of KV cache the unit holds (every DP rank)
    kv_per_rank: int  # ... one DP rank holds (a request's KV stays on its rank)
    queue: deque[list[int]] = field(default_factory=deque)  # prefill items [request, remaining new, done new]
    sjf: bool = False  # the queue in shortest-remaining-first order: ``heap`` holds it instead of ``queue``
    heap: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (remaining new, request, item)
    batch: list[list[int]] = field(default_factory=list)  # the running prefill: [request, tokens, prefix]
    queued_tokens: int = 0
    waiting: deque[int] = field(default_factory=deque)  # decode: requests with their KV, not admitted
    finish: list[tuple[int, int]] = field(default_factory=list)  # heap (finish step, request)
    active: int = 0
    step: int = 0
    kv_reserved: int = 0
    rate_sum: float = 0.0  # tokens per step of the active requests
    rate_admit: float = 0.0  # sum of rate x admission step
    prompt_sum: int = 0
    busy: bool = False
    busy_s: float = 0.0
    compute_s: float = 0.0
    comm_s: float = 0.0
    gpu_compute_s: np.ndarray | None = None
    inflight: tuple[float, Forward] | None = None  # the forward running: its start and times (counted as it ends)
    forwards: int = 0
    kv_t: list[float] = field(default_factory=list)
    kv_used: list[float] = field(default_factory=list)
    kv_seen: int = 0  # occupancy samples offered
    kv_peak: float = 0.0  # the highest occupancy offered (kept or thinned away)
    kv_stride: int = 1  # keep one of this many

    def enqueue(self, item: list[int]) -> None:
        """A prompt joins the prefill queue: at its end (``fcfs``), or in shortest-remaining-first order
        (``sjf``: a heap, so a queue of millions is not re-sorted at every forward)."""
        if self.sjf:
            heapq.heappush(self.heap, (item[1], item[0], item))
        else:
            self.queue.append(item)

    def prompts_waiting(self) -> bool:
        return bool(self.heap) if self.sjf else bool(self.queue)

    def head(self) -> list[int]:
        """The prompt the queue serves next (``fcfs``: the first to come; ``sjf``: the fewest new tokens
        left, ties by arrival)."""
        return self.heap[0][2] if self.sjf else self.queue[0]

    def pop_head(self) -> None:
        if self.sjf:
            heapq.heappop(self.heap)
        else:
            self.queue.popleft()

    def head_advanced(self) -> None:
        """The head's remaining tokens fell (a chunk of it taken): its place in the ``sjf`` order is
        the head still, under its new key."""
        if self.sjf:
            item = self.heap[0][2]
            heapq.heapreplace(self.heap, (item[1], item[0], item))

    def kv_in_use(self) -> float:
        return self.prompt_sum + self.step * self.rate_sum - self.rate_admit


@dataclass
class LoopResult:
    first_token_s: np.ndarray  # absolute time of the first token (nan: never)
    finish_s: np.ndarray  # absolute time of the last token (nan: never)
    prefill_start_s: np.ndarray
    decode_admit_s: np.ndarray
    units: list[Unit]
    spans: list[Span]
    end_s: float
    in_system_area: float  # integral of requests in the system over [0, end_s]
    queue_area: float  # integral of requests waiting for prefill
    generated_tokens: float  # output tokens produced by end_s (first tokens included)
    generated_in_window: float  # ... by duration_s (the end of arrivals)
    prefilled_tokens: int  # new prompt tokens computed


class Loop:
    def __init__(
        self,
        requests: Requests,
        prefill: list[Unit],
        decode: list[Unit],
        colocated: bool,
        kv_bytes_per_token: float,
        nic_Bps: float,
        ib_latency_s: float,
        duration_s: float,
        seed: int,
        acceptance: float,
        drafts: int,
        timeline_spans: int,
    ) -> None:
        self.r = requests
        self.prefill, self.decode, self.colocated = prefill, decode, colocated
        self.kv_bytes_per_token, self.nic_Bps, self.ib_latency_s = kv_bytes_per_token, nic_Bps, ib_latency_s
        self.duration_s = duration_s
        # a request's decode steps, drawn at admission (sim.serve.draft_steps)
        self._steps = DraftSteps(np.random.default_rng([seed, 7]), acceptance, drafts)
        n = len(requests)
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.pstart = np.full(n, np.nan)
        self.admit = np.full(n, np.nan)
        self.rates = np.zeros(n)
        self.admit_step = np.zeros(n, dtype=np.int64)
        self.events: list[tuple[float, int, int, int]] = []  # (time, seq, kind, a)
        self.seq = 0
        self.spans: list[Span] = []
        self.max_spans = timeline_spans
        self.now = 0.0
        self.in_system = 0
        self.queued = 0
        self.area = 0.0
        self.qarea = 0.0
        self.last = 0.0
        self.generated = 0.0
        self.generated_window: float | None = None
        self.prefilled = 0

    # events: 0 arrival(i), 1 prefill done(unit), 2 kv arrived(i), 3 decode step done(unit)
    def push(self, t: float, kind: int, a: int) -> None:
        heapq.heappush(self.events, (t, self.seq, kind, a))
        self.seq += 1

    def advance(self, t: float) -> None:
        if self.generated_window is None and t > self.duration_s:
            self.generated_window = self.generated
        self.area += self.in_system * (t - self.last)
        self.qarea += self.queued * (t - self.last)
        self.last = self.now = t

    def run(self, progress: Callable[[float], None] | None = None) -> LoopResult:
        """Move every request through; ``progress`` gets the simulated time every few thousand events."""
        for i in range(len(self.r)):
            self.push(float(self.r.arrival_s[i]), 0, i)
        limit = self.duration_s + max(60.0, DRAIN_FACTOR * self.duration_s)
        units = self.prefill + ([] if self.colocated else self.decode)
        handled = 0
        while self.events:
            t, _, kind, a = heapq.heappop(self.events)
            handled += 1
            if progress is not None and handled % PROGRESS_EVERY == 0:
                progress(t)
            if t > limit:
                self.advance(limit)
                break
            self.advance(t)
            if kind == 0:
                self.in_system += 1
                self.queued += 1
                u = min(self.prefill, key=lambda x: (x.queued_tokens, x.index))
                new = int(self.r.input_tokens[a] - self.r.cached_tokens[a])
                u.enqueue([a, new, 0])
                u.queued_tokens += new
                self._kick(u)
            elif kind == 1:
                u = self.prefill[a]
                self._prefill_done(u)
                self._kick(u)
            elif kind == 2:
                u = min(self.decode, key=lambda x: (x.active + len(x.waiting), x.index))
                u.waiting.append(a)
                self._kick(u)
            else:
                u = (self.prefill if self.colocated else self.decode)[a]
                self._step_done(u)
                self._kick(u)
        for u in units:  # forwards still running when the loop stopped: their part so far
            if u.inflight is not None:
                self._count(u, self.now)
        return LoopResult(
            self.first,
            self.finish,
            self.pstart,
            self.admit,
            units,
            self.spans,
            self.now,
            self.area,
            self.qarea,
            self.generated,
            self.generated_window if self.generated_window is not None else self.generated,
            self.prefilled,
        )

    # ------------------------------------------------------------------ prefill
    def _kick(self, u: Unit) -> None:
        if u.busy:
            return
        if u.role != "decode" and u.prompts_waiting():
            self._start_prefill(u)
        elif u.role != "prefill" and (u.active or u.waiting):
            self._start_step(u)

    def _start_prefill(self, u: Unit) -> None:
        """Fill the unit's DP ranks from its queue: each prompt (or chunk of one: a prompt's chunks
        follow each other, one per forward) goes whole to the rank with the most room, up to
        ``max_batch_tokens`` new tokens per rank; a prompt longer than that runs alone on an empty rank
        unless ``chunked_prefill`` splits it. The forward lasts as long as its busiest rank's attention
        (and the unit's experts, which see every rank's tokens)."""
        m = u.model
        ranks, cap = m.dp, m.pool.max_batch_tokens
        load = [0] * ranks
        count = [0] * ranks
        work = [0.0] * ranks  # sum of tokens x their prefix, per rank
        batch: list[list[int]] = []  # [request, tokens this forward, prefix before them]
        while u.prompts_waiting():
            r = min(range(ranks), key=load.__getitem__)
            room = cap - load[r]
            if room <= 0:
                break
            item = u.head()
            req, remaining, done = item
            if remaining <= room:
                take = remaining
            elif m.pool.chunked_prefill:
                take = room
            elif load[r] == 0:
                take = remaining  # too long for the budget: alone on an empty rank
            else:
                break  # first come, first served: the head waits for an emptier forward
            if np.isnan(self.pstart[req]):
                self.pstart[req] = self.now
                self.queued -= 1
            prefix = int(self.r.cached_tokens[req]) + done
            batch.append([req, take, prefix])
            load[r] += take
            count[r] += 1
            work[r] += take * prefix
            if take == remaining:
                u.pop_head()
            else:
                item[1] -= take
                item[2] += take
                u.head_advanced()
        tokens = sum(load)
        u.queued_tokens -= tokens
        self.prefilled += tokens
        b = max(range(ranks), key=load.__getitem__)
        # token counts and prefixes on the grid (within 3%): a trace of varied prompts times a bounded
        # number of distinct forwards
        shape = Shape("prefill", bucket(load[b]), count[b], bucket(work[b] / load[b]), bucket(-(-tokens // ranks)))
        f = m.forward(shape)
        self._busy(u, f, "prefill", tokens, len(batch))
        u.batch = batch
        self.push(self.now + f.time_s, 1, u.index)

    def _busy(self, u: Unit, f: Forward, kind: str, tokens: int, requests: int) -> None:
        u.busy = True
        u.inflight = (self.now, f)
        u.forwards += 1
        if len(self.spans) < self.max_spans:
            self.spans.append(Span(u.role, u.index, self.now, self.now + f.time_s, kind, tokens, requests))

    @staticmethod
    def _count(u: Unit, end: float | None = None) -> None:
        """Count the unit's forward in its busy times: whole as it ends, or (``end``: the loop stopped with
        it running) its part before ``end``, so that a busy share never exceeds the time simulated."""
        assert u.inflight is not None
        start, f = u.inflight
        u.inflight = None
        share = 1.0 if end is None or f.time_s <= 0 else min(1.0, max(0.0, end - start) / f.time_s)
        if share == 1.0:
            u.busy_s += f.time_s
            u.compute_s += f.compute_s
            u.comm_s += f.comm_s
            part = f.gpu_compute_s
        else:
            assert end is not None
            u.busy_s += max(0.0, end - start)
            u.compute_s += f.compute_s * share
            u.comm_s += f.comm_s * share
            part = f.gpu_compute_s * share
        u.gpu_compute_s = part.copy() if u.gpu_compute_s is None else u.gpu_compute_s + part

    def _prefill_done(self, u: Unit) -> None:
        u.busy = False
        self._count(u)
        batch, u.batch = u.batch, []
        for req, take, prefix in batch:
            if prefix + take < self.r.input_tokens[req]:
                continue  # a chunk: the prompt goes on
            self.first[req] = self.now
            self.generated += 1
            if self.r.output_tokens[req] <= 1:
                self._finished(req)
            elif self.colocated:
                u.waiting.append(req)
            else:
                kv = float(self.r.input_tokens[req]) * self.kv_bytes_per_token
                self.push(self.now + self.ib_latency_s + kv / self.nic_Bps, 2, req)

    def _finished(self, req: int) -> None:
        self.finish[req] = self.now
        self.in_system -= 1

    # ------------------------------------------------------------------ decode
    def _start_step(self, u: Unit) -> None:
        m = u.model
        cap = m.pool.max_batch * m.dp
        while u.waiting and u.active < cap:
            req = u.waiting[0]
            need = int(reserved_tokens(self.r.input_tokens[req], self.r.output_tokens[req]))
            n = u.active + 1  # the busiest rank (evenly loaded) holds ceil(n / DP) of the n at their mean
            if u.active and -(-n // m.dp) > requests_per_rank(u.kv_per_rank, u.kv_reserved + need, n):
                break
            u.waiting.popleft()
            u.kv_reserved += need
            out = int(self.r.output_tokens[req]) - 1
            steps = max(1, self._steps(out))
            rate = out / steps
            self.rates[req] = rate
            self.admit[req] = self.now
            self.admit_step[req] = u.step
            u.active += 1
            u.rate_sum += rate
            u.rate_admit += rate * u.step
            u.prompt_sum += int(self.r.input_tokens[req]) + 1
            heapq.heappush(u.finish, (u.step + steps, req))
        if not u.active:
            return
        b = -(-u.active // m.dp)
        ctx = u.kv_in_use() / u.active
        shape = Shape("decode", b * m.query_tokens, b, bucket(ctx))
        f = m.forward(shape)
        self._busy(u, f, "decode", u.active * m.query_tokens, u.active)
        self._sample_kv(u)
        self.push(self.now + f.time_s, 3, u.index)

    def _sample_kv(self, u: Unit) -> None:
        """Record the unit's KV-cache occupancy; past :data:`KV_SAMPLES` points every other one is
        dropped and the stride doubles, so the series spans the whole run."""
        u.kv_seen += 1
        used = u.kv_in_use() / u.kv_capacity
        u.kv_peak = max(u.kv_peak, used)  # (the summary's peak: a thinned series may have dropped it)
        if (u.kv_seen - 1) % u.kv_stride:
            return
        u.kv_t.append(self.now)
        u.kv_used.append(used)
        if len(u.kv_t) >= KV_SAMPLES:
            u.kv_t, u.kv_used = u.kv_t[::2], u.kv_used[::2]
            u.kv_stride *= 2

    def _step_done(self, u: Unit) -> None:
        u.busy = False
        self._count(u)
        u.step += 1
        self.generated += u.rate_sum
        while u.finish and u.finish[0][0] <= u.step:
            _, req = heapq.heappop(u.finish)
            rate = self.rates[req]
            u.active -= 1
            u.rate_sum -= rate
            u.rate_admit -= rate * self.admit_step[req]
            u.prompt_sum -= int(self.r.input_tokens[req]) + 1
            u.kv_reserved -= int(reserved_tokens(self.r.input_tokens[req], self.r.output_tokens[req]))
            self._finished(req)
        if not u.active:
            u.rate_sum = u.rate_admit = 0.0
            u.prompt_sum = 0
            u.kv_t.append(self.now)  # the unit empties: its KV cache is free again
            u.kv_used.append(0.0)
