"""The ``twin`` console script's entry (and ``python -m sim``'s).

A Ctrl-C is one line, ``error: interrupted``, exit status 130, from the first instant: the command's
own handling (:func:`sim.cli.common.invoke`) starts only once typer and rich are imported (about 70 ms,
longer on a cold file cache), and a Ctrl-C during those imports printed a KeyboardInterrupt traceback.
This module imports nothing before that.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from sim.cli import main as twin

        twin()  # (its imports before the command's own handling, rich's among them, are under this one)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
