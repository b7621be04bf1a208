"""assemble(scenario): one frozen Assembly for both kinds of run; the scenario only describes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.assemble import assemble
from sim.config import load_scenario
from sim.errors import ScenarioError
from sim.pipeline.execute import P2P
from sim.run import simulate

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"
TABLE = REPO / "scenarios" / "dualpipe-table.yaml"


def _derived(tmp_path: Path, base: Path, sets: dict[str, object]) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "set": sets}))
    return path


def test_config_imports_no_training_or_execution_code() -> None:
    """Loading a scenario loads no training, pipeline-execution or memory module, nor the assembly."""
    code = (
        "import sys, sim.config; sim.config.load_scenario(sim.config.default_scenario_path()); "
        "print(' '.join(m for m in sys.modules if m.startswith(('sim.chunk', 'sim.step', 'sim.pipeline.execute', "
        "'sim.assemble', 'sim.run'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == []


def test_training_assembly_is_built_once_and_frozen() -> None:
    sc = load_scenario(DEFAULT)
    asm = assemble(sc)
    assert asm.training and asm.step is not None and asm.layout is not None and asm.gpu is not None
    assert asm.transport is None and asm.times is None and asm.chunk is None
    assert asm.step.topology is asm.topology  # the fabric, built once
    assert asm.step.inputs.cost is asm.cost and asm.step.inputs.kernel is asm.kernel
    assert asm.step.inputs.layout is asm.layout and asm.schedules == (asm.step.schedule,)
    assert (asm.layout.dp, asm.layout.ep, asm.layout.microbatches) == (128, 64, 120)
    assert asm.split.compute_sms == 112 and asm.gpu.name == "H800"
    assert asm.step.contention == "shared"
    with pytest.raises(dataclasses.FrozenInstanceError):
        asm.layout = None  # type: ignore[misc]


def test_contention_flows_into_the_step(tmp_path: Path) -> None:
    asm = assemble(load_scenario(_derived(tmp_path, DEFAULT, {"training.contention": "isolated"})))
    assert asm.step is not None and asm.step.contention == "isolated"


def test_comparison_assembly_and_simulating_it() -> None:
    sc = load_scenario(TABLE)
    asm = assemble(sc)
    assert not asm.training and isinstance(asm.transport, P2P) and asm.topology is None
    assert asm.times is not None and asm.chunk is None and asm.step is None
    assert [s.name for s in asm.schedules] == list(sc.pipeline.schedules)
    assert simulate(asm).to_dict() == simulate(sc).to_dict()  # simulate assembles a scenario itself


def test_load_describes_assemble_refuses(tmp_path: Path) -> None:
    """An impossible layout loads (the description is well formed) and is refused by assemble, naming
    the file and key."""
    path = _derived(tmp_path, TABLE, {"pipeline.pp": 7})
    sc = load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        assemble(sc)
    assert str(info.value).startswith(f"{path}: pipeline.pp: dualpipe needs an even PP")
