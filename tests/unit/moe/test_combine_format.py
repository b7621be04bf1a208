"""The combine's payload format (``comm.combine_format``, sim.moe.spec.COMBINE_FORMATS): LogFMT-nBit
moves n bits per element plus a tile's min and max, and a combine alone on a zero-latency fabric
takes exactly that fraction of BF16's data time (every flow scaled alike under max-min sharing: the
rates do not change, the bytes do); the dispatch does not change."""

from __future__ import annotations

import pytest

from sim.model.spec import DEEPSEEK_V3
from sim.moe.alltoall import route_layer
from sim.moe.deepep import KernelSpec, simulate_phase
from sim.moe.spec import COMBINE_FORMATS, LOGFMT_TILE_BYTES, MoESpec
from sim.network.spec import ClusterSpec
from sim.network.topology import build_topology
from tests.unit.network.conftest import ZERO_LATENCY


def test_the_formats_bytes() -> None:
    assert COMBINE_FORMATS["bf16"] == 2.0
    assert COMBINE_FORMATS["logfmt10"] == 1.25 + LOGFMT_TILE_BYTES
    assert COMBINE_FORMATS["logfmt8"] == 1.0 + LOGFMT_TILE_BYTES
    assert LOGFMT_TILE_BYTES == 4 / 128


@pytest.mark.parametrize("fmt", ["logfmt10", "logfmt8"])
def test_a_combine_takes_its_bytes_share_of_the_time(fmt: str) -> None:
    topo = build_topology(
        ClusterSpec.model_validate({"name": "c", "nodes": 4, "latency": ZERO_LATENCY, "fabric": {"kind": "mpft"}})
    )
    kernel = KernelSpec(notify_wait_us=0.0)
    times = {}
    for f in ("bf16", fmt):
        spec = MoESpec.of_model(DEEPSEEK_V3, 32, combine_format=f)
        traffic = route_layer(spec, 1024, "random", 0)
        assert traffic.bytes_per_token("combine") == DEEPSEEK_V3.dim * COMBINE_FORMATS[f]
        c = simulate_phase(topo, traffic, kernel, "combine")
        d = simulate_phase(topo, traffic, kernel, "dispatch")
        times[f] = (c.time_s - c.notify_s, d.time_s)
    ratio = COMBINE_FORMATS[fmt] / COMBINE_FORMATS["bf16"]
    assert times[fmt][0] == pytest.approx(ratio * times["bf16"][0], rel=1e-9)
    assert times[fmt][1] == times["bf16"][1]
