"""Checking a per-cycle table a user brings, and estimating its clock from a stated protocol.

Rows are 1-based as a text editor shows a CSV with a header (data row i → row i + 2) unless the
table carries ``source_row``. The first failure is raised with file/row/column/expected/found;
the message also counts further failures of the same check.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from reference.features_v1.columns import numeric_column
from reference.features_v1.cycle_arrays import CycleColumns

REQUIRED = ("cycle_index", "discharge_capacity_ah")
#: Per-cycle protocol inputs that let a missing clock be estimated (consumed, not output).
PROTOCOL_COLUMNS = ("hours_per_cycle",)
#: Cell metadata keys this package reads.
METADATA_KEYS = ("nominal_capacity_ah", "active_mass_g", "hours_per_cycle", "c_rate",
                 "high_voltage_threshold_volt", "temperature_celsius", "aw_spike_voltage_volt")


def cell_metadata_map(cells: Any) -> dict[str, dict[str, Any]]:
    """Normalise ``cells`` (None, dict cell_id → dict, or DataFrame with ``cell_id`` column or
    index) to ``{cell_id: {key: value}}``."""
    if cells is None:
        return {}
    if isinstance(cells, pd.DataFrame):
        frame = cells if "cell_id" in cells.columns else cells.reset_index(
            names="cell_id")
        return {str(r["cell_id"]): {k: v for k, v in r.items() if k != "cell_id"}
                for r in frame.to_dict("records")}
    if isinstance(cells, Mapping):
        return {str(k): dict(v) for k, v in cells.items()}
    raise ValidationError("cells must be a DataFrame or a dict of cell_id -> metadata",
                          code="bad_cells", expected="DataFrame or dict",
                          found=type(cells).__name__)


def meta_float(meta: Mapping[str, Any], key: str) -> float | None:
    """A positive finite float from cell metadata, or None."""
    v = meta.get(key)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def _row(df: CycleColumns, i: int) -> int:
    if "source_row" in df:
        v = df.num("source_row")[i]
        if np.isfinite(v):
            return int(v)
    return int(df.position[i]) + 2


def _shown(value: Any) -> str:
    """A value as a user typed it: 'n/a' for text, inf / nan for numbers."""
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "item"):
        value = value.item()
    return repr(value) if not isinstance(value, float) else f"{value:g}"


def _fail(df: CycleColumns, mask: np.ndarray, column: str, message: str, expected: str,
          code: str, file: str | None, found: str | None = None) -> None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return
    i = int(idx[0])
    more = f" ({idx.size - 1} more row(s) fail the same check)" if idx.size > 1 else ""
    if found is None:
        found = _shown(df.value(column, i)) if column in df else "nothing"
    raise ValidationError(message + more, code=code, file=file, row=_row(df, i), column=column,
                          expected=expected, found=found)


def check_numeric(df: CycleColumns, columns: list[str], file: str | None) -> None:
    """Every present value of ``columns`` parses as a number (numeric dtypes need no check;
    blank text counts as missing)."""
    for c in columns:
        if c not in df:
            continue
        raw = df.raw(c)
        if isinstance(raw, np.ndarray) and raw.dtype.kind in "biuf":
            continue
        series = pd.Series(raw, copy=False)
        bad = np.isnan(df.num(c)) & series.notna().to_numpy(dtype=bool)
        if bad.any() and (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
            blank = series.astype("string").str.strip().isin(["", "nan", "NaN"]).fillna(True)
            bad = bad & ~blank.to_numpy(dtype=bool)
        _fail(df, bad, c, "value is not a number", "a float", "not_a_number", file)


def check_required(df: CycleColumns, file: str | None, time_estimable: bool) -> None:
    """Required columns exist and hold finite values; cycle_index is a whole number >= 0."""
    need = list(REQUIRED) + ([] if time_estimable else ["test_time_second"])
    for c in need:
        if c not in df:
            hint = (" (or state a protocol: hours_per_cycle, or c_rate)"
                    if c == "test_time_second" else "")
            raise ValidationError(f"per-cycle table lacks required column '{c}'{hint}",
                                  code="missing_column", file=file, column=c,
                                  expected=", ".join(REQUIRED + ("test_time_second",)),
                                  found=", ".join(map(str, df.columns)) or "no columns")
    for c in need:
        v = numeric_column(df, c)
        if c == "test_time_second" and np.isnan(v).any():
            _fail(df, np.isnan(v), c, "test_time_second is missing and no protocol is stated to "
                  "estimate it (give hours_per_cycle or c_rate, as a column or cell metadata)",
                  "a number of seconds", "missing_time", file)
        _fail(df, ~np.isfinite(v), c, "value must be finite", "a finite float", "not_finite",
              file)
    ci = numeric_column(df, "cycle_index")
    _fail(df, (ci < 0) | (ci != np.round(ci)), "cycle_index", "cycle_index must be a whole "
          "number >= 0", "an integer >= 0", "bad_cycle_index", file)
    q = numeric_column(df, "discharge_capacity_ah")
    _fail(df, q < 0, "discharge_capacity_ah", "capacity must not be negative", "a float >= 0",
          "out_of_range", file)


def cell_codes(df: CycleColumns, meta: Mapping[str, Any],
               file: str | None) -> tuple[list[str], np.ndarray]:
    """Sorted distinct cell ids and each row's index into them (int [n]).

    Without a ``cell_id`` column every row belongs to one cell, named by the only key of
    ``meta`` or ``cell``. A row with a ``cell_id`` column but no id is an error.
    """
    if "cell_id" not in df:
        return [next(iter(meta)) if len(meta) == 1 else "cell"], np.zeros(len(df), np.int64)
    ids = pd.Series(df.raw("cell_id"), copy=False).astype(str)
    _fail(df, ids.isna().to_numpy(dtype=bool), "cell_id", "cell_id is missing",
          "a cell id on every row (or no cell_id column for one cell)", "missing_value", file,
          found="nothing")
    uniq, code = np.unique(ids.to_numpy(dtype=object), return_inverse=True)
    return [str(u) for u in uniq], code.astype(np.int64)


def check_order(df: CycleColumns, cell_code: np.ndarray, file: str | None) -> None:
    """Within each cell (rows already sorted by cell then cycle; ``cell_code`` int [n]): no
    repeated cycle, time never falls."""
    same = np.zeros(len(df), dtype=bool)
    same[1:] = cell_code[1:] == cell_code[:-1]
    ci = numeric_column(df, "cycle_index")
    dup = np.zeros(len(df), dtype=bool)
    dup[1:] = same[1:] & (ci[1:] == ci[:-1])
    _fail(df, dup, "cycle_index", "cycle_index repeats within a cell",
          "strictly increasing cycle_index per cell", "duplicate_cycle", file)
    t = numeric_column(df, "test_time_second")
    back = np.zeros(len(df), dtype=bool)
    back[1:] = same[1:] & (t[1:] < t[:-1])
    if back.any():
        i = int(np.argmax(back))
        _fail(df, back, "test_time_second", "test_time_second decreases as cycle_index "
              "increases", f">= {t[i - 1]:g} (the previous cycle's end)", "time_backwards",
              file, found=f"{t[i]:g}")


def estimate_time(df: CycleColumns, meta: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Fill missing ``test_time_second`` of one cell from a stated protocol.

    Order of preference: a ``hours_per_cycle`` column or metadata value (elapsed end time =
    Σ hours × Δcycle_index, the first cycle counting ``max(cycle_index, 1)`` cycles);
    ``equivalent_full_cycles`` with a C-rate (hours ≈ 2 × EFC / C-rate, as for constant-current
    protocols); a C-rate alone (hours per cycle ≈ 2 / C-rate + ``rest_second``).

    Returns
    -------
    (seconds, estimated) — float [n] with the given values kept, and int [n] 1 where filled.
    """
    t = numeric_column(df, "test_time_second")
    missing = ~np.isfinite(t)
    if not missing.any():
        return t, np.zeros(len(df), dtype=np.int64)
    ci = numeric_column(df, "cycle_index")
    dci = np.diff(ci, prepend=0.0)
    dci[0] = max(ci[0], 1.0) if len(ci) else 0.0
    hpc = numeric_column(df, "hours_per_cycle")
    meta_h = meta_float(meta, "hours_per_cycle")
    if meta_h is not None:
        hpc = np.where(np.isfinite(hpc), hpc, meta_h)
    crate = numeric_column(df, "c_rate")
    meta_c = meta_float(meta, "c_rate")
    if meta_c is not None:
        crate = np.where(np.isfinite(crate), crate, meta_c)
    efc = numeric_column(df, "equivalent_full_cycles")
    rest_h = np.nan_to_num(numeric_column(df, "rest_second")) / 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.isfinite(hpc).all():
            est = np.cumsum(hpc * dci) * 3600.0
        elif np.isfinite(efc).all() and np.isfinite(crate).all() and (crate > 0).all():
            est = (2.0 * efc / crate + np.cumsum(rest_h)) * 3600.0
        elif np.isfinite(crate).all() and (crate > 0).all():
            est = np.cumsum((2.0 / crate + rest_h) * dci) * 3600.0
        else:
            est = np.full(len(df), np.nan)
    filled = np.where(missing, est, t)
    return filled, missing.astype(np.int64)


def time_estimable(df: CycleColumns, meta_by_cell: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether some protocol is stated from which a missing clock could be estimated."""
    if any(c in df for c in ("hours_per_cycle", "c_rate")):
        return True
    return any(meta_float(m, "hours_per_cycle") or meta_float(m, "c_rate")
               for m in meta_by_cell.values())
