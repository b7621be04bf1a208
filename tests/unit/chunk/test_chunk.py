"""Chunks on the streams: every op once, dependencies, overlap, memoisation, SM what-ifs."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from sim.chunk.build import ChunkConfig, build_chunk
from sim.chunk.overheads import ChunkParams

SMALL = ChunkConfig(layers=2, tokens=1024, ep=16)


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    return build_chunk(SMALL)


def _ops(stage) -> int:  # type: ignore[no-untyped-def]
    return sum(
        1 + (op.kind == "comm")  # a DeepEP op is a notify task and a data task
        for lo in stage.layers
        for ops in lo.annotations.values()
        for op in ops
    )


def test_every_op_runs_once_and_dependencies_hold(setup) -> None:  # type: ignore[no-untyped-def]
    pair = setup.timer.pair(setup.stage, setup.stage)
    # the forward ops of one micro-batch and the backward ops of another: every op of the stage once
    assert len(pair.tasks) == _ops(setup.stage)
    for t in pair.tasks:
        assert t.end >= t.start >= t.queued >= 0
        assert all(pair.tasks[d].end <= t.queued + 1e-12 for d in t.deps)
    # streams run one task at a time
    for stream in ("compute", "wgrad", "comm"):
        spans = sorted((t.queued, t.end) for t in pair.tasks if t.stream == stream)
        assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(spans))


def test_overlapping_forward_and_backward_beats_running_them_apart(setup) -> None:  # type: ignore[no-untyped-def]
    f = setup.timer.forward(setup.stage)
    b = setup.timer.backward(setup.stage)
    pair = setup.timer.pair(setup.stage, setup.stage)
    assert pair.span_s < 0.95 * (f.span_s + b.span_s)
    # and it cannot beat the compute work alone
    compute = sum(t.work for t in pair.tasks if t.stream != "comm")
    assert pair.span_s >= compute * 0.999


def test_a_forward_chunk_alone_exposes_its_communication(setup) -> None:  # type: ignore[no-untyped-def]
    f = setup.timer.forward(setup.stage)
    comm = [t for t in f.tasks if t.stream == "comm"]
    compute = [t for t in f.tasks if t.stream != "comm"]
    exposed = sum(t.end - t.queued for t in comm)
    assert f.span_s == pytest.approx(sum(t.end - t.queued for t in compute) + exposed, rel=1e-9)


def test_backward_parts_add_up(setup) -> None:  # type: ignore[no-untyped-def]
    timer, stage = setup.timer, setup.stage
    full, inputs, weights = timer.backward(stage), timer.backward(stage, "I"), timer.backward(stage, "W")
    names = lambda r: sorted(t.name for t in r.tasks)  # noqa: E731
    assert names(full) == sorted(names(inputs) + names(weights))
    assert inputs.span_s < full.span_s and weights.span_s < full.span_s
    assert all(t.annotation.endswith("(W)") for t in weights.tasks)


def test_chunks_are_memoised(setup) -> None:  # type: ignore[no-untyped-def]
    timer = setup.timer
    timer.pair(setup.stage, setup.stage)
    before = timer.timed
    again = timer.pair(setup.stage, setup.stage)
    assert timer.timed == before and again is timer.pair(setup.stage, setup.stage)


def test_comm_sms_and_coprocessor_what_ifs() -> None:
    """Fewer DeepEP SMs: slower communication but faster compute; a co-processor: all 132 SMs compute
    and no interference-free gain is lost."""
    base = build_chunk(SMALL)
    few = build_chunk(replace(SMALL, comm_sms=8))
    cop = build_chunk(replace(SMALL, comm_sms=0, coprocessor=True))
    assert (base.compute_sms, few.compute_sms, cop.compute_sms) == (112, 124, 132)
    fb, ff, fc = (s.timer.forward(s.stage) for s in (base, few, cop))

    def comm(r):  # type: ignore[no-untyped-def]
        return sum(t.end - t.start for t in r.tasks if t.kind == "comm")

    def compute(r):  # type: ignore[no-untyped-def]
        return sum(t.work for t in r.tasks if t.stream != "comm")

    assert comm(ff) > comm(fb) and compute(ff) < compute(fb)
    assert compute(fc) < compute(fb) and fc.span_s < fb.span_s


def test_interference_source_changes_the_pair() -> None:
    none = build_chunk(replace(SMALL, params=ChunkParams(interference="none")))
    trace = build_chunk(SMALL)
    assert none.timer.pair(none.stage, none.stage).span_s < trace.timer.pair(trace.stage, trace.stage).span_s


def test_stage_extras_embedding_and_head() -> None:
    s = build_chunk(replace(SMALL, layers=1, first_layer=60, first_stage=True, last_stage=True))
    f = s.timer.forward(s.stage)
    names = {t.name for t in f.tasks}
    assert {"embedding", "head", "mtp.proj"} <= names
    # the head runs twice (the main model's and the MTP module's), and the last loss ends the chunk
    assert sum(t.name == "head" for t in f.tasks) == 2
    assert max(t.end for t in f.tasks if t.name == "loss") == pytest.approx(f.span_s)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sms", "7"], "--sms: must be an even number"),
        (["--ep", "6"], "--ep: experts (256) must divide evenly over EP 6"),
        (["--layers", "70"], "--layers-per-stage: layers 3..72 are not in the model's 61 layers"),
        (["--interference", "maybe"], "--interference: unknown source 'maybe'"),
        (["--profile", "nope.json"], "--profile: no such profile: nope.json"),
        (["--sms", "0"], "--sms: 0 SMs for communication needs coprocessor mode"),
    ],
)
def test_chunk_cli_refuses_bad_flags(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sim.cli import main

    with pytest.raises(SystemExit) as info:
        main(["chunk", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_chunk_cli_json_and_perfetto_trace(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import json

    from sim.cli import main

    out = tmp_path / "sim.json"
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--layers", "2", "--ep", "16", "--tokens", "1024", "--trace-out", str(out), "--format", "json"])
    assert info.value.code == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["span_ms"] > 0 and set(fig["annotations"]) >= {"attn(F)", "dispatch(F)", "combine(B)"}
    trace = json.loads(out.read_text())
    tids = {e["tid"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert tids == {7, 23, 27}
    names = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "gpu_user_annotation"}
    assert {"attn(F)", "mlp(B)", "mlp(W)", "mlp(F)", "attn(B)", "attn(W)", "dispatch(F)", "combine(F)"} <= names


def test_a_chunk_is_timed_with_the_cyclic_collector_paused_and_restored(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A first timing runs with Python's cyclic collector off (its passes over the whole process were a
    third of a first chunk pair's time) and leaves it as it found it, also when the timing fails."""
    import gc

    import sim.chunk.timer as timer_module

    fresh = build_chunk(SMALL)
    seen: list[bool] = []
    real = timer_module.run_streams

    def spy(tasks):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(tasks)

    monkeypatch.setattr(timer_module, "run_streams", spy)
    assert gc.isenabled()
    fresh.timer.forward(fresh.stage)
    assert seen == [False] and gc.isenabled()
    fresh.timer.forward(fresh.stage)  # from the memo: nothing timed
    assert seen == [False]

    def fail(tasks):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(timer_module, "run_streams", fail)
    with pytest.raises(RuntimeError, match="boom"):
        fresh.timer.backward(fresh.stage)
    assert gc.isenabled()
    gc.disable()  # a caller that turned it off keeps it off
    try:
        monkeypatch.setattr(timer_module, "run_streams", real)
        fresh.timer.backward(fresh.stage)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_chunk_cli_node_limit_reaches_the_routing(capsys: pytest.CaptureFixture[str]) -> None:
    """``--n-limited-groups`` on the default (MLA) model: accepted (the flag's model keeps only the keys
    its config set, so MLA refuses no GQA key it never had), and it routes: with random routing on 4
    nodes, tokens limited to 1 node send fewer IB messages than tokens free to reach all 4, so the
    dispatch takes less time (with no flag: the model's M = 4 keeps all 4 nodes)."""
    import json

    from sim.cli import main

    def dispatch(*limit: str) -> float:
        args = ["--layers", "2", "--ep", "32", "--tokens", "1024", "--routing", "random", "--format", "json"]
        with pytest.raises(SystemExit) as info:
            main(["chunk", *args, *limit])
        assert info.value.code == 0
        return float(json.loads(capsys.readouterr().out)["annotations"]["dispatch(F)"])

    # (the default M = 4 keeps all 4 nodes: giving 4, or more, is refused as not used)
    assert dispatch("--n-limited-groups", "1") < dispatch()


def test_chunk_cli_coprocessor_takes_sms_0_but_refuses_other_sms(capsys: pytest.CaptureFixture[str]) -> None:
    """With --coprocessor all SMs compute: ``--sms 0`` says the same and is accepted (the README's
    example); any other --sms would do nothing and is refused, naming the flag."""
    from sim.cli import main

    with pytest.raises(SystemExit) as info:
        main(["chunk", "--coprocessor", "--sms", "0", "--layers", "1", "--format", "json"])
    assert info.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["chunk", "--coprocessor", "--sms", "20", "--layers", "1", "--format", "json"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: --sms: not used with --coprocessor")


@pytest.mark.parametrize("key", ["efficiency", "hbm_TBps"])
def test_chunk_cli_refuses_a_profile_whose_times_overflow(
    tmp_path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """A datasheet profile of efficiency or HBM 1e-300 printed a span of 1e301 ms with exit 0 (``twin run``
    refused it as an overflow): one line naming the profile's key, and no trace written."""
    import json
    import re

    from sim.cli import main
    from sim.hardware.profile import PROFILES_DIR

    data = json.loads((PROFILES_DIR / "h800-datasheet.json").read_text())
    if key == "efficiency":
        data["efficiency"] = 1e-300
    else:
        data["peaks"][key] = 1e-300
    profile, trace = tmp_path / "p.json", tmp_path / "t.json"
    profile.write_text(json.dumps(data))
    args = ["--layers", "1", "--ep", "16", "--tokens", "1024", "--profile", str(profile), "--trace-out", str(trace)]
    with pytest.raises(SystemExit) as info:
        main(["chunk", *args])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    named = f"{profile}: {key if key == 'efficiency' else 'peaks.' + key} = 1e-300"
    line = rf"error: the results overflow: span_ms is [0-9.]+e\+30[0-9], from {re.escape(named)}; use values nearer"
    line += r" to real ones\n"
    assert re.fullmatch(line, got.err), got.err
    assert not trace.exists()


@pytest.mark.parametrize("kind", ["pair", "backward", "forward"])
def test_a_chunk_traces_slices_nest_on_every_stream(kind: str) -> None:
    """Perfetto draws partially overlapping slices of one track wrongly. An annotation spanned every stream's
    ops on the stream of its first (``mlp(W)`` ran 539 us past ``mlp(F)``'s start on stream 7), and raw
    float times made touching kernels overlap by 1 ns in whole nanoseconds. On each stream, in whole
    nanoseconds as Perfetto reads them, slices either nest or do not meet; every kernel lies in its
    annotation's slice on its own stream."""
    from sim.chunk.export import chunk_trace
    from sim.cli.chunk import ChunkKind, _time

    trace = chunk_trace(_time(ChunkConfig(), ChunkKind(kind)))
    spans: dict[int, list[tuple[int, int, str, str]]] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            start = round(e["ts"] * 1000)
            spans.setdefault(e["tid"], []).append((start, start + round(e["dur"] * 1000), e["cat"], e["name"]))
    for tid, slices in spans.items():
        slices.sort(key=lambda x: (x[0], -x[1]))
        stack: list[tuple[int, int, str, str]] = []
        for s in slices:
            while stack and stack[-1][1] <= s[0]:
                stack.pop()
            assert not stack or s[1] <= stack[-1][1], f"stream {tid}: {s} overlaps {stack[-1]}"
            stack.append(s)
    annotations = [e for e in trace["traceEvents"] if e.get("cat") == "gpu_user_annotation"]
    for e in trace["traceEvents"]:
        if e.get("cat") == "kernel" and e["args"]["annotation"]:
            assert any(
                a["name"] == e["args"]["annotation"]
                and a["tid"] == e["tid"]
                and a["ts"] <= e["ts"]
                and e["ts"] + e["dur"] <= a["ts"] + a["dur"] + 1e-9
                for a in annotations
            ), e
