"""Stateful, vectorised validators that ``Source.chunks()`` runs over every chunk in file order.

Each validator checks a chunk against its schema table (required columns, finite numbers, integer
columns, physical bounds), then the ordering rules of CONTRACTS.md:

* an ISOLATED out-of-order time row is dropped (warning ``time_backwards_row``); a sustained
  backward jump is an error (``time_backwards``);
* a row identical to the one before it is dropped (warning ``duplicate_rows``);
* a cycle counter that falls back (a cycler restarted its count) is renumbered to keep counting
  up (warning ``cycle_count_reset``), as long as time keeps going forward;
* unit and sign sanity against ∫I dt (see :mod:`data_registry.consistency`) on the first chunk;
* a cycle column that is empty, or holds one value (or changes once) while the current goes
  through several charge → discharge alternations (a cycler procedure without an "advance
  cycle" step), is replaced by cycle numbers derived from the current
  (:class:`~data_registry.cycle_numbers.CycleNumbering`; warning ``cycle_count_missing`` or
  ``cycle_count_derived``); decided on the first rows whatever the chunk size (rows whose
  numbering is still in question are held back, at most ``HOLD_ROWS`` of them);
* a voltage below the schema's usual lower bound (−0.5 V) but above ``VOLTAGE_FLOOR_V`` is
  kept with a warning ``voltage_below_range`` (electrode potentials vs a reference, half cells,
  a reversed cell); below the floor the row is refused as before.

Warnings of one kind are aggregated into ONE :class:`IngestWarning` with a count and the first row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.consistency import UnitCorrection, infer_corrections
from data_registry.cycle_numbers import CycleNumbering
from data_registry.errors import IngestWarning, ValidationError
from data_registry.schema import CYCLES, EIS, SAMPLES, Table

#: rows of the next chunk the out-of-order rule looks at
LOOKAHEAD = 2
#: how many row lines one warning lists in its details (the count is always exact)
MAX_LISTED_ROWS = 10_000
#: ``on_error`` policies: refuse the file at the first bad row, or skip bad rows (each one's
#: line and reason stored with the ingest, warning ``row_skipped``)
ON_ERROR_POLICIES = ("raise", "skip-row")
#: a cumulative counter (capacity, energy) slightly below zero is integration noise when it is
#: no more negative than this fraction of the counter's scale (the largest value seen of that
#: quantity in the file so far, both directions): clamped to 0, warning ``counter_noise_clamped``
COUNTER_NOISE_TOLERANCE = 1e-2
#: hard lower bound of ``voltage_volt`` (V). The schema's −0.5 V is the usual range of a
#: two-electrode cell (a little undershoot near 0 V); three-electrode and half-cell tests log an
#: electrode's potential against a reference, which is negative for an anode read against a
#: positive reference: lithium sits at −3.04 V vs SHE (−3.24 V vs SCE, −3.26 V vs Ag/AgCl sat.),
#: the most negative couple in use, and a driven electrode adds up to ~1 V of overpotential.
#: A reversed cell in a series string reads a few volts negative. −5 V bounds all of these with
#: margin; values between −5 V and −0.5 V are kept with a warning (``voltage_below_range``),
#: lower ones (−1e6, a mislabelled mV column) are refused.
VOLTAGE_FLOOR_V = -5.0
_WIDENED_LOWER = {"voltage_volt": VOLTAGE_FLOOR_V}
_COUNTER_GROUPS = {"capacity": ("charging_capacity_ah", "discharging_capacity_ah"),
                   "energy": ("charging_energy_wh", "discharging_energy_wh")}


class _Tally:
    """Aggregates warnings of one code: count, first row, first message."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: dict[str, IngestWarning] = {}

    def add(self, code: str, message: str, row: int | None, column: str | None, count: int,
            **details) -> None:
        if count <= 0:
            return
        old = self.items.get(code)
        if old is None:
            self.items[code] = IngestWarning(code, message, self.file, row, column, count,
                                             dict(details))
        else:
            merged = dict(old.details)
            for key, value in details.items():  # per-row lists (lines, skipped rows) add up
                if isinstance(value, list) and isinstance(merged.get(key), list):
                    merged[key] = (merged[key] + value)[:MAX_LISTED_ROWS]
            self.items[code] = IngestWarning(code, old.message, old.file, old.row, old.column,
                                             old.count + count, merged)


def check_table(df: pd.DataFrame, table: Table, file: str, *, on_error: str = "raise",
                skipped: list[dict] | None = None,
                defer_lower: str | None = None) -> pd.DataFrame:
    """Schema checks of one chunk: required columns, finite values, integers, bounds.

    Returns the frame with integer columns cast to int64 and float columns to float64. Raises
    :class:`ValidationError` naming the first offending row (``source_row``) and column; with
    ``on_error="skip-row"`` the offending rows are dropped instead and each is appended to
    ``skipped`` as ``{"line", "column", "code", "reason", "found"}``. ``defer_lower`` names a
    column whose lower bound the caller checks later (time: an isolated negative glitch row is
    an out-of-order row, dropped by the ordering rule).
    """
    missing = [c for c in table.required if c != "cell_id" and c not in df.columns]
    if missing:
        raise ValidationError(
            f"missing required column '{missing[0]}'", code="missing_column", file=file,
            column=missing[0], expected=f"columns {table.required[1:]}",
            found=f"{[c for c in df.columns if c != 'source_row']}")
    rows = (df["source_row"].to_numpy() if "source_row" in df.columns
            else np.arange(1, len(df) + 1))
    skip = on_error == "skip-row"
    drop = np.zeros(len(df), dtype=bool)

    def fail(mask: np.ndarray, error: ValidationError, found) -> None:
        """Raise ``error`` (policy raise) or mark the ``mask`` rows as skipped."""
        if not skip:
            raise error
        new = mask & ~drop
        if skipped is not None:
            for i in np.flatnonzero(new)[:MAX_LISTED_ROWS]:
                skipped.append({"line": int(rows[i]), "column": error.column,
                                "code": error.code, "reason": error.message.split(" (")[0],
                                "found": found(int(i))})
        drop[:] |= mask

    if skip and "_not_numeric" in df.columns:  # cells the lenient CSV parse could not read
        text = df["_not_numeric"].to_numpy(dtype=object)
        bad = pd.notna(text)
        if bad.any():
            for i in np.flatnonzero(bad)[:MAX_LISTED_ROWS]:
                col, _, found = str(text[i]).partition("=")
                if skipped is not None:
                    skipped.append({"line": int(rows[i]), "column": col, "code": "not_numeric",
                                    "reason": "non-numeric value", "found": found})
            drop |= bad
    if "_not_numeric" in df.columns:
        df = df.drop(columns="_not_numeric")
    casts = {}
    for col in df.columns:
        if col == "source_row":
            continue
        try:
            spec = table.column(col)
        except KeyError:
            continue
        if spec.dtype == "string":
            if df[col].dtype != "string":
                casts[col] = df[col].astype("string")
            continue
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        if df[col].dtype != np.float64 and spec.dtype == "float64":
            casts[col] = values
        finite = np.isfinite(values)
        if not finite.all():
            nan = np.isnan(values)
            bad = (~finite if spec.required else ~finite & ~nan) & ~drop
            if bad.any():
                i = int(np.argmax(bad))
                found = "an empty/NaN value" if nan[i] else repr(str(values[i]))
                fail(bad, ValidationError(
                    "missing or non-finite value" + _count_note(bad), code="not_finite",
                    file=file, row=int(rows[i]), column=col, expected="a finite number",
                    found=found),
                    lambda k: "an empty/NaN value" if nan[k] else repr(str(values[k])))
        lo = -np.inf if spec.lo is None or col == defer_lower else spec.lo
        hi = np.inf if spec.hi is None else spec.hi
        floor = min(lo, _WIDENED_LOWER.get(col, lo))
        outside = finite & ((values < floor) | (values > hi)) & ~drop
        if outside.any():
            i = int(np.argmax(outside))
            code = "negative_value" if spec.lo == 0.0 and values[i] < 0 else "out_of_range"
            expected = f"{spec.unit or 'a value'} in [{_fmt(lo)}, {_fmt(hi)}]"
            if values[i] < floor < lo:
                expected = (f"{spec.unit} in [{_fmt(floor)}, {_fmt(hi)}] (below {_fmt(lo)} "
                            f"{spec.unit} only as an electrode potential vs a reference, with "
                            "a warning)")
            fail(outside, ValidationError(
                "value outside the physically possible range" + _count_note(outside),
                code=code, file=file, row=int(rows[i]), column=col, expected=expected,
                found=f"{values[i]:g}"), lambda k: f"{values[k]:g}")
        if spec.dtype == "int64":
            frac = finite & (values != np.round(values)) & ~drop
            if frac.any():
                i = int(np.argmax(frac))
                fail(frac, ValidationError(
                    "expected a whole number", code="not_integer", file=file, row=int(rows[i]),
                    column=col, expected="an integer", found=f"{values[i]:g}"),
                    lambda k: f"{values[k]:g}")
            if df[col].dtype != np.int64:
                ok = finite | drop
                casts[col] = (pd.array(np.where(drop, 0.0, values), dtype="Int64")
                              if not ok.all() else np.where(drop, 0.0, values).astype(np.int64))
    if "source_row" in df.columns and df["source_row"].dtype != np.int64:
        casts["source_row"] = df["source_row"].to_numpy(dtype=np.int64)
    out = df.assign(**casts) if casts else df
    return out[~drop] if drop.any() else out


def _count_note(mask: np.ndarray) -> str:
    n = int(mask.sum())
    return f" ({n} rows in this chunk)" if n > 1 else ""


def _fmt(x: float) -> str:
    return "-inf" if x == -np.inf else "inf" if x == np.inf else f"{x:g}"


class TableValidator:
    """Stateful validator of one source: call :meth:`check` per chunk, then :meth:`finish`.

    Parameters
    ----------
    table:
        The canonical table (SAMPLES, CYCLES or EIS).
    file:
        File name used in every error and warning.
    on_error:
        ``"raise"`` (default): the first bad row refuses the file; ``"skip-row"``: bad rows are
        dropped, each one's line and reason kept in ONE warning ``row_skipped``
        (``details["rows"]``).
    """

    time_column: str | None = None
    counter_column: str | None = None

    def __init__(self, table: Table, file: str, on_error: str = "raise") -> None:
        if on_error not in ON_ERROR_POLICIES:
            raise ValueError(f"on_error must be one of {ON_ERROR_POLICIES}, got {on_error!r}")
        self.table = table
        self.file = file
        self.on_error = on_error
        self.tally = _Tally(file)
        self._ctx: np.ndarray = np.empty(0)  # raw times of the last rows of the previous chunk
        self._last_kept_t = -np.inf
        self._last_row: pd.Series | None = None
        self._counter_offset = 0
        self._last_counter: int | None = None

    @property
    def warnings(self) -> list[IngestWarning]:
        """Aggregated warnings so far (one per code)."""
        return list(self.tally.items.values())

    def check(self, df: pd.DataFrame, lookahead: np.ndarray | None = None) -> pd.DataFrame:
        """Validate one chunk and return its accepted rows.

        ``lookahead`` holds the raw times of the first two rows of the NEXT chunk (None or
        empty at the end of the file): the out-of-order rule needs two rows of context.
        """
        df = self.prepare(df)
        skipped: list[dict] = []
        df = check_table(df, self.table, self.file, on_error=self.on_error, skipped=skipped,
                         defer_lower=self.time_column)
        self._note_skipped(skipped)
        self._note_low_voltage(df)
        df = self.correct(df)
        if self.time_column is None or self.time_column not in df.columns:
            return self._dedupe(self._renumber(df))
        nxt = np.empty(0) if lookahead is None else np.asarray(lookahead, dtype=np.float64)
        return self._order(df, self.scale_time(nxt))

    def _note_skipped(self, skipped: list[dict]) -> None:
        if skipped:
            first = skipped[0]
            self.tally.add("row_skipped", f"rows with unusable values skipped (policy "
                           f"skip-row); first: line {first['line']}, column "
                           f"'{first['column']}': {first['reason']} (found {first['found']})",
                           first["line"], first["column"], len(skipped), rows=skipped)

    def _note_low_voltage(self, df: pd.DataFrame) -> None:
        """Warning ``voltage_below_range`` for kept values between the floor and the schema's
        usual lower bound (see ``VOLTAGE_FLOOR_V``)."""
        for col in _WIDENED_LOWER:
            if col not in df.columns or not len(df):
                continue
            usual = self.table.column(col).lo
            v = df[col].to_numpy(dtype=np.float64)
            low = v < usual
            if not low.any():
                continue
            rows = df["source_row"].to_numpy()
            idx = np.flatnonzero(low)
            k = int(idx[0])
            self.tally.add(
                "voltage_below_range",
                f"{col} below {usual:g} V, first at line {int(rows[k])} ({v[k]:g} V): kept as an "
                "electrode potential vs a reference (three-electrode or half-cell test) or a "
                f"reversed cell; values below {VOLTAGE_FLOOR_V:g} V are refused. For a "
                "two-electrode full cell, check the wiring and the sign of the voltage column",
                int(rows[k]), col, int(low.sum()),
                lines=[int(rows[j]) for j in idx[:MAX_LISTED_ROWS]],
                values=[float(v[j]) for j in idx[:MAX_LISTED_ROWS]])

    def _check_lower_time(self, df: pd.DataFrame) -> pd.DataFrame:
        """The time column's lower bound, checked after the ordering rule dropped glitches."""
        spec = self.table.column(self.time_column)
        if spec.lo is None or not len(df):
            return df
        t = df[self.time_column].to_numpy(dtype=np.float64)
        low = t < spec.lo
        if not low.any():
            return df
        rows = df["source_row"].to_numpy()
        i = int(np.argmax(low))
        if self.on_error != "skip-row":
            raise ValidationError(
                "value outside the physically possible range" + _count_note(low),
                code="negative_value", file=self.file, row=int(rows[i]),
                column=self.time_column, expected=f"{spec.unit} in [{_fmt(spec.lo)}, inf]",
                found=f"{t[i]:g}")
        self._note_skipped([{"line": int(rows[k]), "column": self.time_column,
                             "code": "negative_value",
                             "reason": "value outside the physically possible range",
                             "found": f"{t[k]:g}"} for k in np.flatnonzero(low)])
        return df[~low]

    def finish(self) -> pd.DataFrame | None:
        """End of file: nothing is held back (kept for callers that stream by hand)."""
        return None

    def scale_time(self, t: np.ndarray) -> np.ndarray:
        """Hook: apply a decided time-unit correction to raw look-ahead times."""
        return t

    def prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        """Hook: fixes before the schema check (defaults to none)."""
        return df

    def correct(self, df: pd.DataFrame) -> pd.DataFrame:
        """Hook: unit/sign corrections after the schema check (defaults to none)."""
        return df

    def _order(self, df: pd.DataFrame, nxt: np.ndarray) -> pd.DataFrame:
        t = df[self.time_column].to_numpy(dtype=np.float64)
        rows = df["source_row"].to_numpy()
        ctx = self._ctx
        ext = np.concatenate((ctx[-1:] if len(ctx) else [-np.inf], t,
                              nxt[:2], [np.inf] * (2 - min(2, len(nxt)))))
        prev, cur, nx1, nx2 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]
        prev = prev[: len(t)]
        cur, nx1, nx2 = cur[: len(t)], nx1[: len(t)], nx2[: len(t)]
        low = (cur < prev) & (nx1 >= prev)            # one row dipped back in time
        low_next = (nx1 < cur) & (nx2 >= cur)         # the next row is such a dip
        high = (cur > nx1) & (prev <= nx1) & ~low_next  # one row jumped ahead in time
        drop = low | high
        if drop.any():
            i = int(np.argmax(drop))
            idx = np.flatnonzero(drop)[:MAX_LISTED_ROWS]
            self.tally.add("time_backwards_row",
                           f"isolated out-of-order time row at line {int(rows[i])} dropped "
                           f"({self.time_column} {cur[i]:g} s between {prev[i]:g} s and "
                           f"{nx1[i]:g} s)",
                           int(rows[i]), self.time_column, int(drop.sum()),
                           lines=[int(rows[k]) for k in idx],
                           times=[float(cur[k]) for k in idx])
        self._ctx = np.concatenate((self._ctx, t))[-2:]
        kept = df[~drop] if drop.any() else df
        kt = kept[self.time_column].to_numpy(dtype=np.float64)
        back = np.diff(np.concatenate(([self._last_kept_t], kt))) < 0
        if back.any():
            i = int(np.argmax(back))
            before = self._last_kept_t if i == 0 else kt[i - 1]
            raise ValidationError(
                "time goes backwards for more than one row (a sustained backward jump; "
                "concatenated or restarted test?)", code="time_backwards", file=self.file,
                row=int(kept["source_row"].iloc[i]), column=self.time_column,
                expected=f">= {before:g} s", found=f"{kt[i]:g} s")
        if len(kt):
            self._last_kept_t = kt[-1]
        return self._dedupe(self._renumber(self._check_lower_time(kept)))

    def _renumber(self, df: pd.DataFrame) -> pd.DataFrame:
        col = self.counter_column
        if col is None or col not in df.columns or not len(df):
            return df
        c = df[col].to_numpy(dtype=np.int64)
        prev = np.concatenate(([c[0] if self._last_counter is None else self._last_counter],
                               c[:-1]))
        drops = np.maximum(prev - c, 0)
        resets = drops > 0
        if resets.any() or self._counter_offset:
            # each reset adds the fall-back (+1) so counting continues upwards
            offset = self._counter_offset + np.cumsum(np.where(resets, drops + 1, 0))
            if resets.any():
                i = int(np.argmax(resets))
                self.tally.add("cycle_count_reset",
                               f"{col} fell back from {prev[i]} to {c[i]}; later cycles "
                               "renumbered to keep counting up",
                               int(df["source_row"].iloc[i]), col, int(resets.sum()))
            self._counter_offset = int(offset[-1])
            df = df.assign(**{col: c + offset})
        self._last_counter = int(c[-1])
        return df

    def _dedupe(self, df: pd.DataFrame) -> pd.DataFrame:
        if not len(df):
            return df
        cols = [c for c in df.columns if c != "source_row"]
        if self.time_column in cols:  # time first: it settles almost every row at once
            cols.remove(self.time_column)
            cols.insert(0, self.time_column)
        same = np.ones(len(df), dtype=bool)
        for col in cols:
            v = df[col].to_numpy()
            prev = np.empty_like(v, dtype=object) if v.dtype == object else np.empty_like(v)
            prev[1:] = v[:-1]
            if self._last_row is not None:
                prev[0] = self._last_row[col]
            eq = prev == v
            if v.dtype.kind == "f":
                eq |= np.isnan(prev) & np.isnan(v)
            same &= np.asarray(eq, dtype=bool)
            if self._last_row is None:
                same[0] = False
            if not same.any():
                break
        self._last_row = df.iloc[-1]
        if same.any():
            i = int(np.argmax(same))
            self.tally.add("duplicate_rows", "rows identical to the row before were dropped",
                           int(df["source_row"].iloc[i]), None, int(same.sum()))
            df = df[~same]
        return df


class SampleValidator(TableValidator):
    """Per-sample rows: schema, time order, cycle resets, units and current sign."""

    time_column = "test_time_second"
    counter_column = "cycle_count"

    def __init__(self, file: str, on_error: str = "raise") -> None:
        super().__init__(SAMPLES, file, on_error)
        self.corrections: UnitCorrection | None = None
        self._scale = {group: 0.0 for group in _COUNTER_GROUPS}
        self.cycles = CycleNumbering(file)
    def check(self, df: pd.DataFrame, lookahead: np.ndarray | None = None) -> pd.DataFrame:
        """As :meth:`TableValidator.check`; rows whose cycle number is still in question are
        held back and returned with a later chunk (see :class:`CycleNumbering`)."""
        self.cycles.counted = False
        out = self.cycles.settle(super().check(df, lookahead),
                                 last=lookahead is None or not len(lookahead))
        self.tally.items.update(self.cycles.warnings)
        return out

    def _renumber(self, df: pd.DataFrame) -> pd.DataFrame:
        """Cycle-count resets of the file's own column (moot where cycles are derived)."""
        return df if self.cycles.derive else super()._renumber(df)

    def prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        return self._clamp_counter_noise(self.cycles.fill(df))

    def _clamp_counter_noise(self, df: pd.DataFrame) -> pd.DataFrame:
        """Counter values in [−tolerance × scale, 0) → 0, warning ``counter_noise_clamped``
        (scale = the largest value of that quantity in the file so far, this chunk included).
        More negative values are left for the schema check (an error, or a skipped row)."""
        changes = {}
        for group, cols in _COUNTER_GROUPS.items():
            present = [c for c in cols if c in df.columns]
            if not present:
                continue
            arrays = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
                      for c in present}
            for v in arrays.values():
                finite = v[np.isfinite(v)]
                if finite.size:
                    self._scale[group] = max(self._scale[group], float(np.abs(finite).max()))
            limit = COUNTER_NOISE_TOLERANCE * self._scale[group]
            for col, v in arrays.items():
                noise = (v < 0) & (v >= -limit)
                if not noise.any() or limit <= 0:
                    continue
                rows = df["source_row"].to_numpy()
                idx = np.flatnonzero(noise)
                unit = "Ah" if group == "capacity" else "Wh"
                worst = float(v[noise].min())
                self.tally.add(
                    "counter_noise_clamped",
                    f"{col} slightly below zero ({worst:.3g} {unit} at line {int(rows[idx[0]])}) "
                    f"within the tolerance of {COUNTER_NOISE_TOLERANCE:g} × the counter's scale "
                    f"({self._scale[group]:.4g} {unit}): read as integration noise and set to 0 "
                    "(the raw file keeps the value)", int(rows[idx[0]]), col, int(noise.sum()),
                    lines=[int(rows[k]) for k in idx[:MAX_LISTED_ROWS]],
                    values=[float(v[k]) for k in idx[:MAX_LISTED_ROWS]],
                    tolerance=COUNTER_NOISE_TOLERANCE, scale=self._scale[group])
                changes[col] = np.where(noise, 0.0, v)
        return df.assign(**changes) if changes else df

    def scale_time(self, t: np.ndarray) -> np.ndarray:
        if self.corrections is not None and self.corrections.time_factor != 1.0:
            return t * self.corrections.time_factor
        return t

    def correct(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.corrections is None:
            self.corrections = infer_corrections(df, self.file)
            for w in self.corrections.warnings:
                self.tally.add(w.code, w.message, w.row, w.column, w.count, **w.details)
        return self.cycles.count(self.corrections.apply(df), self.time_column)


class CycleValidator(TableValidator):
    """Per-cycle rows: schema, end-of-cycle time order, cycle index order."""

    time_column = "test_time_second"
    counter_column = None

    def __init__(self, file: str, on_error: str = "raise") -> None:
        super().__init__(CYCLES, file, on_error)
        self._last_index: int | None = None

    def correct(self, df: pd.DataFrame) -> pd.DataFrame:
        idx = df["cycle_index"].to_numpy(dtype=np.int64)
        prev = np.concatenate(([-1 if self._last_index is None else self._last_index], idx[:-1]))
        bad = idx <= prev
        if bad.any():
            i = int(np.argmax(bad))
            raise ValidationError(
                "cycle_index must increase from row to row", code="cycle_index_order",
                file=self.file, row=int(df["source_row"].iloc[i]), column="cycle_index",
                expected=f"> {prev[i]}", found=str(idx[i]))
        if len(idx):
            self._last_index = int(idx[-1])
        return df


class EisValidator(TableValidator):
    """EIS rows: schema only (frequency order is free; spectra are identified by id)."""

    def __init__(self, file: str, on_error: str = "raise", eis_sign: str = "auto") -> None:
        super().__init__(EIS, file, on_error)
        if eis_sign not in EIS_SIGNS:
            raise ValueError(f"eis_sign must be one of {EIS_SIGNS}, got {eis_sign!r}")
        self.eis_sign = eis_sign
        self._negate: bool | None = None if eis_sign == "auto" else eis_sign == "minus_im"

    def correct(self, df: pd.DataFrame) -> pd.DataFrame:
        """Im(Z) sign: a file storing −Z″ is negated to the canonical Im(Z) (decided once, on
        the first chunk, so one file is never half converted)."""
        if not len(df) or "z_imag_ohm" not in df.columns:
            return df
        if self._negate is None:
            im = df["z_imag_ohm"].to_numpy(dtype=np.float64)
            positive = float(np.mean(im > 0))
            self._negate = len(im) >= MIN_EIS_POINTS and positive >= 0.5
            if self._negate:
                self.tally.add(
                    "eis_imaginary_sign_flipped",
                    f"{positive:.0%} of the imaginary parts are positive: the file stores −Z″ "
                    "(positive for capacitive/diffusive behaviour); negated to Im(Z) "
                    "(pass --eis-sign im if the file really holds Im(Z))",
                    int(df["source_row"].iloc[0]), "z_imag_ohm", 1,
                    positive_fraction=positive)
        elif self._negate and not self.tally.items.get("eis_imaginary_sign_flipped"):
            self.tally.add("eis_imaginary_sign_flipped", "the file holds −Z″ (--eis-sign "
                           "minus_im): negated to Im(Z)", int(df["source_row"].iloc[0]),
                           "z_imag_ohm", 1)
        return df.assign(z_imag_ohm=-df["z_imag_ohm"]) if self._negate else df


#: how the imaginary part of an EIS file is written: decide, Im(Z), or −Im(Z)
EIS_SIGNS = ("auto", "im", "minus_im")
#: fewest EIS points on which the sign is decided automatically
MIN_EIS_POINTS = 5

VALIDATORS = {"samples": SampleValidator, "cycles": CycleValidator, "eis": EisValidator}


def make_validator(kind: str, file: str, on_error: str = "raise",
                   eis_sign: str = "auto") -> TableValidator:
    """The validator for a source ``kind`` ("samples" | "cycles" | "eis"); ``on_error`` is
    ``"raise"`` or ``"skip-row"`` (see :class:`TableValidator`); ``eis_sign`` (EIS only) is
    ``"auto"``, ``"im"`` or ``"minus_im"``."""
    if kind == "eis":
        return EisValidator(file, on_error, eis_sign)
    return VALIDATORS[kind](file, on_error)
