"""Records what ran where and when: compute spans and transfers, as plain tuples (fast)."""

from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    """One action on a device's compute stream; times in seconds."""

    device: int
    pos: int  # position in the device's action list
    label: str
    start: float
    end: float


class Transfer(NamedTuple):
    """One point-to-point transfer (activation or gradient) between devices."""

    src: int
    dst: int
    label: str
    nbytes: float
    start: float
    arrival: float


class Recorder:
    """Collects spans and transfers in the order they complete."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.transfers: list[Transfer] = []

    def span(self, device: int, index: int, label: str, start: float, end: float) -> None:
        self.spans.append(Span(device, index, label, start, end))

    def transfer(self, src: int, dst: int, label: str, nbytes: float, start: float, arrival: float) -> None:
        self.transfers.append(Transfer(src, dst, label, nbytes, start, arrival))
