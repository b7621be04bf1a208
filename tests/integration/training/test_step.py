"""The training step: accounting invariants, layout, fidelity modes, what-ifs and refusals."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from sim.cli import main
from sim.config import default_scenario_path, load_scenario
from sim.model.megatron_flops import megatron_flops_per_token
from sim.model.spec import DEEPSEEK_V3
from sim.pipeline.ops import Op
from sim.run import TrainingRun, simulate_training

# whole steps simulated here again and again, on paths the rest of the suite reaches: run untraced
# (tests/conftest.py; what it costs the coverage report: docs/testing.md)
pytestmark = pytest.mark.untraced

ROOT = Path(__file__).resolve().parents[3]
BASE: dict[str, Any] = yaml.safe_load(default_scenario_path().read_text())
BASE["profile"] = str(ROOT / "calibrate" / "profiles" / "h800.json")
BASE["cluster"]["topology"] = str(ROOT / "topologies" / "deepseek-v3-mpft.yaml")
_CACHE: dict[str, TrainingRun] = {}


def scenario_file(tmp: Path, **over: Any) -> Path:
    """The default scenario with dotted-key overrides (``pipeline.pp=8``), written to ``tmp``."""
    data = copy.deepcopy(BASE)
    for key, value in over.items():
        *parents, last = key.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp / f"s{abs(hash(json.dumps(over, sort_keys=True, default=str)))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def step(tmp_path_factory: pytest.TempPathFactory, **over: Any) -> TrainingRun:
    key = json.dumps(over, sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE[key] = simulate_training(load_scenario(scenario_file(tmp_path_factory.mktemp("sc"), **over)))
    return _CACHE[key]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    return step(tmp_path_factory)


def test_breakdown_adds_up_to_the_step_on_every_rank(base: TrainingRun) -> None:
    r = base.result
    assert len(r.ranks) == 16
    for x in r.ranks:
        parts = (
            x.forward_only_s
            + x.backward_only_s
            + x.weight_only_s
            + x.overlapped_fb_s
            + x.bubble_s
            + x.optimizer_s
            + x.dp_comm_exposed_s
            + x.wait_s
        )
        assert parts == pytest.approx(r.step_time_s, rel=1e-12)
        assert x.bubble_s >= 0 and x.optimizer_s > 0 and x.dp_comm_exposed_s > 0 and x.wait_s >= 0
        assert 0 < x.ep_comm_exposed_s < x.busy_s


def test_the_reported_rank_ends_the_step_and_its_bubble_is_the_schedules(base: TrainingRun) -> None:
    """The headline breakdown is the critical path's: the rank whose data-parallel phase ends the step
    waits for nobody; its bubble is the pipeline's makespan minus its busy time, the number the
    schedule's own accounting (sim.results.metrics, the report's schedule table) gives that rank."""
    from sim.experiments.study import schedule_row
    from sim.results import metrics

    r = base.result
    top = r.reported
    assert top.ends_s == pytest.approx(r.step_time_s, rel=1e-12) and top.wait_s == pytest.approx(0.0, abs=1e-9)
    pipe = base.step.reported_pipeline()
    m = metrics(pipe.run)
    assert top.bubble_s == pytest.approx(m.bubble[r.reported_rank], rel=1e-12)
    row = schedule_row(base)
    assert row.rank == r.reported_rank and row.bubble_s == pytest.approx(top.bubble_s, rel=1e-12)
    over = r.over_ranks()
    for key in ("bubble_s", "ep_comm_exposed_s", "dp_comm_exposed_s", "wait_s"):
        values = [getattr(x, key) for x in r.ranks]
        assert over[key]["worst"] == max(values) and over[key]["mean"] == pytest.approx(sum(values) / len(values))
        assert min(values) <= getattr(top, key) <= max(values)


def test_every_action_runs_once_and_breakdown_comes_from_the_spans(base: TrainingRun) -> None:
    pipe = base.step.reported_pipeline()
    sched = pipe.run.schedule
    spans = pipe.run.recorder.spans
    assert sorted((s.device, s.pos) for s in spans) == [(d, i) for d in range(16) for i in range(len(sched.actions[d]))]
    fb = sum(s.end - s.start for s in spans if s.device == 0 and sched.actions[0][s.pos].op is Op.FB)
    assert base.result.ranks[0].overlapped_fb_s == pytest.approx(fb)
    # a forward of stage s+1 starts only after stage s's forward of the same micro-batch has ended
    f_end = {(a.stage, a.mb): s.end for s in spans for a in sched.actions[s.device][s.pos].atoms() if a.op is Op.F}
    for s in spans:
        for a in sched.actions[s.device][s.pos].atoms():
            prev = sched.prev_stage(a.stage, a.mb) if a.op is Op.F else None
            if prev is not None:
                assert s.start >= f_end[(prev, a.mb)]


def test_layout_and_placement_follow_deepseek(base: TrainingRun) -> None:
    lay = base.step.spec.inputs.layout
    sched = base.step.spec.schedule
    assert (lay.gpus_per_rank, lay.dp, lay.expert_dp, lay.microbatches, lay.tokens) == (128, 128, 2, 120, 4096)
    on_rank0 = [lay.stages[s] for s, d in enumerate(sched.stage_device) if d == 0]
    assert any(p.first for p in on_rank0) and any(p.last for p in on_rank0)  # embedding and head + MTP on rank 0
    for route in sched.routes:
        layers = [i for s in route for i in lay.stages[s].layers]
        assert layers == list(range(62))  # 61 layers then the MTP block, each once per route
    assert base.result.tokens_per_step == 15360 * 4096


def test_throughput_figures_follow_from_the_step_time(base: TrainingRun) -> None:
    r = base.result
    assert r.tokens_per_day == pytest.approx(r.tokens_per_step / r.step_time_s * 86400)
    assert r.gpu_hours_per_trillion_tokens == pytest.approx(2048 * r.step_time_s / 3600 * 1e12 / r.tokens_per_step)
    assert 0 < r.mfu(True) < r.mfu(False) < 1
    assert r.tflops_per_gpu(True) == pytest.approx(r.mfu(True) * 989)


def test_json_shape(base: TrainingRun) -> None:
    d = base.to_dict()
    keys = {"forward_only_s", "backward_only_s", "weight_only_s", "overlapped_fb_s", "bubble_s", "optimizer_s"}
    keys |= {"dp_comm_exposed_s", "ep_comm_exposed_s", "wait_s"}
    assert set(d["breakdown"]) == keys
    assert set(d["over_ranks"]) == {"bubble_s", "ep_comm_exposed_s", "dp_comm_exposed_s", "wait_s"}
    assert len(d["per_rank"]) == 16 and keys <= set(d["per_rank"][0])
    assert set(d["mfu"]) == {"bf16_noncausal", "bf16_causal"}
    assert set(d["tflops_per_gpu"]) == {"noncausal", "causal"}
    assert set(d["memory_per_gpu_GiB"]) == {"params", "grads", "optimizer", "activations_peak", "total"}
    assert d["memory_per_gpu_GiB"]["total"] < 80
    for k in ("step_time_s", "tokens_per_day", "gpu_hours_per_trillion_tokens", "reported_rank"):
        assert k in d
    # issue 19: throughput per GPU, and model TFLOP/s in Megatron's convention (its FLOPs per token)
    per_gpu = d["tokens_per_step"] / d["step_time_s"] / d["layout"]["gpus"]
    assert d["tokens_per_s_per_gpu"] == pytest.approx(per_gpu, rel=1e-12)
    meg = megatron_flops_per_token(DEEPSEEK_V3)
    assert d["model_tflops_per_gpu"] == pytest.approx(meg * per_gpu / 1e12, rel=1e-12)


def test_same_seed_same_step(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    again = simulate_training(load_scenario(scenario_file(tmp_path_factory.mktemp("again"))))
    assert again.to_dict() | {"stats": None} == base.to_dict() | {"stats": None}


def test_per_gpu_fidelity_agrees_with_representative_under_balanced_routing(
    tmp_path_factory: pytest.TempPathFactory, base: TrainingRun
) -> None:
    per_gpu = step(tmp_path_factory, training__fidelity="per-gpu")
    assert per_gpu.result.stats["pipelines"] == 2  # one per EP group of a rank
    assert per_gpu.result.step_time_s == pytest.approx(base.result.step_time_s, rel=0.01)


# The what-ifs (co-processor, SMs, NIC, node limit, NVLink, schedules, batch, GPUs, PP, EP, fabric, ZeRO-1
# overlap, layer split, profile), each held to its mechanism: test_what_ifs.py.


def test_h200_profile_beats_the_h100_profile(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Both profiles were measured with the same microbenchmarks (no trace kernels): the H200's faster
    HBM shows in the memory-bound ops."""
    prof = ROOT / "calibrate" / "profiles"
    h200 = step(tmp_path_factory, profile=str(prof / "h200-measured.json")).result.step_time_s
    h100 = step(tmp_path_factory, profile=str(prof / "h100-sxm-device.json")).result.step_time_s
    assert h200 < h100


def test_longer_sequences_cost_more_per_token(tmp_path_factory: pytest.TempPathFactory, base: TrainingRun) -> None:
    longer = step(
        tmp_path_factory, model__seq_len=8192, training__global_batch=7680, training__check_memory=False
    ).result
    assert longer.tokens_per_step == base.result.tokens_per_step
    assert 1.0 < longer.step_time_s / base.result.step_time_s < 1.5  # attention grows with the sequence


REFUSALS = [
    ({"pipeline__pp": 64}, "pipeline.pp"),
    ({"workload__ep": 256}, "workload.ep"),
    ({"workload__ep": 24}, "workload.ep"),
    ({"training__gpus": 4096}, "training.gpus"),
    ({"training__gpus": 2000}, "training.gpus"),
    ({"pipeline__pp": 8}, "training: pipeline rank 0 needs"),  # memory over the H800's 80 GB
    ({"pipeline__microbatches": 60}, "pipeline.microbatches"),
    ({"training__global_batch": 1000}, "training.global_batch"),
    ({"training__global_batch": 128_000_000}, "training.global_batch: the step's action count"),
    ({"pipeline__schedules": ["dualpipe", "1f1b"]}, "pipeline.schedules"),
    ({"workload__tokens": 8192}, "workload.tokens"),
    ({"training__fidelity": "exact"}, "training.fidelity"),
]


@pytest.mark.parametrize("over,key", REFUSALS, ids=[k for _, k in REFUSALS])
def test_impossible_layouts_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict[str, Any], key: str
) -> None:
    path = scenario_file(tmp_path, **over)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert str(path) in err and key in err
    assert not (tmp_path / "out").exists()


def test_run_writes_the_report_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(scenario_file(tmp_path)), "-o", str(tmp_path), "--format", "json"])
    assert info.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    folder = tmp_path / "deepseek-v3-pretrain"
    assert {p.name for p in folder.iterdir()} == {
        ".clustertwin.json",
        ".clustertwin.lock",
        "summary.md",
        "summary.json",
        "spans.parquet",
        "gantt.png",
        "trace.json",
    }
    assert json.loads((folder / "summary.json").read_text())["step_time_s"] == printed["step_time_s"]
    spans = pd.read_parquet(folder / "spans.parquet")
    assert {"device", "stream", "layer", "op", "microbatch", "start_s", "end_s"} <= set(spans.columns)
    assert set(spans["stream"]) == {"compute", "wgrad", "comm", "dp"}
    assert set(spans["kind"]) == {"F", "B", "I", "W", "dp", "optimizer"}  # DualPipe's pairs split into F and B
    import pyarrow.parquet as pq

    from sim import __version__

    meta = pq.read_schema(folder / "spans.parquet").metadata
    assert meta[b"twin_version"] == __version__.encode() and meta[b"scenario"] == b"deepseek-v3-pretrain"
    assert spans["end_s"].max() == pytest.approx(printed["step_time_s"])
    assert (spans["end_s"] >= spans["start_s"]).all()
    trace = json.loads((folder / "trace.json").read_text())
    ranks = {e["pid"] for e in trace["traceEvents"] if e["ph"] == "X"}
    tracks = {(e["pid"], e["tid"]) for e in trace["traceEvents"] if e["ph"] == "X"}
    assert ranks == set(range(16)) and (0, 27) in tracks and (0, 7) in tracks
    events = trace["traceEvents"]
    # a flow arrow per send: every micro-batch's activation crosses the 15 stage boundaries forward and
    # its gradient crosses them back
    microbatches = int(spans["microbatch"].max()) + 1
    assert sum(e["ph"] == "s" for e in events) == sum(e["ph"] == "f" for e in events) == 2 * 15 * microbatches
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert {"nic_up GB/s", "nic_down GB/s", "nv_up GB/s"} <= counters
    assert "GPU-hours per trillion tokens" in (folder / "summary.md").read_text()


SMALL = {
    "model__n_layers": 8,
    "model__n_dense_layers": 1,
    "pipeline__pp": 4,
    "training__gpus": 512,
    "training__global_batch": 1024,
}


def test_per_gpu_fidelity_routes_every_ep_group_on_its_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = step(tmp_path_factory, **SMALL, workload__routing="random", training__fidelity="per-gpu")
    assert run.result.stats["pipelines"] == 2
    a, b = (p.source for p in run.step.pipelines)
    ta, tb = a.stage(1, 0).traffic[0], b.stage(1, 0).traffic[0]
    assert ta is not None and tb is not None
    first_a = ta.groups[0] if hasattr(ta, "groups") else ta
    first_b = tb.groups[0] if hasattr(tb, "groups") else tb
    assert not (first_a.tokens_per_expert == first_b.tokens_per_expert).all()  # independent draws
    assert ta.groups[1] is first_b and tb.groups[1] is first_a  # each group sees the other's traffic
    ends = [max(s.end for s in p.run.recorder.spans) for p in run.step.pipelines]
    assert max(t.pipeline_end for t in run.step.timelines) == pytest.approx(max(ends))  # the step waits for both


def test_skewed_routing_makes_stragglers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skewed gating loads some GPUs' experts more: the straggler's expert GEMMs and the unbalanced
    all-to-all make the step slower than balanced routing."""
    balanced = step(tmp_path_factory, **SMALL).result.step_time_s
    skewed = step(tmp_path_factory, **SMALL, workload__routing="skewed").result.step_time_s
    assert skewed > 1.02 * balanced


def test_dualpipe_mirror_ranks_share_one_data_parallel_group(base: TrainingRun) -> None:
    """DualPipe's rank d and rank 15-d hold the same layers: one ZeRO-1 group of 256 GPUs (experts 4)
    whose gradients are reduced together, and whose optimizer state is sharded over both."""
    from sim.step.zero1 import ReplicaSet, rank_params

    lay, sched = base.step.spec.inputs.layout, base.step.spec.schedule
    for d in range(16):
        rset = ReplicaSet.of(lay, sched, d)
        assert rset.ranks == tuple(sorted({d, 15 - d})) and (rset.dp, rset.expert_dp) == (256, 4)
        assert base.step.dp[d] is base.step.dp[15 - d]
        assert base.step.timelines[d].reduce_scatter == base.step.timelines[15 - d].reduce_scatter
        p = rank_params(base.step.spec.inputs.model, lay, sched, d)
        mem = base.result.ranks[d].memory
        assert mem.optimizer == pytest.approx(8 * (p.non_expert / 256 + p.expert / 4))  # 4 + 2 + 2 bytes


def test_dp_phase_order_on_every_rank(base: TrainingRun) -> None:
    """Reduce-scatter after the pipeline, then the barrier (last reduce-scatter anywhere), optimizer,
    all-gather; spans on a rank never overlap."""
    tl = base.step.timelines
    barrier = max(iv[1] for t in tl for iv in t.reduce_scatter)
    for t in tl:
        assert all(s >= max(x.pipeline_end for x in tl) - 1e-12 for s, _ in t.reduce_scatter)  # dp_overlap none
        assert t.optimizer[0] == pytest.approx(barrier) and t.optimizer[1] <= t.all_gather[0] + 1e-12
    pipe = base.step.reported_pipeline()
    for d in range(16):
        spans = sorted((s.start, s.end) for s in pipe.run.recorder.spans if s.device == d)
        assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(spans))


def test_balanced_split_lightens_the_head_stage(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = step(tmp_path_factory, training__layers_per_stage="balanced")
    lay, sched = run.step.spec.inputs.layout, run.step.spec.schedule
    sizes = [len([i for i in lay.stages[s].layers if i < 61]) for s in sched.routes[0]]
    assert sum(sizes) == 61 and sizes[-1] < 4 and sizes[0] <= 4  # the head + MTP stage holds fewer layers


def test_the_trace_counts_each_ranks_memory_and_nic_bytes(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Per rank: the memory counter's highest point is the rank's memory per GPU as the accounting
    reports it (the same rule, in time), and its NICs' bytes, summed over the ranks, are the bytes the
    NIC link blocks carried (every byte of a rank's GPUs' NICs counted once)."""
    from sim.step.accounting import rank_memory
    from sim.step.timeline import GiB, perfetto_trace, timeline

    run = step(tmp_path_factory, **SMALL)
    tl = timeline(run.step)
    spec = run.step.spec
    for d, rows in tl.memory.groupby("device"):
        peak = float((rows["high_bytes"] + rows["static_bytes"]).max())
        want = rank_memory(spec.inputs.model, spec.inputs.layout, spec.schedule, int(d)).total
        assert peak == pytest.approx(want, rel=1e-12), d
    assert set(tl.memory["device"]) == set(range(spec.inputs.layout.devices))
    nic = tl.links[tl.links["block"].isin(["nic_up", "nic_down"])].groupby("tag")["bytes"].sum()
    ranks = tl.nics.groupby("tag")["bytes"].sum()
    assert set(ranks.index) == set(nic.index) and len(ranks) >= 2
    for tag in nic.index:
        assert ranks[tag] == pytest.approx(nic[tag], rel=1e-9), tag
    events = perfetto_trace(tl, "small")["traceEvents"]
    memory = [e for e in events if e["ph"] == "C" and e["name"] == "memory GiB"]
    assert {e["pid"] for e in memory} == set(range(spec.inputs.layout.devices))
    top = max(e["args"]["static"] + e["args"]["activations"] for e in memory if e["pid"] == 0)
    assert top == pytest.approx(
        rank_memory(spec.inputs.model, spec.inputs.layout, spec.schedule, 0).total / GiB, abs=2e-3
    )
    assert {e["pid"] for e in events if e["ph"] == "C" and e["name"] == "NICs GB/s"} == set(
        range(spec.inputs.layout.devices)
    )
