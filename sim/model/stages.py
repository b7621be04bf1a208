"""The layer-to-stage map: which layers each pipeline stage holds.

Not published for DeepSeek-V3 (REFERENCE.md section 8), so a scenario parameter: an explicit list of
layers per stage, or by default as even as possible with the smaller counts on the first stage
(which also holds the embedding) and the last (the output head and the MTP module), then from both
ends inwards.
"""

from __future__ import annotations

from sim.errors import ScenarioError


def layers_per_stage(layers: int, pp: int, explicit: list[int] | None = None) -> list[int]:
    """Layers of each of ``pp`` stages (in order), summing to ``layers``."""
    if explicit is not None:
        if len(explicit) != pp:
            raise ScenarioError("layers_per_stage", f"give one count per stage ({pp}), got {len(explicit)}")
        if sum(explicit) != layers or min(explicit) < 0:
            raise ScenarioError("layers_per_stage", f"counts must be >= 0 and add up to {layers}, got {explicit}")
        return list(explicit)
    if pp > layers:
        raise ScenarioError("pp", f"{pp} stages is more stages than the model's {layers} layers")
    base, extra = divmod(layers, pp)
    sizes = [base] * pp
    # the extra layers go to the middle stages first: order stages by distance from the ends, farthest first
    order = sorted(range(pp), key=lambda s: (-min(s, pp - 1 - s), s))
    for s in order[:extra]:
        sizes[s] += 1
    return sizes


def stage_layers(layers: int, pp: int, explicit: list[int] | None = None) -> list[range]:
    """The layer ids (0-based) of each stage."""
    out = []
    start = 0
    for n in layers_per_stage(layers, pp, explicit):
        out.append(range(start, start + n))
        start += n
    return out
