"""One table of the parameters a user sets: the name domain code gives it, its key in a scenario file
and its command-line flag.

Domain code (``sim/hardware``, ``sim/network``, ``sim/moe``, ``sim/model``, ``sim/chunk``, ``sim/step``) raises
:class:`~sim.errors.ScenarioError` naming the *parameter* (``comm_sms``, ``size_bytes``); it never
names a flag (``--sms``) or a scenario key (``comm.sms``). The two boundaries translate through
:data:`PARAMS`: the scenario loader (:mod:`sim.config`, and whatever runs a loaded scenario) with
:func:`as_yaml_key`, the commands (:mod:`sim.cli`) with :func:`as_flag`. A key that is not a
parameter of the table (already a scenario key path, a row of a file, a flag) passes unchanged.

A parameter's key may carry a tail after the name (``comm_beside_compute.dispatch``,
``layers_per_stage[3]``): the name is translated, the tail kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.errors import ScenarioError


@dataclass(frozen=True)
class Param:
    yaml: str | None  # key path in a scenario file; None: not set by a scenario
    flag: str | None  # command-line flag or argument (``--sms``, ``KIND``); None: no command sets it


PARAMS: dict[str, Param] = {
    # the SM split and DeepEP's kernels
    "comm_sms": Param("comm.sms", "--sms"),
    "coprocessor": Param("comm.coprocessor", "--coprocessor"),
    "rdma_channel_GBps": Param(None, "--rdma-channel-GBps"),
    "nvlink_channel_GBps": Param(None, "--nvlink-channel-GBps"),
    # the pipeline
    "pp": Param("pipeline.pp", "--pp"),
    "microbatches": Param("pipeline.microbatches", "--microbatches"),
    "virtual_stages": Param("pipeline.virtual_stages", "--virtual-stages"),
    "schedule": Param("pipeline.schedules", "NAME"),
    # the training step's layout
    "gpus": Param("training.gpus", "--gpus"),
    "global_batch": Param("training.global_batch", None),
    "layers_per_stage": Param("training.layers_per_stage", None),
    # the workload: a chunk of layers, its routing and the chunk model's parameters
    "layers": Param("workload.layers_per_stage", "--layers-per-stage"),
    "first_layer": Param("workload.first_layer", "--first-layer"),
    "tokens": Param("workload.tokens", "--tokens"),
    "ep": Param("workload.ep", "--ep"),
    "routing": Param("workload.routing", "--routing"),
    "routing_table": Param(None, "--routing-table"),
    "interference": Param("workload.interference", "--interference"),
    "gemm_beside_comm": Param("workload.gemm_beside_comm", None),
    "memory_beside_comm": Param("workload.memory_beside_comm", None),
    "comm_beside_compute": Param("workload.comm_beside_compute", None),
    "launch_gap_us": Param("workload.launch_gap_us", None),
    "notify_wait_us": Param("workload.notify_wait_us", None),
    "nccl_sms": Param("workload.nccl_sms", None),
    # the model's MoE layer (sim.moe.spec.MoESpec names ModelSpec's fields shorter)
    "experts": Param("model.n_routed_experts", "--n-routed-experts"),
    "topk": Param("model.n_activated_experts", "--n-activated-experts"),
    "node_limit": Param("model.n_limited_groups", "--n-limited-groups"),
    "hidden": Param("model.dim", "--dim"),
    "dtype": Param("model.dtype", "--dtype"),
    # the network and its collectives
    "kind": Param(None, "KIND"),
    "algorithm": Param("training.dp_algorithm", "--algorithm"),
    "size_bytes": Param(None, "--size-bytes"),
    "minbytes": Param(None, "--minbytes"),
    "maxbytes": Param(None, "--maxbytes"),
    "stepfactor": Param(None, "--stepfactor"),
    "stepbytes": Param(None, "--stepbytes"),
    "completion_rtol": Param("cluster.completion_rtol", "--completion-rtol"),
    "nodes": Param(None, "--nodes"),
    # the cost model (twin calibrate predict)
    "profile": Param("profile", "--profile"),
    "op": Param(None, "--op"),
    "m": Param(None, "--m"),
    "n": Param(None, "--n"),
    "k": Param(None, "--k"),
    "sms": Param(None, "--sms"),
    "scaling": Param(None, "--scaling"),
    "beside_comm_sms": Param(None, "--beside-comm-sms"),
    "phase": Param(None, "--phase"),
    "nbytes": Param(None, "--bytes"),
    "kernel": Param(None, "--kernel"),
}

_HEAD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(.*)$")


def _translate(err: ScenarioError, pick: str) -> ScenarioError:
    if err.file:  # a key of the file it names (a topology, a profile, a CSV): already what the user wrote
        return err
    m = _HEAD.match(err.key_path)
    param = PARAMS.get(m.group(1)) if m else None
    new = getattr(param, pick) if param is not None else None
    if m is None or new is None:
        return err
    tail = m.group(2)
    if pick == "flag" and tail:  # a flag has no sub-keys: name the flag, keep the detail in the message
        return type(err)(new, f"{tail.lstrip('.')}: {err.message}")
    return type(err)(new + tail, err.message)


def as_yaml_key(err: ScenarioError) -> ScenarioError:
    """``err`` naming the scenario key of its parameter (``comm_sms`` -> ``comm.sms``)."""
    return _translate(err, "yaml")


def as_flag(err: ScenarioError) -> ScenarioError:
    """``err`` naming the command-line flag of its parameter (``node_limit`` -> ``--n-limited-groups``)."""
    return _translate(err, "flag")


def yaml_key(param: str) -> str:
    """The scenario key of ``param`` (the parameter's own name when a scenario does not set it)."""
    p = PARAMS.get(param)
    return p.yaml if p is not None and p.yaml is not None else param


def flag(param: str) -> str:
    """The command-line flag of ``param`` (the parameter's own name when no command sets it)."""
    p = PARAMS.get(param)
    return p.flag if p is not None and p.flag is not None else param
