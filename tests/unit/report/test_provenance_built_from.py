"""A profile's provenance says what its numbers were measured on (issue: a profile built from an
H100's measurements and DeepSeek's trace called itself a measured profile of the H800)."""

from __future__ import annotations

from pathlib import Path

from reports.provenance import built_from
from sim.hardware.profile import load_profile

PROFILES = Path(__file__).resolve().parents[3] / "calibrate" / "profiles"


def test_the_h800_profile_names_the_h100_it_was_measured_on_and_the_trace() -> None:
    text = built_from(load_profile(PROFILES / "h800.json"))
    assert "H100" in text and "profile-data-train.json" in text


def test_a_datasheet_profile_claims_no_measurement() -> None:
    assert built_from(load_profile(PROFILES / "h800-datasheet.json")) == ""
