"""What DeepSeek's H800 trace says, per operator: kernel times matched to the layer model's ops, and
the parameters derived from it (no torch).

The trace (``shared/reference/deepseek-v3/profile-data-train.json``) holds one DualPipe F&B chunk pair
of 4 MoE layers on GPU 0 (EP64, 8 nodes, 4096 tokens, balanced routing, 112 compute SMs). Inside each
CPU annotation the GPU kernels come in the order the training code launched them, and the same in
every layer (one 1-us ``fill_tensormaps`` kernel appears in some layers only; it is dropped). The
layer model (:mod:`sim.model.layer`) lists the same ops in the same order with the number of kernels
each launches, so kernels are matched to ops by order: op ``i`` of an annotation takes the next
``op.kernels`` kernels (:func:`match_ops` checks the counts add up and that GEMM ops land on GEMM
kernels).

Kernel times are *processor-sharing effective* times: where kernels of the two compute streams (7
and 23) overlap, each is charged ``1/n`` of every instant ``n`` kernels share, so the effective
times of an annotation add up to its busy wall time and mean "how long alone on the compute SMs".

Derived here (and rerun by tests against the defaults in ``sim``):

* per-channel DeepEP rates (:func:`derive_channel_rates`) and the communication slowdown beside
  compute, from the DeepEP kernel durations against DeepEP's published standalone figures;
* the GEMM and memory-bound slowdown beside DeepEP (:func:`derive_compute_slowdowns`): the same
  kernel (same annotation and position) in layers where a DeepEP data kernel ran over it against
  layers where none did;
* the launch gap per kernel and the notify wait (:func:`derive_launch_and_notify`).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.chunk.intervals import merge_intervals
from sim.chunk.overheads import ChunkParams
from sim.errors import shown
from sim.hardware.gpu import DEEPSEEK_COMM_SMS, DEEPSEEK_COMPUTE_SMS
from sim.model.layer import LayerWork, layer_ops
from sim.model.ops import Operator
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.step.layout import DEFAULT_EP

COMPUTE = (7, 23)
COMM = 27
DROPPED = ("fill_tensormaps",)
TRACE_SMS = DEEPSEEK_COMPUTE_SMS  # the trace's GEMMs launch 112 CTAs: 132 SMs - 20 for DeepEP
TRACE_TOKENS = DEEPSEEK_V3.seq_len  # one sequence per micro-batch (REFERENCE.md section 6)
TRACE_EP = DEFAULT_EP
GEMM_KERNELS = ("cutlass", "gemm", "xmma")
ATTENTION_KERNELS = ("flash", "cutlass")


@dataclass(frozen=True)
class Kernel:
    name: str
    stream: int
    start: float  # us
    end: float
    effective: float  # us, processor-sharing effective time (compute streams)
    covered: float = 0.0  # share of the kernel's duration a DeepEP data kernel ran beside it


@dataclass(frozen=True)
class Annotation:
    name: str
    index: int  # occurrence of this name (the layer, 0-based)
    kernels: tuple[Kernel, ...]
    event: int = -1  # its position in the trace's traceEvents (what an error names)


class TraceMismatch(ValueError):
    """An annotation of the trace that the layer model cannot match: ``event`` is its position in
    ``traceEvents`` (what ``twin calibrate import-trace`` names as the key)."""

    def __init__(self, event: int, message: str) -> None:
        super().__init__(f"traceEvents[{event}]: {message}")
        self.event = event
        self.message = message


def _load(trace: str | Path | dict[str, Any]) -> dict[str, Any]:
    from calibrate.trace import read_trace

    return read_trace(trace)


def _effective(kernels: list[dict[str, Any]]) -> dict[int, float]:
    """Processor-sharing effective time of each compute kernel (by correlation id), us."""
    edges = sorted({float(k["ts"]) for k in kernels} | {float(k["ts"] + k["dur"]) for k in kernels})
    starts = np.array([k["ts"] for k in kernels], dtype=np.float64)
    ends = starts + np.array([k["dur"] for k in kernels], dtype=np.float64)
    out = np.zeros(len(kernels))
    for a, b in itertools.pairwise(edges):
        mid = 0.5 * (a + b)
        active = (starts <= mid) & (ends > mid)
        n = int(active.sum())
        if n:
            out[active] += (b - a) / n
    return {int(k["args"]["correlation"]): float(e) for k, e in zip(kernels, out, strict=True)}


def read_annotations(trace: str | Path | dict[str, Any]) -> list[Annotation]:
    """Every layer annotation with its kernels (compute and communication streams), in launch order."""
    data = _load(trace)
    events = data["traceEvents"]
    annotations = sorted(
        (
            (i, e)
            for i, e in enumerate(events)
            if e.get("cat") == "user_annotation" and not e["name"].startswith(("ProfilerStep", "1F1B"))
        ),
        key=lambda ie: ie[1]["ts"],
    )
    launches = sorted((e for e in events if e.get("cat") == "cuda_runtime"), key=lambda e: e["ts"])
    starts = [e["ts"] for e in launches]
    kernels = {e["args"]["correlation"]: e for e in events if e.get("cat") == "kernel"}
    compute = [k for k in kernels.values() if k["args"].get("stream") in COMPUTE]
    effective = _effective(compute)
    moving = sorted(
        (float(k["ts"]), float(k["ts"] + k["dur"]))
        for k in kernels.values()
        if k["args"].get("stream") == COMM and "internode::" in k["name"] and "notify" not in k["name"]
    )

    def covered(s: float, e: float) -> float:
        return sum(max(0.0, min(e, b) - max(s, a)) for a, b in moving) / (e - s) if e > s else 0.0

    seen: dict[str, int] = defaultdict(int)
    out = []
    for at, a in annotations:
        lo = bisect.bisect_left(starts, a["ts"])
        hi = bisect.bisect_right(starts, a["ts"] + a["dur"])
        mine = []
        for e in launches[lo:hi]:
            k = kernels.get(e.get("args", {}).get("correlation"))
            if k is None or any(d in k["name"] for d in DROPPED):
                continue
            stream = int(k["args"]["stream"])
            eff = effective.get(int(k["args"]["correlation"]), float(k["dur"]))
            s0, e0 = float(k["ts"]), float(k["ts"] + k["dur"])
            mine.append(Kernel(k["name"], stream, s0, e0, eff, covered(s0, e0) if stream in COMPUTE else 0.0))
        out.append(Annotation(a["name"], seen[a["name"]], tuple(mine), at))
        seen[a["name"]] += 1
    return out


def trace_layer_ops(spec: ModelSpec = DEEPSEEK_V3) -> dict[str, tuple[Operator, ...]]:
    """The layer model's ops of one MoE layer in the trace's configuration (balanced routing: every
    GPU's 4 experts get tokens x top-k / 4 rows each)."""
    experts_per_gpu = spec.n_routed_experts // TRACE_EP
    rows = TRACE_TOKENS * spec.n_activated_experts // experts_per_gpu
    work = LayerWork(TRACE_TOKENS, (rows,) * experts_per_gpu)
    return layer_ops(spec, spec.n_dense_layers, work).annotations


@dataclass(frozen=True)
class OpTime:
    """One op's kernels in one layer of the trace."""

    op: Operator
    layer: int
    kernels: tuple[Kernel, ...]

    @property
    def effective_us(self) -> float:
        return sum(k.effective for k in self.kernels)

    def alone_us(self, params: ChunkParams) -> float:
        """Effective time with the slowdown of the DeepEP data kernels beside it taken out, in
        proportion to how much of each kernel they covered (``params``: the trace-derived factors)."""
        slow = params.gemm_beside_comm if self.op.kind in ("gemm", "attention") else params.memory_beside_comm
        return sum(k.effective / (1.0 + (slow - 1.0) * k.covered) for k in self.kernels)

    @property
    def wall_us(self) -> float:
        return max(k.end for k in self.kernels) - min(k.start for k in self.kernels)


def match_ops(trace: str | Path | dict[str, Any], spec: ModelSpec = DEEPSEEK_V3) -> list[OpTime]:
    """Match every kernel of every layer annotation to the layer model's ops by order."""
    ops = trace_layer_ops(spec)
    out = []
    for ann in read_annotations(trace):
        layer_ops_ = ops.get(ann.name)
        if layer_ops_ is None:
            known = ", ".join(sorted(ops))
            raise TraceMismatch(ann.event, f"annotation {shown(ann.name)!r} is not in the layer model (it has {known})")
        expected = sum(op.kernels for op in layer_ops_)
        if expected != len(ann.kernels):
            message = f"{ann.name} layer {ann.index}: {len(ann.kernels)} kernels, the model's ops launch {expected}"
            raise TraceMismatch(ann.event, message)
        i = 0
        for op in layer_ops_:
            ks = ann.kernels[i : i + op.kernels]
            i += op.kernels
            if op.kind == "gemm" and not any(g in ks[-1].name for g in GEMM_KERNELS):
                message = f"{ann.name} op {op.name}: expected a GEMM kernel, got {ks[-1].name[:60]}"
                raise TraceMismatch(ann.event, message)
            out.append(OpTime(op, ann.index, tuple(ks)))
    return out


def op_means(matched: list[OpTime], params: ChunkParams | None = None) -> dict[tuple[str, str], tuple[Operator, float]]:
    """(annotation, op name) -> (op, mean time over the layers, seconds): effective times, or with
    ``params`` the alone times (DeepEP's slowdown taken out)."""
    groups: dict[tuple[str, str], list[OpTime]] = defaultdict(list)
    for m in matched:
        groups[(m.op.annotation, m.op.name)].append(m)
    return {
        k: (v[0].op, statistics.fmean(m.alone_us(params) if params else m.effective_us for m in v) * 1e-6)
        for k, v in groups.items()
    }


def profile_samples(matched: list[OpTime], sms: int = TRACE_SMS) -> list[dict[str, Any]]:
    """Profile samples (as dicts) of the trace's compute ops at ``sms`` SMs (the SMs its compute
    kernels ran on; DeepSeek's trace: 112): GEMMs, attention, memory-bound classes and small kernels,
    each with its mean time alone (the trace-derived slowdown beside DeepEP taken out,
    :class:`ChunkParams` defaults)."""
    samples = []
    for (ann, name), (op, t) in sorted(op_means(matched, ChunkParams()).items()):
        base: dict[str, Any] = {"source": "trace", "annotation": ann, "op": name}
        if op.stream == "comm":
            continue
        if op.kind == "gemm":
            params = {**base, "family": f"trace:{name}", "m": op.m, "n": op.n, "k": op.k, "dtype": op.dtype}
            params |= {"scaling": op.scaling, "sms": sms}
            samples.append({"op": "gemm", "params": params, "time_s": t})
        elif op.kind == "attention":
            params = {**base, "heads": op.heads, "seq": op.seq, "qk_dim": op.qk_dim, "v_dim": op.v_dim}
            params |= {"causal": int(op.causal), "phase": op.phase, "sms": sms}
            samples.append({"op": "attention", "params": params, "time_s": t / op.sequences})
        elif op.kind == "memory":
            params = {**base, "kernel": op.kernel, "bytes": op.nbytes, "kernels": op.kernels, "sms": sms}
            samples.append({"op": "memory", "params": params, "time_s": t})
        elif op.kind == "small":
            params = {**base, "kernel": "small", "bytes": 1.0, "kernels": op.kernels, "sms": sms}
            samples.append({"op": "memory", "params": params, "time_s": t / op.kernels})
    return samples


# ---------------------------------------------------------------------------- derived parameters
def comm_kernel_us(trace: str | Path | dict[str, Any]) -> dict[str, float]:
    """Mean DeepEP kernel durations (us): fresh and cached dispatch, combine, notify."""
    durations: dict[str, list[float]] = defaultdict(list)
    for ann in read_annotations(trace):
        for k in ann.kernels:
            if k.stream != COMM:
                continue
            d = k.end - k.start
            if "notify" in k.name:
                durations["notify"].append(d)
            elif "internode::dispatch" in k.name:
                durations["dispatch-cached" if ann.name == "combine(B)" else "dispatch"].append(d)
            elif "internode::combine" in k.name:
                durations["combine"].append(d)
    return {k: statistics.fmean(v) for k, v in durations.items()}


def _trace_traffic(spec: ModelSpec) -> Any:
    from sim.moe.alltoall import route_layer
    from sim.moe.spec import MoESpec

    return route_layer(MoESpec.of_model(spec, TRACE_EP), TRACE_TOKENS, "balanced", 0)


def derive_channel_rates(trace: str | Path | dict[str, Any], spec: ModelSpec = DEEPSEEK_V3) -> dict[str, float]:
    """Per-channel RDMA rates (GB/s, the kernel alone) of fresh dispatch, cached dispatch and combine.

    DeepEP's published standalone EP64 figures (51 GB/s dispatch, 50 GB/s combine, logical RDMA)
    give the standalone durations of the trace's layer (balanced routing, EP64, 4096 tokens per GPU:
    its logical RDMA bytes over that bandwidth); the GPU's IB bytes over that duration over the 10
    channels of 20 SMs is the fresh dispatch's and the combine's rate. No standalone figure exists for
    a dispatch reusing a cached layout: it is the fresh rate times the trace's fresh/cached kernel
    duration ratio (4.35 / 3.41 ms). The NVLink forwarding rate is not derived: in EP64 the NIC, not
    NVLink, binds, so the trace does not constrain it (it keeps the intranode assumption)."""
    from sim.moe.deepep import PUBLISHED

    traffic = _trace_traffic(spec)
    kernels = comm_kernel_us(trace)
    channels = DEEPSEEK_COMM_SMS // 2
    pub_d, pub_c = PUBLISHED[TRACE_EP]
    rates = {}
    for phase, published in (("dispatch", pub_d), ("combine", pub_c)):
        logical = float(traffic.logical_rdma.mean()) * traffic.bytes_per_token(phase)
        alone_s = logical / (published * 1e9)
        rates[phase] = float(traffic.ib_bytes_per_gpu(phase).mean()) / alone_s / channels / 1e9
    rates["dispatch-cached"] = rates["dispatch"] * kernels["dispatch"] / kernels["dispatch-cached"]
    return rates


def derive_comm_slowdowns(trace: str | Path | dict[str, Any], spec: ModelSpec = DEEPSEEK_V3) -> dict[str, float]:
    """Each DeepEP data kernel's duration in the trace (beside GEMMs) over the model's standalone
    duration of the same phase (the DeepEP model with the derived rates on 8 H800 nodes, no notify)."""
    from sim.moe.deepep import KernelSpec, simulate_phase
    from sim.network.spec import ClusterSpec
    from sim.network.topology import build_topology

    traffic = _trace_traffic(spec)
    topo = build_topology(ClusterSpec.model_validate({"name": "trace", "nodes": 8, "fabric": {"kind": "mpft"}}))
    kernels = comm_kernel_us(trace)
    kernel = KernelSpec(comm_sms=DEEPSEEK_COMM_SMS, notify_bytes=0.0)
    out = {}
    for name, phase, cached in (
        ("dispatch", "dispatch", False),
        ("dispatch-cached", "dispatch", True),
        ("combine", "combine", True),
    ):
        alone = simulate_phase(topo, traffic, kernel, phase, cached=cached).time_s
        out[name] = kernels[name] * 1e-6 / alone
    return out


def derive_compute_slowdowns(trace: str | Path | dict[str, Any]) -> dict[str, float]:
    """Median ratio of a compute kernel's duration when a DeepEP data kernel covered >95% of it to
    the same kernel (annotation, position) in layers where none touched it (<5%): GEMMs and
    memory-bound kernels of 50 us or more. The second compute stream's kernels (mlp(W)) are left
    out: there the two streams share the SMs, a different slowdown."""
    anns = read_annotations(trace)
    by_position: dict[tuple[str, int], list[Kernel]] = defaultdict(list)
    for a in anns:
        if a.name == "mlp(W)":
            continue
        for i, k in enumerate(a.kernels):
            if k.stream in COMPUTE:
                by_position[(a.name, i)].append(k)
    ratios: dict[str, list[float]] = {"gemm": [], "memory": []}
    for ks in by_position.values():
        on = [k.end - k.start for k in ks if k.covered > 0.95]
        off = [k.end - k.start for k in ks if k.covered < 0.05]
        if not on or not off or max(on + off) < 50:
            continue
        kind = "gemm" if any(g in ks[0].name for g in GEMM_KERNELS) else "memory"
        if kind == "gemm" and "flash" in ks[0].name:
            continue
        ratios[kind].append(statistics.fmean(on) / statistics.fmean(off))
    return {k: statistics.median(v) for k, v in ratios.items() if v}


def derive_launch_and_notify(trace: str | Path | dict[str, Any]) -> dict[str, float]:
    """``launch_gap_us``: idle time per kernel inside the compute annotations (their GPU wall minus
    the union of their kernels, over their kernel count; mlp(W)'s two streams left out);
    ``notify_wait_us``: the mean DeepEP notify kernel, which waits for the slowest rank."""
    idle = 0.0
    count = 0
    for a in read_annotations(trace):
        ks = [k for k in a.kernels if k.stream in COMPUTE]
        if not ks or a.name == "mlp(W)":
            continue
        busy = sum(e - s for s, e in merge_intervals([(k.start, k.end) for k in ks]))
        idle += (max(k.end for k in ks) - min(k.start for k in ks)) - busy
        count += len(ks)
    return {"launch_gap_us": idle / count, "notify_wait_us": comm_kernel_us(trace)["notify"]}


def trace_stream_spans(trace: str | Path | dict[str, Any]) -> list[tuple[str, float, float]]:
    """Every kernel of the trace as (compute | comm, start us, end us)."""
    data = _load(trace)
    out = []
    for e in data["traceEvents"]:
        if e.get("cat") == "kernel":
            stream = e["args"].get("stream")
            cls = "compute" if stream in COMPUTE else "comm" if stream == COMM else None
            if cls:
                out.append((cls, float(e["ts"]), float(e["ts"] + e["dur"])))
    return out
