"""clustertwin: a discrete-event digital twin of a large GPU training cluster.

The package ``sim`` holds all simulation logic. It never imports torch, ``reports`` or
``calibrate``; only ``sim.cli`` (the command-line layer) reaches into ``reports`` and ``calibrate``.
Inside, packages stand on floors and import only downwards (``tests/unit/test_layering.py``).
"""

__version__ = "0.1.0"

from sim import compiled as _compiled  # the event loop's compiled build, when one is kept (sim.compiled)

_compiled.install()
