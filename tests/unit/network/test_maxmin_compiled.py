"""The compiled max-min solver (``maxmin_rates_compiled``, numba) against the numpy one
(``maxmin_rates_numpy``): the same rates bit for bit, since a run takes one or the other by size and by
whether numba is loaded (``sim.network.maxmin.maxmin_rates``). Random problems with and without weights
and caps, ties, links that carry no weight, flows with no entries, capped flows with no entries, and a
big fabric where few links are crossed (the numpy solver renumbers them then, the compiled one always);
then the dispatch: which solver a call takes."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.network.maxmin as mm
from sim.network.maxmin import maxmin_rates, maxmin_rates_numpy
from sim.network.maxmin_compiled import maxmin_rates_compiled

VALUE = st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.5]) | st.floats(0.1, 50.0)  # few values: shares tie
EDGE = st.sampled_from([0.0, -0.0, np.inf])  # a link or cap of nothing, of a signed zero, of no limit


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray | None, np.ndarray | None]:
    nlinks = draw(st.integers(1, 12))
    spare = draw(st.sampled_from([0, 0, 100, 2000]))  # links no flow crosses (a big fabric: renumbered)
    capacity = np.array(draw(st.lists(VALUE | EDGE, min_size=nlinks, max_size=nlinks)) + [1.0] * spare)
    nflows = draw(st.integers(1, 10))
    weighted = draw(st.booleans())
    flows: list[int] = []
    links: list[int] = []
    weights: list[float] = []
    for f in range(nflows):
        path = draw(st.lists(st.integers(0, nlinks - 1), min_size=0, max_size=nlinks, unique=True))
        flows += [f] * len(path)
        links += path
        weights += draw(
            st.lists(
                st.sampled_from([1.0, 0.5, 0.25, 0.0]) | st.floats(0.01, 1.0), min_size=len(path), max_size=len(path)
            )
        )  # (weight 0: a link its flow never waits for; a flow with only such links is unbounded, inf)
    caps = None
    if draw(st.booleans()):
        caps = np.array(draw(st.lists(st.just(np.inf) | VALUE | EDGE, min_size=nflows, max_size=nflows)))
    return (
        np.array(flows, dtype=np.int64),
        np.array(links, dtype=np.int64),
        capacity,
        nflows,
        np.array(weights) if weighted else None,
        caps,
    )


@settings(max_examples=500, deadline=None)
@given(problems())
def test_the_same_rates_bit_for_bit(problem: tuple) -> None:  # type: ignore[type-arg]
    flows, links, capacity, n, weight, cap = problem
    with np.errstate(invalid="ignore"):  # (an infinite capacity less an infinite load: NaN, as compiled)
        numpy_rates = maxmin_rates_numpy(flows, links, capacity, n, weight=weight, cap=cap)
    compiled = maxmin_rates_compiled(flows, links, capacity, n, weight=weight, cap=cap)
    assert numpy_rates.tobytes() == compiled.tobytes()  # bits, so 0.0 and -0.0 differ too


def test_a_phase_sized_problem_is_the_same_bit_for_bit() -> None:
    """A problem of a DeepEP phase's size (thousands of flows of 1 to 4 links on a fabric of thousands)."""
    rng = np.random.default_rng(7)
    nlinks, nflows = 3000, 2000
    capacity = rng.choice([25e9, 50e9, 160e9], size=nlinks)
    per = rng.integers(1, 5, size=nflows)
    flows = np.repeat(np.arange(nflows), per)
    links = np.concatenate([rng.choice(nlinks, size=k, replace=False) for k in per])
    a = maxmin_rates_numpy(flows, links, capacity, nflows)
    b = maxmin_rates_compiled(flows, links, capacity, nflows)
    assert a.tobytes() == b.tobytes() and np.isfinite(a).all()


def test_a_signed_zero_capacity_gives_the_numpy_solvers_zero() -> None:
    """np.maximum(-0.0, 0.0) is +0.0: a rate of +0.0, so bytes / rate is +inf; -0.0 gave -inf."""
    one = np.zeros(1, dtype=np.int64)
    for capacity, cap in ((np.array([-0.0]), None), (np.array([1.0]), np.array([-0.0]))):
        a = maxmin_rates_numpy(one, one, capacity, 1, cap=cap)
        b = maxmin_rates_compiled(one, one, capacity, 1, cap=cap)
        assert a.tobytes() == b.tobytes() == np.zeros(1).tobytes()


def test_arguments_out_of_range_raise_as_numpy_raises() -> None:
    """numba checks no bounds: such arguments go to the numpy solver, which raises (no memory read past an
    array)."""
    flows = np.array([0, 1], dtype=np.int64)
    with pytest.raises(IndexError):
        maxmin_rates_compiled(flows, np.array([0, 5], dtype=np.int64), np.ones(2), 2)
    with pytest.raises(IndexError):
        maxmin_rates_compiled(flows, np.array([0, 1], dtype=np.int64), np.ones(2), 1)


def test_large_solves_go_compiled_once_numba_is_loaded_or_numpy_has_cost_its_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(mm, "maxmin_rates_numpy", lambda *a, **k: calls.append("numpy") or np.zeros(1))
    import sim.network.maxmin_compiled as compiled

    monkeypatch.setattr(compiled, "maxmin_rates_compiled", lambda *a, **k: calls.append("compiled") or np.zeros(1))
    big = np.zeros(mm.COMPILED_ENTRIES, dtype=np.int64)
    small = big[:-1]
    capacity = np.ones(1)
    monkeypatch.setitem(sys.modules, "numba", sys.modules["numba"])  # loaded (the routing kernels load it)
    maxmin_rates(big, big, capacity, 1)
    maxmin_rates(small, small, capacity, 1)
    monkeypatch.delitem(sys.modules, "numba")  # not loaded: numpy until it has cost COMPILE_AFTER_S
    monkeypatch.setattr(mm, "_numpy_large_s", [0.0])
    maxmin_rates(big, big, capacity, 1)
    monkeypatch.setattr(mm, "_numpy_large_s", [mm.COMPILE_AFTER_S])
    maxmin_rates(big, big, capacity, 1)
    # caps with entries out of flow order: numpy, which sorts them (the compiled solver takes them in order)
    maxmin_rates(big[::-1] - np.arange(len(big)), big, capacity, len(big), cap=np.ones(len(big)))
    assert calls == ["compiled", "numpy", "numpy", "compiled", "numpy"]
