"""A fault audit of ``twin report`` and ``twin calibrate`` (but ``run``): the hostile inputs it found, each
now refused as the bad-input tables refuse theirs (``tests/unit/test_bad_inputs.py``): exit status 2, one
line on stderr naming the file and the key (or the flag), no traceback, nothing on stdout and nothing left
behind. Before the fixes:

* ``import-trace``: a kernel's ``dur`` of -50, ``true`` or a ``stream`` of ``"7"`` wrote a profile with exit 0;
  a ``dur`` of ``"52"``, ``null`` or ``1e300``, a ``ts`` of ``1e308`` and a list as ``correlation`` were
  refused as ``traceEvents: not DeepSeek's layer trace ... (TypeError: unsupported operand ...)`` or with
  pydantic's text (``For further information visit https://errors.pydantic.dev/...``), naming no event;
* ``import-nccl-tests``: sizes of 1e26 bytes, a time of 1e-300 us, a negative or 1e308 GB/s bandwidth and
  2,000 ranks on one host (2,000,000 hosts: minutes) were written into a profile with exit 0 (``predict``
  then gave an alltoall of 1 MB 5e-26 s);
* ``-o`` naming the trace, log or table being read replaced it with the profile;
* ``twin report`` of op times of 1e300 ms or a NIC of 1e-150 Gb/s wrote a step time of 1.1e153 s (154
  digits) with exit 0, and a co-design variant's did the same in its table, chart and findings;
* a scenario's or a co-design file's ``name`` of 300 characters ran everything, then failed writing
  ``DIR/<name>/`` (``File name too long``, naming no key) and left an empty ``DIR``;
* a path or a profile's device name with rich markup (``-o '[/x]'``, ``--name '[/b]'``) was a traceback
  (``rich.errors.MarkupError``) after the report or the profile was written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.hardware.profile import load_profile
from tests.conftest import SHARED
from tests.unit.test_bad_inputs import ran_cleanly, refused_in_one_line

REPO = Path(__file__).resolve().parents[2]
COMPARISON = REPO / "scenarios" / "dualpipe-table.yaml"
SMALL = REPO / "tests" / "data" / "sweep" / "small-step.yaml"
NCCL_LOG = REPO / "tests" / "data" / "nccl-tests" / "alltoall_perf-h200-1gpu.log"
TRACE = SHARED / "reference" / "deepseek-v3" / "profile-data-train.json"


def _kernel(**changes: Any) -> dict[str, Any]:
    kernel = {"ph": "X", "cat": "kernel", "name": "k", "ts": 0, "dur": 5, "args": {"correlation": 1, "stream": 7}}
    return {**kernel, **changes}


def _trace(*events: dict[str, Any]) -> str:
    return json.dumps({"traceEvents": list(events)})


ROW = (  # the second result row of NCCL_LOG (line 12)
    "          32             8     float    none      -1     5.04    0.01    0.00       0     0.19    0.17    0.00"
    "    N/A"
)
RANK = "#  Rank  0 Group  0 Pid   1253 on         vm device  0 [0000:00:06] NVIDIA H200\n"


def _log(old: str, new: str) -> str:
    text = NCCL_LOG.read_text()
    assert old in text
    return text.replace(old, new)


def _files() -> dict[str, str]:
    return {
        # profiler traces: the events the import reads, key by key
        "tr/neg_dur.json": _trace(_kernel(dur=-50)),
        "tr/bool_dur.json": _trace(_kernel(dur=True)),
        "tr/str_dur.json": _trace(_kernel(dur="52")),
        "tr/null_dur.json": _trace(_kernel(dur=None)),
        "tr/huge_dur.json": _trace(_kernel(dur=1e300)),
        "tr/huge_ts.json": _trace(_kernel(ts=1e308)),
        "tr/str_ts.json": _trace(_kernel(ts="1740461679471346")),
        "tr/str_stream.json": _trace(_kernel(args={"correlation": 1, "stream": "7"})),
        "tr/list_correlation.json": _trace(_kernel(args={"correlation": [1], "stream": 7})),
        "tr/no_correlation.json": _trace(_kernel(args={"stream": 7})),
        "tr/args_text.json": _trace({"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 0, "args": "x"}),
        "tr/annotation_no_dur.json": _trace({"cat": "user_annotation", "name": "attn(F)", "ts": 0}),
        "tr/annotation_list_name.json": _trace({"cat": "user_annotation", "name": ["a"], "ts": 0, "dur": 1}),
        "tr/wide.json": _trace(_kernel(), _kernel(ts=9e15, args={"correlation": 2, "stream": 7})),
        # nccl-tests logs
        "nccl/alltoall_neg_bw.log": _log(ROW, ROW.replace("0.01", "-5.0")),
        "nccl/alltoall_huge_bw.log": _log(ROW, ROW.replace("0.01", "1e308")),
        "nccl/alltoall_huge_size.log": _log(ROW, ROW.replace("          32 ", " 99999999999999999999999999 ")),
        "nccl/alltoall_huge_count.log": _log(ROW, ROW.replace("     8 ", " 99999999999999999999 ")),
        "nccl/alltoall_tiny_time.log": _log(ROW, ROW.replace("5.04", "1e-300")),
        "nccl/alltoall_many_ranks.log": _log(
            RANK, "".join(f"#  Rank {i} Group 0 Pid 1 on vm device {i} [0:0] H200\n" for i in range(2000))
        ),
        "nccl/alltoall_many_hosts.log": _log(
            RANK, "".join(f"#  Rank {i} Group 0 Pid 1 on h{i} device 0 [0:0] H200\n" for i in range(1_100_000))
        ),
        "nccl/alltoall.log": NCCL_LOG.read_text(),
        # measurement tables (refused before they are read)
        "ms/gemm.csv": "M,N,K,dtype,seconds\n64,64,64,fp8,1e-5\n",
        # scenarios whose figures pass the edge of floating point
        "ops_1e300.yaml": f"base: {COMPARISON}\nname: ops-1e300\nset:\n"
        + "".join(f"  ops.{k}_ms: 1e300\n" for k in ("forward", "backward", "weight", "overlapped")),
        "nic_1e-150.yaml": f"base: {SMALL}\nname: nic-1e-150\nset: {{cluster.nic_Gbps: 1e-150}}\n",
        # names too long for the report's folder
        "long_name.yaml": f"base: {COMPARISON}\nname: {'a' * 300}\nset: {{}}\n",
        "cd_long_name.yaml": f"name: {'b' * 256}\nbase: {SMALL}\nstudies:\n  - key: k\n    title: t\n"
        "    variants:\n      - {label: v, set: {comm.sms: 24}}\n",
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, text in _files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def files(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of the hostile files (hard links: a case only reads them); the test runs inside it."""
    work = tmp_path / "work"
    shutil.copytree(template, work, copy_function=os.link)
    monkeypatch.chdir(work)
    return work


def _import_trace(name: str, *args: str) -> list[str]:
    return ["calibrate", "import-trace", name, "-o", "p.json", *args]


def _nccl(name: str, *args: str) -> list[str]:
    return ["calibrate", "import-nccl-tests", name, "-o", "p.json", *args]


IN_RANGE = "must be a finite number of microseconds in [0, 1e+12]"
CASES: list[tuple[list[str], str]] = [
    (_import_trace("tr/neg_dur.json"), f"tr/neg_dur.json: traceEvents[0].dur: {IN_RANGE}, got -50"),
    (_import_trace("tr/bool_dur.json"), "tr/bool_dur.json: traceEvents[0].dur: must be a number (microseconds)"),
    (
        _import_trace("tr/str_dur.json"),
        "tr/str_dur.json: traceEvents[0].dur: must be a number (microseconds), got '52'",
    ),
    (_import_trace("tr/null_dur.json"), "tr/null_dur.json: traceEvents[0].dur: required key is missing"),
    (_import_trace("tr/huge_dur.json"), f"tr/huge_dur.json: traceEvents[0].dur: {IN_RANGE}, got 1e+300"),
    (_import_trace("tr/huge_ts.json"), "tr/huge_ts.json: traceEvents[0].ts: must be a finite number of microseconds"),
    (_import_trace("tr/str_ts.json"), "tr/str_ts.json: traceEvents[0].ts: must be a number"),
    (_import_trace("tr/str_stream.json"), "tr/str_stream.json: traceEvents[0].args.stream: must be a whole number"),
    (_import_trace("tr/list_correlation.json"), "traceEvents[0].args.correlation: must be a whole number, got [1]"),
    (_import_trace("tr/no_correlation.json"), "traceEvents[0].args.correlation: must be a whole number, got None"),
    (_import_trace("tr/args_text.json"), "tr/args_text.json: traceEvents[0].args: must be a JSON object"),
    (_import_trace("tr/annotation_no_dur.json"), "annotation_no_dur.json: traceEvents[0].dur: required key is missing"),
    (_import_trace("tr/annotation_list_name.json"), "traceEvents[0].name: must be text, got ['a']"),
    (_import_trace("tr/wide.json"), "tr/wide.json: traceEvents: its kernels span 9e+09 s"),
    (["calibrate", "import-trace", "tr/wide.json", "-o", "tr/wide.json"], "--output: tr/wide.json is the trace read"),
    (_nccl("nccl/alltoall_neg_bw.log"), "alltoall_neg_bw.log: line 12: out-of-place algbw/busbw must be GB/s in"),
    (_nccl("nccl/alltoall_huge_bw.log"), "alltoall_huge_bw.log: line 12: out-of-place algbw/busbw must be GB/s in"),
    (_nccl("nccl/alltoall_huge_size.log"), "huge_size.log: line 12: size 99999999999999999999999999 is over the limit"),
    (_nccl("nccl/alltoall_huge_count.log"), "huge_count.log: line 12: count 99999999999999999999 is over the limit"),
    (_nccl("nccl/alltoall_tiny_time.log"), "tiny_time.log: line 12: out-of-place time 1e-300 us is less than a nano"),
    (_nccl("nccl/alltoall_many_ranks.log"), "many_ranks.log: Rank lines: 2,000 ranks on 1 host(s), at most 2,000 on"),
    (_nccl("nccl/alltoall_many_hosts.log"), "many_hosts.log: Rank lines: 1,100,000 ranks on 1,100,000 host(s)"),
    (
        ["calibrate", "import-nccl-tests", "nccl/alltoall.log", "-o", "nccl/alltoall.log"],
        "--output: a profile is a .json file, got 'alltoall.log'",
    ),
    (
        ["calibrate", "import-measurements", "ms", "--device", "H100", "-o", "ms/gemm.csv"],
        "--output: a profile is a .json file, got 'gemm.csv'",
    ),
    (
        ["calibrate", "import-measurements", "ms/gemm.csv", "--device", "H100", "-o", "ms/gemm.csv"],
        "--output: a profile is a .json file, got 'gemm.csv'",
    ),
    (
        ["report", "ops_1e300.yaml", "-o", "out"],
        "ops_1e300.yaml: the results overflow: schedules[0].step_time is 5.4e+298, from ops.forward_ms[0] = 1e+300",
    ),
    (
        ["report", "long_name.yaml", "-o", "out"],
        "long_name.yaml: name: 300 bytes, too long for the folder out/<name>/ the report goes to (a file name",
    ),
    (["report", "cd_long_name.yaml", "-o", "out"], "cd_long_name.yaml: name: 256 bytes, too long for the folder"),
    (
        ["report", "nic_1e-150.yaml", "-o", "out"],
        "nic_1e-150.yaml: the results overflow: step_time_s is 1.10649e+153, from cluster.nic_Gbps = 1e-150; use",
    ),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[" ".join(a)[:90] for a, _ in CASES])
def test_refused_in_one_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_in_one_line(args, expected, files, capsys)


@pytest.mark.skipif(not TRACE.is_file(), reason="DeepSeek's trace is not in shared/")
def test_a_trace_of_kernels_that_took_no_time_names_the_op(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Kernels of 1e-300 us: an op's mean time of 0 s, refused naming the annotation and the op (it was
    pydantic's 'Input should be greater than 0 ... https://errors.pydantic.dev/...')."""
    data = json.loads(TRACE.read_text())
    for e in data["traceEvents"]:
        if e.get("cat") == "kernel":
            e["dur"] = 1e-300
    (files / "tiny.json").write_text(json.dumps(data))
    refused_in_one_line(
        _import_trace("tiny.json"), "tiny.json: traceEvents: attn(B) op attention.bwd: its", files, capsys
    )


def test_markup_in_paths_and_names_is_printed_as_it_is(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path or a device name like '[/x]' is text, not rich markup (it was a MarkupError traceback after
    the file was written)."""
    assert "wrote [/x].json" in ran_cleanly(["calibrate", "datasheet", "-o", "[/x].json"], capsys)
    assert (files / "[" / "x].json").is_file()
    figures = ["--sms", "100", "--fp8-tflops", "1000", "--bf16-tflops", "500", "--hbm-tbps", "3"]
    ran_cleanly(["calibrate", "datasheet", "--name", "[/b]", *figures, "-o", "b.json"], capsys)
    shown = ran_cleanly(["calibrate", "show", "b.json"], capsys)
    assert "[/b]" in shown
    printed = ran_cleanly(["calibrate", "import-nccl-tests", "nccl/alltoall.log", "-o", "[/y].json"], capsys)
    assert "wrote [/y].json" in printed
    printed = ran_cleanly(["report", str(COMPARISON), "-o", "[/z]"], capsys)
    assert "report written to [/z]/dualpipe-table/report.html" in printed.replace("\n", "")
    assert (files / "[" / "z]" / "dualpipe-table" / "report.html").is_file()


def test_codesign_variant_past_the_edge_is_not_possible(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A variant whose step is 1.1e153 s (a NIC of 1e-150 Gb/s) is a row that was not possible, with the
    line a figure that reached inf gets, not a 154-digit step time and a 1.4e154% change; a label's markup
    is text in both files."""
    (files / "cd.yaml").write_text(
        f"name: cd-edge\nbase: {SMALL}\nstudies:\n  - key: k1\n    title: edge\n    metrics: [step_time_s]\n"
        "    variants:\n      - label: '<b>slow</b> nic'\n        set: {cluster.nic_Gbps: 1e-150}\n"
    )
    ran_cleanly(["report", "cd.yaml", "-o", "out", "-q"], capsys)
    md = (files / "out" / "cd-edge" / "report.md").read_text()
    html = (files / "out" / "cd-edge" / "report.html").read_text()
    line = "not possible: the results overflow: step_time_s is 1.10649e+153, from cluster.nic_Gbps = 1e-150"
    assert line in md and line in html
    assert "1,106,494" not in md and "e+15" not in md.replace("e+153", "")
    assert "<b>slow" not in html and "\\<b>slow" in md
    assert os.path.getsize(files / "out" / "cd-edge" / "results.parquet") > 0


@pytest.mark.skipif(not TRACE.is_file(), reason="DeepSeek's trace is not in shared/")
def test_an_annotation_the_layer_model_cannot_match_is_named_by_its_event(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An annotation the layer model does not know, or one with a kernel too few, is named by its position
    in traceEvents (it was ``traceEvents: ... (ValueError: annotation 'x' is not in the layer model)``)."""
    data = json.loads(TRACE.read_text())
    events = data["traceEvents"]
    at = next(i for i, e in enumerate(events) if e.get("cat") == "user_annotation" and e["name"] == "mlp(F)")
    events[at]["name"] = "moe(F)"
    (files / "renamed.json").write_text(json.dumps(data))
    expected = f"renamed.json: traceEvents[{at}]: not DeepSeek's layer trace as the layer model knows it: "
    refused_in_one_line(
        _import_trace("renamed.json"), expected + "annotation 'moe(F)' is not in the layer", files, capsys
    )
    # the same annotation with its last kernel's launch gone: its kernel count is off
    events[at]["name"] = "mlp(F)"
    span = (events[at]["ts"], events[at]["ts"] + events[at]["dur"])
    launches = [e for e in events if e.get("cat") == "cuda_runtime" and span[0] <= e["ts"] <= span[1]]
    kernels = {e["args"]["correlation"] for e in events if e.get("cat") == "kernel"}
    last = max((e for e in launches if e.get("args", {}).get("correlation") in kernels), key=lambda e: e["ts"])
    annotation = events[at]
    events.remove(last)
    at = events.index(annotation)
    (files / "short.json").write_text(json.dumps(data))
    expected = f"short.json: traceEvents[{at}]: not DeepSeek's layer trace as the layer model knows it: mlp(F) layer 0:"
    refused_in_one_line(_import_trace("short.json"), expected, files, capsys)


@pytest.mark.needs_shared(TRACE)
def test_a_trace_on_a_base_that_holds_it_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``import-trace T --base tr.json`` where tr.json was made from T: 191 samples instead of 142 and T twice
    in its sources, exit 0, before. Refused by the sources' sha256, as ``import-nccl-tests --profile``; the
    trace on the H100 measurements (which do not hold it) is still taken."""
    first, again = tmp_path / "tr.json", tmp_path / "tr2.json"
    ran_cleanly(["calibrate", "import-trace", str(TRACE), "-o", str(first)], capsys)
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-trace", str(TRACE), "--base", str(first), "-o", str(again)])
    got = capsys.readouterr()
    held = f"already holds the samples of {TRACE} (its sources list {TRACE.name})"
    assert (info.value.code, got.out, got.err) == (2, "", f"error: {first}: --base: {held}\n")
    assert not again.exists()
    base = REPO / "calibrate" / "profiles" / "h100-sxm-measured.json"
    ran_cleanly(["calibrate", "import-trace", str(TRACE), "--base", str(base), "-o", str(again)], capsys)
    assert [s.name for s in load_profile(again).sources].count(TRACE.name) == 1


@pytest.mark.skipif(not TRACE.is_file(), reason="DeepSeek's trace is not in shared/")
def test_layers_other_than_the_traces_are_refused(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--layers 7`` on a trace of 4 layers changed one label and nothing else (accepted, unused); it is
    checked against the annotations now (each layer annotation occurs once a layer)."""
    expected = "error: --layers: the trace's annotations give 4 layers ('attn(B)' 4 times), got 7"
    refused_in_one_line(_import_trace(str(TRACE), "--layers", "7"), expected, files, capsys)


@pytest.mark.needs_shared(TRACE)
def test_import_trace_parses_the_trace_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trace's JSON is parsed and checked once (3 MB: about 0.1 s each time) and handed to what reads
    it (its deviceProperties, the kernel span, the annotations, the op matching): it was parsed four
    times. Its bytes are read once more for the sha256 the profile's sources list."""
    import sim.yamlio

    parsed: list[str] = []
    read_json = sim.yamlio.read_json

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(str(path))
        return read_json(path, *args, **kwargs)

    monkeypatch.setattr(sim.yamlio, "read_json", counted)
    ran_cleanly(["calibrate", "import-trace", str(TRACE), "-o", str(tmp_path / "p.json")], capsys)
    assert parsed.count(str(TRACE)) == 1


def test_the_default_profile_name_never_replaces_a_profile_and_no_name_replaces_a_users_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``twin calibrate datasheet`` in a folder holding a measured ``profile.json`` replaced it with an
    analytical one (exit 0), and ``-o notes.txt`` wrote JSON over the user's notes. A profile is a .json
    file; one already there is replaced only when -o names it, and a file that is no profile never is."""
    monkeypatch.chdir(tmp_path)
    measured = REPO / "calibrate" / "profiles" / "h800-trace.json"
    shutil.copy(measured, tmp_path / "profile.json")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "n.json").write_text('{"a": 1}')
    for args, line in [
        ([], "--output: profile.json holds a profile already; give -o profile.json to replace it, or another name"),
        (["-o", "notes.txt"], "--output: a profile is a .json file, got 'notes.txt'"),
        (["-o", "n.json"], "--output: n.json is not a twin profile; twin does not replace it: give another name"),
    ]:
        refused_in_one_line(["calibrate", "datasheet", *args], line, tmp_path, capsys)
    assert (tmp_path / "profile.json").read_bytes() == measured.read_bytes()
    ran_cleanly(["calibrate", "datasheet", "-o", "profile.json"], capsys)  # named: replaced
    assert load_profile(tmp_path / "profile.json").source == "datasheet"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--name", "", "--sms", "10", "--fp8-tflops", "100", "--bf16-tflops", "50", "--hbm-tbps", "1"],
            "--name: give",
        ),
        (
            ["--name", " ", "--sms", "10", "--fp8-tflops", "100", "--bf16-tflops", "50", "--hbm-tbps", "1"],
            "--name: give",
        ),
        (["--name", "H800", "--sms", "64"], "--sms: the H800 has 132 SMs (its datasheet, sim/hardware/gpu.py), got 64"),
    ],
)
def test_a_datasheet_profile_run_would_refuse_is_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    """``--name ''`` with every figure was a pydantic traceback (exit 1); ``--name ' '`` wrote a profile of
    a blank GPU; ``--name H800 --sms 64`` wrote one that twin run and twin chunk refuse (device.sms)."""
    refused_in_one_line(["calibrate", "datasheet", *args, "-o", str(tmp_path / "p.json")], line, tmp_path, capsys)


def test_predict_refuses_a_profile_whose_sms_contradict_its_datasheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As twin run and twin chunk refuse it (its SM-limited times are worked out on the datasheet's SMs)."""
    ran_cleanly(["calibrate", "datasheet", "-o", str(tmp_path / "p.json")], capsys)  # an H800's, no samples
    data = json.loads((tmp_path / "p.json").read_text())
    data["device"]["sms"] = 64
    (tmp_path / "p64.json").write_text(json.dumps(data))
    line = "p64.json: device.sms: 64 SMs, but the datasheet of H800 has 132 (sim/hardware/gpu.py)"
    refused_in_one_line(["calibrate", "predict", "--profile", str(tmp_path / "p64.json")], line, tmp_path, capsys)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["calibrate", "import-nccl-tests", "read.json", "-o", "read.json"], "nccl-tests log"),
        (["calibrate", "import-measurements", "read.json", "--device", "H100", "-o", "read.json"], "measurement table"),
    ],
    ids=["nccl-log", "measurement-table"],
)
def test_an_input_named_as_the_profile_is_not_replaced(
    args: list[str], what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile is a ``.json`` file, so only an input named ``*.json`` can be ``-o``: an nccl-tests log or a
    measurement table so named is refused as the file read (it was replaced by the profile), and kept."""
    monkeypatch.chdir(tmp_path)
    source = NCCL_LOG.read_bytes() if what == "nccl-tests log" else b"m,n,k,dtype,seconds\n"
    (tmp_path / "read.json").write_bytes(source)
    refused_in_one_line(
        args, f"--output: read.json is the {what} read (read.json); give another file name", tmp_path, capsys
    )
    assert (tmp_path / "read.json").read_bytes() == source
