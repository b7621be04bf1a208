"""tests/conftest.py's ``require_shared`` and ``needs_shared`` marker: a test whose ../shared reference data
is missing is skipped locally and fails under CI (``CI`` set); GPU tests still skip without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED, require_shared

MISSING = SHARED / "no-such-reference-file.json"


def test_present_data_neither_skips_nor_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    here = Path(__file__)
    for ci in (None, "true"):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        require_shared(here)
        require_shared(here, REPO / "pyproject.toml")


def test_missing_data_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no-such-reference-file\.json not found"):
        require_shared(Path(__file__), MISSING)


def test_missing_data_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-reference-file\.json not found.*CI is set"):
        require_shared(MISSING)
    monkeypatch.setenv("CI", "")  # set but empty: not CI
    with pytest.raises(pytest.skip.Exception):
        require_shared(MISSING)


MODULE = f"""
from pathlib import Path

import pytest

MISSING = Path({str(MISSING)!r})


@pytest.fixture(scope="module")
def expensive():
    raise AssertionError("a module fixture ran before the needs_shared check")


@pytest.mark.needs_shared(MISSING)
def test_reads_shared(expensive):
    pass


@pytest.mark.gpu
@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_on_the_gpu():
    pass
"""


def _outcomes(tmp_path: Path, ci: str | None) -> str:
    test = tmp_path / "test_shared_probe.py"
    test.write_text(MODULE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    args = [str(test), "-rA", "-p", "tests.conftest", "-p", "no:cacheprovider", "-c", str(REPO / "pyproject.toml")]
    args += ["--rootdir", str(REPO), "-o", "addopts=--strict-markers"]  # not the suite's own options
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout + proc.stderr


def test_the_marker_skips_locally_and_fails_under_ci_before_any_fixture(tmp_path: Path) -> None:
    local = _outcomes(tmp_path, None)
    assert "2 skipped" in local, local
    assert "SKIPPED" in local and "no-such-reference-file.json not found" in local
    ci = _outcomes(tmp_path, "true")
    assert "1 skipped, 1 error" in ci, ci  # the check fails the test in its setup
    assert "CI is set" in ci and "a module fixture ran" not in ci
    assert "SKIPPED" in ci and "needs a CUDA GPU" in ci  # GPU tests keep skipping without a GPU under CI
