"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

# The tests run the sources, never a compiled build of the event loop (sim.compiled): they patch classes
# and functions that a compiled module would not let them patch. Set before sim is imported, and passed
# on to every twin a test starts; tests/unit/test_compiled.py turns it on where it tests the build.
os.environ["TWIN_COMPILED"] = "0"

# Bytecode is written, whatever the environment says. With PYTHONDONTWRITEBYTECODE set (this machine's
# default), every process compiled every module it imported from source, each time: importing sim.run,
# pandas and matplotlib took 3.1-3.4 s against 1.1 s from .pyc files, and the suite starts hundreds of
# processes (each xdist worker, each `twin` a test runs, sweep and dask workers). Set here, before
# xdist starts its workers, so that they and every process they start inherit it. The files go to
# __pycache__ folders (ignored by git; sim.code_digest reads only the .py sources).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SMALL_STEP = REPO / "tests" / "data" / "sweep" / "small-step.yaml"  # a small, fast training step for sweeps
INTEGRATION = REPO / "tests" / "integration"
UNTRACED_LIST = REPO / "tests" / "untraced.txt"  # tests run without coverage's tracer (tests/untraced_select.py)


def in_ci() -> bool:
    """CI runs with ``CI`` set (``CI=true``), ../shared beside the checkout and every test dependency."""
    return bool(os.environ.get("CI"))


def require_shared(*paths: Path) -> None:
    """Reference data from ../shared (the sibling folder /work/shared) that a test reads: when one of
    ``paths`` is missing the test is skipped locally, but fails under CI, where ../shared must be there."""
    missing = [p for p in paths if not Path(p).exists()]
    if not missing:
        return
    reason = f"{missing[0]} not found (../shared, beside the checkout)"
    if in_ci():
        pytest.fail(f"{reason}; CI is set: failed, not skipped (CI has ../shared beside the checkout)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs_shared(path, ...)``: ``require_shared(path, ...)`` before any fixture runs."""
    for mark in item.iter_markers("needs_shared"):
        require_shared(*mark.args)


class _Untraced:
    """Test modules marked ``untraced`` (``pytestmark = pytest.mark.untraced``) set up, run and tear down
    without coverage's tracer (:func:`untraced`): modules that simulate whole steps in this process
    again and again, on paths the rest of the suite reaches. Traced, such a module takes some 3.3 times
    as long (tests/integration/training/test_what_ifs.py: 74 s against 22 s, one process, 2026-12-07),
    and CI's 15 minutes were passed on a slower day (1,282 s). What it costs the coverage report (about
    0.1 point: 25 lines only they reach) is measured in docs/testing.md. The tests listed in
    ``tests/untraced.txt`` run so too: each line they reach a traced test reaches (``tests/untraced_select.py``
    chose them from a run with per-test contexts, and says how to remake the list). (A plugin of its own: the
    module's ``pytest_runtest_setup`` above is no wrapper, so that a refusal there comes after the other
    plugins' wrappers have set up.)"""

    def __init__(self) -> None:
        listed = UNTRACED_LIST.read_text(encoding="utf-8").splitlines() if UNTRACED_LIST.is_file() else []
        self.listed = {t.replace("{REPO}", str(REPO)) for t in listed if t and not t.startswith("#")}

    def _around(self, item: pytest.Item) -> Iterator[None]:
        if item.get_closest_marker("untraced") is None and item.nodeid not in self.listed:
            return (yield)
        with untraced():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._around(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._around(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._around(item))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Untraced(), "untraced")


# The unit modules that take longest (seconds of calls under CI's coverage, `pytest --durations`):
# run first, with the integration modules that testpaths puts first, so that under --dist loadscope
# (each module whole to the next free worker) no long module starts last and keeps one worker busy
# while the other waits (a tail of 1-3 minutes when test_key_fuzz started among the last).
LONG_UNIT_MODULES = (
    "tests/unit/test_compiled.py",  # 178 s (mypyc builds the event loop, then each check runs twice)
    "tests/unit/test_key_fuzz.py",  # 105 s on 2026-12-07, before its step was made small (65 s of it then 33 s)
    "tests/unit/test_fuzz_inputs.py",  # 40 s (before its draw of 4,096 micro-batches became 1,024)
    "tests/unit/sweep/test_sweep.py",  # 37 s
    "tests/unit/calibrate/test_bench.py",  # 35 s
    "tests/unit/test_every_key_is_used.py",  # 109 s traced on 2026-12-07 (53 s of it now in tests/untraced.txt)
    "tests/unit/test_leftover_faults.py",  # 17 s
    "tests/unit/chunk/test_overlap.py",  # 13 s
)


@contextmanager
def untraced() -> Iterator[None]:
    """Coverage's tracer off in the block, and back after it (nothing where none is on). For work a test
    repeats that other tests reach already: the key walks run the default step hundreds of times, about
    twice as slow traced (``tests/unit/test_key_fuzz.py``). pytest-cov's ``no_cover`` marker does not do
    it under xdist (its worker pauses its own collector, and coverage then resumes the one pytest-cov
    started earlier in that process, which traces on). The tracer is put back as it was: coverage's C
    tracer re-installs itself at its first call (``CTracer_call``)."""
    tracer = sys.gettrace()
    if tracer is None:
        yield
        return
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(tracer)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration (whole training steps, reports, sweeps of training points,
    the CLI run end to end) is marked ``integration``: ``-m "not integration"`` is the fast tier. The
    :data:`LONG_UNIT_MODULES` run right after the integration tests, before the other unit modules (a
    stable reorder: the order inside each module is kept)."""
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
    long_unit = {REPO / m: i for i, m in enumerate(LONG_UNIT_MODULES)}
    unit = REPO / "tests" / "unit"

    def rank(item: pytest.Item) -> tuple[int, int]:
        if item.path in long_unit:
            return (1, long_unit[item.path])
        return (2, 0) if unit in item.path.parents else (0, 0)  # integration, serve, ... keep their place

    items[:] = sorted(items, key=rank)


@pytest.fixture
def repo() -> Path:
    return REPO


def write_sweep(folder: Path, body: dict, name: str = "s.yaml") -> Path:
    """A sweep file over the small step (``body`` adds grid/points, or replaces the base), in ``folder``."""
    body = {"base": str(SMALL_STEP)} | body
    path = folder / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def refused_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``twin ARGS`` run in-process exits 2 with one line on stderr and no traceback; that line."""
    from sim.cli import main  # (here: importing the CLI at collection would load it for every test)

    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def twin(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The twin command as a process, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def write_sm_sweep_profile(path: Path, sms_total: int = 132) -> Path:
    """A profile whose green-context samples say the SM-sweep GEMM loses less than linearly:
    efficiency 0.8 on all SMs, rising to 0.9 on 8 SMs (fewer waves' tail effect)."""
    from calibrate.profiles import datasheet_profile
    from sim.hardware.costmodel import CostModel
    from sim.hardware.profile import Sample, dump_profile

    base = datasheet_profile()
    base = base.model_copy(update={"device": base.device.model_copy(update={"sms": sms_total})})
    model = CostModel(base)
    samples = []
    for sms in range(8, sms_total + 1, 8) if sms_total % 8 == 0 else [*range(8, sms_total, 8), sms_total]:
        eff = 0.8 + 0.1 * (1 - sms / sms_total)
        for m in (2048, 4096, 8192):
            t = model.gemm_roofline(m, 4096, 7168, "bf16", sms) / eff
            samples.append(
                Sample(op="gemm", params={"m": m, "n": 4096, "k": 7168, "dtype": "bf16", "sms": sms}, time_s=t)
            )
    path.write_text(dump_profile(base.model_copy(update={"samples": samples, "source": "measured"})))
    return path


@pytest.fixture(scope="session")
def default_report_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """``twin report -o DIR`` on the embedded default scenario, once per session: (the report folder
    (report.html, report.md and its PNGs), the step it simulated, its study). The command runs as a
    user runs it; the step and the study it computed are kept (recorded as ``run_study`` returns them)
    for the tests that check their figures, so they are not simulated a second time."""
    import sim.experiments.study as study_module
    from sim.cli import main

    seen: dict[str, Any] = {}
    real = study_module.run_study

    def recording(base: Any, *args: Any, **kwargs: Any) -> Any:
        seen["run"], seen["study"] = base, real(base, *args, **kwargs)
        return seen["study"]

    out = tmp_path_factory.mktemp("report")
    study_module.run_study = recording
    try:
        with pytest.raises(SystemExit) as info:
            main(["report", "-q", "-o", str(out)])
    finally:
        study_module.run_study = real
    assert info.value.code == 0
    return out / "deepseek-v3-pretrain", seen["run"], seen["study"]


@pytest.fixture(scope="session")
def default_report(default_report_run: tuple[Path, Any, Any]) -> Path:
    """The folder of :func:`default_report_run`. Shared by the report tests and the browser test."""
    return default_report_run[0]
