"""Rank a sweep's results by one figure and find the Pareto front of two (``twin compare``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import ScenarioError, one_printable_line, shown
from sim.sweep.pareto import pareto_front
from sim.sweep.point import LAYOUT_COLUMNS, METRIC_BY_NAME, METRICS, NOTE_COLUMNS, OK, STATUSES, past_edge, sign_break
from sim.sweep.store import holds_bounds, meta_of
from sim.units import GiB

_FIXED = (
    {"point", "point_id", "label", "status", "error"}
    | {m.name for m in METRICS}
    | {c for c, _ in LAYOUT_COLUMNS + NOTE_COLUMNS}
)


def load_results(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The results frame of ``twin sweep`` and its metadata (one-line errors). The screening rows of
    ``twin sweep --best`` are refused: their figures are lower bounds, not what a step takes."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:
        raise ScenarioError("", f"cannot read it as Parquet ({type(err).__name__})", str(path)) from None
    try:
        frame = table.to_pandas()
    except Exception as err:  # a column pandas cannot hold
        raise ScenarioError("", f"cannot read it as a table ({type(err).__name__})", str(path)) from None
    missing = [c for c in ("point", "status", "step_time_s") if c not in frame.columns]
    if missing:
        raise ScenarioError("", f"not a twin sweep results file (no column {missing[0]!r})", str(path))
    meta = meta_of(table.schema.metadata, str(path))
    if holds_bounds(meta, path):
        steps = (
            f"in {path.name.removesuffix('.screening.parquet')}.parquet beside it"
            if path.name.endswith(".screening.parquet")
            else "in the output of that sweep"
        )
        raise ScenarioError(
            "",
            "holds lower bounds (the screening rows of twin sweep --best), not steps: its step_time_s are "
            f"bounds no step takes; compare the steps, {steps}",
            str(path),
        )
    if not len(frame):  # twin sweep writes a file once a point has run: none is a file of nothing to compare
        raise ScenarioError("", "holds no points (twin sweep writes a row for each point that ran)", str(path))
    _check(frame, str(path))
    _check_count(frame, meta, str(path))
    _memory_in_gib(frame)
    absent = [m for m in METRIC_BY_NAME if m not in frame.columns]
    for m in absent:  # a figure added since the file was written: unknown there, not a reason to refuse
        frame[m] = float("nan")
    frame.attrs[ABSENT] = (str(path), absent)  # ranking by one of them is refused by compare, saying why
    return frame, meta


ABSENT = "twin_absent_columns"  # frame.attrs key: (file, the figures its sweep did not write)


def points_in_sweep(meta: dict[str, Any]) -> int | None:
    """How many points the sweep has (its metadata's ``points``), or None where the file does not say."""
    n = meta.get("points")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _check(frame: pd.DataFrame, file: str) -> None:
    """The columns ``twin compare`` reads hold what ``twin sweep`` writes: whole point numbers, each once;
    statuses, each one of :data:`STATUSES`; figures as finite numbers or NaN (unknown), and a step time for
    every ok point but a serving one (its goodput instead). In an ok row a figure whose change is relative
    (a positive extensive quantity: a time, a rate, a cost, a memory size) is never negative, and a
    duration (in s or GPU-h: a step, a first token) never zero either; a price or a rate may be zero
    (a free GPU-hour, no request meeting the SLOs). A signed figure (headroom, exposed communication) and
    a fraction (MFU, bubble ratio) are not bounded here."""
    from pandas.api import types

    point = frame["point"]
    if not types.is_integer_dtype(point.dtype) or bool(point.isna().any()):
        raise ScenarioError("point", f"a column of whole numbers, got {point.dtype}", file)
    for i in np.flatnonzero(point.to_numpy() < 0)[:1]:  # (a sweep numbers its points from 0)
        raise ScenarioError("point", f"{point.iloc[i]} is not a point number (0, 1, 2 ...)", file)
    if "label" not in frame.columns:  # (a file written by hand or by other tools: the table names the point)
        frame["label"] = [f"point {p}" for p in point]
    labels = frame["label"]
    for i in [i for i, v in enumerate(labels) if not isinstance(v, str)][:1]:
        raise ScenarioError(f"point {point.iloc[i]}: label", f"{shown(repr(labels.iloc[i]))} is not text", file)
    twice = point[point.duplicated()]
    if len(twice):
        raise ScenarioError("point", f"point {twice.iloc[0]} is in two rows (rows of two sweeps?)", file)
    if "point_id" in frame.columns:
        ids = frame["point_id"]
        twice = ids[ids.duplicated() & ids.notna()]
        if len(twice):
            raise ScenarioError("point_id", f"point {twice.iloc[0]} is in two rows (rows of two sweeps?)", file)
    status = frame["status"]
    if not all(isinstance(v, str) for v in status):
        raise ScenarioError("status", f"a column of text ({', '.join(STATUSES)}), got {status.dtype}", file)
    for i in np.flatnonzero(~status.isin(STATUSES).to_numpy())[:1]:  # as a journal's status is refused
        raise ScenarioError(
            f"point {point.iloc[i]}: status", f"{shown(repr(status.iloc[i]))} is not one of {', '.join(STATUSES)}", file
        )
    figures = [c for c in frame.columns if c in METRIC_BY_NAME or (c.startswith("memory_") and c.endswith("_GB"))]
    ok = (status == OK).to_numpy()
    for name in figures:
        column = frame[name]
        if not types.is_numeric_dtype(column.dtype) or types.is_bool_dtype(column.dtype):
            raise ScenarioError(name, f"a column of numbers, got {column.dtype}", file)
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        for i in np.flatnonzero(np.isinf(values))[:1]:
            raise ScenarioError(f"point {point.iloc[i]}: {name}", f"{values[i]} is not a finite number", file)
        past = past_edge(values)
        if past is not None:
            raise ScenarioError(f"point {point.iloc[past[0]]}: {name}", past[1], file)
        _check_sign(name, values, ok, point, file)
        if name == "step_time_s":  # (a serving point has none: its goodput instead)
            for i in np.flatnonzero(np.isnan(values) & ok & ~_serving_rows(frame))[:1]:
                raise ScenarioError(f"point {point.iloc[i]}: {name}", "NaN in a point whose status is ok", file)


def _check_count(frame: pd.DataFrame, meta: dict[str, Any], file: str) -> None:
    """Where the metadata says how many points the sweep has, the rows are points of it: numbered below
    that count (so no more rows than points; each point once, :func:`_check`)."""
    n = points_in_sweep(meta)
    if n is None:
        return
    point = frame["point"]
    for i in np.flatnonzero(point.to_numpy() >= n)[:1]:
        message = (
            f"point {point.iloc[i]} is past the sweep's {n:,} point(s) (its metadata's points): rows of another sweep?"
        )
        raise ScenarioError("point", message, file)


def _check_sign(name: str, values: np.ndarray, ok: np.ndarray, point: pd.Series, file: str) -> None:
    """A figure of an ok row (``values``, NaN where unknown) has the sign :func:`sign_break` asks for."""
    rows = np.flatnonzero(ok)
    broken = sign_break(name, values[rows])
    if broken is not None:
        raise ScenarioError(f"point {point.iloc[rows[broken[0]]]}: {name}", broken[1], file)


def _memory_in_gib(frame: pd.DataFrame) -> None:
    """Results written before memory was given in GiB name it in GB (1e9 B) against the same nominal
    capacity (80 for an H800, which holds 80 GiB): read them in GiB, the unit of today's columns."""
    if "memory_peak_GB" not in frame.columns or "memory_peak_GiB" in frame.columns:
        return
    frame["memory_peak_GiB"] = frame["memory_peak_GB"] * 1e9 / GiB
    if "memory_capacity_GB" in frame.columns:
        frame["memory_capacity_GiB"] = frame["memory_capacity_GB"]  # the nominal figure was already GiB's
        frame["memory_headroom_GiB"] = frame["memory_capacity_GiB"] - frame["memory_peak_GiB"]
    for c in [c for c in frame.columns if c.startswith("memory_") and c.endswith("_GB")]:
        del frame[c]  # in place: the caller's frame


def override_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in _FIXED]


def _shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with their text (the label) as one printable line each (:func:`sim.errors.one_printable_line`)."""
    return [{k: one_printable_line(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]


@dataclass(frozen=True)
class Comparison:
    """What ``twin compare`` shows. ``best`` and ``front`` are its rows as the tables and the plot show
    them, their labels :func:`printable`; ``to_dict`` gives them as the results file holds them (JSON
    escapes what is not printable itself)."""

    by: str
    against: str
    ok: int
    not_ok: int
    columns: list[str]
    best_rows: list[dict[str, Any]]  # as in the file
    front_columns: list[str]
    front_rows: list[dict[str, Any]]  # as in the file
    front_points: list[int]
    unpriced: list[int] = field(default_factory=list)  # ok points with no cost (hardware cost not modelled)
    uncosted: list[int] = field(default_factory=list)  # ok points with no cost and no cost_note saying why
    points: int | None = None  # the sweep's points (None: the file does not say); more than ran: some never did
    # per figure ranked or fronted other than the cost (which has its own two lists above): the ok points
    # without it (a serving point whose requests all had one output token has no TPOT)
    missing: dict[str, list[int]] = field(default_factory=dict)

    @property
    def best(self) -> list[dict[str, Any]]:
        """The ranked rows as shown (labels printable)."""
        return _shown_rows(self.best_rows)

    @property
    def front(self) -> list[dict[str, Any]]:
        """The front's rows as shown (labels printable)."""
        return _shown_rows(self.front_rows)

    @property
    def ran(self) -> int:
        """The points in the file: those whose step ran, ok or not."""
        return self.ok + self.not_ok

    @property
    def partial(self) -> bool:
        """Whether some of the sweep's points never ran (a --best output, a sweep stopped early)."""
        return self.points is not None and self.ran < self.points

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "against": self.against,
            "points": self.points,
            "ran": self.ran,
            "ok": self.ok,
            "not_ok": self.not_ok,
            "best": self.best_rows,
            "pareto_front": self.front_rows,
            "missing": self.missing_all,  # ok points without a ranked figure: on no front by it
            "cost_not_modelled": self.unpriced if self.costed else [],  # of those, the cost_note says why
        }

    @property
    def costed(self) -> bool:
        """Whether the cost per T tokens is ranked, fronted or shown."""
        return COST in (self.by, self.against, *self.columns)

    @property
    def missing_all(self) -> dict[str, list[int]]:
        """:attr:`missing` with the points without a cost where the cost is ranked, fronted or shown (the
        results file listed them in the table's line only, not in ``--format json``)."""
        out = dict(self.missing)
        if self.costed and (self.unpriced or self.uncosted):
            out[COST] = sorted({*self.unpriced, *self.uncosted})
        return out


def _records(frame: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rec in frame[cols].to_dict(orient="records"):
        out.append(
            {
                str(k): (None if (not isinstance(v, str) and pd.isna(v)) else (v.item() if hasattr(v, "item") else v))
                for k, v in rec.items()
            }
        )
    return out


COST = "cost_per_T_usd"
TRAINING_SHOWN = ("step_time_s", COST, "memory_headroom_GiB")  # beside the ranked figure
SERVING_SHOWN = ("goodput_requests_per_s", "ttft_p99_s", "tpot_p99_s")


def _serving_rows(frame: pd.DataFrame) -> np.ndarray:
    """The rows of serving points: a goodput and none of a training step's figures."""
    if "goodput_requests_per_s" not in frame.columns:
        return np.zeros(len(frame), bool)
    served = frame["goodput_requests_per_s"].notna().to_numpy().copy()
    for name in ("step_time_s", "tokens_per_day"):
        if name in frame.columns:
            served &= frame[name].isna().to_numpy()
    return served


def serving(frame: pd.DataFrame) -> bool:
    """Whether the results are a serving sweep's: every ok point is a serving point."""
    ok = (frame["status"] == OK).to_numpy()
    return bool(ok.any()) and bool(_serving_rows(frame)[ok].all())


def compare(frame: pd.DataFrame, by: str, against: str, top: int, points: int | None = None) -> Comparison:
    """The ``top`` best ok points by ``by`` (ties by point order) and the front of ``by`` vs ``against``;
    a figure no ok point has (a serving figure of training steps) is refused, naming its flag. ``points``:
    how many the sweep has (:func:`points_in_sweep`), to tell a file where some never ran."""
    ok = frame[frame["status"] == OK]
    served = serving(frame)
    file, absent = frame.attrs.get(ABSENT, ("", []))
    for flag, name in (("--by", by), ("--against", against)):
        if name in absent:
            raise ScenarioError(
                flag,
                f"{file} has no {name} column: its sweep ran before the twin wrote it; run the sweep again "
                "into the same file (rows an older twin computed are run again) to fill it",
            )
        if len(ok) and bool(ok[name].isna().all()):
            kind = "serving points" if served else "training steps"
            raise ScenarioError(flag, f"no ok point has {name} (the points are {kind})")
    m, n = METRIC_BY_NAME[by], METRIC_BY_NAME[against]
    ranked = ok.sort_values([by, "point"], ascending=[m.better == "min", True], kind="mergesort")
    extra = SERVING_SHOWN if served else TRAINING_SHOWN
    shown = ["point", "label", by] + [c for c in (*extra[:1], against, *extra[1:]) if c != by]
    shown = list(dict.fromkeys(shown))  # (the front's second figure too, after the first of the usual)
    idx = pareto_front(ok[by].to_numpy(), ok[against].to_numpy(), m.better, n.better)
    front = ok.iloc[idx].sort_values([by, "point"], ascending=[m.better == "min", True], kind="mergesort")
    front_cols = ["point", "label", by, against]
    no_cost = ok["cost_per_T_usd"].isna().to_numpy()
    noted = _noted(ok)
    return Comparison(
        by,
        against,
        len(ok),
        len(frame) - len(ok),
        shown,
        _records(ranked.head(top), shown),
        front_cols,
        _records(front, front_cols),
        [int(p) for p in front["point"]],
        [int(p) for p in ok.loc[no_cost & noted, "point"]],
        [int(p) for p in ok.loc[no_cost & ~noted, "point"]],
        points,
        {
            name: [int(p) for p in ok.loc[ok[name].isna().to_numpy(), "point"]]
            for name in dict.fromkeys((by, against))
            if name != "cost_per_T_usd" and bool(ok[name].isna().any())
        },
    )


def _noted(frame: pd.DataFrame) -> np.ndarray:
    """The rows whose ``cost_note`` gives a reason (hardware cost not modelled), as a mask."""
    if "cost_note" not in frame.columns:
        return np.zeros(len(frame), bool)
    return np.array([isinstance(v, str) and v.strip() != "" for v in frame["cost_note"]], bool)
