"""The forwards a run makes are bounded before it starts (the timeline's memory is checked against
that bound); the prefill queue in ``sjf`` order costs no more per forward as it grows; a request too
large for the decode KV cache is refused naming its length key (or its trace line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sim.serve.loop as loop_module
from sim.errors import ScenarioError
from sim.serve.deployment import build, requests_of, simulate_serve
from tests.serve.conftest import pool, scenario


def _split(**traffic: Any) -> dict[str, Any]:
    return {
        "prefill": pool(nodes=2, max_batch_tokens=1024),
        "decode": pool(nodes=2, max_batch=8),
        "traffic": {"input_tokens": 500, "output_tokens": 40, **traffic},
    }


@pytest.mark.parametrize(
    "serve",
    [
        {"duration_s": 10, **_split(rate_per_s=3)},
        {"duration_s": 10, **_split(rate_per_s=40, lengths="exponential")},  # a queue: batches and the drain
        {
            "duration_s": 5,
            "traffic": {"rate_per_s": 5, "input_tokens": 300, "output_tokens": 30},
            "colocated": pool(max_batch_tokens=128),
        },
    ],
)
def test_the_forwards_bound_holds_the_forwards_run(serve: dict[str, Any]) -> None:
    """:func:`forwards_bound` is an upper bound of the forwards each pool runs."""
    from sim.serve.deployment import forwards_bound

    sc = scenario(serve)
    d = build(sc)
    bound = forwards_bound(d, requests_of(sc))
    result = simulate_serve(sc, d)
    for role, p in result.pools.items():
        assert 0 < p.forwards <= bound[role], (role, p.forwards, bound[role])


def test_sjf_keeps_its_order_without_sorting_the_queue_at_every_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long ``sjf`` queue (overloaded prefill, thousands waiting) is kept in order as prompts join
    it: no forward sorts the whole queue again (that made a million-request run take 175 s instead of
    12 s). The order is still shortest remaining first, ties by arrival: the same run as a queue
    sorted at every forward."""
    sorted_items = [0]
    builtin_sorted = sorted

    def counting_sorted(items: Any, *args: Any, **kwargs: Any) -> list[Any]:
        out = builtin_sorted(items, *args, **kwargs)
        sorted_items[0] += len(out)
        return out

    monkeypatch.setattr(loop_module, "sorted", counting_sorted, raising=False)
    serve = {
        "duration_s": 4,
        "traffic": {"rate_per_s": 1500, "input_tokens": 2000, "output_tokens": 4, "lengths": "exponential"},
        "prefill": pool(nodes=2, max_batch_tokens=256, policy="sjf"),
        "decode": pool(nodes=2, max_batch=64),
    }
    result = simulate_serve(scenario(serve))
    arrived = result.to_dict()["requests"]["arrived"]
    assert result.pools["prefill"].forwards > 100
    assert sorted_items[0] <= arrived, sorted_items[0]
    # shortest first: of the requests arriving in the first second, every short prompt started its
    # prefill; long ones wait behind the shorter ones arriving after them (most never start)
    r = result.requests
    new = r.input_tokens - r.cached_tokens
    assert result.prefill_start_s is not None
    started = np.isfinite(result.prefill_start_s)
    early = r.arrival_s < 1.0
    short, long_ = early & (new <= 100), early & (new >= 4000)
    assert short.sum() > 10 and long_.sum() > 10
    assert started[short].all()
    assert started[long_].mean() < 0.5


def test_a_request_too_large_for_the_kv_cache_names_its_length_key() -> None:
    """Poisson traffic whose output does not fit a decode rank's KV cache: the output key is named."""
    sc = scenario({"duration_s": 5, **_split(rate_per_s=1, input_tokens=100, output_tokens=1_000_000)})
    with pytest.raises(ScenarioError) as info:
        simulate_serve(sc)
    assert info.value.key_path == "serve.traffic.output_tokens"
    assert info.value.file == "test-serve.yaml"


def test_a_trace_request_too_large_for_the_kv_cache_names_its_line_and_column(tmp_path: Path) -> None:
    """From a trace, the file, the line (in the file, not in arrival order) and the longer column."""
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n1.0,100,10\n0.5,900000,10\n0.1,5,5\n", encoding="utf-8")
    pools = {k: v for k, v in _split().items() if k != "traffic"}
    sc = scenario({"duration_s": 5, "traffic": {"trace": str(path)}, **pools})
    with pytest.raises(ScenarioError) as info:
        simulate_serve(sc)
    assert info.value.file == str(path)
    assert info.value.key_path == "line 3: input_tokens"


def test_a_timeline_too_large_for_the_memory_is_refused_naming_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve.timeline_spans`` (up to ten million forwards kept, ~8 GB with the trace's text) is held
    against the memory available: refused in one line when it does not fit, before the loop."""
    import sim.limits

    monkeypatch.setattr(sim.limits, "available_memory", lambda: 20 << 20)
    serve = {"duration_s": 600, "timeline_spans": 10_000_000, **_split(rate_per_s=3)}
    with pytest.raises(ScenarioError) as info:
        simulate_serve(scenario(serve))
    assert info.value.key_path == "serve.timeline_spans"
    assert info.value.file == "test-serve.yaml"
    assert "keep fewer forwards" in str(info.value)
