"""Per-cycle table + future schedule -> the named float32 arrays the forecasting model reads.

The SAME functions build training windows (``ml.training``) and serving windows
(``ml.inference``). The per-cycle table first goes through the ONE feature path
(``ml.features.complete_cycle_table``); this module only adds the model's window-relative
columns (retention against the reference capacity, polarization and A_w rise since the start),
scales them with the card's :class:`~ml.scaling.FeatureScaler` state, masks what is missing, and
subsamples histories longer than the card's ``max_history`` (first and last cycle always kept).

Array layout (docs/interfaces.md): ``history`` / ``history_mask`` [B, T, F] left-padded (padding
rows are all-zero in the mask, so the last row is the last observed cycle); ``query_cycle`` /
``query_hour`` [B, H] absolute cycle index and elapsed hours at the end of that cycle.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, ValidationError
from ml.features.columns import numeric_column
from ml.features.cycle_kinds import TrendRows, trend_rows
from ml.features.timing import default_hours_per_cycle
from ml.scaling import FeatureScaler

__all__ = ["FEATURES", "WindowSpec", "model_table", "model_columns", "ModelColumns", "table_rows",
           "column_values", "reference_capacity", "subsample_indices",
           "history_arrays", "stack_histories", "future_schedule", "make_windows"]

#: (name, unit, transform) of every model input feature, in model order.
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("retention", "fraction of reference capacity", "identity"),
    ("elapsed_hour", "h", "log1p"),
    ("cycle_index", "cycle", "log1p"),
    ("cycle_duration_hour", "h", "log1p"),
    ("rest_hour", "h", "log1p"),
    ("c_rate", "1/h", "identity"),
    ("coulombic_inefficiency_per_hour", "1/h", "identity"),
    ("polarization_rise_volt", "V", "identity"),
    ("aw_rise_fraction", "1", "identity"),
    ("temperature_celsius", "degC", "identity"),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
REQUIRED = ("cycle_index", "test_time_second", "discharge_capacity_ah")
#: Per-cycle columns model_table takes from the feature path (only these are computed).
_TABLE_COLUMNS = ("cell_id", "cycle_index", "test_time_second", "discharge_capacity_ah",
                  "reference_capacity_ah", "polarization_volt", "aw_ohm_per_sqrt_s") + tuple(
    n for n in FEATURE_NAMES if n not in ("polarization_rise_volt", "aw_rise_fraction"))
FIRST_CYCLES = 3  # reference capacity: max discharge capacity of the first 3 cycles


@dataclass(frozen=True)
class WindowSpec:
    """How a history becomes a model window.

    Attributes
    ----------
    max_history:
        Longest history fed to the model, in cycles; longer ones are subsampled evenly (first and
        last cycle kept).
    min_history:
        Fewest observed cycles accepted.
    """

    max_history: int = 64
    min_history: int = 3

    def to_dict(self) -> dict:
        """The card's ``window`` entry."""
        return {"max_history": self.max_history, "min_history": self.min_history,
                "subsample": "evenly spaced rows, first and last cycle kept",
                "padding": "left (last row = last observed cycle)"}


#: attrs key of a frame already cut to its trend rows (its note), and of the last observed
#: (cycle_index, elapsed hour) of the history before the cut
TREND_DONE = "trend_rows"
LAST_OBSERVED = "last_observed"
#: (rows, last cycle_index) of the frame the two marks above were set on: pandas copies
#: ``attrs`` into every slice, so a history cut from a trend-cut record (an evaluation's first
#: 40 %) would otherwise inherit the WHOLE record's note and last observed cycle — its forecast
#: would start after the record's last cycle (measured: NASA B0034 forecast flat from cycle 198
#: when cut at cycle 80)
TREND_FRAME = "trend_frame"
_TREND_MARKS = (TREND_DONE, LAST_OBSERVED, TREND_FRAME)

#: given per-cycle columns that describe ONE cycle's own run, not the test's pace: left out
#: when the trend rows are capacity checks (a slow check's duration is not the ageing clock)
_OWN_CYCLE_COLUMNS = ("cycle_duration_second", "rest_second", "c_rate")


def trend_subset(cycles: pd.DataFrame | Mapping[str, Any]
                 ) -> tuple[pd.DataFrame | Mapping[str, Any], TrendRows | None]:
    """The rows of one cell's per-cycle history that carry its capacity trend
    (:func:`ml.features.cycle_kinds.trend_rows`: capacity checks when labelled, never pulses or
    partial cycles), without the ``cycle_label`` column; ``(cycles, None)`` unchanged when
    every row is kept and there are no labels."""
    frame = isinstance(cycles, pd.DataFrame)
    if frame and any(k in cycles.attrs for k in _TREND_MARKS):
        if _same_frame(cycles):
            return cycles, None  # already cut (ml.sources.trend_records): the rules run once
        cycles = cycles.copy(deep=False)  # a slice of a cut frame: its marks are not its own
        cycles.attrs = {k: v for k, v in cycles.attrs.items() if k not in _TREND_MARKS}
    names = list(cycles.columns) if frame else list(cycles)
    if "cycle_index" not in names or "discharge_capacity_ah" not in names \
            or "test_time_second" not in names:
        return cycles, None  # the feature path names what is missing
    if not frame and len({len(v) for v in cycles.values()}) > 1:
        return cycles, None  # ragged columns: the feature path says which
    capacity = np.asarray(cycles["discharge_capacity_ah"])
    if capacity.dtype.kind not in "fiub":
        return cycles, None  # text among the capacities: the feature path names the row
    labels = np.asarray(cycles["cycle_label"], dtype=object) if "cycle_label" in names else None
    n, q = _floats(cycles["cycle_index"]), capacity.astype(np.float64, copy=False)
    order = np.argsort(n, kind="stable")
    rows = trend_rows(q[order], None if labels is None else labels[order])
    if not rows.changed and labels is None:
        return cycles, None
    keep = np.empty(len(order), dtype=bool)
    keep[order] = rows.keep
    drop = {"cycle_label"} | (set(_OWN_CYCLE_COLUMNS) if rows.basis == "capacity checks"
                              else set())
    # the forecast still starts after the last OBSERVED cycle (CONTRACTS), kept or not
    last = int(order[-1])
    start = (float(n[last]), float(_floats(cycles["test_time_second"])[last]) / 3600.0)
    if frame:
        out = cycles.loc[keep, [c for c in names if c not in drop]].reset_index(drop=True)
        out.attrs = {**cycles.attrs, TREND_DONE: rows.note(), LAST_OBSERVED: start,
                     TREND_FRAME: _frame_mark(out)}
        return out, rows
    out = {k: np.asarray(v)[keep] for k, v in cycles.items() if k not in drop}
    return _Observed(out, start), rows


def _frame_mark(frame: pd.DataFrame) -> tuple[int, float]:
    """(rows, last cycle_index) of a trend-cut frame (:data:`TREND_FRAME`)."""
    n = len(frame)
    return n, float(frame["cycle_index"].iloc[-1]) if n else float("nan")


def _same_frame(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is the one its trend marks were set on, not a slice of it."""
    mark = frame.attrs.get(TREND_FRAME)
    if mark is None or TREND_DONE not in frame.attrs or "cycle_index" not in frame.columns:
        return False
    return tuple(mark) == _frame_mark(frame)


class _Observed(dict):
    """A mapping of columns cut to its trend rows that remembers the last observed cycle."""

    def __init__(self, data: dict, start: tuple[float, float]) -> None:
        super().__init__(data)
        self.attrs = {LAST_OBSERVED: start}


def _floats(values: Any) -> np.ndarray:
    """A column as float64 (non-numbers NaN: the feature path reports them by row)."""
    a = np.asarray(values)
    if a.dtype.kind in "fiub":
        return a.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(a, copy=False), errors="coerce").to_numpy(
        np.float64, na_value=np.nan)


def _complete(cycles: pd.DataFrame | Mapping[str, Any],
              nominal_capacity_ah: float | None) -> tuple[dict[str, Any], list[str]]:
    """The ONE feature path (``ml.features.complete_cycle_columns``), with the reference rule:
    the model table's columns as arrays and the ignored input columns."""
    from ml.features import complete_cycle_columns

    cells = None
    if nominal_capacity_ah is not None:
        reference_capacity(np.ones(1), nominal_capacity_ah)  # validates the value
        ids = pd.unique(np.asarray(cycles["cell_id"]).astype(str)) if "cell_id" in cycles \
            else []
        cell_id = str(ids[0]) if len(ids) else "cell"
        cells = {cell_id: {"nominal_capacity_ah": float(nominal_capacity_ah)}}
    return complete_cycle_columns(cycles, cells, columns=_TABLE_COLUMNS)


#: a stated nominal capacity the history's first cycles lie outside of (as a multiple of it):
#: a unit mix-up (mAh given as Ah, a per-mass value) rather than a cell — no cell delivers twice
#: its rating, and one below a tenth of it is not a cell to forecast
NOMINAL_RATIO_RANGE = (0.1, 2.0)


def _check_nominal(discharge_ah: np.ndarray, nominal_capacity_ah: float) -> None:
    """Refuse a stated nominal capacity the history's capacities cannot belong to: the largest
    of the first cycles' discharge capacities outside :data:`NOMINAL_RATIO_RANGE` × nominal."""
    first = np.asarray(discharge_ah, dtype=float)[:FIRST_CYCLES]
    first = first[np.isfinite(first)]
    if not first.size:
        return
    ratio = float(first.max()) / nominal_capacity_ah
    lo, hi = NOMINAL_RATIO_RANGE
    if not lo <= ratio <= hi:
        raise ValidationError(
            "the history's capacities do not belong to the stated nominal capacity (a unit "
            "mix-up: mAh given as Ah, or a capacity per gram?)", code="nominal_mismatch",
            column="nominal_capacity_ah",
            expected=f"a nominal capacity within {1 / hi:g}-{1 / lo:g} x the first cycles' "
                     "discharge capacity (Ah)",
            found=f"nominal {nominal_capacity_ah:g} Ah, first cycles up to "
                  f"{float(first.max()):g} Ah ({ratio:.3g} x)")


def reference_capacity(discharge_ah: np.ndarray, nominal_capacity_ah: float | None = None) -> float:
    """Reference capacity (Ah): ``nominal_capacity_ah`` when given, else max of the first 3 cycles."""
    if nominal_capacity_ah is not None:
        if not np.isfinite(nominal_capacity_ah) or nominal_capacity_ah <= 0:
            raise ValidationError("nominal capacity must be a positive number",
                                  code="bad_value", column="nominal_capacity_ah",
                                  expected="a float > 0", found=repr(nominal_capacity_ah))
        return float(nominal_capacity_ah)
    first = np.asarray(discharge_ah, dtype=float)[:FIRST_CYCLES]
    return float(np.nanmax(first))


def _check_history(df: pd.DataFrame, min_rows: int) -> None:
    if "cell_id" in df.columns and df["cell_id"].nunique() > 1:
        raise ValidationError("a history must hold one cell", code="several_cells",
                              column="cell_id", expected="one cell_id",
                              found=str(sorted(df["cell_id"].astype(str).unique())[:5]))
    if len(df) < min_rows:
        raise ValidationError("history too short", code="history_too_short",
                              column="cycle_index", expected=f">= {min_rows} cycles",
                              found=f"{len(df)} cycles")
    retention = df["retention"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(retention) | (retention <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError("discharge capacity must be a positive number",
                              code="bad_value", row=i + 1, column="discharge_capacity_ah",
                              expected="a float > 0",
                              found=repr(df["discharge_capacity_ah"].iloc[i]))
    if "elapsed_hour" in df.columns:
        _check_clock(df["elapsed_hour"].to_numpy(dtype=float))


def stalled_clock(elapsed_hour: np.ndarray) -> tuple[int, float] | None:
    """``(cycles, hour)`` when a clock never advances — at least 2 finite values, all equal
    (every cycle ends at ``hour``, e.g. an export whose time column is all zeros) — else None.
    Such a history carries no time: the time-driven fade cannot be told from it, and the
    forecast's clock would start from zero. A history without any clock is not stalled (the
    callers ask for the planned hours per cycle). One rule for single cells and cohorts."""
    t = np.asarray(elapsed_hour, dtype=float)
    t = t[np.isfinite(t)]
    if t.size >= 2 and float(t.max()) <= float(t.min()):
        return int(t.size), float(t[0])
    return None


def _check_clock(elapsed_hour: np.ndarray) -> None:
    """Refuse a :func:`stalled_clock`, naming ``test_time_second``."""
    stalled = stalled_clock(elapsed_hour)
    if stalled is not None:
        raise ValidationError(
            "the history's test clock never advances: every cycle ends at the same elapsed "
            "time, so time-driven fade cannot be told apart (is the time column the step "
            "time, or empty?)", code="clock_not_advancing", column="test_time_second",
            expected="the elapsed test time (s) at the end of each cycle, growing over the "
                     "history", found=f"{stalled[0]} cycles all ending at "
                                       f"{stalled[1] * 3600.0:g} s")


class ModelColumns(dict):
    """:func:`model_table`'s columns as plain arrays (name → ndarray, or the extension array of
    a non-numpy column such as ``cell_id``), in table order, without a DataFrame around them.

    Serving reads a handful of columns a few times per request; a pandas column access costs
    tens of microseconds (string column index, ``__finalize__`` copying ``attrs``), a dict
    lookup nothing. ``n_rows`` is the number of cycles (``len`` is the number of columns, as
    for any dict); ``attrs`` the feature path's table attrs; ``columns`` the names.
    """

    __slots__ = ("n_rows", "attrs")

    def __init__(self, data: dict[str, Any], n_rows: int, attrs: dict | None = None) -> None:
        super().__init__(data)
        self.n_rows = int(n_rows)
        self.attrs = dict(attrs or {})

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in table order (as ``DataFrame.columns`` for ``in`` tests)."""
        return tuple(self)

    def frame(self) -> pd.DataFrame:
        """The same columns as a DataFrame (what :func:`model_table` returns; ``cell_id`` as
        pandas' string dtype, as ``complete_cycle_table`` gives it)."""
        data = dict(self)
        if isinstance(data.get("cell_id"), np.ndarray):
            data["cell_id"] = pd.array(data["cell_id"], dtype="str")
        out = pd.DataFrame(data, copy=False)
        out.attrs = dict(self.attrs)
        return out


def table_rows(table: pd.DataFrame | ModelColumns) -> int:
    """Number of cycles of a :func:`model_table` / :func:`model_columns` output."""
    return table.n_rows if isinstance(table, ModelColumns) else len(table)


def column_values(table: pd.DataFrame | ModelColumns, name: str) -> Any:
    """Column ``name`` of a model table as an array (``Series.to_numpy()`` for a DataFrame)."""
    col = table[name]
    return col.to_numpy() if isinstance(col, pd.Series) else col


def _check_columns(data: dict[str, Any], n_rows: int, min_rows: int) -> None:
    """:func:`_check_history` on plain arrays: the common (valid) case is judged with numpy;
    anything suspicious is handed to :func:`_check_history` on a frame of the same columns, so
    every error (and its order of precedence) is exactly the one it raises."""
    suspicious = n_rows < min_rows
    ids = data.get("cell_id")
    if ids is not None and not suspicious:
        suspicious = len(pd.unique(ids)) > 1
    if not suspicious:
        retention = np.asarray(data["retention"], dtype=float)
        with np.errstate(invalid="ignore"):
            suspicious = bool((~np.isfinite(retention) | (retention <= 0)).any())
    if not suspicious and "elapsed_hour" in data:
        suspicious = stalled_clock(data["elapsed_hour"]) is not None
    if suspicious:
        _check_history(pd.DataFrame(data, copy=False), min_rows)


def model_columns(cycles: pd.DataFrame | Mapping[str, Any], *,
                  nominal_capacity_ah: float | None = None,
                  min_history: int = 3) -> ModelColumns:
    """:func:`model_table`'s columns as plain arrays (:class:`ModelColumns`), the same values
    (``cell_id`` as an object array of str), without a DataFrame in or out: ``cycles`` may be
    a DataFrame or a mapping of column → array (``serving.history.columns_from_rows``).
    Only the rows that carry the capacity trend are used (:func:`trend_subset`); ``attrs
    ["history"]`` says which when any was left out or the rows are labelled."""
    if not isinstance(cycles, (pd.DataFrame, Mapping)) or _n_rows(cycles) == 0:
        raise ValidationError("history is empty", code="empty_input", column="history",
                              expected=f">= {min_history} per-cycle rows", found="0 rows")
    cycles, rows = trend_subset(cycles)
    if rows is not None and int(rows.keep.sum()) < min_history:
        note = rows.note()
        left = ", ".join(f"{why}: {k}" for why, k in note["dropped"].items())
        raise ValidationError("history too short once the rows that carry no capacity trend "
                              "are left out", code="history_too_short", column="cycle_index",
                              expected=f">= {min_history} cycles that measure the capacity",
                              found=f"{note['rows_used']} of {note['rows']} rows ({left})")
    done = getattr(cycles, "attrs", {})
    data, ignored = _complete(cycles, nominal_capacity_ah)
    n = len(data["cycle_index"])
    _check_columns(data, n, min_history)
    if nominal_capacity_ah is not None:
        _check_nominal(data["discharge_capacity_ah"], float(nominal_capacity_ah))
    data["cycle_index"] = data["cycle_index"].astype(np.float64)
    data["coulombic_inefficiency_per_hour"] = np.clip(
        numeric_column(data, "coulombic_inefficiency_per_hour"), -0.01, 0.01)
    pol = numeric_column(data, "polarization_volt")
    seen = pol[~np.isnan(pol)]
    data["polarization_rise_volt"] = pol - (np.median(seen[:FIRST_CYCLES]) if seen.size else np.nan)
    aw = numeric_column(data, "aw_ohm_per_sqrt_s")
    seen = aw[~np.isnan(aw)]
    aw_start = seen[0] if seen.size else np.nan
    data["aw_rise_fraction"] = aw / aw_start - 1.0 if aw_start and aw_start > 0 else \
        np.full(n, np.nan)
    for name in FEATURE_NAMES:
        if data[name].dtype != np.float64:
            data[name] = pd.to_numeric(pd.Series(data[name]), errors="coerce").to_numpy(
                np.float64, na_value=np.nan)
    attrs: dict[str, Any] = {"ignored_columns": ignored}
    note = rows.note() if rows is not None else done.get(TREND_DONE)
    if note is not None:
        attrs["history"] = note
    if done.get(LAST_OBSERVED) is not None:
        attrs[LAST_OBSERVED] = done[LAST_OBSERVED]
    return ModelColumns(data, n, attrs)


def _n_rows(cycles: pd.DataFrame | Mapping[str, Any]) -> int:
    """Rows of a per-cycle DataFrame or of a mapping of columns (its first column's length)."""
    if isinstance(cycles, pd.DataFrame):
        return len(cycles)
    return len(next(iter(cycles.values()))) if len(cycles) else 0


def model_table(cycles: pd.DataFrame, *, nominal_capacity_ah: float | None = None,
                min_history: int = 3) -> pd.DataFrame:
    """Validate a per-cycle history and add every model feature column.

    Parameters
    ----------
    cycles:
        One cell's per-cycle table (CONTRACTS names); at least ``cycle_index``,
        ``test_time_second`` (s, end of cycle) and ``discharge_capacity_ah`` (Ah).
    nominal_capacity_ah:
        Reference capacity in Ah; default max discharge capacity of the first 3 cycles.

    Returns
    -------
    DataFrame
        Sorted by ``cycle_index``, with :data:`FEATURE_NAMES` columns (NaN where unknown) and
        ``reference_capacity_ah`` (:func:`model_columns` gives the same columns as arrays).

    Raises
    ------
    ValidationError
        From the feature path (missing required column, non-numeric value, repeated cycle, time
        going backwards), or several cells, a non-positive capacity, or fewer than
        ``min_history`` cycles (the message names row and column).
    """
    return model_columns(cycles, nominal_capacity_ah=nominal_capacity_ah,
                         min_history=min_history).frame()


def subsample_indices(n_rows: int, max_history: int) -> np.ndarray:
    """Row indices kept from a history of ``n_rows``: all, or ``max_history`` evenly spaced
    rows including the first and the last."""
    if n_rows <= max_history:
        return np.arange(n_rows)
    return np.unique(np.round(np.linspace(0, n_rows - 1, max_history)).astype(int))


#: Features that describe test CONDITIONS (not the fade signal itself). A value of one of them
#: further than CONTEXT_Z_LIMIT standard deviations from the training mean is a condition the
#: model never saw: it is masked (treated as unobserved, which training teaches the model to
#: handle) rather than extrapolated. Seen: a 60 °C cell (z ≈ 6 for a 15–35 °C training set)
#: flipped the time share of a time-driven C/10 cell from 0.81 to 0.24. The advice policy still
#: reports the cell as outside the training domain.
CONTEXT_FEATURES = ("temperature_celsius", "c_rate")
CONTEXT_Z_LIMIT = 4.0


def history_arrays(table: pd.DataFrame, scaler: FeatureScaler,
                   max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """Scaled features and mask [T, F] (float32) of a :func:`model_table` output.

    Missing values become 0 with mask 0; ``T <= max_history``. Context features beyond
    ``CONTEXT_Z_LIMIT`` standard deviations of the training data are masked too.
    """
    idx = subsample_indices(table_rows(table), max_history)
    cols = [table[f] for f in scaler.features]
    if all(c.dtype == np.float64 for c in cols):  # model_table's output: plain float columns
        raw = np.empty((len(idx), len(cols)))
        for j, c in enumerate(cols):  # only the kept rows (no [rows, F] frame copy first)
            raw[:, j] = (c.to_numpy() if isinstance(c, pd.Series) else c)[idx]
    else:
        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(
            {f: table[f] for f in scaler.features}, copy=False)
        raw = frame[list(scaler.features)].to_numpy(dtype="float64")[idx]
    mask = np.isfinite(raw)
    scaled = scaler.transform(np.where(mask, raw, np.nan))
    for j, name in enumerate(scaler.features):
        if name in CONTEXT_FEATURES:
            with np.errstate(invalid="ignore"):
                mask[:, j] &= np.abs(scaled[:, j]) <= CONTEXT_Z_LIMIT
    x = np.where(mask, scaled, 0.0).astype(np.float32)
    return x, mask.astype(np.float32)


def stack_histories(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad [T_i, F] histories to one [B, T, F] batch (padding rows have mask 0)."""
    t_max = max(x.shape[0] for x, _ in items)
    f = items[0][0].shape[1]
    xs = np.zeros((len(items), t_max, f), dtype=np.float32)
    ms = np.zeros((len(items), t_max, f), dtype=np.float32)
    for b, (x, m) in enumerate(items):
        xs[b, t_max - len(x):] = x
        ms[b, t_max - len(m):] = m
    return xs, ms


def planned_hours_per_cycle(table: pd.DataFrame | ModelColumns,
                            hours_per_cycle: float | None = None) -> float:
    """Hours per future cycle: ``hours_per_cycle`` when given, else the CONTRACTS default
    (:func:`ml.features.timing.default_hours_per_cycle` of the history).

    Raises
    ------
    ValidationError
        The pace is not a positive number."""
    if hours_per_cycle is None:
        pace = default_hours_per_cycle(column_values(table, "elapsed_hour"),
                                       column_values(table, "cycle_index"))
    else:
        pace = float(hours_per_cycle)
    if hours_per_cycle is None and np.isfinite(pace) and pace <= 0:
        raise ValidationError(
            "the history's test clock did not advance over its last cycles, so the pace of "
            "the future cycles (the median duration of the last 10 observed cycles) is 0 h: "
            "state the planned hours per cycle (API future_hours_per_cycle, CLI "
            "--hours-per-cycle) or fix the time column", code="bad_value",
            column="test_time_second",
            expected="cycles that each take time on the test clock", found=f"{pace:g} h per cycle")
    if not np.isfinite(pace) or pace <= 0:
        raise ValidationError("hours per cycle must be a positive number",
                              code="bad_value", column="hours_per_cycle",
                              expected="a float > 0", found=repr(hours_per_cycle if
                                                                 hours_per_cycle is not None
                                                                 else pace))
    return pace


def future_schedule(table: pd.DataFrame, horizon_cycles: int,
                    hours_per_cycle: float | None = None,
                    start: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Future cycle numbers and elapsed hours at the end of each future cycle.

    Parameters
    ----------
    horizon_cycles:
        Number of future cycles N (>= 1): cycles last+1 … last+N.
    hours_per_cycle:
        Planned duration of each future cycle (h); default the median duration of the last 10
        observed cycles.
    start:
        (cycle_index, elapsed hour) of the last OBSERVED cycle when the table's last row is not
        it (rows left out of the trend, :func:`trend_subset`); default the table's last row.
    """
    if int(horizon_cycles) != horizon_cycles or horizon_cycles < 1:
        raise ValidationError("horizon must be a positive whole number of cycles",
                              code="bad_value", column="horizon_cycles",
                              expected="an integer >= 1", found=repr(horizon_cycles))
    pace = planned_hours_per_cycle(table, hours_per_cycle)
    steps = np.arange(1, int(horizon_cycles) + 1, dtype=float)
    if start is None:
        start = (float(column_values(table, "cycle_index")[-1]),
                 float(column_values(table, "elapsed_hour")[-1]))
    return start[0] + steps, start[1] + pace * steps


def make_windows(table: pd.DataFrame, *, scaler: FeatureScaler, spec: WindowSpec,
                 query_cycle: np.ndarray, query_hour: np.ndarray) -> dict[str, np.ndarray]:
    """One cell's model inputs (batch of 1): ``history``, ``history_mask`` [1, T, F],
    ``query_cycle``, ``query_hour`` [1, H] (float32)."""
    qc = np.asarray(query_cycle, dtype=np.float32).reshape(1, -1)
    qh = np.asarray(query_hour, dtype=np.float32).reshape(1, -1)
    if qc.shape != qh.shape:
        raise FadecastError("query_cycle and query_hour differ in length", code="bad_shape",
                            expected=str(qc.shape), found=str(qh.shape))
    x, m = history_arrays(table, scaler, spec.max_history)
    return {"history": x[None], "history_mask": m[None], "query_cycle": qc, "query_hour": qh}
