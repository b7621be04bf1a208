"""``python -m sim`` is the ``twin`` command."""

from sim.entry import main

main()
