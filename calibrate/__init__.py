"""Calibration: the only code that may import torch (microbenchmarks), plus trace import (no torch).

Nothing in ``sim`` imports this package.
"""
