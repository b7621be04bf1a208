"""The plain-Python max-min solver for small problems (``maxmin_rates_lists``) against the numpy one
(``maxmin_rates``): the same rates bit for bit, on random problems with weights, caps, shared links,
equal shares (ties) and links that carry no weight, since a run takes one or the other by size."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.maxmin import maxmin_rates, maxmin_rates_lists


def _both(
    paths: list[tuple[list[int], list[float]]], capacity: list[float], caps: list[float]
) -> tuple[list[float], list[float]]:
    flows = [f for f, (ls, _) in enumerate(paths) for _ in ls]
    links = [link for ls, _ in paths for link in ls]
    weights = [w for _, ws in paths for w in ws]
    fast = maxmin_rates(
        np.array(flows, dtype=np.int64),
        np.array(links, dtype=np.int64),
        np.array(capacity),
        len(paths),
        weight=np.array(weights),
        cap=np.array(caps),
    ).tolist()
    return fast, maxmin_rates_lists(paths, capacity, caps)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_same_rates_bit_for_bit(data: st.DataObject) -> None:
    nlinks = data.draw(st.integers(1, 12))
    # few distinct values, so that shares tie and several links saturate in one round
    value = st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.5]) | st.floats(0.1, 50.0)
    capacity = data.draw(st.lists(value, min_size=nlinks, max_size=nlinks))
    paths = []
    for _ in range(data.draw(st.integers(1, 10))):
        ls = data.draw(st.lists(st.integers(0, nlinks - 1), min_size=1, max_size=nlinks, unique=True))
        ws = data.draw(
            st.lists(st.sampled_from([1.0, 0.5, 0.25]) | st.floats(0.01, 1.0), min_size=len(ls), max_size=len(ls))
        )
        paths.append((ls, ws))
    caps = data.draw(st.lists(st.just(np.inf) | value, min_size=len(paths), max_size=len(paths)))
    fast, plain = _both(paths, capacity, caps)
    assert np.array(fast).tobytes() == np.array(plain).tobytes()  # bits, so 0.0 and -0.0 differ too


def test_a_link_without_weight_is_never_a_bottleneck() -> None:
    paths = [([0, 1], [0.0, 1.0]), ([1], [1.0])]
    fast, plain = _both(paths, [1.0, 4.0], [np.inf, np.inf])
    assert fast == plain == [2.0, 2.0]


def test_a_flow_whose_links_all_carry_no_weight_is_unbounded() -> None:
    """Its link carries no weight from any flow, so it is never a bottleneck and the flow never froze: both
    solvers looped for ever. Nothing bounds it: inf, as a flow with no links."""
    paths = [([0], [0.0]), ([1], [1.0])]
    fast, plain = _both(paths, [1.0, 4.0], [np.inf, np.inf])
    assert fast == plain == [np.inf, 4.0]


def test_textbook_case_and_caps() -> None:
    # flows 0 and 1 share link 0 (10), 1 and 2 share link 1 (4); flow 0 capped at 3
    paths = [([0], [1.0]), ([0, 1], [1.0, 1.0]), ([1], [1.0])]
    assert maxmin_rates_lists(paths, [10.0, 4.0], [np.inf] * 3) == [8.0, 2.0, 2.0]
    assert maxmin_rates_lists(paths, [10.0, 4.0], [3.0, np.inf, np.inf]) == [3.0, 2.0, 2.0]
