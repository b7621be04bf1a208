"""The breakdown's ``ep_comm_exposed_s`` is the chunks' exposed communication: DeepEP's all-to-alls and,
where the layout has them, the TP and CP collectives on the same stream. The report's sentence names
what it holds (it said "A dense model: no EP all-to-all inside the chunks" beside 1.2 s of exposed TP
collectives for Llama 3.1 405B at TP 8)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from reports.step_report import ep_exposed_text


@pytest.mark.parametrize(
    ("moe", "collectives", "named"),
    [
        (True, False, "on DeepEP all-to-alls ("),
        (True, True, "on DeepEP all-to-alls and TP/CP/expert-TP collectives ("),
        (False, True, "on TP/CP/expert-TP collectives ("),
    ],
)
def test_the_sentence_names_what_the_figure_holds(moe: bool, collectives: bool, named: str) -> None:
    b: Any = SimpleNamespace(ep_comm_exposed_s=1.219)
    text = ep_exposed_text(b, moe, collectives)
    assert text.startswith("Inside those chunks, compute waited 1,219.0 ms ") and named in text


def test_a_dense_model_without_tp_or_cp_has_none() -> None:
    b: Any = SimpleNamespace(ep_comm_exposed_s=0.0)
    assert ep_exposed_text(b, False, False) == "A dense model without TP or CP: no communication inside the chunks."
