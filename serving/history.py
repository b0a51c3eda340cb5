"""Turn what a user brings (API history rows, a per-cycle CSV, a registered cell) into the raw
per-cycle frame the model reads (``ml.inference`` completes it through ``ml.features`` — the one
feature path; nothing here derives model features).

Also the small per-history summaries the advice needs (reference capacity, recent pace, loss
so far); whether a cell lies inside the model's training domain is judged by ``ml.domain`` alone,
inside every forecast.
"""
from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from ml.features.timing import default_hours_per_cycle

__all__ = [
    "LABEL_COLUMN",
    "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "cell_history", "columns_from_rows",
    "cycles_csv_cell_id",
    "frame_from_rows",
    "loss_so_far_fraction", "read_csv_text", "read_cycles_csv", "recent_hours_per_cycle",
    "reference_capacity_ah",
]

REQUIRED_COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah")
OPTIONAL_COLUMNS = (
    "charge_capacity_ah", "charge_energy_wh", "discharge_energy_wh", "mean_charge_voltage_volt",
    "mean_discharge_voltage_volt", "cycle_duration_second", "rest_second", "c_rate",
    "charge_policy_c_rate", "temperature_celsius", "aw_ohm_per_sqrt_s", "delta_q_v_variance_ah2",
    "delta_q_v_minimum_ah", "delta_q_v_mean_ah", "delta_q_v_skewness",
)


#: the source's label of each cycle (text; ``ml.features.cycle_kinds``)
LABEL_COLUMN = "cycle_label"

_ROW_GETTER = operator.itemgetter(*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)


def frame_from_rows(rows: Iterable[Any]) -> pd.DataFrame:
    """Per-cycle DataFrame from validated history rows (pydantic models or mappings): the
    columns of :func:`columns_from_rows` in a frame."""
    return pd.DataFrame(columns_from_rows(rows), copy=False)


def columns_from_rows(rows: Iterable[Any]) -> dict[str, np.ndarray]:
    """Per-cycle columns (name → 1-D array) from validated history rows (pydantic models or
    mappings) — what ``ml.inference.forecast`` reads, without a DataFrame around it.

    ``cycle_index`` is int64, every other column float64. Optional columns appear only where
    at least one row carries them; missing cells are NaN. One pass over the rows fills a
    [rows, columns] float64 array (None → NaN); the columns are rows of its transpose.
    """
    dicts = [r if isinstance(r, Mapping) else r.__dict__ for r in rows]
    names = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
    try:  # validated rows carry every field (None when absent): one C-level getter per row
        values = list(map(_ROW_GETTER, dicts))
    except KeyError:  # plain mappings may lack optional keys
        values = [[d.get(n) for n in names] for d in dicts]
    table = np.array(values, dtype=np.float64)
    table = table.reshape(len(dicts), len(names)).T.copy()  # one contiguous row per column
    data: dict[str, np.ndarray] = {
        "cycle_index": np.fromiter((d["cycle_index"] for d in dicts), dtype=np.int64,
                                   count=len(dicts))}
    for j, name in enumerate(names[1:], start=1):
        if j < len(REQUIRED_COLUMNS) or not np.isnan(table[j]).all():
            data[name] = table[j]
    labels = [d.get("cycle_label") for d in dicts]
    if any(v is not None for v in labels):  # text: kept out of the float table
        data[LABEL_COLUMN] = np.array(labels, dtype=object)
    return data


def read_csv_text(path: Path) -> pd.DataFrame:
    """A user's CSV as text cells (no NA guessing), header names stripped of spaces and BOM.

    Raises
    ------
    InputFormatError
        The file cannot be parsed as CSV (the message names the file).
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read as CSV: {exc}", code="unreadable_csv",
                               file=path.name) from exc
    raw.columns = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
    return raw


def read_cycles_csv(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a user's per-cycle CSV: the required columns, the known optional ones.

    Returns the table and the names of the columns it ignored (the CLI notes them on stderr).

    Raises
    ------
    InputFormatError
        The file cannot be parsed as CSV or lacks a required column.
    ValidationError
        A value is not a finite number (the message names file, line and column).
    """
    path = Path(path)
    raw = read_csv_text(path)
    for name in REQUIRED_COLUMNS:
        if name not in raw.columns:
            raise InputFormatError("required column missing", code="missing_column",
                                   file=path.name, row=1, column=name,
                                   expected=", ".join(REQUIRED_COLUMNS),
                                   found=", ".join(raw.columns[:12]) or "no columns")
    if raw.empty:
        raise ValidationError("no cycles in the file", code="empty_history", file=path.name,
                              row=2, expected="at least one data row", found="none")
    known = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in raw.columns]
    extra = [c for c in raw.columns if c not in known and c != "cell_id"]
    out: dict[str, np.ndarray] = {}
    for name in known:
        text = raw[name].astype(object)
        values = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(float)
        required = name in REQUIRED_COLUMNS
        bad = ~np.isfinite(values) & (required | (text.to_numpy() != ""))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError("value is not a finite number", code="bad_value",
                                  file=path.name, row=i + 2, column=name,
                                  expected="a finite float", found=repr(text.iloc[i]))
        out[name] = values
    cycles = out["cycle_index"]
    if np.any(cycles != np.round(cycles)):
        i = int(np.flatnonzero(cycles != np.round(cycles))[0])
        raise ValidationError("cycle index is not an integer", code="bad_value", file=path.name,
                              row=i + 2, column="cycle_index", expected="an integer",
                              found=repr(raw["cycle_index"].iloc[i]))
    frame = pd.DataFrame(out)
    frame["cycle_index"] = frame["cycle_index"].astype(np.int64)
    if LABEL_COLUMN in extra:  # text: the source's label of each cycle
        labels = raw[LABEL_COLUMN].astype(object)
        frame[LABEL_COLUMN] = labels.where(labels.str.strip() != "", None).to_numpy()
        extra.remove(LABEL_COLUMN)
    _check_monotone(frame, file=path.name)
    return frame, extra


def cycles_csv_cell_id(path: str | Path) -> str | None:
    """The cell id a per-cycle CSV states in its ``cell_id`` column.

    Returns None when the file has no ``cell_id`` column or leaves it empty everywhere (the CLI
    then reports the file stem).

    Raises
    ------
    ValidationError
        The column names more than one cell (the message names file, line and column).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                          usecols=lambda c: str(c).strip().lstrip("\ufeff") == "cell_id")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read as CSV: {exc}", code="unreadable_csv",
                               file=path.name) from exc
    if raw.shape[1] == 0:
        return None
    ids = raw.iloc[:, 0].astype(str).str.strip().to_numpy()
    given = np.flatnonzero(ids != "")
    if not given.size:
        return None
    first = ids[given[0]]
    other = given[ids[given] != first]
    if other.size:
        i = int(other[0])
        raise ValidationError("a per-cycle file must hold one cell", code="several_cells",
                              file=path.name, row=i + 2, column="cell_id",
                              expected=repr(first), found=repr(ids[i]))
    return str(first)


def _check_monotone(frame: pd.DataFrame, *, file: str | None) -> None:
    cyc = frame["cycle_index"].to_numpy()
    t = frame["test_time_second"].to_numpy()
    step = np.flatnonzero(np.diff(cyc) <= 0)
    if step.size:
        i = int(step[0]) + 1
        raise ValidationError("cycle indexes must increase", code="non_increasing_cycles",
                              file=file, row=i + 2, column="cycle_index",
                              expected=f"> {cyc[i - 1]}", found=str(cyc[i]))
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise ValidationError("test time must not decrease", code="time_backwards",
                              file=file, row=i + 2, column="test_time_second",
                              expected=f">= {t[i - 1]}", found=str(t[i]))


def cell_history(registry: Any, cell_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A registered cell's per-cycle frame and metadata.

    Cells stored as per-cycle summaries are read as they are; cells stored as raw samples are
    read from their STORED per-cycle table (``ml.features.cell_table``: built once through
    ``ml.features``, the one feature path, then extended as samples arrive). Only the
    CONTRACTS input columns are kept, so the model derives its features the same way for every
    source. The CLI and the API both come here (:mod:`serving.cell_store`).

    Raises
    ------
    NotFoundError
        Unknown cell, or a cell with neither cycles nor samples.
    """
    from serving.cell_store import _state, cell_frame

    key, meta, has_cycles = _state(registry, cell_id)
    return cell_frame(registry, cell_id, key, meta, has_cycles), meta


def reference_capacity_ah(discharge_ah: np.ndarray, nominal_capacity_ah: float | None) -> float:
    """CONTRACTS reference capacity (Ah): the nominal when given, else max of the first 3 cycles."""
    if nominal_capacity_ah is not None:
        return float(nominal_capacity_ah)
    return float(np.nanmax(np.asarray(discharge_ah, dtype=float)[:3]))


def loss_so_far_fraction(discharge_ah: np.ndarray, reference_ah: float) -> float:
    """1 − retention of the last 3 cycles (median, so one noisy cycle does not decide)."""
    tail = np.asarray(discharge_ah, dtype=float)[-3:]
    return float(1.0 - np.nanmedian(tail) / reference_ah)


def recent_hours_per_cycle(test_time_second: np.ndarray, override: float | None = None,
                           cycle_index: np.ndarray | None = None) -> float:
    """Hours per future cycle: ``override`` if given, else the median of the last 10 cycles
    (``ml.features.timing.default_hours_per_cycle``, per cycle where rows skip cycles)."""
    if override is not None:
        return float(override)
    t = np.asarray(test_time_second, dtype=float)
    if t.size < 2:
        return float(t[-1] / 3600.0) if t.size else 0.0
    n = np.arange(t.size, dtype=float) if cycle_index is None else cycle_index
    pace = default_hours_per_cycle(t / 3600.0, n)
    return pace if np.isfinite(pace) else 0.0
