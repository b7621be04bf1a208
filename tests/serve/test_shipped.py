"""The shipped serve scenarios and sweeps: the three the issue names exist and build, the decode floor
reports the paper's figures beside the twin's, and the serve sweeps expand and check."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.serve.deployment import build
from sim.serve.floor import (
    ISCA_EXPERTS,
    ISCA_HIDDEN,
    ISCA_ROUND_US,
    ISCA_TOKENS,
    ISCA_TPOT_MS,
    closed_form_round_us,
    decode_floor,
)
from sim.serve.spec import load_serve
from sim.sweep.spec import load_sweep

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "scenarios" / "serve"
REQUIRED = ("deepseek-v3-h800.yaml", "deepseek-v3-h100-96.yaml", "decode-floor.yaml")


@pytest.mark.parametrize("path", sorted(SERVE.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_serve_scenario_builds(path: Path) -> None:
    d = build(load_serve(path))
    assert d.pools


def test_the_required_scenarios_exist() -> None:
    assert all((SERVE / name).is_file() for name in REQUIRED)


def test_deepseeks_published_layouts() -> None:
    """REFERENCE.md section 11: prefill units of 4 nodes, EP32, 32 redundant experts, TP4 attention;
    a decode unit of 18 nodes, EP144, 2 routed slots per GPU (32 redundant), DP attention, the shared
    expert as routed; SGLang's EP32 prefill on 4 nodes and EP72 decode on 9."""
    d = build(load_serve(SERVE / "deepseek-v3-h800.yaml"))
    pre, dec = d.pools["prefill"], d.pools["decode"]
    assert (pre.model.gpus, pre.model.tp, pre.placement.redundant) == (32, 4, 32)
    assert (dec.model.gpus, dec.model.tp, dec.placement.redundant) == (144, 1, 32)
    assert dec.spec.shared_as_routed and dec.spec.kernels == "low_latency" and pre.spec.kernels == "normal"
    h = build(load_serve(SERVE / "deepseek-v3-h100-96.yaml"))
    assert (h.pools["prefill"].model.gpus, h.pools["decode"].model.gpus) == (32, 72)
    assert h.pools["prefill"].spec.nodes == 4 and h.pools["decode"].spec.nodes == 9


def test_the_decode_floor_beside_the_paper() -> None:
    """The paper's closed form, (1 + 2) bytes x 32 tokens x 9 experts x 7K / rate, gives its own
    120.96 us (7K read as 7000) and 6.72 us; the twin's round, which moves at most the paper's bytes
    per copy plus FP8 scales at below line rate and waits for the busiest GPU, is longer than the
    closed form at 7168 elements and its TPOT floor is 61 layers x 2 micro-batches x the round."""
    paper = (ISCA_TOKENS, ISCA_EXPERTS, ISCA_HIDDEN)
    assert closed_form_round_us(*paper, 50.0) == pytest.approx(ISCA_ROUND_US["ib"], rel=1e-9)
    assert closed_form_round_us(*paper, 900.0) == pytest.approx(ISCA_ROUND_US["nvlink"], rel=2e-3)
    assert 61 * 2 * ISCA_ROUND_US["ib"] / 1e3 == pytest.approx(ISCA_TPOT_MS["ib"], rel=1e-3)
    sc = load_serve(SERVE / "decode-floor.yaml")
    floor = decode_floor(sc, build(sc))
    assert floor["tokens_per_gpu"] == 32 and floor["experts_per_token"] == 9 and floor["layers"] == 61
    for name, f in floor["fabrics"].items():
        assert f["paper_round_us"] == ISCA_ROUND_US[name]
        assert f["round_us"] > f["closed_form_round_us"]
        assert f["tpot_floor_ms"] == pytest.approx(61 * 2 * f["round_us"] / 1e3, rel=1e-12)
    assert floor["fabrics"]["nvlink"]["round_us"] < floor["fabrics"]["ib"]["round_us"] / 5


@pytest.mark.parametrize("name", ["serve-split.yaml", "serve-whatifs.yaml"])
def test_the_serve_sweeps_expand_and_check(name: str) -> None:
    sweep = load_sweep(REPO / "scenarios" / "sweeps" / name)
    assert len(sweep.points) >= 3
