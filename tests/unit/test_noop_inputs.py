"""Inputs that were accepted and changed nothing, or described no step at all: each is refused in one line
naming its key or flag (exit 2, nothing written), and the case beside it that is used still runs.

* given op times: F and B 0 on every stage (a step of no time: every figure 0, the bubble ratio 0/0);
  an F&B pair shorter than its longer part (``ops.overlapped_ms`` / ``--fb`` below max(F, B));
  ``ops.overlapped_ms`` where no schedule pairs a forward and a backward; ``ops.weight_ms`` where no
  schedule splits B into I and W (there it may be left out, or given as 0);
* ``twin schedules compare --p2p-bytes`` on the default infinitely fast link;
* ``twin alltoall``: ``--multicast`` / ``--in-network-reduce`` where no token reaches two other nodes
  (as a scenario's ``comm.multicast``), ``--sms`` and the SM channel rates with ``--coprocessor`` (and the
  co-processor's run reports the 0 SMs it sets aside);
* ``twin check trace --profile`` of another GPU than the trace's H800.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.cli.schedules import _ops
from sim.config import OVERLAP_SCHEDULES, SPLIT_BACKWARD_SCHEDULES
from sim.errors import LayoutError, ScenarioError
from sim.pipeline.ops import Op
from sim.pipeline.schedules import SCHEDULES, build_schedule

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "calibrate" / "profiles"


def _ops_of(name: str, pp: int, n: int, v: int) -> set[Op] | None:
    try:
        return _ops(build_schedule(name, pp, n, v))
    except (LayoutError, ScenarioError):
        return None  # a layout the schedule does not take


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_sets_are_the_schedules_that_run_w_and_f_and_b(name: str) -> None:
    """SPLIT_BACKWARD_SCHEDULES run I and W in every layout, the others never; OVERLAP_SCHEDULES pair
    an F&B with 4 micro-batches or more, the others never."""
    built = 0
    for pp in (2, 4, 8):
        for n in (4, 8, 16):
            for v in (1, 2):
                ops = _ops_of(name, pp, n, v)
                if ops is None:
                    continue
                built += 1
                assert bool({Op.I, Op.W} & ops) == (name in SPLIT_BACKWARD_SCHEDULES), (name, pp, n, v)
                assert (Op.FB in ops) == (name in OVERLAP_SCHEDULES), (name, pp, n, v)
    assert built


def _twin(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(args: list[str], expected: str, capsys: pytest.CaptureFixture[str], written: Path | None = None) -> None:
    code, out, err = _twin(args, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err and out == ""
    if written is not None:
        assert not written.exists()


def _ran(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = _twin(args, capsys)
    assert code == 0, err
    return out


def _scenario(tmp_path: Path, ops: str, schedules: str = "[1f1b, zb1p, dualpipe]") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\npipeline: {{pp: 4, microbatches: 8, schedules: {schedules}}}\nops: {ops}\n")
    return path


SCENARIO_REFUSALS = [
    pytest.param(
        "{forward_ms: 0, backward_ms: 0, weight_ms: 0}",
        "[1f1b, zb1p, dualpipe]",
        "ops.forward_ms: a step of no time: ops.forward_ms and ops.backward_ms are 0 on every stage",
        id="zero-step",
    ),
    pytest.param(
        "{forward_ms: [0, 0, 0, 0], backward_ms: 0, weight_ms: 0, overlapped_ms: 1}",
        "[dualpipe]",
        "ops.forward_ms: a step of no time",
        id="zero-step-per-stage",
    ),
    pytest.param(
        "{forward_ms: 1, backward_ms: 2, weight_ms: 0.5, overlapped_ms: 0.1}",
        "[dualpipe]",
        "ops.overlapped_ms: an overlapped F&B pair cannot take less than its longer part: 0.1 ms on stage 0 is "
        "below max(F 1, B 2) ms; give at least 2",
        id="pair-below-longer-part",
    ),
    pytest.param(
        "{forward_ms: 1, backward_ms: [2, 2, 3, 2], weight_ms: 0.5, overlapped_ms: [3, 3, 2.5, 3]}",
        "[dualpipev]",
        "ops.overlapped_ms[2]: an overlapped F&B pair cannot take less than its longer part: 2.5 ms on stage 2",
        id="pair-below-longer-part-per-stage",
    ),
    pytest.param(
        "{forward_ms: 1, backward_ms: 2, weight_ms: 0.5, overlapped_ms: 3}",
        "[1f1b, zb1p, interleaved-1f1b]",
        "ops.overlapped_ms: not used by 1f1b, zb1p, interleaved-1f1b (only dualpipe, dualpipev, "
        "interleaved-1f1b-overlap overlaps a forward and a backward in an F&B pair); remove it",
        id="pair-without-pairs",
    ),
    pytest.param(
        "{forward_ms: 1, backward_ms: 2, weight_ms: 1.5}",
        "[1f1b, gpipe, interleaved-1f1b]",
        "ops.weight_ms: not used by 1f1b, gpipe, interleaved-1f1b (they run B whole",
        id="w-without-split",
    ),
    pytest.param(
        "{forward_ms: 1, backward_ms: 2}",
        "[1f1b, zb1p]",
        "ops.weight_ms: required key is missing: zb1p splits B into I and W",
        id="w-missing-where-split",
    ),
]


@pytest.mark.parametrize(("ops", "schedules", "expected"), SCENARIO_REFUSALS)
@pytest.mark.parametrize("command", ["run", "validate"])
def test_given_op_times_that_do_nothing_are_refused(
    ops: str, schedules: str, expected: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario(tmp_path, ops, schedules)
    out = tmp_path / "out"
    args = ["run", str(path), "-o", str(out)] if command == "run" else ["validate", str(path)]
    _refused(args, f"{path}: {expected}", capsys, out)


def _figures(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    data = json.loads(_ran(["run", str(path), "--format", "json", "-q", "-o", str(path.parent / "out")], capsys))
    return list(data["schedules"])


def test_weight_may_be_left_out_or_zero_where_no_schedule_splits_b(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1F1B and GPipe run B whole: the figures of a scenario without W, and with W 0 (it says the same)."""
    without = _figures(_scenario(tmp_path, "{forward_ms: 1, backward_ms: 2}", "[1f1b, gpipe]"), capsys)
    zero = _figures(_scenario(tmp_path, "{forward_ms: 1, backward_ms: 2, weight_ms: 0}", "[1f1b, gpipe]"), capsys)
    assert without == zero and without[0]["step_time"] == pytest.approx(0.033)


def test_weight_and_pair_change_the_figures_where_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _figures(_scenario(tmp_path, "{forward_ms: 1, backward_ms: 2, weight_ms: 0.5, overlapped_ms: 2}"), capsys)
    other_w = _figures(_scenario(tmp_path, "{forward_ms: 1, backward_ms: 2, weight_ms: 1.5, overlapped_ms: 2}"), capsys)
    other_fb = _figures(
        _scenario(tmp_path, "{forward_ms: 1, backward_ms: 2, weight_ms: 0.5, overlapped_ms: 3}"), capsys
    )
    assert base != other_w and base != other_fb
    one_stage_zero = _figures(
        _scenario(tmp_path, "{forward_ms: [0, 1, 1, 1], backward_ms: [0, 2, 2, 2]}", "[1f1b]"), capsys
    )
    assert one_stage_zero[0]["step_time"] > 0  # a stage of no time is not a step of no time


CLI_REFUSALS = [
    pytest.param(
        ["schedules", "compare", "--schedules", "zb1p", "--f", "0", "--b", "0", "--w", "0"],
        "error: --f: a step of no time: --f and --b are both 0",
        id="compare-zero-step",
    ),
    pytest.param(
        ["schedules", "compare", "--schedules", "dualpipe", "--fb", "0.5"],
        "error: --fb: an overlapped F&B pair cannot take less than its longer part: 0.5 is below max(--f 1, --b 2); "
        "give at least 2",
        id="compare-pair-below-longer-part",
    ),
    pytest.param(
        ["schedules", "trace", "dualpipev", "--f", "3", "--fb", "2.5", "-o", "OUT.json"],
        "error: --fb: an overlapped F&B pair cannot take less than its longer part",
        id="trace-pair-below-longer-part",
    ),
    pytest.param(
        ["schedules", "plot", "1f1b", "--f", "0", "--b", "0", "-o", "OUT.png"],
        "error: --f: a step of no time",
        id="plot-zero-step",
    ),
    pytest.param(
        ["schedules", "compare", "--schedules", "1f1b", "--p2p-bytes", "1e9"],
        "error: --p2p-bytes: not used: the link's bandwidth is infinite (no --p2p-bandwidth)",
        id="bytes-without-bandwidth",
    ),
    pytest.param(
        ["schedules", "compare", "--schedules", "1f1b", "--p2p-bytes", "1e9", "--p2p-latency", "0.1"],
        "error: --p2p-bytes: not used",  # the latency is paid per transfer, whatever its bytes
        id="bytes-with-latency-only",
    ),
    pytest.param(
        ["alltoall", "--ep", "16", "--tokens", "256", "--multicast"],
        "error: --multicast: not used: an EP group of 16 GPUs spans 2 node(s) (NVLink domains) and a token reaches at "
        "most 1 other node(s) (--n-activated-experts 8, --n-limited-groups 4), so no token has copies to merge; "
        "remove it",
        id="multicast-ep16",
    ),
    pytest.param(  # top-1 routing reaches one node: the figures were the default's, to the bit
        ["alltoall", "--tokens", "256", "--n-activated-experts", "1", "--multicast"],
        "error: --multicast: not used: an EP group of 64 GPUs spans 8 node(s) (NVLink domains) and a token reaches at "
        "most 1 other node(s) (--n-activated-experts 1, --n-limited-groups 4)",
        id="multicast-top1",
    ),
    pytest.param(
        ["alltoall", "--ep", "8", "--tokens", "256", "--in-network-reduce"],
        "error: --in-network-reduce: not used: an EP group of 8 GPUs spans 1 node(s)",
        id="in-network-reduce-ep8",
    ),
    pytest.param(
        ["alltoall", "--ep", "32", "--tokens", "256", "--coprocessor", "--sms", "4"],
        "error: --sms: not used with --coprocessor (communication runs off the SMs: all of them compute); remove it",
        id="coprocessor-sms",
    ),
    pytest.param(
        ["alltoall", "--ep", "32", "--tokens", "256", "--coprocessor", "--rdma-channel-GBps", "1"],
        "error: --rdma-channel-GBps: not used with --coprocessor",
        id="coprocessor-rdma-channel",
    ),
    pytest.param(
        ["alltoall", "--ep", "32", "--tokens", "256", "--coprocessor", "--nvlink-channel-GBps", "1"],
        "error: --nvlink-channel-GBps: not used with --coprocessor",
        id="coprocessor-nvlink-channel",
    ),
    pytest.param(  # one device sends nothing: every latency gave the same figures
        ["schedules", "compare", "--pp", "1", "--schedules", "1f1b,zb1p", "--p2p-latency", "0.5"],
        "error: --p2p-latency: not used: 1f1b, zb1p at --pp 1 run(s) on one device, so nothing is sent between stages",
        id="compare-one-device-latency",
    ),
    pytest.param(  # DualPipeV folds 2 stages onto 1 device
        ["schedules", "compare", "--pp", "2", "--schedules", "dualpipev", "--p2p-bytes", "100", "--p2p-bandwidth", "1"],
        "error: --p2p-bytes: not used: dualpipev at --pp 2 run(s) on one device",
        id="compare-one-device-bytes",
    ),
    pytest.param(  # one step's loads are counted before its bias update: every gamma gave the same figures
        ["balance", "--steps", "1", "--tokens-per-step", "256", "--gamma", "0.5"],
        "error: --gamma: not used with --steps 1 (the biases move after a step's loads are counted)",
        id="balance-one-step-gamma",
    ),
    pytest.param(  # a datasheet profile times GEMMs by its roofline: every scaling gave the same time
        ["calibrate", "predict", "--profile", str(PROFILES / "h800-datasheet.json"), "--scaling", "rowwise"],
        "error: --scaling: not used: h800-datasheet.json has no measured fp8 GEMMs, and its datasheet roofline",
        id="predict-scaling-datasheet",
    ),
    pytest.param(  # with --sms, the SMs beside act only through the interference fit, which needs samples
        [
            "calibrate",
            "predict",
            "--profile",
            str(PROFILES / "h800-datasheet.json"),
            "--sms",
            "100",
            "--beside-comm-sms",
            "20",
        ],
        "error: --beside-comm-sms: not used with --sms: h800-datasheet.json has no interference samples",
        id="predict-beside-with-sms",
    ),
    pytest.param(  # the profile only times the GEMMs on the SMs DeepEP leaves: every profile gave the same figures
        ["alltoall", "--ep", "32", "--tokens", "256", "--coprocessor", "--profile", str(PROFILES / "h800.json")],
        "error: --profile: not used with --coprocessor (it times the GEMMs on the SMs DeepEP leaves: here all of them)",
        id="coprocessor-profile",
    ),
    pytest.param(  # no IB byte inside one NVLink domain: every RDMA channel rate gave the same figures
        ["alltoall", "--ep", "8", "--tokens", "256", "--rdma-channel-GBps", "5"],
        "error: --rdma-channel-GBps: not used: an EP group of 8 GPUs is one node (NVLink domain), so no byte goes",
        id="rdma-channel-one-node",
    ),
    pytest.param(
        ["check", "trace", "--profile", str(PROFILES / "b200-datasheet.json")],
        "error: --profile: b200-datasheet.json is a profile of the B200, but DeepSeek's trace ran on H800s",
        id="trace-b200-profile",
    ),
    pytest.param(
        ["check", "trace", "--profile", str(PROFILES / "h100-sxm-device.json")],
        "error: --profile: h100-sxm-device.json is a profile of the NVIDIA H100 80GB HBM3",
        id="trace-h100-profile",
    ),
]


@pytest.mark.parametrize(("args", "expected"), CLI_REFUSALS)
def test_flags_that_do_nothing_are_refused(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = None
    for i, a in enumerate(args):
        if a.startswith("OUT."):
            written = tmp_path / a
            args = [*args[:i], str(written), *args[i + 1 :]]
    _refused(args, expected, capsys, written)


def _compare(args: list[str], capsys: pytest.CaptureFixture[str]) -> float:
    out = _ran(["schedules", "compare", *args, "--format", "json"], capsys)
    return float(json.loads(out)["schedules"][0]["step_time"])


def test_used_schedule_flags_still_run(capsys: pytest.CaptureFixture[str]) -> None:
    fb_at_bound = _compare(["--schedules", "dualpipe", "--fb", "2"], capsys)  # = max(F, B): full overlap
    assert fb_at_bound < _compare(["--schedules", "dualpipe", "--fb", "3"], capsys)
    free = _compare(["--schedules", "1f1b"], capsys)
    assert _compare(["--schedules", "1f1b", "--p2p-bytes", "1e9", "--p2p-bandwidth", "1e9"], capsys) > free
    assert _compare(["--schedules", "1f1b", "--f", "0", "--b", "2"], capsys) > 0  # F 0 alone: a step


def _alltoall(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = _ran(["alltoall", "--tokens", "256", *args, "--format", "json"], capsys)
    return dict(json.loads(out))


def test_alltoall_coprocessor_reports_the_sms_it_sets_aside(capsys: pytest.CaptureFixture[str]) -> None:
    """The co-processor's run sets no SM aside: comm_sms 0 beside all 132 computing (it said 20)."""
    run = _alltoall(["--ep", "32", "--coprocessor"], capsys)
    assert (run["comm_sms"], run["compute_sms"], run["gemm_throughput_fraction"]) == (0, 132, 1.0)
    assert _alltoall(["--ep", "32", "--coprocessor", "--sms", "0"], capsys) == run  # (0 says the same)


def test_alltoall_multicast_where_tokens_reach_two_nodes_changes_the_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = _alltoall(["--ep", "32"], capsys)
    assert _alltoall(["--ep", "32", "--multicast"], capsys) != plain
    assert _alltoall(["--ep", "32", "--in-network-reduce"], capsys) != plain


def test_a_pair_time_where_the_layout_pairs_nothing_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """interleaved-1f1b-overlap pairs a steady-state F with a B; at PP 4 with 2 micro-batches it has no
    steady state and pairs nothing, so ops.overlapped_ms changed nothing (accepted before); at 8
    micro-batches it pairs, and the pair time is used (a slower pair, a slower step)."""
    ops = "{forward_ms: 1, backward_ms: 2, overlapped_ms: %s}"
    path = _scenario(tmp_path, ops % 2.5, "[interleaved-1f1b-overlap]")
    short = path.read_text().replace("microbatches: 8", "microbatches: 2")
    assert short != path.read_text()
    path.write_text(short)
    _refused(
        ["validate", str(path)],
        f"{path}: ops.overlapped_ms: not used: at PP 4 with 2 micro-batches interleaved-1f1b-overlap pairs no "
        "forward with a backward",
        capsys,
        tmp_path / "out",
    )
    fast = _figures(_scenario(tmp_path, ops % 2.5, "[interleaved-1f1b-overlap]"), capsys)
    slow = _figures(_scenario(tmp_path, ops % 3, "[interleaved-1f1b-overlap]"), capsys)
    assert slow[0]["step_time"] > fast[0]["step_time"]
