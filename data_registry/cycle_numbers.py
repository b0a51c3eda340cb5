"""Cycle numbers from the sign of the current, where a file's cycle column says nothing.

Per chunk :class:`CycleCounter`, per file :class:`CycleNumbering`: where a file's cycle column
says nothing (empty, or one value while the current alternates — a cycler procedure without an "advance
cycle" step), the validator numbers cycles from the sign of the current. A half cycle is a run
of one sign (rests inside it ignored) that moves at least ``MIN_HALF_CYCLE_FRACTION`` of the
largest run's charge (so HPPC/DCIR pulses do not count); a new cycle starts at the first row of
a charge half cycle that follows a discharge half cycle (charge then discharge in one cycle, as
``coulombic_efficiency`` = discharge / charge of a cycle reads it). Rest rows stay in the cycle
before them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning

__all__ = ["CycleCounter", "CycleNumbering", "HOLD_ROWS", "REST_CURRENT_FRACTION"]

#: |I| at or below this fraction of the largest |I| seen so far is rest (the fraction
#: ml.features.sample_frame uses for its rest threshold)
REST_CURRENT_FRACTION = 1e-3
#: a run of one current sign moving less charge than this fraction of the largest run seen so
#: far is a pulse (HPPC, DCIR), not a half cycle: it neither starts nor ends a cycle
MIN_HALF_CYCLE_FRACTION = 0.02
#: a cycle column that changes at most this often while the current shows at least
#: ``MIN_DERIVED_CYCLES`` (and at least twice the column's count of) cycles is read as a
#: procedure without an "advance cycle" step: cycles are derived from the current
MAX_CYCLE_COLUMN_CHANGES = 1
MIN_DERIVED_CYCLES = 3
#: while the rows so far do not settle that question and the current counts past the column,
#: checked rows are held back (at most this many; then the file's column is kept), so the
#: decision does not depend on the chunk size
HOLD_ROWS = 1_000_000
#: working columns: cycle numbers from the current, and whether a row's number may still rise
#: by one (see :class:`CycleCounter`)
_HELPERS = ["_cycle_derived", "_cycle_pending"]

class CycleCounter:
    """Streaming cycle numbers from the sign of the current (see the module doc).

    Call :meth:`number` on each chunk in file order; ``start`` is the first cycle's number.
    Rest and pulse thresholds use the largest |I| and the largest run seen so far (with the
    default 10⁶-row chunks, the first chunk's). A charge run still open at the end of a chunk,
    too small yet to be judged a half cycle, may still start a cycle: its rows get the current
    cycle's number provisionally, ``pending_from`` is the chunk's first such row, and after the
    next chunk ``bump`` (0 or 1) is what to add to them (``carried_pending``: they are still in
    question). Where nothing is held back the numbers match one pass over the whole file.
    """

    def __init__(self, start: int = 0) -> None:
        self.start = int(start)
        self.cycle = int(start)      # number of the cycle the last row belongs to
        self.rows = 0                # rows numbered so far
        self._open_sign = 0          # sign of the last non-rest row (its run is open)
        self._open_ah = 0.0          # charge moved since the open run began (Ah)
        self._open_judged = False    # whether the open run was judged a half cycle
        self._last_half = 0          # sign of the last half cycle
        self._max_abs_a = 0.0
        self._scale_ah = 0.0
        self._last_t = np.nan
        self.pending_from = 0            # first row of the last chunk still in question
        self.bump = 0                    # what the rows left in question before it gain
        self.carried_pending = False     # whether those earlier rows are still in question

    @property
    def cycles(self) -> int:
        """How many cycles were numbered so far."""
        return self.cycle - self.start + 1 if self.rows else 0

    def number(self, current_a: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        """Cycle number (int64) of each row of one chunk (current in A, + = charge; time in s)."""
        i = np.nan_to_num(np.asarray(current_a, dtype=np.float64))
        t = np.asarray(time_s, dtype=np.float64)
        n = len(i)
        self.bump = 0
        self.pending_from = n
        if n == 0:
            return np.empty(0, dtype=np.int64)
        self._max_abs_a = max(self._max_abs_a, float(np.abs(i).max()))
        rest = REST_CURRENT_FRACTION * self._max_abs_a
        sign = np.where(i > rest, 1, np.where(i < -rest, -1, 0))
        dt = np.diff(t, prepend=t[0] if np.isnan(self._last_t) else self._last_t)
        dq = np.abs(i) * np.where(np.isfinite(dt) & (dt > 0), dt, 0.0) / 3600.0
        cum = np.concatenate(([0.0], np.cumsum(dq)))
        self._last_t = float(t[-1])
        self.rows += n
        nz = np.flatnonzero(sign)
        prev = np.concatenate(([self._open_sign], sign[nz][:-1]))
        starts = nz[sign[nz] != prev]                # rows where a new run begins
        edges = np.concatenate((starts, [n]))
        run_ah = cum[edges[1:]] - cum[edges[:-1]]
        head_ah = self._open_ah + float(cum[edges[0]])  # the run carried in, up to its end
        self._scale_ah = max(self._scale_ah, float(run_ah.max(initial=0.0)),
                             head_ah if self._open_sign else 0.0)
        need = MIN_HALF_CYCLE_FRACTION * self._scale_ah
        boundary = np.zeros(n, dtype=np.int64)
        if self._open_sign and not self._open_judged and 0 < need <= head_ah:
            self.bump = int(self._judge(self._open_sign, 0, boundary))
            self._open_judged = True
        if len(starts):  # runs that start here: half cycles, and charges after a discharge
            half = (need > 0) & (run_ah >= need)
            signs = sign[starts][half]
            before = np.concatenate(([self._last_half], signs[:-1]))
            boundary[starts[half][(signs > 0) & (before < 0)]] += 1
            if len(signs):
                self._last_half = int(signs[-1])
            self._open_judged = bool(half[-1])
        if len(starts):
            self._open_sign = int(sign[starts[-1]])
            self._open_ah = float(run_ah[-1])
        elif self._open_sign:
            self._open_ah = head_ah
        open_may_start = (self._open_sign > 0 and self._last_half < 0
                          and not self._open_judged)
        if open_may_start:
            self.pending_from = int(starts[-1]) if len(starts) else 0
        self.carried_pending = open_may_start and not len(starts)
        out = self.cycle + np.cumsum(boundary)
        self.cycle = int(out[-1])
        return out

    def _judge(self, run_sign: int, row: int, boundary: np.ndarray) -> bool:
        """A run judged a half cycle: a charge after a discharge starts a new cycle (True)."""
        new = run_sign > 0 and self._last_half < 0
        if new:
            boundary[row] += 1
        self._last_half = run_sign
        return new


class CycleNumbering:
    """One file's cycle numbers: the file's column, or (see the module doc) the current's.

    The sample validator calls :meth:`fill` before its schema check, :meth:`count` after the
    unit corrections and :meth:`settle` on each checked chunk; ``warnings`` holds the warning on
    derived cycles (``cycle_count_missing`` or ``cycle_count_derived``, counts kept current).
    ``derive`` is None until decided: derive when the column is empty, or when it changed at
    most ``MAX_CYCLE_COLUMN_CHANGES`` times while the current counted at least
    ``max(MIN_DERIVED_CYCLES, 2 × the column's count)`` cycles; keep the column when it changes
    more, or at the end of the file / after ``HOLD_ROWS`` held rows without that evidence.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.derive: bool | None = None
        self.counted = False  # whether the current chunk ran the counter
        self.warnings: dict[str, IngestWarning] = {}
        self._counter: CycleCounter | None = None  # runs until the decision is "keep"
        self._filled = False  # the column is empty
        self._changes = 0
        self._last_c: int | None = None
        self._values: set[int] = set()  # the file's own cycle values (a few listed)
        self._rows = 0
        self._first_row: int | None = None
        self._held: list[pd.DataFrame] = []
        self._held_rows = 0
        self._tail: pd.DataFrame | None = None  # rows of a charge run that may start a cycle

    def fill(self, df: pd.DataFrame) -> pd.DataFrame:
        """An empty cycle column → 0 for the schema check (:meth:`count` numbers it)."""
        if "cycle_count" in df.columns and (self._filled or df["cycle_count"].isna().all()):
            if not self._filled and len(df):
                self._first_row = int(df["source_row"].iloc[0])
            self._filled = True
            df = df.assign(cycle_count=0)
        return df

    def count(self, df: pd.DataFrame, time_column: str) -> pd.DataFrame:
        """Add the working columns (cycle numbers from the current) while they may be used."""
        if self.derive is False and self._filled and "cycle_count_missing" not in self.warnings:
            self.warnings["cycle_count_missing"] = IngestWarning(  # emptied after the first rows
                "cycle_count_missing", "the cycle column is empty from this row on; those rows "
                "counted as cycle 0", self.file, int(df["source_row"].iloc[0]) if len(df)
                else None, "cycle_count")
        if self.derive is False or not len(df) or "cycle_count" not in df.columns:
            return df
        c = df["cycle_count"].to_numpy(dtype=np.int64)
        if self._counter is None:
            self._counter = CycleCounter(0 if self._filled else int(c[0]))
            if self._first_row is None:
                self._first_row = int(df["source_row"].iloc[0])
        derived = self._counter.number(df["current_ampere"].to_numpy(dtype=np.float64),
                                       df[time_column].to_numpy(dtype=np.float64))
        self.counted = True
        pending = np.zeros(len(df), dtype=bool)
        pending[self._counter.pending_from:] = True
        prev = c[0] if self._last_c is None else self._last_c
        self._changes += int(c[0] != prev) + int(np.count_nonzero(c[1:] != c[:-1]))
        self._last_c = int(c[-1])
        self._rows += len(c)
        if not self._filled and len(self._values) <= 10:
            self._values.update(int(v) for v in np.unique(c)[:11])
        if self.derive is None:
            if self._filled or (self._changes <= MAX_CYCLE_COLUMN_CHANGES and
                                self._counter.cycles >= max(MIN_DERIVED_CYCLES,
                                                            2 * (self._changes + 1))):
                self.derive = True
            elif self._changes > MAX_CYCLE_COLUMN_CHANGES:
                self.derive = False
        if self.derive:
            self._note()
        return df.assign(_cycle_derived=derived, _cycle_pending=pending)

    def settle(self, out: pd.DataFrame, last: bool) -> pd.DataFrame:
        """The checked rows to give out now: held back while their number is in question
        (all rows, while undecided and the current counts past the column; the rows of a
        charge run at the end of the chunk that may yet start a cycle); ``last``: end of file."""
        if self._tail is not None and (self.counted or last or self.derive is False):
            c = self._counter
            tail = self._tail.assign(
                _cycle_derived=self._tail["_cycle_derived"] + (c.bump if self.counted else 0),
                _cycle_pending=bool(self.counted and c.carried_pending and not last))
            out = pd.concat([tail, out], ignore_index=True) if len(out) else tail
            self._tail = None
        if _HELPERS[0] not in out.columns:
            return self._release(out)
        if self.derive is None and (last or self._held_rows + len(out) >= HOLD_ROWS):
            self.derive = False  # the end of the file or of the patience: too few cycles
        if self.derive is not False and not last:
            pending = out["_cycle_pending"].to_numpy(dtype=bool)
            if pending.any():
                k = int(np.argmax(pending))
                self._tail, out = out.iloc[k:], out.iloc[:k]
        if self.derive is None:
            if not self._held and not np.any(out["_cycle_derived"].to_numpy()
                                             > out["cycle_count"].to_numpy()):
                # the current has not counted past the column: the column's numbers stand
                # (should the current later count far ahead, these rows, before its first new
                # cycle, keep the column's number)
                return out.drop(columns=_HELPERS)
            self._held.append(out)
            self._held_rows += len(out)
            return out.iloc[:0].drop(columns=_HELPERS)
        return self._release(out)

    def _release(self, out: pd.DataFrame) -> pd.DataFrame:
        """The held rows and ``out``, with derived cycle numbers where so decided."""
        if self._held:
            out = pd.concat(self._held + ([out] if len(out) else []), ignore_index=True)
            self._held, self._held_rows = [], 0
        if _HELPERS[0] in out.columns:
            if self.derive:
                out = out.assign(cycle_count=out["_cycle_derived"].to_numpy(dtype=np.int64))
            out = out.drop(columns=_HELPERS)
        return out

    def _note(self) -> None:
        """(Re)write the one warning on derived cycles with the counts so far."""
        n = self._counter.cycles
        rule = "a new cycle at each charge that follows a discharge"
        if self._filled:
            code = "cycle_count_missing"
            message = ("the cycle column is empty; every row counted as cycle 0" if n <= 1 else
                       f"the cycle column is empty; {n} cycles derived from the current "
                       f"({rule}, numbered from 0)")
        else:
            code = "cycle_count_derived"
            vals = sorted(self._values)
            found = (f"one value ({vals[0]})" if len(vals) == 1 else
                     f"{len(vals)} values ({', '.join(map(str, vals[:10]))})")
            message = (f"the cycle column (cycle_count) holds {found} over {self._rows:,} rows "
                       "while the current alternates between charge and discharge (a cycler "
                       f"procedure without an 'advance cycle' step?): {n} cycles derived from "
                       f"the current ({rule}, numbered from {self._counter.start}); the raw "
                       "file keeps its column")
        self.warnings[code] = IngestWarning(
            code, message, self.file, self._first_row, "cycle_count", 1,
            {"cycles_derived": n, "rows": self._rows, "column_values": sorted(self._values)[:10]})
