"""A digest of the simulator's own code, so results computed by another revision are not mixed in.

A sweep's results file is a cache: a rerun skips the points it holds. Rows computed before the twin
changed would then stand beside rows computed after, and a table would compare two models without
saying so. Every row records :func:`code_digest` (``twin_code``), the SHA-256 of every Python file of the
``sim`` package and of the model catalog (``models/*.json``: a scenario's ``model.config: llama-3.1-8b``
names one by the twin's own name, so it is part of the twin, not an input; paths and contents, in path
order), and a rerun computes again the rows whose digest differs (:mod:`sim.sweep.store`). It does not
see data files a scenario names by path (profiles, topologies, a ``config.json``): each row records
their digest apart (``twin_inputs``, :meth:`sim.sweep.spec.Sweep.input_digest`), and a row whose files
changed is computed again too.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# the shipped model configs (sim.model.catalog.MODELS_DIR; written here: this floor imports nothing of sim)
CATALOG = PACKAGE.parent / "models"


@functools.cache
def code_digest() -> str:
    """The first 16 hex digits of the SHA-256 of the ``sim`` package's source and the model catalog (the
    module docstring)."""
    return digest_of([(PACKAGE, sorted(PACKAGE.rglob("*.py"))), (CATALOG, sorted(CATALOG.glob("*.json")))])


def digest_of(groups: list[tuple[Path, list[Path]]]) -> str:
    """The digest of files, each named by its path under its group's root (paths and contents in order)."""
    h = hashlib.sha256()
    for root, paths in groups:
        for path in paths:
            h.update(path.relative_to(root.parent).as_posix().encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]


__all__ = ["code_digest", "digest_of"]
