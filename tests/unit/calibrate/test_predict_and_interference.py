"""Interference fitting, batch prediction and the shipped measured profiles (no torch)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from calibrate.measurements import import_measurements
from calibrate.profiles import datasheet_profile, profile_from_trace
from sim.cli import main
from sim.hardware.costmodel import CostModel
from sim.hardware.gpu import H800
from sim.hardware.interference import InterferenceModel, InterferenceRow, queue
from sim.hardware.profile import Sample, dump_profile, load_profile
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[3]
PROFILES = REPO / "calibrate" / "profiles"
MEASURED = SHARED / "measurements" / "h100-sxm-2026-11-23"
TRACE = SHARED / "reference" / "deepseek-v3" / "profile-data-train.json"


def test_interference_fit_recovers_known_sensitivities() -> None:
    """Rows made from phi = 0.3 (FP8), 0.05 (BF16) and psi = 0.2, 0.4: the fit finds them."""
    truth = {"fp8": (0.3, 0.2), "bf16": (0.05, 0.4)}
    rows = [
        InterferenceRow(dt, 128 - c, c, 1 + phi * queue(u), 1 + psi, u)
        for dt, (phi, psi) in truth.items()
        for c, u in ((8, 0.2), (16, 0.35), (32, 0.6), (64, 0.85))
    ]
    model = InterferenceModel.fit(rows)
    for dt, (phi, psi) in truth.items():
        assert model.phi[dt] == pytest.approx(phi) and model.psi[dt] == pytest.approx(psi)
        assert model.gemm_slowdown(dt, 0.5) == pytest.approx(1 + phi)  # u / (1 - u) = 1
    assert model.gemm_slowdown("fp8", 0.0) == 1.0 and InterferenceModel.none().comm_slowdown("fp8") == 1.0


def test_interference_samples_reach_the_cost_model() -> None:
    """A profile's pairs (GEMM and copy, alone and beside) set how much a GEMM slows beside comm SMs."""
    base = datasheet_profile()
    copy_rate = 3.0e12  # bytes/s on the whole GPU: the model's C
    samples = [Sample(op="memory", params={"kernel": "copy", "bytes": 2e9, "sms": 132}, time_s=2e9 / copy_rate)]
    for comm, u in ((16, 0.3), (32, 0.6)):
        copy_alone = 2 * 2**28 / (u * copy_rate)
        common = {"compute_sms": 132 - comm, "comm_sms": comm, "mode": "green-contexts", "dtype": "fp8"}
        common |= {"gemm": "g", "copy_bytes": 2**28}
        gemm = {**common, "kernel": "gemm", "alone_s": 1e-3}
        copy = {**common, "kernel": "copy", "alone_s": copy_alone}
        samples += [
            Sample(op="interference", params=gemm, time_s=1e-3 * (1 + 0.25 * queue(u))),
            Sample(op="interference", params=copy, time_s=copy_alone * 1.1),
        ]
    model = CostModel(base.model_copy(update={"samples": samples}))
    assert model.interference.phi["fp8"] == pytest.approx(0.25)
    assert model.interference.psi["fp8"] == pytest.approx(0.1)
    alone = model.gemm_time(4096, 4096, 7168, "fp8", 100)
    beside = model.gemm_time(4096, 4096, 7168, "fp8", 100, beside_comm_sms=32)
    assert beside / alone == pytest.approx(1 + 0.25 * queue(model.comm_utilisation(32)))
    with pytest.raises(Exception, match="exceed the GPU's 132"):
        model.gemm_time(4096, 4096, 7168, "fp8", 120, beside_comm_sms=20)


def test_predict_batch_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = PROFILES / "h100-sxm-measured.json"
    shapes = tmp_path / "shapes.csv"
    shapes.write_text(
        "op,dtype,scaling,M,N,K,sms,beside_comm_sms\n"
        "gemm,fp8,blockwise,4096,7168,2048,112,20\n"
        "gemm,bf16,,8192,4096,7168,,\n"
        "gemm,fp8,tensorwise,4096,4096,7168,132,0\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", str(profile), "--batch", str(shapes), "--format", "csv"])
    assert info.value.code == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    model = CostModel(load_profile(profile))
    assert float(rows[0]["time_s"]) == pytest.approx(model.gemm_time(4096, 7168, 2048, "fp8", 112, "blockwise", 20))
    assert float(rows[1]["time_s"]) == pytest.approx(model.gemm_time(8192, 4096, 7168, "bf16"))
    assert len(rows) == 3
    with pytest.raises(SystemExit):
        main(["calibrate", "predict", "--profile", str(profile), "--batch", str(shapes), "--format", "json"])
    assert [r["time_s"] for r in json.loads(capsys.readouterr().out)] == pytest.approx(
        [float(r["time_s"]) for r in rows]
    )
    # one call, single shape, JSON: the example
    with pytest.raises(SystemExit):
        main(
            ["calibrate", "predict", "--profile", str(profile), "--op", "gemm", "--dtype", "fp8", "--scaling",
             "blockwise", "--m", "4096", "--n", "7168", "--k", "2048", "--sms", "112", "--beside-comm-sms", "20",
             "--format", "json"]
        )  # fmt: skip
    assert json.loads(capsys.readouterr().out)["time_s"] == pytest.approx(float(rows[0]["time_s"]))


def test_predict_batch_keeps_rows_after_blank_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The honest batch beside the refusals: blank lines are skipped and every row is predicted once."""
    shapes = tmp_path / "shapes.csv"
    shapes.write_text("op,dtype,M,N,K\n\ngemm,fp8,64,64,64\n\ngemm,bf16,64,64,64\n")
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", str(PROFILES / "h800.json"), "--batch", str(shapes)])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert info.value.code == 0 and [r["dtype"] for r in rows] == ["fp8", "bf16"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("op,dtype,M,N,K,colour\ngemm,fp8,1,1,1,red\n", "row 1: unknown column 'colour'"),
        (
            "op,dtype,M,N,K\ngemm,fp8,64,x,7168\n",
            "row 2, column N: must be a whole number in [1, 2,147,483,648], got 'x'",
        ),
        ("op,dtype,M,N,K\nattention,fp8,64,64,64\n", "row 2, column op: 'attention': batch rows are gemm"),
        ("op,dtype,M,N,K,sms\ngemm,fp8,64,64,64,200\n", "row 2, column sms: must be in 1..132"),
        # a column named twice (the last was taken), a header alone (an empty result, exit 0), and a short
        # row's count of fields (it said 5 for 4), on the line it is on (blank lines left out)
        ("op,dtype,M,N,K,M\ngemm,fp8,64,64,64,128\n", "bad.csv: row 1, column M: named twice"),
        ("op,dtype,M,N,K\n", "bad.csv: no rows: a header and nothing to predict"),
        ("op,dtype,M,N,K\n\ngemm,fp8,64,64\n", "bad.csv: row 3: has 4 fields; the header has 5"),
    ],
)
def test_predict_batch_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    shapes = tmp_path / "bad.csv"
    shapes.write_text(content)
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", str(PROFILES / "h800.json"), "--batch", str(shapes)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and str(shapes) in err


@pytest.mark.needs_shared(MEASURED, TRACE)
def test_shipped_measured_profiles_are_what_the_documented_commands_build() -> None:
    """calibrate/profiles/README.md: h100-sxm-measured.json from the shared measurements, h800.json from
    it plus DeepSeek's trace. Rebuilt here, the samples are the shipped ones."""
    h100 = import_measurements(MEASURED, "NVIDIA H100 80GB HBM3")
    shipped = load_profile(PROFILES / "h100-sxm-measured.json")
    assert [(s.op, s.params, s.time_s) for s in h100.samples] == [(s.op, s.params, s.time_s) for s in shipped.samples]
    assert h100.sources == shipped.sources
    h800 = profile_from_trace(TRACE, H800, base=shipped)
    shipped800 = load_profile(PROFILES / "h800.json", "H800")
    assert [(s.op, s.params) for s in h800.samples] == [(s.op, s.params) for s in shipped800.samples]
    assert [s.time_s for s in h800.samples] == pytest.approx([s.time_s for s in shipped800.samples])


def test_show_reports_both_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", "show", str(PROFILES / "h100-sxm-measured.json"), "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["lofo_error"]["gemm"] <= 0.10 and "gemm:m>=512" in summary["loso_error"]
    assert summary["interference_rows"] == "green-contexts-overlapping"
    assert summary["fit"]["fp8"]["e:blockwise"] > 0 and len(summary["sources"]) == 6


def test_dump_round_trip_of_an_imported_profile(tmp_path: Path) -> None:
    profile = load_profile(PROFILES / "h100-sxm-measured.json")
    path = tmp_path / "p.json"
    path.write_text(dump_profile(profile))
    assert load_profile(path) == profile


def _comm_profile(tmp_path: Path) -> Path:
    """The H800 datasheet profile with nccl-tests all_reduce samples at 8 GPUs on 1 node and torch
    alltoall samples between 2 processes: times of alpha 10 us + bytes / 100 GB/s."""
    base = load_profile(PROFILES / "h800.json")
    extra = [
        Sample(
            op="collective",
            params={"collective": "all_reduce", "bytes": b, "gpus": 8, "nodes": 1},
            time_s=1e-5 + b / 1e11,
        )
        for b in (1e6, 1e7, 1e8)
    ]
    extra += [Sample(op="alltoall", params={"bytes": b, "world": 2}, time_s=1e-5 + b / 1e11) for b in (1e6, 1e7)]
    path = tmp_path / "comm.json"
    path.write_text(dump_profile(base.model_copy(update={"samples": [*base.samples, *extra]})))
    return path


def _predict(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", *args])
    got = capsys.readouterr()
    return int(info.value.code or 0), got.out, got.err


def test_predict_takes_the_twins_collective_names_and_checks_the_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``allreduce`` (the twin's name, as ``twin collective`` takes it) reads nccl-tests' ``all_reduce``
    samples; a scale no sample was measured at is refused naming --gpus or --nodes and the scales there
    are (it used to blame --op); torch samples are held to their scale too (they were read at any)."""
    path = str(_comm_profile(tmp_path))
    one = ["--profile", path, "--bytes", "5e7", "--format", "json"]
    code, out, _ = _predict([*one, "--op", "allreduce"], capsys)
    assert code == 0 and json.loads(out)["time_s"] == pytest.approx(1e-5 + 5e7 / 1e11)
    code, same, _ = _predict([*one, "--op", "all_reduce", "--gpus", "8", "--nodes", "1"], capsys)
    assert code == 0 and same == out
    code, _, err = _predict([*one, "--op", "allreduce", "--gpus", "16", "--nodes", "2"], capsys)
    assert code == 2 and err.strip() == (
        "error: --gpus: the profile has no allreduce sample at 16 GPUs on 2 nodes"
        " (it has allreduce at 8 GPUs on 1 node)"
    )
    code, _, err = _predict([*one, "--op", "alltoall", "--nodes", "8"], capsys)
    assert code == 2 and err.startswith("error: --nodes: the profile has no alltoall sample at 8 nodes")
    code, out, _ = _predict([*one, "--op", "alltoall", "--gpus", "2"], capsys)
    assert code == 0 and json.loads(out)["time_s"] == pytest.approx(1e-5 + 5e7 / 1e11)


@pytest.mark.parametrize(
    ("args", "flag", "op"),
    [
        (["--op", "attention", "--dtype", "bf16"], "--dtype", "attention"),
        (["--op", "attention", "--beside-comm-sms", "20"], "--beside-comm-sms", "attention"),
        (["--op", "memory", "--bytes", "1e9", "--m", "64"], "--m", "memory"),
        (["--op", "gemm", "--bytes", "1e9"], "--bytes", "gemm"),
        (["--op", "allreduce", "--bytes", "1e9", "--sms", "100"], "--sms", "allreduce"),
    ],
)
def test_predict_refuses_a_flag_its_op_does_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str, op: str
) -> None:
    """A flag the op's model never reads was silently ignored (attention's time does not depend on a
    dtype): it is refused, one line naming it."""
    code, _, err = _predict(["--profile", str(_comm_profile(tmp_path)), *args], capsys)
    assert code == 2 and err.strip() == f"error: {flag}: not used by the {op} op; remove it"


def test_predict_beside_comm_sms_alone_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    """--beside-comm-sms without --sms gives the GEMM the SMs communication leaves (it used to ask for
    all 132 plus the side SMs and refuse); --format csv prints CSV, not JSON."""
    profile = str(PROFILES / "h800.json")
    code, alone, _ = _predict(["--profile", profile, "--beside-comm-sms", "20", "--format", "json"], capsys)
    assert code == 0
    code, given, _ = _predict(
        ["--profile", profile, "--beside-comm-sms", "20", "--sms", "112", "--format", "json"], capsys
    )
    assert code == 0 and alone == given
    code, out, _ = _predict(["--profile", profile, "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1 and rows[0]["op"] == "gemm" and float(rows[0]["time_s"]) > 0


def test_import_trace_records_the_kernels_at_the_compute_sms_given(tmp_path: Path) -> None:
    """--compute-sms is the SMs the trace's compute kernels ran on: every GEMM, attention and memory
    sample is recorded at it (they all said 112 whatever was given), and the profile's tool says it."""
    out = tmp_path / "t.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-trace", str(TRACE), "--compute-sms", "100", "-o", str(out)])
    assert info.value.code == 0
    profile = load_profile(out)
    kernels = [s for s in profile.samples if s.op in ("gemm", "attention", "memory")]
    assert kernels and {s.params["sms"] for s in kernels} == {100}
    assert "--compute-sms 100" in profile.tool


def test_a_datasheet_profile_records_the_figures_it_was_given(tmp_path: Path) -> None:
    """The profile's tool line is the command that makes it again: every figure given (it kept only
    --name, so a profile of a GPU without a datasheet could not be rebuilt from it)."""
    out = tmp_path / "x.json"
    args = ["--name", "X9", "--sms", "100", "--fp8-tflops", "1000", "--bf16-tflops", "500", "--hbm-tbps", "3"]
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "datasheet", *args, "--efficiency", "0.5", "-o", str(out)])
    assert info.value.code == 0
    assert load_profile(out).tool == "twin calibrate datasheet " + " ".join(args) + " --efficiency 0.5"


def test_predict_batch_refuses_single_kernel_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --batch the file's rows are the kernels: --op or --m beside it was silently ignored."""
    rows = tmp_path / "b.csv"
    rows.write_text("op,dtype,scaling,M,N,K,sms,beside_comm_sms\ngemm,fp8,,128,128,128,,\n")
    for flag, value in (("--op", "gemm"), ("--m", "64")):
        code, _, err = _predict(["--profile", str(PROFILES / "h800.json"), "--batch", str(rows), flag, value], capsys)
        assert (
            code == 2
            and err.strip() == f"error: {flag}: not used by --batch (its rows give each kernel's parameters); remove it"
        )


def _at_the_edge(tmp_path: Path, key: str) -> Path:
    """The H800 datasheet profile with ``efficiency`` or ``peaks.hbm_TBps`` (``key``) of 1e-300."""
    data = json.loads((PROFILES / "h800-datasheet.json").read_text())
    if key == "efficiency":
        data["efficiency"] = 1e-300
    else:
        data["peaks"][key.removeprefix("peaks.")] = 1e-300
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("key", "args", "figure"),
    [
        ("efficiency", [], "time_s is 1.21535e+296"),
        ("peaks.hbm_TBps", [], "time_s is 1.31821e+296"),
        ("peaks.hbm_TBps", ["--op", "memory", "--bytes", "1e9"], "time_s is 1.42857e+297"),
        ("peaks.bf16_dense_TFLOPS", ["--op", "attention"], "time_s is 9.81707e+299"),
    ],
)
def test_predict_refuses_a_profile_whose_times_overflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, args: list[str], figure: str
) -> None:
    """A profile of efficiency or HBM 1e-300 printed times of 1e296 s with exit 0; ``twin run`` refused it
    as an overflow naming the profile's key, and predict now does alike."""
    path = _at_the_edge(tmp_path, key)
    code, out, err = _predict(["--profile", str(path), *args], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"error: the results overflow: {figure}, from {path}: {key} = 1e-300; use values nearer to real ones\n"
    )


def test_predict_batch_refuses_rows_whose_times_overflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "b.csv"
    rows.write_text("op,dtype,M,N,K\ngemm,fp8,64,64,64\n")
    path = _at_the_edge(tmp_path, "efficiency")
    code, out, err = _predict(["--profile", str(path), "--batch", str(rows)], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"error: the results overflow: row 2 time_s is 4.89075e+291, from {path}: efficiency = 1e-300; "
        "use values nearer to real ones\n"
    )


@pytest.mark.parametrize(
    ("flag", "figure"),
    [
        ("--efficiency", "fp8 GEMM time_s is 1.21535e+296"),
        ("--hbm-tbps", "fp8 GEMM time_s is 1.31821e+296"),
        ("--fp8-tflops", "fp8 GEMM time_s is 3.43597e+299"),
        ("--bf16-tflops", "bf16 GEMM time_s is 3.43597e+299"),
    ],
)
def test_datasheet_refuses_figures_whose_times_overflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, figure: str
) -> None:
    """``--efficiency 1e-300`` (or a peak of 1e-300) wrote a profile every run of which overflows: refused,
    naming the flag, and nothing written."""
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "datasheet", "--name", "H800", flag, "1e-300", "-o", str(out)])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == f"error: the results overflow: {figure}, from {flag} = 1e-300; use values nearer to real ones\n"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(19.41e-6, "19.41 us"), (1e-7, "0.10 us"), (7e-11, "0.07 ns"), (1.234e-8, "12.3 ns"), (0.0, "0.00 us")],
)
def test_predicted_times_print_with_their_digits(seconds: float, text: str) -> None:
    """A one-token attention (7e-11 s) printed as ``0.00 us``: below 0.1 us the table gives nanoseconds."""
    from sim.cli.calibrate import time_text

    assert time_text(seconds) == text
