"""FSDP / ZeRO-3 (``training.fsdp``, sim.step.fsdp): the units, the memory, the collectives a step
runs and when, against what FSDP does.

- A rank's units (embedding, each layer, head with the MTP modules) add up to exactly the parameters
  ZeRO-1 counts on it, under TP and EP alike.
- Memory: weights, gradients and optimizer state sharded over the DP degrees, plus two gathered units'
  weights and one unit's gradients (or, without resharding after the forward, the whole rank's weights).
- A step runs, per micro-batch, one all-gather per unit for its forward and one for its backward
  (none for the backward without resharding) and one reduce-scatter per unit; each rank's gathers run
  one after another, as do its reduce-scatters; a rank's first action starts when its first unit's
  weights have arrived; adding FSDP's waits to the same chunks never shortens the pipeline.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from sim.assemble import assemble
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.model.catalog import load_model
from sim.run import simulate_training
from sim.step.accounting import rank_memory
from sim.step.fsdp import units
from sim.step.layout import build_layout
from sim.step.memory import Precision, fsdp_memory
from sim.step.zero1 import ReplicaSet, pieces, rank_params
from sim.units import BF16_BYTES, FP32_BYTES
from tests.conftest import REPO

PP = 4
MICROBATCHES = 4


def _scenario(folder: Path, name: str, *, schedule: str = "1f1b", **training: object) -> Path:
    body = {
        "name": name,
        "model": {"config": "llama-3.1-8b", "n_layers": 8, "dtype": "bf16"},
        "pipeline": {"pp": PP, "schedules": [schedule]},
        "training": {"gpus": 64, "global_batch": 16 * MICROBATCHES, **training},
        "cluster": {"topology": str(REPO / "topologies" / "h100-ib-1024.yaml")},
        "profile": str(REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("name", "tp", "ep"),
    [("llama-3.1-8b", 1, 1), ("llama-3.1-8b", 2, 1), ("deepseek-v2-lite", 1, 8), ("deepseek-v3", 2, 8)],
)
def test_units_add_up_to_what_zero1_counts(name: str, tp: int, ep: int) -> None:
    s = load_model(name)
    layout, schedule = build_layout(s, "1f1b", 4, 1, 64, 8, 64, ep, 64, None, 1, tp=tp, fsdp=True)
    for d in range(layout.devices):
        for place, p in pieces(s, layout, schedule, d):
            us = units(s, layout, place, p)
            assert len(us) == len([i for i in place.layers if i < s.n_layers]) + place.first + place.last
            assert sum(u.params.non_expert for u in us) == p.non_expert
            assert sum(u.params.expert for u in us) == p.expert
            assert all(u.params.total > 0 for u in us)
            assert all(u.weight > 0 for u in us[1:]) and (us[0].weight == 0) == place.first


def test_memory_is_the_shards_plus_the_gathered_units() -> None:
    s = load_model("llama-3.1-8b").model_copy(update={"dtype": "bf16"})
    for reshard in (True, False):
        layout, schedule = build_layout(
            s, "1f1b", PP, 1, 64, 8, 64, 1, 64, None, 1, fsdp=True, fsdp_reshard_after_forward=reshard
        )
        for d in range(PP):
            whole = rank_params(s, layout, schedule, d)
            rset = ReplicaSet.of(layout, schedule, d)
            largest = max(
                (u.params.total for place, p in pieces(s, layout, schedule, d) for u in units(s, layout, place, p))
            )
            shard = whole.total / rset.dp  # a dense model: every parameter over the DP group
            mem = rank_memory(s, layout, schedule, d)
            held = 2 * largest if reshard else whole.total
            assert mem.params == pytest.approx((shard + held) * BF16_BYTES, rel=1e-12)
            assert mem.grads == pytest.approx((shard + largest) * FP32_BYTES, rel=1e-12)
            assert mem.optimizer == pytest.approx(Precision.of(s).optimizer_bytes * shard, rel=1e-12)
    with pytest.raises(ValueError, match="DP degrees"):
        fsdp_memory(whole, whole, dp=0, expert_dp=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    folder = tmp_path_factory.mktemp("fsdp")
    out = {}
    for name, training in {
        "zero1": {},
        "fsdp": {"fsdp": True},
        "keep": {"fsdp": True, "fsdp_reshard_after_forward": False},
    }.items():
        result = simulate_training(load_scenario(_scenario(folder, name, **training)))
        out[name] = {"dict": result.to_dict(), "step": result.step, "run": result}
    return out


def test_each_unit_is_gathered_and_given_back_once_per_pass(runs: dict[str, dict[str, object]]) -> None:
    for name, gathers_per_unit in (("fsdp", 2), ("keep", 1)):
        d = runs[name]["dict"]
        assert isinstance(d, dict)
        mb = d["layout"]["microbatches"]
        n_units = [3, 2, 2, 3]  # 8 layers over PP 4; the embedding on the first stage, the head on the last
        assert d["stats"]["fsdp"]["all_gathers"] == [gathers_per_unit * mb * n for n in n_units]
        assert d["stats"]["fsdp"]["reduce_scatters"] == [mb * n for n in n_units]
        assert "fsdp@nic_up" in d["stats"]["coflow_GB"]
    assert "fsdp" not in runs["zero1"]["dict"]["stats"]  # type: ignore[operator]


def test_gathers_and_reduce_scatters_each_run_one_at_a_time(runs: dict[str, dict[str, object]]) -> None:
    step = runs["fsdp"]["step"]
    for t in step.timelines:  # type: ignore[attr-defined]
        for intervals in (t.fsdp_gathers, t.reduce_scatter):
            assert all(b[0] >= a[1] - 1e-12 for a, b in itertools.pairwise(intervals))
            assert all(e > s for s, e in intervals)


def test_a_rank_starts_when_its_first_weights_arrive(runs: dict[str, dict[str, object]]) -> None:
    step = runs["fsdp"]["step"]
    spans = step.pipelines[0].run.recorder.spans  # type: ignore[attr-defined]
    first = min((s for s in spans if s.device == 0), key=lambda s: s.start)
    assert first.start == pytest.approx(step.timelines[0].fsdp_gathers[0][1], abs=1e-12)  # type: ignore[attr-defined]


def test_fsdp_waits_never_shorten_the_pipeline(runs: dict[str, dict[str, object]]) -> None:
    def makespan(name: str) -> float:
        return max(t.pipeline_end for t in runs[name]["step"].timelines)  # type: ignore[attr-defined]

    assert makespan("fsdp") >= makespan("zero1") * (1 - 1e-9)
    assert makespan("keep") >= makespan("zero1") * (1 - 1e-9)
    # what it waited for shows: the ranks' waits, and no all-gather after the optimizer
    fsdp = runs["fsdp"]["dict"]
    assert isinstance(fsdp, dict)
    assert max(fsdp["stats"]["fsdp"]["wait_s"]) > 0


def test_the_timeline_shows_every_action_to_its_end(runs: dict[str, dict[str, object]]) -> None:
    """An action waiting for its weights ends past its chunk's last kernel; the spans (and so the
    trace) cover it to its end with a wait slice, so each rank's span time is its breakdown's (it was
    2.7 s short on rank 0 of DeepSeek-V3 under 1F1B with FSDP); without FSDP there is none."""
    from sim.step.timeline import FSDP_WAIT, spans_frame

    for name in ("fsdp", "zero1"):
        step = runs[name]["step"]
        frame = spans_frame(step)  # type: ignore[arg-type]
        waits = frame[frame.op == FSDP_WAIT]
        if name == "zero1":
            assert waits.empty
            continue
        assert not waits.empty and (waits.end_s > waits.start_s).all()
        extent = frame.groupby(["device", "action"]).end_s.max()
        for span in step.pipelines[0].run.recorder.spans:  # type: ignore[attr-defined]
            label = span.label
            assert extent[(span.device, label)] == pytest.approx(span.end, abs=1e-9)


def test_fsdp_is_refused_where_it_is_not_modelled(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="contention: shared") as err:
        assemble(load_scenario(_scenario(tmp_path, "iso", fsdp=True, contention="isolated")))
    assert err.value.key_path == "training.fsdp"
    with pytest.raises(ScenarioError, match="reduce-scattered as its backward ends") as err:
        assemble(load_scenario(_scenario(tmp_path, "ov", fsdp=True, dp_overlap="tail")))
    assert err.value.key_path == "training.dp_overlap"
    with pytest.raises(ScenarioError, match="two copies of a stage") as err:
        assemble(load_scenario(_scenario(tmp_path, "dp", schedule="dualpipe", fsdp=True, global_batch=256)))
    assert err.value.key_path == "training.fsdp"


def test_units_add_up_under_expert_tp() -> None:
    """Under EP 8 x ETP 2 a layer's unit holds 1/16 of its routed experts, and the units still add up."""
    from sim.model.params import layer_params

    s = load_model("deepseek-v2-lite")
    layout, schedule = build_layout(s, "1f1b", 4, 1, 128, 8, 128, 8, 64, None, 1, etp=2, fsdp=True)
    for d in range(layout.devices):
        for place, p in pieces(s, layout, schedule, d):
            us = units(s, layout, place, p)
            assert sum(u.params.expert for u in us) == p.expert
            assert sum(u.params.non_expert for u in us) == p.non_expert
            layers = [i for i in place.layers if i < s.n_layers]
            for i, u in zip(layers, us[int(place.first) :], strict=False):
                assert u.params.expert == layer_params(s, i).routed_experts // 16


def test_the_trace_shows_each_units_all_gather_on_a_track_of_its_own(runs: dict[str, dict[str, object]]) -> None:
    """Every FSDP all-gather is a slice of the spans (stream ``fsdp``) and of the Perfetto trace (its own
    track: they run one after another, beside the reduce-scatters on ``dp``); without FSDP there is none."""
    from sim.step.timeline import FSDP_STREAM, STREAM_TID, perfetto_trace, spans_frame, timeline

    step = runs["fsdp"]["step"]
    frame = spans_frame(step)  # type: ignore[arg-type]
    gathers = frame[frame.stream == FSDP_STREAM]
    for d, t in enumerate(step.timelines):  # type: ignore[attr-defined]
        mine = gathers[gathers.device == d]
        assert list(zip(mine.start_s, mine.end_s, strict=True)) == list(t.fsdp_gathers)
        assert set(mine.op) == {"all-gather"} and set(mine.kind) == {"fsdp"}
    trace = perfetto_trace(timeline(step), "fsdp")  # type: ignore[arg-type]
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X" and e.get("tid") == STREAM_TID[FSDP_STREAM]]
    assert len(slices) == sum(len(t.fsdp_gathers) for t in step.timelines)  # type: ignore[attr-defined]
    names = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"]
    assert {e["pid"] for e in names if e["args"]["name"] == FSDP_STREAM} == set(range(len(step.timelines)))  # type: ignore[attr-defined]
    assert (spans_frame(runs["zero1"]["step"]).stream != FSDP_STREAM).all()  # type: ignore[arg-type]


def test_the_reports_schedule_row_gives_the_breakdowns_bubble_under_fsdp(runs: dict[str, dict[str, object]]) -> None:
    """The first actions wait for their weights before they start: that wait is bubble in the step's
    breakdown (its makespan runs from the step's start), and the report's schedule table gives the same
    number (it took the makespan from the first action's start, 18 ms less on Llama 3.1 70B)."""
    from sim.experiments.study import schedule_row

    for name in ("fsdp", "zero1"):
        run = runs[name]["run"]
        row = schedule_row(run)  # type: ignore[arg-type]
        top = run.result.reported  # type: ignore[attr-defined]
        assert row.bubble_s == top.bubble_s
        assert row.pipeline_s == pytest.approx(row.busy_s + row.bubble_s, rel=1e-12)
    first = min(s.start for s in runs["fsdp"]["step"].pipelines[0].run.recorder.spans)  # type: ignore[attr-defined]
    assert first > 0  # (what the old makespan left out)


def test_the_reports_byte_count_has_fsdps_collectives_not_zero1s(runs: dict[str, dict[str, object]]) -> None:
    """Under FSDP the per-node bytes (sim.step.traffic_bytes) count its per-unit all-gathers and
    reduce-scatters as the shared network carried them, and no ZeRO-1 collective (none runs); it
    counted ZeRO-1's once-per-step collectives, 20x too few bytes on Llama 3.1 70B."""
    from sim.step.traffic_bytes import node_bytes

    for name in ("fsdp", "zero1"):
        run = runs[name]["run"]
        nb = node_bytes(run.step)  # type: ignore[attr-defined]
        carried = run.to_dict()["stats"]["coflow_GB"]  # type: ignore[attr-defined]
        for c, tag in (("dp", "zero1"), ("fsdp", "fsdp")):
            assert nb.ib[c].sum() / 1e9 == pytest.approx(carried.get(f"{tag}@nic_up", 0.0), rel=1e-9)
            assert nb.nvlink[c].sum() / 1e9 == pytest.approx(carried.get(f"{tag}@nv_up", 0.0), rel=1e-9)
        assert ("fsdp" in nb.present()) == (name == "fsdp")
    assert not node_bytes(runs["fsdp"]["step"]).ib["dp"].any()  # type: ignore[arg-type]
