"""A small document model for reports: build once, write one self-contained HTML file and a Markdown twin.

API (every report of the twin builds one of these; nothing here knows about training steps)::

    doc = Document("Training step: deepseek-v3-pretrain", subtitle="one line under the title")
    doc.heading("Summary")                     # level 2 by default; level 3 for sub-sections
    doc.paragraph("Text with `code` and **bold**.")   # `code` and **bold** marked up, the rest literal
    doc.bullets(["one", "two"])
    doc.table(["figure", "value"], [["step time", "21.0 s"]], align="lr", caption="...")
    doc.figure(fig, "breakdown", "Caption.")   # a matplotlib Figure: inline SVG in the HTML (fmt="svg",
                                               # the default) or a base64 PNG (fmt="png", for figures with
                                               # thousands of boxes; dpi=...); a PNG file beside report.md
    doc.html_block(html, markdown="...")       # raw HTML (an interactive timeline): HTML only; the
                                               # Markdown gets ``markdown`` instead (may be empty)
    html = doc.to_html()                       # one string: CSS inline, figures inline, no URL at all
    doc.write_html(folder / "report.html")
    doc.write_markdown(folder)                 # report.md + <name>.png per figure (figures="sub": in
                                               # folder/sub/); returns the paths

Cells and text are plain strings (numbers formatted by the caller). Their one markup is `code` and
**bold**, in both writers, and a backslash before a backslash, a backquote or ``*`` shows that
character as it is; everything else is literal text: the HTML escapes it, the Markdown escapes what
Markdown would read as markup (raw HTML, links, emphasis, a list or heading marker at a line's start,
``|`` in a cell). A user's string (a scenario's name or description, a label, a file name) goes into a
text through :func:`literal` (``f"**{literal(label)}**: ..."``, ``f"`{literal(sc.name)}`"``): it
shows as typed in both writers, in a code span or bold too, and injects no markup of its own.
``align`` is one letter per column, ``l``/``r``/``c``. Figure names must be unique file stems
(``[a-z0-9_-]``); the figure is rendered when added and then closed. ``headings()`` and ``figures()``
list what the document holds (tests compare reports by them). Headings get anchors and a table of contents in the HTML.

Self-contained means: no ``http``/``https`` reference anywhere in the HTML, SVG without namespace URLs
or metadata (an HTML parser needs none), fonts from the viewer's system (``svg.fonttype: none``),
images as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

PNG_DPI = 110
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 1.5rem 2rem 4rem; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dce5; padding-bottom: 0.2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
.subtitle { color: #555d6e; margin-top: 0; }
nav.toc { background: #f5f7fb; border: 1px solid #e1e5ee; padding: 0.6rem 1rem; border-radius: 6px; }
nav.toc ul { margin: 0.2rem 0; padding-left: 1.2rem; columns: 2; }
code { background: #f1f3f7; padding: 0 0.25em; border-radius: 3px; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d8dce5; padding: 0.25rem 0.55rem; }
th { background: #f1f3f7; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.r { white-space: nowrap; }
td.c, th.c { text-align: center; }
caption { caption-side: bottom; color: #555d6e; font-size: 0.85rem; padding-top: 0.3rem; text-align: left; }
figure { margin: 1rem 0; }
figure svg, figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555d6e; font-size: 0.88rem; margin-top: 0.3rem; }
.scroll { overflow-x: auto; }
"""


def figure_text(text: str) -> str:
    """``text`` as matplotlib draws it literally: each ``$`` escaped, so a user's string (a label, a
    name) is never read as mathtext (``a$\\q$b`` would raise; ``$x$`` would be typeset)."""
    return text.replace("$", r"\$")


# A text's escaped characters (``\\``, ``\```, ``\*``) are held as Unicode noncharacters while its
# markup is read, so that no markup sees them, and put back as the characters they stand for.
_ESCAPED = re.compile(r"\\([\\`*])")
_HOLD = {"\\": "\ufdd0", "`": "\ufdd1", "*": "\ufdd2"}
_HELD = {v: k for k, v in _HOLD.items()}
_HELD_CHAR = re.compile("[\ufdd0-\ufdd2]")


def literal(text: str) -> str:
    """``text``, a user's string, as a document's text that shows it literally in both writers: each
    ``\\``, backquote and ``*`` backslash-escaped, so that none of it reads as `code` or **bold** (what
    else Markdown or HTML would read as markup the writers escape in any text); a control character
    (an ESC starting a terminal's colour code, written raw into summary.md) shown as U+FFFD."""
    return re.sub(r"([\\`*])", r"\\\1", _CONTROL.sub("\ufffd", text))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1


def _hold(text: str) -> str:
    """``text`` with its escaped characters held (a noncharacter it holds itself is dropped)."""
    return _ESCAPED.sub(lambda m: _HOLD[m.group(1)], _HELD_CHAR.sub("", text))


def _release(text: str, escape: str = "") -> str:
    """``text`` with the held characters put back, each after ``escape``."""
    return _HELD_CHAR.sub(lambda m: escape + _HELD[m.group()], text)


def plain_text(text: str) -> str:
    """``text`` as plain text (a page's ``<title>``, an ``alt``): its escaped characters as they are, its
    markup left as typed."""
    return _release(_hold(text))


def _inline(text: str) -> str:
    """Escape ``text`` and mark up `code` and **bold** (escaped characters shown as they are)."""
    out = html.escape(_hold(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return _release(out)


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def clean_svg(svg: str, prefix: str = "") -> str:
    """Matplotlib's SVG made fit to inline in HTML: no XML prolog or DOCTYPE, no metadata, no
    namespace URLs (the HTML parser puts ``svg`` and ``xlink:href`` in their namespaces itself), and
    every id (and reference to it) prefixed, so that several figures in one page never share one."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S)
    if prefix:
        svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
        svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
        svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return svg.strip()


def _render(fig: Figure, fmt: str, dpi: int = PNG_DPI) -> bytes:
    buf = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "twin"}):
            fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    else:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


@dataclass
class _Block:
    kind: str  # heading, paragraph, bullets, table, figure, html
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""
    caption: str = ""
    name: str = ""
    fmt: str = "svg"
    svg: str = ""
    png: bytes = b""
    markdown: str = ""


class Document:
    """A report under construction (module docstring has the API)."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[_Block] = []

    # ------------------------------------------------------------------ building
    def heading(self, text: str, level: int = 2) -> None:
        if level not in (2, 3, 4):
            raise ValueError(f"heading level 2..4 (the title is level 1), got {level}")
        self.blocks.append(_Block("heading", text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(_Block("paragraph", " ".join(text.split())))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(_Block("bullets", items=[" ".join(i.split()) for i in items]))

    def table(self, headers: list[str], rows: list[list[str]], align: str = "", caption: str = "") -> None:
        if any(len(r) != len(headers) for r in rows):
            raise ValueError(f"every row needs {len(headers)} cells")
        align = align or "l" + "r" * (len(headers) - 1)
        if len(align) != len(headers) or set(align) - set("lrc"):
            raise ValueError(f"align: one of l, r, c per column ({len(headers)}), got {align!r}")
        block = _Block("table", headers=list(headers), rows=[list(r) for r in rows], align=align, caption=caption)
        self.blocks.append(block)

    def figure(self, fig: Figure, name: str, caption: str, fmt: str = "svg", dpi: int = PNG_DPI) -> None:
        """Add a matplotlib figure (rendered now, then closed); ``dpi`` of its PNG."""
        import matplotlib.pyplot as plt

        if not _NAME.match(name) or name in self.figures():
            raise ValueError(f"figure name must be a new file stem of [a-z0-9_-], got {name!r}")
        if fmt not in ("svg", "png"):
            raise ValueError(f"fmt: svg or png, got {fmt!r}")
        png = _render(fig, "png", dpi)
        svg = clean_svg(_render(fig, "svg", dpi).decode(), name) if fmt == "svg" else ""
        plt.close(fig)
        self.blocks.append(_Block("figure", caption=caption, name=name, fmt=fmt, svg=svg, png=png))

    def html_block(self, content: str, markdown: str = "") -> None:
        """Raw HTML for the HTML file only (it must be self-contained too); ``markdown`` stands in for
        it in the Markdown."""
        self.blocks.append(_Block("html", text=content, markdown=markdown))

    # ------------------------------------------------------------------ reading
    def headings(self) -> list[tuple[int, str]]:
        return [(b.level, b.text) for b in self.blocks if b.kind == "heading"]

    def figures(self) -> list[str]:
        return [b.name for b in self.blocks if b.kind == "figure"]

    # ------------------------------------------------------------------ HTML
    def to_html(self) -> str:
        taken: set[str] = set()
        anchors = [_slug(b.text, taken) if b.kind == "heading" else "" for b in self.blocks]
        toc = "".join(
            f'<li><a href="#{a}">{_inline(b.text)}</a></li>'
            for b, a in zip(self.blocks, anchors, strict=True)
            if b.kind == "heading" and b.level == 2
        )
        body = [f"<h1>{_inline(self.title)}</h1>"]
        if self.subtitle:
            body.append(f'<p class="subtitle">{_inline(self.subtitle)}</p>')
        if toc:
            body.append(f'<nav class="toc"><strong>Contents</strong><ul>{toc}</ul></nav>')
        for b, anchor in zip(self.blocks, anchors, strict=True):
            body.append(self._html(b, anchor))
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(plain_text(self.title))}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )

    @staticmethod
    def _html(b: _Block, anchor: str) -> str:
        if b.kind == "heading":
            return f'<h{b.level} id="{anchor}">{_inline(b.text)}</h{b.level}>'
        if b.kind == "paragraph":
            return f"<p>{_inline(b.text)}</p>"
        if b.kind == "bullets":
            return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>"
        if b.kind == "table":
            cls = {"l": "", "r": ' class="r"', "c": ' class="c"'}
            head = "".join(f"<th{cls[a]}>{_inline(h)}</th>" for h, a in zip(b.headers, b.align, strict=True))
            rows = "".join(
                "<tr>" + "".join(f"<td{cls[a]}>{_inline(c)}</td>" for c, a in zip(r, b.align, strict=True)) + "</tr>"
                for r in b.rows
            )
            caption = f"<caption>{_inline(b.caption)}</caption>" if b.caption else ""
            table = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            return f'<div class="scroll">{table}</div>'
        if b.kind == "figure":
            if b.fmt == "svg":
                inner = b.svg
            else:
                data = base64.b64encode(b.png).decode()
                inner = f'<img src="data:image/png;base64,{data}" alt="{html.escape(plain_text(b.caption))}">'
            return f'<figure id="fig-{b.name}">{inner}<figcaption>{_inline(b.caption)}</figcaption></figure>'
        return b.text

    def write_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ Markdown
    def to_markdown(self, figures: str = "") -> str:
        """The Markdown; figures are linked as ``<figures>/<name>.png`` (beside it when empty)."""
        where = f"{figures}/" if figures else ""
        lines = [_md_heading(1, self.title), ""]
        if self.subtitle:
            lines += [_md_block(self.subtitle), ""]
        for b in self.blocks:
            if b.kind == "heading":
                lines += [_md_heading(b.level, b.text), ""]
            elif b.kind == "paragraph":
                lines += [_md_block(b.text), ""]
            elif b.kind == "bullets":
                lines += [f"- {_md_block(i)}" for i in b.items] + [""]
            elif b.kind == "table":
                sep = {"l": "---", "r": "---:", "c": ":---:"}
                lines.append("| " + " | ".join(_cell(h) for h in b.headers) + " |")
                lines.append("|" + "|".join(sep[a] for a in b.align) + "|")
                lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in b.rows]
                lines.append("")
                if b.caption:
                    lines += [_md_block(b.caption), ""]
            elif b.kind == "figure":
                lines += [f"![{b.name}]({where}{b.name}.png)", "", _md_block(b.caption), ""]
            elif b.markdown:
                lines += [b.markdown, ""]  # Markdown given as such by the caller
        return "\n".join(lines).rstrip() + "\n"

    def write_markdown(self, folder: str | Path, name: str = "report.md", figures: str = "") -> list[Path]:
        """``folder/name`` and one PNG per figure, in ``folder/figures/`` (beside it when ``figures`` is
        empty); returns the paths written."""
        folder = Path(folder)
        pngs = folder / figures if figures else folder
        written = []
        for b in self.blocks:
            if b.kind == "figure":
                pngs.mkdir(parents=True, exist_ok=True)
                png = pngs / f"{b.name}.png"
                png.write_bytes(b.png)
                written.append(png)
        md = folder / name
        md.write_text(self.to_markdown(figures), encoding="utf-8")
        return [md, *written]


# --------------------------------------------------------------------------- Markdown escaping
# The text's markup (`code`, **bold**) is kept; the rest is made literal, as the HTML writer's
# html.escape makes it there (CommonMark: a backslash before ASCII punctuation shows it as is).
_MD_MARKUP = re.compile(r"`[^`]+`|\*\*[^*]+\*\*")
_MD_CODE = re.compile(r"`[^`]+`")
_MD_PLAIN = re.compile(
    r"[\\`*<~]"  # escapes, unpaired code or bold marks, emphasis, raw HTML and autolinks, strikethrough
    r"|\](?=[(\[:])"  # a link's ]( or ][ or a definition's ]:
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # emphasis with _ (not inside a word: snake_case stays)
    r"|&(?=#?[A-Za-z0-9]+;)"  # a character reference
)
_MD_LINE_START = re.compile(r"^(?:[#>+=\[|-]|\d+(?=[.)]))")  # heading, quote, list, rule, definition


def _md_plain(text: str) -> str:
    """Held text outside code spans, escaped (a held character too: it stands for itself)."""
    return _release(_MD_PLAIN.sub(lambda m: "\\" + m.group(), text), "\\")


def _md_code(token: str) -> str:
    """A held `code` token as a Markdown code span showing its content as the HTML does: a backquote in
    it (escaped in the text) is fenced by a longer run of backquotes, with a space inside the fence where
    the content starts or ends with one (CommonMark strips one space from each end)."""
    content = _release(token[1:-1])
    fence = "`" * (max((len(r) for r in re.findall(r"`+", content)), default=0) + 1)
    edge = content[:1] + content[-1:]
    pad = " " if "`" in edge or (edge == "  " and content.strip()) else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def _md_code_and_plain(text: str) -> str:
    """Held ``text`` with its `code` spans as code spans and the rest escaped."""
    out, pos = [], 0
    for m in _MD_CODE.finditer(text):
        out += [_md_plain(text[pos : m.start()]), _md_code(m.group())]
        pos = m.end()
    return "".join([*out, _md_plain(text[pos:])])


def _md_inline(text: str) -> str:
    """``text`` as Markdown inline content: `code` and **bold** kept, everything else literal."""
    text = _hold(text)
    out, pos = [], 0
    for m in _MD_MARKUP.finditer(text):
        token = m.group()
        kept = _md_code(token) if token.startswith("`") else f"**{_md_code_and_plain(token[2:-2])}**"
        out += [_md_plain(text[pos : m.start()]), kept]
        pos = m.end()
    return "".join([*out, _md_plain(text[pos:])])


def _one_line(text: str) -> str:
    """``text``'s lines joined by one space (each stripped, blank ones left out)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _md_block(text: str) -> str:
    """A line of text (paragraph, list item, caption): inline content that starts no other block. A
    line break in it (a user's multi-line description) is a soft break: its lines are joined by one
    space, so none starts a heading, list or code block of its own."""
    out = _md_inline(_one_line(text))
    m = _MD_LINE_START.match(out)
    if m is None:
        return out
    if m.group()[0].isdigit():  # "1." would start a numbered list
        return f"{m.group()}\\{out[m.end() :]}"
    return "\\" + out


def _md_heading(level: int, text: str) -> str:
    out = _md_inline(_one_line(text))  # a heading is one line
    out = re.sub(r"(^|\s)(#+)\s*$", lambda m: m.group(1) + "\\" + m.group(2), out)  # not a closing sequence
    return "#" * level + " " + out


def _cell(text: str) -> str:
    return _md_inline(_one_line(text)).replace("|", "\\|")
