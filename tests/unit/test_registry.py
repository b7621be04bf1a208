"""Every registry refuses a second implementation under a name already taken."""

from __future__ import annotations

import pytest

from sim.moe.gating import GATES
from sim.network.topology import FABRICS
from sim.registry import Registry


def test_registry_rejects_duplicates() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    assert reg == {"a": 1}
    with pytest.raises(ValueError, match="thing 'a' registered twice"):
        reg.add("a", 2)


@pytest.mark.parametrize("registry,name", [(GATES, "balanced"), (FABRICS, "mpft")])
def test_builtin_names_are_taken(registry: Registry, name: str) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(name)(registry[name])
