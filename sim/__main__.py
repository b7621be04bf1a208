"""``python -m sim`` is the ``twin`` command."""

from sim.cli import main

main()
