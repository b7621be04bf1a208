"""A user's string in a report (a scenario's name or description, a study's title, a variant's label)
shows as typed in the Markdown and in the HTML: its ``*``, ``_``, backquotes, ``~`` and backslashes are
text, never bold, emphasis or code, even inside the report's own **bold** or `code`; the report's own
markup still renders (:func:`reports.document.literal`)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reports.codesign_report import codesign_document
from reports.document import Document, literal
from reports.step_report import step_document
from sim.config import load_scenario
from sim.experiments.codesign import load_codesign
from sim.run import simulate_training
from sim.sweep.point import METRICS

ROOT = Path(__file__).resolve().parents[3]
SMALL = ROOT / "tests" / "data" / "sweep" / "small-step.yaml"

USER = [
    "a*b",
    "**x**",
    "`code`",
    "_u_",
    "~~s~~",
    "back\\slash",
    "x*",
    "*",
    "``",
    "a\\`b",
    "\\*",
    "a **b `c` d** e",
    "a|b`c",
    "__init__ *args",
]


def _commonmark(md: str) -> str:
    """The Markdown as a CommonMark renderer (GFM tables and strikethrough) shows it, as HTML."""
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
    return str(rendered).replace("&quot;", '"')


def _no_markup_but(page: str, strong: int, code: int) -> None:
    """``page`` (HTML) marks up exactly what the report itself marked: ``strong`` bold and ``code`` code
    spans, no emphasis or strikethrough."""
    assert page.count("<strong>") == strong and page.count("<code>") == code
    assert "<em>" not in page and "<del>" not in page and "<s>" not in page


@pytest.mark.parametrize("user", USER)
def test_a_user_string_is_text_in_both_writers_inside_the_reports_own_markup(user: str) -> None:
    doc = Document(f"Title {literal(user)}", literal(user))
    doc.heading(f"Study {literal(user)}")
    doc.paragraph(f"**{literal(user)}**: plain {literal(user)}, code `{literal(user)}`.")
    doc.bullets([f"**{literal(user)}**: one", literal(user)])
    doc.table(["variant", "value"], [[literal(user), f"**{literal(user)}**"], [f"`{literal(user)}`", "1"]], align="ll")
    text = html.escape(user, quote=False)
    line = f"<strong>{text}</strong>: plain {text}, code <code>{text}</code>."
    for page in (doc.to_html(), _commonmark(doc.to_markdown())):
        assert f"<h1>Title {text}</h1>" in page and f">Study {text}</h2>" in page
        assert f"<p>{line}</p>" in page
        assert f"<li><strong>{text}</strong>: one</li>" in page and f"<li>{text}</li>" in page
        assert f"<td>{text}</td>" in page and f"<td><strong>{text}</strong></td>" in page
        assert f"<td><code>{text}</code></td>" in page
        _no_markup_but(page.replace("<strong>Contents</strong>", ""), strong=3, code=2)
    assert f"<title>Title {text}</title>" in doc.to_html()  # the page's title: plain text, no backslash


def test_the_markdown_escapes_what_a_renderer_would_read_and_keeps_its_own_markup() -> None:
    doc = Document("t")
    doc.bullets([f"**{literal('a*b')}**: step time `{literal('`x`')}` and {literal('_u_ **b**')}"])
    assert doc.to_markdown().splitlines()[2] == r"- **a\*b**: step time `` `x` `` and \_u\_ \*\*b\*\*"


def _codesign(tmp_path: Path, labels: list[str]) -> Document:
    data = {
        "name": "tiny",
        "description": "a description with a*b, **x**, `code` and _u_",
        "base": str(SMALL),
        "studies": [
            {
                "key": "s",
                "title": "SMs **t** and `t`",
                "question": "What if a*b?",
                "variants": [{"label": label, "set": {"comm.sms": 10 + i}} for i, label in enumerate(labels)],
            }
        ],
    }
    path = tmp_path / "cd.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_codesign(path)
    n = len(spec.sweep.points)
    rows: dict[str, list[object]] = {"point": list(range(n)), "status": ["ok"] * n, "error": [None] * n}
    for m in METRICS:
        rows[m.name] = [1.0 + 0.1 * i for i in range(n)]
    rows |= {"gpus": [512] * n, "schedule": ["dualpipe"] * n, "pp": [16] * n, "ep": [32] * n}
    rows |= {"cost_note": [None] * n, "memory_capacity_GiB": [80.0] * n, "memory_headroom_GiB": [10.0] * n}
    return codesign_document(spec, pd.DataFrame(rows), [("study file", f"`{literal(str(path))}`")])


def test_codesign_labels_titles_and_description_are_literal(tmp_path: Path) -> None:
    labels = ["a*b", "**x**", "`code`", "_u_"]
    doc = _codesign(tmp_path, labels)
    doc.write_markdown(tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- **a\\*b**: step time" in md and "- **\\*\\*x\\*\\***: step time" in md
    assert "- **\\`code\\`**: step time" in md and "- **\\_u\\_**: step time" in md
    assert "\\*\\*\\*" not in md.replace("\\*\\*x\\*\\***", "")  # no bold mark of the report's own escaped
    page = doc.to_html()
    for shown in (page, _commonmark(md)):
        for label in labels:
            assert f"<li><strong>{html.escape(label)}</strong>: step time" in shown
            assert f"<td>{html.escape(label)}</td>" in shown
        assert "SMs **t** and `t`</h2>" in shown and "<p>What if a*b?</p>" in shown
        assert "a description with a*b, **x**, `code` and _u_</p>" in shown
        assert "<em>" not in shown and "<strong>x</strong>" not in shown and "<code>code</code>" not in shown


def test_step_report_description_is_literal_and_its_own_markup_renders(tmp_path: Path) -> None:
    user = "a*b and **x** and `code` and _u_ and ~~s~~ and back\\slash"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": str(SMALL), "name": "small-step", "description": user}))
    doc = step_document(simulate_training(load_scenario(path)))
    md = doc.to_markdown()
    assert md.splitlines()[2] == r"a\*b and \*\*x\*\* and \`code\` and \_u\_ and \~\~s\~\~ and back\\slash"
    for page in (doc.to_html(), _commonmark(md)):
        assert f"{html.escape(user, quote=False)}</p>" in page
        assert "<strong>x</strong>" not in page and "<code>code</code>" not in page and "<del>" not in page
        assert "<td><strong>step</strong></td>" in page  # the report's own bold
        assert "scenario <code>small-step</code>, seed" in page  # and its own code
