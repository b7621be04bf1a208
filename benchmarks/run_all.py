"""Every timing the README and docs quote, measured in one run and recorded in one file.

    python benchmarks/run_all.py                 # every figure (about 10 minutes on 2 cores)
    python benchmarks/run_all.py --only step_shared_s help_s   # some, merged into the file
    python benchmarks/run_all.py --long          # also the 1,000-point sweep and its --best 10 (about 18 minutes more)

Writes ``benchmarks/results.json``: for each figure its value, unit, target (where an issue set one),
how it was measured, and the revision, date and CPU count of the run; then sets every quote of a
figure in the README and the docs to the new value. A quote is ``55 s (`report_default_s`)``: the
number, its unit, then the figure's name in backticks and parentheses;
``tests/unit/test_quoted_timings.py`` checks every quote against the file, so a figure typed by hand
or left stale fails the suite. Run it on a quiet machine: each figure is a wall
time, and on 2 cores anything else running shows in it.

How each figure is taken:

* whole-process figures (``twin ...``): a fresh Python process each time, from start to exit, the
  median of several runs after one warm-up (so the OS's file cache and Python's bytecode cache are
  warm, as for a user's second command; PYTHONDONTWRITEBYTECODE is lifted for these runs);
* in-process figures (``step_*``, ``chunk_pair_ms``, ``schedules_five_s``, ``routing_*``,
  ``network_*``): the call alone, timed inside a fresh process (imports excluded; memo caches start
  empty, as in a user's run), the median of several processes;
* reports from nothing: one run into an empty folder.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sim.compiled import CACHE, OFF

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str  # "s" or "ms"
    target: float | None  # the target in the same unit; None where none was set
    how: str


# Whole-process figures run as an installed twin runs: Python writes its bytecode cache on the first
# import (``pip install`` also compiles it), so a session that sets PYTHONDONTWRITEBYTECODE (this
# machine's does) would otherwise time the compilation of some 900 modules, about 0.9 s, in every run.
# Every figure but the ``*_compiled_*`` ones times the sources, whatever build of the event loop the
# user's cache holds (TWIN_COMPILED=0; sim.compiled); those load a build made for the run (_with_build).
_AS_INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {OFF: "0"}


class Unavailable(Exception):
    """A figure this machine cannot take (its line says why); the file keeps its last value."""


@functools.cache
def _compiled_cache() -> tuple[str, float]:
    """A fresh cache folder holding a build of these sources (``twin compile`` into it, whole process,
    from nothing: mypyc, then its bit-for-bit checks) and the seconds that took; removed at exit."""
    folder = tempfile.mkdtemp(prefix="twin-compiled-")
    atexit.register(shutil.rmtree, folder, True)
    t0 = time.perf_counter()
    env = {**_AS_INSTALLED, CACHE: folder}
    done = subprocess.run([sys.executable, "-m", "sim", "compile", "-q"], cwd=ROOT, capture_output=True, env=env)
    if done.returncode != 0:  # (no mypy, no C compiler, ...: twin compile's one line)
        why = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"]
        raise Unavailable(f"twin compile failed: {why[-1]}")
    return folder, time.perf_counter() - t0


def _with_build() -> dict[str, str]:
    """The environment of a run that loads the build of :func:`_compiled_cache`."""
    return {OFF: "1", CACHE: _compiled_cache()[0]}


def _twin(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    run_env = _AS_INSTALLED | (env or {})
    subprocess.run([sys.executable, "-m", "sim", *args], cwd=cwd, check=True, capture_output=True, env=run_env)
    return time.perf_counter() - t0


def _whole(args: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median whole-process seconds of ``twin ARGS`` (``{out}`` in ARGS: a fresh folder each run), after
    one run that warms the file and bytecode caches."""
    times = []
    for i in range(runs + 1):  # the first run warms the file cache and is not counted
        with tempfile.TemporaryDirectory() as tmp:
            wall = _twin([a.replace("{out}", tmp) for a in args], ROOT, env)
        if i:
            times.append(wall)
    return statistics.median(times)


def _inprocess(code: str, runs: int, env: dict[str, str] | None = None) -> float:
    """Median over ``runs`` fresh processes of the seconds ``code`` prints last (it times its call)."""
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}", OFF: "0"} | (env or {}),
        )
        times.append(float(done.stdout.split()[-1]))
    return statistics.median(times)


def _step(fidelity: str, contention: str) -> str:
    return (
        "import tempfile, time\nfrom pathlib import Path\nfrom bench_step import scenario\n"
        "from sim.config import load_scenario\nfrom sim.run import simulate_training\n"
        f"sc = load_scenario(scenario({fidelity!r}, 'balanced', Path(tempfile.mkdtemp()), contention={contention!r}))\n"
        "t = time.perf_counter()\nsimulate_training(sc)\nprint(time.perf_counter() - t)\n"
    )


def _scenario_step(path: str) -> str:
    """A shipped scenario's step, in-process (its file loaded, the step simulated and accounted)."""
    return (
        "import time\nfrom sim.config import load_scenario\nfrom sim.run import simulate_training\n"
        f"sc = load_scenario({path!r})\nt = time.perf_counter()\nsimulate_training(sc)\n"
        "print(time.perf_counter() - t)\n"
    )


def _scenario_figure(path: str) -> tuple[str, float | None, Callable[[], float], str]:
    def measure() -> float:
        return _inprocess(_scenario_step(path), 3)

    return ("s", 5.0, measure, f"{path}: in-process, median of 3 processes")


# issue 19: the step of every shipped scenario of another model or layout, under 5 s each
SCENARIO_STEPS = {
    "step_llama405_8k_s": "scenarios/llama3-405b-h100-8192-tp8pp16.yaml",
    "step_llama405_16k_s": "scenarios/llama3-405b-h100-16384-tp8pp16.yaml",
    "step_llama405_cp_s": "scenarios/llama3-405b-h100-16384-tp8cp16pp16.yaml",
    "step_qwen235_s": "scenarios/qwen3-235b-h100-256-tp2pp8vp4ep32.yaml",
    "step_qwen235_overlap_s": "scenarios/qwen3-235b-h100-256-tp2pp8vp4ep32-overlap.yaml",
    "step_dsv3_h100_s": "scenarios/dsv3-h100-1024-tp2pp8vp4ep64.yaml",
}


CHUNK = (
    "import time\nfrom sim.chunk.build import ChunkConfig, build_chunk\n"
    "setup = build_chunk(ChunkConfig())\nt = time.perf_counter()\nsetup.timer.pair(setup.stage, setup.stage)\n"
    "print((time.perf_counter() - t) * 1e3)\n"
)
SCHEDULES = (
    "import contextlib, io, time\nfrom bench_schedules import bench\nfrom sim.pipeline.execute import P2P\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n    total = bench(16, 120, 3, P2P(58_720_256, 50e9, 3.7e-6))\n"
    "print(total)\n"
)


def _scaling(gpus: int) -> float:
    try:
        from benchmarks.bench_scaling import time_size
    except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on the path, not the checkout
        from bench_scaling import time_size  # type: ignore[no-redef,import-not-found]

    return time_size(gpus)["wall_s"]


def _routing(gate: str) -> str:
    """Warm, as docs/routing.md states the target: one call to compile or load the numba samplers, then
    the best of 3 calls in the same process."""
    call = f"route_layers(MoESpec(), 4096, 58, Gating({gate!r}), 0)"
    return (
        "import time\nfrom sim.moe.alltoall import route_layers\nfrom sim.moe.gating import Gating\n"
        f"from sim.moe.spec import MoESpec\n{call}\nbest = float('inf')\nfor _ in range(3):\n"
        f"    t = time.perf_counter()\n    {call}\n    best = min(best, time.perf_counter() - t)\nprint(best)\n"
    )


def _routed_run(gate: str) -> float:
    """``twin run --format json`` of the default scenario with ``workload.routing: GATE`` (a derived
    scenario in a temporary folder), whole process, median of 3."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{gate}.yaml"
        base = ROOT / "scenarios" / "deepseek_v3_pretrain.yaml"
        path.write_text(json.dumps({"base": str(base), "name": gate, "set": {"workload.routing": gate}}))  # (YAML)
        return _whole(["run", str(path), "--format", "json"], 3)


# The host's own speed when the figures were taken: a plain Python loop, nothing of the twin. This
# machine's speed moves by up to 2x from day to day and within a run (a shared host: another tenant's
# load takes CPU time from it), and every figure moves with it; the run records the loop once as a
# figure and again just before each figure (its ``host_loop_s`` field in results.json), and figures
# of two runs compare after dividing each by its loop.
HOST_LOOP = (
    "import time\nt = time.perf_counter()\ns = 0\nfor i in range(10_000_000):\n    s += i\n"
    "print(time.perf_counter() - t)\n"
)

FIGURES: dict[str, tuple[str, float | None, Callable[[], float], str]] = {
    "host_loop_s": (
        "s",
        None,
        lambda: _inprocess(HOST_LOOP, 5),
        "the host's speed: a Python loop of 10,000,000 integer additions, median of 5 processes",
    ),
    "help_s": ("s", 0.5, lambda: _whole(["--help"], 5), "twin --help, whole process, median of 5"),
    "run_json_s": (
        "s",
        1.5,
        lambda: _whole(["run", "--format", "json"], 3),
        "twin run --format json (default step; prints JSON, writes nothing), whole process, median of 3",
    ),
    "run_s": (
        "s",
        3.0,
        lambda: _whole(["run", "-q", "-o", "{out}"], 3),
        "twin run -q with every output, whole process, median of 3",
    ),
    **{
        f"run_{gate}_s": (
            "s",
            None,
            functools.partial(_routed_run, gate),
            f"twin run --format json of the default scenario with workload.routing: {gate} (one micro-batch "
            "routed through the 58 layers, each layer's DeepEP phases timed alone), whole process, median of 3",
        )
        for gate in ("random", "skewed")
    },
    "compile_s": (
        "s",
        None,
        lambda: _compiled_cache()[1],
        "twin compile from nothing (mypyc builds the event loop's modules, then each of its checks, run from the "
        "sources and compiled, must print the same figures), whole process, one run",
    ),
    "run_json_compiled_s": (
        "s",
        None,
        lambda: _whole(["run", "--format", "json"], 3, _with_build()),
        "twin run --format json (default step) loading the build of twin compile, whole process, median of 3",
    ),
    "step_shared_compiled_s": (
        "s",
        None,
        lambda: _inprocess(_step("representative", "shared"), 5, _with_build()),
        "default step, representative, contention shared, loading the build of twin compile: simulate_training "
        "in-process, median of 5 processes",
    ),
    "step_isolated_s": (
        "s",
        0.4,
        lambda: _inprocess(_step("representative", "isolated"), 5),
        "default step, representative, contention isolated: simulate_training in-process, median of 5 processes",
    ),
    "step_shared_s": (
        "s",
        1.0,
        lambda: _inprocess(_step("representative", "shared"), 5),
        "default step, representative, contention shared: simulate_training in-process, median of 5 processes",
    ),
    "step_1k_s": (
        "s",
        None,
        lambda: _scaling(1024),
        "DeepSeek-V3 representative step at 1,024 GPUs (batch halved), shared: in-process, one fresh process",
    ),
    "step_16k_s": (
        "s",
        None,
        lambda: _scaling(16384),
        "scenarios/codesign/mpft-16384.yaml (target: within 2x of step_shared_s), in-process, one fresh process",
    ),
    "step_64k_s": (
        "s",
        10.0,
        lambda: _scaling(65536),
        "scenarios/codesign/ft3-65536.yaml (ISCA'25 Table 3 FT3, batch x32), in-process, one fresh process",
    ),
    **{name: _scenario_figure(path) for name, path in SCENARIO_STEPS.items()},
    "plan_layouts_s": (
        "s",
        120.0,
        lambda: _whole(["plan", "layouts", "scenarios/deepseek_v3_pretrain.yaml", "-q", "-j", "2", "-o", "{out}"], 1),
        "twin plan layouts on the default scenario: every layout that fits bounded, steps simulated until the 10 "
        "fastest are exact, on 2 workers, whole process, one run",
    ),
    "step_per_gpu_s": (
        "s",
        60.0,
        lambda: _inprocess(_step("per-gpu", "shared"), 1),
        "default step, per-GPU fidelity, contention shared: simulate_training in-process, one process",
    ),
    "chunk_pair_ms": (
        "ms",
        20.0,
        lambda: _inprocess(CHUNK, 3),
        "the 4-layer F&B pair of DeepSeek's trace, first timing (DeepEP phases simulated), median of 3 processes",
    ),
    "schedules_five_s": (
        "s",
        1.0,
        lambda: _inprocess(SCHEDULES, 3),
        "the five schedules (1F1B, ZB1P, interleaved 1F1B, DualPipe, DualPipeV) at PP16 x 120 micro-batches built, "
        "checked and run, best of 3, median of 3 processes (the schedules registered since are not counted)",
    ),
    "routing_random_s": (
        "s",
        1.0,
        lambda: _inprocess(_routing("random"), 3),
        "random gating, 4096 tokens x 64 GPUs, 58 layers, warm (best of 3 after one call), median of 3 processes",
    ),
    "routing_skewed_s": (
        "s",
        1.0,
        lambda: _inprocess(_routing("skewed"), 3),
        "skewed gating, 4096 tokens x 64 GPUs, 58 layers, warm (best of 3 after one call), median of 3 processes",
    ),
    "report_default_s": (
        "s",
        None,
        lambda: _once(["report", "-q"]),
        "twin report (default step and its 12 variants), whole process, from nothing",
    ),
    "report_codesign_s": (
        "s",
        60.0,
        lambda: _once(["report", "scenarios/codesign.yaml", "-q"]),
        "twin report scenarios/codesign.yaml (every distinct point of its studies), whole process, from nothing",
    ),
    "serve_ten_minutes_s": (
        "s",
        60.0,
        lambda: _once(["serve", "scenarios/serve/deepseek-v3-h800.yaml", "-q", "-o", "{out}"]),
        "twin serve scenarios/serve/deepseek-v3-h800.yaml -o DIR (600 s of traffic at 300 requests/s, DeepSeek's "
        "published input rate per prefill node; every output written), whole process, from nothing",
    ),
}
LONG: dict[str, tuple[str, float | None, Callable[[], float], str]] = {
    "sweep_thousand_s": (
        "s",
        180.0,
        lambda: _once(["sweep", "scenarios/sweeps/thousand.yaml", "-o", "{out}/t.parquet"]),
        "twin sweep scenarios/sweeps/thousand.yaml on the local pool, whole process, from nothing",
    ),
    "sweep_thousand_compiled_s": (
        "s",
        180.0,
        lambda: _median_of(
            3, lambda: _once(["sweep", "scenarios/sweeps/thousand.yaml", "-o", "{out}/t.parquet"], _with_build())
        ),
        "twin sweep scenarios/sweeps/thousand.yaml on the local pool loading the build of twin compile (built "
        "before, outside the figure: compile_s), whole process, from nothing, median of 3 runs (one run moved by "
        "5% between two runs of the same revision on 2026-12-07)",
    ),
    "sweep_best_ten_s": (
        "s",
        None,
        lambda: _once(["sweep", "scenarios/sweeps/thousand.yaml", "--best", "10", "-o", "{out}/t.parquet"]),
        "twin sweep scenarios/sweeps/thousand.yaml --best 10 (the best 10 of the 1,000 points, exactly: every "
        "point timed alone, then the shared network until no other can do better) on the local pool, whole "
        "process, from nothing",
    ),
}


def _median_of(runs: int, once: Callable[[], float]) -> float:
    """The median of ``runs`` whole runs (a figure near its target on this shared host)."""
    return statistics.median(once() for _ in range(runs))


def _once(args: list[str], env: dict[str, str] | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        if not any("{out}" in a for a in args):
            args = [*args, "-o", tmp]
        return _twin([a.replace("{out}", tmp) for a in args], ROOT, env)


# --------------------------------------------------------------------------- quoting
# A quote is a number, its unit, then the figure's name: ``55 s (`report_default_s`)`` or
# ``0.29 s (`help_s`; target 0.5 s)`` (a line break may stand for the space before the parenthesis).
QUOTE = re.compile(r"(\d[\d,]*(?:\.\d+)?) (ms|s|min)(\s+)\(`([a-z0-9_]+)`(?=[;)])")
QUOTING = ("README.md", "docs/*.md", "reports/examples/README.md")  # where figures are quoted
_PER = {"ms": 1e-3, "s": 1.0, "min": 60.0}


def formatted(value: float, unit: str, quoted_unit: str) -> str:
    """``value`` (in ``unit``) as a quote in ``quoted_unit`` shows it: 3 significant figures, whole
    numbers from 100 up."""
    v = value * _PER[unit] / _PER[quoted_unit]
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def quoting_files() -> list[Path]:
    return sorted({p for pattern in QUOTING for p in ROOT.glob(pattern)})


# A verdict follows a quote's name: ``(`run_s`; target 3 s)`` when the figure meets its target,
# ``(`run_s`; target 3 s, not met)`` when it does not; the script writes it, so no prose says "met"
# about a figure measured since.
VERDICT = re.compile(r"\(`([a-z0-9_]+)`;(\s+)target(\s+)(\d[\d,]*(?:\.\d+)?)(\s+)(ms|s|min)(?:,(\s+)not(\s+)met)?\)")


def verdict(value: float, unit: str, target: float, target_unit: str) -> str:
    """Nothing when ``value`` (in ``unit``) is under ``target`` (in ``target_unit``), else ``, not met``."""
    return "" if value * _PER[unit] < target * _PER[target_unit] else ", not met"


def requote(text: str, figures: dict[str, dict[str, object]]) -> str:
    """``text`` with every quote's number and every verdict set from ``figures`` (quotes of unknown
    figures kept)."""

    def one(m: re.Match[str]) -> str:
        _, unit, space, name = m.groups()
        fig = figures.get(name)
        if fig is None:
            return m.group(0)
        return f"{formatted(float(str(fig['value'])), str(fig['unit']), unit)} {unit}{space}(`{name}`"

    def judged(m: re.Match[str]) -> str:
        name, s1, s2, target, s3, tunit, *_ = m.groups()
        fig = figures.get(name)
        if fig is None:
            return m.group(0)
        says = verdict(float(str(fig["value"])), str(fig["unit"]), float(target.replace(",", "")), tunit)
        return f"(`{name}`;{s1}target{s2}{target}{s3}{tunit}{says})"

    return VERDICT.sub(judged, QUOTE.sub(one, text))


def _revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="FIGURE", help="measure these and keep the rest of the file")
    ap.add_argument("--long", action="store_true", help="also the 1,000-point sweep and its --best 10")
    args = ap.parse_args()
    table = {**FIGURES, **LONG}
    names = args.only or [*FIGURES, *(LONG if args.long else {})]
    unknown = sorted(set(names) - set(table))
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"figures": {}}
    figures = dict(old.get("figures", {}))
    for name in names:
        unit, target, measure, how = table[name]
        # the host's speed just before this figure (its load changes within a run): one loop, one process
        host = None if name == "host_loop_s" else round(_inprocess(HOST_LOOP, 1), 3)
        try:
            value = measure()
        except Unavailable as why:
            print(f"{name:20s} skipped: {why}", flush=True)
            continue
        verdict = (
            "" if target is None else (" meets" if value < target else " MISSES") + f" the {target:g} {unit} target"
        )
        beside = "" if host is None else f"  (host loop {host:.3f} s just before)"
        print(f"{name:20s} {value:10.3f} {unit}{verdict}{beside}", flush=True)
        figures[name] = {
            **asdict(Figure(round(value, 3), unit, target, how)),
            "revision": _revision(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            **({} if host is None else {"host_loop_s": host}),
        }
    RESULTS.write_text(json.dumps({"figures": dict(sorted(figures.items()))}, indent=1) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    for path in quoting_files():
        text = path.read_text()
        new = requote(text, figures)
        if new != text:
            path.write_text(new)
            print(f"quotes updated in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
