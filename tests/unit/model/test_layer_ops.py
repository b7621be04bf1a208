"""Operators: their hash."""

from __future__ import annotations


def test_operator_hash_is_the_dataclass_hash_worked_out_once_and_never_pickled() -> None:
    """Operator caches the hash of its fields (what the dataclass would give, so sets and dicts of ops
    behave as before); a copy through pickle (another process: other string hashes) works it out again."""
    import dataclasses
    import pickle

    from sim.model.ops import Operator

    op = Operator("wq", "attn(F)", "gemm", m=4096, n=1536, k=7168)
    assert hash(op) == hash(tuple(getattr(op, f.name) for f in dataclasses.fields(Operator)))
    assert "_hash" in op.__dict__ and hash(op) == op.__dict__["_hash"]
    again = pickle.loads(pickle.dumps(op))
    assert "_hash" not in again.__dict__ and again == op and hash(again) == hash(op)
    assert dataclasses.replace(op, m=1) != op and {op: 1}[again] == 1
