"""Every key of a serve scenario is used: changing it changes what ``twin serve`` reports, or is
refused with a one-line error naming the key.

The walk covers every leaf of ``serve.*`` and ``cluster.*`` (the keys a serve scenario adds or reads
differently from a training scenario), the top-level keys and the model's keys serving reads
differently from training (:data:`MODEL_CASES`: the weights' dtype, the tied head, the training
sequence length); the model's other keys are the training scenario's and are walked by
``tests/unit/test_every_key_is_used.py``. A new key without a case here fails
:func:`test_every_serve_key_has_a_case`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sim.errors import ScenarioError
from sim.model.spec import ModelSpec
from sim.serve.deployment import build, simulate_serve
from sim.serve.floor import decode_floor
from sim.serve.spec import ServeScenario, parse_serve

ROOT = Path(__file__).resolve().parents[2]

# A small deployment that runs in well under a second: DeepSeek-V2-Lite (64 experts) on one node per pool.
BASE: dict[str, Any] = {
    "name": "keys",
    "model": {"config": "deepseek-v2-lite"},
    "profile": str(ROOT / "calibrate/profiles/h800.json"),
    "cluster": {"topology": str(ROOT / "topologies/deepseek-v3-mpft.yaml")},
    "serve": {
        "duration_s": 4,
        "traffic": {"rate_per_s": 30, "input_tokens": 600, "output_tokens": 24, "prompt_cache_hit": 0.3},
        "prefill": {"nodes": 1, "unit_nodes": 1, "experts_per_gpu": 9, "max_batch_tokens": 512},
        "decode": {"nodes": 1, "unit_nodes": 1, "kernels": "low_latency", "experts_per_gpu": 9, "max_batch": 4},
        "slo": {"ttft_s": 0.05, "tpot_s": 0.004},
    },
}

# key -> a value that must change the result (or "REFUSED:" + value when it must be refused)
CASES: dict[str, Any] = {
    "name": "REFUSED:..",
    "description": None,  # text only: shown in the report, changes no figure (checked below)
    "seed": 3,
    "profile": str(ROOT / "calibrate/profiles/h100-sxm-measured.json"),
    "cluster.topology": str(ROOT / "topologies/h100-ib-1024.yaml"),
    "cluster.nic_Gbps": 100.0,
    "cluster.nvlink_GBps": 40.0,
    "cluster.scale_up": "nvl72",
    "cluster.device_gpus": "REFUSED:[0]",
    "cluster.completion_rtol": None,  # read by the training step's flow network only: refused below
    "cluster.oversubscription": "REFUSED:2",
    "serve.duration_s": 6.0,
    "serve.traffic.rate_per_s": 60.0,
    "serve.traffic.input_tokens": 900,
    "serve.traffic.output_tokens": 40,
    "serve.traffic.lengths": "exponential",
    "serve.traffic.trace": "REFUSED:no-such.csv",
    "serve.traffic.prompt_cache_hit": 0.6,
    "serve.expert_load": "skewed",
    "serve.router_groups": 2,
    "serve.slo.ttft_s": 1.0,
    "serve.slo.tpot_s": 1.0,
    "serve.floor.tokens_per_gpu": 64,
    "serve.floor.nvlink_domain_GBps": 450.0,
    "serve.timeline_spans": 3,
    "serve.colocated": "REFUSED:{nodes: 1, unit_nodes: 1}",
}
# the model's keys serving reads differently from training (not exempt: walked like the serve keys)
MODEL_CASES: dict[str, Any] = {
    "model.dtype": "bf16",  # BF16 weights in memory and BF16 GEMMs in every forward
    "model.tie_word_embeddings": True,  # one table for the embedding and the head: less weight memory
    "model.seq_len": "REFUSED:2048",  # a training length; serving's lengths are serve.traffic's
}
POOL_CASES: dict[str, Any] = {
    "nodes": 2,
    "unit_nodes": "REFUSED:3",
    "attention_tp": 2,
    "experts_per_gpu": 10,
    "kernels": None,  # per pool below: the other family
    "comm_sms": 24,
    "tbo": False,
    "shared_as_routed": True,
    "max_batch_tokens": 128,
    "max_batch": 1,
    "chunked_prefill": False,
    "policy": "sjf",
    "launch_gap_us": 20.0,
    "mtp.enabled": True,
    "mtp.acceptance": 0.3,
    "kv_memory_fraction": 0.5,
    "kv_dtype": "fp8",
}
V3_UNITS: dict[str, Any] = {
    "model": {},  # DeepSeek-V3
    "serve.prefill": {"nodes": 2, "unit_nodes": 2, "experts_per_gpu": 16, "max_batch_tokens": 8192},
    "serve.decode": {"nodes": 2, "unit_nodes": 2, "experts_per_gpu": 16, "kernels": "low_latency", "max_batch": 4},
}
# where a pool key needs company to act: extra overrides applied with the change
COMPANY: dict[str, dict[str, Any]] = {
    # batches large enough for two micro-batches to be faster than one
    # (DeepSeek-V3 on units of two nodes: an all-to-all over IB worth hiding, batches large enough
    # that two halves reading every weight each still gain)
    "serve.prefill.tbo": {**V3_UNITS, "serve.traffic.rate_per_s": 40, "serve.traffic.input_tokens": 8000},
    "serve.decode.tbo": {
        **V3_UNITS,
        "serve.traffic.rate_per_s": 200,
        "serve.traffic.output_tokens": 400,
        "serve.decode.max_batch": 256,
    },
    "serve.decode.mtp.enabled": {"model.mtp_depth": 1},  # DeepSeek-V2-Lite has no MTP module (refused)
    "serve.decode.mtp.acceptance": {"serve.decode.mtp.enabled": True, "model.mtp_depth": 1},
    # a queue long enough for the prefill's batching keys to act
    "serve.prefill.chunked_prefill": {"serve.traffic.rate_per_s": 200, "serve.traffic.lengths": "exponential"},
    "serve.prefill.policy": {"serve.traffic.rate_per_s": 200, "serve.traffic.lengths": "exponential"},
    "serve.decode.comm_sms": {"serve.decode.kernels": "normal"},
    "serve.floor.tokens_per_gpu": {"serve.floor": {}},
    "serve.floor.nvlink_domain_GBps": {"serve.floor": {}},
    "serve.router_groups": {"model.n_limited_groups": 1},
    "cluster.scale_up": {"serve.prefill.nodes": 2, "serve.prefill.unit_nodes": 2},
}
REFUSED_POOL = {
    "serve.prefill.mtp.enabled",
    "serve.prefill.mtp.acceptance",
    "serve.prefill.max_batch",
    "serve.prefill.kv_dtype",
    "serve.decode.max_batch_tokens",
    "serve.decode.chunked_prefill",
    "serve.decode.policy",
}


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        key = f"{prefix}{name}"
        if inner and key not in ("model",):
            out += _leaves(inner[0], key + ".")
        else:
            out.append(key)
    return out


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    sc = parse_serve(data, ROOT / "tests/serve/keys.yaml", ROOT)
    d = build(sc)
    out: dict[str, Any] = {}
    if sc.serve.floor is not None:
        out["floor"] = decode_floor(sc, d)
    r = simulate_serve(sc, d)
    out.update({k: v for k, v in r.to_dict().items() if k != "scenario"})
    out["spans"] = len(r.spans)
    return out


def _cases() -> list[tuple[str, Any]]:
    keys = [k for k in _leaves(ServeScenario) if not k.startswith("model")]
    cases = []
    for key in keys:
        if key.startswith(("serve.prefill.", "serve.decode.", "serve.colocated.")):
            role, sub = key.split(".")[1], ".".join(key.split(".")[2:])
            if role == "colocated":
                continue  # the pools' keys, walked on prefill and decode
            value = POOL_CASES[sub]
            if sub == "kernels":
                value = "low_latency" if role == "prefill" else "normal"
            if key in REFUSED_POOL:
                value = f"REFUSED:{value}"
            cases.append((key, value))
        elif CASES[key] is not None:  # None: a key with its own test below
            cases.append((key, CASES[key]))
    return cases + list(MODEL_CASES.items())


def test_every_serve_key_has_a_case() -> None:
    keys = {k for k in _leaves(ServeScenario) if not k.startswith("model")}
    pool = {k.split(".", 2)[2] for k in keys if k.startswith(("serve.prefill.", "serve.decode.", "serve.colocated."))}
    assert pool <= set(POOL_CASES), pool - set(POOL_CASES)
    plain = {k for k in keys if not k.startswith(("serve.prefill.", "serve.decode.", "serve.colocated."))}
    assert plain <= set(CASES), plain - set(CASES)
    assert {k.removeprefix("model.") for k in MODEL_CASES} <= set(ModelSpec.model_fields)


BASE_FIGURES: dict[str, Any] = {}


def _base() -> dict[str, Any]:
    if not BASE_FIGURES:
        BASE_FIGURES.update(_figures(copy.deepcopy(BASE)))
    return BASE_FIGURES


@pytest.mark.parametrize(("key", "value"), _cases(), ids=[k for k, _ in _cases()])
def test_changing_a_key_changes_the_result_or_is_refused(key: str, value: Any) -> None:
    data = copy.deepcopy(BASE)
    for k, v in COMPANY.get(key, {}).items():
        _set(data, k, copy.deepcopy(v))
    refused = isinstance(value, str) and value.startswith("REFUSED:")
    if refused:
        import yaml

        value = yaml.safe_load(value.removeprefix("REFUSED:"))
    _set(data, key, value)
    if refused:
        with pytest.raises(ScenarioError) as err:
            _figures(data)
        assert "\n" not in str(err.value)
        return
    base = copy.deepcopy(BASE)
    for k, v in COMPANY.get(key, {}).items():
        _set(base, k, copy.deepcopy(v))
    before = _figures(base) if key in COMPANY else _base()
    assert _figures(data) != before, f"{key}: {value!r} changed nothing"


def test_description_is_text_only_and_completion_rtol_is_refused() -> None:
    data = copy.deepcopy(BASE)
    data["description"] = "another text"
    assert _figures(data) == _base()
    data = copy.deepcopy(BASE)
    data["cluster"]["completion_rtol"] = 0.01
    with pytest.raises(ScenarioError, match=r"cluster\.completion_rtol"):
        _figures(data)


def test_a_profile_device_without_a_datasheet_names_the_profile_file_and_key(tmp_path: Path) -> None:
    import json

    profile = json.loads((ROOT / "calibrate/profiles/h800.json").read_text())
    profile["device"]["name"] = "abc"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    data = copy.deepcopy(BASE)
    data["profile"] = str(path)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert str(err.value).startswith(f"{path}: device.name: no datasheet for device 'abc'")


def test_comm_sms_of_a_low_latency_pool_is_refused() -> None:
    """A low-latency pool holds no SMs for DeepEP: its comm_sms changed nothing and was accepted."""
    data = copy.deepcopy(BASE)
    _set(data, "serve.decode.kernels", "low_latency")
    _set(data, "serve.decode.comm_sms", 24)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert "serve.decode.comm_sms: not used by low_latency kernels" in str(err.value)


TRACE = ROOT / "scenarios" / "serve" / "traces" / "synthetic-60s.csv"  # has a cached_tokens column


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"lengths": "exponential"}, "serve.traffic.lengths: not used with a trace"),
        ({"input_tokens": 100}, "serve.traffic.input_tokens: not used with a trace"),
        ({"output_tokens": 7}, "serve.traffic.output_tokens: not used with a trace"),
        ({"prompt_cache_hit": 0.9}, "serve.traffic.prompt_cache_hit: not used: the trace's cached_tokens column"),
    ],
)
def test_traffic_keys_a_trace_does_not_read_are_refused(traffic: dict[str, Any], message: str) -> None:
    """With a trace its rows give each request's lengths (and, with a cached_tokens column, its cached
    prefix): these keys beside it changed nothing and were accepted. The key path is whole (an
    optional section's key used to read 'serve.traffic: lengths: ...')."""
    data = copy.deepcopy(BASE)
    _set(data, "serve.traffic", {"trace": str(TRACE), **traffic})
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert f"keys.yaml: {message}" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("serve.prefill.nodes", 7, "serve.prefill.nodes: 7 must be whole units of unit_nodes (4)"),
        ("serve.prefill.comm_sms", 3, "serve.prefill.comm_sms: must be even"),
    ],
)
def test_a_pools_check_names_the_key(key: str, value: int, message: str) -> None:
    """A pool's own checks named the pool (serve.prefill: nodes (7) ...), not the key."""
    data = copy.deepcopy(BASE)
    if key.endswith("nodes"):
        _set(data, "serve.prefill.unit_nodes", 4)
    _set(data, key, value)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("serve.decode.max_batch", 64, "serve.decode.max_batch: not used by the decode floor alone"),
        ("serve.decode.kv_dtype", "fp8", "serve.decode.kv_dtype: not used by the decode floor alone"),
        ("serve.decode.attention_tp", 2, "serve.decode.attention_tp: not used by the decode floor alone"),
        ("serve.slo", {"ttft_s": 1.0}, "serve.slo: not used by the decode floor alone"),
        ("serve.duration_s", 10, "serve.duration_s: not used by the decode floor alone"),
        ("serve.decode.tbo", False, "serve.decode.tbo: the decode floor takes two micro-batches"),
        ("serve.decode.kernels", "normal", "serve.decode.kernels: the decode floor times DeepEP's low_latency"),
        (  # (twin serve: a KeyError traceback, where twin validate said ok)
            "serve.traffic",
            {"rate_per_s": 1, "input_tokens": 10, "output_tokens": 10},
            "serve.traffic: runs through prefill and decode pools, or a colocated pool, and there is no prefill pool",
        ),
    ],
)
def test_the_decode_floor_alone_refuses_the_keys_of_serving(key: str, value: Any, message: str) -> None:
    """scenarios/serve/decode-floor.yaml serves no request: these keys changed nothing and were
    accepted (its own file set tbo: true while the floor took two micro-batches whatever it said)."""
    import yaml

    folder = ROOT / "scenarios" / "serve"
    data = yaml.safe_load((folder / "decode-floor.yaml").read_text())
    _set(data, key, value)
    with pytest.raises(ScenarioError) as err:
        parse_serve(data, folder / "decode-floor.yaml", folder)
    assert message in str(err.value)


def test_mtp_acceptance_without_mtp_is_refused() -> None:
    """mtp.acceptance with MTP off changed nothing (no draft token to accept) and was accepted."""
    data = copy.deepcopy(BASE)
    _set(data, "model.mtp_depth", 1)
    _set(data, "serve.decode.mtp", {"acceptance": 0.5})
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert "keys.yaml: serve.decode.mtp.acceptance: not used: MTP is off" in str(err.value)


DENSE: dict[str, Any] = {  # BASE on a dense model: no expert placement, kernels or expert load
    **BASE,
    "model": {"config": "llama-3.1-8b"},
    "serve": {
        **BASE["serve"],
        "prefill": {"nodes": 1, "unit_nodes": 1, "max_batch_tokens": 512},
        "decode": {"nodes": 1, "unit_nodes": 1, "max_batch": 4},
    },
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("serve.prefill.experts_per_gpu", 4),
        ("serve.decode.shared_as_routed", True),
        ("serve.decode.kernels", "low_latency"),
        ("serve.prefill.comm_sms", 24),
        ("serve.expert_load", "skewed"),
        ("serve.router_groups", 4),
        ("serve.floor", {}),
    ],
)
def test_the_expert_keys_of_a_dense_model_are_refused(key: str, value: Any) -> None:
    """A dense model routes nothing: these keys changed nothing (or, serve.floor, divided by zero) and
    were accepted."""
    _figures(copy.deepcopy(DENSE))  # the context itself runs
    data = copy.deepcopy(DENSE)
    _set(data, key, value)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert f"keys.yaml: {key}: " in str(err.value) and "dense" in str(err.value)


def test_router_groups_the_router_keeps_all_of_are_refused() -> None:
    """With model.n_limited_groups at least router_groups, no group is dropped: the key changed nothing."""
    data = copy.deepcopy(BASE)
    _set(data, "model.n_limited_groups", 4)
    _set(data, "serve.router_groups", 4)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert "keys.yaml: serve.router_groups: not used: the router keeps 4 expert groups" in str(err.value)


def test_shared_as_routed_without_a_shared_expert_is_refused() -> None:
    """Qwen3-30B-A3B has no shared expert: shared_as_routed dispatched one that does not exist."""
    data = copy.deepcopy(BASE)
    _set(data, "model", {"config": "qwen3-30b-a3b"})
    _set(data, "serve.prefill.experts_per_gpu", 16)
    _set(data, "serve.decode.experts_per_gpu", 16)
    _set(data, "serve.decode.shared_as_routed", True)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert "keys.yaml: serve.decode.shared_as_routed: the model (Qwen3-30B-A3B) has no shared expert" in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,5\n1,1\n", "line 1: the header must be expert,load, got '0,5'"),  # line 1 was skipped as a header
        ("expert,load\n0,5,7\n", "line 2: expected expert,load"),  # the third value was ignored
        ("", "line 1: the header must be expert,load"),
    ],
)
def test_an_expert_load_file_without_its_header_or_with_extra_values_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "load.csv"
    path.write_text(text)
    data = copy.deepcopy(BASE)
    _set(data, "serve.expert_load", str(path))
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert f"load.csv: {message}" in str(err.value)


def test_expert_loads_near_the_float_maximum_keep_their_proportions(tmp_path: Path) -> None:
    """Loads of 1e308 summed to inf: every expert's share became 0 (with a numpy warning), not 1/2."""
    import warnings

    from sim.serve.deployment import expert_load

    huge, small = tmp_path / "huge.csv", tmp_path / "small.csv"
    huge.write_text("expert,load\n0,1e308\n1,1e308\n")
    small.write_text("expert,load\n0,1\n1,1\n")
    loads = []
    for path in (huge, small):
        data = copy.deepcopy(BASE)
        _set(data, "serve.expert_load", str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loads.append(expert_load(parse_serve(data, ROOT / "tests/serve/keys.yaml", ROOT)))
    assert loads[0][:2].tolist() == [0.5, 0.5] and loads[0].tolist() == loads[1].tolist()


def test_a_decode_floor_too_large_to_route_is_refused_naming_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve.floor.tokens_per_gpu: 65536 routed 9.4M tokens at once: the process was killed for memory."""
    import yaml

    import sim.limits

    monkeypatch.setattr(sim.limits, "available_memory", lambda: 1 << 28)  # 256 MiB
    folder = ROOT / "scenarios" / "serve"
    data = yaml.safe_load((folder / "decode-floor.yaml").read_text())
    _set(data, "serve.floor.tokens_per_gpu", 512)  # 512 x 144 GPUs x 256 experts: ~0.4 GiB a draw
    sc = parse_serve(data, folder / "decode-floor.yaml", folder)
    with pytest.raises(ScenarioError) as err:
        decode_floor(sc, build(sc))
    assert "decode-floor.yaml: serve.floor.tokens_per_gpu: routing 512 tokens on each of 144 GPUs" in str(err.value)


# ---------------------------------------------------------------- prefill policy and chunking


def _prefill(**keys: Any) -> dict[str, Any]:
    """BASE (fixed lengths: 600-token prompts, 30% cached: 420 new tokens each) with ``keys`` set."""
    data = copy.deepcopy(BASE)
    for key, value in keys.items():
        _set(data, key, value)
    return data


@pytest.mark.parametrize("role", ["prefill", "colocated"])
@pytest.mark.parametrize("value", ["sjf", "fcfs"])
def test_a_queue_policy_for_requests_of_one_length_is_refused(role: str, value: str) -> None:
    """Fixed lengths: every prompt has 420 new tokens, so shortest-first serves arrival order, as fcfs
    does; ``policy`` changed nothing (DeepSeek's shipped scenario, byte for byte) and was accepted."""
    data = _prefill()
    if role == "colocated":
        del data["serve"]["prefill"], data["serve"]["decode"]
        data["serve"]["colocated"] = {"nodes": 1, "unit_nodes": 1, "experts_per_gpu": 9, "max_batch_tokens": 512}
    _set(data, f"serve.{role}.policy", value)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    message = str(err.value)
    assert f"keys.yaml: serve.{role}.policy: not used: every request has the same 420 new prompt tokens" in message
    assert "serve.traffic.lengths: fixed, input_tokens 600 less the 180 cached" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", [True, False])
def test_chunked_prefill_where_whole_prompts_fill_the_budget_is_refused(value: bool) -> None:
    """256 new tokens a prompt, 512 a rank: every rank's room is 0 or a whole prompt, so none is ever
    split, on or off."""
    data = _prefill(**{"serve.traffic.input_tokens": 256, "serve.traffic.prompt_cache_hit": 0.0})
    _set(data, "serve.prefill.chunked_prefill", value)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert (
        "keys.yaml: serve.prefill.chunked_prefill: not used: every prompt has the same 256 new tokens "
        "(serve.traffic.lengths: fixed, input_tokens 256) and max_batch_tokens (512) holds exactly 2 of them"
    ) in str(err.value)


def test_the_refusals_stand_where_the_keys_cannot_act_and_only_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusals' conditions, held against the loop with them lifted, under a queue 25 deep on
    average (400 requests/s): with fixed lengths ``sjf`` gives fcfs's run bit for bit, as does
    ``chunked_prefill: false`` when the prompt (256 new tokens) divides the budget (512); when it does
    not (420 new tokens: a rank's last 92 tokens of room take a chunk), chunking changes the run
    (TTFT) and the capacity figure, so it is accepted there."""
    import sim.serve.deployment as deployment

    loaded = {"serve.traffic.rate_per_s": 400}
    divides = {**loaded, "serve.traffic.input_tokens": 256, "serve.traffic.prompt_cache_hit": 0.0}
    with monkeypatch.context() as m:
        m.setattr(deployment, "prefill_keys_used", lambda *args: None)
        fcfs = _figures(_prefill(**loaded))
        assert fcfs["littles_law"]["mean_prefill_queue"] > 10
        assert _figures(_prefill(**loaded, **{"serve.prefill.policy": "sjf"})) == fcfs
        whole_only = _figures(_prefill(**divides, **{"serve.prefill.chunked_prefill": False}))
        assert whole_only == _figures(_prefill(**divides))
    whole = _figures(_prefill(**loaded, **{"serve.prefill.chunked_prefill": False}))
    assert whole["ttft_s"] != fcfs["ttft_s"]
    assert whole["capacity"]["prefill"]["prefill_tokens_per_rank"] == 420
    assert fcfs["capacity"]["prefill"]["prefill_tokens_per_rank"] == 512


def _trace(path: Path, lengths: list[tuple[int, int]]) -> str:
    """A burst of requests (prompt, cached) over the first second, 2 output tokens each."""
    rows = "".join(f"{i / len(lengths):.4f},{n},2,{c}\n" for i, (n, c) in enumerate(lengths))
    path.write_text("arrival_s,input_tokens,output_tokens,cached_tokens\n" + rows)
    return str(path)


def test_sjf_on_a_trace_of_varied_lengths_is_used_and_of_one_length_refused(tmp_path: Path) -> None:
    """A trace whose prompts vary: shortest-first reorders the queue (TTFT changes); a trace whose every
    row has the same new tokens (prompt less cached, 400 here from three different prompts) is refused
    as fixed lengths are, naming the trace."""
    varied = _trace(tmp_path / "varied.csv", [(60 + 997 * i % 4000, 0) for i in range(300)])
    data = _prefill(**{"serve.traffic": {"trace": varied}})
    fcfs = _figures(data)
    _set(data, "serve.prefill.policy", "sjf")
    assert _figures(data)["ttft_s"] != fcfs["ttft_s"]
    same = _trace(tmp_path / "same.csv", [(400 + 100 * (i % 3), 100 * (i % 3)) for i in range(30)])
    data = _prefill(**{"serve.traffic": {"trace": same}, "serve.prefill.policy": "sjf"})
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    message = str(err.value)
    assert message.startswith(str(ROOT / "tests/serve/keys.yaml") + ": serve.prefill.policy: not used: every request")
    assert "the same 400 new prompt tokens (the trace same.csv's input_tokens less its cached tokens)" in message


def test_requests_of_one_output_token_refuse_the_keys_they_leave_unused() -> None:
    """Every request of one output token ends at its first, which prefill makes: the decode pool never
    ran, yet its nodes were counted in the throughput per decode node (13.7 tokens/s a node of nothing),
    and a TPOT SLO of 1 us was met by all (no request has a TPOT). Refused naming the key."""
    data = copy.deepcopy(BASE)
    _set(data, "serve.traffic.output_tokens", 1)
    with pytest.raises(ScenarioError) as err:
        _figures(data)
    assert "keys.yaml: serve.decode: not used: every request has 1 output token" in str(err.value)
    assert "the decode pool never runs" in str(err.value)
    co = copy.deepcopy(data)
    serve = co["serve"]
    serve["colocated"] = serve.pop("prefill") | {"max_batch": 4}
    del serve["decode"]
    with pytest.raises(ScenarioError) as err:  # co-located: its TPOT SLO alone does nothing
        _figures(co)
    assert "keys.yaml: serve.slo.tpot_s: not used: every request has 1 output token" in str(err.value)
    del serve["slo"]["tpot_s"]
    assert _figures(co)  # (prefill alone, co-located: a deployment that serves single-token requests)
    _set(data, "serve.traffic.output_tokens", 2)
    assert _figures(data)
