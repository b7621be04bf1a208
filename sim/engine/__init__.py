"""simpy adapters with no GPU words: serial links and a span recorder."""

from sim.engine.link import Link, LinkSet
from sim.engine.recorder import Recorder, Span, Transfer

__all__ = ["Link", "LinkSet", "Recorder", "Span", "Transfer"]
