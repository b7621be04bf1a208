"""What a GPU's peaks allow a measured kernel: the least time of its work, and the slack a real time may
take under it.

A sample's work against the peaks (a datasheet's, :class:`sim.hardware.gpu.GpuSpec`, or a profile's
own, :class:`sim.hardware.profile.Peaks`: the same three figures):

* a GEMM: its ``2 m n k`` FLOPs at its dtype's dense peak (FP8, else BF16: FP16 and FP32 never beat
  the BF16 figure) on its share of the SMs (``sms / all``);
* attention: its matmul FLOPs (:func:`sim.model.ops.attention_flops`, the backward
  :data:`~sim.model.ops.ATTENTION_BWD_RATIO` times the forward) at the BF16 peak on its SMs;
* a memory kernel (copy, cast): its bytes read and written at the HBM bandwidth;
* an interference sample: its copy (twice ``copy_bytes``: read and written) and, where its parameters
  give the shape, its GEMM likewise, each alone (``params.alone_s``) and beside the other (``time_s``).

A time more than :data:`ROOFLINE_SLACK` times under that least time is no kernel: a unit slip (seconds
taken for milliseconds: a factor of 1000), or a hand edit. The slack keeps what a real kernel can do:
the datasheet peaks are at the base boost clock (the H100's 989 BF16 TFLOPS is 132 SMs x 4096 FLOP at
1830 MHz; it boosts to 1980, 8% more, most with few SMs busy), and a copy small enough to stay in the
50 MB L2 can pass the HBM bandwidth (DeepSeek's H800 trace has an elementwise kernel at 1.35x the HBM
bandwidth by its logical bytes). In the shipped profiles the nearest to their bound are the BF16 GEMM
on 8 SMs at 0.96 of its peak and that trace kernel at 1.35.

``twin calibrate import-measurements`` refuses such a time in a table (``calibrate/measurements.py``,
naming its row and column), and loading a profile of a device with a datasheet refuses it in a sample
(:func:`sim.hardware.profile.load_profile`, naming ``samples[i].time_s``): a GEMM sample a million times
too fast made a run report an MFU of 1.18. (A CPU's or an unknown GPU's profile takes its peaks from its
own best samples; it is not held to them.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from sim.hardware.profile import attention_param
from sim.model.ops import ATTENTION_BWD_RATIO, attention_flops

if TYPE_CHECKING:
    from sim.hardware.profile import Sample

ROOFLINE_SLACK = 2.0  # a time up to 2x under the roofline is taken (boost clocks, L2-resident copies)

TIME_S = "time_s"  # the sample's time
ALONE_S = "params.alone_s"  # an interference sample's kernel alone


class PeakRates(Protocol):
    """The figures a roofline reads: a datasheet's or a profile's peaks."""

    @property
    def fp8_dense_TFLOPS(self) -> float: ...
    @property
    def bf16_dense_TFLOPS(self) -> float: ...
    @property
    def hbm_TBps(self) -> float: ...


class Bound(NamedTuple):
    """What the peaks allow some work: ``work`` units (FLOPs or bytes) at ``peak`` of them a second,
    ``bound`` naming the figure, ``rate_unit`` how a rate is shown (``TFLOPS``, ``TB/s``)."""

    work: float
    peak: float
    bound: str
    what: str  # the work in words: "FLOPs", "bytes read and written"
    rate_unit: str
    on: str = ""  # the SMs the peak is scaled to
    peak_key: str = ""  # the peaks' field the peak is of (bf16_dense_TFLOPS, ...)

    @property
    def least_s(self) -> float:
        return self.work / self.peak


def flops_bound(flops: float, dtype: str, sms: int, all_sms: int, peaks: PeakRates) -> Bound:
    """``flops`` at the dense peak for ``dtype`` on ``sms`` of ``all_sms`` SMs (FP16 and FP32 bounded by
    the BF16 figure, which they never beat)."""
    fp8 = dtype == "fp8"
    tflops = peaks.fp8_dense_TFLOPS if fp8 else peaks.bf16_dense_TFLOPS
    bound = f"{'FP8' if fp8 else 'BF16'} dense peak"
    on = f" on {sms} of {all_sms} SMs"
    key = "fp8_dense_TFLOPS" if fp8 else "bf16_dense_TFLOPS"
    return Bound(flops, tflops * 1e12 * sms / all_sms, bound, "FLOPs", "TFLOPS", on, key)


def bytes_bound(nbytes: float, peaks: PeakRates) -> Bound:
    return Bound(nbytes, peaks.hbm_TBps * 1e12, "HBM bandwidth", "bytes read and written", "TB/s", "", "hbm_TBps")


def roofline_times(sample: Sample, peaks: PeakRates, all_sms: int) -> list[tuple[str, float, Bound]]:
    """Each time ``sample`` holds that a roofline bounds, with its bound: (:data:`TIME_S` or
    :data:`ALONE_S`, seconds, the bound). A GEMM, attention or interference sample without ``sms``
    (``compute_sms``) runs on all SMs; samples of other ops (communication, chunks) give none."""
    p = sample.params
    out: list[tuple[str, float, Bound]] = []
    if sample.op == "gemm" and "m" in p:
        flops = 2.0 * int(p["m"]) * int(p["n"]) * int(p["k"])
        sms = int(p.get("sms", all_sms))
        out.append((TIME_S, sample.time_s, flops_bound(flops, str(p["dtype"]), sms, all_sms, peaks)))
    elif sample.op == "attention":
        qk, v, causal = (attention_param(p, k) for k in ("qk_dim", "v_dim", "causal"))  # (as the cost model reads them)
        flops = attention_flops(int(p["heads"]), int(p["seq"]), qk, v, bool(causal))
        flops *= ATTENTION_BWD_RATIO if p["phase"] == "bwd" else 1.0
        sms = int(p.get("sms", all_sms))
        out.append((TIME_S, sample.time_s, flops_bound(flops, "bf16", sms, all_sms, peaks)))
    elif sample.op == "memory":
        out.append((TIME_S, sample.time_s, bytes_bound(float(p["bytes"]), peaks)))
    elif sample.op == "interference" and p["kernel"] == "copy":
        bound = bytes_bound(2.0 * float(p["copy_bytes"]), peaks)  # the copy reads and writes its bytes
        out += [(ALONE_S, float(p["alone_s"]), bound), (TIME_S, sample.time_s, bound)]
    elif sample.op == "interference" and {"m", "n", "k", "dtype"} <= p.keys():  # a GEMM whose label gives its shape
        flops = 2.0 * int(p["m"]) * int(p["n"]) * int(p["k"])
        bound = flops_bound(flops, str(p["dtype"]), int(p["compute_sms"]), all_sms, peaks)
        out += [(ALONE_S, float(p["alone_s"]), bound), (TIME_S, sample.time_s, bound)]
    return out


def too_fast(seconds: float, bound: Bound) -> bool:
    """A time more than :data:`ROOFLINE_SLACK` times under its bound's least time."""
    return seconds * ROOFLINE_SLACK < bound.least_s
