"""The shipped cluster pairs (issue 19, "Clusters"): H100 and H200 with their measured profiles, B200
and GB200 NVL72 with datasheet-based ones, each run on a Llama 3.1 8B step.

What must hold whatever the speeds: the SM split is the profile's GPU's (148 SMs on Blackwell, 132 on
Hopper: a profile for one GPU is never timed on another's SM count), the memory check uses that GPU's
HBM, a datasheet profile says so in its provenance, and the GB200's NVLink domain is the 72-GPU rack
(a pipeline rank of 72 GPUs is one node, so no data-parallel byte of it leaves NVLink).
"""

from __future__ import annotations

import pytest

from sim.assemble import assemble
from sim.config import load_scenario
from sim.hardware.profile import load_profile
from sim.run import simulate_training
from tests.conftest import REPO

CLUSTERS = {  # scenario -> (GPU, SMs, HBM GiB, profile source)
    "h100": ("H100", 132, 80.0, "measured"),
    "h200": ("H200", 132, 141.0, "measured"),
    "b200": ("B200", 148, 180.0, "datasheet"),
    "gb200": ("GB200", 148, 186.0, "datasheet"),
}


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_a_cluster_pair_runs_on_its_own_gpu(name: str) -> None:
    gpu, sms, hbm, source = CLUSTERS[name]
    sc = load_scenario(REPO / "scenarios" / "clusters" / f"llama3.1-8b-{name}.yaml")
    asm = assemble(sc)
    assert asm.gpu is not None and (asm.gpu.name, asm.gpu.sms, asm.gpu.hbm_GiB) == (gpu, sms, hbm)
    assert asm.split.compute_sms == sms  # a dense model sets no SM aside
    profile = load_profile(sc.profile_path)
    assert profile.device.sms == sms
    assert (profile.source == "datasheet") == (source == "datasheet")
    run = simulate_training(asm)
    d = run.to_dict()
    assert d["memory_per_gpu_GiB"]["total"] < hbm
    assert d["tokens_per_s_per_gpu"] == pytest.approx(d["tokens_per_step"] / d["step_time_s"] / d["layout"]["gpus"])


def test_the_gb200_rank_is_one_nvlink_domain() -> None:
    sc = load_scenario(REPO / "scenarios" / "clusters" / "llama3.1-8b-gb200.yaml")
    asm = assemble(sc)
    assert asm.layout is not None and asm.layout.gpus_per_rank == 72
    run = simulate_training(asm)
    coflow_gb = run.to_dict()["stats"]["coflow_GB"]
    assert coflow_gb.get("zero1@nic_up", 0.0) == 0.0 and coflow_gb["zero1@nv_up"] > 0
