"""A digest of the simulator's own code, so results computed by another revision are not mixed in.

A sweep's results file is a cache: a rerun skips the points it holds. Rows computed before the twin
changed would then stand beside rows computed after, and a table would compare two models without
saying so. Every row records :func:`code_digest` (``twin_code``), the SHA-256 of every Python file of the
``sim`` package (paths and contents, in path order), and a rerun computes again the rows whose digest
differs (:mod:`sim.sweep.store`). It does not see data files a scenario names (profiles, topologies):
each row records their digest apart (``twin_inputs``, :meth:`sim.sweep.spec.Sweep.input_digest`), and
a row whose files changed is computed again too.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache
def code_digest() -> str:
    """The first 16 hex digits of the SHA-256 of the ``sim`` package's source (the module docstring)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(path.relative_to(PACKAGE).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


__all__ = ["code_digest"]
