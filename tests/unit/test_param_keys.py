"""Parameter names in domain code, scenario keys in the loader, flags in the CLI (sim/keys.py).

Domain code raises errors naming the parameter; the loader and the commands translate it through the
one table. A scenario value the run would refuse is refused when the scenario is loaded, by
``twin validate`` and ``twin run`` alike, in the same line naming the file and the key.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import LayoutError, ScenarioError
from sim.keys import PARAMS, as_flag, as_yaml_key, flag, yaml_key

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
DOMAIN = ("sim/hardware", "sim/network", "sim/moe", "sim/model", "sim/chunk", "sim/step", "sim/pipeline")

# files still raising flag names; the engineer rewriting each removes it when it names the parameter
PENDING: set[str] = set()


def _twin(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    return int(info.value.code or 0), err


@pytest.mark.parametrize("base", ["deepseek_v3_pretrain.yaml", "schedule-comparison.yaml"])
def test_odd_comm_sms_refused_by_validate_and_run_alike(
    base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(f"base: {SCENARIOS / base}\nset:\n  comm.sms: 13\n")
    lines = []
    for args in (["validate", str(path)], ["run", str(path), "-o", str(tmp_path / "out"), "-q"]):
        code, err = _twin(args, capsys)
        assert code == 2, err
        assert len(err.splitlines()) == 1, err
        lines.append(err.strip())
    assert lines[0] == lines[1]
    assert lines[0].startswith(f"error: {path}: comm.sms: must be an even number"), lines[0]
    assert not (tmp_path / "out").exists()


def test_translation_through_the_table() -> None:
    e = ScenarioError("comm_sms", "must be even")
    assert str(as_yaml_key(e)) == "comm.sms: must be even"
    assert str(as_flag(e)) == "--sms: must be even"
    assert str(as_yaml_key(ScenarioError("node_limit", "x"))) == "model.n_limited_groups: x"
    assert str(as_flag(ScenarioError("node_limit", "x"))) == "--n-limited-groups: x"
    assert str(as_flag(ScenarioError("kind", "unknown"))) == "KIND: unknown"
    assert str(as_flag(ScenarioError("size_bytes", "must be > 0"))) == "--size-bytes: must be > 0"
    # a tail after the parameter: kept in the key path, moved into the message for a flag
    assert (
        as_yaml_key(ScenarioError("comm_beside_compute.dispatch", "x")).key_path
        == "workload.comm_beside_compute.dispatch"
    )
    assert str(as_flag(ScenarioError("layers_per_stage[2]", "x"))) == "layers_per_stage[2]: x"  # no flag: unchanged
    # not a parameter, already a path or a flag, or a key of another file: unchanged
    for err in (ScenarioError("pipeline.pp", "x"), ScenarioError("--ep", "x"), ScenarioError("nodes", "x", "t.yaml")):
        assert as_yaml_key(err) is err and as_flag(err) is err
    # the error's class survives (the loader re-roots LayoutErrors)
    assert isinstance(as_flag(LayoutError("pp", "odd")), LayoutError)
    assert yaml_key("ep") == "workload.ep" and flag("ep") == "--ep" and flag("notify_wait_us") == "notify_wait_us"


def test_table_entries_are_well_formed() -> None:
    for name, p in PARAMS.items():
        assert name.isidentifier(), name
        assert p.yaml is None or all(part.isidentifier() for part in p.yaml.split(".")), (name, p.yaml)
        assert p.flag is None or p.flag.startswith("--") or p.flag.isupper(), (name, p.flag)
    flags = [p.flag for p in PARAMS.values() if p.flag is not None]
    shared = {f for f in flags if flags.count(f) > 1}
    assert shared <= {"--sms"}, shared  # comm_sms (twin chunk/alltoall) and sms (calibrate predict): other commands


def _raised_keys(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every ScenarioError/LayoutError raised with a literal (or f-string) key."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("ScenarioError", "LayoutError")):
            continue
        if not node.args:
            continue
        key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            out.append((node.lineno, key.value))
        elif isinstance(key, ast.JoinedStr) and key.values and isinstance(key.values[0], ast.Constant):
            out.append((node.lineno, str(key.values[0].value)))
    return out


def test_domain_code_names_parameters_not_flags() -> None:
    bad = []
    for top in DOMAIN:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in PENDING:
                continue
            for line, key in _raised_keys(path):
                if key.startswith("-") or (key.isupper() and key.isalpha()):
                    bad.append(f"{rel}:{line}: {key!r}")
    assert not bad, "name the parameter (sim/keys.py maps it to the flag):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["calibrate", "predict", "--dtype", "int4"], "--dtype: unknown dtype 'int4'"),
        (["calibrate", "predict", "--op", "attention", "--phase", "sideways"], "--phase: unknown phase"),
        (["calibrate", "predict", "--op", "memory", "--bytes", "1e6", "--kernel", "nope"], "--kernel: the profile"),
        (["alltoall", "--routing", "replay", "--ep", "8"], "--routing-table: replay needs a routing table"),
    ],
)
def test_cli_names_the_flag(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    if args[0] == "calibrate":
        args = [*args, "--profile", str(ROOT / "calibrate" / "profiles" / "h800.json")]
    code, err = _twin(args, capsys)
    assert code == 2 and err.startswith(f"error: {expected}"), err
