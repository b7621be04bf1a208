"""Compute/communication interference: kernels on separate SMs still share HBM (and the L2).

Measured as in ``shared/measurements/h100-sxm-2026-11-23/interference.csv`` (and by
``twin calibrate run``): a GEMM burst on ``compute_sms`` (one CUDA green context) beside a loop of
large copies on ``comm_sms`` (another), each timed alone and beside the other. Copies stand in for
communication kernels, which are memory bound.

The model starts from HBM bandwidth sharing. Let ``C`` be the HBM traffic rate a copy reaches on the
whole GPU (the profile's best copy sample) and ``u = r / C`` the share of it the memory-bound
(communication) kernel uses when it runs alone at traffic rate ``r``:

* a GEMM beside it slows by ``1 + phi_dtype * u / (1 - u)``: the memory system queues like a
  server at load ``u``, and ``phi`` is the share of the GEMM's time exposed to that waiting (tile
  loads its pipeline cannot hide), per dtype because FP8 tiles finish twice as fast as BF16 ones;
* the memory-bound kernel beside a GEMM slows by ``1 + psi_dtype``: it loses a share of HBM to the
  GEMM's traffic. On disjoint SMs (an H200, 12 to 68 SMs of copy) that loss did not grow with the
  copy's own load, so it is one number per dtype.

``phi`` and ``psi`` are fitted per dtype by least squares on the slowdowns of rows measured on
disjoint green contexts (``mode: green-contexts``); a profile without such rows uses its rows from
torch's overlapping green contexts (``green-contexts-overlapping``: the two kernels also share SMs,
so both figures come out larger). Rows on one context (``shared-sms``) stay data only. Measured:

* H200, disjoint (``calibrate/profiles/h200-measured.json``): the GEMM's slowdown is within the
  timing noise up to 36 SMs of copy (phi ~ 0.03), the copy's 13-21% (psi ~ 0.15);
* H100 (``shared/measurements``, torch's contexts, overlapping): phi_fp8 ~ 0.25, phi_bf16 ~ 0.06,
  psi ~ 0.3-0.5.

``twin calibrate show`` prints a profile's fit. Without interference samples both are 0 (no
interference), and the profile's ``skipped`` list says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_UTILISATION = 0.95  # the queueing factor is capped here: u/(1-u) <= 19


@dataclass(frozen=True)
class InterferenceRow:
    """One measured pair: slowdowns of the GEMM and the copy, and the copy's HBM share alone."""

    dtype: str
    compute_sms: int
    comm_sms: int
    gemm_slowdown: float
    copy_slowdown: float
    copy_utilisation: float


def queue(u: float) -> float:
    u = min(max(u, 0.0), MAX_UTILISATION)
    return u / (1.0 - u)


@dataclass(frozen=True)
class InterferenceModel:
    """Fitted sensitivities per dtype; ``pooled`` serves dtypes without rows of their own."""

    phi: dict[str, float]
    psi: dict[str, float]
    rows: int = 0

    @staticmethod
    def none() -> InterferenceModel:
        return InterferenceModel({}, {}, 0)

    @staticmethod
    def fit(rows: list[InterferenceRow]) -> InterferenceModel:
        if not rows:
            return InterferenceModel.none()
        phi: dict[str, float] = {}
        psi: dict[str, float] = {}
        groups: dict[str, list[InterferenceRow]] = {"*": rows}
        for r in rows:
            groups.setdefault(r.dtype, []).append(r)
        for dt, rs in groups.items():
            q = np.array([queue(r.copy_utilisation) for r in rs])
            # least squares on the slowdowns' excess over 1: excess = coefficient * regressor
            g = np.array([r.gemm_slowdown - 1.0 for r in rs])
            c = np.array([r.copy_slowdown - 1.0 for r in rs])
            phi[dt] = max(0.0, float(np.dot(q, g) / np.dot(q, q))) if np.dot(q, q) > 0 else 0.0
            psi[dt] = max(0.0, float(np.mean(c)))
        return InterferenceModel(phi, psi, len(rows))

    def _get(self, table: dict[str, float], dtype: str) -> float:
        return table.get(dtype, table.get("*", 0.0))

    def gemm_slowdown(self, dtype: str, comm_utilisation: float) -> float:
        """Factor on a GEMM's time while a memory-bound kernel uses ``comm_utilisation`` of HBM."""
        if comm_utilisation <= 0:
            return 1.0
        return 1.0 + self._get(self.phi, dtype) * queue(comm_utilisation)

    def comm_slowdown(self, dtype: str) -> float:
        """Factor on a memory-bound (communication) kernel's time beside a GEMM of ``dtype``."""
        return 1.0 + self._get(self.psi, dtype)

    def describe(self) -> dict[str, float]:
        out = {f"phi:{k}": v for k, v in self.phi.items()}
        out.update({f"psi:{k}": v for k, v in self.psi.items()})
        return out


def unfit_profile_source(mode: str, profile_name: str) -> str | None:
    """Why the ``profile`` interference source means none for a profile whose interference samples'
    ``mode`` (``CostModel.interference_mode``) is ``none``, or None where it has pairs to fit: the one
    message of a scenario's ``workload.interference`` and of ``twin chunk --interference``."""
    if mode != "none":
        return None
    return (
        f"profile: {profile_name} has no interference samples (GEMM beside copy pairs) to fit slowdowns on, so "
        "it would mean none; use a measured profile, or trace or none"
    )
