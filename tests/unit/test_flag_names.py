"""Each command-line flag that sets a scenario key is named after that key's last part
(``model.n_limited_groups`` -> ``--n-limited-groups``), so what a user learns in one place reads the
same in the other; the names flags had before stay accepted as aliases. A short flag has one meaning
across every command."""

from __future__ import annotations

from collections import defaultdict

import typer.main

from sim.cli import COMMANDS, app
from sim.keys import PARAMS

# Parameters whose flag is not a scenario key's name, with why.
NOT_A_KEY = {
    "algorithm": "twin collective's own algorithm; in a scenario the key sets the DP collectives' algorithm",
}


def _options() -> list[tuple[str, object]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(cmd: object, path: str) -> None:
        for p in getattr(cmd, "params", []):
            found.append((path, p))
        for name in getattr(cmd, "list_commands", lambda _c: [])(None):
            walk(cmd.get_command(None, name), f"{path} {name}".strip())  # type: ignore[attr-defined]

    for name in COMMANDS:
        walk(root.get_command(None, name), name)  # type: ignore[attr-defined]
    return found


def test_every_flag_of_a_scenario_key_is_named_after_the_key() -> None:
    for name, param in PARAMS.items():
        if param.yaml is None or param.flag is None or not param.flag.startswith("--") or name in NOT_A_KEY:
            continue
        leaf = param.yaml.rsplit(".", 1)[-1].replace("_", "-")
        assert param.flag == f"--{leaf}", (name, param)


def test_every_flag_of_the_table_is_an_option_of_a_command() -> None:
    declared = {o for _, p in _options() for o in getattr(p, "opts", [])}
    missing = [p.flag for p in PARAMS.values() if p.flag and p.flag.startswith("--") and p.flag not in declared]
    assert missing == []


def test_a_short_flag_means_one_thing() -> None:
    meaning: dict[str, set[str]] = defaultdict(set)
    for _, p in _options():
        opts = getattr(p, "opts", [])
        longs = [o for o in opts if o.startswith("--")]
        for short in (o for o in opts if not o.startswith("--")):
            meaning[short].add(longs[0] if longs else "")
    assert {s: m for s, m in meaning.items() if len(m) > 1} == {}
