"""IdentityMemo: a hit only for the very objects a value was stored with."""

from __future__ import annotations

from sim.engine.identity import IdentityMemo


def test_hits_the_same_objects_only_and_clears_when_full() -> None:
    a, b = [1], [1]  # equal, not the same
    memo: IdentityMemo[str] = IdentityMemo(size=2)
    assert memo.put((a,), "a", 0) == "a"
    assert memo.get((a,), 0) == "a"
    assert memo.get((b,), 0) is None  # equal objects are not the same inputs
    assert memo.get((a,), 1) is None  # another extra key
    memo.put((b,), "b", 0)
    assert len(memo) == 2
    memo.put((a, b), "ab")  # full: cleared first
    assert len(memo) == 1 and memo.get((a,), 0) is None and memo.get((a, b)) == "ab"
