"""The capacity figure (sim.serve.capacity) against the KV cache and the prefill budget, and the event
loop's decode admission against the same KV rule (sim.serve.kvcache.requests_per_rank)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.serve.capacity import capacity, prefill_rank
from sim.serve.deployment import Deployment, build, simulate_serve
from sim.serve.forward import Shape
from sim.serve.loop import bucket
from sim.serve.spec import parse_serve
from tests.serve.conftest import SERVE_FOLDER, pool, scenario

SHIPPED = SERVE_FOLDER / "deepseek-v3-h800.yaml"
INPUT, CACHED, OUTPUT = 2000, 1126, 500  # the shipped traffic: 2000 + 500 tokens, 56.3% of the prompt cached


def _shipped(**decode: Any) -> Deployment:
    data = yaml.safe_load(SHIPPED.read_text())
    data["serve"]["decode"].update(decode)
    return build(parse_serve(data, SHIPPED, SERVE_FOLDER))


def test_decode_capacity_is_what_the_kv_cache_holds_past_it() -> None:
    """DeepSeek's decode GPU holds 712,236 tokens of KV; a request reserves its prompt and whole output
    (2500 tokens), so a DP rank holds ``712236 // 2500 = 284``. The capacity figure is the forward at
    ``min(max_batch, 284)`` requests per rank: for every ``max_batch`` from 284 up it is the same
    figure, in closed form ``284 x DP x (1 + p + p^2 ...) / step(284) / nodes``. (It used to time
    ``max_batch`` requests a rank could never hold: 23.7k tokens/s per node at 65,536, a 41 s step.)"""
    d = _shipped()
    dec = d.pools["decode"]
    kv = dec.memory.kv_tokens
    fits = kv // (INPUT + OUTPUT)
    assert fits == 284  # the shipped deployment's: 712,236 tokens of KV per GPU
    m = dec.model
    p = dec.spec.mtp.acceptance
    per_step = 1 + sum(p**j for j in range(1, m.query_tokens))
    step = m.forward(Shape("decode", fits * m.query_tokens, fits, bucket(INPUT + OUTPUT / 2))).time_s
    closed = fits * m.dp * per_step / step / dec.spec.unit_nodes
    at_fit = capacity(_shipped(max_batch=fits), INPUT, CACHED, OUTPUT)["decode"]
    assert at_fit["decode_batch"] == at_fit["kv_batch"] == fits and at_fit["batch_limit"] == "max_batch"
    assert at_fit["output_tokens_per_s_per_node"] == pytest.approx(closed, rel=1e-12)
    for max_batch in (fits + 1, 316, 400, 1024, 65_536):
        row = capacity(_shipped(max_batch=max_batch), INPUT, CACHED, OUTPUT)["decode"]
        assert row == {**at_fit, "batch_limit": "kv_cache"}, max_batch
    below = capacity(_shipped(max_batch=fits - 1), INPUT, CACHED, OUTPUT)["decode"]
    assert below["decode_batch"] == fits - 1 and below["kv_batch"] == fits and below["batch_limit"] == "max_batch"
    assert below["output_tokens_per_s_per_node"] < at_fit["output_tokens_per_s_per_node"]


def test_the_loop_holds_no_more_on_a_rank_than_its_kv_cache() -> None:
    """A decode unit of 16 DP ranks with ``max_batch`` far above what its KV holds, and requests of
    2000 + 30000 tokens arriving faster than it decodes them: the busiest rank (the unit's ``n``
    requests evenly spread: ``ceil(n / 16)``) holds at most ``kv // 32000`` of them, and the unit
    reaches exactly that. (The KV cache used to be pooled over the ranks: 111 requests, 7 on the
    busiest rank, 224,000 tokens of KV on a rank that holds 222,421.) The run's output rate stays
    below the capacity figure, which times that same batch."""
    sc = scenario(
        {
            "duration_s": 5,
            "traffic": {"rate_per_s": 100, "input_tokens": 2000, "output_tokens": 30000},
            "prefill": pool(kernels="normal", max_batch_tokens=16384),
            "decode": pool(max_batch=4096),
        }
    )
    d = build(sc)
    dec = d.pools["decode"]
    kv, dp = dec.memory.kv_tokens, dec.model.dp
    fits = kv // 32000
    assert dp == 16 and 1 < fits < 4096
    assert kv * dp // 32000 > fits * dp  # pooled over the ranks, the KV would admit more
    r = simulate_serve(sc, d)
    most = max(s.requests for s in r.spans if s.kind == "decode")
    assert most == fits * dp
    assert math.ceil(most / dp) * 32000 <= kv
    cap = r.to_dict()["capacity"]["decode"]
    assert cap["decode_batch"] == fits and cap["batch_limit"] == "kv_cache"
    assert r.output_tokens_per_s_per_node <= cap["output_tokens_per_s_per_node"]


@pytest.mark.parametrize(
    ("budget", "new", "chunked", "expected"),
    [
        (16384, 874, True, (16384, 19)),  # the shipped prefill: the budget, the last prompt split
        (16384, 874, False, (15732, 18)),  # whole prompts only: 18 of 874 fit 16384
        (16384, 512, False, (16384, 32)),  # 512 divides the budget: the same full rank either way
        (16384, 512, True, (16384, 32)),
        (1000, 2500, False, (2500, 1)),  # longer than the budget: alone on the rank
        (1000, 2500, True, (1000, 1)),  # a budget's chunk of it
    ],
)
def test_a_full_prefill_rank(budget: int, new: float, chunked: bool, expected: tuple[int, int]) -> None:
    """The capacity figure's full prefill rank is the event loop's: with chunked prefill the budget
    exactly, without it the whole prompts that fit (one alone when longer than the budget)."""
    assert prefill_rank(budget, new, chunked) == expected


def test_twin_serve_names_the_batch_it_timed(tmp_path: Path) -> None:
    """The issue's run (DeepSeek's deployment, ``max_batch: 65536``): the JSON's decode capacity is at
    the 284 requests per DP rank the KV cache holds, and the table says so."""
    from tests.conftest import twin

    path = tmp_path / "cap.yaml"
    path.write_text(
        f"base: {SHIPPED}\nname: cap\nset: {{serve.duration_s: 5, serve.decode.max_batch: 65536}}\n", encoding="utf-8"
    )
    done = twin("serve", str(path), "-q", "--format", "json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)["capacity"]["decode"]
    assert (row["decode_batch"], row["kv_batch"], row["batch_limit"]) == (284, 284, "kv_cache")
    assert row["decode_step_s"] < 1  # (it was a 41 s step of 65,536 requests a rank)
    done = twin("serve", str(path), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "at 284 requests per DP rank, all its KV cache holds" in " ".join(done.stdout.split())
    from sim import __version__  # (as a run's summary.json; serve's lacked it)

    assert json.loads((tmp_path / "out" / "cap" / "summary.json").read_text())["twin_version"] == __version__
