"""Plot of an SM sweep: achieved all-to-all bandwidth and the compute left, against comm SMs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reports.document import figure_text
from sim.moe.alltoall import AlltoallResult


def plot_sm_sweep(results: list[AlltoallResult], path: str | Path, title: str) -> Path:
    sms = [r.comm_sms for r in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sms, [r.dispatch.deepep_GBps for r in results], "o-", label="dispatch")
    ax.plot(sms, [r.combine.deepep_GBps for r in results], "s-", label="combine")
    ax.set_xlabel("SMs given to communication")
    ax.set_ylabel("DeepEP-reported bandwidth (GB/s)")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(sms, [100 * r.gemm_throughput_fraction for r in results], "k--", label="GEMM throughput left (%)")
    right.set_ylabel("GEMM throughput left to compute (%)")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=8)
    ax.set_title(figure_text(title))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
