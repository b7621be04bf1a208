"""The requests a deployment serves (sim.serve.requests): the trace CSV, every refusal of a bad one,
and Poisson arrivals with fixed or exponential lengths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.errors import ScenarioError
from sim.serve.deployment import requests_of
from sim.serve.requests import MAX_TOKENS, poisson, read_trace
from sim.serve.spec import MAX_REQUESTS, TrafficSpec
from tests.serve.conftest import pool, scenario

HEADER = "arrival_s,input_tokens,output_tokens"
H800_SERVE = Path(__file__).resolve().parents[2] / "scenarios" / "serve" / "deepseek-v3-h800.yaml"


def _write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_trace_in_any_order(tmp_path: Path) -> None:
    """Lines in any order come back sorted by arrival (ties in file order); blank lines and spaces
    around values are ignored; token counts are integers."""
    path = _write(tmp_path, f"{HEADER}\n2.5, 300, 7\n\n0.5,100,5\n1.0,200,6\n0.5, 50,9\n")
    r = read_trace(path, 0.0, 10.0)
    assert len(r) == 4
    assert r.arrival_s.tolist() == [0.5, 0.5, 1.0, 2.5]
    assert r.input_tokens.tolist() == [100, 50, 200, 300]
    assert r.output_tokens.tolist() == [5, 9, 6, 7]
    assert r.cached_tokens.tolist() == [0, 0, 0, 0]
    assert r.input_tokens.dtype == np.int64 and r.output_tokens.dtype == np.int64
    shuffled = _write(tmp_path, f"{HEADER}\n0.5,100,5\n0.5, 50,9\n2.5,300,7\n1.0,200,6\n", "b.csv")
    s = read_trace(shuffled, 0.0, 10.0)
    for f in ("arrival_s", "input_tokens", "output_tokens", "cached_tokens"):
        assert np.array_equal(getattr(r, f), getattr(s, f)), f


def test_trace_arrivals_after_the_duration_are_dropped(tmp_path: Path) -> None:
    """A request arriving at ``duration_s`` is kept; one after it is not."""
    path = _write(tmp_path, f"{HEADER}\n10.0,100,5\n10.000001,100,5\n3,100,5\n99,1,1\n")
    r = read_trace(path, 0.0, 10.0)
    assert r.arrival_s.tolist() == [3.0, 10.0]


def test_trace_cached_column_optional(tmp_path: Path) -> None:
    """Without ``cached_tokens`` the cached prefix is ``floor(input x prompt_cache_hit)``, at most
    ``input - 1`` (one token at least is prefilled); with the column, its values as given."""
    path = _write(tmp_path, f"{HEADER}\n0,1,5\n0,3,5\n0,1000,5\n0,2001,5\n")
    for hit in (0.0, 0.563, 0.999999):
        r = read_trace(path, hit, 10.0)
        want = [min(math.floor(i * hit), i - 1) for i in (1, 3, 1000, 2001)]
        assert r.cached_tokens.tolist() == want
    assert read_trace(path, 0.999999, 10.0).cached_tokens.tolist() == [0, 2, 999, 2000]
    given = _write(tmp_path, f"{HEADER},cached_tokens\n0,10,5,9\n1,10,5,0\n", "c.csv")
    assert read_trace(given, 0.5, 10.0).cached_tokens.tolist() == [9, 0]


def test_trace_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Spreadsheets write a UTF-8 byte order mark before the header: it is not part of it."""
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + f"{HEADER}\n0,10,2\n").encode())
    assert len(read_trace(path, 0.0, 1.0)) == 1


BAD = {  # name: (file text, what the error names, a word of its message)
    "bad header": ("arrival,input_tokens,output_tokens\n0,10,5\n", "line 1", "header"),
    "columns out of order": ("input_tokens,arrival_s,output_tokens\n10,0,5\n", "line 1", "header"),
    "too few values": (f"{HEADER}\n0,10\n", "line 2", "values"),
    "too many values": (f"{HEADER}\n0,10,5,1\n", "line 2", "values"),
    "not a number": (f"{HEADER}\n0,ten,5\n", "line 2: input_tokens", "not a number"),
    "empty cell": (f"{HEADER}\n0,,5\n", "line 2: input_tokens", "not a number"),
    "digit separator": (f"{HEADER}\n0,1_000,5\n", "line 2: input_tokens", "not a number: '1_000'"),
    "nan": (f"{HEADER}\nnan,10,5\n", "line 2: arrival_s", "finite"),
    "inf": (f"{HEADER}\n0,10,inf\n", "line 2: output_tokens", "finite"),
    "negative arrival": (f"{HEADER}\n-1,10,5\n", "line 2: arrival_s", ">= 0"),
    "negative tokens": (f"{HEADER}\n0,10,-5\n", "line 2: output_tokens", ">= 0"),
    "fractional tokens": (f"{HEADER}\n0,10.5,5\n", "line 2: input_tokens", "whole number"),
    "too many tokens": (f"{HEADER}\n0,{MAX_TOKENS + 1},5\n", "line 2: input_tokens", "whole number"),
    "input 0": (f"{HEADER}\n0,0,5\n", "line 2: input_tokens", ">= 1"),
    "output 0": (f"{HEADER}\n0,10,0\n", "line 2: output_tokens", ">= 1"),
    "cached = input": (f"{HEADER},cached_tokens\n0,10,5,10\n", "line 2: cached_tokens", "below input_tokens"),
    "cached > input": (f"{HEADER},cached_tokens\n0,10,5,11\n", "line 2: cached_tokens", "below input_tokens"),
    "fractional cached": (f"{HEADER},cached_tokens\n0,10,5,1.5\n", "line 2: cached_tokens", "whole number"),
    "later line": (f"{HEADER}\n0,10,5\n\n1,10,x\n", "line 4: output_tokens", "not a number"),
    "empty file": ("", "", "empty"),
    "header only": (f"{HEADER}\n\n", "", "no requests"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_trace_one_line_error(tmp_path: Path, name: str) -> None:
    """Every bad trace is refused with a ScenarioError of one line that names the file and, where
    there is one, the line and the column."""
    text, where, word = BAD[name]
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        read_trace(path, 0.0, 100.0)
    msg = str(info.value)
    assert "\n" not in msg
    assert info.value.file == str(path)
    assert msg.startswith(f"{path}: ")
    assert info.value.key_path == where
    assert word in msg, msg


def test_bad_trace_through_a_scenario(tmp_path: Path) -> None:
    """Read for a scenario (``traffic.trace``), the error still names the trace file and its line."""
    path = _write(tmp_path, f"{HEADER}\n0,10,5\n1,10,0\n")
    sc = scenario({"duration_s": 10, "traffic": {"trace": str(path)}, "colocated": pool()})
    with pytest.raises(ScenarioError) as info:
        requests_of(sc)
    assert str(info.value).startswith(f"{path}: line 3: output_tokens:")


def test_poisson_fixed_lengths() -> None:
    """Poisson arrivals: the count is Poisson(rate x duration), within 4.5 standard deviations
    (sqrt of the mean; false alarm < 1e-5); the times sorted in [0, duration); fixed lengths all
    equal; the cached prefix ``floor(input x hit)``."""
    t = TrafficSpec(rate_per_s=50.0, input_tokens=2000, output_tokens=300, prompt_cache_hit=0.563)
    mean = 50.0 * 200.0
    r = poisson(t, 200.0, np.random.default_rng(0))
    assert abs(len(r) - mean) <= 4.5 * math.sqrt(mean)
    assert (np.diff(r.arrival_s) >= 0).all()
    assert r.arrival_s.min() >= 0 and r.arrival_s.max() < 200.0
    assert (r.input_tokens == 2000).all() and (r.output_tokens == 300).all()
    assert (r.cached_tokens == math.floor(2000 * 0.563)).all()
    # the arrivals are uniform given their count: each tenth of the window holds Binomial(n, 1/10)
    counts = np.bincount((r.arrival_s // 20.0).astype(int), minlength=10)
    assert (np.abs(counts - len(r) / 10) <= 4.5 * math.sqrt(len(r) * 0.1 * 0.9)).all()


@pytest.mark.parametrize("mean_tokens", [1, 37, 2000])
def test_poisson_exponential_lengths(mean_tokens: int) -> None:
    """Exponential lengths of mean m, rounded up (at least 1): ``ceil(X)`` of ``X ~ Exp(m)`` is
    geometric on 1, 2, ... with ``q = exp(-1/m)``: mean ``1 / (1 - q)``, variance ``q / (1 - q)^2``.
    The sample means lie within 4.5 standard errors (false alarm < 1e-5 each); the cached prefix
    follows each length."""
    t = TrafficSpec(
        rate_per_s=100.0,
        input_tokens=mean_tokens,
        output_tokens=mean_tokens,
        lengths="exponential",
        prompt_cache_hit=0.5,
    )
    r = poisson(t, 200.0, np.random.default_rng(1))
    n = len(r)
    q = math.exp(-1.0 / mean_tokens)
    mu, sd = 1 / (1 - q), math.sqrt(q) / (1 - q)
    for x in (r.input_tokens, r.output_tokens):
        assert x.min() >= 1
        assert abs(x.mean() - mu) <= 4.5 * sd / math.sqrt(n), (x.mean(), mu)
    assert np.array_equal(r.cached_tokens, np.minimum(np.floor(r.input_tokens * 0.5), r.input_tokens - 1))


def test_poisson_same_seed_same_requests() -> None:
    t = TrafficSpec(rate_per_s=20.0, lengths="exponential")
    a, b = poisson(t, 30.0, np.random.default_rng(3)), poisson(t, 30.0, np.random.default_rng(3))
    for f in ("arrival_s", "input_tokens", "output_tokens", "cached_tokens"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


def test_poisson_too_many_requests_refused() -> None:
    """More than MAX_REQUESTS expected requests are refused, naming the rate."""
    t = TrafficSpec(rate_per_s=1e4)
    with pytest.raises(ScenarioError, match="rate_per_s") as info:
        poisson(t, MAX_REQUESTS / 1e4 * 2, np.random.default_rng(0))
    assert "\n" not in str(info.value)


# Poisson traffic that draws no request (it ran, exit 0, and wrote a report of null percentiles), or too
# many (the line named no file): the key named, as an empty trace is refused.
NO_REQUEST = [
    (
        {"serve.duration_s": 10, "serve.traffic.rate_per_s": 1e-300},
        "serve.traffic.rate_per_s: 1e-300 requests/s over serve.duration_s 10 s arrive no request (1e-299 "
        "expected, none drawn); raise one of them",
    ),
    (
        {"serve.duration_s": 1e-300},
        "serve.duration_s: 1e-300 s of arrivals at serve.traffic.rate_per_s 300 requests/s bring no request "
        "(3e-298 expected, none drawn); raise one of them",
    ),
    (
        {"serve.duration_s": 80000, "serve.traffic.rate_per_s": 1e6},
        "serve.traffic.rate_per_s: 8e+10 requests in 80000 s; at most 5000000 are simulated",
    ),
]


@pytest.mark.parametrize(("changes", "line"), NO_REQUEST)
def test_poisson_traffic_of_no_request_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, float],
    line: str,
) -> None:
    """``twin serve`` and ``twin validate`` refuse it in one line naming the scenario's key, exit 2,
    nothing written; in ``twin sweep`` the point is an infeasible row with that reason."""
    monkeypatch.chdir(tmp_path)
    sets = "".join(f"  {k}: {v!r}\n" for k, v in changes.items())
    Path("s.yaml").write_text(f"base: {H800_SERVE}\nset:\n{sets}")
    for args in (["serve", "s.yaml", "-o", "out"], ["serve", "s.yaml", "--format", "json"], ["validate", "s.yaml"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        out, err = capsys.readouterr()
        assert (info.value.code, out, err) == (2, "", f"error: s.yaml: {line}\n"), args
    assert not Path("out").exists()
    point = ", ".join(f"{k}: {v!r}" for k, v in changes.items())
    Path("w.yaml").write_text(f"name: w\nbase: {H800_SERVE}\npoints:\n  - {{{point}}}\n")
    with pytest.raises(SystemExit) as info:
        main(["sweep", "w.yaml", "-o", "w.parquet", "--quiet"])
    assert info.value.code == 0, capsys.readouterr().err
    row = pd.read_parquet("w.parquet").iloc[0]
    assert (row["status"], row["error"]) == ("infeasible", line)
