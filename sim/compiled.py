"""The step's event loop compiled (optional): its hot modules built with mypyc, loaded in their place.

Why. A training step is some 25,000 events of Python bookkeeping (the coflow table and its link classes,
the flow network, a chunk's DeepEP phases, the pipelines' processes), and the profile is flat: no line
of it takes over 1% of a point of ``scenarios/sweeps/thousand.yaml`` (docs/sweeps.md, "Speed"). mypyc
compiles the same typed sources to C extensions; they do the same float operations in the same order,
so a step gives the same results bit for bit (checked on every build before it is used, below), in
about 0.75x the time (a point of the 1,000-point sweep, in-process: 0.60 s against 0.45 s).

How. ``twin compile`` (:func:`build`) copies the ``sim`` package, compiles :data:`MODULES` with mypyc
(about a minute and a half on 2 cores, once per version of the sources), then runs each of
:data:`CHECKS` in fresh processes from the sources and from the build, and keeps the build only if every
figure printed is the same bits (only the run's wall time may differ). A build is kept under
:func:`cache_root` in a folder named by :func:`build_key`: the digest of the ``sim`` package's sources
(:func:`sim.code_digest.code_digest`, the same that marks a sweep's rows) and this Python's extension
suffix. ``import sim`` calls :func:`install`: when a build of that key exists, a finder loads its
extensions in place of the listed sources. An edited source changes the key, so a stale build is never
loaded (it is not found; the sources run, as without any build). ``TWIN_COMPILED=0`` turns the finder
off (the tests run the sources: they patch classes that a compiled module would not let them patch);
``TWIN_CACHE_DIR`` moves the cache.

Which modules. Those of the event loop whose compiled form gives the same figures on the checks, on
10 points of ``scenarios/sweeps/thousand.yaml`` and on every test of ``tests/unit`` but the four that
patch one of them (2026-12-06), and that the checks import (a build is kept only if every listed
module ran in them). Left out: ``sim.chunk.plan`` (compiled, a sweep point fails: mypyc checks
annotations at run time, and one of its values does not match its annotation; not traced),
``sim.step.timeline``
(no check imports it) and simpy (below, docs/sweeps.md). The chunk timer, op costs, routing, the
context, the step's spec and accounting joined later on 2026-12-06 with simpy's timeouts replaced by
:mod:`sim.engine.clock`'s alarms and loop: together a point about 10% faster (docs/sweeps.md, "Speed").
``sim.chunk.streams`` joined on 2026-12-07, once its exception class moved to :mod:`sim.errors` (mypyc
does not compile a subclass of a builtin exception) and a task's ``moves`` was annotated ``Any`` (its
dataclass failed at import annotated ``object``): a point's 20 task graphs (5,304 tasks, point 503) are
timed in 9.3 ms instead of 16.6 (best of 5, the same ends bit for bit). ``sim.chunk.forms`` (a chunk
plan's max-plus forms on lists, out of ``sim.chunk.plan``) joined later that day.

What mypyc leaves generic (docs/sweeps.md, "What the compiled build did not compile"): a ``zip`` with
``strict=True`` (it specialises ``zip`` only without keywords), a ``functools.cached_property`` (a plain
property: a compiled class has no ``__dict__`` to keep the value in), properties of interpreted classes
(simpy's ``env.now``; the loop reads ``env._now``), and operations on ``Any``.
A value that breaks an annotation only on
a path the checks miss fails that run with a TypeError (an error, never other figures).

Floating point. The build asks the C compiler not to fuse a multiply and an add into one rounding
(``-ffp-contract=off``; GCC fuses by default where the machine has the instruction, as aarch64 does),
so each operation rounds as Python's does.
"""

from __future__ import annotations

# Only what install() needs at `import sim` (twin --help starts in 0.1 s); the rest is imported where used.
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from sim.errors import TwinError

PACKAGE = Path(__file__).resolve().parent  # the sim package (sim.code_digest's, which install reads lazily)

MODULES: tuple[str, ...] = (
    "sim.chunk.forms",
    "sim.chunk.op_cost",
    "sim.chunk.streams",
    "sim.chunk.timer",
    "sim.engine.clock",
    "sim.engine.recorder",
    "sim.network.coflow",
    "sim.network.context",
    "sim.network.flows",
    "sim.network.link_classes",
    "sim.network.linklog",
    "sim.network.maxmin",
    "sim.network.routing",
    "sim.pipeline.deps",
    "sim.pipeline.execute",
    "sim.pipeline.ops",
    "sim.step.accounting",
    "sim.step.actions",
    "sim.step.chunk_comm",
    "sim.step.shared",
    "sim.step.spec",
)
OFF = "TWIN_COMPILED"  # "0": never load a build
CACHE = "TWIN_CACHE_DIR"  # the cache's folder [default: $XDG_CACHE_HOME/clustertwin, else ~/.cache/clustertwin]
MANIFEST = "manifest.json"
KEPT = 4  # builds kept (of other versions of the sources): the oldest beyond are removed by a build
# The C compiler's optimisation level (mypyc's MYPYC_OPT_LEVEL, the -O it passes). Measured 2026-12-07 on
# this package (21 modules, 2 cores, the same sources built three times): -O0 built in 64 s and ran a
# sweep point in 1.3 to 1.5 s; -O1 in 80 s and -O3 (mypyc's default) in 111 s, a point in 0.69 to 0.77 s
# and 0.68 to 0.84 s (10 points of thousand.yaml in-process, 4 alternating runs): -O1 runs as fast and
# builds in 0.7x the time. Every level gave the same figures on the checks (they are exact C doubles).
OPT_LEVEL = "1"
DIR = "TWIN_COMPILED_DIR"  # a build's folder to load instead of the cache's (a build's own checks)
# What a build must reproduce bit for bit before it is kept (every figure but the wall time): twin's
# arguments, {random} standing for the default scenario with ``workload.routing: random`` (written
# beside the build). The default step; that step with random routing (each layer's DeepEP phases timed
# alone, flow by flow); Qwen3 with TP, virtual stages and overlapped EP; the schedule comparison of
# DualPipe's table. Paths are relative to the checkout; a check whose file is absent is skipped.
CHECKS: tuple[tuple[str, ...], ...] = (
    ("run", "--format", "json"),
    ("run", "{random}", "--format", "json"),
    ("run", "scenarios/qwen3-235b-h100-256-tp2pp8vp4ep32-overlap.yaml", "--format", "json"),
    ("run", "scenarios/dualpipe-table.yaml", "--format", "json"),
)


def ext_suffix() -> str:
    """This Python's suffix of extension modules (``.cpython-311-x86_64-linux-gnu.so``)."""
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def cache_root() -> Path:
    """Where builds are kept (``TWIN_CACHE_DIR``/compiled, else the user's cache folder)."""
    env = os.environ.get(CACHE)
    if env:
        return Path(env) / "compiled"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clustertwin" / "compiled"


def build_key(fresh: bool = False) -> str:
    """The build these sources load: their digest and this Python's extension suffix (``fresh``: the
    sources as they are now, not as this process first read them)."""
    from sim.code_digest import code_digest

    digest = code_digest.__wrapped__() if fresh else code_digest()
    return digest + key_suffix()


def key_suffix() -> str:
    """How every build key for this Python ends (its extension suffix, without ``.so``, dots as dashes)."""
    return ext_suffix().removesuffix(".so").replace(".", "-")


CHANGED = "the sources changed during the build; run twin compile again"


class _Finder(importlib.abc.MetaPathFinder):
    """Loads the listed modules from a build's extension files (nothing else)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        import importlib.util

        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


_active: Path | None = None


def active() -> Path | None:
    """The build this process loads its listed modules from (None: the sources)."""
    return _active


def _read_manifest(folder: Path) -> dict[str, Path] | None:
    """The build's module files by module name, if ``folder`` holds a whole build of this key."""
    import json

    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = {str(name): folder / str(rel) for name, rel in manifest["modules"].items()}
        if manifest["key"] != build_key() or set(MODULES) - set(files):
            return None
        # only the listed modules and the one library mypyc builds beside them, inside the build's folder
        extra = [name for name in files if name not in MODULES]
        if len(extra) > 1 or any(not name.endswith("__mypyc") or "." in name for name in extra):
            return None
        inside = folder.resolve()
        if not all(p.resolve().is_relative_to(inside) and p.is_file() for p in files.values()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError):
        return None
    return files


def install(folder: Path | None = None) -> Path | None:
    """Load the listed modules from the build of these sources when there is one (``import sim`` calls
    it); ``folder``: that build instead of the cache's. Returns the build's folder, or None (the sources
    run: ``TWIN_COMPILED=0``, no build of this key, or a listed module already imported)."""
    global _active
    if _active is not None or os.environ.get(OFF, "") == "0":
        return _active
    if folder is None and os.environ.get(DIR):
        folder = Path(os.environ[DIR])
    if folder is None:
        try:
            root = cache_root()  # (no home folder: RuntimeError)
            if not any(not p.name.startswith(".") for p in root.iterdir()):  # (no build: no digest to compute)
                return None
            folder = root / build_key()
        except (OSError, RuntimeError):
            return None
    files = _read_manifest(folder)
    if files is None or any(name in sys.modules for name in files):
        return None
    sys.meta_path.insert(0, _Finder(files))
    _active = folder
    return folder


def _cached_builds() -> tuple[Path, list[Path]] | None:
    """(the cache's folder, its builds for this Python, of any sources) when this process runs the sources
    by default; None when a build runs, builds are turned off or given by folder, or the cache cannot be
    read (no home folder). No cache folder yet: no builds."""
    if _active is not None or os.environ.get(OFF, "") == "0" or os.environ.get(DIR):
        return None
    try:
        root = cache_root()
    except RuntimeError:  # (Path.home(): no home folder)
        return None
    suffix = key_suffix()
    try:
        return root, [p for p in root.iterdir() if p.name.endswith(suffix) and (p / MANIFEST).is_file()]
    except FileNotFoundError:
        return root, []
    except OSError:
        return None


def stale() -> Path | None:
    """The cache's folder when this process runs the sources while the cache holds a build of other
    sources for this Python (the sources were edited or updated since ``twin compile``; a long run may
    want to build again), else None (a build runs, builds are turned off or given by folder, or the
    cache holds none for this Python)."""
    cached = _cached_builds()
    if cached is None:
        return None
    root, builds = cached
    try:
        mine = build_key()
    except (OSError, RuntimeError):
        return None
    return root if any(p.name != mine for p in builds) else None


HINT_POINTS = 200  # a sweep of at least this many points run from the sources, no build at all: say twin compile


def missing(points: int) -> bool:
    """Whether a sweep of ``points`` points should hear of ``twin compile``: at least :data:`HINT_POINTS`,
    run from the sources with no build in the cache for this Python (builds not turned off nor given by
    folder). :func:`stale` covers a cache of other sources' builds."""
    cached = _cached_builds() if points >= HINT_POINTS else None
    return cached is not None and not cached[1]


def loaded() -> list[str]:
    """The listed modules this process runs compiled (imported from a build's extension files)."""
    suffix = ext_suffix()
    return [m for m in MODULES if (getattr(sys.modules.get(m), "__file__", None) or "").endswith(suffix)]


# ---------------------------------------------------------------------------------------------- building
class BuildError(TwinError):
    """Why a build could not be made or was not kept (one line; exit status 2)."""


class Built(NamedTuple):
    """A kept build: its folder, mypyc's seconds, and per check its command line and its seconds from the
    sources and compiled (``reused``: already kept for these sources, nothing done)."""

    folder: Path
    compile_s: float
    checks: tuple[tuple[str, float, float], ...]
    reused: bool = False


CHECK_SCRIPT = (
    "import json, sys, time\n"
    "import sim.compiled as c\n"
    "from sim.cli import main\n"
    "t = time.perf_counter()\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "else:\n"
    "    code = 0\n"
    "imported = [m for m in c.MODULES if m in sys.modules]\n"
    "tail = {'code': code, 'imported': imported, 'loaded': c.loaded(), 's': time.perf_counter() - t}\n"
    "print(json.dumps(tail), file=sys.stderr)\n"
)


def _check(args: list[str], root: Path, env: dict[str, str]) -> tuple[bytes, dict[str, Any]]:
    """What ``twin ARGS`` prints in a fresh process, and what it says of the listed modules."""
    import json
    import subprocess

    try:
        r = subprocess.run(
            [sys.executable, "-c", CHECK_SCRIPT, *args], cwd=root, env=env, capture_output=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"twin {' '.join(args)} took over 15 minutes; the build is not kept") from None
    lines = r.stderr.decode(errors="replace").strip().splitlines()
    try:
        tail = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BuildError(f"twin {' '.join(args)} did not finish: {lines[-1] if lines else r.returncode}") from None
    if tail["code"] != 0:
        raise BuildError(f"twin {' '.join(args)} failed: {lines[-2] if len(lines) > 1 else tail['code']}")
    return r.stdout, tail


WALL = "wall_s"  # the host's time a run took, printed in its statistics: the one figure allowed to differ


def _figures(out: bytes) -> object:
    """A run's printed JSON without its wall times (every other value compared exactly: JSON keeps a
    float's shortest repr, which reads back to the same bits)."""
    import json

    def strip(x: object) -> object:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != WALL}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    try:
        return strip(json.loads(out))
    except ValueError:
        return out


def _checks(folder: Path, scratch: Path, say: Callable[[str], None]) -> tuple[tuple[str, float, float], ...]:
    """Each of :data:`CHECKS` from the sources and from the build in ``folder``: the same figures out
    (:func:`_figures`), and every listed module the run imports loaded compiled (a build that did not load
    because the sources changed meanwhile says so); over the checks, every listed module imported."""
    import json

    from sim.paths import DEFAULT_SCENARIO

    root = PACKAGE.parent
    random = scratch / "random.yaml"  # (JSON is YAML)
    derived = {"base": str(DEFAULT_SCENARIO), "name": "random", "set": {"workload.routing": "random"}}
    random.write_text(json.dumps(derived))
    done, seen = [], set()
    for check in CHECKS:
        args = [str(random) if a == "{random}" else a for a in check]
        if any(a.startswith("scenarios/") and not (root / a).is_file() for a in args):
            continue
        shown = " ".join(check)
        say(f"checking twin {shown}: from the sources, then compiled")
        out_a, tail_a = _check(args, root, {**os.environ, OFF: "0"})
        out_b, tail_b = _check(args, root, {**os.environ, OFF: "1", DIR: str(folder)})
        imported = sorted(tail_b["imported"])
        if tail_a["loaded"] or sorted(tail_b["loaded"]) != imported:
            if build_key(fresh=True) != json.loads((folder / MANIFEST).read_text())["key"]:
                raise BuildError(CHANGED)
            missing = sorted(set(imported) - set(tail_b["loaded"]))
            raise BuildError(f"the build did not load in place of the sources (not loaded: {', '.join(missing)})")
        if _figures(out_a) != _figures(out_b):
            raise BuildError(f"twin {shown} printed other results compiled than from the sources: not kept")
        seen.update(imported)
        done.append((shown, float(tail_a["s"]), float(tail_b["s"])))
    if not seen >= set(MODULES):
        raise BuildError(f"the checks never ran {', '.join(sorted(set(MODULES) - seen))}: the build is not kept")
    return tuple(done)


def _mypyc(src: Path) -> None:
    import subprocess

    try:
        import mypy.version  # noqa: F401  (mypyc comes with mypy)
    except ModuleNotFoundError:
        raise BuildError("mypyc is not installed (it comes with mypy): pip install -e '.[compiled]'") from None
    files = [str(Path(*m.split(".")).with_suffix(".py")) for m in MODULES]
    # each float operation rounded on its own, as Python rounds it (module docstring); mypy's own
    # options, not a user's config file
    flags = os.environ.get("CFLAGS", "")
    if any(f in flags for f in ("-ffast-math", "-Ofast", "-funsafe-math")):
        raise BuildError(f"CFLAGS={flags!r} lets the compiler reorder float operations; unset it to build")
    env = {**os.environ, "MYPYC_OPT_LEVEL": OPT_LEVEL, "CFLAGS": f"{flags} -ffp-contract=off".strip()}
    # PYTHONPATH set to anything (even a folder that does not exist) made mypy read the modules the
    # build imports differently (sim/model/spec.py's pydantic model then lacked its defaults: "Missing
    # named argument") and the build fail. So mypyc runs without it: it must be installed in this
    # interpreter's environment (pip install -e '.[compiled]' puts it there), and the build reads only
    # its copy of the sources (cwd)
    env.pop("PYTHONPATH", None)
    env.pop("MYPYPATH", None)
    config = src / "mypy.ini"
    config.write_text("[mypy]\n")
    try:
        r = subprocess.run(
            [sys.executable, "-m", "mypyc", "--config-file", str(config), *files],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired:
        raise BuildError("mypyc took over 30 minutes; not kept") from None
    if r.returncode != 0:
        text = (r.stderr + r.stdout).strip().splitlines()
        errors = [line for line in text if "error" in line.lower()] or text or [f"exit status {r.returncode}"]
        raise BuildError(
            f"mypyc could not build the modules ({errors[0].strip()[:300]}); it needs a C compiler and Python's headers"
        )


def build(say: Callable[[str], None] = lambda _: None, force: bool = False) -> Built:
    """Compile :data:`MODULES` from a copy of the sources, check the build (:data:`CHECKS`, the same bits)
    and keep it under :func:`cache_root` (module docstring). ``say`` hears each stage."""
    import datetime
    import json
    import shutil
    import tempfile
    import time

    key = build_key(fresh=True)
    try:
        root = cache_root()
    except RuntimeError:  # (Path.home(): no home folder)
        raise BuildError(f"no home folder to keep the build in: set {CACHE}") from None
    final = root / key
    if not force and _read_manifest(final) is not None:
        return Built(final, 0.0, (), reused=True)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BuildError(f"{root}: cannot make the cache folder ({err.strerror or err})") from None
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(PACKAGE, src / "sim", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        say(f"compiling {len(MODULES)} modules of the event loop with mypyc (about a minute, once per version)")
        t = time.perf_counter()
        _mypyc(src)
        compile_s = time.perf_counter() - t
        out = Path(tmp) / key
        suffix = ext_suffix()
        modules: dict[str, str] = {}
        for path in [src / (Path(*m.split(".")).as_posix() + suffix) for m in MODULES] + sorted(src.glob("*" + suffix)):
            rel = path.relative_to(src)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), out / rel)
            modules[".".join(rel.parts).removesuffix(suffix)] = rel.as_posix()
        if build_key(fresh=True) != key:
            raise BuildError(CHANGED)
        import mypy.version

        manifest = {
            "key": key,
            "modules": modules,
            "mypyc": mypy.version.__version__,
            "python": sys.version.split()[0],
            "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        checks = _checks(out, Path(tmp), say)  # (sources changed meanwhile: it did not load, and says so)
        with _locked(root):  # one build puts its folder in place at a time
            try:
                if force or _read_manifest(final) is None:  # (else another build kept one meanwhile: ours goes)
                    if final.exists():  # set aside, not removed: a running process may still load from it
                        os.replace(final, root / f".old-{os.getpid()}-{time.time_ns()}")
                    os.replace(out, final)
                _prune(root, keep=final)
            except OSError as err:
                raise BuildError(f"{final}: cannot put the build in place ({err.strerror or err})") from None
    return Built(final, compile_s, checks)


class _locked:
    """An exclusive lock on ``root/.lock`` for the ``with`` block (``fcntl.flock``; none where it is missing)."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self.file: Any = None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ModuleNotFoundError:  # (not POSIX)
            return
        self.file = open(self.path, "a")  # (closed in __exit__)
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        if self.file is not None:
            self.file.close()  # (closing releases the lock)


DAY_S = 86400.0  # a build beyond KEPT, set aside or left by a killed build is removed after a day unused


def _prune(root: Path, keep: Path) -> None:
    """Remove, once a day has passed since they were made: the builds beyond the :data:`KEPT` newest
    (other versions of the sources), the builds set aside by a ``--force`` and the scratch folders of
    builds that were killed. (A process may load from a build for as long as it runs.)"""
    import shutil
    import time

    stale = time.time() - DAY_S
    builds = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_mtime)
    old = [p for p in builds[: max(0, len(builds) - KEPT)] if p != keep]
    old += [*root.glob(".old-*"), *root.glob(".build-*")]
    for path in old:
        if _mtime(path) < stale:
            shutil.rmtree(path, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = [
    "CHECKS",
    "MODULES",
    "BuildError",
    "Built",
    "active",
    "build",
    "build_key",
    "cache_root",
    "install",
    "key_suffix",
    "loaded",
    "stale",
]
