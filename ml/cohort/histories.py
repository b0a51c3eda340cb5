"""One sibling's protocol and capacity as the plain arrays the cohort law reads.

A :class:`CellHistory` is built from a per-cycle table (CONTRACTS names: ``cycle_index``,
``test_time_second`` at the END of each cycle, ``discharge_capacity_ah``, optional
``cycle_duration_second``, ``rest_second``, ``c_rate``, ``temperature_celsius``) or from a
plan (the same columns without capacities). Where a protocol column is missing the law's
neutral value is used and the cell says so in ``estimated``: rests unknown → 0 h (every hour
counts as operating time), C-rate unknown → ``2 h / operating hours per cycle``, temperature
unknown → 25 °C.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError

__all__ = ["CellHistory", "history_from_frame", "REFERENCE_TEMPERATURE_C"]

REFERENCE_TEMPERATURE_C = 25.0


@dataclass(frozen=True)
class CellHistory:
    """Per-cycle arrays of one cell (units in the names); ``capacity_ah`` None for a plan."""

    cell_id: str
    cycle_index: np.ndarray
    hours: np.ndarray  # elapsed at the end of each cycle, h
    operating_hour: np.ndarray  # hours of the cycle with current flowing
    rest_hour: np.ndarray  # hours of the cycle at rest (0 where unknown)
    c_rate: np.ndarray
    temperature_celsius: np.ndarray
    capacity_ah: np.ndarray | None = None
    estimated: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n(self) -> int:
        return int(self.cycle_index.size)

    @property
    def typical_c_rate(self) -> float:
        """Median C-rate of the cell (its intercept's rate covariate)."""
        return float(np.median(self.c_rate))

    def head(self, n_cycles: int) -> "CellHistory":
        """The first ``n_cycles`` cycles (what a user knew then)."""
        k = int(max(1, min(n_cycles, self.n)))
        cap = None if self.capacity_ah is None else self.capacity_ah[:k]
        return CellHistory(self.cell_id, self.cycle_index[:k], self.hours[:k],
                           self.operating_hour[:k], self.rest_hour[:k], self.c_rate[:k],
                           self.temperature_celsius[:k], cap, self.estimated)


def _column(frame: pd.DataFrame, name: str, where: str,
            required: bool = True) -> np.ndarray | None:
    """``frame[name]`` as floats; None when absent or all blank. A required column must be
    finite everywhere; an optional one may have blanks (filled with its median) but no inf."""
    if name not in frame.columns:
        return None
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).all() and not required:
        return None
    bad = np.isinf(values) | (np.isnan(values) if required else np.zeros(values.shape, bool))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError("value is not a finite number", code="bad_value",
                              file=where, row=i + 2, column=name, expected="a finite float",
                              found=repr(frame[name].iloc[i]))
    if np.isnan(values).any():
        values = np.where(np.isnan(values), np.nanmedian(values), values)
    return values


def history_from_frame(frame: pd.DataFrame, cell_id: str, *, plan: bool = False,
                       where: str | None = None) -> CellHistory:
    """Validate one cell's per-cycle table (or plan) and turn it into a :class:`CellHistory`.

    Raises
    ------
    ValidationError
        A required column is missing, a value is NaN/inf, cycles do not increase, the clock
        goes backwards, or a capacity is not positive (file/row/column named).
    """
    where = where or cell_id
    need = ("cycle_index", "test_time_second") + (() if plan else ("discharge_capacity_ah",))
    for name in need:
        if name not in frame.columns:
            what = "a plan needs its clock" if name == "test_time_second" and plan else (
                "required column missing (a table in another layout or without a clock: "
                "ingest it first, `fadecast ingest FILE --cell-id ID --hours-per-cycle H`, "
                "and name the cells with --cells or --cohort)")
            raise ValidationError(what, code="missing_column", file=where,
                                  row=1, column=name, expected=", ".join(need),
                                  found=", ".join(map(str, frame.columns[:12])) or "no columns")
    if len(frame) == 0:
        raise ValidationError("no cycles", code="empty_history", file=where,
                              expected="at least one row", found="none")
    cyc = _column(frame, "cycle_index", where)
    t = _column(frame, "test_time_second", where)
    if cyc is None or t is None:  # pragma: no cover - required columns raise above
        raise ValidationError("cycle_index and test_time_second must be numbers",
                              code="bad_value", file=where, column="test_time_second",
                              expected="finite floats", found="NaN")
    if np.any(np.diff(cyc) <= 0):
        i = int(np.flatnonzero(np.diff(cyc) <= 0)[0]) + 1
        raise ValidationError("cycle indexes must increase", code="non_increasing_cycles",
                              file=where, row=i + 2, column="cycle_index",
                              expected=f"> {cyc[i - 1]:g}", found=f"{cyc[i]:g}")
    if np.any(np.diff(t) < 0) or t[0] < 0:
        i = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1 if np.any(np.diff(t) < 0) else 0
        raise ValidationError("test time must not decrease", code="time_backwards",
                              file=where, row=i + 2, column="test_time_second",
                              expected="a non-decreasing clock >= 0", found=f"{t[i]:g}")
    hours = t / 3600.0
    duration = np.diff(np.concatenate([[0.0], hours]))
    dur_col = _column(frame, "cycle_duration_second", where, required=False)
    if dur_col is not None:
        duration = np.where(dur_col > 0, dur_col / 3600.0, duration)
    estimated = []
    rest = _column(frame, "rest_second", where, required=False)
    if rest is None:
        rest_h = np.zeros_like(hours)
        estimated.append("rest_second")
    else:
        rest_h = np.clip(rest / 3600.0, 0.0, None)
    operating = np.clip(duration - rest_h, 1e-6, None)
    c_rate = _column(frame, "c_rate", where, required=False)
    if c_rate is None or np.any(c_rate <= 0):
        guess = np.clip(2.0 / operating, 0.01, 20.0)
        c_rate = guess if c_rate is None else np.where(c_rate > 0, c_rate, guess)
        estimated.append("c_rate")
    temp = _column(frame, "temperature_celsius", where, required=False)
    if temp is None:
        temp = np.full_like(hours, REFERENCE_TEMPERATURE_C)
        estimated.append("temperature_celsius")
    cap = None
    if not plan:
        cap = _column(frame, "discharge_capacity_ah", where)
        if cap is None or np.any(cap <= 0):
            i = 0 if cap is None else int(np.flatnonzero(cap <= 0)[0])
            raise ValidationError("discharge capacity must be a positive number",
                                  code="bad_value", file=where, row=i + 2,
                                  column="discharge_capacity_ah", expected="> 0 Ah",
                                  found=repr(frame["discharge_capacity_ah"].iloc[i]))
    return CellHistory(str(cell_id), cyc.astype(np.int64), hours, operating, rest_h,
                       c_rate.astype(float), temp.astype(float), cap, tuple(estimated))
