"""Every bad input gets one clear line (issue 12): a table of hostile inputs for every command.

Each case runs ``sim.cli.main`` in-process and asserts exit status 2, exactly one line on stderr that
starts with ``error:`` and names the flag, argument or ``file: key``, no traceback, nothing on
stdout and no file left behind. Numeric-flag cases are generated from the commands themselves
(every int/float option: not a number, NaN, infinities, below and above its range), so a new flag
is covered, and refused if it has no bounded parser (``test_every_numeric_flag_is_bounded``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from sim.cli import COMMANDS, main
from sim.cli.common import Number

REPO = Path(__file__).resolve().parents[2]
TOPO = str(REPO / "topologies" / "h800-node.yaml")
MPFT = str(REPO / "topologies" / "deepseek-v3-mpft.yaml")
PROFILE = str(REPO / "calibrate" / "profiles" / "h800-datasheet.json")
NCCL_LOG = str(REPO / "tests" / "data" / "nccl-tests" / "alltoall_perf-h200-1gpu.log")
H800 = str(REPO / "calibrate" / "profiles" / "h800.json")  # measured: every kind of sample
SCENARIO = str(REPO / "scenarios" / "dualpipe-table.yaml")
LLAMA = str(REPO / "models" / "meta-llama__Llama-3.1-8B.config.json")  # a dense model


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(command path, callback) of every command of the twin."""

    def walk(t: typer.Typer, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for c in t.registered_commands:
            assert c.callback is not None
            yield (*prefix, c.name or c.callback.__name__.replace("_", "-")), c.callback
        for g in t.registered_groups:
            assert g.typer_instance is not None and g.name is not None
            yield from walk(g.typer_instance, (*prefix, g.name))

    found = 0
    for name, entry in COMMANDS.items():  # the root imports each command's module when it runs
        obj = getattr(importlib.import_module(f"sim.cli.{entry.module}"), entry.attr)
        if isinstance(obj, typer.Typer):
            for item in walk(obj, (name,)):
                found += 1
                yield item
        else:
            found += 1
            yield (name,), obj
    assert found >= 25  # every command, not an empty walk


def numeric_options(callback: Any) -> Iterator[tuple[str, type, Any]]:
    """(flag, int or float, parser) of every numeric option of a command."""
    hints = typing.get_type_hints(callback, include_extras=True)
    for name in inspect.signature(callback).parameters:
        hint = hints[name]
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        base, *meta = typing.get_args(hint)
        kinds = {a for a in (typing.get_args(base) or (base,)) if a in (int, float)}
        if not kinds:
            continue
        info = next(m for m in meta if isinstance(m, typer.models.ParameterInfo))
        given = [info.default] if isinstance(info.default, str) else []  # typer takes a first "--x" as a decl
        decls = [d for d in [*given, *(info.param_decls or ())] if d.startswith("--")]
        flag = decls[0] if decls else "--" + name.replace("_", "-")  # the primary name (errors name it)
        yield flag, kinds.pop(), getattr(info, "parser", None)


# Arguments that make each command valid, so that the bad flag is the only problem.
BASE: dict[tuple[str, ...], list[str]] = {
    ("schedules", "show"): ["1f1b"],
    ("schedules", "check"): ["1f1b"],
    ("schedules", "compare"): [],
    ("schedules", "plot"): ["1f1b", "-o", "p.png"],
    ("schedules", "trace"): ["1f1b", "-o", "t.json"],
    ("collective",): ["alltoall", "--cluster", MPFT, "--gpus", "16", "--size-bytes", "1e6"],
    ("alltoall",): [],
    ("balance",): [],
    ("chunk",): [],
    ("calibrate", "import-trace"): [PROFILE, "-o", "x.json"],
    ("calibrate", "run"): ["-o", "x.json"],
    ("calibrate", "datasheet"): ["-o", "x.json"],
    ("calibrate", "import-measurements"): [".", "-o", "x.json"],
    ("calibrate", "import-nccl-tests"): [NCCL_LOG, "-o", "x.json"],
    ("calibrate", "predict"): ["--profile", PROFILE],
}


FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")  # int() reads these digits as ASCII ones


def numeric_cases() -> list[Any]:
    cases = []
    for path, callback in commands():
        for flag, kind, parser in numeric_options(callback):
            if not isinstance(parser, Number):
                continue  # test_every_numeric_flag_is_bounded reports it
            below = parser.lo - (1 if kind is int else max(1.0, abs(parser.lo)))
            above = parser.hi * 2 + 1
            values = ["abc", "nan", "inf", "-inf", str(int(below) if kind is int else below), f"{above:g}"]
            if kind is int:
                values.append("2.5")
                # its least value in full-width digits: in range, refused only as not ASCII (sim.number_text)
                values.append(str(int(parser.lo)).translate(FULL_WIDTH))
            for v in values:
                args = [*path, *BASE.get(path, []), flag, v]
                cases.append(pytest.param(args, flag, id=" ".join([*path, flag, v])))
    return cases


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of hostile input files; the test runs inside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "dup.yaml").write_text("name: a\nname: b\n")
    bomb = ["a: &a [1,1,1,1,1,1,1,1,1,1]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        bomb.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    (tmp_path / "self.yaml").write_text("a: &a [*a]\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "empty.yaml").write_text("")
    ops = "ops: {forward_ms: 1, backward_ms: 2, weight_ms: 1}\n"
    scen = "name: s\npipeline: {pp: 4, microbatches: 8}\n"
    (tmp_path / "inf.yaml").write_text(scen + "ops: {forward_ms: .inf, backward_ms: 2, weight_ms: 1}\n")
    (tmp_path / "nan.yaml").write_text(scen + ops + "p2p: {bandwidth_GBps: .nan}\n")
    (tmp_path / "zero_bw.yaml").write_text(scen + ops + "p2p: {bandwidth_GBps: 0}\n")
    (tmp_path / "huge_n.yaml").write_text("name: s\npipeline: {pp: 4, microbatches: 1e8}\n" + ops)
    (tmp_path / "huge_pp.yaml").write_text("name: s\npipeline: {pp: 100000, microbatches: 100000}\n" + ops)
    (tmp_path / "tokens.yaml").write_text(scen + "workload: {tokens: 100000000}\n")
    (tmp_path / "bool_pp.yaml").write_text("name: s\npipeline: {pp: true, microbatches: 8}\n" + ops)
    (tmp_path / "str_pp.yaml").write_text("name: s\npipeline: {pp: '4', microbatches: 8}\n" + ops)
    (tmp_path / "neg_ops.yaml").write_text(scen + "ops: {forward_ms: -1, backward_ms: 2, weight_ms: 1}\n")
    (tmp_path / "unknown.yaml").write_text(scen + ops + "pipelin: {}\n")
    (tmp_path / "bad_topo_ref.yaml").write_text(scen + ops + "cluster: {topology: folder}\n")
    (tmp_path / "big_topo.yaml").write_text("name: t\nnodes: 100000000\n")
    (tmp_path / "inf_topo.yaml").write_text("name: t\nnodes: 4\nnode: {nvlink_GBps: .inf}\n")
    (tmp_path / "planes.yaml").write_text("name: t\nnodes: 4\nfabric: {planes: 3}\n")
    (tmp_path / "dup_topo.yaml").write_text("name: t\nnodes: 4\nnodes: 8\n")
    (tmp_path / "neg_topo.yaml").write_text("name: t\nnodes: -8\n")
    (tmp_path / "price_topo.yaml").write_text("name: t\nnodes: 4\nprices: {reference_Gbps: 1e-300, rate_exponent: 4}\n")
    (tmp_path / "nan.json").write_text('{"device": {"name": "x", "sms": NaN}}')
    (tmp_path / "tiny_peak.json").write_text(
        Path(PROFILE).read_text().replace('"hbm_TBps": 3.35', '"hbm_TBps": 1e-300')
    )
    (tmp_path / "dup.json").write_text('{"a": 1, "a": 2}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "trace.json").write_text('{"traceEvents": 5}')
    (tmp_path / "existing.txt").write_text("keep me\n")
    (tmp_path / "bad_batch.csv").write_text("op,dtype,M,N,K\ngemm,fp8,-5,64,64\n")
    (tmp_path / "ragged.csv").write_text("op,dtype,M,N,K\ngemm,fp8,64\n")
    (tmp_path / "batch.bin").write_bytes(b"op,dtype\n\xff\xfe\n")
    (tmp_path / "sched.txt").write_bytes(b"\xff\xfe0F0\n")
    (tmp_path / "far.txt").write_text("0F100000000 0B100000000\n")  # ran past a minute
    (tmp_path / "gaps.txt").write_text("5000F0 5000B0\n")  # listed all 5,000 missing stages
    default = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
    (tmp_path / "bad_sweep.yaml").write_text(f"base: {default}\ngrid: {{comm.sms: [20, x]}}\n")
    (tmp_path / "ok_sweep.yaml").write_text(f"base: {default}\ngrid: {{comm.sms: [20]}}\n")
    (tmp_path / "nobase_sweep.yaml").write_text("grid: {comm.sms: [20]}\n")
    (tmp_path / "comparison_sweep.yaml").write_text(f"base: {SCENARIO}\ngrid: {{seed: [1]}}\n")
    (tmp_path / "bad_study.yaml").write_text(f"base: {default}\nstudies: [{{key: a, grid: {{comm.smz: [1]}}}}]\n")
    (tmp_path / "plain.parquet").write_bytes(_plain_parquet())
    serve = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
    (tmp_path / "serve_derived.yaml").write_text(f"base: {serve}\nset: {{serve.duration_s: 5}}\n")
    return tmp_path


def _plain_parquet() -> bytes:
    import io

    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"a": [1]}).to_parquet(buf)
    return buf.getvalue()


def _ls(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


HAND: list[Any] = [
    # files that are not what they should be
    (["validate", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["validate", "folder"], "folder: is a folder"),
    (["validate", "pipe"], "pipe: not a regular file"),
    (["validate", "/dev/zero"], "/dev/zero: not a regular file"),
    (["validate", "missing.yaml"], "missing.yaml: no such scenario file"),
    (["validate", "deep.yaml"], "deep.yaml: nested deeper than"),
    (["validate", "dup.yaml"], "dup.yaml: name: duplicate key"),
    (["validate", "bomb.yaml"], "bomb.yaml: expands to more than"),
    (["validate", "self.yaml"], "self.yaml: a[0]: an alias refers to itself"),
    (["validate", "list.yaml"], "list.yaml: a scenario must be a mapping"),
    (["validate", "empty.yaml"], "empty.yaml: the file is empty: a scenario file is a mapping of keys"),
    (["validate", "inf.yaml"], "inf.yaml: ops.forward_ms[0]: Input should be a finite number"),
    (["validate", "nan.yaml"], "nan.yaml: p2p.bandwidth_GBps: Input should be a finite number"),
    (["validate", "zero_bw.yaml"], "zero_bw.yaml: p2p.bandwidth_GBps"),
    (["validate", "huge_n.yaml"], "huge_n.yaml: pipeline.microbatches: must be at most"),
    (["validate", "huge_pp.yaml"], "huge_pp.yaml: pipeline.pp: must be at most"),
    (["validate", "tokens.yaml"], "tokens.yaml: workload.tokens: must be at most"),
    (["validate", "bool_pp.yaml"], "bool_pp.yaml: pipeline.pp"),
    (["validate", "str_pp.yaml"], "str_pp.yaml: pipeline.pp"),
    (["validate", "neg_ops.yaml"], "neg_ops.yaml: ops.forward_ms"),
    (["validate", "unknown.yaml"], "unknown.yaml: pipelin: unknown key"),
    (["validate", "bad_topo_ref.yaml"], "folder: is a folder, not a topology file"),
    (["check", "trace", "--profile", "folder"], "--profile"),
    # a profile whose times overflow: a KeyError (an annotation's duration lost in a time of 1e300 s)
    (["check", "trace", "--profile", "tiny_peak.json"], "tiny_peak.json: the results overflow: annotations."),
    # check: the Markdown table's -o is checked before the table is built, naming the flag
    (["check", "deepep", "-o", "/proc/x.md"], "--output: cannot write in /proc"),
    (["check", "kernels", "-o", "existing.txt/x.md"], "--output: existing.txt is a file, not a folder"),
    (["check", "published", "-o", "/proc/x.md"], "--output: cannot write in /proc"),
    (["validate", "trace"], "trace: no such scenario file"),  # the checks are 'twin check trace' ...
    (["validate", "dualpipe.yaml", "--profile", PROFILE], "--profile: no such option"),
    (["run", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["run", "pipe"], "pipe: not a regular file"),
    (["run", "huge_n.yaml"], "huge_n.yaml: pipeline.microbatches"),
    (["run", SCENARIO, "-o", "existing.txt"], "--output: existing.txt is a file"),
    (["run", SCENARIO, "-o", "/proc/x"], "--output: cannot write in /proc"),
    (["run", SCENARIO, "-o", "existing.txt/sub"], "--output: existing.txt is a file, not a folder"),
    (["run", SCENARIO, "-o", "."], "--output"),
    (["run", "--quiet=maybe"], "--quiet: is a switch"),
    (["run", "--bogus"], "--bogus: no such option"),
    # report
    (["report", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["report", "pipe"], "pipe: not a regular file"),
    (["report", "missing.yaml"], "missing.yaml: no such scenario file"),
    (["report", "huge_n.yaml"], "huge_n.yaml: pipeline.microbatches"),
    (["report", SCENARIO, "-o", "existing.txt"], "--output: existing.txt is a file"),
    (["report", SCENARIO, "-o", "/proc/x"], "--output: cannot write in /proc"),
    (["report", SCENARIO, "-o", "existing.txt/sub"], "--output: existing.txt is a file, not a folder"),
    (["report", "--quiet=maybe"], "--quiet: is a switch"),
    (["report", "--bogus"], "--bogus: no such option"),
    # a serve scenario derived from a shipped one: the file given is named, not its base
    (["report", "serve_derived.yaml"], "error: serve_derived.yaml: serve: a serve scenario"),
    # (with a flag: not in tests/unit/test_validate_matches_run.py's corpus, since validate takes a serve file)
    (["run", "serve_derived.yaml", "--format", "json"], "error: serve_derived.yaml: serve: a serve scenario"),
    # sweeps, comparisons, co-design studies
    (["sweep", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["sweep", "pipe"], "pipe: not a regular file"),
    (["sweep", "bad_sweep.yaml"], 'bad_sweep.yaml: grid.comm.sms: "x"'),
    (["sweep", "nobase_sweep.yaml"], "nobase_sweep.yaml: base: give the base scenario file"),
    (["sweep", "comparison_sweep.yaml"], "has no training or serve section: a sweep runs training steps"),
    (["sweep", "ok_sweep.yaml", "-o", "existing.txt"], "--output: must be a Parquet file"),
    (["sweep", "ok_sweep.yaml", "-o", "/proc/x.parquet"], "--output: cannot write in /proc"),
    (["sweep", "ok_sweep.yaml", "-j", "2", "--scheduler", "tcp://127.0.0.1:9"], "--workers: local processes only"),
    (["compare", "existing.txt"], "existing.txt: cannot read it as Parquet"),
    (["compare", "plain.parquet"], "plain.parquet: not a twin sweep results file"),
    (["compare", "missing.parquet"], "missing.parquet"),
    (["compare", "plain.parquet", "--by", "speed"], "--by: unknown figure 'speed'"),
    (["compare", "plain.parquet", "--plot", "x.txt"], "--plot: unknown file extension"),
    (["report", "bad_study.yaml"], "bad_study.yaml: studies[0].grid.comm.smz"),
    # topologies
    (["topology", "show", "big_topo.yaml"], "big_topo.yaml: nodes: Input should be less than or equal to"),
    (["topology", "show", "inf_topo.yaml"], "inf_topo.yaml: node.nvlink_GBps: Input should be a finite number"),
    (["topology", "show", "planes.yaml"], "planes.yaml: fabric.planes: must divide"),
    (["topology", "show", "dup_topo.yaml"], "dup_topo.yaml: nodes: duplicate key"),
    (["topology", "show", "neg_topo.yaml"], "neg_topo.yaml: nodes"),
    (["topology", "show", "folder"], "folder: is a folder"),
    (["topology", "show", "/dev/zero"], "/dev/zero: not a regular file"),
    (["topology", "show", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["topology", "show", TOPO, "--format", "xml"], "--format: 'xml' is not one of"),
    # a price whose rate factor overflows: a traceback (OverflowError), or cost_usd: Infinity written
    (["topology", "show", "price_topo.yaml"], "price_topo.yaml: the results overflow: cost_usd is inf"),
    (["topology", "show", "price_topo.yaml", "--format", "json"], "from prices.reference_Gbps = 1e-300"),
    (["topology", "show"], "FILE: required argument is missing"),
    (["topology", "bogus"], "No such command 'bogus'"),
    # collective: sizes refused up front
    (
        [
            "collective",
            "alltoall",
            "--cluster",
            str(REPO / "topologies" / "isca-ft3-65536.yaml"),
            "--gpus",
            "65536",
            "--size-bytes",
            "1e6",
        ],
        "--gpus: this alltoall of 65,536 GPUs",
    ),
    (["collective", "alltoall", "--cluster", MPFT, "--gpus", "99999", "--size-bytes", "1"], "--gpus: need 2..2048"),
    (["collective", "bogus", "--cluster", MPFT, "--gpus", "16", "--size-bytes", "1"], "KIND: unknown collective"),
    # a hierarchical collective inside one node ran the ring (only the header's word changed)
    (
        ["collective", "allreduce", "--cluster", MPFT, "--gpus", "8", "--algorithm", "hierarchical"],
        "--algorithm: not used: 8 GPUs are one node, so a hierarchical allreduce is the ring inside it; give ring",
    ),
    # cut to 1 B, and a row of 0 elements printed
    (
        ["collective", "allreduce", "--cluster", MPFT, "--gpus", "16", "--size-bytes", "1.5"],
        "--size-bytes: a size is a whole number of bytes, got 1.5",
    ),
    (
        ["collective", "alltoall", "--cluster", MPFT, "--gpus", "16", "--size-bytes", "1", "--algorithm", "x"],
        "--algorithm: unknown algorithm",
    ),
    (["collective", "alltoall", "--cluster", "folder", "--gpus", "16", "--size-bytes", "1"], "folder: is a folder"),
    (["collective", "alltoall", "--gpus", "16", "--size-bytes", "1"], "--topology: required option is missing"),
    (
        ["collective", "allreduce", "--cluster", MPFT, "--gpus", "16", "-b", "1M", "-e", "8M", "-f", "2", "-i", "3M"],
        "-i: not used with -f 2",
    ),
    # schedules
    (["schedules", "show", "1f1b", "--pp", "4000", "-n", "100000"], "--microbatches: the schedule's action count"),
    (["schedules", "show", "1f1b", "--format", "xml"], "--format: 'xml' is not one of"),
    (["schedules", "show", "pipedream"], "pipedream"),
    (["schedules", "show", "dualpipe", "--pp", "7"], "--pp: dualpipe needs an even PP"),
    (["schedules", "compare", "--schedules", ","], "--schedules: give one or more"),
    (["schedules", "compare", "--schedules", "1f1b,1f1b"], "--schedules: a schedule is listed twice"),
    (["schedules", "compare", "--schedules", "pipedream"], "--schedules: unknown schedule 'pipedream'"),
    (["schedules", "compare", "--p2p-bandwidth", "0"], "--p2p-bandwidth: must be"),
    (["schedules", "compare", "--w", "5"], "--w"),
    # schedules: a flag the chosen schedules do not use is refused, not ignored
    (["schedules", "show", "1f1b", "--virtual-stages", "3"], "--virtual-stages: not used by 1f1b"),
    (["schedules", "check", "zb1p", "--virtual-stages", "3"], "--virtual-stages: not used by zb1p"),
    (["schedules", "compare", "--schedules", "1f1b,dualpipe", "--virtual-stages", "4"], "--virtual-stages: not used"),
    (["schedules", "compare", "--schedules", "1f1b,gpipe", "--w", "0.5"], "--w: not used by 1f1b, gpipe"),
    (["schedules", "compare", "--schedules", "1f1b,zb1p", "--fb", "2"], "--fb: not used by 1f1b, zb1p"),
    (["schedules", "compare", "--p2p-bandwidth", "5"], "--p2p-bandwidth: not used: no bytes are sent"),
    (["schedules", "plot", "gpipe", "-o", "p.png", "--fb", "2"], "--fb: not used by gpipe"),
    (["schedules", "trace", "1f1b", "-o", "t.json", "--w", "0.5"], "--w: not used by 1f1b"),
    (["schedules", "trace", "1f1b", "-o", "t.json", "--virtual-stages", "4"], "--virtual-stages: not used by 1f1b"),
    # schedules: finite flags whose products overflow are refused before anything is printed
    (
        ["schedules", "compare", "--p2p-bytes", "1e18", "--p2p-bandwidth", "1e-300", "--format", "json"],
        "--p2p-bytes: 1e+18 bytes at --p2p-bandwidth 1e-300: a transfer of inf time units, over the 1e+12",
    ),
    (["schedules", "plot", "1f1b", "-o", "x.txt"], "--output: unknown file extension '.txt'"),
    (["schedules", "plot", "1f1b", "-o", "noext"], "--output: unknown file extension none"),
    (["schedules", "plot", "1f1b", "-o", "folder"], "--output: folder is a folder"),
    (["schedules", "plot", "1f1b", "-o", "/proc/x.png"], "--output: cannot write in /proc"),
    (["schedules", "plot", "1f1b", "-o", "existing.txt/x.png"], "--output: existing.txt is a file, not a folder"),
    (["schedules", "trace", "1f1b", "-o", "folder"], "--output: folder is a folder"),
    (["schedules", "trace", "1f1b", "-o", "/dev/null"], "--output: /dev/null exists and is not a regular file"),
    (["schedules", "check", "--file", "/dev/zero"], "--file: /dev/zero is not a regular file"),
    (["schedules", "check", "--file", "folder"], "--file: folder is a folder"),
    (["schedules", "check", "--file", "sched.txt"], "sched.txt: not a UTF-8"),
    (["schedules", "check"], "NAME: give a schedule name or --file"),
    (["schedules", "check", "--file", "far.txt"], "far.txt: line 1: 0F100000000: stage 0, micro-batch 100000000;"),
    (
        ["schedules", "check", "--file", "gaps.txt"],
        "gaps.txt: stages: stage(s) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 4,990 ",
    ),
    (["schedules", "trace", "1f1b", "-o", "t.png"], "--output: t.png: a trace is JSON: name it .json"),
    # W bounds B only where a schedule splits B: --b 0.5 was refused for 1f1b ("W=1.0 > B=0.5"), --w with it too
    (["schedules", "compare", "--schedules", "1f1b,zb1p", "--b", "0.5"], "--w: W is part of B and cannot exceed it"),
    # collective: ECMP's seed where no flow meets a switch (the output was the same for every seed)
    (
        [
            "collective",
            "allreduce",
            "--topology",
            str(REPO / "topologies" / "deepseek-v3-mpft.yaml"),
            "--gpus",
            "8",
            "--seed",
            "3",
        ],
        "--seed: not used: 8 GPUs are one node",
    ),
    (  # 32 nodes: one leaf switch per plane of the 8-plane fat tree (the rows were the same for every seed)
        [
            "collective",
            "allreduce",
            "--topology",
            str(REPO / "topologies" / "deepseek-v3-mpft.yaml"),
            "--gpus",
            "256",
            "--seed",
            "3",
        ],
        "--seed: not used: GPUs 0..255 sit under one leaf switch per plane",
    ),
    # MoE
    # a node limit that binds neither given nor by default: the output was the default's, to the bit
    (["alltoall", "--ep", "16", "--n-limited-groups", "2"], "--n-limited-groups: not used: neither M = 2 nor"),
    (["balance", "--ep", "8", "--n-limited-groups", "1"], "--n-limited-groups: not used: EP 8 is one node"),
    # the same figures, bit for bit, at EP 1, 8, 16 and 32: M = 4 limits no token within 4 nodes
    (["balance", "--ep", "16"], "--ep: not used: EP 16 spans 2 node(s), and M = 4 limits no token there"),
    (["balance", "--ep", "32"], "--ep: not used: EP 32 spans 4 node(s), and M = 4 limits no token there"),
    (["chunk", "--ep", "8", "--n-limited-groups", "1"], "--n-limited-groups: not used: EP 8 is one node"),
    (["chunk", "--kind", "weight", "--interference", "none"], "--interference: not used by --kind weight"),
    (["alltoall", "--sms", "200"], "--sms: must be in 0..131"),
    (["alltoall", "--sms", "3"], "--sms: must be an even number"),
    (["alltoall", "--sms", ","], "--sms: give one or more"),
    (["alltoall", "--sms", "4,,8"], "--sms: empty item"),
    (["alltoall", "--sms", "4,x"], "--sms: must be a whole number"),
    (["alltoall", "--sms", "0"], "--sms: 0 SMs"),
    (["alltoall", "--ep", "7"], "--ep"),
    (["alltoall", "--ep", "256", "--nodes", "2"], "--ep: EP 256 is larger than the cluster"),
    (["alltoall", "--nodes", "1"], "--nodes: 1 node(s) hold 8 GPUs, fewer than EP 64; give --ep too"),  # (blamed --ep)
    (
        ["chunk", "--ep", "1048576"],
        "--ep: routing 4,096 tokens on each of 1048576 GPUs needs about",
    ),  # (blamed --tokens)
    (["alltoall", "--experts", "100"], "--n-routed-experts"),
    (["alltoall", "--n-activated-experts", "300"], "--n-activated-experts"),
    (["alltoall", "--routing", "zipf"], "--routing: unknown routing"),
    (["alltoall", "--routing", "replay"], "--routing-table: replay needs a routing table"),
    # alltoall: a flag of another routing is refused, not ignored
    (["alltoall", "--skew-alpha", "2"], "--skew-alpha: not used by --routing balanced"),
    (["alltoall", "--routing", "random", "--dirichlet", "0.5"], "--dirichlet: not used by --routing random"),
    (["alltoall", "--routing", "skewed", "--dirichlet", "0.5", "--skew-alpha", "2"], "--skew-alpha: not used with"),
    (["alltoall", "--routing-table", "ragged.csv"], "--routing-table: not used by --routing balanced"),
    (["alltoall", "--seed", "5"], "--seed: not used by --routing balanced"),
    (["alltoall", "--routing-table", "folder", "--routing", "replay"], "--routing-table: folder is a folder"),
    (["alltoall", "--plot", "x.txt"], "--plot: unknown file extension"),
    (["alltoall", "--plot", "/proc/x.png"], "--plot: cannot write"),
    # a chart of one point: an x axis of -0.04 to 0.04 SMs, no GEMM line
    (["alltoall", "--plot", "one.png"], "--plot: draws an SM sweep: give two or more --sms values, not one (20)"),
    (["alltoall", "--coprocessor", "--plot", "cp.png"], "--plot: not used with --coprocessor (no SM is set aside"),
    (["alltoall", "--profile", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["alltoall", "--profile", "nan.json"], "nan.json: device.sms: NaN is not a number"),
    (["alltoall", "--profile", "dup.json"], "dup.json: duplicate key 'a'"),
    (["alltoall", "--profile", "deep.json"], "deep.json: JSON nested too deeply"),
    (["alltoall", "--profile", "list.json"], "list.json: a profile is a JSON object"),
    (["alltoall", "--profile", "bad.json"], "bad.json: malformed JSON"),
    (["alltoall", "--profile", "pipe"], "--profile: pipe is not a regular file"),
    (["alltoall", "--cluster", "planes.yaml"], "planes.yaml: fabric.planes"),
    (["alltoall", "--cluster", MPFT, "--nodes", "4"], "--nodes: give --nodes or --topology"),
    (["balance", "--steps", "1000000", "--tokens-per-step", "1000000"], "--steps"),
    (["balance", "--topk", "0"], "--n-activated-experts"),
    # balance: a flag the chosen mode does not read is refused, not ignored
    (["balance", "--format", "json", "--every", "5"], "--every: not used with --format json"),
    (["balance", "--dirichlet", "0.5", "--skew-alpha", "2"], "--skew-alpha: not used with --dirichlet"),
    # model show: the argument is named (it read 'model.config', a scenario's key)
    (["model", "show", "folder"], "SPEC: 'folder' is neither a shipped model"),
    (["model", "show", "missing.json"], "SPEC: 'missing.json' is neither a shipped model"),
    (["model", "show", "list.json"], "list.json: a model config must be a JSON object"),
    # chunk
    (["chunk", "--layers", "100"], "--layers-per-stage: layers"),
    (["chunk", "--sms", "200"], "--sms: must be in 0..131"),
    (["chunk", "--sms", "0"], "--sms: 0 SMs"),
    (["chunk", "--ep", "7"], "--ep"),
    (["chunk", "--ep", "1000000"], "GiB"),
    (["chunk", "--interference", "foo"], "--interference: unknown source"),
    (["chunk", "--routing", "x"], "--routing: unknown routing"),
    (["chunk", "--kind", "bad"], "--kind: 'bad' is not one of"),
    (["chunk", "--profile", "folder"], "--profile: folder is a folder"),
    (["chunk", "--profile", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["chunk", "--model-config", "/dev/zero"], "--model-config: /dev/zero is not a regular file"),
    (["chunk", "--model-config", "garbage.bin"], "garbage.bin"),
    (["chunk", "--model-config", "list.json"], "list.json"),
    (["chunk", "--trace-out", "folder"], "--trace-out: folder is a folder"),
    (["chunk", "--trace-out", "/proc/x.json"], "--trace-out: cannot write in /proc"),
    # chunk: a flag the chosen routing, SM split or layers do not use is refused, not ignored
    (["chunk", "--seed", "3"], "--seed: not used by --routing balanced"),
    (["chunk", "--routing-table", SCENARIO], "--routing-table: not used by --routing balanced"),
    (["chunk", "--skew-alpha", "2"], "--skew-alpha: not used by --routing balanced"),
    (["chunk", "--routing", "random", "--dirichlet", "0.5"], "--dirichlet: not used by --routing random"),
    (["chunk", "--routing", "skewed", "--dirichlet", "0.5", "--skew-alpha", "2"], "--skew-alpha: not used with"),
    (["chunk", "--routing", "skewed", "--skew-alpha", "-1"], "--skew-alpha: must be"),
    (["chunk", "--coprocessor", "--sms", "30"], "--sms: not used with --coprocessor"),
    (
        ["chunk", "--first-layer", "0", "--layers", "3", "--ep", "8"],
        "--ep: not used: the chunk's layers 0..2 are dense",
    ),
    (
        ["chunk", "--first-layer", "0", "--layers", "1", "--routing", "random"],
        "--routing: not used: the chunk's layers",
    ),
    (["chunk", "--model-config", LLAMA, "--interference", "none"], "--interference: not used: the chunk's layers"),
    # calibrate
    (["calibrate", "show", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["calibrate", "show", "folder"], "PROFILE: folder is a folder"),
    (["calibrate", "show", "pipe"], "PROFILE: pipe is not a regular file"),
    (["calibrate", "show", "nan.json"], "nan.json: device.sms: NaN"),
    (["calibrate", "show", "list.json"], "list.json: a profile is a JSON object"),
    (["calibrate", "show", "missing.json"], "PROFILE: no such profile: missing.json"),
    (["calibrate", "import-trace", "folder"], "TRACE: folder is a folder"),
    (["calibrate", "import-trace", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["calibrate", "import-trace", "trace.json"], "trace.json: traceEvents"),
    (["calibrate", "import-trace", "list.json"], "list.json: traceEvents"),
    (["calibrate", "import-trace", PROFILE], "traceEvents"),
    (["calibrate", "import-trace", PROFILE, "--compute-sms", "200"], "--compute-sms: the H800 has 132 SMs"),
    (["calibrate", "import-trace", PROFILE, "--device", "TPU"], "--device: no datasheet"),
    (["calibrate", "import-trace", PROFILE, "-o", "folder"], "--output: folder is a folder"),
    (["calibrate", "datasheet", "-o", "/proc/x.json"], "--output: cannot write in /proc"),
    (["calibrate", "datasheet", "--name", "X1"], "no datasheet for 'X1'"),
    (["calibrate", "run", "--preset", "huge"], "--preset: unknown preset"),
    (["calibrate", "run", "--device", "tpu"], "--device: unknown device"),
    (["calibrate", "run", "--comm-samples", "folder"], "--comm-samples: folder is a folder"),
    (["calibrate", "import-nccl-tests", "folder"], "LOGS: folder is a folder"),
    (["calibrate", "import-nccl-tests", NCCL_LOG, "--profile", "garbage.bin"], "garbage.bin: not a UTF-8"),
    (["calibrate", "import-measurements", ".", "-o", "x.json"], "--device"),
    (["calibrate", "predict", "--profile", "folder"], "--profile: folder is a folder"),
    (["calibrate", "predict", "--profile", PROFILE, "--batch", "bad_batch.csv"], "bad_batch.csv: row 2, column M"),
    (["calibrate", "predict", "--profile", PROFILE, "--batch", "ragged.csv"], "ragged.csv: row 2"),
    (
        ["calibrate", "predict", "--profile", PROFILE, "--batch", "bad_batch.csv", "--format", "table"],
        "--format: --batch writes csv (the default) or json, not a table",
    ),
    (["calibrate", "predict", "--profile", PROFILE, "--batch", "batch.bin"], "batch.bin: not a UTF-8"),
    (["calibrate", "predict", "--profile", PROFILE, "--batch", "folder"], "--batch: folder is a folder"),
    (["calibrate", "predict", "--profile", PROFILE, "--op", "memory"], "--bytes"),
    (["calibrate", "predict", "--profile", PROFILE, "--op", "bogus"], "--op: unknown op 'bogus'"),
    # offered, then sent to the communication fit: "fewer than 2 interference samples" of a profile with 14
    (["calibrate", "predict", "--profile", H800, "--op", "interference", "--bytes", "1e6"], "--op: unknown op 'inte"),
    (["calibrate", "predict", "--profile", H800, "--op", "chunk", "--bytes", "1e6"], "--op: unknown op 'chunk'"),
    (["calibrate", "predict", "--profile", PROFILE, "--format", "xml"], "--format: 'xml' is not one of"),
    (["calibrate", "predict"], "--profile: required option is missing"),
    # usage errors from the parser itself
    (["schedules", "show", "1f1b", "--pp"], "--pp: needs a value"),
    (["schedules", "show", "1f1b", "extra"], "unexpected extra argument"),
    (["nosuch"], "No such command 'nosuch'"),
    (["alltoall", "--coprocessor=yes"], "--coprocessor: is a switch"),
]


@pytest.mark.parametrize("args,expected", [pytest.param(a, e, id=" ".join(a)[:80]) for a, e in HAND] + numeric_cases())
def test_bad_input_one_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_in_one_line(args, expected, files, capsys)


def ran_cleanly(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``twin ARGS`` exits 0 with no traceback; what it printed, unwrapped (rich folds long lines)."""
    try:
        main(args)
    except SystemExit as done:
        assert not done.code, capsys.readouterr().err
    printed, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return printed.replace("\n", "")


def refused_in_one_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``twin ARGS`` exits 2 with one stderr line holding ``expected``, no traceback, nothing on stdout,
    and leaves ``files`` as they were (the assertions of both bad-input tables)."""
    before = _ls(files)
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert info.value.code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert _ls(files) == before


# Finite inputs whose figures overflow (a time of 1e300 s printed with exit 0), and a flag named as given
# (it named --maxbytes or --layers-per-stage): the whole line. The topologies are h100-ib-1024's with one
# bandwidth at 1e-300, written by the test (``_edge_topologies``).
OVERFLOW = "use values nearer to real ones"
COLLECTIVE = ["collective", "allreduce", "--gpus", "64", "-b", "1G", "-e", "1G"]
EXACT: list[tuple[list[str], str]] = [
    (
        [*COLLECTIVE, "--topology", "nic.yaml"],
        f"the results overflow: time_us is 4.22786e+306, from nic.yaml: node.nic_Gbps = 1e-300; {OVERFLOW}",
    ),
    (
        [*COLLECTIVE, "--topology", "link.yaml", "--format", "json"],
        f"the results overflow: time_us is 4.22786e+306, from link.yaml: fabric.link_Gbps = 1e-300; {OVERFLOW}",
    ),
    (
        [*COLLECTIVE, "--topology", "pcie.yaml"],
        f"the results overflow: time_us is 2.64241e+305, from pcie.yaml: node.pcie_GBps = 1e-300; {OVERFLOW}",
    ),
    (
        ["alltoall", "--topology", "nic.yaml", "--ep", "64", "--format", "json"],
        f"the results overflow: dispatch.time_s is 8.47802e+299, from nic.yaml: node.nic_Gbps = 1e-300; {OVERFLOW}",
    ),
    (
        ["alltoall", "--topology", "link.yaml", "--ep", "64"],
        f"the results overflow: dispatch.time_s is 1.1776e+295, from link.yaml: fabric.link_Gbps = 1e-300; {OVERFLOW}",
    ),
    (
        ["alltoall", "--topology", "pcie.yaml", "--ep", "64", "--sms", "16,20", "--plot", "sweep.png"],
        "the results overflow: sweep[0].dispatch.time_s is 1.05975e+299, from pcie.yaml: node.pcie_GBps = 1e-300; "
        + OVERFLOW,
    ),
    (
        ["alltoall", "--rdma-channel-GBps", "1e-300", "--format", "json"],
        f"the results overflow: dispatch.time_s is 1.05972e+298, from --rdma-channel-GBps = 1e-300; {OVERFLOW}",
    ),
    (
        ["alltoall", "--nvlink-channel-GBps", "1e-300"],
        f"the results overflow: dispatch.time_s is 2.11943e+298, from --nvlink-channel-GBps = 1e-300; {OVERFLOW}",
    ),
    (
        ["alltoall", "--sms", "4,8", "--rdma-channel-GBps", "1e-300", "--nvlink-channel-GBps", "1e-300"],
        "the results overflow: sweep[0].dispatch.time_s is 1.05972e+299, from --rdma-channel-GBps = 1e-300, "
        f"--nvlink-channel-GBps = 1e-300; {OVERFLOW}",
    ),
    (
        [*COLLECTIVE[:4], "--topology", "pcie.yaml", "--size-bytes", "1e-300"],
        "--size-bytes: must be a finite number in [1, 1e+18], got '1e-300'",
    ),
    (
        [*COLLECTIVE[:4], "--topology", "pcie.yaml", "--size-bytes", "0.5"],
        "--size-bytes: must be a finite number in [1, 1e+18], got '0.5'",
    ),
    (
        ["chunk", "--layers", "4", "--first-layer", "1e3"],
        "--first-layer: must be in 0..61 (the model's 61 layers and its MTP layer), got 1000",
    ),
    (
        ["chunk", "--model-config", LLAMA, "--first-layer", "32", "--layers", "1"],
        "--first-layer: must be in 0..31 (the model's 32 layers), got 32",
    ),
    (
        ["chunk", "--layers", "4", "--first-layer", "60"],
        "--layers-per-stage: layers 60..63 are not in the model's 61 layers",
    ),
]


def _edge_topologies(folder: Path) -> None:
    """h100-ib-1024 with its NIC, fabric link or PCIe bandwidth at 1e-300: nic.yaml, link.yaml, pcie.yaml."""
    text = (REPO / "topologies" / "h100-ib-1024.yaml").read_text()
    edits = {
        "nic.yaml": ("  nic_Gbps: 400\n", "  nic_Gbps: 1.0e-300\n"),
        "link.yaml": ("  kind: ft2\n", "  kind: ft2\n  link_Gbps: 1.0e-300\n"),
        "pcie.yaml": ("  pcie_GBps: 64\n", "  pcie_GBps: 1.0e-300\n"),
    }
    for name, (old, new) in edits.items():
        assert text.count(old) == 1, old
        (folder / name).write_text(text.replace(old, new))


@pytest.mark.parametrize("args,expected", [pytest.param(a, e, id=" ".join(a)[:80]) for a, e in EXACT])
def test_bad_input_exact_line(args: list[str], expected: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Overflowing figures of ``twin collective`` and ``twin alltoall`` (exit 0 before, with a numpy
    warning) and flags named as the user gave them: exit 2, the one line exactly, nothing printed."""
    _edge_topologies(files)
    before = _ls(files)
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert err == f"error: {expected}\n"
    assert out == ""
    assert _ls(files) == before


def test_at_least_150_cases() -> None:
    assert len(HAND) + len(numeric_cases()) >= 150


def test_every_numeric_flag_is_bounded() -> None:
    """Every int/float option of every command has a Number parser (type, finiteness, range)."""
    missing = [
        f"{' '.join(path)} {flag}"
        for path, callback in commands()
        for flag, _, parser in numeric_options(callback)
        if not isinstance(parser, Number)
    ]
    assert not missing, f"numeric flags without parser=Int(..)/Float(..): {missing}"


def test_numbers_in_scientific_notation_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schedules", "show", "1f1b", "--pp", "4", "-n", "8e0", "--format", "json"])
    assert info.value.code == 0, capsys.readouterr().err
    from sim.yamlio import parse_yaml

    assert parse_yaml("a: 1e6\nb: 1.5e3\nc: 2E-3\n") == {"a": 1_000_000, "b": 1500.0, "c": 0.002}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["chunk", "--profile", "models/meta-llama__Llama-3.1-8B.config.json"],
            "meta-llama__Llama-3.1-8B.config.json: device: required key is missing (read as a calibration "
            "profile: the file --profile names)",
        ),
        (
            ["alltoall", "--topology", "scenarios/clusters/llama3.1-8b-h100.yaml"],
            "llama3.1-8b-h100.yaml: nodes: required key is missing (read as a topology: the file --topology names)",
        ),
        (
            ["chunk", "--model-config", "calibrate/profiles/h800.json"],
            "(read as a model config: the file --model-config names)",
        ),
    ],
)
def test_a_file_of_the_wrong_kind_says_which_flag_named_it(
    args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of another kind given to a flag was refused naming only that file and a key it lacks."""
    with pytest.raises(SystemExit) as info:
        main([args[0], *[str(REPO / a) if "/" in a else a for a in args[1:]]])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and err.rstrip().endswith(line)
