"""A point function for the pool tests: it kills its own process for comm.sms == 13 (as a crash or an
out-of-memory kill would), and returns a small row otherwise."""

from __future__ import annotations

import os
from typing import Any


def crash_on_13(data: dict[str, Any], path: str, folder: str) -> dict[str, Any]:
    sms = data["comm"]["sms"]
    if sms == 13:
        os._exit(1)
    return {"status": "ok", "error": "", "step_time_s": float(sms)}
