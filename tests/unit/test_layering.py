"""Imports go one way, by floors (docs/ARCHITECTURE.md, "Floors").

Inside ``sim`` every top-level module or package stands on a floor (:data:`FLOORS`, lowest first) and
imports only from its own floor or below. Above ``sim``: ``reports`` renders given results (it may import
``sim``, never ``sim.cli``, ``calibrate`` or torch, and from what simulates, ``sim.run``,
``sim.experiments`` and ``sim.sweep``, only types and constants, never a function that runs something);
``calibrate`` may import ``sim`` (never ``sim.cli`` or ``reports``); only ``sim.cli`` reaches ``reports``
and ``calibrate``, and nothing in ``sim`` or ``reports`` imports torch. Every import counts, including
those inside functions. Known exceptions are in :data:`ALLOWED`, each with its reason, and an exception
that is no longer needed fails too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "sim"

# sim's floors, lowest first, as the imports stand (a unit is a top-level module or package of sim).
FLOORS: tuple[tuple[str, ...], ...] = (
    (
        "errors",
        "units",
        "economics",
        "layout_defaults",
        "paths",
        "code_digest",
        "compiled",
        "number_text",
    ),  # no sim imports but errors
    ("keys", "limits", "yamlio", "registry", "overrides", "outputs", "forked"),  # small shared helpers
    ("engine",),  # simpy adapters, no GPU words
    ("model",),  # ModelSpec, ops, FLOPs, parameters
    ("hardware",),  # GPUs, profiles, cost models (of model ops)
    ("network",),  # topologies, routing, flows, collectives (NIC rates from hardware)
    ("moe",),  # gating, selection, traffic, DeepEP on the network
    ("pipeline",),  # schedules, validity, the executor on the network
    ("chunk",),  # the chunk model: a stage's layers on a GPU's streams, timed alone; its max-plus plan
    ("step",),  # the step: layout, actions as chunks, the event loop on one network, ZeRO-1, accounting
    ("config",),  # the scenario: the schema and the files it names
    ("assemble",),  # assemble(scenario): everything a run needs, built once (what validate checks)
    ("results",),  # metrics and exports of schedule runs
    ("run",),  # simulate an assembly: one RunResult / TrainingRun
    ("serve",),  # serving: a deployment's pools, forwards, routing, the request event loop
    ("sweep",),  # many points of one base scenario
    ("experiments",),  # studies, co-design, published figures, traces
    ("cli", "__main__", "entry"),  # the twin command
)
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}

# (file, imported module) -> why it is allowed for now. Remove an entry when its import goes away.
ALLOWED: dict[tuple[str, str], str] = {}

# from these, reports import only types and constants (capitalised names): they render, never run
RENDER_ONLY = ("sim.run", "sim.experiments", "sim.sweep")


def _files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if ".venv" not in p.parts)


def _imports(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names imported from it) of every absolute import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sim":  # from sim import cli
                for a in node.names:
                    yield node.lineno, f"sim.{a.name}", ()
            else:
                yield node.lineno, node.module, tuple(a.name for a in node.names)


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "sim" and len(parts) > 1 else None


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_unit_of_sim_has_a_floor() -> None:
    units = {p.stem if p.parent == SIM else p.relative_to(SIM).parts[0] for p in _files("sim")} - {"__init__"}
    assert sorted(units - set(FLOOR)) == [], "add these to FLOORS"


def test_nothing_in_sim_imports_above_its_floor() -> None:
    offenders, used = [], set()
    for path in _files("sim"):
        me = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if me is None or me == "__init__":
            continue
        for line, module, _ in _imports(path):
            them = _unit(module) or ""
            if me not in FLOOR or them not in FLOOR or FLOOR[them] <= FLOOR[me]:  # unknown: the test above
                continue
            key = (_rel(path), module)
            if key in ALLOWED:
                used.add(key)
                continue
            offenders.append(
                f"{_rel(path)}:{line} imports {module}: {them} (floor {FLOOR[them]}) is above {me} (floor {FLOOR[me]})"
            )
    assert offenders == [], "imports above their floor:\n" + "\n".join(offenders)
    assert sorted(set(ALLOWED) - used) == [], "ALLOWED entries no longer needed: remove them"


def test_sim_imports_neither_reports_calibrate_nor_torch() -> None:
    offenders = []
    for path in _files("sim"):
        forbidden = {"torch", "reports", "calibrate", "benchmarks", "tests"}
        if path.relative_to(SIM).parts[0] == "cli":
            forbidden -= {"reports", "calibrate"}
        offenders += [f"{_rel(path)}:{line} imports {m}" for line, m, _ in _imports(path) if _top(m) in forbidden]
    assert offenders == [], "\n".join(offenders)
    cli = {m for p in _files("sim/cli") for _, m, _ in _imports(p)}
    assert {"reports", "calibrate"} <= {_top(m) for m in cli}  # the exemption above is used


def test_reports_render_and_never_reach_the_cli() -> None:
    offenders = []
    for path in _files("reports"):
        for line, module, names in _imports(path):
            where = f"{_rel(path)}:{line} imports {module}"
            if module == "sim.cli" or module.startswith("sim.cli.") or _top(module) in ("calibrate", "torch"):
                offenders.append(where)
            elif module in ("sim.__main__", "sim.entry"):
                offenders.append(where)
            elif any(module == r or module.startswith(r + ".") for r in RENDER_ONLY):
                runs = [n for n in names if not n[:1].isupper()] or ([] if names else ["the module"])
                if runs:
                    offenders.append(f"{where}: {', '.join(runs)} (reports take results; experiments run)")
    assert offenders == [], "\n".join(offenders)


def test_calibrate_never_reaches_the_cli_or_reports() -> None:
    offenders = [
        f"{_rel(path)}:{line} imports {m}"
        for path in _files("calibrate")
        for line, m, _ in _imports(path)
        if _top(m) == "reports" or m == "sim.cli" or m.startswith("sim.cli.") or m in ("sim.__main__", "sim.entry")
    ]
    assert offenders == [], "\n".join(offenders)


def test_the_floors_are_documented() -> None:
    """docs/ARCHITECTURE.md's floor table is :data:`FLOORS`."""
    section = (ROOT / "docs" / "ARCHITECTURE.md").read_text().split("\n## Floors\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    documented = [tuple(u for u in re.findall(r"`([^`]+)`", cells[2])) for cells in rows]
    assert documented == list(FLOORS)


def test_the_checks_see_imports(tmp_path: Path) -> None:
    """The walker finds imports inside functions, ``from sim import x`` and plain ``import``."""
    f = tmp_path / "m.py"
    f.write_text("import sim.run\nfrom sim import cli\ndef g():\n    from sim.experiments.study import run_study\n")
    assert [(m, n) for _, m, n in _imports(f)] == [
        ("sim.run", ()),
        ("sim.cli", ()),
        ("sim.experiments.study", ("run_study",)),
    ]
