"""Where every input of a report came from: files with their SHA-256, the twin's version and revision,
the command line and the date (read from the scenario and the files it names; nothing simulated)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from reports.document import literal
from sim.config import Scenario, scenario_data
from sim.hardware.profile import Profile, load_profile
from sim.paths import shown


def git_revision() -> str:
    """The twin's short commit hash ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def topology_path(sc: Scenario) -> Path | None:
    """The topology file the scenario's ``cluster.topology`` names, resolved as the loader does."""
    if sc.cluster is None:
        return None
    try:
        _, folder = scenario_data(sc.source_path)
    except (OSError, ValueError):
        folder = Path.cwd()
    path = Path(sc.cluster.topology)
    return path if path.is_absolute() else (folder / path)


def twin_version() -> str:
    try:
        return importlib.metadata.version("clustertwin")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: ``twin report -o out`` (the console script's path shortened to ``twin``)."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("twin", "__main__.py"):
        args[0] = "twin"
    return " ".join(shlex.quote(a) for a in args)


def provenance(sc: Scenario, argv: list[str] | None = None, now: datetime | None = None) -> list[tuple[str, str]]:
    """(what, value) rows: scenario, topology and profile files (path, SHA-256; the profile's own
    provenance), twin version, git revision, command line, date, Python; document text (names, paths
    and the command line literal: :func:`reports.document.literal`)."""
    rows: list[tuple[str, str]] = []
    src = Path(sc.source_path)
    if src.is_file():
        rows.append(("scenario file", f"`{literal(shown(src))}` (sha256 `{sha256(src)}`)"))
    else:
        rows.append(("scenario file", f"`{literal(str(sc.source_path))}` (built in memory)"))
    rows.append(("scenario", f"`{literal(sc.name)}`, seed {sc.seed}"))
    topo = topology_path(sc)
    if topo is not None and topo.is_file():
        cluster = literal(sc.cluster_spec().name)
        rows.append(("topology file", f"`{literal(shown(topo))}` (sha256 `{sha256(topo)}`; cluster `{cluster}`)"))
    prof = sc.profile_path
    rows.append(("profile file", f"`{literal(shown(prof))}` (sha256 `{sha256(prof)}`)"))
    p = load_profile(prof)
    made = literal(
        f"{p.source} profile for {p.device.name} ({p.device.sms} SMs), created {p.created}, "
        f"twin revision {p.git_revision}"
    )
    built = built_from(p)
    if built:
        made += f"; built from {literal(built)}"
    rows.append(("profile provenance", made + (f"; tool: `{literal(p.tool)}`" if p.tool else "")))
    if p.sources:
        files = "; ".join(f"`{literal(f.name)}` (sha256 `{f.sha256[:16]}...`, {f.bytes:,} B)" for f in p.sources[:6])
        more = f"; and {len(p.sources) - 6} more" if len(p.sources) > 6 else ""
        rows.append(("profile sources", files + more))
    rows += [
        ("twin version", f"clustertwin {twin_version()}"),
        ("git revision", f"`{git_revision()}`"),
        ("command line", f"`{literal(command_line(argv))}`"),
        ("date", (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
    ]
    return rows


def built_from(p: Profile) -> str:
    """What a profile's numbers were measured on, in its own words: the first line of its method (the
    measurements' heading) and any trace imported into it; a profile for an H800 built from an H100's
    measurements says so."""
    parts = []
    first = p.method.strip().splitlines()[0].lstrip("# ").strip() if p.method.strip() else ""
    if first:
        parts.append(first)
    parts += [r for r in p.ran if r.startswith("trace import")]
    return "; ".join(parts)
