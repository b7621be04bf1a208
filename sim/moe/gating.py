"""Gating generators: where the affinity scores (or the choices) of each token come from.

All draws come from the ``numpy.random.Generator`` passed in (built from the scenario seed).

* ``balanced``: exactly uniform expert load, as in DeepSeek's profiled run: token ``t`` is sent to
  ``node_limit`` consecutive groups (rotating with t) and ``topk/node_limit`` experts in each, on
  distinct GPUs, from a start that rotates over the group; expressed as scores so the real selection
  code picks them. Loads are exactly equal when the token count is a multiple of
  groups x experts-per-group.
* ``random``: i.i.d. affinities, uniform on (0, 1): the sigmoid of i.i.d. standard logistic
  logits (sampled as uniforms directly, about 4x faster than drawing logits and applying exp).
* ``skewed``: per-expert popularity ``p`` drawn once (Zipf exponent ``alpha`` over a random expert
  order, or Dirichlet concentration when ``dirichlet`` is set), added in logit space as
  ``log(p * experts)``; with a uniform popularity it is ``random`` exactly.
* ``replay``: a recorded token-to-expert table (CSV or Parquet, one row per token, columns
  ``e0..e{k-1}``), replayed as recorded (rows cycled); each row must be a routing the spec allows
  (distinct experts, at most ``node_limit`` nodes), else the error names the file and row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sim.errors import ScenarioError
from sim.moe.spec import MoESpec
from sim.registry import Registry

Gate = Callable[[int, MoESpec, np.random.Generator], np.ndarray]
GATES: Registry[Gate] = Registry("gate")
register_gate = GATES.register


def choices_to_scores(choices: np.ndarray, experts: int) -> np.ndarray:
    """Scores that make any selection rule that prefers high scores pick exactly ``choices``."""
    scores = np.zeros((len(choices), experts), dtype=np.float32)
    np.put_along_axis(scores, choices.astype(np.int64), 1.0, axis=1)
    return scores


@register_gate("balanced")
def balanced(tokens: int, spec: MoESpec, rng: np.random.Generator) -> np.ndarray:
    return choices_to_scores(balanced_choices(tokens, spec), spec.experts)


def balanced_choices(tokens: int, spec: MoESpec) -> np.ndarray:
    """The experts ``balanced`` makes the selection pick (sorted per row; tests check the equality).

    Token ``t`` uses groups ``t, t+1, .. t+limit-1`` (mod groups) and takes ``topk / limit`` experts in
    each; when ``limit`` does not divide ``topk`` the first ``topk % limit`` of its groups take one more.
    Over ``groups`` tokens every group then gets ``topk`` picks, and with the rotating start inside a
    group, every expert gets the same load over ``experts`` tokens. The pattern repeats every
    ``groups x experts_per_group`` (= experts) tokens, so one period is built and repeated.
    """
    period = min(tokens, spec.experts)
    t = np.arange(period)
    per_group, extra = divmod(spec.topk, spec.limit)
    counts = per_group + (np.arange(spec.limit) < extra)  # picks in the token's j-th group
    g = (t[:, None] + np.arange(spec.limit)[None, :]) % spec.groups
    # inside a group, picks are experts_per_gpu apart (distinct GPUs) from a rotating start
    start = (t // spec.groups) % spec.experts_per_group
    k = np.arange(int(counts.max()))
    within = (start[:, None, None] + k[None, None, :] * spec.experts_per_gpu) % spec.experts_per_group
    picks = g[:, :, None] * spec.experts_per_group + within
    keep = np.broadcast_to(k[None, None, :] < counts[None, :, None], picks.shape)
    choices = np.sort(picks[keep].reshape(period, spec.topk), axis=1)
    return np.resize(choices.astype(np.int16), (tokens, spec.topk))


@register_gate("random")
def random_scores(tokens: int, spec: MoESpec, rng: np.random.Generator) -> np.ndarray:
    return rng.random((tokens, spec.experts), dtype=np.float32)


def popularity(
    spec: MoESpec, rng: np.random.Generator, alpha: float = 1.0, dirichlet: float | None = None
) -> np.ndarray:
    """Per-expert popularity (sums to 1): Zipf(alpha) over a random expert order, or Dirichlet."""
    if dirichlet is not None:
        return rng.dirichlet(np.full(spec.experts, dirichlet))
    weights = (rng.permutation(spec.experts) + 1).astype(np.float64) ** -alpha
    return weights / weights.sum()


def skewed_scores(tokens: int, spec: MoESpec, rng: np.random.Generator, popular: np.ndarray) -> np.ndarray:
    """``sigmoid(logit(u) + log(p * experts))`` for uniform ``u``, computed as ``u w / (u w + 1 - u)``."""
    u = rng.random((tokens, spec.experts), dtype=np.float32)
    weighted = u * (popular * spec.experts).astype(np.float32)
    return weighted / (weighted + (1.0 - u))


@register_gate("skewed")
def skewed(tokens: int, spec: MoESpec, rng: np.random.Generator) -> np.ndarray:
    """Zipf(1) popularity drawn from the same generator, then scores."""
    return skewed_scores(tokens, spec, rng, popularity(spec, rng))


SAMPLERS = ("auto", "fast", "reference")
DRAWING = ("random", "skewed")  # the gates that draw (a seed moves them; the fast sampler serves them)


@dataclass(frozen=True)
class Gating:
    """A gate and its parameters: ``skewed`` takes a Zipf ``alpha`` or a ``dirichlet`` concentration,
    ``replay`` a ``table``.

    ``sampler`` says how ``random`` and ``skewed`` routings are drawn: ``reference`` draws every
    score and runs :func:`sim.moe.select.select_experts`; ``fast`` draws only the scores the
    selection looks at, exactly (:mod:`sim.moe.sampling`, ``docs/routing.md``); ``auto`` (default)
    is ``fast`` when numba is installed. Both give the same distribution, not the same draws.
    """

    routing: str = "balanced"
    table: str | Path | None = None
    alpha: float = 1.0
    dirichlet: float | None = None
    sampler: str = "auto"
    capacity_factor: float | None = None  # None: dropless (sim.moe.capacity)
    pad_to_capacity: bool = False  # every expert computes its whole capacity (needs capacity_factor)
    dispatcher: str = "deepep"  # how the chosen rows travel: deepep or alltoall (sim.moe.nccl_a2a)
    node_sets: bool = False  # count each token's set of remote nodes (switch multicast, sim.moe.multicast)

    @staticmethod
    def of(gating: Gating | str) -> Gating:
        return gating if isinstance(gating, Gating) else Gating(gating)

    def uses_fast_sampler(self) -> bool:
        """Whether ``random``/``skewed`` routing goes through the fast exact sampler."""
        if self.sampler not in SAMPLERS:
            raise ScenarioError("sampler", f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.routing not in DRAWING or self.sampler == "reference":
            return False
        from sim.moe.sampling import HAVE_NUMBA

        return self.sampler == "fast" or HAVE_NUMBA

    def expert_weights(self, spec: MoESpec, rng: np.random.Generator) -> np.ndarray | None:
        """The fast sampler's per-expert weights: None (``random``) or ``popularity * experts``
        (``skewed``; the popularity drawn from ``rng`` as the reference path draws it)."""
        if self.routing == "skewed":
            return popularity(spec, rng, self.alpha, self.dirichlet) * spec.experts
        return None

    def scorer(self, spec: MoESpec, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        """A function giving the scores of the next ``n`` tokens of one layer."""
        if self.routing == "replay":
            if self.table is None:
                raise ScenarioError("routing_table", "replay needs a routing table")
            table = self.table
            return lambda n: replay(table, n, spec)
        if self.routing == "skewed":
            popular = popularity(spec, rng, self.alpha, self.dirichlet)  # one popularity per layer
            return lambda n: skewed_scores(n, spec, rng, popular)
        if self.routing not in GATES:
            raise ScenarioError("routing", f"unknown routing {self.routing!r}; choose from {', '.join(GATES)}, replay")
        gate = GATES[self.routing]
        return lambda n: gate(n, spec, rng)


def load_choices(path: str | Path, spec: MoESpec) -> np.ndarray:
    """Read a token-to-expert table (CSV or Parquet; columns e0..e{topk-1}) and check that every row
    is a routing this spec allows: ``topk`` distinct experts on at most ``node_limit`` nodes.
    Returns the rows sorted (int16); the file is read once per (path, modification time, spec)."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise ScenarioError("", "no such routing table", str(path)) from None
    return _load_choices(str(path), stamp, spec)


@lru_cache(maxsize=8)
def _load_choices(path: str, _stamp: int, spec: MoESpec) -> np.ndarray:
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise ScenarioError("", f"cannot read routing table: {str(err).splitlines()[0]}", path) from None
    cols = [f"e{i}" for i in range(spec.topk)]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ScenarioError(missing[0], f"routing table needs columns {', '.join(cols)}", path)
    extra = sorted(int(c[1:]) for c in map(str, frame.columns) if re.fullmatch(r"e\d+", c) and c not in cols)
    if extra:  # (dropped without a word: a top-9 table ran as its first 8 experts)
        raise ScenarioError(
            f"e{extra[0]}",
            f"the routing table has a column past e{spec.topk - 1}: the model routes each token to {spec.topk} "
            f"experts (e0..e{spec.topk - 1}); record the table with that top-k, or remove the column",
            path,
        )
    if len(frame) == 0:
        raise ScenarioError(cols[0], "routing table has no rows", path)
    for col in cols:  # (column by column: the key named is the column at fault, with its first bad row)
        column = frame[col].to_numpy()
        if not np.issubdtype(column.dtype, np.integer):
            cells = column.tolist()
            whole = [_whole(v) for v in cells]
            if all(whole):  # (whole numbers stored as floats)
                why = f"expert ids must be stored as integers, the column holds {column.dtype} ({cells[0]!r} in row 0)"
            else:
                row = whole.index(False)
                why = f"expert ids must be integers, got {cells[row]!r} in row {row}"
            raise ScenarioError(col, why, path)
        out = (column < 0) | (column >= spec.experts)
        if out.any():
            row = int(np.argmax(out))
            raise ScenarioError(
                col, f"expert ids must be in 0..{spec.experts - 1}, got {column[row]} in row {row}", path
            )
    values = frame[cols].to_numpy()
    choices = np.sort(values.astype(np.int16), axis=1)
    repeated = (choices[:, 1:] == choices[:, :-1]).any(axis=1)
    if repeated.any():
        row = int(np.argmax(repeated))
        raise ScenarioError(
            f"row {row}", f"a token's {spec.topk} experts must be distinct, got {values[row].tolist()}", path
        )
    nodes = np.sort(choices // spec.experts_per_group, axis=1)
    reached = 1 + (nodes[:, 1:] != nodes[:, :-1]).sum(axis=1)
    over = reached > spec.limit
    if over.any():
        row = int(np.argmax(over))
        raise ScenarioError(f"row {row}", f"the token reaches {reached[row]} nodes, node_limit is {spec.limit}", path)
    choices.flags.writeable = False
    return choices


def _whole(value: object) -> bool:
    """A routing table's cell that is a whole number, as a number or as text (CSV reads a column with
    one word in it as text)."""
    if isinstance(value, str):
        return value.strip().lstrip("+-").isdigit()
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def replay_choices(path: str | Path, tokens: int, spec: MoESpec) -> np.ndarray:
    """The recorded routing itself for ``tokens`` tokens (rows cycled or cut)."""
    choices = load_choices(path, spec)
    return np.resize(choices, (tokens, choices.shape[1]))


def replay(path: str | Path, tokens: int, spec: MoESpec) -> np.ndarray:
    """Scores reproducing a recorded table (for code that works on scores, e.g. bias balancing)."""
    return choices_to_scores(replay_choices(path, tokens, spec), spec.experts)
