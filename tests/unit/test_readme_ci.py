"""`.ci/run` runs exactly the README's test command (the second bash block)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), flags=re.S)
    command = blocks[1].strip()
    assert "\n" not in command and command.endswith(
        "&& pytest -n auto --dist loadscope --cov=sim"
    )  # the whole suite on every core
    assert "apt-get install -y -q chromium" in command  # the browser test's Chromium (Debian's package)
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == command


def test_the_whole_suite_is_held_at_a_coverage_floor() -> None:
    """``pytest --cov=sim`` fails below ``fail_under``; plain ``pytest`` and subsets measure nothing."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["tool"]["coverage"]["report"]["fail_under"] >= 86
    assert any(dep.startswith("pytest-cov") for dep in config["project"]["optional-dependencies"]["test"])
    assert "--cov" not in config["tool"]["pytest"]["ini_options"]["addopts"]
