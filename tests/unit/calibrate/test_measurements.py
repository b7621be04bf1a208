"""Importing timings taken elsewhere: measurement tables and nccl-tests logs (no torch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from calibrate.measurements import import_measurements
from calibrate.nccl_tests import parse_log
from sim.cli import main
from sim.errors import ScenarioError
from sim.hardware.costmodel import CostModel
from sim.hardware.profile import load_profile
from tests.conftest import SHARED

MEASURED = SHARED / "measurements" / "h100-sxm-2026-11-23"
needs_shared = pytest.mark.needs_shared(MEASURED)
NCCL = Path(__file__).resolve().parents[2] / "data" / "nccl-tests"
H100 = "NVIDIA H100 80GB HBM3"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "m"
    shutil.copytree(MEASURED, target)
    return target


@needs_shared
def test_import_round_trip_keeps_every_row_and_its_provenance(tmp_path: Path) -> None:
    out = tmp_path / "h100.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(MEASURED), "-o", str(out), "--device", H100])
    assert info.value.code == 0
    profile = load_profile(out)
    rows = {f.name: sum(1 for line in f.read_text().splitlines()[1:] if line.strip()) for f in MEASURED.glob("*.csv")}
    ops = [s.op for s in profile.samples]
    assert ops.count("gemm") == rows["gemm.csv"]
    assert ops.count("attention") == 2 * rows["attention.csv"]  # forward and backward
    assert ops.count("memory") == rows["hbm_copy.csv"] + rows["fp8_cast.csv"]
    assert ops.count("interference") == 2 * rows["interference.csv"]  # the GEMM and the copy
    assert profile.device.name == H100 and profile.device.sms == 132 and profile.created == "2026-11-23"
    assert {s.name for s in profile.sources} == {*rows, "README.md"}
    assert all(len(s.sha256) == 64 for s in profile.sources)
    assert "green context" in profile.method
    # the seconds survive: the first GEMM row is 0.000262230396 s
    first = next(s for s in profile.samples if s.op == "gemm")
    assert first.time_s == pytest.approx(0.000262230396) and first.params["scaling"] == "tensorwise"
    assert {s.params["scaling"] for s in profile.samples if s.op == "gemm"} >= {"blockwise", "rowwise", "none"}


def test_time_units_in_column_names_are_converted(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("bytes_copied,sms,microseconds\n1073741824,132,733.18398\n")
    profile = import_measurements(table, H100)
    assert profile.samples[0].time_s == pytest.approx(733.18398e-6)
    assert profile.samples[0].params["bytes"] == 2 * 1073741824  # read and written


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("bytes_copied,sms,minutes", "1024,132,1", "row 1, column minutes: unknown column"),
        ("bytes_copied,sms,seconds,colour", "1024,132,1e-5,red", "row 1, column colour: unknown column"),
        ("bytes_copied,sms,seconds", "1024,132,12 us", "row 2, column seconds: '12 us' is not a number"),
        ("bytes_copied,sms,seconds", "1024,200,1e-5", "row 2, column sms: must be in 1..132, got 200"),
        # float() reads other scripts' digits and digit separators; no CSV writer means them (sim.number_text)
        (
            "bytes_copied,sms,seconds",
            "\u0661\u0660\u0662\u0664,132,1e-5",
            "row 2, column bytes_copied: '\u0661\u0660\u0662\u0664' is not a number: it holds '\u0661' (U+0661), "
            "not ASCII; write the digits 0-9",
        ),
        (
            "bytes_copied,sms,seconds",
            "1024,\uff11\uff13\uff12,1e-5",
            "row 2, column sms: '\uff11\uff13\uff12' is not a number",
        ),
        (
            "bytes_copied,sms,seconds",
            "1_024,132,1e-5",
            "row 2, column bytes_copied: '1_024' is not a number: it has a digit",
        ),
        ("bytes_copied,sms,seconds", "1024,132,-1e-5", "row 2, column seconds: -1e-5 is not allowed"),
        ("tokens,seconds", "4096,1e-3", "the columns match no table; as a fp8_cast table it lacks hidden"),
        (
            "family,dtype,scaling,M,N,K,sms,seconds",
            "moe_up,fp8,columnwise,64,4096,7168,132,1e-5",
            "row 2, column scaling: 'columnwise' is not one of",
        ),
    ],
)
def test_bad_tables_are_refused_naming_file_row_and_column(tmp_path: Path, header: str, row: str, message: str) -> None:
    table = tmp_path / "bad.csv"
    table.write_text(f"{header}\n{row}\n")
    with pytest.raises(ScenarioError) as info:
        import_measurements(table, H100)
    assert str(info.value).startswith(str(table)) and message in str(info.value)


@needs_shared
def test_cli_refusals_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(tmp_path)
    (folder / "gemm.csv").write_text((folder / "gemm.csv").read_text().replace("0.000262230396", "fast", 1))
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "-o", str(out), "--device", H100])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "gemm.csv: row 2, column seconds: 'fast' is not a number" in err
    assert not out.exists()
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "-o", str(out), "--device", "TPU v5"])
    assert info.value.code == 2 and "--device: no datasheet for 'TPU v5'" in capsys.readouterr().err


@needs_shared
def test_h100_gemms_are_predicted_within_ten_percent_when_whole_families_are_left_out() -> None:
    """Issue 10's target on the shared H100 measurements: refit without each shape family (moe_up,
    q_a, q_b, kv_a, attn_o, the SM-limited sets, the blockwise generic pair) and predict it; the
    median relative error over its samples with M >= 512 is at most 10%."""
    profile = import_measurements(MEASURED, H100)
    lofo = profile.lofo_error
    print("leave-one-family-out median errors (M >= 512):", json.dumps({k: round(v, 4) for k, v in lofo.items()}))
    assert lofo["gemm"] <= 0.10
    assert all(lofo[f"gemm:{g}"] <= 0.15 for g in ("bf16:none", "fp8:rowwise", "fp8:tensorwise"))


@needs_shared
def test_h100_sm_scaling_and_interference_come_from_the_measurements() -> None:
    model = CostModel(import_measurements(MEASURED, H100))
    # HBM copy against SMs: the 1 GiB copy on 16 SMs took 1.823 ms, on all SMs 0.733 ms
    assert model.memory_sm_fraction(16) == pytest.approx(0.733184 / 1.823456, rel=0.01)
    assert model.memory_time(2 * 2**30, "copy", sms=16) == pytest.approx(1.823456e-3, rel=0.05)
    # GEMMs lose throughput on fewer SMs as measured (8192x4096x7168 FP8 tensorwise: 132 -> 64 SMs
    # took 374 -> 652 us, one call per event pair)
    ratio = model.gemm_time(8192, 4096, 7168, "fp8", 64, "tensorwise") / model.gemm_time(
        8192, 4096, 7168, "fp8", 132, "tensorwise"
    )
    assert ratio == pytest.approx(652.256 / 373.792, rel=0.1)
    # the H100 rows are torch green contexts, whose SM sets overlap: used, and said so
    assert model.interference_mode == "green-contexts-overlapping"
    slower = model.gemm_time(8192, 4096, 7168, "fp8", 96, "tensorwise", beside_comm_sms=32)
    assert slower > 1.2 * model.gemm_time(8192, 4096, 7168, "fp8", 96, "tensorwise")


def test_nccl_tests_logs_parse_into_collective_samples() -> None:
    logs = sorted(NCCL.glob("*.log"))
    assert len(logs) == 5
    for log in logs:
        samples = parse_log(log)
        collective = log.name.split("_perf")[0]
        assert {s.params["collective"] for s in samples} == {collective}
        assert {(s.params["gpus"], s.params["nodes"]) for s in samples} == {(1, 1)}
        sizes = sorted({int(s.params["bytes"]) for s in samples})
        assert sizes[-1] == 134217728 and all(b > 0 for b in sizes)
    big = [s for s in parse_log(NCCL / "all_reduce_perf-h200-1gpu.log") if s.params["bytes"] == 134217728]
    out_of_place = next(s for s in big if s.params["placement"] == "out-of-place")
    assert out_of_place.time_s == pytest.approx(66.71e-6) and out_of_place.params["algbw_GBps"] == 2011.8
    # bytes / time = algbw (nccl-tests' definition), to the printed precision
    assert 134217728 / out_of_place.time_s / 1e9 == pytest.approx(2011.8, rel=1e-3)


def test_nccl_tests_import_feeds_the_alpha_beta_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "comm.json"
    logs = [str(p) for p in sorted(NCCL.glob("*.log"))]
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", *logs, "-o", str(out), "--device", "H200"])
    assert info.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(
            [
                "calibrate",
                "predict",
                "--profile",
                str(out),
                "--op",
                "alltoall",
                "--bytes",
                "33554432",
                "--format",
                "json",
            ]
        )
    t = json.loads(capsys.readouterr().out)["time_s"]
    assert t == pytest.approx(19.41e-6, rel=0.5)  # the log's own 32 MiB row, through a fitted line
    # the same log again is refused (its samples would count twice in the fit)
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", logs[0], "--profile", str(out), "-o", str(out)])
    assert info.value.code == 2 and "--profile: already holds the samples of" in capsys.readouterr().err
    # a second scale of the same collective: a log without Rank lines, its scale from --gpus/--nodes (read as 8 GPUs)
    other = tmp_path / "all_gather_perf-8gpu.log"
    other.write_text("".join(line for line in Path(logs[0]).read_text().splitlines(True) if "Rank" not in line))
    flags = ["--gpus", "8", "--nodes", "1"]
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(other), "--profile", str(out), "-o", str(out), *flags])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "predict", "--profile", str(out), "--op", "all_gather", "--bytes", "1e6"])
    assert info.value.code == 2 and "several scales (1 GPUs on 1 nodes, 8 GPUs on 1 nodes)" in capsys.readouterr().err


def test_nccl_tests_refuses_what_is_not_its_output(tmp_path: Path) -> None:
    bad = tmp_path / "all_reduce_perf.log"
    bad.write_text("hello\n")
    with pytest.raises(ScenarioError, match="no nccl-tests column header"):
        parse_log(bad)
    text = (NCCL / "all_reduce_perf-h200-1gpu.log").read_text().splitlines()
    text[12] = text[12] + " 7"
    bad.write_text("\n".join(text))
    with pytest.raises(ScenarioError, match="line 13: expected 13 columns"):
        parse_log(bad)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("     7.86", "    -7.86", "out-of-place time must be > 0, got -7.86"),
        ("     7.86", "        0", "out-of-place time must be > 0, got 0"),
        ("     0.50", "     0.00", "in-place time must be > 0, got 0.00"),
    ],
)
def test_nccl_tests_refuses_a_time_of_zero_or_below(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    """A row timed at 0 or below was dropped without a word (25 samples of 26): refused, naming its line."""
    lines = (NCCL / "all_reduce_perf-h200-1gpu.log").read_text().splitlines(keepends=True)
    assert old in lines[11]
    lines[11] = lines[11].replace(old, new, 1)
    log, out = tmp_path / "all_reduce_perf.log", tmp_path / "p.json"
    log.write_text("".join(lines))
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(out), "--device", "H200"])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == f"error: {log}: line 12: {message}\n"
    assert not out.exists()


def _without_rank_lines(tmp_path: Path) -> Path:
    """The H200 all_reduce log without its Rank lines (as ``twin collective`` prints one): its scale is
    the flags'."""
    log = tmp_path / "all_reduce_perf.log"
    lines = (NCCL / "all_reduce_perf-h200-1gpu.log").read_text().splitlines(keepends=True)
    log.write_text("".join(line for line in lines if "Rank" not in line))
    return log


@pytest.mark.parametrize(
    ("flags", "where", "message"),
    [
        (
            ["--gpus", "1048576", "--nodes", "1"],
            "--gpus",
            "1,048,576 GPUs per node is over the limit of 1,024 (1,048,576 GPUs over 1 node(s))",
        ),
        (
            ["--gpus", "2048", "--nodes", "1"],
            "--gpus",
            "2,048 GPUs per node is over the limit of 1,024 (2,048 GPUs over 1 node(s))",
        ),
        (["--gpus", "8", "--nodes", "3"], "--nodes", "the GPUs (8) do not split evenly over the nodes (3)"),
        (["--gpus", "3", "--nodes", "2"], "--nodes", "the GPUs (3) do not split evenly over the nodes (2)"),
        ([], "LOG: --gpus", "the log has no '# Rank' lines: give --gpus and --nodes"),
        (["--nodes", "1"], "LOG: --gpus", "the log has no '# Rank' lines: give --gpus and --nodes"),
        (["--gpus", "8"], "LOG: --nodes", "the log has no '# Rank' lines: give --gpus and --nodes"),
    ],
)
def test_nccl_tests_refuses_gpus_and_nodes_that_no_cluster_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], where: str, message: str
) -> None:
    """A log without Rank lines takes its scale from ``--gpus`` and ``--nodes`` (both): ``--gpus 1048576``
    on 1 node (over the 1,024 GPUs a node holds, sim/limits.py) and GPUs that do not split evenly over
    ``--nodes`` were taken: refused, naming the flag (the one missing, where one is)."""
    log, out = _without_rank_lines(tmp_path), tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(out), "--device", "H200", *flags])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == f"error: {where.replace('LOG', str(log))}: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus", "8", "--nodes", "1"], "--gpus: 8, but the Rank lines of LOG show 1 rank(s): give --gpus 1"),
        (["--gpus", "8"], "--gpus: 8, but the Rank lines of LOG show 1 rank(s): give --gpus 1"),
        (["--gpus", "2048", "--nodes", "2"], "--gpus: 2,048, but the Rank lines of LOG show 1 rank(s): give --gpus 1"),
        (["--nodes", "3"], "--nodes: 3, but the Rank lines of LOG show 1 host(s): give --nodes 1"),
        (["--gpus", "1", "--nodes", "2"], "--nodes: 2, but the Rank lines of LOG show 1 host(s): give --nodes 1"),
    ],
)
def test_nccl_tests_refuses_gpus_and_nodes_the_rank_lines_contradict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """``--gpus 8 --nodes 1`` on a log whose Rank lines show one GPU was taken ("26 samples (all_reduce 8
    GPUs/1 nodes)": a 1-GPU measurement fitted as an 8-GPU one), while a ``--device`` the Rank lines
    contradict is refused: refused the same way, naming the flag and the log; flags that agree are taken."""
    log, out = NCCL / "all_reduce_perf-h200-1gpu.log", tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(out), *flags])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == f"error: {message.replace('LOG', str(log))} or leave it out\n"
    assert not out.exists()
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(out), "--gpus", "1", "--nodes", "1"])
    assert info.value.code == 0
    assert "26 samples (all_reduce 1 GPUs/1 nodes)" in " ".join(capsys.readouterr().out.split())


def _changed_row(tmp_path: Path, old: str, new: str, line: int = 15) -> Path:
    """The H200 all_reduce log with ``old`` replaced by ``new`` on its line ``line`` (1-based)."""
    lines = (NCCL / "all_reduce_perf-h200-1gpu.log").read_text().splitlines(keepends=True)
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    log = tmp_path / "all_reduce_perf.log"
    log.write_text("".join(lines))
    return log


ARABIC = "holds '\u0662' (U+0662), not ASCII; write the digits 0-9"  # ٢
WIDE = "holds '\uff18' (U+FF18), not ASCII; write the digits 0-9"  # ８
SEPARATOR = "has a digit separator '_'; write the digits alone"


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "        2048 ",
            "        \u0662\u0660\u0664\u0668 ",
            15,
            f"size '\u0662\u0660\u0664\u0668' is not a whole number: it {ARABIC}",
        ),
        (
            "           512 ",
            "           \uff15\uff11\uff12 ",
            15,
            "count '\uff15\uff11\uff12' is not a whole number: it holds '\uff15' (U+FF15), not ASCII; "
            "write the digits 0-9",
        ),
        ("        2048 ", "       2_048 ", 15, f"size '2_048' is not a whole number: it {SEPARATOR}"),
        ("     8.14 ", "     8_14 ", 15, f"out-of-place time '8_14' is not a number: it {SEPARATOR}"),
        ("     8.14 ", "     \uff18.14 ", 15, f"out-of-place time '\uff18.14' is not a number: it {WIDE}"),
        ("    3.63 ", "    3_63 ", 15, f"in-place algbw '3_63' is not a number: it {SEPARATOR}"),
        (
            "      -1 ",
            "      -\u0661 ",
            15,
            "root '-\u0661' is not a whole number: it holds '\u0661' (U+0661), not ASCII; write the digits 0-9",
        ),
        (
            "Rank  0",
            "Rank  \u0660",
            6,
            "Rank line: rank '\u0660' is not a whole number: it holds '\u0660' (U+0660), not ASCII; "
            "write the digits 0-9",
        ),
    ],
)
def test_nccl_tests_numbers_are_plain_ascii(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, line: int, message: str
) -> None:
    """A size of ``٢٠٤٨`` (Arabic-Indic digits) was read as 2048, a time of ``8_14`` as 814 us and ``８.14``
    (full-width) as 8.14, exit 0 (Python's int and float read them; nccl-tests prints none): refused,
    naming the log and the line (sim.number_text)."""
    log, out = _changed_row(tmp_path, old, new, line), tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(out)])
    got = capsys.readouterr()
    assert (info.value.code, got.out) == (2, "")
    assert got.err == f"error: {log}: line {line}: {message}\n"
    assert not out.exists()


def test_nccl_tests_text_beside_the_numbers_may_be_any_script(tmp_path: Path) -> None:
    """Only the numbers are plain ASCII: a comment, the host and the GPU's name may hold any characters."""
    text = (NCCL / "all_reduce_perf-h200-1gpu.log").read_text()
    text = text.replace(" on         vm device", " on   \u0645\u0636\u064a\u0641 device")  # a host named in Arabic
    log = tmp_path / "all_reduce_perf.log"
    log.write_text("# \u0627\u062e\u062a\u0628\u0627\u0631 \uff18 GPUs \u2014 caf\u00e9\n" + text)
    samples = parse_log(log)
    assert len(samples) == len(parse_log(NCCL / "all_reduce_perf-h200-1gpu.log"))
    assert {(s.params["gpus"], s.params["nodes"]) for s in samples} == {(1, 1)}


@needs_shared
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("copy", "gemm_copy.csv: holds the same bytes as gemm.csv: give each table once"),
        ("rows", "gemm.csv: row 249: repeats row 2, time included (the same gemm measurement counted twice)"),
        ("header", "gemm.csv: row 249: a second header row: the table is pasted twice"),
    ],
)
def test_a_table_counted_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    """gemm.csv copied beside itself, its rows appended again, or pasted with its header: 531 samples with
    exit 0 before (each left-out shape kept its copy in the fit: leave-one-shape-out error 0.069 -> 0.027),
    or the second header refused as ``column dtype: 'dtype' is not one of ...``."""
    folder = _copy(tmp_path)
    gemm = folder / "gemm.csv"
    text = gemm.read_text()
    if change == "copy":
        shutil.copyfile(gemm, folder / "gemm_copy.csv")
    else:
        gemm.write_text(text + (text.split("\n", 1)[1] if change == "rows" else text))
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "-o", str(out), "--device", H100])
    got = capsys.readouterr()
    assert (info.value.code, got.out, len(got.err.splitlines())) == (2, "", 1)
    assert got.err.startswith(f"error: {folder}/") and message in got.err
    assert not out.exists()


@needs_shared
def test_a_configuration_measured_twice_with_its_own_times_is_kept() -> None:
    """The honest folder: its 1 GiB copy on 132 SMs is in both the size sweep and the SM sweep of
    hbm_copy.csv (0.733 and 0.730 ms), two measurements of one configuration: both kept, 284 samples."""
    profile = import_measurements(MEASURED, H100)
    copies = [s.time_s for s in profile.samples if s.params.get("bytes_copied") == 2**30 and s.params["sms"] == 132]
    assert sorted(copies) == pytest.approx([0.000729888022, 0.00073318398])
    assert len(profile.samples) == 284


def test_an_output_inside_the_measurement_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o FOLDER/new.json`` wrote the profile among the tables (a later import read it); beside it, fine."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "hbm_copy.csv").write_text("bytes_copied,sms,seconds\n1073741824,132,7.3e-4\n")
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "-o", str(folder / "new.json"), "--device", H100])
    err = capsys.readouterr().err
    assert info.value.code == 2
    inside = f"{folder}/new.json is inside the measurement folder {folder}, which the next import reads"
    assert err == f"error: --output: {inside}; write it elsewhere\n"
    assert sorted(p.name for p in folder.iterdir()) == ["hbm_copy.csv"]
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-measurements", str(folder), "-o", str(tmp_path / "new.json"), "--device", H100])
    assert info.value.code == 0 and (tmp_path / "new.json").exists()


def _device(path: Path) -> str:
    return str(load_profile(path).device.name)


def test_nccl_tests_import_takes_the_rank_lines_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The H200 log without --device was written as an H800 profile (the default); now an H200 one. A GPU
    the twin has no datasheet for, or Rank lines naming none, keep the default; --device of the same GPU
    and --profile of an H200 profile are taken."""
    log = NCCL / "alltoall_perf-h200-1gpu.log"
    out = tmp_path / "p.json"
    for args, device in (
        ([str(log)], "H200"),
        ([str(log), "--device", "H200"], "H200"),
        ([str(NCCL / "all_reduce_perf-h200-1gpu.log"), "--profile", str(out)], "H200"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["calibrate", "import-nccl-tests", *args, "-o", str(out)])
        assert info.value.code == 0 and _device(out) == device
    for name, replaced in (("a100", "NVIDIA A100-SXM4-80GB"), ("none", "")):
        other = tmp_path / f"alltoall_{name}.log"
        other.write_text(log.read_text().replace("NVIDIA H200", replaced))
        with pytest.raises(SystemExit) as info:
            main(["calibrate", "import-nccl-tests", str(other), "-o", str(tmp_path / f"{name}.json")])
        assert info.value.code == 0 and _device(tmp_path / f"{name}.json") == "H800"
    capsys.readouterr()


def test_nccl_tests_rows_of_another_op_are_not_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A repeat is the same collective, GPUs, nodes, size, count, type, op, root and placement: an all_reduce
    log of max beside one of sum is two measurements, in one import or added to the profile after."""
    log = NCCL / "all_reduce_perf-h200-1gpu.log"
    assert "     sum " in log.read_text()
    other = tmp_path / "all_reduce_max.log"
    other.write_text(log.read_text().replace("     sum ", "     max "))
    out, added = tmp_path / "p.json", tmp_path / "q.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), str(other), "-o", str(out)])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), "-o", str(added)])
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(other), "--profile", str(added), "-o", str(added)])
    assert info.value.code == 0
    assert len(load_profile(out).samples) == len(load_profile(added).samples) == 2 * len(parse_log(log))
    assert {s.params["redop"] for s in load_profile(out).samples} == {"sum", "max"}
    capsys.readouterr()


def _retimed(line: str) -> str:
    """A result row of nccl-tests with its out-of-place and in-place times 0.01 us later (the same size
    timed again)."""
    cells = line.split()
    for i in (5, 9):  # size count type redop root | time algbw busbw #wrong | time algbw busbw #wrong
        cells[i] = f"{float(cells[i]) + 0.01:.2f}"
    return "  ".join(cells) + "\n"


def test_nccl_tests_repeated_sizes_with_their_own_times_are_kept(tmp_path: Path) -> None:
    """nccl-tests -N (run cycles) prints every size again under one header, each with its own times, and
    two runs of a test are two measurements: both kept; a row repeated whole, times included, is a pasted
    copy and refused (in one log, or across the logs of an import)."""
    log = NCCL / "alltoall_perf-h200-1gpu.log"
    lines = log.read_text().splitlines(keepends=True)
    rows = [i for i, line in enumerate(lines) if line.strip()[:1].isdigit()]
    cycles = tmp_path / "alltoall_cycles.log"
    cycles.write_text("".join(lines[: rows[-1] + 1] + [_retimed(lines[i]) for i in rows] + lines[rows[-1] + 1 :]))
    assert len(parse_log(cycles)) == 2 * len(parse_log(log))
    second = tmp_path / "alltoall_run2.log"
    second.write_text("".join(_retimed(line) if i in rows else line for i, line in enumerate(lines)))
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "import-nccl-tests", str(log), str(second), "-o", str(out), "--device", "H200"])
    assert info.value.code == 0
    assert len(json.loads(out.read_text())["samples"]) == 2 * len(parse_log(log))
