"""Helpers of the serving tests: small serve scenarios built in code.

A scenario is validated by :func:`sim.serve.spec.parse_serve` with ``scenarios/serve`` as its folder,
so the H800 profile and the DeepSeek-V3 MPFT topology resolve as the shipped scenarios give them.
Pools are small (one unit of two H800 nodes: DeepSeek-V3's weights need 16 GPUs to leave room for KV
cache) so a run takes a second or less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.serve.spec import ServeScenario, parse_serve
from tests.conftest import REPO

SERVE_FOLDER = REPO / "scenarios" / "serve"
PROFILE = "../../calibrate/profiles/h800.json"
TOPOLOGY = "../../topologies/deepseek-v3-mpft.yaml"


def pool(**keys: Any) -> dict[str, Any]:
    """One unit of two nodes (16 GPUs, DP attention), low-latency kernels, ``keys`` on top."""
    return {"nodes": 2, "unit_nodes": 2, "kernels": "low_latency", **keys}


def scenario(
    serve: dict[str, Any], seed: int = 0, model: dict[str, Any] | None = None, **cluster: Any
) -> ServeScenario:
    """A serve scenario from its ``serve`` section (a model override, cluster what-ifs), validated."""
    data: dict[str, Any] = {
        "name": "test-serve",
        "seed": seed,
        "profile": PROFILE,
        "cluster": {"topology": TOPOLOGY, **cluster},
        "serve": serve,
    }
    if model is not None:
        data["model"] = model
    return parse_serve(data, Path("test-serve.yaml"), SERVE_FOLDER)
