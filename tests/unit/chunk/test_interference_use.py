"""Where an interference source can act on a chunk, and where ``twin chunk --interference`` is refused.

The stream model (:mod:`sim.chunk.streams`) slows a compute kernel only while a DeepEP data kernel
runs beside it, and a data kernel only while a compute kernel runs: so a chunk whose kernels never run
together has the same times under every source (``ChunkResult.compute_beside_comm``). A lone forward
or input pass runs them one after another; a backward (I beside W) and an F&B pair overlap them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sim.chunk.build import ChunkConfig
from sim.chunk.overheads import INTERFERENCE_SOURCES, ChunkParams
from sim.cli import main
from sim.cli.chunk import ChunkKind, _time
from sim.experiments.trace_validation import figures
from sim.model.catalog import load_model_config
from sim.model.spec import ModelSpec
from sim.moe.gating import Gating
from tests.conftest import SHARED

V2_LITE = SHARED / "reference" / "models" / "deepseek-ai__DeepSeek-V2-Lite.config.json"


def _figures(kind: ChunkKind, source: str, model: ModelSpec | None = None) -> tuple[dict[str, Any], bool]:
    base = ChunkConfig() if model is None else ChunkConfig(model=model)
    config = replace(base, params=ChunkParams(interference=source))
    result = _time(config, kind)
    return figures(result), result.compute_beside_comm()


@pytest.mark.parametrize("kind", [ChunkKind.forward, ChunkKind.input, ChunkKind.backward, ChunkKind.pair])
def test_a_chunk_whose_kernels_never_meet_has_the_same_times_under_every_source(kind: ChunkKind) -> None:
    runs = {source: _figures(kind, source) for source in INTERFERENCE_SOURCES}
    beside = {meets for _, meets in runs.values()}
    assert len(beside) == 1  # whether kernels meet does not depend on the source
    distinct = {repr(fig) for fig, _ in runs.values()}
    if beside == {False}:
        assert len(distinct) == 1
    else:  # V3's backward and pair overlap DeepEP with compute, and the trace's slowdowns lengthen them
        assert kind in (ChunkKind.backward, ChunkKind.pair)
        assert runs["trace"][0]["span_ms"] > runs["none"][0]["span_ms"]


@pytest.mark.needs_shared(V2_LITE)
def test_another_models_forward_does_not_meet_either() -> None:
    model = load_model_config(V2_LITE)
    runs = [_figures(ChunkKind.forward, source, model) for source in INTERFERENCE_SOURCES]
    assert not any(meets for _, meets in runs) and len({repr(fig) for fig, _ in runs}) == 1


def test_the_flag_is_refused_where_it_cannot_act_and_runs_where_it_can(capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("forward", "input"):
        with pytest.raises(SystemExit) as info:
            main(["chunk", "--kind", kind, "--interference", "none", "--format", "json"])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1
        assert f"--interference: not used: no compute kernel of this {kind} chunk runs beside a DeepEP" in err
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "forward", "--format", "json"])  # the default source, not given: runs
    assert info.value.code == 0 and capsys.readouterr().out.startswith("{")
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "backward", "--interference", "none", "--format", "json"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("{")


def test_a_weight_pass_reads_the_node_limit_only_through_unequal_loads(capsys: pytest.CaptureFixture[str]) -> None:
    """A weight pass has no DeepEP phase: the routing reaches it only through the tokens each expert's
    GEMMs take. Balanced routing gives every expert the same at any node limit (the figures are the same,
    to the bit, at M = 1..4), so ``--n-limited-groups`` is refused there; random routing's loads follow M."""
    from sim.model.spec import DEEPSEEK_V3, parse_model

    def weight(m: int, routing: str) -> str:
        model = parse_model({**DEEPSEEK_V3.model_dump(exclude_unset=True), "n_limited_groups": m})
        config = replace(ChunkConfig(model=model), routing=Gating(routing), seed=0)
        return repr(figures(_time(config, ChunkKind.weight)))

    assert len({weight(m, "balanced") for m in (1, 2, 3, 4)}) == 1
    assert weight(2, "random") != weight(4, "random")
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "weight", "--n-limited-groups", "2"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--n-limited-groups: not used by --kind weight with balanced routing" in err
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "weight", "--routing", "random", "--n-limited-groups", "2", "--format", "json"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("{")
    # balanced routing over tokens that do not fill whole periods of its pattern: the loads follow M, and
    # the flag is taken (it was refused whatever the tokens)
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "weight", "--tokens", "37", "--n-limited-groups", "2", "--format", "json"])
    two = json.loads(capsys.readouterr().out)
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--kind", "weight", "--tokens", "37", "--format", "json"])
    assert info.value.code == 0 and json.loads(capsys.readouterr().out) != two


def test_the_profile_source_needs_a_profile_with_interference_samples(capsys: pytest.CaptureFixture[str]) -> None:
    """A datasheet profile has no GEMM-beside-copy pairs: ``--interference profile`` timed the chunk as
    ``none`` (the same figures), as a scenario's ``workload.interference: profile`` is refused for."""
    from pathlib import Path

    datasheet = Path(__file__).resolve().parents[3] / "calibrate" / "profiles" / "h800-datasheet.json"
    runs = {}
    for source in ("profile", "none"):
        config = replace(ChunkConfig(profile=datasheet), params=ChunkParams(interference=source))
        runs[source] = repr(figures(_time(config, ChunkKind.pair)))
    assert runs["profile"] == runs["none"]
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--profile", str(datasheet), "--interference", "profile", "--format", "json"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--interference: profile: h800-datasheet.json has no interference samples" in err


def test_skewed_routings_popularity_flags_reach_the_chunk(capsys: pytest.CaptureFixture[str]) -> None:
    """``twin chunk --skew-alpha`` and ``--dirichlet`` (as ``twin alltoall`` has them): the chunk timed is
    the one of that gate's popularity, and each moves the figures (the default was Zipf(1), fixed)."""

    def direct(gating: Gating) -> dict[str, Any]:
        return figures(_time(replace(ChunkConfig(), routing=gating, seed=0), ChunkKind.forward))

    def flags(*extra: str) -> dict[str, Any]:
        with pytest.raises(SystemExit) as info:
            main(["chunk", "--kind", "forward", "--routing", "skewed", *extra, "--format", "json"])
        assert info.value.code == 0
        return dict(json.loads(capsys.readouterr().out))

    zipf1, zipf2 = flags(), flags("--skew-alpha", "2")
    dirichlet = flags("--dirichlet", "0.5")
    assert zipf1 == json.loads(json.dumps(direct(Gating("skewed"))))
    assert zipf2 == json.loads(json.dumps(direct(Gating("skewed", alpha=2.0))))
    assert dirichlet == json.loads(json.dumps(direct(Gating("skewed", dirichlet=0.5))))
    assert zipf1["span_ms"] != zipf2["span_ms"] and zipf1["span_ms"] != dirichlet["span_ms"]


@pytest.mark.parametrize("routing", ["balanced", "replay"])
def test_a_seed_of_a_routing_that_draws_nothing_is_refused_alike_by_chunk_and_alltoall(
    capsys: pytest.CaptureFixture[str], routing: str
) -> None:
    """One rule and one wording for both commands that route (``sim.cli.moe.refuse_unused_seed``)."""
    lines = []
    for command in ("chunk", "alltoall"):
        with pytest.raises(SystemExit) as info:
            main([command, "--routing", routing, "--seed", "3"])
        assert info.value.code == 2
        lines.append(capsys.readouterr().err.splitlines())
    expected = f"error: --seed: not used by --routing {routing} (it draws nothing; random and skewed do); remove it"
    assert lines == [[expected], [expected]]
