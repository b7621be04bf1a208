"""Upper bounds on work a single run may ask for, and the memory check that refuses absurd sizes.

Every count a user gives (flag or file) has a documented upper bound here; work whose estimated
memory exceeds what this machine has available is refused before it starts, with the estimate
(:func:`require_memory`). See docs/errors.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from sim.errors import ScenarioError, shown

MAX_GPUS = 1 << 20  # GPUs in one cluster description (ISCA'25's largest is 65,536)
MAX_GPUS_PER_NODE = 1024
MAX_PP = 4096  # pipeline stages
MAX_MICROBATCHES = 1 << 20
MAX_VIRTUAL_STAGES = 256
MAX_SCHEDULE_ACTIONS = 1_000_000  # actions of one schedule (PP x micro-batches x ops); ~20 s to run
MAX_STEP_ACTIONS = 250_000  # actions of a training step's schedule, each a chunk: ~1 min representative
MAX_EXPERTS = 1 << 15  # routed experts: a token's chosen expert ids are int16 (sim.moe.select), 0 .. 32,767
MAX_TOKENS = 1 << 24  # tokens per GPU / per step
MAX_HIDDEN = 1 << 20  # any width of a model (hidden, FFN, head, LoRA rank) and its head counts
MAX_VOCAB = 1 << 24  # a model's vocabulary (the largest published are ~256K)
MAX_STEPS = 1_000_000  # balancing steps
MAX_LAYERS = 1024
MAX_SMS = 1024
MAX_SEED = (1 << 63) - 1
MAX_BYTES = 1e18  # any byte count (an exabyte)
ROUTING_TOKEN_GPU_BYTES = 256  # routing memory per (token, GPU): scores chunked per GPU, choices, traffic counts
MAX_SWEEP_SIZES = 1000  # sizes of one collective's sweep (twin collective -b/-e/-f/-i); each is a simulation
MAX_RATE = 1e15  # any rate in GB/s or TFLOPS
# The least rate (GB/s, Gb/s, TB/s, TFLOPS) read. Nearer 0 a rate meets the factors of a run (a link's
# share, a slowdown, unit conversions) below the least normal double (2.2e-308): it underflows to a
# denormal or to 0, and a division gives inf or a ZeroDivisionError before any figure is checked (a NIC of
# 5e-324 or 1e-307 Gb/s: a traceback; 1e-310: a loop that never ended). Measured: 1e-305 Gb/s still gave
# figures, refused as an overflow naming the input (sim.run.check_finite); this bound keeps a margin of
# 1e5 above it, and every rate between it and 1e-100 is refused that way too (its times past sim.run.EDGE).
MIN_RATE = 1e-300
MAX_TIME = 1e12  # any time in the time unit given
MAX_RUN_TOKENS = 1e18  # tokens of one training run (published budgets are ~1.5e13)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup limit if any."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover
            avail = 8 << 30
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                avail = min(avail, int(limit) - int(Path(usage_file).read_text().strip()))
            break
        except (OSError, ValueError):
            continue
    return max(avail, 0)


def gib(n: float) -> str:
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.0f} MiB"


def require_memory(needed: float, what: str, key: str, hint: str, fraction: float = 0.8) -> None:
    """Refuse work estimated to need more than ``fraction`` of the memory available now."""
    avail = available_memory()
    if needed > fraction * avail:
        raise ScenarioError(key, f"{what} needs about {gib(needed)}; this machine has {gib(avail)} available; {hint}")


def require_count(value: int, limit: int, what: str, key: str, hint: str) -> None:
    """Refuse a derived count (e.g. schedule actions) above its documented bound."""
    if value > limit:
        raise ScenarioError(key, f"{what} is {value:,}, over the limit of {limit:,}; {hint}")


def schedule_actions(pp: int, microbatches: int, virtual_stages: int = 1) -> int:
    """An upper estimate of a schedule's actions: F, I and W of every (stage, micro-batch)."""
    return 3 * pp * max(1, virtual_stages) * microbatches


def check_schedule_size(pp: int, microbatches: int, virtual_stages: int, key: str) -> None:
    require_count(
        schedule_actions(pp, microbatches, virtual_stages),
        MAX_SCHEDULE_ACTIONS,
        "the schedule's action count (3 x PP x virtual stages x micro-batches)",
        key,
        "use fewer stages or micro-batches",
    )


def check_scenario_sizes(scenario: object, virtual_stages: int | None = None) -> None:
    """A scenario's counts within the bounds above, before anything is built (key paths in errors);
    ``virtual_stages``: the most its schedules build with (the caller asks the schedule registry:
    those that do not split a device ignore ``pipeline.virtual_stages``) [default: the scenario's]."""
    plan = getattr(scenario, "pipeline", None)
    bounds: tuple[tuple[str, object, int], ...] = (
        ("pipeline.pp", getattr(plan, "pp", None), MAX_PP),
        ("pipeline.microbatches", getattr(plan, "microbatches", None), MAX_MICROBATCHES),
        ("pipeline.virtual_stages", getattr(plan, "virtual_stages", None), MAX_VIRTUAL_STAGES),
    )
    work = getattr(scenario, "workload", None)
    bounds += (
        ("workload.tokens", getattr(work, "tokens", None), MAX_TOKENS),
        ("workload.ep", getattr(work, "ep", None), MAX_GPUS),
        ("workload.layers_per_stage", getattr(work, "layers_per_stage", None), MAX_LAYERS),
        ("comm.sms", getattr(getattr(scenario, "comm", None), "sms", None), MAX_SMS),
    )
    for key, value, limit in bounds:
        if isinstance(value, int) and value > limit:
            raise ScenarioError(key, f"must be at most {limit:,}, got {shown(f'{value:,}')}")
    pp, n, v = (getattr(plan, k, None) for k in ("pp", "microbatches", "virtual_stages"))
    if isinstance(pp, int) and isinstance(n, int):
        used = virtual_stages if virtual_stages is not None else v if isinstance(v, int) else 1
        check_schedule_size(pp, n, used, "pipeline.microbatches")
    tokens, ep = getattr(work, "tokens", None), getattr(work, "ep", None)
    if getattr(scenario, "ops", None) is None and isinstance(tokens, int) and isinstance(ep, int):
        require_memory(
            tokens * ep * 256,
            f"routing {tokens:,} tokens on each of {ep:,} GPUs",
            "workload.tokens",
            "use fewer tokens",
        )
