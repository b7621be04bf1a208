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

Not modelled (issue 21): failures and restarts, post-training, a report section for the run.
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
    source: str = ""



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
        out = PhaseResult(phase.name, published_gpu_hours=phase.published_gpu_hours)
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
    return {
        "gpu_hours": sum(r.gpu_hours for r in results),
        "days": sum(r.days for r in results),
        "usd": sum(r.usd for r in results),
        "tokens": sum(r.tokens for r in results),
    }


__all__ = ["GroupSpec", "PhaseResult", "PhaseSpec", "RunSpec", "Slice", "load_run", "plan_run", "totals"]
