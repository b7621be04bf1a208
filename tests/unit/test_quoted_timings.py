"""Every timing the README and the docs quote (``55 s (`report_default_s`)``) is the figure recorded in
``benchmarks/results.json`` by ``python benchmarks/run_all.py``, shown as that script writes it, and
every figure the README's speed section names exists there."""

from __future__ import annotations

import json

from benchmarks.run_all import FIGURES, LONG, QUOTE, RESULTS, ROOT, VERDICT, formatted, quoting_files, requote, verdict


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


def test_every_verdict_is_the_recorded_figures() -> None:
    """A quote that states its target says ``not met`` exactly when the recorded figure misses it."""
    figures = json.loads(RESULTS.read_text())["figures"]
    judged = 0
    for path in quoting_files():
        for m in VERDICT.finditer(path.read_text()):
            name, _, _, target, _, unit, missed, _ = m.groups()
            fig = figures[name]
            says = verdict(fig["value"], fig["unit"], float(target.replace(",", "")), unit)
            assert (missed is not None) == bool(says), f"{path.relative_to(ROOT)}: {m.group(0)}"
            judged += 1
    assert judged >= 8


def test_requote_writes_the_verdict() -> None:
    figures = {"x_s": {"value": 2.0, "unit": "s"}}
    assert requote("9 s (`x_s`; target 1 s)", figures) == "2 s (`x_s`; target 1 s, not met)"
    assert requote("9 s (`x_s`; target\n3 s, not met)", figures) == "2 s (`x_s`; target\n3 s)"
    assert requote("9 s (`x_s`; target 1,500 ms, not met)", figures) == "2 s (`x_s`; target 1,500 ms, not met)"


def test_the_file_records_what_the_script_measures() -> None:
    figures = json.loads(RESULTS.read_text())["figures"]
    assert set(figures) <= {*FIGURES, *LONG}
    for name, fig in figures.items():
        unit, target, _, how = {**FIGURES, **LONG}[name]
        assert (fig["unit"], fig["target"], fig["how"]) == (unit, target, how), name
        assert fig["value"] > 0 and fig["revision"] and fig["cpus"] >= 1
