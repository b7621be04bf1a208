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

The run is planned first (:func:`plan_steps`: every phase's slices and the distinct steps they need,
each step's scenario built and checked, so a bad phase stops the run before anything is simulated),
then its steps are simulated (:func:`plan_run`: one after the other here; a sweep of runs,
:mod:`sim.experiments.run_sweep`, simulates the distinct steps of all its points once, as a sweep)
and integrated (:func:`integrate`). A ramp over 0 tokens is no ramp.

Not modelled (issue 21): post-training.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.config import scenario_data, scenario_from_data, unnamed
from sim.errors import ScenarioError
from sim.errors import shown as shown_value
from sim.limits import MAX_RUN_TOKENS, MAX_TIME
from sim.overrides import PATH_KEYS, apply_overrides, check_key, resolve_paths

# a step count or a batch (sequences) of a run: a run's tokens are at most MAX_RUN_TOKENS, a sequence one
# token at least (a count past it was taken, 1e30 steps printed as days, or overflowed a float: a traceback)
MAX_COUNT = int(MAX_RUN_TOKENS)


class _Strict(BaseModel):
    # strict: a number given as text (tokens: "14.8e12") is refused, as in a scenario, not converted
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        """No true or false where a number or a name goes (pydantic reads true as 1: ``steps: true`` ran one
        step); a phase's ``set`` is a mapping, its booleans the scenario's."""
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            raise ValueError(f"{str(value).lower()} is not a number or a name")
        return value


class RampSpec(_Strict):
    batches: list[Annotated[int, Field(le=MAX_COUNT)]] = Field(
        min_length=1, description="the global batch (sequences) of each equal token slice"
    )
    over_tokens: float = Field(ge=0, le=MAX_RUN_TOKENS, description="tokens the ramp takes (0: no ramp)")


class PhaseSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    tokens: float | None = Field(None, gt=0, le=MAX_RUN_TOKENS, description="the phase's token budget")
    steps: int | None = Field(None, ge=1, le=MAX_COUNT, description="or its step count (at global_batch)")
    global_batch: int | None = Field(None, ge=1, le=MAX_COUNT, description="sequences per step [default: the base's]")
    ramp: RampSpec | None = None
    set: dict[str, Any] = Field(default_factory=dict, description="overrides of the base scenario")
    published_gpu_hours: float | None = Field(None, ge=1, le=MAX_TIME)  # (a published figure: 1 GPU-hour or more)

    @field_validator("set")
    @classmethod
    def _finite(cls, values: dict[str, Any]) -> dict[str, Any]:
        """No NaN or infinity among the overrides (their values are keyed as JSON, and no key takes one)."""

        def bad(x: Any) -> bool:
            if isinstance(x, float):
                return not math.isfinite(x)
            if isinstance(x, dict):
                return any(bad(v) for v in x.values())
            return isinstance(x, list) and any(bad(v) for v in x)

        for key, value in values.items():
            try:  # ('' was taken, and blamed on the base file: "small-step.yaml: unknown key")
                check_key(key, "")
            except ScenarioError as err:
                raise ValueError(err.message) from None
            if bad(value):
                raise ValueError(f"{key}: {value!r} is not a finite number")
            if key in ("name", "description"):  # (the phase's own name labels it; a sweep refuses them too)
                raise ValueError(f"{key}: changes nothing a phase simulates (the phase is named by its name)")
        return values

    @model_validator(mode="after")
    def _budget(self) -> PhaseSpec:
        if (self.tokens is None) == (self.steps is None):
            raise ValueError("give tokens or steps, one of them")
        if self.ramp is not None and self.tokens is None:
            raise ValueError("a ramp needs a token budget (tokens)")
        if self.ramp is not None and self.tokens is not None and self.ramp.over_tokens > self.tokens:
            raise ValueError("the ramp takes more tokens than the phase has")
        if self.ramp is not None:  # a batch ramp grows to the phase's batch (GPT-3, Llama 3: 4M to 16M tokens)
            b = self.ramp.batches
            if any(later < earlier for earlier, later in pairwise(b)):
                raise ValueError(f"ramp.batches {b} decrease somewhere; a ramp grows to the phase's global_batch")
            if self.global_batch is not None and b[-1] > self.global_batch:
                raise ValueError(f"ramp.batches end at {b[-1]}, past the phase's global_batch {self.global_batch}")
        return self


class FailureSpec(_Strict):
    """Failures and restarts, priced apart from the run (:func:`failure_overhead`)."""

    mtbf_gpu_hours: float = Field(
        gt=0, le=MAX_TIME, description="mean time between failures of one GPU (with its share of the node)"
    )
    checkpoint_s: float = Field(ge=0, le=MAX_TIME, description="seconds the job stops to write a checkpoint")
    restart_s: float = Field(
        ge=0, le=MAX_TIME, description="seconds from a failure to training again (detect, reload, warm up)"
    )
    interval_s: float | None = Field(
        None, gt=0, le=MAX_TIME, description="checkpoint interval [default: Young's sqrt(2 C M)]"
    )


def failure_overhead(f: FailureSpec, gpus: int) -> tuple[float, float]:
    """(the checkpoint interval, the expected wall-time overhead per second of training) of a job on
    ``gpus`` GPUs whose failures come at random (exponentially) every ``M = mtbf_gpu_hours x 3600 / gpus``
    seconds on average. The job works in intervals of ``tau`` seconds, each closed by a checkpoint of ``C``;
    a failure loses the interval under way and costs a restart ``R``, during which failures strike too. A
    try after a failure needs ``R + tau + C`` seconds without one, so an interval takes on average
    (Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps", the wall
    time for exponential failures)

        M e^(R/M) (e^((tau + C)/M) - 1)   seconds:   overhead = (M / tau) e^(R/M) (e^((tau + C)/M) - 1) - 1,

    to first order in ``C``, ``R`` and ``tau`` over ``M`` Young's (1974) ``C / tau + (tau / 2 + R) / M``;
    ``tau`` defaults to Young's ``sqrt(2 C M)``, which minimises that (free checkpoints, ``C = 0``: taken
    continuously, ``tau = 0`` and the overhead ``e^(R/M) - 1``).

    The time grows as ``e^((R + C)/M)`` whatever the interval, so a cluster that fails every few
    restarts may take many times the failure-free time (``M = R + C``: about 5.7 times at Young's
    interval), which is computed as asked; but where a second of training is expected to take more than
    :data:`sim.limits.MAX_TIME` seconds, the bound of any time, the run never completes and is refused
    (``mtbf_gpu_hours: 1e-300`` printed 7.85e298 lost days, ``0.001`` on 512 GPUs 78 days lost on an
    80-second run, from the first-order form). The key named is ``failures.mtbf_gpu_hours`` where even
    Young's interval is past it, else the ``failures.interval_s`` given (``1e-300`` s at ``C = 60``: 6e301 s
    of checkpoints per second of training; ``1e12`` s at ``M = 3.5e5``: ``e^(2.8e6)``). Errors: a
    ScenarioError naming the key (the caller adds the file)."""
    m = f.mtbf_gpu_hours * 3600 / gpus
    c, r = f.checkpoint_s, f.restart_s
    young = math.sqrt(2 * c * m)
    tau = f.interval_s if f.interval_s is not None else young
    log_slowdown = _log_slowdown(m, r, c, tau)
    if log_slowdown > math.log(MAX_TIME):
        at_young = _log_slowdown(m, r, c, young)
        if f.interval_s is None or at_young > math.log(MAX_TIME):
            raise ScenarioError(
                "failures.mtbf_gpu_hours",
                f"on {gpus:,} GPUs the cluster fails every {m:.3g} s on average (mtbf_gpu_hours x 3600 / GPUs): "
                f"with a restart of {r:g} s and a checkpoint of {c:g} s, even at Young's interval each second "
                f"of training is expected to take {_seconds(at_young)}, more than the {MAX_TIME:g} s any time "
                "may be (sim.limits.MAX_TIME): the run never completes; give a longer MTBF, or a shorter "
                "restart_s or checkpoint_s",
            )
        raise ScenarioError(
            "failures.interval_s",
            f"a checkpoint every {tau:g} s of training, each {c:g} s, on a cluster that fails every {m:.3g} s: "
            f"each second of training is expected to take {_seconds(log_slowdown)} with the checkpoints, "
            f"restarts and lost work, more than the {MAX_TIME:g} s any time may be (sim.limits.MAX_TIME): the "
            f"run never completes; give an interval near Young's sqrt(2 C M) = {young:.4g} s",
        )
    return (tau if tau > 0 else 0.0), math.expm1(log_slowdown)


def _log_slowdown(m: float, r: float, c: float, tau: float) -> float:
    """log of Daly's expected wall time per second of training (:func:`failure_overhead`), computed so that
    nothing overflows: ``(M / tau)(e^x - 1) = ((e^x - 1) / x)(1 + C / tau)`` with ``x = (tau + C) / M``; free
    checkpoints taken continuously (``tau = 0``): ``R / M`` (only the restarts cost: a try needs R alone)."""
    if tau <= 0:
        return r / m
    return r / m + _log_expm1_ratio((tau + c) / m) + math.log1p(c / tau)


def _seconds(log_time: float) -> str:
    return f"{math.exp(log_time):.3g} s" if log_time < 700 else "longer than a float holds"


def _log_expm1_ratio(x: float) -> float:
    """``log((e^x - 1) / x)`` for ``x > 0``, finite or inf where ``e^x`` would overflow."""
    if not math.isfinite(x):
        return math.inf
    if x > 700:  # e^x - 1 = e^x to a float's precision
        return x - math.log(x)
    return math.log(math.expm1(x) / x)


class GroupSpec(_Strict):
    name: str = Field(min_length=1)
    phases: list[str] = Field(min_length=1)
    published_gpu_hours: float = Field(ge=1, le=MAX_TIME)


class RunSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    base: str = Field(min_length=1, description="the base scenario, relative to the run file")
    phases: list[PhaseSpec] = Field(min_length=1)
    groups: list[GroupSpec] = Field(default_factory=list)
    failures: FailureSpec | None = None


def load_run(path: Path) -> RunSpec:
    """The run file (errors: one line naming the file and key)."""
    from sim.yamlio import read_yaml

    return run_from_data(read_yaml(path, "run"), path)


def run_from_data(data: Any, path: Path) -> RunSpec:
    """A run from its mapping, as if read from ``path`` (errors: one line naming ``path`` and the key)."""
    if not isinstance(data, dict):
        raise ScenarioError("", "a run file is a mapping", str(path))
    if "phases" not in data and ("base" not in data or "set" in data):  # a scenario: "base: Field required"
        what = "a scenario runs with twin run, a serve scenario with twin serve"
        raise ScenarioError("", f"not a run file (a base scenario and its phases): {what}", str(path))
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
        if g.name in [h.name for h in spec.groups[:i]]:  # (two rows of one name, each its own published delta)
            raise ScenarioError(f"groups.{i}.name", f"{g.name!r} names an earlier group too", str(path))
        unknown = [n for n in g.phases if n not in names]
        if unknown:
            raise ScenarioError(f"groups.{i}.phases", f"no phase is named {unknown[0]!r}", str(path))
        twice = [n for j, n in enumerate(g.phases) if n in g.phases[:j]]
        if twice:  # its GPU-hours were counted twice
            raise ScenarioError(f"groups.{i}.phases", f"{twice[0]!r} is listed twice", str(path))
    return spec


# --------------------------------------------------------------------------- the plan: slices and steps
@dataclass(frozen=True)
class Step:
    """A distinct step of a run: the overrides of the base scenario that make it (paths resolved against
    the run file, ``training.global_batch`` set), and what its scenario gives the integration."""

    sets: dict[str, Any]
    seq_len: int  # tokens per sequence
    gpu_hour_usd: float  # the scenario's GPU price (the rest of its cost is the fabric's share)
    gpus: int = 0  # GPUs of the job (its failure rate); 0: not known


@dataclass(frozen=True)
class PlannedSlice:
    """Tokens of a phase to run at one step: ``tokens`` None for a phase given as a step count."""

    phase: int
    global_batch: int
    tokens: float | None
    step: str  # the key of its step in RunPlan.steps


@dataclass(frozen=True)
class RunPlan:
    """A run's slices and its distinct steps (in the order first needed), each step's scenario checked."""

    spec: RunSpec
    path: Path  # the run file: relative paths of the phases' overrides resolve against its folder
    base_path: Path
    base_folder: Path
    base: dict[str, Any]
    slices: tuple[PlannedSlice, ...]
    steps: dict[str, Step]

    def scenario_data(self, key: str) -> dict[str, Any]:
        """The scenario mapping of the step ``key`` (as a sweep point of the base scenario)."""
        return apply_overrides(self.base, self.steps[key].sets)


def plan_steps(spec: RunSpec, path: Path, known: dict[str, Step] | None = None, layouts: bool = False) -> RunPlan:
    """Every phase's slices and the distinct steps they need (the overrides and batch of a step, made one
    key as a sweep's points are: ``comm.sms: 20`` and ``20.0`` are one step), each step's scenario built
    and checked: a bad override is one line naming ``phases.N.set.KEY`` before anything runs. ``known``:
    steps already checked (by key; the plans of a sweep share them), and the new ones are added to it.
    ``layouts``: each step's layout too (:func:`sim.assemble.step_layout`), as for one run, whose step
    that does not fit is an error of its file (named at the batch that makes it: ``phases.N.global_batch``
    or ``phases.N.ramp.batches.J``); a sweep of runs records such a point as infeasible instead."""
    from sim.sweep.spec import point_key

    folder = path.resolve().parent
    base_path = (folder / spec.base).resolve()
    try:
        base, base_folder = scenario_data(base_path)
    except ScenarioError as err:  # the file itself (missing, a folder, a device; a run file): named at the key
        if err.file != str(base_path):
            raise  # (a file of the base's own chain of bases: named there)
        if not err.key_path:
            raise ScenarioError("base", f"{spec.base}: {err.message}", str(path)) from None
        why = f"{base_path.name} is not a scenario ({err.key_path}: {err.message})"
        raise ScenarioError("base", why, str(path)) from None
    try:  # the base alone, as a scenario (a profile's JSON was blamed on phases.0.set.name)
        scenario_from_data(base, str(base_path), str(base_folder))
    except ScenarioError as err:
        raise ScenarioError(
            "base", f"{base_path.name} is not a scenario ({err.key_path}: {err.message})", str(path)
        ) from None
    steps: dict[str, Step] = {}
    slices: list[PlannedSlice] = []
    built: dict[str, Any] = {}  # steps whose layout is still to check (with ``layouts``): their scenarios
    for i, phase in enumerate(spec.phases):
        whole = phase.set.get("training")  # (the section given whole: its batch is the phase's to set)
        in_whole = isinstance(whole, dict) and "global_batch" in whole
        if ("training.global_batch" in phase.set or in_whole) and (
            phase.global_batch is not None or phase.ramp is not None
        ):
            given = "global_batch" if phase.global_batch is not None else "ramp"
            raise ScenarioError(
                f"phases.{i}.set.training.global_batch",
                f"the phase's {given} sets its batch; remove it here",
                str(path),
            )
        batch = phase.global_batch
        if batch is None:
            batch = _base_batch(base, phase.set, folder, base_path, base_folder, i, path)
        wanted: list[tuple[int, float | None, str]] = []  # (batch, tokens, the key naming it in errors)
        over = phase.ramp.over_tokens if phase.ramp is not None else 0.0
        if phase.ramp is not None and over > 0:
            each = over / len(phase.ramp.batches)
            wanted += [(b, each, f"phases.{i}.ramp.batches.{j}") for j, b in enumerate(phase.ramp.batches)]
        rest = None if phase.tokens is None else phase.tokens - over
        if rest is None or rest > 0:
            wanted.append((batch, rest, f"phases.{i}.global_batch"))
        for b, tokens, where in wanted:
            sets = _with_batch(resolve_paths(dict(phase.set), folder), b)
            key = point_key(sets)
            if key not in steps and known is not None and key in known:
                steps[key] = known[key]
            if key not in steps:
                try:
                    sc = scenario_from_data(apply_overrides(base, sets), str(base_path), str(base_folder))
                except ScenarioError as err:
                    if err.key_path == "training.global_batch":
                        raise ScenarioError(where, err.message, str(path)) from None
                    raise _phase_error(err, i, sets, path) from None
                if layouts:
                    built[key] = sc  # (its layout checked below, after the slice's own checks)
                gpus = sc.training.gpus if sc.training is not None else 0
                steps[key] = Step(sets, sc.model.seq_len, sc.economics.gpu_hour_usd, gpus)
                if known is not None:
                    known[key] = steps[key]
            _check_failures(spec, steps[key], path)
            _check_slice(phase, i, b, tokens, steps[key].seq_len, path, ramped=where != f"phases.{i}.global_batch")
            if key in built:  # (a batch the phase does not give, the base's: named at the phase itself)
                named = f"phases.{i}" if where == f"phases.{i}.global_batch" and phase.global_batch is None else where
                _check_layout(built.pop(key), named, i, sets, path)
            slices.append(PlannedSlice(i, b, tokens, key))
    return RunPlan(spec, path, base_path, base_folder, base, tuple(slices), steps)


def _check_layout(sc: Any, where: str, i: int, sets: dict[str, Any], run: Path) -> None:
    """A step's layout as its run builds it: what the batch decides (its micro-batches) named at the key
    giving the batch (``where``), anything else at the phase's override that makes it."""
    from sim.assemble import step_layout

    try:
        step_layout(sc)
    except ScenarioError as err:
        if err.key_path in ("training.global_batch", "pipeline.microbatches"):
            raise ScenarioError(where, f"{err.key_path}: {err.message}", str(run)) from None
        raise _phase_error(err, i, sets, run) from None


def _check_failures(spec: RunSpec, step: Step, run: Path) -> None:
    """The run's failure model on the step's GPUs, before anything runs (:func:`failure_overhead` refuses
    a cluster that fails faster than it restarts, and an interval whose expected time is past any time)."""
    if spec.failures is not None and step.gpus > 0:
        try:
            failure_overhead(spec.failures, step.gpus)
        except ScenarioError as err:
            raise ScenarioError(err.key_path, err.message, str(run)) from None


def _check_slice(
    phase: PhaseSpec, i: int, batch: int, tokens: float | None, seq_len: int, run: Path, ramped: bool
) -> None:
    """A slice of one step at least (a phase of 1e-300 tokens printed 1e-311 days), and a phase given as a
    step count of at most :data:`MAX_RUN_TOKENS` tokens (1e30 steps printed 1e36 tokens, exit 0). ``ramped``:
    the slice is one of the ramp's."""
    one = batch * seq_len  # tokens of one step
    size = f"one step of {batch:,} sequences x {seq_len:,} tokens ({one:,} tokens)"
    if tokens is None:
        assert phase.steps is not None
        total = phase.steps * one
        if total > MAX_RUN_TOKENS:
            raise ScenarioError(
                f"phases.{i}.steps",
                f"{phase.steps:,} steps of {batch:,} sequences x {seq_len:,} tokens are {total:.3g} tokens, over "
                f"the limit of {MAX_RUN_TOKENS:g} tokens a run may have",
                str(run),
            )
        return
    if tokens >= one:
        return
    over = phase.ramp.over_tokens if phase.ramp is not None else 0.0
    if ramped and phase.ramp is not None:
        n = len(phase.ramp.batches)
        key, why = "ramp.over_tokens", f"{over:g} tokens over {n} batch(es) give each slice {tokens:g} tokens"
    elif over > 0:
        key, why = (
            "tokens",
            f"{phase.tokens:.12g} tokens leave {tokens:.12g} after the ramp's ramp.over_tokens {over:.12g}",
        )
    else:
        key, why = "tokens", f"{tokens:g} tokens"
    raise ScenarioError(f"phases.{i}.{key}", f"{why}: less than {size}", str(run))


def _with_batch(sets: dict[str, Any], batch: int) -> dict[str, Any]:
    """A phase's overrides with its step's global batch: inside ``training`` where the phase gives that
    section whole (a dotted key beside it would be refused: ``sim.overrides.check_nested``)."""
    whole = sets.get("training")
    if isinstance(whole, dict):
        return {**sets, "training": {**whole, "global_batch": batch}}
    return {**sets, "training.global_batch": batch}


def _phase_error(err: ScenarioError, i: int, sets: dict[str, Any], run: Path) -> ScenarioError:
    """A phase's scenario refused, named at ``phases.i.set.KEY``; an error of a file a path override
    names (a folder, another kind of file: no key inside it) at that override, with the file."""
    key = err.key_path
    owner = next((k for k in sets if k in PATH_KEYS or any(p.startswith(k + ".") for p in PATH_KEYS)), None)
    named = sets.get(owner) if owner else None
    if key and err.file and isinstance(named, str) and Path(named).resolve() == Path(err.file).resolve():
        # a key inside the file the override names (a profile's sample): named there, as a sweep names it
        return ScenarioError(key, f"{err.message} (read for {run}: phases.{i}.set.{owner})", err.file)
    if not key:
        at = f"phases.{i}.set.{owner}" if owner else f"phases.{i}.set"
        message = unnamed(err.message)  # (the key that named the file is the one named here)
        return ScenarioError(at, f"{err.file}: {message}" if err.file else message, str(run))
    if any(key == k or key.startswith(k + ".") for k in sets):
        return ScenarioError(f"phases.{i}.set.{key}", err.message, str(run))
    # a key of the base the phase's overrides make wrong together (pipeline.pp: 3 of 2048 GPUs blamed
    # phases.0.set.training.gpus, a key the file does not have): the overrides named, then the key
    given = {k: v for k, v in sets.items() if k != "training.global_batch"}  # (the phase's batch: _with_batch)
    where = f"phases.{i}.set" if given else f"phases.{i}"
    return ScenarioError(where, f"{shown_value(json.dumps(given, default=str))}: {key}: {err.message}", str(run))


def _base_batch(
    base: dict[str, Any], sets: dict[str, Any], folder: Path, path: Path, base_folder: Path, i: int, run: Path
) -> int:
    """The global batch a phase runs at when it gives none: its scenario's."""
    from sim.layout_defaults import DEFAULT_GLOBAL_BATCH

    try:
        data = apply_overrides(base, resolve_paths(dict(sets), folder))
        sc = scenario_from_data(data, str(path), str(base_folder))
    except ScenarioError as err:
        raise _phase_error(err, i, dict(sets), run) from None
    assert sc.training is not None
    return sc.training.global_batch or DEFAULT_GLOBAL_BATCH


def simulate_steps(plan: RunPlan, progress: Any = None) -> dict[str, dict[str, Any]]:
    """Each distinct step of ``plan`` simulated here, one after the other, as a sweep point
    (:func:`sim.sweep.point.run_point`): its row by key; ``progress(n)`` after each."""
    from sim.sweep.point import run_point

    rows: dict[str, dict[str, Any]] = {}
    for key in plan.steps:
        rows[key] = run_point(plan.scenario_data(key), str(plan.base_path), str(plan.base_folder))
        if progress is not None:
            progress(len(rows))
    return rows


# --------------------------------------------------------------------------- the integration
@dataclass
class Slice:
    """Tokens of a phase run at one step."""

    global_batch: int
    tokens: float
    step: dict[str, Any]  # the step's sweep row (run_point)
    seq_len: int
    gpu_hour_usd: float = 0.0  # the step's GPU price: its cost less the fabric's share

    @property
    def steps(self) -> float:
        return self.tokens / (self.global_batch * self.seq_len)

    @property
    def seconds(self) -> float:
        return self.steps * float(self.step["step_time_s"])

    @property
    def gpu_hours(self) -> float:
        return float(self.step["gpu_hours_per_T"]) * self.tokens / 1e12

    @property
    def usd(self) -> float:
        return float(self.step["cost_per_T_usd"]) * self.tokens / 1e12

    def lost(self, failures: FailureSpec) -> tuple[float, float, float]:
        """Expected (seconds, GPU-hours, USD) lost to failures over this slice (:func:`failure_overhead`;
        the dollars at the slice's own cost per GPU-hour)."""
        gpus = int(self.step["gpus"])
        _, overhead = failure_overhead(failures, gpus)
        seconds = self.seconds * overhead
        hours = seconds * gpus / 3600
        return seconds, hours, hours * self.usd / self.gpu_hours

    def to_dict(self, failures: FailureSpec | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "global_batch": self.global_batch,
            "seq_len": self.seq_len,
            "gpus": int(self.step["gpus"]),
            "tokens": self.tokens,
            "steps": self.steps,
            "step_time_s": float(self.step["step_time_s"]),
            "days": self.seconds / 86400,
            "gpu_hours": self.gpu_hours,
            "usd": _finite(self.usd),
            "mfu": float(self.step["mfu_causal"]),
        }
        if failures is not None:
            seconds, hours, usd = self.lost(failures)
            interval, _ = failure_overhead(failures, int(self.step["gpus"]))
            out["failures"] = {
                "interval_s": interval,
                "lost_days": seconds / 86400,
                "lost_gpu_hours": hours,
                "lost_usd": _finite(usd),
            }
        return out


def _finite(x: float) -> float | None:
    """``x``, or None where it is not a number (a cost not modelled: JSON has no NaN)."""
    return None if math.isnan(x) else x


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
            seconds, h, _ = s.lost(self.failures)
            days += seconds / 86400
            hours += h
        return days, hours

    def lost_usd(self) -> float:
        """The dollars of the GPU-hours lost to failures, at each slice's cost per GPU-hour."""
        if self.failures is None:
            return 0.0
        return sum(s.lost(self.failures)[2] for s in self.slices)

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
        return sum(s.gpu_hours for s in self.slices)

    @property
    def usd(self) -> float:
        return sum(s.usd for s in self.slices)

    @property
    def gpu_usd(self) -> float:
        """The GPU price's part of the dollars (GPU-hours at the scenario's price); the rest is the fabric's."""
        return sum(s.gpu_hours * s.gpu_hour_usd for s in self.slices)

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
            "usd": _finite(self.usd),
            "gpu_usd": self.gpu_usd,
            "fabric_usd": _finite(self.usd - self.gpu_usd),
            "mfu": self.mfu,
            "batches": sorted({s.global_batch for s in self.slices}),
            "slices": [s.to_dict(self.failures) for s in self.slices],
        }
        if self.published_gpu_hours is not None:
            out["published_gpu_hours"] = self.published_gpu_hours
        if self.failures is not None:
            days, hours = self.lost()
            out["failures"] = {"lost_days": days, "lost_gpu_hours": hours, "lost_usd": _finite(self.lost_usd())}
        return out


def integrate(plan: RunPlan, rows: dict[str, dict[str, Any]]) -> tuple[list[PhaseResult], list[dict[str, Any]]]:
    """Every phase's slices at their steps' rows (``rows`` by step key), and the groups. A step that did
    not run ok is one line naming the phase that needs it first."""
    from sim.sweep.point import OK

    spec = plan.spec
    results = [
        PhaseResult(p.name, published_gpu_hours=p.published_gpu_hours, failures=spec.failures) for p in spec.phases
    ]
    for s in plan.slices:
        row = rows[s.step]
        if row["status"] != OK:
            raise ScenarioError(f"phases.{s.phase}", f"{spec.phases[s.phase].name}: {row['error']}", str(plan.path))
        step = plan.steps[s.step]
        tokens = s.tokens
        if tokens is None:  # a step count
            count = spec.phases[s.phase].steps
            assert count is not None
            tokens = float(count) * s.global_batch * step.seq_len
        results[s.phase].slices.append(Slice(s.global_batch, tokens, row, step.seq_len, step.gpu_hour_usd))
    if spec.failures is not None:
        _check_lost(spec.failures, results, plan.path)
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


def _check_lost(failures: FailureSpec, results: list[PhaseResult], run: Path) -> None:
    """Refuse a run whose expected time lost to failures is past :data:`sim.limits.MAX_TIME`, the bound of
    any time. :func:`failure_overhead` bounds it per second of training; over a whole run the seconds
    multiply (``interval_s: 1e-10`` on DeepSeek-V3's 2048 GPUs: 6e11 s lost per second of training, 10
    steps 1.3e14 s). The key named is ``failures.interval_s`` where the run at Young's interval stays
    within the bound, else ``failures.mtbf_gpu_hours``."""
    lost = sum(s.lost(failures)[0] for r in results for s in r.slices)
    if not lost > MAX_TIME:
        return
    trained = sum(s.seconds for r in results for s in r.slices)
    young = failures.model_copy(update={"interval_s": None})
    at_young = sum(s.lost(young)[0] for r in results for s in r.slices)
    gpus = sorted({int(s.step["gpus"]) for r in results for s in r.slices})
    on = f"on {', '.join(f'{g:,}' for g in gpus)} GPUs"
    if failures.interval_s is not None and at_young <= MAX_TIME:
        raise ScenarioError(
            "failures.interval_s",
            f"a checkpoint every {failures.interval_s:g} s {on}: the run's {trained:.3g} s of training are expected "
            f"to lose {lost:.3g} s to checkpoints, restarts and lost work, more than the {MAX_TIME:g} s any time "
            f"may be (sim.limits.MAX_TIME); at Young's interval sqrt(2 C M) it would lose {at_young:.3g} s",
            str(run),
        )
    raise ScenarioError(
        "failures.mtbf_gpu_hours",
        f"{on} the run's {trained:.3g} s of training are expected to lose {lost:.3g} s to checkpoints, restarts "
        f"and lost work (at Young's interval {at_young:.3g} s), more than the {MAX_TIME:g} s any time may be "
        "(sim.limits.MAX_TIME): give a longer MTBF, or a shorter restart_s or checkpoint_s",
        str(run),
    )


def plan_run(spec: RunSpec, path: Path, progress: Any = None) -> tuple[list[PhaseResult], list[dict[str, Any]]]:
    """Every phase's slices with their steps simulated (each distinct step once), and the groups."""
    plan = plan_steps(spec, path, layouts=True)
    return integrate(plan, simulate_steps(plan, progress))


def totals(results: list[PhaseResult]) -> dict[str, float]:
    usd = sum(r.usd for r in results)
    gpu_usd = sum(r.gpu_usd for r in results)
    out: dict[str, Any] = {
        "gpu_hours": sum(r.gpu_hours for r in results),
        "days": sum(r.days for r in results),
        "usd": _finite(usd),
        "gpu_usd": gpu_usd,
        "fabric_usd": _finite(usd - gpu_usd),
        "tokens": sum(r.tokens for r in results),
    }
    if any(r.failures is not None for r in results):  # reported apart from the run's own figures
        lost = [r.lost() for r in results]
        out["lost_days"] = sum(days for days, _ in lost)
        out["lost_gpu_hours"] = sum(hours for _, hours in lost)
        out["lost_usd"] = _finite(sum(r.lost_usd() for r in results))
    return out


def summary(spec: RunSpec, results: list[PhaseResult], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The run as data (``run.json``, ``--format json``, the report's source): its phases with their
    slices, the groups, the totals, and the failure model when there is one."""
    out: dict[str, Any] = {
        "run": spec.name,
        "description": spec.description,
        "phases": [r.to_dict() for r in results],
        "groups": groups,
        "total": totals(results),
    }
    if spec.failures is not None:
        out["failures"] = spec.failures.model_dump()
    return out


__all__ = [
    "FailureSpec",
    "GroupSpec",
    "PhaseResult",
    "PhaseSpec",
    "PlannedSlice",
    "RunPlan",
    "RunSpec",
    "Slice",
    "Step",
    "failure_overhead",
    "integrate",
    "load_run",
    "plan_run",
    "plan_steps",
    "run_from_data",
    "simulate_steps",
    "summary",
    "totals",
]
