"""Where the checkout is, and paths as outputs show them.

An output (a report, a sweep's rows, help text) must read the same on every machine, so it never
holds the absolute path of the checkout that wrote it: :func:`shown` gives a path relative to the
checkout when it lies inside it (``topologies/ft2-16384.yaml``), else relative to the working folder
when inside that, else as given; :func:`shown_in` does the same to every checkout path inside a text
(an error message that names a file).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the checkout: sim/ lives at its top
DEFAULT_SCENARIO = REPO / "scenarios" / "deepseek_v3_pretrain.yaml"  # the embedded default scenario


def shown(path: str | Path) -> str:
    """``path`` relative to the checkout, or to the working folder, when inside it; else as given."""
    p = Path(path)
    try:
        full = p.resolve()
    except OSError:
        return str(path)
    for root in (REPO, Path.cwd().resolve()):
        try:
            return str(full.relative_to(root))
        except ValueError:
            continue
    return str(path)


def shown_in(text: str) -> str:
    """``text`` with every path inside the checkout written relative to it."""
    return text.replace(str(REPO) + os.sep, "")


def not_a_file(path: Path, given: str, missing: str, give: str = "") -> str:
    """Why ``path`` (written ``given``) is no file to read (a folder or a device was said to be missing)."""
    if path.is_dir():
        return f"{given} is a folder{give}"
    if path.exists():
        return f"{given} is not a regular file (a device, pipe or socket){give}"
    return f"{missing}: {given}"
