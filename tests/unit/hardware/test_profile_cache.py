"""Loading a profile twice validates it once (scenario loading and assembly both read it, a sweep's
worker at every point), keyed by the file's content: the same text gives the same frozen object, a
rewrite of the same size within the same clock tick is read afresh, and a bad file is refused every
time, never remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.hardware.profile import PROFILES_DIR, dump_profile, load_profile


def test_the_same_text_is_validated_once(tmp_path: Path) -> None:
    text = (PROFILES_DIR / "h800-datasheet.json").read_text()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(text)
    b.write_text(text)
    assert load_profile(a) is load_profile(b)  # one validation, whatever the path


def test_a_rewrite_of_the_same_size_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    profile = load_profile(PROFILES_DIR / "h800-datasheet.json")
    path.write_text(dump_profile(profile))
    first = load_profile(path)
    other = profile.model_copy(update={"efficiency": 0.6 if profile.efficiency != 0.6 else 0.5})
    text = dump_profile(other)
    assert len(text) == len(dump_profile(profile))  # same size, written at once: the same mtime tick
    path.write_text(text)
    assert load_profile(path).efficiency == other.efficiency != first.efficiency


def test_a_bad_profile_is_refused_every_time(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"device": {"name": "X", "sms": 0}}')
    for _ in range(2):
        with pytest.raises(ScenarioError, match="sms"):
            load_profile(path)


def test_the_device_is_checked_on_a_remembered_profile(tmp_path: Path) -> None:
    path = PROFILES_DIR / "h800-datasheet.json"
    load_profile(path)
    with pytest.raises(ScenarioError, match="was requested"):
        load_profile(path, device="B200")
