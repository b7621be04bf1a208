"""Bytes per element of the number formats the twin counts, and the one bit/byte conversion.

The one place these figures live (tests/unit/test_constants.py refuses copies elsewhere):

* BF16 is 2 bytes, FP32 4, FP8 (E4M3 / E5M2) 1.
* DeepSeek-V3's FP8 recipe (V3 report section 3.3.2; REFERENCE.md section 1): activations are
  quantised in 1x128 tiles and weights in 128x128 blocks, each with one FP32 scale. An FP8 activation
  element therefore costs 1 byte plus 4/128 byte of scale: :data:`FP8_TILE_BYTES` = 1.03125 (the
  dispatch payload, saved SwiGLU inputs); a weight block adds 4/128**2 byte per element.
* Link rates: NICs and switch ports are rated in Gb/s (bits), NVLink and HBM in GB/s (bytes);
  :func:`gbit_to_gbyte` is the one conversion (8 bits per byte).
* Memory capacities are binary: an "80 GB" H800 holds 80 GiB (2**30 bytes each; nvidia-smi shows
  81,559 MiB of it), so every memory figure is in :data:`GiB`, the unit its capacity is in.
"""

from __future__ import annotations

FP8_BYTES = 1
BF16_BYTES = 2
FP32_BYTES = 4

FP8_TILE = 128  # elements of an FP8 activation tile (1x128) and the side of a weight block (128x128)
FP8_BLOCK = FP8_TILE  # weights: FP8_BLOCK x FP8_BLOCK elements share one FP32 scale
FP8_TILE_SCALE_BYTES = FP32_BYTES / FP8_TILE  # 4/128 byte per element: the tile's FP32 scale, shared
FP8_TILE_BYTES = FP8_BYTES + FP8_TILE_SCALE_BYTES  # 1.03125: an FP8 activation element with its scale share
FP8_CAST_BYTES = BF16_BYTES + FP8_TILE_BYTES  # a 1x128 cast per element: read BF16, write FP8 and its scale share

BITS_PER_BYTE = 8
GiB = float(1 << 30)  # bytes in a gibibyte: memory per GPU and its capacity


def gbit_to_gbyte(rate_Gbps: float) -> float:
    """A rate in Gb/s (a NIC's 400) as GB/s (50)."""
    return rate_Gbps / BITS_PER_BYTE
