"""Input faults of the scenario checks, ``twin validate`` and four commands, each now one line naming
the file and the key (or the flag), exit status 2, nothing written. Before the fixes:

* ``cluster.device_gpus`` longer than the pipeline's devices was taken, its extra GPUs ignored (a
  shorter list was refused);
* ``model.n_limited_groups`` that limits nothing (at or above the EP group's nodes where the default
  does not limit either, or above them) was taken and changed nothing, while ``twin alltoall`` refused
  the first; ``--n-limited-groups 100`` (``--node-limit 9``) on 8 nodes printed M = 8's figures;
* ``workload.comm_beside_compute: {}`` was taken and changed nothing;
* ``twin alltoall --nodes N`` changed no figure (only the table's title), ``--sms 4,4`` printed each row
  twice, and ``--nodes 100000`` named the topology key ``nodes``;
* ``twin validate`` said ok for a scenario whose run overflows (a NIC of 1e-99 Gb/s);
* ``twin calibrate import-trace --device B200`` wrote a B200 profile of a trace whose
  ``deviceProperties`` say H800;
* ``twin schedules trace --f 1e-7`` wrote every span with ts 0 and dur 0, ``plot --f 1e-300`` an empty
  axis.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from sim.assemble import assemble
from sim.config import load_scenario
from sim.moe.spec import MoESpec, unused_node_limit
from sim.pipeline.maxplus import comparison_lower_bound
from sim.run import op_times, simulate
from tests.conftest import SHARED, require_shared
from tests.unit.test_bad_inputs import ran_cleanly, refused_in_one_line

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
SMALL = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
QWEN = REPO / "scenarios" / "qwen3-235b-h100-256-tp2pp8vp4ep32.yaml"
SERVE = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
FLOOR = REPO / "scenarios" / "serve" / "decode-floor.yaml"
MPFT = REPO / "topologies" / "deepseek-v3-mpft.yaml"
TRACE = SHARED / "reference" / "deepseek-v3" / "profile-data-train.json"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _derived(folder: Path, name: str, base: Path, sets: dict[str, object]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"base": str(base), "name": "x", "set": sets}))
    return path


def _comparison(folder: Path, name: str, **sections: object) -> Path:
    data: dict[str, object] = {
        "name": "d",
        "pipeline": {"pp": 4, "microbatches": 8, "schedules": ["1f1b"]},
        "ops": {"forward_ms": 1, "backward_ms": 2},
        "p2p": {"activation_bytes": 58720256},
        **sections,
    }
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------------------ F6: device_gpus


def test_a_device_gpus_list_longer_than_the_devices_is_refused(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _comparison(here, "d.yaml", cluster={"topology": str(MPFT), "device_gpus": [0, 8, 16, 24, 32]})
    expected = "d.yaml: cluster.device_gpus: need 4 distinct GPUs in 0..2047 (one per pipeline device), got "
    for args in (["validate", str(path)], ["run", str(path), "-o", "out"]):
        refused_in_one_line(args, expected + "[0, 8, 16, 24, 32] (5 given)", here, capsys)
    exact = _comparison(here, "e.yaml", cluster={"topology": str(MPFT), "device_gpus": [0, 8, 16, 24]})
    assert load_scenario(exact).cluster is not None


# --------------------------------------------------------------------------------- F7: n_limited_groups


def test_the_node_limit_rule() -> None:
    """One rule (:func:`sim.moe.spec.unused_node_limit`): M from the node count up routes as M = the node
    count (no limit), so M = nodes is kept beside a limiting default and M above it refused."""
    eight_nodes = MoESpec(ep=64, node_limit=8)
    assert eight_nodes.limit == MoESpec(ep=64, node_limit=100).limit == eight_nodes.groups  # the same routing
    assert unused_node_limit(eight_nodes, 4) is None
    assert unused_node_limit(MoESpec(ep=64, node_limit=2), 4) is None
    above = unused_node_limit(MoESpec(ep=64, node_limit=9), 4)
    assert above is not None and above.startswith("M = 9 is more than the 8 nodes of EP 64") and "at most 8" in above
    neither = unused_node_limit(MoESpec(ep=32, node_limit=8), 4)
    assert neither is not None and neither.startswith("not used: neither M = 8 nor the default 4 is below 4")
    one = unused_node_limit(MoESpec(ep=8, node_limit=2), 4)
    assert one is not None and "EP 8 is one node" in one


@pytest.mark.parametrize(
    "base,sets,expected",
    [
        (
            SMALL,
            {"model.n_limited_groups": 8},
            "model.n_limited_groups: not used: neither M = 8 nor the default 4 is below 4, the nodes of EP 32",
        ),
        (DEFAULT, {"model.n_limited_groups": 9}, "model.n_limited_groups: M = 9 is more than the 8 nodes of EP 64"),
        (DEFAULT, {"model.n_limited_groups": 100}, "model.n_limited_groups: M = 100 is more than the 8 nodes"),
        (SMALL, {"model.n_limited_groups": 2, "workload.ep": 8}, "model.n_limited_groups: not used: EP 8 is one node"),
        # Qwen's config gives M = top-k = 8 (no limit) at 4 nodes: a written M of 6 limits nothing either
        (QWEN, {"model.n_limited_groups": 6}, "model.n_limited_groups: not used: neither M = 6 nor the default 8"),
    ],
)
def test_a_node_limit_that_changes_nothing_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str], base: Path, sets: dict[str, object], expected: str
) -> None:
    path = _derived(here, "m.yaml", base, sets)
    refused_in_one_line(["validate", str(path)], f"m.yaml: {expected}", here, capsys)


def test_a_node_limit_that_is_no_limit_and_the_models_own_are_kept(here: Path) -> None:
    """M = 8 on EP 64's 8 nodes is no limit beside the default's 4 (the thousand sweep's last value); a
    model config's own M (Qwen's top-k, above EP 32's 4 nodes) is not the scenario's to refuse."""
    assemble(load_scenario(_derived(here, "m8.yaml", DEFAULT, {"model.n_limited_groups": 8})))
    assemble(load_scenario(QWEN))
    assemble(load_scenario(SMALL))  # the default M = 4 = EP 32's nodes: not written, not refused


@pytest.mark.parametrize(
    "args,expected",
    [
        (["alltoall", "--ep", "64", "--n-limited-groups", "100"], "--n-limited-groups: M = 100 is more than the 8"),
        (["balance", "--ep", "64", "--node-limit", "9"], "--n-limited-groups: M = 9 is more than the 8 nodes"),
        (["alltoall", "--ep", "32", "--n-limited-groups", "8"], "--n-limited-groups: not used: neither M = 8"),
    ],
)
def test_a_node_limit_flag_above_the_nodes_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    refused_in_one_line(args, expected, here, capsys)


# ------------------------------------------------------------------------------ F9: comm_beside_compute


def test_an_empty_comm_beside_compute_is_refused(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _derived(here, "c.yaml", SMALL, {"workload.comm_beside_compute": {}})
    expected = "c.yaml: workload.comm_beside_compute: an empty mapping changes nothing"
    refused_in_one_line(["validate", str(path)], expected, here, capsys)
    load_scenario(_derived(here, "c1.yaml", SMALL, {"workload.comm_beside_compute": {"combine": 1.5}}))


# --------------------------------------------------------------------------------- F10, F14, F15: alltoall


def _digest(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    return hashlib.sha256(ran_cleanly(args, capsys).encode()).hexdigest()


def test_alltoall_nodes_is_refused_where_it_changes_nothing(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--ep", "8", "--nodes", "300"], ["--ep", "64", "--nodes", "256"]):
        refused_in_one_line(
            ["alltoall", *args], "--nodes: not used: the all-to-all runs on the EP group's", here, capsys
        )
    quick = ["alltoall", "--ep", "16", "--tokens", "64", "--format", "json"]
    assert _digest([*quick, "--nodes", "2"], capsys) == _digest(quick, capsys)  # its own nodes: the default


@pytest.mark.parametrize(
    "args,expected",
    [
        (["alltoall", "--sms", "4,4"], "--sms: 4 is listed twice in '4,4'"),
        (["alltoall", "--sms", "4,8,16,8"], "--sms: 8 is listed twice"),
        (["alltoall", "--ep", "8", "--nodes", "100000"], "--nodes: not used"),
        (
            ["alltoall", "--ep", "32768", "--n-routed-experts", "32768", "--tokens", "1"],
            "--ep: EP 32768 spans 4096 nodes of 8 GPUs: a two-layer fat tree of radix 64 holds at most 2048",
        ),
    ],
)
def test_alltoall_flags(here: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    refused_in_one_line(args, expected, here, capsys)


# ------------------------------------------------------------------------------- F11: validate = run


@pytest.mark.parametrize(
    "make,expected",
    [
        (
            lambda d: _derived(d, "s.yaml", SMALL, {"cluster.nic_Gbps": 1.0e-99}),
            "s.yaml: the results overflow: step_time_s (its lower bound) is 8.31619e+101, from cluster.nic_Gbps",
        ),
        (
            lambda d: _derived(d, "s.yaml", SMALL, {"cluster.nvlink_GBps": 1.0e-300}),
            "step_time_s (its lower bound) is 2.27447e+302, from cluster.nvlink_GBps = 1e-300",
        ),
        (
            lambda d: _comparison(d, "s.yaml", cluster={"topology": str(MPFT), "nic_Gbps": 1.0e-300}),
            "schedules[0].step_time (its lower bound) is 4.69762e+299, from cluster.nic_Gbps = 1e-300",
        ),
        (
            lambda d: _comparison(d, "s.yaml", p2p={"activation_bytes": 58720256, "bandwidth_GBps": 1.0e-300}),
            "schedules[0].step_time (its lower bound) is 5.87203e+298, from p2p.bandwidth_GBps = 1e-300",
        ),
        (
            lambda d: _comparison(d, "s.yaml", ops={"forward_ms": 1e200, "backward_ms": 2}),
            "schedules[0].step_time (its lower bound) is 1.1e+198, from ops.forward_ms[0] = 1e+200",
        ),
        (
            lambda d: _derived(d, "s.yaml", SERVE, {"cluster.nic_Gbps": 1.0e-300}),
            "prefill forward of 8192 tokens (least) is 5.69842e+301, from cluster.nic_Gbps = 1e-300",
        ),
        (
            lambda d: _derived(d, "s.yaml", FLOOR, {"cluster.nic_Gbps": 1.0e-300}),
            "decode_floor.fabrics.ib.dispatch_us is 2.45024e+304, from cluster.nic_Gbps = 1e-300",
        ),
    ],
)
def test_validate_refuses_what_the_run_refuses(
    here: Path, capsys: pytest.CaptureFixture[str], make: object, expected: str
) -> None:
    path = make(here)  # type: ignore[operator]
    refused_in_one_line(["validate", str(path)], expected, here, capsys)
    served = "serve" in str(yaml.safe_load(path.read_text()).get("base", ""))
    command = ["serve", str(path), "-o", "out", "--quiet"] if served else ["run", str(path), "-o", "out"]
    refused_in_one_line(command, "s.yaml: the results overflow: ", here, capsys)  # what the run refuses


def test_a_comparisons_bound_is_below_its_run(here: Path) -> None:
    """:func:`sim.pipeline.maxplus.comparison_lower_bound` is at most the simulated step of each schedule, on
    the cluster network and on the alpha-beta link (where one send alone may be the larger term)."""
    schedules = {"pp": 4, "microbatches": 8, "schedules": ["1f1b", "zb1p", "dualpipev"]}
    ops = {"forward_ms": 1, "backward_ms": 2, "weight_ms": 1}
    cases = [
        _comparison(here, "net.yaml", pipeline=schedules, ops=ops, cluster={"topology": str(MPFT)}),
        _comparison(
            here, "ab.yaml", pipeline=schedules, ops=ops, p2p={"activation_bytes": 1e9, "bandwidth_GBps": 0.01}
        ),
    ]
    for path in cases:
        asm = assemble(load_scenario(path))
        times, _ = op_times(asm)
        result = simulate(asm)
        for schedule, step in zip(asm.schedules, result.steps, strict=True):
            assert asm.transport is not None
            bound = comparison_lower_bound(schedule, times, asm.transport)
            assert 0 < bound <= step.step_time * (1 + 1e-9), (path.name, schedule.name)


# -------------------------------------------------------------------------------------- F12: import-trace


def _trace(folder: Path, *names: str) -> Path:
    path = folder / "t.json"
    path.write_text(
        json.dumps({"traceEvents": [], "deviceProperties": [{"id": i, "name": n} for i, n in enumerate(names)]})
    )
    return path


@pytest.mark.parametrize(
    "names,args,expected",
    [
        (
            ("NVIDIA H800",),
            ["--device", "B200"],
            "--device: B200, but the deviceProperties of t.json name 'NVIDIA H800'",
        ),
        (("NVIDIA H100 80GB HBM3",), ["--device", "H800"], "--device: H800, but the deviceProperties of t.json name"),
        (("NVIDIA H800", "NVIDIA H100 80GB HBM3"), [], "t.json: deviceProperties[1]: names 'NVIDIA H100 80GB HBM3'"),
        # the GPU it names, as given or by default: then the trace's own (empty) contents are refused
        (("NVIDIA H100 80GB HBM3",), [], "t.json: traceEvents: no GPU kernel events"),
        (("NVIDIA H800",), ["--device", "H800"], "t.json: traceEvents: no GPU kernel events"),
        (("Some Other GPU",), ["--device", "B200"], "t.json: traceEvents: no GPU kernel events"),
    ],
)
def test_import_trace_refuses_a_device_its_trace_contradicts(
    here: Path, capsys: pytest.CaptureFixture[str], names: tuple[str, ...], args: list[str], expected: str
) -> None:
    trace = _trace(here, *names)
    refused_in_one_line(["calibrate", "import-trace", str(trace), *args, "-o", "p.json"], expected, here, capsys)


def test_import_trace_of_deepseeks_trace_as_a_b200(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared(TRACE)
    expected = (
        "--device: B200, but the deviceProperties of profile-data-train.json name 'NVIDIA H800': give --device H800"
    )
    refused_in_one_line(
        ["calibrate", "import-trace", str(TRACE), "--device", "B200", "-o", "b.json"], expected, here, capsys
    )


# ------------------------------------------------------------------------------ F13: tiny schedule times


@pytest.mark.parametrize(
    "args,expected",
    [
        (["trace", "1f1b", "--f", "1e-300", "--b", "1e-300"], "--f: 1e-300 is too short to show: the trace writes"),
        (["trace", "1f1b", "--f", "1e-7"], "--f: 1e-07 is too short to show"),
        (["trace", "zb1p", "--b", "1", "--w", "0.9999999"], "--b: the input-gradient part I = --b - --w = 1e-07"),
        (["trace", "zb1p", "--w", "1e-9"], "--w: 1e-09 is too short to show"),
        (["plot", "1f1b", "--f", "1e-300", "--b", "1e-300"], "--f: 1e-300 is too short to show: a chart's time axis"),
    ],
)
def test_schedule_times_too_short_to_show_are_refused(
    here: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = "t.json" if args[0] == "trace" else "t.png"
    refused_in_one_line(["schedules", *args, "--pp", "4", "-n", "8", "-o", out], expected, here, capsys)


def test_the_least_time_a_trace_shows_is_written(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran_cleanly(
        ["schedules", "trace", "1f1b", "--pp", "4", "-n", "8", "--f", "1e-6", "--b", "1e-6", "-o", "t.json"], capsys
    )
    spans = [e for e in json.loads((here / "t.json").read_text())["traceEvents"] if e.get("ph") == "X"]
    assert spans and all(e["dur"] == 0.001 for e in spans)
