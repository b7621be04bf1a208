"""The document model: one self-contained HTML file and a Markdown twin from the same blocks."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from reports.document import Document, _inline, clean_svg


class Refs(HTMLParser):
    """Every URL-like attribute value (src, href, xlink:href, action, style url(...)) and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "href", "xlink:href", "action", "poster", "data", "srcset"):
                self.refs.append(value)
            self.refs += re.findall(r"url\(([^)]*)\)", value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def external_refs(html: str) -> list[str]:
    """References that would leave the page: anything but in-page anchors and data: URIs, plus any
    http(s) URL outside the visible text."""
    p = Refs()
    p.feed(html)
    bad = [r for r in p.refs if not (r.startswith("#") or r.startswith("data:"))]
    markup = re.sub(r">[^<]*<", "><", html)  # tags and attributes only (text between tags dropped)
    bad += re.findall(r"https?://[^\s\"'<>)]*", markup)
    return bad


def _doc() -> Document:
    doc = Document("A <test> report", "sub & title")
    doc.heading("First section")
    doc.paragraph("Text with `code`, **bold** and <script>alert(1)</script>.")
    doc.bullets(["one", "two | three"])
    doc.table(["name", "value"], [["a|b", "1.0"], ["c", "2.0"]], caption="A caption.")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0], "o-")
    doc.figure(fig, "line", "A line.")
    doc.heading("Second section")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1], "o-")
    doc.figure(fig, "other", "Same axes, another figure.")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([0, 1], [1, 2])
    doc.figure(fig, "bars", "A PNG.", fmt="png")
    doc.html_block("<div id='x'>interactive</div>", markdown="(interactive in the HTML)")
    return doc


def test_html_is_self_contained_and_escaped() -> None:
    html = _doc().to_html()
    assert external_refs(html) == []
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html
    assert html.count("<svg") == 2 and html.count('src="data:image/png;base64,') == 1
    assert "<?xml" not in html and "<metadata" not in html and "xmlns" not in html
    png = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert '<a href="#first-section">' in html and 'id="first-section"' in html


def test_figure_ids_are_unique_across_figures() -> None:
    html = _doc().to_html()
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r"url\(#([^)]+)\)", html) + re.findall(r'href="#([^"]+)"', html):
        assert ref in ids, ref


def test_clean_svg_keeps_references_consistent() -> None:
    svg = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    svg += '<metadata>x</metadata><defs><path id="m1"/></defs><use xlink:href="#m1"/><g clip-path="url(#p1)"/></svg>'
    out = clean_svg(svg, "fig")
    assert out.startswith("<svg>") and "http" not in out
    assert 'id="fig-m1"' in out and 'xlink:href="#fig-m1"' in out and "url(#fig-p1)" in out


def test_markdown_twin_references_only_files_it_wrote(tmp_path: Path) -> None:
    doc = _doc()
    written = doc.write_markdown(tmp_path)
    md = (tmp_path / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["line.png", "other.png", "bars.png"]
    for link in links:
        assert (tmp_path / link).read_bytes().startswith(b"\x89PNG")
    assert {p.name for p in written} == {"report.md", "line.png", "other.png", "bars.png"}
    assert "| a\\|b | 1.0 |" in md and "|---|---:|" in md
    assert "(interactive in the HTML)" in md and "<div" not in md
    assert md.startswith("# A \\<test> report\n")  # literal, as in the HTML


def test_headings_and_figures_are_listed() -> None:
    doc = _doc()
    assert doc.headings() == [(2, "First section"), (2, "Second section")]
    assert doc.figures() == ["line", "other", "bars"]


@pytest.mark.parametrize("name", ["Bad Name", "../x", "", "line"])
def test_bad_figure_names_are_refused(name: str) -> None:
    doc = _doc()
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        doc.figure(fig, name, "x")
    plt.close(fig)


def test_table_shape_is_checked() -> None:
    doc = Document("t")
    with pytest.raises(ValueError):
        doc.table(["a", "b"], [["1"]])
    with pytest.raises(ValueError):
        doc.table(["a", "b"], [["1", "2"]], align="lx")


# Strings a user may put in a scenario's name or description, and text with the document's own markup.
HOSTILE = [
    "A <script>alert(1)</script> & <b>bold</b>",
    "[click](http://evil.example) ![img](x.png) <http://x.y> www.x.y",
    "# not a heading",
    "> not a quote",
    "- not a list",
    "* nor this",
    "1. not numbered",
    "---",
    "_emph_ *emph* __strong__ ~~strike~~",
    "snake_case and x86_64 stay",
    "F&B and &amp; and &#60; and &copy;",
    "back\\slash \\* and \\`",
    "a `code <b>` span and **bold `x` here** and **unclosed",
    "pipe | in text",
    "[ref]: http://x",
    "trailing #",
    "```fence",
    "a description\n# on lines\n\n- of its own\n\n    indented\n<script>x</script>",  # a user's multi-line string
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_shows_text_as_the_html_does(text: str) -> None:
    """Every block's text, rendered from the Markdown by a CommonMark renderer (GFM tables), is what the
    HTML writer shows: `code` and **bold** marked up, the rest literal (no tag, link, list, heading)."""
    markdown_it = pytest.importorskip("markdown_it")
    doc = Document(text, text)
    doc.heading(text)
    doc.paragraph(text)
    doc.bullets([text])
    doc.table(["h"], [[text]], caption=text)
    rendered = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(doc.to_markdown())
    shown = _inline(" ".join(text.split()))
    expected = [f"<h1>{shown}</h1>", f"<p>{shown}</p>", f"<h2>{shown}</h2>", f"<li>{shown}</li>", f"<td>{shown}</td>"]
    html = rendered.replace("&quot;", '"')
    for element in expected:
        assert element in html
    assert html.count(f"<p>{shown}</p>") == 3  # subtitle, paragraph, caption
    assert "<a " not in html and "<img" not in html and "<em>" not in html and "<script" not in html


def test_a_users_control_characters_are_shown_not_written_raw() -> None:
    """A description's ESC (a terminal colour code) was written raw into summary.md; tab and newline stay."""
    from reports.document import literal

    assert literal("red \x1b[31m\x07 a\tb\nc \x9b") == "red \ufffd[31m\ufffd a\tb\nc \ufffd"
