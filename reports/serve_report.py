"""The report of a serving run (``twin serve``): :func:`serve_document` renders a
:class:`~sim.serve.metrics.ServeResult` as a :class:`~reports.document.Document`.

Sections: Summary (the headline figures of :meth:`ServeResult.to_dict`, formatted), Latency (the CDFs
of TTFT and TPOT with the SLOs), Throughput over time (arrivals, first tokens and finishes per time
bin, and the requests in the system), KV cache (each decode unit's occupancy as the loop sampled it),
Pools (each pool's figures and the per-GPU compute busy fractions of its unit 0) and How it is
simulated. Every figure is drawn from the result's arrays only and copes with no request, no finished
request, no TPOT (every request of one output token) and no KV sample.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from reports.document import Document, literal
from sim.serve.loop import KV_SAMPLES
from sim.serve.metrics import ServeResult

COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"]
SLO_COLOUR = "#e45756"
SLO_SHOWN = 3.0  # an SLO drawn on a latency axis up to this many times the slowest request's latency
SECTIONS = ("Summary", "Latency", "Throughput over time", "KV cache", "Pools", "How it is simulated")
CDF_POINTS = 2000  # a CDF drawn through this many quantiles at most (an SVG of every request would be huge)
MAX_BINS = 2000  # throughput bins: 1 s wide, wider when the run is longer than this many seconds
KV_LINES_NAMED = 8  # units named in the KV legend (more: drawn, unnamed)
SVG_POINTS = 20_000  # a figure with more points than this is a PNG
POOL_HEADERS = ["figure", "prefill", "decode", "colocated"]
# the report's figures, in its order: each is a PNG of this name beside report.md (twin serve checks, before
# it simulates, that no file of the user's stands there)
LATENCY, THROUGHPUT, KV_CACHE, GPU_BUSY = CHARTS = ("latency", "throughput", "kv-cache", "gpu-busy")


# --------------------------------------------------------------------------- numbers as the tables show them
def _ms(x: float | None) -> str:
    """Seconds as milliseconds (two decimals); ``-`` when no request reached the event."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 1e3:,.2f}"


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _count(n: int) -> str:
    return f"{n:,}"


def _seconds(x: float) -> str:
    return f"{x:,.1f}"


def _node_label(d: dict[str, Any]) -> tuple[str, str]:
    """Whose nodes the per-node throughputs count: the prefill and decode pools, or the co-located one."""
    if "colocated" in d["pools"]:
        return "co-located pool", "co-located pool"
    return "prefill pool", "decode pool"


def _met(result: ServeResult) -> int:
    """Requests meeting both SLOs (the goodput's requests)."""
    return result.met_slo


# --------------------------------------------------------------------------- tables
CAPACITY_ROWS: list[tuple[str, str, Any]] = [  # extra["capacity"] (sim/serve/capacity.py), when the run has it
    ("flat out: prefill forward, ms", "prefill_forward_s", _ms),
    ("flat out: input tokens/s per node", "input_tokens_per_s_per_node", _rate),
    ("flat out: decode step, ms", "decode_step_s", _ms),
    ("flat out: output tokens/s per node", "output_tokens_per_s_per_node", _rate),
    ("flat out: TPOT, ms", "tpot_at_capacity_s", _ms),
]


def latency_rows(d: dict[str, Any]) -> list[list[str]]:
    """TTFT and TPOT: p50, p90, p99 and the SLO (ms), from ``ServeResult.to_dict()``."""
    rows = []
    for key, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
        p = d[key]
        rows.append([name, _ms(p["p50"]), _ms(p["p90"]), _ms(p["p99"]), _ms(d["slo"][key])])
    return rows


def summary_rows(result: ServeResult) -> list[list[str]]:
    """(figure, value) of the run's throughput, goodput, requests and span, from ``to_dict()``."""
    d = result.to_dict()
    pre, dec = _node_label(d)
    req = d["requests"]
    arrived = req["arrived"]
    met = _met(result)
    share = f" ({met / arrived:.1%} of the arrived)" if arrived else ""
    little = d["littles_law"]
    return [
        [f"input tokens/s per node ({pre})", _rate(d["input_tokens_per_s_per_node"])],
        [f"output tokens/s per node ({dec})", _rate(d["output_tokens_per_s_per_node"])],
        ["goodput (req/s meeting both SLOs)", f"{d['goodput_requests_per_s']:,.2f}"],
        ["requests meeting both SLOs", f"{_count(met)}{share}"],
        ["requests arrived", _count(arrived)],
        ["requests completed", _count(req["completed"])],
        ["requests unfinished", _count(req["unfinished"])],
        ["simulated seconds (arrivals and drain)", _seconds(d["simulated_s"])],
        ["mean requests in the system", f"{little['mean_in_system']:,.1f}"],
        ["mean time in the system (completed), s", f"{little['mean_sojourn_s']:,.2f}"],
        ["mean wait for the prefill, s", f"{little['mean_prefill_wait_s']:,.3f}"],
    ]


def _pool_columns(result: ServeResult) -> list[str]:
    return [r for r in POOL_HEADERS[1:] if r in result.pools] + sorted(set(result.pools) - set(POOL_HEADERS))


def pool_table(result: ServeResult) -> tuple[list[str], list[list[str]]]:
    """One column per pool, one row per figure of :class:`~sim.serve.metrics.PoolFigures`."""
    roles = _pool_columns(result)
    pools = [result.pools[r].to_dict() for r in roles]
    spec: list[tuple[str, str, Any]] = [
        ("nodes", "nodes", _count),
        ("units", "units", _count),
        ("GPUs per unit", "gpus_per_unit", _count),
        ("attention DP ranks per unit", "dp", _count),
        ("forwards", "forwards", _count),
        ("distinct forward shapes timed", "shapes", _count),
        ("busy (forwards running)", "busy", _pct),
        ("compute busy (slowest GPU)", "compute_busy", _pct),
        ("communication busy", "comm_busy", _pct),
        ("weights per GPU, GiB", "weights_GiB", lambda x: f"{x:,.1f}"),
        ("KV-cache tokens per GPU", "kv_tokens_per_gpu", _count),
        ("redundant experts per unit", "redundant_experts", _count),
    ]
    rows = [[name, *(fmt(p[key]) for p in pools)] for name, key, fmt in spec]
    capacity = result.extra.get("capacity")
    if isinstance(capacity, dict) and capacity:
        flat = [capacity.get(r) or {} for r in roles]
        for name, key, fmt in CAPACITY_ROWS:
            if any(key in c for c in flat):
                rows.append([name, *(_maybe(c.get(key), fmt) for c in flat)])
    return ["figure", *roles], rows


def _maybe(x: Any, fmt: Any) -> str:
    return "-" if x is None or not math.isfinite(x) else str(fmt(x))


def kv_rows(result: ServeResult) -> list[list[str]]:
    """Per decode (or co-located) unit: samples, the last sample's time, mean and peak occupancy (the
    peak over every step, as the summary's: the samples are thinned past KV_SAMPLES)."""
    rows = []
    for key in _kv_keys(result):
        t, used = _finite_pair(*result.kv_occupancy[key])
        if len(t):
            peak = result.kv_peak.get(key, float(used.max()))
            rows.append([key, _count(len(t)), _seconds(float(t[-1])), _pct(float(used.mean())), _pct(peak)])
        else:
            rows.append([key, "0", "-", "-", "-"])
    return rows


# --------------------------------------------------------------------------- figures
def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555d6e")
    ax.set_xticks([])
    ax.set_yticks([])


def _cdf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF of the finite ``x`` (through :data:`CDF_POINTS` quantiles when longer)."""
    x = np.sort(x[np.isfinite(x)])
    if len(x) <= CDF_POINTS:
        return x, np.arange(1, len(x) + 1) / len(x)
    q = np.linspace(0.0, 1.0, CDF_POINTS)
    return np.quantile(x, q), q


def latency_figure(result: ServeResult) -> Figure:
    """The CDFs of TTFT and TPOT (ms) over the requests that reached them, each SLO a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    panels = (
        ("ttft_s", "TTFT", result.ttft_s, "no request got its first token"),
        ("tpot_s", "TPOT", result.tpot_s, "no finished request has more than one output token"),
    )
    for ax, (key, name, values, none) in zip(axes, panels, strict=True):
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        slo = result.slo.get(key)
        if not len(x):
            _empty(ax, f"{name}: {none}")
            ax.set_title(name, fontsize=10)
            continue
        xs, ys = _cdf(x * 1e3)
        ax.step(xs, ys, where="post", color=COLOURS[0], linewidth=1.4)
        right = max(float(xs[-1]), 1e-3) * 1.05
        title = f"{name} of {len(x):,} requests"
        if slo is not None and math.isfinite(slo):
            label = f"SLO {slo * 1e3:,.4g} ms"
            if slo * 1e3 <= right * SLO_SHOWN:
                right = max(right, slo * 1e3 * 1.05)
                ax.axvline(slo * 1e3, color=SLO_COLOUR, linestyle="--", linewidth=1.0, label=label)
            else:  # far to the right of every request: named, not drawn (the curve would be a wall at 0)
                ax.plot([], [], color=SLO_COLOUR, linestyle="--", linewidth=1.0, label=f"{label} (off the axis)")
            title += f"; {float(np.mean(x <= slo)):.1%} within the SLO"
            ax.legend(loc="lower right", fontsize=8, frameon=False)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, right)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("requests (cumulative share)")
    return fig


def _bin_width(end_s: float) -> float:
    return float(max(1, math.ceil(end_s / MAX_BINS)))


def throughput_figure(result: ServeResult) -> tuple[Figure, float]:
    """Arrivals, first tokens and finishes per second (per bin of :func:`_bin_width` seconds), and the
    requests in the system at each bin's end; returns the figure and the bin width."""
    end = float(result.end_s) if math.isfinite(result.end_s) else 0.0
    width = _bin_width(end)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True, height_ratios=[3, 2], layout="constrained")
    arrival = np.asarray(result.requests.arrival_s, dtype=np.float64)
    if not len(arrival) or end <= 0:
        _empty(top, "no request arrived")
        _empty(bottom, "")
        return fig, width
    edges = np.arange(0.0, end + width, width)
    if edges[-1] < end:
        edges = np.append(edges, edges[-1] + width)
    series = (
        ("arrivals", arrival, COLOURS[7]),
        ("first tokens", np.asarray(result.first_token_s, dtype=np.float64), COLOURS[0]),
        ("finishes", np.asarray(result.finish_s, dtype=np.float64), COLOURS[2]),
    )
    for name, times, colour in series:
        t = times[np.isfinite(times)]
        counts, _ = np.histogram(t, bins=edges)
        top.stairs(counts / width, edges, color=colour, linewidth=1.1, label=f"{name} ({len(t):,})")
    top.set_ylabel("requests/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right", fontsize=8, frameon=False)
    top.grid(alpha=0.3)
    done = np.sort(series[2][1][np.isfinite(series[2][1])])
    came = np.sort(arrival[np.isfinite(arrival)])
    inside = np.searchsorted(came, edges[1:], side="right") - np.searchsorted(done, edges[1:], side="right")
    bottom.stairs(inside, edges, color=COLOURS[3], linewidth=1.1, fill=True, alpha=0.35)
    bottom.set_ylabel("in the system")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel(f"simulated seconds (bins of {width:g} s)")
    bottom.set_xlim(0, edges[-1])
    bottom.grid(alpha=0.3)
    return fig, width


def _kv_keys(result: ServeResult) -> list[str]:
    def order(key: str) -> tuple[int, str, int]:
        role, _, unit = key.rpartition("/")
        known = ("decode", "colocated")
        return (known.index(role) if role in known else len(known), role, int(unit) if unit.isdigit() else 0)

    return sorted(result.kv_occupancy, key=order)


def _finite_pair(t: Any, used: Any) -> tuple[np.ndarray, np.ndarray]:
    t, used = np.asarray(t, dtype=np.float64), np.asarray(used, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(used)
    return t[ok], used[ok]


def _kv_points(result: ServeResult) -> int:
    return sum(len(v[0]) for v in result.kv_occupancy.values())


def kv_figure(result: ServeResult) -> Figure:
    """Each decode (co-located) unit's KV-cache occupancy, a share of its capacity, at each step's start."""
    fig, ax = plt.subplots(figsize=(10, 3.4), layout="constrained")
    keys = _kv_keys(result)
    drawn = 0
    for i, key in enumerate(keys):
        t, used = _finite_pair(*result.kv_occupancy[key])
        if not len(t):
            continue
        label = key if i < KV_LINES_NAMED else None
        ax.plot(t, used, color=COLOURS[i % len(COLOURS)], linewidth=0.9, drawstyle="steps-post", label=label)
        drawn += 1
    if not drawn:
        _empty(ax, "no decode step ran: no KV-cache sample" if keys else "no decode unit")
        return fig
    end = float(result.end_s)
    if math.isfinite(end) and end > 0:
        ax.axvline(end, color="#555d6e", linestyle=":", linewidth=1.0, label="end of the run")
        ax.set_xlim(0, end * 1.01)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("KV cache in use (of capacity)")
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
    ax.grid(alpha=0.3)
    return fig


def gpu_busy_figure(result: ServeResult) -> Figure:
    """Per pool, the compute stream's busy fraction of every GPU of unit 0 over the simulated span."""
    roles = _pool_columns(result)
    n = max(1, len(roles))
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.9 * n + 0.6), squeeze=False, layout="constrained")
    if not roles:
        _empty(axes[0][0], "no pool")
        return fig
    for k, role in enumerate(roles):
        ax = axes[k][0]
        busy = np.asarray(result.pools[role].gpu_compute_busy, dtype=np.float64)
        busy = np.where(np.isfinite(busy), busy, 0.0)
        if not len(busy):
            _empty(ax, f"{role}: no GPU")
            continue
        ax.bar(np.arange(len(busy)), busy, width=0.85, color=COLOURS[k % len(COLOURS)])
        ax.set_ylim(0, max(1.0, float(busy.max()) * 1.05))
        ax.set_xlim(-0.6, len(busy) - 0.4)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        spread = f"min {busy.min():.1%}, mean {busy.mean():.1%}, max {busy.max():.1%}"
        ax.set_title(f"{role} pool, unit 0: {len(busy)} GPUs ({spread})", fontsize=9)
        ax.set_ylabel("compute busy")
    axes[-1][0].set_xlabel("GPU of unit 0")
    return fig


# --------------------------------------------------------------------------- the document
POOL_CAPTION = (
    "Busy fractions over the simulated span, the mean over a pool's units; compute busy is a forward's "
    "slowest GPU; weights and KV-cache tokens per GPU from the memory model."
)
FLAT_OUT = (
    " Flat out: one forward at the pool's batch limit with the traffic's mean lengths, an upper bound of "
    "what a run shows (`sim/serve/capacity.py`)."
)
HOW = (
    "An event loop over requests and forwards (`sim/serve/loop.py`): requests arrive (Poisson or a "
    "trace), prefill units batch their prompts up to the token budget (chunked when the scenario says "
    "so), the prompt's KV cache moves to a decode unit over one NIC, and decode units run continuous-"
    "batching steps (with MTP drafts when enabled) while their KV cache holds the admitted requests. "
    "Each forward's time comes from the pool's forward model (`sim/serve/forward.py`): the layers' "
    "compute from the calibrated cost model, DeepEP's dispatch and combine on the cluster's links, the "
    "two micro-batches overlapped, timed once per distinct shape. Definitions, defaults and their "
    "sources: `docs/serving.md`."
)


def serve_document(result: ServeResult, scenario_description: str = "") -> Document:
    """The run's report (module docstring); ``scenario_description`` is the subtitle (literal text)."""
    d = result.to_dict()
    doc = Document(f"Serving: {literal(result.scenario)}", literal(" ".join(scenario_description.split())))

    doc.heading("Summary")
    doc.table(
        ["latency (ms)", "p50", "p90", "p99", "SLO"],
        latency_rows(d),
        align="lrrrr",
        caption="TTFT: arrival to the first token (the forward that finishes the prompt); TPOT: the time "
        "between output tokens after the first (KV transfer and decode queueing included), over the "
        "requests that reached them; '-': none did.",
    )
    doc.table(
        ["figure", "value"],
        summary_rows(result),
        align="lr",
        caption="Throughputs over the arrival window (serve.duration_s: tokens prefilled and generated while "
        "requests arrive, the drain after it not counted) per node of the pool named; goodput: requests "
        "meeting both SLOs per second of that window.",
    )
    unfinished = d["requests"]["unfinished"]
    if unfinished:
        doc.paragraph(
            f"**{unfinished:,} request(s) did not finish** within the simulated span: their TPOT and time in "
            "the system are not in the figures, and they do not count towards the goodput."
        )

    doc.heading("Latency")
    doc.figure(
        latency_figure(result),
        LATENCY,
        "Cumulative distributions of TTFT and TPOT (ms) over the requests that reached them; dashed, the "
        "SLO (named only when it lies far beyond every request). Requests of one output token have no TPOT.",
    )

    doc.heading("Throughput over time")
    fig, width = throughput_figure(result)
    doc.figure(
        fig,
        THROUGHPUT,
        f"Requests arriving, getting their first token and finishing, per second in bins of {width:g} s; "
        "below, the requests in the system (arrived, not finished) at each bin's end.",
    )

    doc.heading("KV cache")
    samples = _kv_points(result)
    caption = (
        "Each decode unit's KV cache in use (prompts and the tokens generated so far, a share of the "
        "unit's capacity over its DP ranks) at the start of its decode steps, and 0 when it empties; past "
        f"{KV_SAMPLES:,} points a unit keeps every other one (the series spans the whole run)."
    )
    doc.figure(kv_figure(result), KV_CACHE, caption, fmt="png" if samples > SVG_POINTS else "svg")
    doc.table(["unit", "samples", "last sample, s", "mean", "peak"], kv_rows(result), align="lrrrr")

    doc.heading("Pools")
    headers, rows = pool_table(result)
    doc.table(
        headers,
        rows,
        align="l" + "r" * (len(headers) - 1),
        caption=POOL_CAPTION + (FLAT_OUT if any(r[0].startswith("flat out") for r in rows) else ""),
    )
    forwards = sum(p.forwards for p in result.pools.values())
    if forwards > len(result.spans):
        doc.paragraph(
            f"The timeline keeps the first {len(result.spans):,} of the run's {forwards:,} forwards "
            "(`serve.timeline_spans`)."
        )
    gpus = sum(len(p.gpu_compute_busy) for p in result.pools.values())
    doc.figure(
        gpu_busy_figure(result),
        GPU_BUSY,
        "Every GPU of unit 0 of each pool: its compute stream's busy fraction over the simulated span "
        "(uneven expert loads show as uneven bars).",
        fmt="png" if gpus > SVG_POINTS else "svg",
    )

    doc.heading("How it is simulated")
    doc.paragraph(HOW)
    return doc
