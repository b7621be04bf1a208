"""The event loop's compiled build (``twin compile``, :mod:`sim.compiled`).

What must hold: a build is loaded only for the sources it was built from (a stale one is never
loaded), only where not turned off; a build that does not reproduce the sources' figures bit for bit
is never kept; and a kept build loads in place of every listed module and prints the same figures.
The end-to-end test compiles for real (about a minute and a half on 2 cores: mypyc, then each check
run twice); it needs mypy, a C compiler and Python's headers, and is skipped without them outside CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sim import compiled
from sim.errors import TwinError
from tests.conftest import REPO, in_ci, write_sweep

# the active build (or 'None') and the listed modules loaded compiled, after importing every listed module
PROBE = (
    "import importlib, json, sim.compiled as c\n"
    "for m in c.MODULES:\n"
    "    importlib.import_module(m)\n"
    "print(json.dumps([str(c.active()), c.loaded()]))"
)


# Cyclic garbage a compiled sweep point leaves (after a first point, which fills the process's memos).
# mypyc keeps a function's nested functions in the environment they share when one of them calls
# another (or a module function the outer one calls too), and the environment refers back to them:
# a cycle that held a whole run, 32,008 objects a point, until a collection (docs/sweeps.md).
GARBAGE = (
    "import gc, sim.compiled as c\n"
    "from sim.sweep.spec import load_sweep\n"
    "from sim.sweep.runner import _task\n"
    "from sim.sweep.point import run_point\n"
    "sweep = load_sweep('scenarios/sweeps/thousand.yaml')\n"
    "assert run_point(*_task(sweep, sweep.points[3])[0])['status'] == 'ok'\n"
    "gc.collect()\n"
    "gc.disable()\n"
    "row = run_point(*_task(sweep, sweep.points[303])[0])\n"
    "assert row['status'] == 'ok' and c.active() is not None, row\n"
    "print(gc.collect())"
)
DEFAULT_ACTIONS = 2418  # the default step's pipeline actions: a cycle holding its run holds a span of each


def _probe(env: dict[str, str]) -> tuple[str, list[str]]:
    """What a fresh ``import sim`` loads under ``env`` (:data:`PROBE`)."""
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    active, loaded = json.loads(r.stdout)
    return active, loaded


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (compiled.OFF, compiled.DIR)}
    return env | {compiled.CACHE: str(cache)} | extra


def _fake_build(folder: Path, key: str, modules: list[str]) -> None:
    """A build's folder as a build leaves it, with empty files (never loaded: the key or a file is off)."""
    folder.mkdir(parents=True)
    files = {}
    for m in modules:
        rel = Path(*m.split(".")).as_posix() + compiled.ext_suffix()
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"")
        files[m] = rel
    (folder / compiled.MANIFEST).write_text(json.dumps({"key": key, "modules": files}))


def test_without_a_build_the_sources_run(tmp_path: Path) -> None:
    assert _probe(_env(tmp_path)) == ("None", [])  # no cache folder at all
    (tmp_path / "compiled").mkdir()
    assert _probe(_env(tmp_path)) == ("None", [])  # an empty one


def test_a_build_of_other_sources_or_missing_a_module_is_never_loaded(tmp_path: Path) -> None:
    """Each fake build would fail to import if it were loaded (empty files): the sources run instead."""
    key = compiled.build_key()
    stale = tmp_path / "compiled" / key  # the folder of this key, but built from other sources
    _fake_build(stale, "0123456789abcdef-cpython-311-x86_64-linux-gnu", list(compiled.MODULES))
    assert _probe(_env(tmp_path)) == ("None", [])
    shutil.rmtree(stale)
    _fake_build(stale, key, list(compiled.MODULES[1:]))  # this key, one module short
    assert _probe(_env(tmp_path)) == ("None", [])


def test_a_cache_of_other_sources_builds_is_named_and_a_sweep_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an edit or an update the cache holds builds of other sources only: runs use the sources,
    and a sweep, which runs long, says so once (else it would run slower without a word)."""
    monkeypatch.delenv(compiled.OFF)
    monkeypatch.setenv(compiled.CACHE, str(tmp_path))
    assert compiled.stale() is None  # no cache folder
    (tmp_path / "compiled").mkdir()
    assert compiled.stale() is None  # an empty one
    mine = compiled.build_key()
    _fake_build(tmp_path / "compiled" / mine, mine, ["sim.engine.clock"])  # these sources' (not whole)
    assert compiled.stale() is None
    suffix = compiled.key_suffix()
    _fake_build(tmp_path / "compiled" / f"0123456789abcdef{suffix}", f"0123456789abcdef{suffix}", ["sim.engine.clock"])
    assert compiled.stale() == tmp_path / "compiled"
    monkeypatch.setenv(compiled.OFF, "0")  # turned off: nothing to say
    assert compiled.stale() is None
    sweep = write_sweep(tmp_path, {"grid": {"comm.sms": [20]}})
    r = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(sweep), "-o", str(tmp_path / "r.parquet")],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=REPO,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    said = f"s: its points run from the sources: the compiled builds in {tmp_path / 'compiled'} are of other sources"
    assert said in " ".join(r.stderr.split()), r.stderr


def test_a_long_sweep_from_the_sources_with_no_build_hears_of_twin_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep of at least HINT_POINTS points, with no build of any sources for this Python, says once that
    twin compile would run it faster; a shorter sweep, builds turned off or given by folder, or a cache
    holding a build (of these sources, or of others: stale() says that) stay silent."""
    monkeypatch.delenv(compiled.OFF)
    monkeypatch.setenv(compiled.CACHE, str(tmp_path))
    n = compiled.HINT_POINTS
    assert compiled.missing(n) and not compiled.missing(n - 1)  # no cache folder at all
    (tmp_path / "compiled").mkdir()
    assert compiled.missing(n)  # an empty one
    other = f"0123456789abcdef{compiled.key_suffix()}"
    _fake_build(tmp_path / "compiled" / other, other, ["sim.engine.clock"])
    assert not compiled.missing(n)  # a build for this Python (stale() names it)
    shutil.rmtree(tmp_path / "compiled" / other)
    _fake_build(tmp_path / "compiled" / "x-cpython-299-other", "x-cpython-299-other", ["sim.engine.clock"])
    assert compiled.missing(n)  # another Python's build only
    monkeypatch.setenv(compiled.DIR, str(tmp_path))
    assert not compiled.missing(n)
    monkeypatch.delenv(compiled.DIR)
    monkeypatch.setenv(compiled.OFF, "0")
    assert not compiled.missing(n)
    # through the command: 200 points that each stop at their check (a layer split of the wrong length)
    grid = {"grid": {"training.layers_per_stage": [[i] for i in range(1, n + 1)]}}
    sweep = write_sweep(tmp_path, grid)
    r = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(sweep), "-o", str(tmp_path / "r.parquet"), "--workers", "1"],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "empty"),
        cwd=REPO,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    said = f"s: its {n} points run from the sources; twin compile (once per version of the sources, about a minute"
    assert " ".join(r.stderr.split()).count(said) == 1, r.stderr


def test_twin_compiled_0_turns_it_off_and_tests_run_the_sources() -> None:
    assert os.environ[compiled.OFF] == "0"  # (tests/conftest.py)
    assert compiled.active() is None and compiled.loaded() == []


def test_the_checks_compare_every_figure_but_the_wall_time() -> None:
    a = json.dumps({"step_time_s": 21.4, "stats": {"wall_s": 0.47, "solves": 5}}).encode()
    b = json.dumps({"step_time_s": 21.4, "stats": {"wall_s": 0.39, "solves": 5}}).encode()
    c = json.dumps({"step_time_s": 21.400000000000002, "stats": {"wall_s": 0.47, "solves": 5}}).encode()
    assert compiled._figures(a) == compiled._figures(b)
    assert compiled._figures(a) != compiled._figures(c)  # one ulp apart: not the same figures


def test_without_mypyc_the_build_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mypy", None)  # (import mypy then fails as if it were not installed)
    monkeypatch.setitem(sys.modules, "mypy.version", None)
    with pytest.raises(TwinError) as info:
        compiled._mypyc(tmp_path)
    assert str(info.value) == "mypyc is not installed (it comes with mypy): pip install -e '.[compiled]'"


def _can_build() -> str | None:
    """Why a real build cannot run here (None: it can)."""
    try:
        import mypy.version  # noqa: F401
    except ModuleNotFoundError:
        return "mypy is not installed"
    if shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc") is None:
        return "no C compiler"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python.h"
    return None


def test_a_build_is_checked_kept_loaded_and_reused(tmp_path: Path) -> None:
    why = _can_build()
    if why is not None:
        if in_ci():
            pytest.fail(f"CI must build the compiled event loop: {why}")
        pytest.skip(why)
    # (PYTHONPATH set, to anything, failed the build: mypy then read sim/model/spec.py's pydantic model
    # without its defaults; the build unsets it for mypyc)
    env = _env(tmp_path, PYTHONPATH=str(tmp_path / "nothing"))
    r = subprocess.run(
        [sys.executable, "-m", "sim", "compile"], capture_output=True, text=True, env=env, cwd=REPO, timeout=1500
    )
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "compiled" / compiled.build_key()
    assert f"compiled {len(compiled.MODULES)} modules in" in r.stdout and str(folder) in r.stdout
    checked = [line for line in r.stdout.splitlines() if line.startswith("  twin run")]
    assert len(checked) == len(compiled.CHECKS)  # every check ran (its files are in the checkout)
    assert _probe(env) == (str(folder), sorted(compiled.MODULES))  # loaded in place of every listed module
    assert _probe(env | {compiled.OFF: "0"}) == ("None", [])
    # the same figures compiled and from the sources on a step the build's checks do not run
    runs = [
        subprocess.run(
            [sys.executable, "-m", "sim", "run", "scenarios/qwen3-235b-h100-256-tp2pp8vp4ep32.yaml", "--format=json"],
            capture_output=True,
            env=env | {compiled.OFF: off},
            cwd=REPO,
            timeout=300,
        )
        for off in ("1", "0")
    ]
    assert runs[0].returncode == 0 and compiled._figures(runs[0].stdout) == compiled._figures(runs[1].stdout)
    # compiled, a step's results are freed when it returns, not held by cycles until a collection
    garbage = subprocess.run(
        [sys.executable, "-c", GARBAGE], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert garbage.returncode == 0, garbage.stderr
    assert int(garbage.stdout) < DEFAULT_ACTIONS, f"{garbage.stdout.strip()} objects in cycles after a compiled point"
    again = subprocess.run(
        [sys.executable, "-m", "sim", "compile"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert again.returncode == 0 and "a build of these sources is kept in" in " ".join(again.stdout.split())
    status = subprocess.run(
        [sys.executable, "-m", "sim", "compile", "--check"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert f"runs load the build in {folder}" in " ".join(status.stdout.split())


def test_check_says_what_runs_load_and_refuses_force_beside_it(tmp_path: Path) -> None:
    twin = [sys.executable, "-m", "sim", "compile", "--check"]
    r = subprocess.run(twin, capture_output=True, text=True, env=_env(tmp_path), cwd=REPO, timeout=120)
    assert r.returncode == 0
    assert " ".join(r.stdout.split()).startswith(f"no build of these sources under {tmp_path / 'compiled'}")
    off = subprocess.run(twin, capture_output=True, text=True, env=_env(tmp_path, TWIN_COMPILED="0"), cwd=REPO)
    assert off.stdout.strip() == "TWIN_COMPILED=0: runs use the sources"
    both = subprocess.run([*twin, "--force"], capture_output=True, text=True, env=_env(tmp_path), cwd=REPO)
    assert both.returncode == 2
    assert both.stderr.splitlines() == [
        "error: --force: not used with --check (which builds nothing); give one or the other"
    ]
