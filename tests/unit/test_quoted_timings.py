"""Every timing the README and the docs quote (``55 s (`report_default_s`)``) is the figure recorded in
``benchmarks/results.json`` by ``python benchmarks/run_all.py``, shown as that script writes it, and
every figure the README's speed section names exists there."""

from __future__ import annotations

import json

from benchmarks.run_all import FIGURES, LONG, QUOTE, RESULTS, ROOT, formatted, quoting_files


def test_every_quote_is_the_recorded_figure() -> None:
    figures = json.loads(RESULTS.read_text())["figures"]
    quotes = 0
    for path in quoting_files():
        for m in QUOTE.finditer(path.read_text()):
            number, unit, _, name = m.groups()
            assert name in figures, f"{path.relative_to(ROOT)}: {m.group(0)} names no recorded figure"
            fig = figures[name]
            assert number == formatted(fig["value"], fig["unit"], unit), f"{path.relative_to(ROOT)}: {m.group(0)}"
            quotes += 1
    assert quotes >= 10


def test_the_file_records_what_the_script_measures() -> None:
    figures = json.loads(RESULTS.read_text())["figures"]
    assert set(figures) <= {*FIGURES, *LONG}
    for name, fig in figures.items():
        unit, target, _, how = {**FIGURES, **LONG}[name]
        assert (fig["unit"], fig["target"], fig["how"]) == (unit, target, how), name
        assert fig["value"] > 0 and fig["revision"] and fig["cpus"] >= 1
