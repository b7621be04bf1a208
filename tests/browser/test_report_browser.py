"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright.

Opens the committed report of the default scenario (``tests/integration/report`` checks it has the
sections and figures ``twin report`` writes), the committed co-design report and the report that
``twin plan run RUN -o DIR`` writes for a small run (made by the test), with every request routed
through the test: anything but the page itself is recorded and refused. Checks that the page renders,
that every figure (img, svg, canvas) is shown with a non-zero size (images decoded:
``naturalWidth > 0``), that the console has no errors, that the timeline zooms, and saves a full-page
screenshot beside the test output (``out/test-artifacts/``).

Skipped with a reason only when Chromium or Playwright is missing outside CI; in CI (``CI`` set) it
fails instead. Playwright's own browser downloads are never used: Chromium comes from the Debian
package (``apt-get install chromium``, as the README's test command does).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "out" / "test-artifacts"
EXAMPLE = REPO / "reports" / "examples" / "deepseek-v3-pretrain" / "report.html"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run; see the README's test command)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page opened on ``html`` with its requests, console messages and errors recorded."""

    def __init__(self, browser: Any, html: Path) -> None:
        self.url = html.resolve().as_uri()
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._route)
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.console.append(f"failed: {r.url}") if r.url != self.url else None)
        self.page.goto(self.url, wait_until="load")

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url == self.url:
            route.continue_()
            return
        if not url.startswith("data:"):
            self.requests.append(url)
        route.abort()

    def figures(self) -> list[dict[str, Any]]:
        """Every img, top-level svg and canvas: tag, size, visibility and (images) natural width."""
        return list(
            self.page.evaluate(
                """() => Array.from(document.querySelectorAll('img, svg, canvas'))
                    .filter(e => !(e.tagName.toLowerCase() === 'svg' && e.parentElement.closest('svg')))
                    .map(e => {
                      const r = e.getBoundingClientRect(), s = getComputedStyle(e);
                      return {tag: e.tagName.toLowerCase(), w: r.width, h: r.height,
                              shown: s.display !== 'none' && s.visibility !== 'hidden' && s.opacity !== '0',
                              natural: e.tagName.toLowerCase() === 'img' ? e.naturalWidth : null,
                              complete: e.tagName.toLowerCase() === 'img' ? e.complete : true};
                    })"""
            )
        )

    def screenshot(self, name: str, tmp: Path) -> Path:
        path = tmp / name
        self.page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ARTIFACTS / name)
        print(f"screenshot: {ARTIFACTS / name}")
        return path


def _check(page: Page, figures: int) -> None:
    assert page.page.title().startswith("Training step:")
    found = page.figures()
    assert sum(f["tag"] != "canvas" for f in found) == figures, found
    assert sum(f["tag"] == "canvas" for f in found) == 1
    for f in found:
        assert f["shown"] and f["w"] > 0 and f["h"] > 0, f
        if f["tag"] == "img":
            assert f["complete"] and f["natural"] > 0, f
    assert page.requests == []
    assert page.console == []


def test_the_report_renders_every_figure_offline(browser: Any, tmp_path: Path) -> None:
    md_figures = EXAMPLE.with_name("report.md").read_text().count("![")
    page = Page(browser, EXAMPLE)
    try:
        _check(page, md_figures)
        assert page.page.locator("h2").count() == 8
        shot = page.screenshot("report-default.png", tmp_path)
        assert shot.stat().st_size > 50_000
    finally:
        page.context.close()


def test_the_timeline_zooms_pans_and_names_boxes(browser: Any) -> None:
    page = Page(browser, EXAMPLE)
    try:
        canvas = page.page.locator("#tl canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 500 and box["height"] > 100

        def pixels() -> str:
            return str(page.page.evaluate("() => document.querySelector('#tl canvas').toDataURL()"))

        before = pixels()
        x, y = box["x"] + box["width"] * 0.6, box["y"] + 40
        page.page.mouse.move(x, y)
        page.page.mouse.wheel(0, -600)
        page.page.wait_for_timeout(100)
        zoomed = pixels()
        assert zoomed != before
        page.page.mouse.move(x, y)
        page.page.wait_for_timeout(50)
        info = page.page.locator("#tl .tl-info").inner_text()
        assert info.startswith("rank ") and " ms" in info, info
        page.page.mouse.down()
        page.page.mouse.move(x - 200, y)
        page.page.mouse.up()
        assert pixels() != zoomed
        page.page.locator("#tl button").click()
        assert pixels() == before
        assert page.console == [] and page.requests == []
    finally:
        page.context.close()


def test_the_committed_codesign_report_renders_offline(browser: Any, tmp_path: Path) -> None:
    html = REPO / "reports" / "examples" / "deepseek-v3-codesign" / "report.html"
    md_figures = html.with_name("report.md").read_text().count("![")
    page = Page(browser, html)
    try:
        assert page.page.title().startswith("Co-design what-ifs:")
        found = page.figures()
        # one per study where a figure moved, no canvas: all 12 (NVLink 900 GB/s moves the mean exposed DP
        # communication only, 0.447 to 0.445 s, since the study compares by the means over the ranks)
        assert len(found) == md_figures == 12, found
        for f in found:
            assert f["shown"] and f["w"] > 0 and f["h"] > 0, f
            if f["tag"] == "img":
                assert f["complete"] and f["natural"] > 0, f
        assert page.requests == [] and page.console == []
        page.screenshot("report-codesign.png", tmp_path)
    finally:
        page.context.close()


def test_a_training_runs_report_renders_its_table_and_figures_offline(browser: Any, tmp_path: Path) -> None:
    """``twin plan run RUN -o DIR`` of a small run with a ramp and failures: the phases table holds every
    phase, group and the total, each figure (the timeline, the cost) is drawn, nothing leaves the page."""
    import json

    import yaml

    from sim.cli import main
    from tests.conftest import SMALL_STEP

    run = tmp_path / "run.yaml"
    body = {
        "name": "tiny",
        "base": str(SMALL_STEP),
        "phases": [
            {"name": "main", "tokens": 1.0e11, "global_batch": 2048, "ramp": {"batches": [1024], "over_tokens": 2e10}},
            {"name": "long", "steps": 10, "global_batch": 1024, "set": {"model.seq_len": 2048}},
        ],
        "groups": [{"name": "all", "phases": ["main", "long"], "published_gpu_hours": 20000.0}],
        "failures": {"mtbf_gpu_hours": 5000.0, "checkpoint_s": 60.0, "restart_s": 600.0},
    }
    run.write_text(yaml.safe_dump(body, sort_keys=False))
    with pytest.raises(SystemExit) as info:
        main(["plan", "run", str(run), "-o", str(tmp_path / "out"), "-q"])
    assert info.value.code in (0, None)
    html = tmp_path / "out" / "report.html"
    data = json.loads((tmp_path / "out" / "run.json").read_text())
    md_figures = html.with_name("report.md").read_text().count("![")
    page = Page(browser, html)
    try:
        assert page.page.title() == "Training run: tiny"
        found = page.figures()
        assert len(found) == md_figures == 2, found  # the timeline and the cost, no canvas
        for f in found:
            assert f["tag"] == "svg" and f["shown"] and f["w"] > 300 and f["h"] > 100, f
        for name in ("timeline", "cost"):
            assert page.page.locator(f"figure#fig-{name} svg").is_visible()
        rows = page.page.locator("table").first.locator("tbody tr")
        assert rows.count() == len(data["phases"]) + len(data["groups"]) + 1
        first = [c.strip() for c in rows.nth(0).locator("td").all_inner_texts()]
        assert first[0] == "main" and first[5] == f"{data['phases'][0]['gpu_hours']:,.0f}"
        last = [c.strip() for c in rows.nth(rows.count() - 1).locator("td").all_inner_texts()]
        assert last[0] == "total" and last[4] == f"{data['total']['days']:.2f}"
        assert page.requests == [] and page.console == []
        page.screenshot("report-training-run.png", tmp_path)
    finally:
        page.context.close()


def test_a_serving_report_renders_its_tables_and_figures_offline(browser: Any, tmp_path: Path) -> None:
    """``twin serve SCENARIO -o DIR`` on 20 s of DeepSeek's H800 deployment: every figure of the
    Markdown twin is drawn in the HTML, the latency table carries the JSON's TTFT p50, nothing leaves
    the page."""
    import json

    import yaml

    from sim.cli import main

    derived = tmp_path / "serve.yaml"
    base = REPO / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
    derived.write_text(yaml.safe_dump({"base": str(base), "set": {"serve.duration_s": 20}}))
    with pytest.raises(SystemExit) as info:
        main(["serve", str(derived), "-o", str(tmp_path / "out"), "-q"])
    assert info.value.code in (0, None)
    folder = tmp_path / "out" / "deepseek-v3-h800-serve"
    data = json.loads((folder / "summary.json").read_text())
    html = folder / "report.html"
    md_figures = html.with_name("report.md").read_text().count("![")
    page = Page(browser, html)
    try:
        found = page.figures()
        assert len(found) == md_figures >= 4, found
        for f in found:
            assert f["shown"] and f["w"] > 300 and f["h"] > 100, f
        text = page.page.locator("table").first.inner_text()
        assert f"{data['ttft_s']['p50'] * 1e3:,.2f}" in text, text
        assert page.requests == [] and page.console == []
        page.screenshot("report-serve.png", tmp_path)
    finally:
        page.context.close()
