"""Keys that are accepted are used (issue 23): every key of the scenario schema, walked from the schema
itself, changes what the user sees where it applies, or is refused (naming it) where nothing reads it.

The rule, held for every leaf key of :class:`sim.config.Scenario` (nested sections recursed into; a
list- or mapping-valued field is one key) by :func:`test_a_changed_key_changes_the_result_or_is_refused`:

* every key has at least one case in :data:`CASES`: a context (a small scenario where the key applies,
  :data:`CONTEXTS`) and a changed value; a key added to the schema without a case fails
  :func:`test_every_key_has_a_case`;
* a case expecting ``changes``: the changed scenario loads, assembles, and gives other figures than the
  context (``twin run --format json``'s: a training step's result without its run statistics, a
  schedule comparison's results), or, for the labels (``name``, ``description``, ``model.name``), the
  value appears in the report ``twin run`` writes (``summary.md``), or, for prices, the sweep row
  (``twin sweep``'s figures, where a cost per trillion tokens is given);
* a case expecting ``refused``: :func:`sim.config.load_scenario` or :func:`sim.assemble.assemble`
  raises a ScenarioError whose key is the key (or its section) or whose message names it, the key
  where nothing would read it (``p2p.*`` in a training step, ``seed`` with balanced routing, the chunk
  model's keys beside given op times, ...; docs/errors.md lists them).

Contexts are small (a 4-stage comparison on given op times or on a 1-layer chunk; a 128-GPU step of an
8-layer model, 0.3 s): the whole file runs in about 35 s on two cores.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sim.assemble import Assembly, assemble
from sim.config import VIRTUAL_STAGE_SCHEDULES, Scenario, load_scenario, scenario_data
from sim.errors import ScenarioError
from sim.model.catalog import load_model_config
from sim.model.spec import NOT_MODELLED
from sim.pipeline.schedules import SCHEDULES, build_schedule
from sim.run import simulate, simulate_training
from tests.conftest import REPO, SMALL_STEP

TABLE = REPO / "scenarios" / "dualpipe-table.yaml"  # a schedule comparison on given op times
COMPARISON = REPO / "scenarios" / "schedule-comparison.yaml"  # a schedule comparison on the chunk model
MPFT = str(REPO / "topologies" / "deepseek-v3-mpft.yaml")
FT2 = str(REPO / "topologies" / "deepseek-v3-ft2.yaml")
H100 = str(REPO / "calibrate" / "profiles" / "h100-sxm-device.json")

GIVEN = {"pipeline.pp": 4, "pipeline.microbatches": 8, "pipeline.schedules": ["1f1b", "dualpipe"]}
STEP = {  # the small step made smaller: an 8-layer model on 4 DualPipe ranks of 32 GPUs, 16 micro-batches
    "model.n_layers": 8,
    "model.n_dense_layers": 1,
    "pipeline.pp": 4,
    "training.gpus": 128,
    "training.global_batch": 512,
}

# name -> (base scenario, what it sets): the cheapest scenario where each key applies
CONTEXTS: dict[str, tuple[Path, dict[str, Any]]] = {
    "given": (TABLE, GIVEN),  # op times given, the p2p link, no bytes sent
    "given-sends": (TABLE, GIVEN | {"p2p.activation_bytes": 1e8}),
    "given-interleaved": (TABLE, GIVEN | {"pipeline.schedules": ["interleaved-1f1b", "dualpipe"]}),
    "given-measured": (TABLE, GIVEN | {"ops.measured_at_compute_sms": 100}),  # rescaled to the SM split
    "given-fabric": (TABLE, GIVEN | {"cluster.topology": MPFT, "p2p.activation_bytes": 58720256}),
    "chunk": (  # op times from the chunk model: one layer per stage, balanced routing, the p2p link
        COMPARISON,
        {"pipeline.pp": 4, "pipeline.microbatches": 8, "pipeline.schedules": ["interleaved-1f1b"]}
        | {"workload.layers_per_stage": 1, "cluster": None},
    ),
    "chunk-random": (
        COMPARISON,
        {"pipeline.pp": 4, "pipeline.microbatches": 8, "pipeline.schedules": ["interleaved-1f1b"]}
        | {"workload.layers_per_stage": 1, "cluster": None, "workload.routing": "random"},
    ),
    "chunk-gqa": (  # the chunk with grouped-query attention in place of MLA
        COMPARISON,
        {"pipeline.pp": 4, "pipeline.microbatches": 8, "pipeline.schedules": ["interleaved-1f1b"]}
        | {"workload.layers_per_stage": 1, "cluster": None, "model.attention": "gqa", "model.n_kv_heads": 8},
    ),
    "step": (SMALL_STEP, STEP),  # a training step, balanced routing
    "step-ft2": (SMALL_STEP, STEP | {"cluster.topology": FT2}),
    "step-a2a": (SMALL_STEP, STEP | {"workload.dispatcher": "alltoall"}),  # NCCL's all-to-all under DualPipe
    "step-gqa": (
        SMALL_STEP,
        STEP | {"model.attention": "gqa", "model.n_kv_heads": 8},
    ),  # TP splits GQA  # leaves of 32 GPUs: the job crosses uplinks
    "step-random": (SMALL_STEP, STEP | {"workload.routing": "random", "model.seq_len": 1024}),
    "step-over-memory": (SMALL_STEP, STEP | {"model.seq_len": 32768}),  # needs more than 80 GiB; check off
    "step-gqa-tp": (SMALL_STEP, STEP | {"model.attention": "gqa", "model.n_kv_heads": 8, "training.tp": 2}),
    "step-gqa-cp": (SMALL_STEP, STEP | {"model.attention": "gqa", "model.n_kv_heads": 8, "training.cp": 2}),
    "step-1f1b": (SMALL_STEP, STEP | {"pipeline.schedules": ["1f1b"]}),  # FSDP needs one copy of each stage
    "step-ep16": (SMALL_STEP, STEP | {"workload.ep": 16}),  # room for expert TP 2 in a rank of 32 GPUs
    "step-native": (SMALL_STEP, STEP | {"compute.fp8_scaling": "native"}),  # natively scaled FP8 GEMMs
    "step-fsdp": (SMALL_STEP, STEP | {"pipeline.schedules": ["1f1b"], "training.fsdp": True}),
    "step-tp": (SMALL_STEP, STEP | {"training.tp": 2}),  # each TP rank's DP group is a ring
    "step-pp1": (SMALL_STEP, STEP | {"pipeline.pp": 1, "pipeline.schedules": ["1f1b"]}),  # one stage, one rank
    "step-random-capacity": (
        SMALL_STEP,
        STEP | {"workload.routing": "random", "model.seq_len": 1024, "workload.capacity_factor": 1.0},
    ),
}


@dataclass(frozen=True)
class Case:
    context: str
    value: Any
    expect: str = "changes"  # or "refused"
    output: str = "figures"  # "figures" (twin run --format json), "report" (summary.md), "sweep" (a sweep row)
    extra: dict[str, Any] = field(default_factory=dict)  # other keys the case sets (to make a section whole)


def changes(context: str, value: Any, output: str = "figures") -> Case:
    return Case(context, value, "changes", output)


def refused(context: str, value: Any, **extra: Any) -> Case:
    return Case(context, value, "refused", extra={k.replace("__", "."): v for k, v in extra.items()})


OPS_WHOLE = {"ops__forward_ms": 1.0, "ops__backward_ms": 2.0, "ops__weight_ms": 1.0}

CASES: dict[str, tuple[Case, ...]] = {
    "name": (changes("given", "another-name"),),
    "description": (changes("given", "Another description of the run.", "report"),),
    "seed": (
        changes("chunk-random", 7),
        changes("step-random", 7),
        refused("chunk", 7),  # balanced routing draws nothing
        refused("step", 7),
        refused("given", 7),  # nothing is routed
    ),
    "profile": (changes("chunk", H100), changes("step", H100), refused("given", H100)),
    # the model (every key is also refused beside given op times: see _model_and_workload_given)
    "model.name": (changes("chunk", "Other-Model", "report"), changes("step", "Other-Model", "report")),
    "model.vocab_size": (changes("step", 100000),),
    "model.dim": (changes("chunk", 6144),),
    "model.inter_dim": (changes("step", 16384),),
    "model.moe_inter_dim": (changes("chunk", 1024),),
    "model.n_layers": (changes("step", 12),),
    "model.n_dense_layers": (changes("step", 2),),
    "model.n_heads": (changes("chunk", 64),),
    "model.n_routed_experts": (changes("chunk", 128),),
    "model.n_shared_experts": (changes("chunk", 2), changes("chunk", 0)),
    "model.n_activated_experts": (changes("chunk", 6),),
    "model.n_limited_groups": (changes("chunk", 2),),
    "model.q_lora_rank": (changes("chunk", 1024), changes("chunk", 0), refused("chunk-gqa", 1024)),
    "model.kv_lora_rank": (changes("chunk", 256), refused("chunk-gqa", 256)),
    "model.qk_nope_head_dim": (changes("chunk", 64), refused("chunk-gqa", 64)),
    "model.qk_rope_head_dim": (changes("chunk", 32), refused("chunk", 0), refused("chunk-gqa", 32)),
    "model.v_head_dim": (changes("chunk", 64), refused("chunk-gqa", 64)),
    "model.attention": (changes("chunk", "mha"), changes("step", "gqa")),
    "model.n_kv_heads": (changes("chunk-gqa", 16), refused("chunk", 8)),
    "model.head_dim": (changes("chunk-gqa", 128), refused("chunk", 128)),
    "model.qk_norm": (changes("chunk-gqa", True), refused("chunk", True)),
    "model.mlp_only_layers": (changes("step", [5]),),
    "model.router_bias": (changes("step", False),),
    "model.tie_word_embeddings": (changes("step", True),),
    "model.dtype": (changes("chunk", "bf16"), changes("step", "bf16")),
    "model.seq_len": (changes("chunk", 2048), changes("step", 2048)),
    "model.mtp_depth": (changes("step", 0),),
    # the pipeline
    "pipeline.pp": (changes("given", 2), changes("step", 2)),
    "pipeline.microbatches": (changes("given", 12), refused("step", 8)),  # a step derives it from the batch
    "pipeline.virtual_stages": (changes("given-interleaved", 4), refused("given", 3), refused("step", 3)),
    "pipeline.schedules": (changes("given", ["zb1p", "dualpipe"]), changes("step", ["1f1b"])),
    # op times given
    "ops.forward_ms": (changes("given", 2.0), refused("step", 2.0, ops__backward_ms=3.0, ops__weight_ms=1.0)),
    "ops.backward_ms": (changes("given", 3.0), refused("step", 3.0, ops__forward_ms=1.0, ops__weight_ms=1.0)),
    "ops.weight_ms": (changes("given", 0.5), refused("step", 0.5, ops__forward_ms=1.0, ops__backward_ms=2.0)),
    "ops.overlapped_ms": (changes("given", 2.5), refused("step", 2.5, **OPS_WHOLE)),
    "ops.measured_at_compute_sms": (changes("given", 100), refused("step", 100, **OPS_WHOLE)),
    # the workload of the chunk model (every key is also refused beside given op times)
    "workload.layers_per_stage": (changes("chunk", 2), refused("step", 2)),
    "workload.first_layer": (changes("chunk", 0), refused("step", 0)),
    "workload.tokens": (changes("chunk", 2048), refused("step", 2048)),
    "workload.ep": (
        changes("chunk", 32),
        changes("step", 16),
        changes("chunk", 1),  # an EP group of one GPU: DeepEP sends nothing
        refused("chunk", 32, workload__first_layer=0),  # a chunk of dense layers dispatches nothing
    ),
    "workload.routing": (
        changes("chunk", "random"),
        changes("step-random", "skewed"),  # (the short sequences: skewed routing of 4096 took 40 s)
        refused("chunk", "random", workload__first_layer=0),
    ),
    "workload.capacity_factor": (
        changes("step-random", 1.0),
        changes("chunk-random", 0.5),
        changes("step", 0.5),
        refused("step", 1.0),  # balanced routing: within a capacity of 1 or more, nothing is dropped
        refused("chunk", 2.0),
        refused("given", 1.0),
    ),
    "workload.dispatcher": (
        changes("step", "alltoall"),
        changes("chunk", "alltoall"),
        refused("given", "alltoall"),
        refused("step", "alltoall", workload__ep=1),  # an EP group of one GPU dispatches nothing
        refused("chunk", "alltoall", workload__ep=1),
    ),
    "workload.pad_to_capacity": (changes("step-random-capacity", True), refused("step", True)),
    "workload.interference": (
        changes("chunk", "none"),
        changes("step", "none"),
        refused("chunk", "none", workload__first_layer=0),
        refused("step", "none", workload__ep=1),  # no DeepEP, TP, CP or expert TP beside the compute
        refused("chunk", "none", workload__ep=1),
    ),
    "workload.gemm_beside_comm": (changes("chunk", 1.5), refused("chunk", 1.5, workload__ep=1)),
    "workload.memory_beside_comm": (changes("chunk", 1.5), refused("step", 1.5, workload__ep=1)),
    "workload.comm_beside_compute": (
        changes("chunk", {"dispatch": 1.5}),
        refused("step", {"dispatch": 1.5}, workload__ep=1),
        refused("step", {"dispatch": 1.5}, workload__ep=1, training__tp=2),
    ),
    "workload.launch_gap_us": (changes("chunk", 10.0),),
    "workload.nccl_sms": (
        changes("step-a2a", 16),  # DualPipe: compute beside the all-to-all
        refused("step", 16),  # DeepEP's dispatcher: its SMs are set aside
        refused("step-a2a", 16, workload__ep=1),  # an EP group of one GPU dispatches nothing
        refused("step-a2a", 132),  # no SM left to compute
    ),
    "workload.notify_wait_us": (
        changes("chunk", 50.0),
        changes("step", 50.0),
        refused("step", 50.0, workload__ep=1),  # a step's EP group of one GPU runs no DeepEP kernel
    ),
    # the simple stage-to-stage link
    "p2p.activation_bytes": (
        changes("given", 1e8),
        refused("step", 1e8),  # a step sends over the cluster
        refused("given", 1e8, pipeline__pp=2, pipeline__schedules=["dualpipev"]),  # one device sends nothing
    ),
    "p2p.bandwidth_GBps": (
        changes("given-sends", 10.0),
        refused("given", 10.0),  # no bytes are sent
        refused("given-fabric", 10.0),  # the network sets it
        refused("step", 10.0),
    ),
    "p2p.latency_us": (
        changes("given", 100.0),
        refused("given-fabric", 100.0),
        refused("step", 100.0),
        refused("given", 100.0, pipeline__pp=2, pipeline__schedules=["dualpipev"]),  # 2 stages folded on 1 device
    ),
    # the cluster
    "cluster.topology": (changes("step", FT2),),
    "cluster.device_gpus": (changes("given-fabric", [0, 1, 2, 3]), refused("step", [0, 8, 16, 24])),
    "cluster.completion_rtol": (changes("given-fabric", 0.2), changes("step", 0.5)),
    "cluster.nic_Gbps": (changes("given-fabric", 200.0), changes("step", 200.0)),
    "cluster.nvlink_GBps": (changes("step", 80.0),),
    "cluster.oversubscription": (changes("step-ft2", 2), refused("given-fabric", 2)),
    "cluster.scale_up": (
        changes("step", "nvl72"),
        refused("step", "nvl72", workload__ep=8),
        refused("given-fabric", "nvl72"),
    ),
    # the SM split
    "comm.sms": (
        changes("chunk", 24),
        changes("given-measured", 24),
        refused("given", 24),
        refused("chunk", 24, comm__coprocessor=True),  # all SMs compute
        refused("step", 24, comm__coprocessor=True),
    ),
    "comm.coprocessor": (changes("chunk", True), changes("step", True), refused("given", True)),
    "comm.profile": (refused("chunk", "h800.json"),),  # moved to the top-level profile
    "comm.combine_format": (
        changes("step", "logfmt8"),
        changes("chunk", "logfmt10"),
        refused("given", "logfmt8"),
        refused("chunk", "logfmt10", workload__first_layer=0),  # a chunk of dense layers combines nothing
        refused("step", "logfmt8", workload__ep=1),  # an EP group of one GPU combines nothing
        refused("step", "logfmt8", workload__ep=1, training__etp=2),
    ),
    "comm.dispatch_format": (
        changes("step", "bf16"),
        changes("chunk", "bf16"),
        refused("given", "bf16"),
        refused("step", "bf16", workload__dispatcher="alltoall"),  # NCCL's rows are BF16 whatever it says
        refused("step", "bf16", model__dtype="bf16"),  # a BF16 recipe's rows are BF16
        refused("chunk", "bf16", workload__first_layer=0),  # a chunk of dense layers dispatches nothing
        refused("step", "bf16", workload__ep=1),  # an EP group of one GPU dispatches nothing
    ),
    "comm.multicast": (
        changes("step", True),
        refused("given", True),
        refused("step", True, workload__dispatcher="alltoall"),  # NCCL's rows are not node-deduplicated
        refused("step", True, workload__ep=16),  # two nodes: a token has one remote node, no copy to merge
        refused("step", True, workload__ep=4, training__etp=2),  # one node
        refused("chunk", True, workload__ep=16),
        refused("step", True, workload__ep=64, training__gpus=256, cluster__scale_up="nvl72"),  # one domain
        refused("step", True, workload__ep=1),
        refused("step", True, model__n_activated_experts=1),  # top-1: a token reaches one node
    ),
    "comm.in_network_reduce": (
        changes("step-ft2", True),  # spine links carry one reduced copy (DeepEP's SMs bind a non-blocking leaf)
        refused("given", True),
        refused("step", True, workload__dispatcher="alltoall"),
        refused("step-ft2", True, model__n_limited_groups=1),  # a token reaches one node
        refused("chunk", True, workload__ep=16),
    ),
    # the training step
    "training.gpus": (changes("step", 256),),
    "training.global_batch": (changes("step", 1024),),
    "training.microbatch_sequences": (changes("step", 2),),
    "training.tp": (changes("step-gqa", 2), changes("step", 2), refused("step", 3)),
    "training.cp": (changes("step-gqa", 2), changes("step", 2), refused("step", 3)),
    "training.layers_per_stage": (
        changes("step", "balanced"),
        changes("step", [1, 3, 3, 1]),
        refused("step-pp1", "balanced"),  # one stage holds every layer
    ),
    "training.fidelity": (changes("step-random", "per-gpu"),),
    "training.routing_samples": (
        changes("step-random", 2),
        refused("step", 2),  # balanced: every sample alike
        refused("step-random", 17),  # 16 micro-batches: sample 16 would never route one
    ),
    "training.dp_overlap": (changes("step", "tail"), refused("step-pp1", "tail")),  # one rank: tail is none
    "training.recompute": (changes("step", "full"), changes("step", "none")),
    "compute.online_quantization": (changes("step", True), changes("chunk", True), refused("given", True)),
    "compute.transposed_reads": (changes("step", True), refused("given", True)),
    "compute.fp8_scaling": (changes("step", "native"), refused("given", "native")),
    "compute.fp8_accumulation": (
        changes("step-native", "full"),
        refused("step", "full"),  # software block scaling promotes anyway
    ),
    "training.etp": (changes("step-ep16", 2), refused("step", 2), refused("step-ep16", 3)),
    "training.tp_comm_overlap": (changes("step-gqa-tp", True), refused("step", True)),
    "training.cp_comm": (changes("step-gqa-cp", "p2p"), refused("step-gqa", "p2p")),
    "training.fsdp": (changes("step-1f1b", True), refused("step", True)),  # DualPipe: two copies of a stage
    "training.fsdp_reshard_after_forward": (changes("step-fsdp", False), refused("step-1f1b", False)),
    "training.dp_algorithm": (
        changes("step", "ring"),
        refused("step-tp", "ring"),  # each TP rank's DP group is a ring
        refused(  # 1F1B on ranks of one node: each DP group within a node
            "step-1f1b", "ring", training__gpus=32, workload__ep=8, training__global_batch=64
        ),
    ),
    "training.contention": (changes("step", "isolated"),),
    "training.grad_reduce_bytes": (changes("step", 2),),
    "training.check_memory": (refused("step-over-memory", True),),
    # prices: a sweep's cost per trillion tokens
    "economics.gpu_hour_usd": (changes("step", 3.0, "sweep"), changes("step", 3.0), refused("given", 3.0)),
    "economics.fabric_life_years": (changes("step", 2.0, "sweep"), changes("step", 2.0), refused("chunk", 2.0)),
}

# keys whose every value but the default is refused (moved to the top-level profile),
# or whose effect is a refusal (the memory check)
ONLY_REFUSED = ["comm.profile", "training.check_memory"]

# beside given op times the chunk model does not run: its model and workload keys are refused
for _key, _cases in list(CASES.items()):
    if _key.split(".")[0] in ("model", "workload"):
        CASES[_key] = (*_cases, refused("given", _cases[0].value))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``X`` or ``X | None``), else None (a leaf)."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)


def schema_keys(model: type[BaseModel] = Scenario, prefix: str = "") -> list[str]:
    """Every leaf key of the scenario schema, dotted: nested sections recursed into; a list or mapping is one."""
    keys = []
    for name, info in model.model_fields.items():
        section = _model_of(info.annotation)
        keys += schema_keys(section, f"{prefix}{name}.") if section else [prefix + name]
    return keys


# ------------------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contexts as derived scenario files (paths absolute)."""
    root = tmp_path_factory.mktemp("contexts")
    for name, (base, sets) in CONTEXTS.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump({"base": str(base), "set": sets}, sort_keys=False))
    return root


def _derived(path: Path, base: Path, sets: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"base": str(base), "set": sets}, sort_keys=False))
    return path


def _figures(asm: Assembly) -> str:
    if asm.training:
        d = simulate_training(asm).to_dict()
        d.pop("stats")  # how the run went (events, flows, wall time), not what it says
    else:
        d = simulate(asm).to_dict()
    d.pop("twin_version")
    return json.dumps(d, sort_keys=True)


def _report(asm: Assembly) -> str:
    """The Markdown of the summary.md ``twin run`` writes."""
    if asm.training:
        from reports.step_report import step_document

        return step_document(simulate_training(asm)).to_markdown()
    from reports.schedule_report import schedule_document

    return schedule_document(simulate(asm)).to_markdown()


def _sweep_row(path: Path) -> str:
    """The figures of a sweep point of this scenario (``twin sweep``'s row)."""
    from sim.sweep.point import METRICS, run_point

    data, base_folder = scenario_data(path)
    row = run_point(data, str(path), str(base_folder))
    assert row["status"] == "ok", row["error"]
    return json.dumps({m.name: row[m.name] for m in METRICS})


def _output(path: Path, output: str) -> str:
    if output == "sweep":
        return _sweep_row(path)
    asm = assemble(load_scenario(path))
    return _figures(asm) if output == "figures" else " ".join(_report(asm).split())


@cache
def _context_output(path: Path, output: str) -> str:
    return _output(path, output)


@cache
def _context_assembles(path: Path) -> None:
    assemble(load_scenario(path))


def _names(err: ScenarioError, key: str) -> bool:
    """The refusal names ``key``: as its key path, the key's section, or in its message."""
    path = err.key_path
    return path == key or (bool(path) and key.startswith(path + ".")) or key in err.message


PARAMS = [
    pytest.param(key, i, case, id=f"{key}-{case.context}-{case.expect}-{i}")
    for key, cases in CASES.items()
    for i, case in enumerate(cases)
]


def test_every_key_has_a_case() -> None:
    """A key added to the schema needs a case here: the place where it changes the result, or where it is
    refused."""
    keys = schema_keys()
    assert len(keys) == len(set(keys)) >= 60
    missing = [k for k in keys if k not in CASES]
    stale = [k for k in CASES if k not in keys]
    assert not missing, f"scenario keys without a case in CASES: {missing}"
    assert not stale, f"CASES names keys the schema does not have: {stale}"
    only_refused = [k for k in keys if all(c.expect == "refused" for c in CASES[k])]
    assert only_refused == ONLY_REFUSED, "a key accepted somewhere needs a case where it changes the result"
    assert all(c.context in CONTEXTS and c.expect in ("changes", "refused") for cs in CASES.values() for c in cs)


@pytest.mark.parametrize("key,index,case", PARAMS)
def test_a_changed_key_changes_the_result_or_is_refused(
    key: str, index: int, case: Case, folder: Path, tmp_path: Path
) -> None:
    """The rule: every key the scenario schema accepts, changed from its context's value, either changes
    what the user sees (the figures of ``twin run --format json``; the report's text for a label; a
    sweep row for a price) or is refused by ``load_scenario``/``assemble`` (so ``twin validate`` and
    ``twin run`` alike) with a ScenarioError naming the key. Accepted and ignored is a failure."""
    context = folder / f"{case.context}.yaml"
    _context_assembles(context)  # the context itself is a valid scenario
    path = _derived(tmp_path / "changed.yaml", context, {key: case.value} | case.extra)
    try:
        assemble(load_scenario(path))
    except ScenarioError as err:
        assert _names(err, key), f"{key} refused, but the line does not name it: {err}"
        assert case.expect == "refused", f"{key} = {case.value!r} in {case.context}: refused: {err}"
        assert "\n" not in str(err)
        return
    assert case.expect == "changes", f"{key} = {case.value!r} in {case.context}: accepted, expected a refusal"
    changed = _output(path, case.output)
    if case.output == "report":  # a label: it shows where the user reads it
        assert str(case.value) in changed, f"{key}: {case.value!r} not in the report"
        return
    assert changed != _context_output(context, case.output), f"{key} = {case.value!r}: accepted, nothing changed"


# ------------------------------------------------------------------------------- what the rule needs


def test_only_the_virtual_stage_schedules_read_virtual_stages() -> None:
    """pipeline.virtual_stages is refused unless a schedule of VIRTUAL_STAGE_SCHEDULES runs: every
    registered schedule is built with 1 and 2 virtual stages to keep that set true."""
    for name in SCHEDULES:
        one, two = build_schedule(name, 4, 8, 1), build_schedule(name, 4, 8, 2)
        assert (one != two) == (name in VIRTUAL_STAGE_SCHEDULES), name


@pytest.mark.parametrize("key", sorted(NOT_MODELLED))
def test_config_keys_nothing_reads_are_refused_in_a_scenario_and_dropped_from_a_config_file(
    key: str, tmp_path: Path
) -> None:
    value = {"n_expert_groups": 8, "route_scale": 1.0, "score_func": "softmax"}[key]
    path = _derived(tmp_path / "s.yaml", TABLE, {"ops": None, f"model.{key}": value})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key_path == f"model.{key}" and info.value.message.startswith("not used")
    config = tmp_path / "config.json"
    shape = {"vocab_size": 129280, "dim": 7168, "inter_dim": 18432, "n_layers": 61, "n_heads": 128}  # required
    config.write_text(json.dumps({**shape, key: value}))
    plain = load_model_config(_write_json(tmp_path / "plain.json", shape))
    assert load_model_config(config) == plain.model_copy(update={"name": tmp_path.name})  # named after its folder


def _write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_shipped_scenarios_set_no_key_they_do_not_use() -> None:
    """The shipped scenarios load under the rule (twin validate of each is tests/unit/test_validate_matches_run.py)."""
    for path in sorted((REPO / "scenarios").glob("*.yaml")) + sorted((REPO / "scenarios" / "codesign").glob("*.yaml")):
        if not {"studies", "grid", "points"} & set(yaml.safe_load(path.read_text())):
            load_scenario(path)
    load_scenario(SMALL_STEP)


def test_a_study_of_other_schedules_drops_the_virtual_stages_they_do_not_read(tmp_path: Path) -> None:
    """``twin report`` runs every schedule on the scenario's layout: a scenario of interleaved-1f1b with
    its virtual stages still gives the other schedules' variants (not refused as unused there)."""
    from sim.experiments.study import variant

    sets = STEP | {"pipeline.schedules": ["interleaved-1f1b"], "pipeline.virtual_stages": 2}
    sc = load_scenario(_derived(tmp_path / "interleaved.yaml", SMALL_STEP, sets))
    other = variant(sc, {"pipeline.schedules": ["dualpipe"]})
    assert other.pipeline.schedules == ["dualpipe"] and "virtual_stages" not in other.pipeline.model_fields_set
    assert variant(sc, {"comm.sms": 24}).pipeline.virtual_stages == 2


@pytest.mark.parametrize(
    ("base", "sets", "key", "needle"),
    [
        # the trace's slowdown factors under another interference model: read under trace only
        (
            SMALL_STEP,
            {**STEP, "workload.interference": "none", "workload.gemm_beside_comm": 1.5},
            "workload.gemm_beside_comm",
            "interference: none",
        ),
        (
            SMALL_STEP,
            {**STEP, "workload.interference": "profile", "workload.comm_beside_compute": {"dispatch": 2.0}},
            "workload.comm_beside_compute",
            "interference: profile",
        ),
        # given op times rescale to the SM split only: DeepEP's message format and switch features do nothing
        (
            TABLE,
            {**GIVEN, "ops.measured_at_compute_sms": 100, "comm.combine_format": "logfmt8"},
            "comm.combine_format",
            "rescaled only",
        ),
        (
            TABLE,
            {**GIVEN, "ops.measured_at_compute_sms": 100, "comm.multicast": True},
            "comm.multicast",
            "rescaled only",
        ),
        # no weight has a second copy (DP 1 under TP 8): nothing to reduce or shard
        (
            REPO / "scenarios" / "clusters" / "llama3.1-8b-h100.yaml",
            {"training.tp": 8, "training.gpus": 32, "training.global_batch": 16, "training.fsdp": True},
            "training.fsdp",
            "every weight has one copy",
        ),
    ],
)
def test_combinations_that_leave_a_key_nothing_to_do_are_refused(
    base: Path, sets: dict[str, Any], key: str, needle: str, tmp_path: Path
) -> None:
    """Each was accepted with output identical to the run without it (found by a combination audit)."""
    path = _derived(tmp_path / "s.yaml", base, sets)
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(path))
    assert info.value.key_path == key and needle in info.value.message, (info.value.key_path, info.value.message)


def test_an_ep_group_of_one_gpu_may_leave_communication_no_sm(tmp_path: Path) -> None:
    """EP 1 keeps every expert on the GPU: no DeepEP kernel runs, so, as for a dense model, comm.sms 0
    is accepted without a co-processor (it was refused: "0 SMs for communication needs coprocessor mode")
    and gives the compute all the SMs: the co-processor's step, to the bit (neither has anything else
    on the communication SMs: no TP, CP or expert TP)."""
    zero = assemble(load_scenario(_derived(tmp_path / "z.yaml", SMALL_STEP, {**STEP, "workload.ep": 1, "comm.sms": 0})))
    cop = assemble(
        load_scenario(_derived(tmp_path / "c.yaml", SMALL_STEP, {**STEP, "workload.ep": 1, "comm.coprocessor": True}))
    )
    step, coprocessed = json.loads(_figures(zero)), json.loads(_figures(cop))
    assert coprocessed.pop("cost")["not_modelled"] and step.pop("cost")["not_modelled"] is None  # (no price yet)
    assert step == coprocessed


def test_interference_from_a_profile_without_measured_pairs_is_refused(tmp_path: Path) -> None:
    """A datasheet profile has no GEMM-beside-copy samples: its interference model is none, so
    ``workload.interference: profile`` gave the figures of ``none`` without a word."""
    datasheet = str(REPO / "calibrate" / "profiles" / "h800-datasheet.json")
    path = _derived(tmp_path / "s.yaml", SMALL_STEP, {**STEP, "profile": datasheet, "workload.interference": "profile"})
    with pytest.raises(ScenarioError) as info:
        assemble(load_scenario(path))
    assert info.value.key_path == "workload.interference" and "no interference samples" in info.value.message


def test_a_nic_rate_on_a_one_node_cluster_is_refused(tmp_path: Path) -> None:
    """One node sends nothing through a NIC: ``cluster.nic_Gbps`` there was accepted, the step the same."""
    node = str(REPO / "topologies" / "h800-node.yaml")
    sets = {
        **STEP,
        "cluster.topology": node,
        "cluster.nic_Gbps": 100,
        "training.gpus": 8,
        "pipeline.pp": 1,
        "pipeline.schedules": ["1f1b"],
        "workload.ep": 8,
        "training.global_batch": 16,
    }
    with pytest.raises(ScenarioError) as info:
        load_scenario(_derived(tmp_path / "s.yaml", SMALL_STEP, sets))
    assert info.value.key_path == "cluster.nic_Gbps" and "one node" in info.value.message
