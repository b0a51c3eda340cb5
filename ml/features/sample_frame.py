"""Canonical per-sample rows → contiguous numpy arrays split into (cell, cycle) segments.

Every per-cycle kernel in this package works on a :class:`SampleArrays`: the samples sorted by
cell then time (ties broken by cycle, step and source row, so boundary rows that share a time
stamp keep their protocol order), with ``starts`` marking the first row of each
(cell, cycle) segment. Kernels then reduce with ``np.add.reduceat`` and friends — one pass,
no Python loop over cycles.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features.jit import kernel

REQUIRED = ("test_time_second", "voltage_volt", "current_ampere", "cycle_count")
OPTIONAL_FLOAT = (
    "charging_capacity_ah", "discharging_capacity_ah", "charging_energy_wh",
    "discharging_energy_wh", "internal_resistance_ohm", "ambient_temperature_celsius",
)
#: A sample is "at rest" when |I| <= this fraction of the largest |I| the cell has drawn so far
#: (up to the end of the sample's cycle; unit-free, so mA and A inputs classify identically).
REST_CURRENT_FRACTION = 1e-3


#: Per-cycle kernels run on blocks of about this many rows (whole cycles; a block that starts
#: inside a cell carries the previous row as context), so their temporaries stay small —
#: cache- and allocator-friendly. Voltage-curve descriptors use blocks of whole cells.
BLOCK_ROWS = 1 << 20


@dataclass
class SampleArrays:
    """Sorted per-sample arrays plus segment boundaries.

    Attributes
    ----------
    cell_ids : names of the cells; ``cell_codes`` int [n] indexes into it.
    time_s, voltage_v, current_a : float64 [n] — seconds, volts, amperes (+ = charge).
    cycle : int64 [n] — cycler cycle number.
    starts : int64 [m] — first row of each (cell, cycle) segment.
    first_of_cell : bool [n] — True on each cell's first row.
    extra : dict of optional float columns present in the input (same order).

    prior_abs_current_a, prior_voltage_v : optional, per cell code — ``seg_abs_current_max_a``
        and ``seg_voltage_max_v`` of the cell's samples BEFORE this array's first segment of
        that cell (NaN: none), for arrays that continue a cell (a stored table extended by new
        samples, a streamed block). Default: the array starts each cell.
    cell_rest_threshold_a, cell_max_voltage_v : optional, per cell code — FIXED thresholds for
        every cycle of the cell (a caller that computed whole-file values elsewhere, e.g.
        ``ml.fleet.cell_stream``). Default None: the causal thresholds below.

    Thresholds are CAUSAL (known at the end of each cycle), expanding maxima over the cell's
    cycles: ``seg_abs_current_max_a`` is the largest |I| of the cell's samples up to the end
    of each (cell, cycle) segment, and a row is at rest when |I| <= ``REST_CURRENT_FRACTION``
    × its cycle's value; ``seg_voltage_max_v`` is the highest voltage of the cell's CHARGING
    samples (I > that rest threshold) up to the end of the segment — the top of charge so far,
    NaN until the cell first charges, so an open-circuit or discharge-only start is not its
    own "high voltage" — and the default high-voltage level is a fraction of it
    (:mod:`ml.features.timing`). So a cycle's descriptors depend on that cycle and earlier
    ones only: a file truncated after cycle k gives cycles <= k the values the whole file
    gives them. Views (``segment_blocks``, ``blocks``) share their parent's per-segment values.

    Derived on first use: ``cell_starts``, ``runs`` (row 0 and each cell start),
    ``seg_cell`` / ``seg_cycle`` (cell code and cycle of each segment), ``ends``, ``dt_s``
    (time since the previous row of the same cell, 0 on a cell's first row and on row 0),
    ``seg_abs_current_max_a``, ``seg_voltage_max_v``, ``seg_rest_threshold_a`` and
    ``rest_threshold_a`` (per row, broadcastable; a 0-d array when every cycle shares one).
    """

    cell_ids: list[str]
    cell_codes: np.ndarray
    time_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    cycle: np.ndarray
    starts: np.ndarray
    first_of_cell: np.ndarray
    extra: dict[str, np.ndarray]
    cell_rest_threshold_a: np.ndarray | None = None
    cell_max_voltage_v: np.ndarray | None = None
    prior_abs_current_a: np.ndarray | None = None
    prior_voltage_v: np.ndarray | None = None
    _seg_maxima: tuple[np.ndarray, np.ndarray] | None = None

    def with_prior(self, abs_current_a: np.ndarray, voltage_v: np.ndarray) -> SampleArrays:
        """Set the running maxima carried in from earlier samples (per cell code; NaN: none)
        before any threshold is used; returns ``self``."""
        self.prior_abs_current_a = np.asarray(abs_current_a, dtype=np.float64)
        self.prior_voltage_v = np.asarray(voltage_v, dtype=np.float64)
        self._seg_maxima = None
        for name in ("seg_abs_current_max_a", "seg_voltage_max_v", "seg_rest_threshold_a",
                     "rest_threshold_a"):
            self.__dict__.pop(name, None)
        return self

    def _maxima(self) -> tuple[np.ndarray, np.ndarray]:
        """(running max |I|, running max charging V) per segment, once per array tree."""
        if self._seg_maxima is None:
            st = self.starts
            i_abs = np.maximum(np.abs(np.maximum.reduceat(self.current_a, st)),
                               np.abs(np.minimum.reduceat(self.current_a, st)))
            reset = self.first_of_cell[st]
            reset[0] = True
            codes = self.seg_cell
            nan = np.full(i_abs.size, np.nan)
            p_i = (nan if self.prior_abs_current_a is None
                   else np.asarray(self.prior_abs_current_a, dtype=np.float64)[codes])
            p_v = (nan if self.prior_voltage_v is None
                   else np.asarray(self.prior_voltage_v, dtype=np.float64)[codes])
            i_run = running_max(i_abs, reset, p_i)
            thr = (i_run * REST_CURRENT_FRACTION if self.cell_rest_threshold_a is None else
                   np.asarray(self.cell_rest_threshold_a, dtype=np.float64)[codes])
            v_run = running_max(charge_top(self.current_a, self.voltage_v, st, thr), reset, p_v)
            v_run[np.isneginf(v_run)] = np.nan  # no charging sample yet
            self._seg_maxima = (i_run, v_run)
        return self._seg_maxima

    @property
    def seg_abs_current_max_a(self) -> np.ndarray:
        """Largest |I| (A) of the cell up to the end of each segment's cycle."""
        return self._maxima()[0]

    @property
    def seg_voltage_max_v(self) -> np.ndarray:
        """Highest voltage (V) of the cell's charging samples (I > the rest threshold) up to
        the end of each segment's cycle; NaN before the cell's first charging sample."""
        return self._maxima()[1]

    @cached_property
    def seg_rest_threshold_a(self) -> np.ndarray:
        """|I| (A) at or below which a row of each segment counts as rest."""
        if self.cell_rest_threshold_a is not None:
            return np.asarray(self.cell_rest_threshold_a, dtype=np.float64)[self.seg_cell]
        return self.seg_abs_current_max_a * REST_CURRENT_FRACTION

    def seg_high_voltage_v(self, fraction: float,
                           fixed_by_code: np.ndarray | None = None) -> np.ndarray:
        """High-voltage level (V) per segment: ``fixed_by_code[cell]`` where finite (metadata),
        else ``fraction`` × the highest voltage so far (or × ``cell_max_voltage_v``)."""
        if self.cell_max_voltage_v is not None:
            vmax = np.asarray(self.cell_max_voltage_v, dtype=np.float64)[self.seg_cell]
        else:
            vmax = self.seg_voltage_max_v
        hv = fraction * vmax
        if fixed_by_code is not None:
            fixed = np.asarray(fixed_by_code, dtype=np.float64)[self.seg_cell]
            hv = np.where(np.isfinite(fixed), fixed, hv)
        return hv

    @property
    def n_rows(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def n_segments(self) -> int:
        return int(self.starts.shape[0])

    @cached_property
    def cell_starts(self) -> np.ndarray:
        return np.flatnonzero(self.first_of_cell)

    @cached_property
    def runs(self) -> np.ndarray:
        """First row of each run of one cell's rows (row 0 always starts one)."""
        cs = self.cell_starts
        return cs if cs.size and cs[0] == 0 else np.concatenate(([0], cs)).astype(np.int64)

    @cached_property
    def seg_cell(self) -> np.ndarray:
        return self.cell_codes[self.starts]

    @cached_property
    def seg_cycle(self) -> np.ndarray:
        return self.cycle[self.starts]

    @cached_property
    def ends(self) -> np.ndarray:
        """Last row (inclusive) of each segment."""
        return np.append(self.starts[1:], self.n_rows) - 1

    @cached_property
    def dt_s(self) -> np.ndarray:
        dt = np.empty(self.n_rows, dtype=np.float64)
        dt[0] = 0.0
        np.subtract(self.time_s[1:], self.time_s[:-1], out=dt[1:])
        dt[self.cell_starts] = 0.0
        return dt

    @cached_property
    def rest_threshold_a(self) -> np.ndarray:
        return self.per_segment(self.seg_rest_threshold_a)

    def per_segment(self, values_by_segment: np.ndarray) -> np.ndarray:
        """Per-row (broadcastable) values from per-segment ones: a 0-d array when all agree;
        rows before the first segment (a view's context row) take the first segment's."""
        v = np.asarray(values_by_segment, dtype=np.float64)
        if v.size == 1 or (v == v[0]).all():
            return np.asarray(v[0])
        lengths = np.diff(np.append(self.starts, self.n_rows))
        lengths[0] += self.starts[0]
        return np.repeat(v, lengths)

    def per_cell(self, values_by_code: np.ndarray) -> np.ndarray:
        """Per-row (broadcastable) values from an array indexed by cell code."""
        runs = self.runs
        return per_row(np.asarray(values_by_code)[self.cell_codes[runs]], runs, self.n_rows)

    def _view(self, lo: int, b: int, sa: int, sb: int) -> SampleArrays:
        return SampleArrays(
            cell_ids=self.cell_ids, cell_codes=self.cell_codes[lo:b],
            time_s=self.time_s[lo:b], voltage_v=self.voltage_v[lo:b],
            current_a=self.current_a[lo:b], cycle=self.cycle[lo:b],
            starts=self.starts[sa:sb] - lo, first_of_cell=self.first_of_cell[lo:b],
            extra={k: v[lo:b] for k, v in self.extra.items()},
            cell_rest_threshold_a=self.cell_rest_threshold_a,
            cell_max_voltage_v=self.cell_max_voltage_v,
            _seg_maxima=tuple(m[sa:sb] for m in self._maxima()))

    def segment_blocks(self, block_rows: int = BLOCK_ROWS) -> list[SampleArrays]:
        """Views of whole cycles, about ``block_rows`` rows each, in order.

        A block that starts inside a cell also holds the previous row (row 0, in no segment)
        so differences and trapezoids across its first row equal the whole table's.
        """
        if self.n_rows <= block_rows:
            return [self]
        targets = np.arange(block_rows, self.n_rows, block_rows)
        idx = np.searchsorted(self.starts, targets)
        edges = np.unique(np.concatenate(([0], self.starts[idx[idx < self.n_segments]],
                                          [self.n_rows])))
        out = []
        for a, b in zip(edges[:-1], edges[1:]):
            lead = 1 if a > 0 and not self.first_of_cell[a] else 0
            sa, sb = np.searchsorted(self.starts, [a, b])
            out.append(self._view(int(a) - lead, int(b), int(sa), int(sb)))
        return out

    def blocks(self, block_rows: int = BLOCK_ROWS) -> list[SampleArrays]:
        """Views of groups of whole cells of about ``block_rows`` rows each (in order)."""
        cs = self.cell_starts
        if self.n_rows <= block_rows or cs.size == 1:
            return [self]
        edges = [0]
        for c in cs[1:]:
            if c - edges[-1] >= block_rows:
                edges.append(int(c))
        edges.append(self.n_rows)
        out = []
        for a, b in zip(edges[:-1], edges[1:]):
            sa, sb = np.searchsorted(self.starts, [a, b])
            out.append(self._view(a, b, int(sa), int(sb)))
        return out


def _float_column(df: pd.DataFrame, name: str) -> np.ndarray:
    col = df[name]
    if col.dtype == np.float64:
        return col.to_numpy()
    try:
        arr = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        coerced = pd.to_numeric(col, errors="coerce")
        bad = np.flatnonzero(coerced.isna().to_numpy() & col.notna().to_numpy())
        i = int(bad[0]) if bad.size else 0
        raise ValidationError(
            "value is not a number", code="not_a_number", row=_row_label(df, i), column=name,
            expected="a float", found=repr(col.iloc[i])) from None
    return arr


def _row_label(df: pd.DataFrame, i: int) -> int:
    """1-based row as a user sees it: ``source_row`` when present, else the position + 2."""
    if "source_row" in df.columns:
        v = df["source_row"].iloc[i]
        if pd.notna(v):
            return int(v)
    return i + 2


def prepare_samples(samples: pd.DataFrame, *, default_cell_id: str = "cell") -> SampleArrays:
    """Validate and sort canonical samples into :class:`SampleArrays`.

    Parameters
    ----------
    samples : DataFrame with data_registry.schema.SAMPLES columns (``cell_id`` and
        ``source_row`` optional; ``default_cell_id`` names a single unnamed cell).

    Raises
    ------
    ValidationError
        A required column is missing, a value is not finite, or time runs backwards within a
        cell after sorting by time (impossible) — i.e. the cycle numbers decrease with time.
    """
    missing = [c for c in REQUIRED if c not in samples.columns]
    if missing:
        raise ValidationError(
            f"per-sample table lacks required column(s) {missing}", code="missing_column",
            column=missing[0], expected=", ".join(REQUIRED),
            found=", ".join(map(str, samples.columns)) or "no columns")
    if len(samples) == 0:
        raise ValidationError("per-sample table is empty", code="empty_input",
                              expected="at least one row", found="0 rows")
    time_s = _float_column(samples, "test_time_second")
    voltage = _float_column(samples, "voltage_volt")
    current = _float_column(samples, "current_ampere")
    cycle_col = samples["cycle_count"]
    int_cycles = cycle_col.dtype == np.int64
    cycle_f = cycle_col.to_numpy() if int_cycles else _float_column(samples, "cycle_count")
    checks = [("test_time_second", time_s), ("voltage_volt", voltage),
              ("current_ampere", current)] + ([] if int_cycles else [("cycle_count", cycle_f)])
    for name, arr in checks:
        if not np.isfinite(arr.sum()):  # one pass; only a non-finite value makes it so
            bad = ~np.isfinite(arr)
            if not bad.any():  # the sum overflowed: values are finite
                continue
            i = int(np.argmax(bad))
            raise ValidationError("value must be finite", code="not_finite",
                                  row=_row_label(samples, i), column=name,
                                  expected="a finite float", found=repr(samples[name].iloc[i]))
    cycle = cycle_f if int_cycles else cycle_f.astype(np.int64)
    if "cell_id" in samples.columns and isinstance(samples["cell_id"].dtype,
                                                   pd.CategoricalDtype):
        cat = samples["cell_id"].cat
        raw_codes = cat.codes.to_numpy()
        if raw_codes.min() < 0:
            i = int(np.argmax(raw_codes < 0))
            raise ValidationError("cell_id is missing", code="missing_value",
                                  row=_row_label(samples, i), column="cell_id",
                                  expected="a cell id", found="null")
        used = np.flatnonzero(np.bincount(raw_codes, minlength=len(cat.categories)))
        names = np.asarray([str(c) for c in cat.categories], dtype=object)[used]
        order = np.argsort(names, kind="stable")
        if used.size == len(cat.categories) and (order == np.arange(used.size)).all():
            codes = raw_codes  # already dense and sorted: no copy (small int dtype is fine)
        else:
            remap = np.full(len(cat.categories), -1, dtype=raw_codes.dtype)
            remap[used[order]] = np.arange(used.size)
            codes = remap[raw_codes]
        cell_ids = [str(x) for x in names[order]]
    elif "cell_id" in samples.columns and _single_value(samples["cell_id"]):
        # one cell (a registry load): no need to factorize millions of equal strings
        cell_ids = [str(samples["cell_id"].iloc[0])]
        codes = np.zeros(len(samples), dtype=np.uint8)
    elif "cell_id" in samples.columns:
        codes, uniques = pd.factorize(samples["cell_id"], sort=True)
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            raise ValidationError("cell_id is missing", code="missing_value",
                                  row=_row_label(samples, i), column="cell_id",
                                  expected="a cell id", found="null")
        cell_ids = [str(u) for u in uniques]
        # The narrowest integer type: comparisons over n rows read less memory.
        codes = codes.astype(np.min_scalar_type(max(len(cell_ids) - 1, 0)))
    else:
        cell_ids = [default_cell_id]
        codes = np.zeros(len(samples), dtype=np.uint8)
    extra = {name: _float_column(samples, name) for name in OPTIONAL_FLOAT
             if name in samples.columns}
    step = (_float_column(samples, "step_count") if "step_count" in samples.columns else None)
    source_row = (_float_column(samples, "source_row") if "source_row" in samples.columns
                  else None)

    order = _sort_order(codes, time_s, cycle, step, source_row)
    if order is not None:
        codes, time_s, voltage, current, cycle = (
            a[order] for a in (codes, time_s, voltage, current, cycle))
        extra = {k: v[order] for k, v in extra.items()}

    n = codes.shape[0]
    first_of_cell = np.empty(n, dtype=bool)
    first_of_cell[0] = True
    np.not_equal(codes[1:], codes[:-1], out=first_of_cell[1:])
    new_seg = first_of_cell.copy()
    new_seg[1:] |= cycle[1:] != cycle[:-1]
    back = (cycle[1:] < cycle[:-1]) & ~first_of_cell[1:]
    if back.any():
        i = int(np.argmax(back)) + 1
        raise ValidationError(
            f"cycle_count decreases with time in cell '{cell_ids[codes[i]]}' "
            f"at test_time_second={time_s[i]:g}", code="cycle_count_decreasing",
            column="cycle_count", expected=f">= {cycle[i - 1]}", found=str(cycle[i]))
    starts = np.flatnonzero(new_seg).astype(np.int64)
    return SampleArrays(
        cell_ids=cell_ids, cell_codes=codes, time_s=time_s, voltage_v=voltage,
        current_a=current, cycle=cycle, starts=starts, first_of_cell=first_of_cell,
        extra=extra)


def _single_value(col: pd.Series) -> bool:
    """Whether every row holds the same non-null value (checked cheaply: first == last, then
    one vectorised comparison)."""
    first = col.iloc[0]
    if not isinstance(first, str) or col.iloc[-1] != first:
        return False
    same = (col == first).all(skipna=False)  # a missing id is NA or False, never skipped
    return same is not pd.NA and bool(same)


def _running_max(values, reset, prior, out):  # pragma: no cover - compiled by numba
    run = values[0]
    for s in range(values.shape[0]):
        v = values[s]
        if reset[s]:
            run = v
            p = prior[s]
            if p > run:  # NaN (no prior) compares False
                run = p
        elif v > run:
            run = v
        out[s] = run


_running_max_kernel = kernel(_running_max)


def _charge_top(current, voltage, starts, thr, out):  # pragma: no cover - compiled by numba
    m = starts.shape[0]
    n = current.shape[0]
    for s in range(m):
        end = starts[s + 1] if s + 1 < m else n
        t = thr[s]
        top = -np.inf
        for r in range(starts[s], end):
            if current[r] > t and voltage[r] > top:
                top = voltage[r]
        out[s] = top


_charge_top_kernel = kernel(_charge_top)


def charge_top(current: np.ndarray, voltage: np.ndarray, starts: np.ndarray,
               thr: np.ndarray) -> np.ndarray:
    """Per segment: the highest voltage (V) of its rows with current > ``thr[segment]`` (A),
    -inf if none — one pass, no per-row temporaries."""
    out = np.empty(starts.shape[0], dtype=np.float64)
    if current.shape[0] < 256:  # not worth a compilation
        _charge_top(current, voltage, starts, thr, out)
    else:
        _charge_top_kernel(np.ascontiguousarray(current, dtype=np.float64),
                           np.ascontiguousarray(voltage, dtype=np.float64),
                           np.ascontiguousarray(starts, dtype=np.int64),
                           np.ascontiguousarray(thr, dtype=np.float64), out)
    return out


def running_max(values: np.ndarray, reset: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Expanding maximum of per-segment ``values`` that restarts where ``reset`` (a new cell)
    at max(value, ``prior``) — ``prior`` NaN where nothing came before."""
    out = np.empty(values.shape[0], dtype=np.float64)
    if values.shape[0] < 64:  # not worth a compilation
        _running_max(values, reset, prior, out)
    else:
        _running_max_kernel(np.ascontiguousarray(values, dtype=np.float64),
                            np.ascontiguousarray(reset), np.ascontiguousarray(prior), out)
    return out


def per_row(per_cell: np.ndarray, cell_starts: np.ndarray, n: int) -> np.ndarray:
    """Broadcastable per-row values from per-cell ones: a 0-d array when all cells agree."""
    per_cell = np.asarray(per_cell, dtype=np.float64)
    if per_cell.size == 1 or (per_cell == per_cell[0]).all():
        return np.asarray(per_cell[0])
    return np.repeat(per_cell, np.diff(np.append(cell_starts, n)))


def _sort_order(codes, time_s, cycle, step, source_row) -> np.ndarray | None:
    """Permutation sorting by (cell, time, cycle, step, source_row); None if already sorted."""
    c_ok = codes[1:] >= codes[:-1]
    same = codes[1:] == codes[:-1]
    t_ok = ~same | (time_s[1:] >= time_s[:-1])
    if c_ok.all() and t_ok.all():
        # Sorted by cell and time; ties only matter if their secondary keys are out of order.
        ties = same & (time_s[1:] == time_s[:-1])
        if not ties.any():
            return None
        idx = np.flatnonzero(ties)
        ok = cycle[idx + 1] >= cycle[idx]
        if step is not None:
            ok &= (cycle[idx + 1] > cycle[idx]) | (step[idx + 1] >= step[idx])
        if ok.all() and source_row is None:
            return None
        if source_row is not None and ok.all() and (source_row[idx + 1] >= source_row[idx]).all():
            return None
    keys = [codes, time_s, cycle]
    if step is not None:
        keys.append(step)
    if source_row is not None:
        keys.append(source_row)
    return np.lexsort(tuple(reversed(keys)))
