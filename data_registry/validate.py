"""Stateful, vectorised validators that ``Source.chunks()`` runs over every chunk in file order.

Each validator checks a chunk against its schema table (required columns, finite numbers, integer
columns, physical bounds), then the ordering rules of CONTRACTS.md:

* an ISOLATED out-of-order time row is dropped (warning ``time_backwards_row``); a sustained
  backward jump is an error (``time_backwards``);
* a row identical to the one before it is dropped (warning ``duplicate_rows``);
* a cycle counter that falls back (a cycler restarted its count) is renumbered to keep counting
  up (warning ``cycle_count_reset``), as long as time keeps going forward;
* unit and sign sanity against ∫I dt (see :mod:`data_registry.consistency`) on the first chunk.

Warnings of one kind are aggregated into ONE :class:`IngestWarning` with a count and the first row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.consistency import UnitCorrection, infer_corrections
from data_registry.errors import IngestWarning, ValidationError
from data_registry.schema import CYCLES, EIS, SAMPLES, Table

#: rows of the next chunk the out-of-order rule looks at
LOOKAHEAD = 2


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
            self.items[code] = IngestWarning(code, old.message, old.file, old.row, old.column,
                                             old.count + count, old.details)


def check_table(df: pd.DataFrame, table: Table, file: str) -> pd.DataFrame:
    """Schema checks of one chunk: required columns, finite values, integers, bounds.

    Returns the frame with integer columns cast to int64 and float columns to float64. Raises
    :class:`ValidationError` naming the first offending row (``source_row``) and column.
    """
    missing = [c for c in table.required if c != "cell_id" and c not in df.columns]
    if missing:
        raise ValidationError(
            f"missing required column '{missing[0]}'", code="missing_column", file=file,
            column=missing[0], expected=f"columns {table.required[1:]}",
            found=f"{[c for c in df.columns if c != 'source_row']}")
    rows = (df["source_row"].to_numpy() if "source_row" in df.columns
            else np.arange(1, len(df) + 1))
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
            bad = ~finite if spec.required else ~finite & ~nan
            if bad.any():
                i = int(np.argmax(bad))
                found = "an empty/NaN value" if nan[i] else repr(str(values[i]))
                raise ValidationError(
                    "missing or non-finite value" + _count_note(bad), code="not_finite",
                    file=file, row=int(rows[i]), column=col, expected="a finite number",
                    found=found)
        lo = -np.inf if spec.lo is None else spec.lo
        hi = np.inf if spec.hi is None else spec.hi
        outside = finite & ((values < lo) | (values > hi))
        if outside.any():
            i = int(np.argmax(outside))
            code = "negative_value" if spec.lo == 0.0 and values[i] < 0 else "out_of_range"
            raise ValidationError(
                "value outside the physically possible range" + _count_note(outside),
                code=code, file=file, row=int(rows[i]), column=col,
                expected=f"{spec.unit or 'a value'} in [{_fmt(lo)}, {_fmt(hi)}]",
                found=f"{values[i]:g}")
        if spec.dtype == "int64":
            frac = finite & (values != np.round(values))
            if frac.any():
                i = int(np.argmax(frac))
                raise ValidationError(
                    "expected a whole number", code="not_integer", file=file, row=int(rows[i]),
                    column=col, expected="an integer", found=f"{values[i]:g}")
            if df[col].dtype != np.int64:
                casts[col] = (pd.array(values, dtype="Int64") if not finite.all()
                              else values.astype(np.int64))
    if "source_row" in df.columns and df["source_row"].dtype != np.int64:
        casts["source_row"] = df["source_row"].to_numpy(dtype=np.int64)
    return df.assign(**casts) if casts else df


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
    """

    time_column: str | None = None
    counter_column: str | None = None

    def __init__(self, table: Table, file: str) -> None:
        self.table = table
        self.file = file
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
        df = check_table(df, self.table, self.file)
        df = self.correct(df)
        if self.time_column is None or self.time_column not in df.columns:
            return self._dedupe(self._renumber(df))
        nxt = np.empty(0) if lookahead is None else np.asarray(lookahead, dtype=np.float64)
        return self._order(df, self.scale_time(nxt))

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
            self.tally.add("time_backwards_row",
                           f"isolated out-of-order time row dropped ({self.time_column} "
                           f"{cur[i]:g} s between {prev[i]:g} s and {nx1[i]:g} s)",
                           int(rows[i]), self.time_column, int(drop.sum()))
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
        return self._dedupe(self._renumber(kept))

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

    def __init__(self, file: str) -> None:
        super().__init__(SAMPLES, file)
        self.corrections: UnitCorrection | None = None
        self._cycle_filled = False

    def prepare(self, df: pd.DataFrame) -> pd.DataFrame:
        if "cycle_count" in df.columns and (self._cycle_filled or df["cycle_count"].isna().all()):
            if not self._cycle_filled:
                self.tally.add("cycle_count_missing",
                               "the cycle column is empty; every row counted as cycle 0",
                               int(df["source_row"].iloc[0]), "cycle_count", 1)
            self._cycle_filled = True
            df = df.assign(cycle_count=0)
        return df

    def scale_time(self, t: np.ndarray) -> np.ndarray:
        if self.corrections is not None and self.corrections.time_factor != 1.0:
            return t * self.corrections.time_factor
        return t

    def correct(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.corrections is None:
            self.corrections = infer_corrections(df, self.file)
            for w in self.corrections.warnings:
                self.tally.add(w.code, w.message, w.row, w.column, w.count, **w.details)
        return self.corrections.apply(df)


class CycleValidator(TableValidator):
    """Per-cycle rows: schema, end-of-cycle time order, cycle index order."""

    time_column = "test_time_second"
    counter_column = None

    def __init__(self, file: str) -> None:
        super().__init__(CYCLES, file)
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

    def __init__(self, file: str) -> None:
        super().__init__(EIS, file)


VALIDATORS = {"samples": SampleValidator, "cycles": CycleValidator, "eis": EisValidator}


def make_validator(kind: str, file: str) -> TableValidator:
    """The validator for a source ``kind`` ("samples" | "cycles" | "eis")."""
    return VALIDATORS[kind](file)
