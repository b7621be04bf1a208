"""A function a spawned worker runs in the pool test (tests/unit/sweep/test_pool.py): this module imports
nothing, so what it reports was loaded by the worker's start-up."""

import sys


def loaded(names: list[str]) -> list[str]:
    """Those of ``names`` the calling process has imported."""
    return [n for n in names if n in sys.modules]
