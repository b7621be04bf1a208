"""docs/ARCHITECTURE.md's module table says what is there: every path it names exists, and every module of
``sim`` (bar ``__init__.py`` and ``__main__.py``) has a row.

A row's first cell names one or more paths in backticks, from the repository root: ``sim/x.py``. Later
names without a slash are beside the first (``sim/sweep/compare.py``, ``pareto.py``); a name may be a
glob (``calibrate/bench*.py``); a folder (``sim/engine/``) covers every module under it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
SKIP = {"__init__.py", "__main__.py"}


def table_rows(text: str) -> list[list[str]]:
    """The names in the first cell of each row of the table under '## Modules'."""
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        rows.append(re.findall(r"`([^`]+)`", first))
    return rows


def resolve(names: list[str]) -> list[tuple[str, list[Path]]]:
    """Each name with the paths it stands for (none when it names nothing)."""
    base = names[0].rstrip("/").rsplit("/", 1)[0] if "/" in names[0].rstrip("/") else ""
    out = []
    for i, name in enumerate(names):
        full = name if i == 0 or "/" in name else f"{base}/{name}"
        out.append((full, sorted(ROOT.glob(full.rstrip("/")))))
    return out


def covered(paths: list[Path]) -> set[Path]:
    files: set[Path] = set()
    for p in paths:
        files |= set(p.rglob("*.py")) if p.is_dir() else {p}
    return files


def test_the_table_is_parsed() -> None:
    assert resolve(["sim/sweep/compare.py", "pareto.py"])[1][0] == "sim/sweep/pareto.py"
    rows = table_rows(DOC.read_text())
    assert len(rows) > 50 and ["sim/errors.py"] in rows


def test_every_path_in_the_table_exists() -> None:
    missing = [name for row in table_rows(DOC.read_text()) for name, paths in resolve(row) if not paths]
    assert not missing, "docs/ARCHITECTURE.md names what is not there:\n" + "\n".join(missing)


def test_every_module_of_sim_has_a_row() -> None:
    named: set[Path] = set()
    rows = table_rows(DOC.read_text())
    for row in rows:
        for _, paths in resolve(row):
            named |= covered(paths)
    modules = {p for p in (ROOT / "sim").rglob("*.py") if p.name not in SKIP}
    unnamed = sorted(p.relative_to(ROOT).as_posix() for p in modules - named)
    assert not unnamed, "add a row to docs/ARCHITECTURE.md's module table for each of:\n" + "\n".join(unnamed)
    names = [name for row in rows for name, _ in resolve(row)]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, "named in more than one row:\n" + "\n".join(twice)
