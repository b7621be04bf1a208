"""Every key of a serve scenario, given each of thirteen hostile values, ends cleanly: the fuzz of
``tests/unit/test_key_fuzz.py`` on DeepSeek's serving deployment (half a second of its traffic). It
found a pool of normal kernels with ``comm_sms: 0`` dividing by zero channels (a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_key_fuzz import SERVE_KEYS, fuzz_key


@pytest.mark.parametrize("key", SERVE_KEYS)
def test_every_serve_key_takes_hostile_values_cleanly(
    key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_key("serve", key, tmp_path, capsys)
