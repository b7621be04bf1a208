"""Small serving runs the report and timeline tests share: a scenario text's head (the H800 profile,
DeepSeek's fabric) and a split deployment (two prefill units of 2 nodes, two decode units of 4)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np

from sim.serve.deployment import simulate_serve
from sim.serve.metrics import ServeResult
from sim.serve.requests import Requests
from sim.serve.spec import load_serve

REPO = Path(__file__).resolve().parents[2]
HEAD = (
    f"profile: {REPO / 'calibrate' / 'profiles' / 'h800.json'}\n"
    f"cluster: {{topology: {REPO / 'topologies' / 'deepseek-v3-mpft.yaml'}}}\n"
)
SPLIT = (
    "  prefill: {nodes: 4, unit_nodes: 2, attention_tp: 4, experts_per_gpu: 16}\n"
    "  decode: {nodes: 8, unit_nodes: 4, experts_per_gpu: 9, kernels: low_latency, mtp: {enabled: true}}\n"
)


def run(tmp: Path, name: str, serve: str) -> ServeResult:
    """Simulate the scenario ``name`` whose ``serve`` section is the YAML text ``serve``."""
    path = tmp / f"{name}.yaml"
    path.write_text(f"name: {name}\n{HEAD}serve:\n{serve}")
    return simulate_serve(load_serve(path))


def no_request_run(tmp: Path, name: str, serve: str) -> ServeResult:
    """:func:`run` with no request arriving: ``twin serve`` refuses such traffic
    (:func:`sim.serve.requests.poisson_count`), so the draw is replaced by none, to hold the report and
    the timeline to a result without requests."""
    empty = np.zeros(0, dtype=np.int64)
    none = Requests(np.zeros(0), empty, empty, empty)
    with (
        mock.patch("sim.serve.deployment.poisson_count", return_value=0),
        mock.patch("sim.serve.deployment.requests_of", return_value=none),
    ):
        return run(tmp, name, serve)


def split_run(tmp: Path) -> ServeResult:
    """Two prefill units of 2 nodes, two decode units of 4 nodes, 20 s of traffic."""
    traffic = "  traffic: {rate_per_s: 30, input_tokens: 2000, output_tokens: 200, prompt_cache_hit: 0.5}\n"
    return run(tmp, "split", f"  duration_s: 20\n{traffic}{SPLIT}")
