"""A whole training run (``twin plan run RUN.yaml``): phases of steps, each step simulated once,
integrated over the run's token budget and batch-size schedule.

A run file names a base scenario and its phases. A phase gives a token budget (``tokens``) or a step
count (``steps``), its global batch (``global_batch``, sequences) or a batch ramp (``ramp``: the batch
of each of its equal token slices, ``over_tokens`` in all, then ``global_batch`` for the rest, as
DeepSeek-V3 ramped 3072 to 15360 sequences over its first 469B tokens), and overrides of the base
(``set``: dotted scenario keys, as a sweep's). Every distinct step (overrides and batch) is simulated
once, as a sweep point (:func:`sim.sweep.point.run_point`): a ramp's steps at their own batch (fewer
micro-batches, a larger bubble), not scaled from the steady state. Then per slice of ``T`` tokens at
``B`` sequences of ``L`` tokens, with the step's time ``t``, GPU-hours per trillion tokens ``h`` and
cost per trillion tokens ``c`` (GPU price and the fabric's share, :mod:`sim.economics`):

    steps = T / (B L),   days = steps t / 86400,   GPU-hours = h T / 1e12,   USD = c T / 1e12,

summed per phase and over the run; a phase's MFU is its slices' weighted by their time. ``groups``
name phases published together (DeepSeek-V3's Table 1 gives the two context-extension phases as one
figure) with the published GPU-hours beside them.

``failures`` (optional): a mean time between failures per GPU, the checkpoint's and the restart's
cost, and the checkpoint interval (default: Young's), give each phase's expected lost days and
GPU-hours (:func:`failure_overhead`), reported apart from its figures.

Not modelled (issue 21): post-training, a report section for the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.config import scenario_data, scenario_from_data
from sim.errors import ScenarioError
from sim.overrides import apply_overrides, canonical, resolve_paths


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RampSpec(_Strict):
    batches: list[int] = Field(min_length=1, description="the global batch (sequences) of each equal token slice")
    over_tokens: float = Field(gt=0, description="tokens the ramp takes")


class PhaseSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    tokens: float | None = Field(None, gt=0, description="the phase's token budget")
    steps: int | None = Field(None, ge=1, description="or its step count (at global_batch)")
    global_batch: int | None = Field(None, ge=1, description="sequences per step [default: the base's]")
    ramp: RampSpec | None = None
    set: dict[str, Any] = Field(default_factory=dict, description="overrides of the base scenario")
    published_gpu_hours: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _budget(self) -> PhaseSpec:
        if (self.tokens is None) == (self.steps is None):
            raise ValueError("give tokens or steps, one of them")
        if self.ramp is not None and self.tokens is None:
            raise ValueError("a ramp needs a token budget (tokens)")
        if self.ramp is not None and self.tokens is not None and self.ramp.over_tokens > self.tokens:
            raise ValueError("the ramp takes more tokens than the phase has")
        return self


class FailureSpec(_Strict):
    """Failures and restarts, priced apart from the run (:func:`failure_overhead`)."""

    mtbf_gpu_hours: float = Field(
        gt=0, description="mean time between failures of one GPU (with its share of the node)"
    )
    checkpoint_s: float = Field(ge=0, description="seconds the job stops to write a checkpoint")
    restart_s: float = Field(ge=0, description="seconds from a failure to training again (detect, reload, warm up)")
    interval_s: float | None = Field(None, gt=0, description="checkpoint interval [default: Young's sqrt(2 C M)]")


def failure_overhead(f: FailureSpec, gpus: int) -> tuple[float, float]:
    """(the checkpoint interval, the expected wall-time overhead per second of training) of a job on
    ``gpus`` GPUs, to first order in the checkpoint, restart and interval times over the job's mean time
    between failures ``M = mtbf_gpu_hours x 3600 / gpus`` (Young 1974; Daly 2006): each interval ``tau``
    pays its checkpoint ``C``, and each failure, ``tau / M`` of them per interval, loses half an interval
    of work on average and the restart ``R``: overhead ``C / tau + (tau / 2 + R) / M``, least at Young's
    ``tau = sqrt(2 C M)`` (the default). It holds while ``C``, ``R`` and ``tau`` are small against ``M``."""
    m = f.mtbf_gpu_hours * 3600 / gpus
    tau = f.interval_s if f.interval_s is not None else (2 * f.checkpoint_s * m) ** 0.5
    if tau <= 0:  # free checkpoints: checkpoint continuously, lose only the restarts
        return 0.0, f.restart_s / m
    return tau, f.checkpoint_s / tau + (tau / 2 + f.restart_s) / m


class GroupSpec(_Strict):
    name: str = Field(min_length=1)
    phases: list[str] = Field(min_length=1)
    published_gpu_hours: float = Field(ge=0)


class RunSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    base: str = Field(min_length=1, description="the base scenario, relative to the run file")
    phases: list[PhaseSpec] = Field(min_length=1)
    groups: list[GroupSpec] = Field(default_factory=list)
    failures: FailureSpec | None = None


def load_run(path: Path) -> RunSpec:
    """The run file (errors: one line naming the file and key)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ScenarioError("", f"cannot read: {err.strerror}", str(path)) from None
    except yaml.YAMLError as err:
        raise ScenarioError("", f"not YAML: {str(err).splitlines()[0]}", str(path)) from None
    if not isinstance(data, dict):
        raise ScenarioError("", "a run file is a mapping", str(path))
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(x) for x in e["loc"])
        raise ScenarioError(key, e["msg"].removeprefix("Value error, "), str(path)) from None
    names = [p.name for p in spec.phases]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ScenarioError(f"phases.{i}.name", f"{name!r} names an earlier phase too", str(path))
    for i, g in enumerate(spec.groups):
        unknown = [n for n in g.phases if n not in names]
        if unknown:
            raise ScenarioError(f"groups.{i}.phases", f"no phase is named {unknown[0]!r}", str(path))
    return spec


@dataclass
class Slice:
    """Tokens of a phase run at one step."""

    global_batch: int
    tokens: float
    step: dict[str, Any]  # the step's sweep row (run_point)
    seq_len: int

    @property
    def steps(self) -> float:
        return self.tokens / (self.global_batch * self.seq_len)

    @property
    def seconds(self) -> float:
        return self.steps * float(self.step["step_time_s"])


@dataclass
class PhaseResult:
    name: str
    slices: list[Slice] = field(default_factory=list)
    published_gpu_hours: float | None = None
    failures: FailureSpec | None = None

    def lost(self) -> tuple[float, float]:
        """Expected (days, GPU-hours) lost to failures, checkpoints and restarts (0 without ``failures``)."""
        if self.failures is None:
            return 0.0, 0.0
        days = hours = 0.0
        for s in self.slices:
            gpus = int(s.step["gpus"])
            _, overhead = failure_overhead(self.failures, gpus)
            days += s.seconds * overhead / 86400
            hours += s.seconds * overhead * gpus / 3600
        return days, hours

    @property
    def tokens(self) -> float:
        return sum(s.tokens for s in self.slices)

    @property
    def steps(self) -> float:
        return sum(s.steps for s in self.slices)

    @property
    def days(self) -> float:
        return sum(s.seconds for s in self.slices) / 86400

    @property
    def gpu_hours(self) -> float:
        return sum(float(s.step["gpu_hours_per_T"]) * s.tokens / 1e12 for s in self.slices)

    @property
    def usd(self) -> float:
        return sum(float(s.step["cost_per_T_usd"]) * s.tokens / 1e12 for s in self.slices)

    @property
    def mfu(self) -> float:
        total = sum(s.seconds for s in self.slices)
        return sum(float(s.step["mfu_causal"]) * s.seconds for s in self.slices) / total

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "steps": self.steps,
            "tokens": self.tokens,
            "gpu_hours": self.gpu_hours,
            "days": self.days,
            "usd": self.usd,
            "mfu": self.mfu,
            "batches": sorted({s.global_batch for s in self.slices}),
        }
        if self.published_gpu_hours is not None:
            out["published_gpu_hours"] = self.published_gpu_hours
        if self.failures is not None:
            days, hours = self.lost()
            out["failures"] = {"lost_days": days, "lost_gpu_hours": hours}
        return out


def plan_run(spec: RunSpec, path: Path, progress: Any = None) -> tuple[list[PhaseResult], list[dict[str, Any]]]:
    """Every phase's slices with their steps simulated (each distinct step once), and the groups."""
    from sim.sweep.point import OK, run_point

    folder = path.resolve().parent
    base_path = (folder / spec.base).resolve()
    base, base_folder = scenario_data(base_path)
    memo: dict[str, tuple[dict[str, Any], int]] = {}

    def step(i: int, overrides: dict[str, Any], batch: int) -> tuple[dict[str, Any], int]:
        sets = resolve_paths(dict(overrides), folder)
        sets["training.global_batch"] = batch
        key = canonical(sets)
        if key not in memo:
            try:
                data = apply_overrides(base, sets)
                sc = scenario_from_data(data, str(base_path), str(base_folder))
            except ScenarioError as err:
                raise ScenarioError(f"phases.{i}.{err.key_path}", err.message, str(path)) from None
            row = run_point(data, str(base_path), str(base_folder))
            if row["status"] != OK:
                raise ScenarioError(f"phases.{i}", f"{spec.phases[i].name}: {row['error']}", str(path))
            assert sc.training is not None
            memo[key] = (row, sc.model.seq_len)
            if progress is not None:
                progress(len(memo))
        return memo[key]

    results = []
    for i, phase in enumerate(spec.phases):
        out = PhaseResult(phase.name, published_gpu_hours=phase.published_gpu_hours, failures=spec.failures)
        batch = phase.global_batch
        if batch is None:
            batch = _base_batch(base, phase.set, folder, base_path, base_folder)
        slices: list[tuple[int, float | None]] = []
        if phase.ramp is not None:
            each = phase.ramp.over_tokens / len(phase.ramp.batches)
            slices += [(b, each) for b in phase.ramp.batches]
        rest = None if phase.tokens is None else phase.tokens - (phase.ramp.over_tokens if phase.ramp else 0.0)
        if rest is None or rest > 0:
            slices.append((batch, rest))
        for b, tokens in slices:
            row, seq = step(i, phase.set, b)
            if tokens is None:  # a step count
                assert phase.steps is not None
                tokens = float(phase.steps) * b * seq
            out.slices.append(Slice(b, tokens, row, seq))
        results.append(out)
    groups = []
    by_name = {r.name: r for r in results}
    for g in spec.groups:
        members = [by_name[n] for n in g.phases]
        groups.append(
            {
                "name": g.name,
                "phases": g.phases,
                "gpu_hours": sum(m.gpu_hours for m in members),
                "published_gpu_hours": g.published_gpu_hours,
            }
        )
    return results, groups


def _base_batch(base: dict[str, Any], sets: dict[str, Any], folder: Path, path: Path, base_folder: Path) -> int:
    """The global batch a phase runs at when it gives none: its scenario's."""
    from sim.layout_defaults import DEFAULT_GLOBAL_BATCH

    sc = scenario_from_data(apply_overrides(base, resolve_paths(dict(sets), folder)), str(path), str(base_folder))
    assert sc.training is not None
    return sc.training.global_batch or DEFAULT_GLOBAL_BATCH


def totals(results: list[PhaseResult]) -> dict[str, float]:
    out = {
        "gpu_hours": sum(r.gpu_hours for r in results),
        "days": sum(r.days for r in results),
        "usd": sum(r.usd for r in results),
        "tokens": sum(r.tokens for r in results),
    }
    if any(r.failures is not None for r in results):  # reported apart from the run's own figures
        out["lost_days"] = sum(r.lost()[0] for r in results)
        out["lost_gpu_hours"] = sum(r.lost()[1] for r in results)
    return out


__all__ = [
    "FailureSpec",
    "GroupSpec",
    "PhaseResult",
    "PhaseSpec",
    "RunSpec",
    "Slice",
    "failure_overhead",
    "load_run",
    "plan_run",
    "totals",
]
