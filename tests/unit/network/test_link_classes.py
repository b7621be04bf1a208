"""Link classes: a partition of links into equal columns that every kind reads back exactly, refined as
kinds arrive without moving any link's load."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.link_classes import LinkClasses


@st.composite
def kinds(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n = draw(st.integers(4, 30))
    capacity = np.array(draw(st.lists(st.sampled_from([1.0, 2.0]), min_size=n, max_size=n)))
    out = []
    for _ in range(draw(st.integers(1, 8))):
        links = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
        w = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0]), min_size=len(links), max_size=len(links)))
        out.append((np.array(links, dtype=np.int64), np.array(w)))
    return capacity, out


@settings(max_examples=150, deadline=None)
@given(kinds())
def test_classes_are_equal_columns_and_every_kind_reads_back_exactly(case) -> None:  # type: ignore[no-untyped-def]
    capacity, ks = case
    lc = LinkClasses(capacity)
    rng = np.random.default_rng(0)
    for k, (links, w) in enumerate(ks):
        before = lc.link_load()
        assert lc.add_kind(links, w) == k
        assert np.array_equal(lc.link_load(), before)  # a split class keeps its links' load
        lc.load[:] = rng.random(len(lc.load))  # some load, as if coflows ran, before the next kind
    column = np.zeros((len(capacity), len(ks)))
    for k, (links, w) in enumerate(ks):
        column[links, k] = w
        got_links, got_w = lc.expand(k)
        assert np.array_equal(got_links, links) and np.array_equal(got_w, w)
        cls = lc.arrays[k][0]
        assert list(lc.rep[cls]) == sorted(lc.rep[cls])  # in the order of their smallest link
        # the lists the coflow table reads are the arrays, value for value
        assert lc.lists[k][:3] == tuple(a.tolist() for a in lc.arrays[k])
        assert lc.lists[k][3] == (lc.cap[cls] * (1.0 - 1e-9)).tolist()
        assert lc.scaled_list(k, 3.7) == lc.scaled(k, 3.7).tolist()
    for c, members in enumerate(lc.members):
        if len(members):
            assert (lc.of_link[members] == c).all() and lc.rep[c] == members.min()
            assert (capacity[members] == lc.cap[c]).all()
            assert (column[members] == column[members[0]]).all()  # one column: one constraint
    crossed = np.flatnonzero(column.any(axis=1))
    assert (lc.of_link[crossed] >= 0).all() and (lc.of_link[np.flatnonzero(~column.any(axis=1))] == -1).all()
