"""Input faults of co-design study files, ``serve.expert_load`` CSVs and request-trace CSVs: each is
refused with one line ``error: <file>: <key or line>: <message>`` and exit status 2, writing nothing.

* A study's whitespace-only title, question, description or label was accepted (the report had an empty
  heading, a blank table cell, ``- ** **:``), and a metric listed twice showed its columns twice.
* An expert-load CSV read ``1_0,1_000`` as expert 10 with load 1000 (Python's int and float take digit
  separators; no CSV reader does), and both it and a trace read another script's digits (Arabic-Indic
  ``١٢``, full-width ``１２``) as 12.
* A quoted value spanning two lines of a trace was read (``"0`` + newline as 0) and every later line was
  reported one short; a quote never closed raised the csv module's field-limit error as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main
from sim.errors import ScenarioError
from sim.experiments.codesign import load_codesign
from sim.serve.requests import csv_records, read_trace
from tests.conftest import refused_line

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "data" / "sweep" / "small-step.yaml"
H800_SERVE = ROOT / "scenarios" / "serve" / "deepseek-v3-h800.yaml"
HEADER = "arrival_s,input_tokens,output_tokens"


_refused = refused_line


def _study_file(folder: Path, study: dict[str, Any], **top: Any) -> Path:
    """A study file of one study (one variant, comm.sms 24, unless ``study`` gives its own) on the small step."""
    body: dict[str, Any] = {"name": "tiny", "base": str(SMALL), **top}
    body["studies"] = [{"key": "sms", "variants": [{"label": "24 SMs", "set": {"comm.sms": 24}}], **study}]
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("study", "top", "message"),
    [
        ({"title": "  "}, {}, "studies[0].title: a non-empty string (or leave the key out); blank"),
        ({"title": None}, {}, "studies[0].title: a non-empty string (or leave the key out); got null"),
        ({"question": " \t"}, {}, "studies[0].question: a non-empty string (or leave the key out); blank"),
        ({"question": 3}, {}, "studies[0].question: a non-empty string (or leave the key out); got 3"),
        ({}, {"description": "  "}, "description: a non-empty string (or leave the key out); blank"),
        ({}, {"description": None}, "description: a non-empty string (or leave the key out); got null"),
        (
            {"variants": [{"label": "  ", "set": {"comm.sms": 24}}]},
            {},
            "studies[0].variants[0].label: a non-empty string; blank",
        ),
        (
            {"variants": [{"label": " 24 SMs", "set": {"comm.sms": 24}}, {"label": "24 SMs", "set": {"comm.sms": 28}}]},
            {},
            "studies[0].variants[1].label: '24 SMs' is the label of studies[0].variants[0] too; give each row its own",
        ),
        (
            {"variants": [], "grid": {"comm.sms": [24, 28]}, "label": "  "},
            {},
            "studies[0].label: a string such as 'M={model.n_limited_groups}', not blank",
        ),
        (
            {"variants": [], "grid": {"comm.sms": [24, 28]}, "label": ""},  # was: the default labels, silently
            {},
            "studies[0].label: a string such as 'M={model.n_limited_groups}', not blank",
        ),
        (
            {"metrics": ["step_time_s", "step_time_s"]},
            {},
            "studies[0].metrics: step_time_s is listed twice; give it once",
        ),
        (
            {"metrics": [["step_time_s"]]},
            {},
            "studies[0].metrics: unknown figure ['step_time_s']; choose from step_time_s, ",
        ),  # was a TypeError
    ],
)
def test_a_blank_study_text_or_a_metric_listed_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], study: dict[str, Any], top: dict[str, Any], message: str
) -> None:
    path = _study_file(tmp_path, study, **top)
    with pytest.raises(ScenarioError) as err:
        load_codesign(path)
    assert str(err.value).startswith(f"{path}: {message}")  # (the full line, but a list of figures)
    assert _refused(["validate", str(path)], capsys) == f"error: {err.value}"


def test_a_blank_study_title_is_refused_by_report_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _study_file(tmp_path, {"title": "  ", "question": "  "})
    out = tmp_path / "out"
    err = _refused(["report", str(path), "-o", str(out)], capsys)
    assert err == f"error: {path}: studies[0].title: a non-empty string (or leave the key out); blank"
    assert not out.exists()


def test_study_texts_with_words_and_a_derived_scenario_without_a_label_still_load(tmp_path: Path) -> None:
    derived = tmp_path / "sms24.yaml"
    derived.write_text(yaml.safe_dump({"base": str(SMALL), "name": "sms24", "set": {"comm.sms": 24}}))
    path = _study_file(
        tmp_path,
        {"title": "SMs", "question": "What if?", "metrics": ["step_time_s"], "variants": [{"scenario": "sms24.yaml"}]},
        description="a study",
    )
    spec = load_codesign(path)
    (study,) = spec.studies
    assert (spec.description, study.title, study.question, study.metrics) == (
        "a study",
        "SMs",
        "What if?",
        ("step_time_s",),
    )
    assert [v.label for v in study.variants][1:] == ["sms24"]
    untitled = load_codesign(_study_file(tmp_path, {}))  # title and question left out: the key, no question
    assert (untitled.studies[0].title, untitled.studies[0].question, untitled.description) == ("sms", "", "")


def test_a_derived_scenario_with_a_blank_name_needs_a_label(tmp_path: Path) -> None:
    derived = tmp_path / "blank.yaml"
    derived.write_text(yaml.safe_dump({"base": str(SMALL), "name": " ", "set": {"comm.sms": 24}}))
    path = _study_file(tmp_path, {"variants": [{"scenario": "blank.yaml"}]})
    with pytest.raises(ScenarioError) as err:
        load_codesign(path)
    assert str(err.value) == f"{path}: studies[0].variants[0].label: ' ' is blank: give each row a label that shows"


# ---- serve.expert_load ---------------------------------------------------------------------------


def _serve_with_load(folder: Path, text: str) -> tuple[Path, Path]:
    load = folder / "load.csv"
    load.write_text(text, encoding="utf-8")
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump({"base": str(H800_SERVE), "set": {"serve.expert_load": str(load)}}))
    return path, load


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expert,load\n1_0,1_000\n0,1\n", "line 2: expert: not an expert id (a whole number): '1_0'"),  # was expert 10
        ("expert,load\n0,1\n1,1_000\n", "line 3: load: not a number: '1_000'"),  # was 1000
        ("expert,load\n0,1\nx,2\n", "line 3: expert: not an expert id (a whole number): 'x'"),
        ("expert,load\n0,1\n1,\n", "line 3: load: not a number: ''"),
        ("expert,load\n0,5,7\n", "line 2: expected expert,load (an expert id and a number)"),
        ('expert,load\n"0\n",1\n1,x\n', "line 2: expert: a quoted value runs on to line 3 (a quote left open?)"),
        ("expert,load\n\n0,1\n1,x\n", "line 4: load: not a number: 'x'"),  # a blank line counted
        (  # was load 12
            "expert,load\n0,1\n1,\u0661\u0662\n",
            "line 3: load: not a number: '\u0661\u0662' holds '\u0661' (U+0661), not ASCII; write the digits 0-9",
        ),
        (  # was expert 12
            "expert,load\n\uff11\uff12,1\n",
            "line 2: expert: not an expert id (a whole number): '\uff11\uff12' holds '\uff11' (U+FF11), not ASCII; "
            "write the digits 0-9",
        ),
    ],
)
def test_an_expert_load_value_that_is_not_a_csv_number_is_refused_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path, load = _serve_with_load(tmp_path, text)
    assert _refused(["validate", str(path)], capsys) == f"error: {load}: {message}"


def test_an_expert_load_file_of_plain_numbers_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _serve_with_load(tmp_path, "expert,load\n 0 , 1e3\n\n10,1000\n")
    with pytest.raises(SystemExit) as info:
        main(["validate", str(path)])
    assert info.value.code == 0
    assert ": ok (serve scenario" in capsys.readouterr().out


# ---- request traces ------------------------------------------------------------------------------


def _trace(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the reviewer's case: 'x' is on line 4; it was reported on line 3 (and "0\n" was read as 0)
        (f'{HEADER}\n"0\n",10,5\n0,x,5\n', "line 2: arrival_s: a quoted value runs on to line 3 (a quote left open?)"),
        (f'{HEADER}\n0,"10\n\n",5\n', "line 2: input_tokens: a quoted value runs on to line 4 (a quote left open?)"),
        (
            '"arrival_s\n",input_tokens,output_tokens\n0,1,1\n',
            "line 1: a quoted value runs on to line 2 (a quote left open?)",
        ),
        (f"{HEADER}\n\n0,1,1\n\n0,x,5\n", "line 5: input_tokens: not a number: 'x'"),  # blank lines counted
        (f"{HEADER}\n0,1,1\n0,1_000,5\n", "line 3: input_tokens: not a number: '1_000'"),
    ],
)
def test_a_trace_value_spanning_lines_is_refused_and_lines_are_the_files(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _trace(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        read_trace(path, 0.0, 10.0)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # was an arrival at 12 s
            f"{HEADER}\n0,1,1\n\u0661\u0662,10,5\n",
            "line 3: arrival_s: not a number: '\u0661\u0662' holds '\u0661' (U+0661), not ASCII; write the digits 0-9",
        ),
        (  # was 12 input tokens
            f"{HEADER}\n0,\uff11\uff12,5\n",
            "line 2: input_tokens: not a number: '\uff11\uff12' holds '\uff11' (U+FF11), not ASCII; "
            "write the digits 0-9",
        ),
    ],
)
def test_a_trace_number_in_digits_other_than_ascii_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = _trace(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        read_trace(path, 0.0, 10.0)
    assert str(err.value) == f"{path}: {message}"


def test_a_quote_never_closed_is_refused_not_a_traceback(tmp_path: Path) -> None:
    """The rest of the file became one value past the csv module's field limit: a _csv.Error traceback."""
    rows = "\n".join(f"{i},10,5" for i in range(1, 20_000))
    path = _trace(tmp_path, f'{HEADER}\n"0,10,5\n{rows}\n')
    with pytest.raises(ScenarioError) as err:
        read_trace(path, 0.0, 10.0)
    assert str(err.value).startswith(f"{path}: line 2: not read as CSV: field larger than field limit")


def test_csv_records_give_each_record_its_files_line() -> None:
    assert csv_records("a,b\n\n1,2\n 3 , 4 \n", "f.csv") == [
        (1, ["a", "b"]),
        (2, []),
        (3, ["1", "2"]),
        (4, [" 3 ", " 4 "]),
    ]
    assert csv_records("", "f.csv") == []


def test_a_trace_value_spanning_lines_is_refused_by_serve_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _trace(tmp_path, f'{HEADER}\n"0\n",10,5\n0,x,5\n')
    path = tmp_path / "serve.yaml"
    sets = {"serve.traffic": {"trace": str(trace)}, "serve.duration_s": 1}
    path.write_text(yaml.safe_dump({"base": str(H800_SERVE), "set": sets}))
    out = tmp_path / "out"
    err = _refused(["serve", str(path), "-o", str(out)], capsys)
    assert err == f"error: {trace}: line 2: arrival_s: a quoted value runs on to line 3 (a quote left open?)"
    assert not out.exists()
