"""One cell's per-cycle table from its Parquet parts in cycle blocks: memory bounded by the
block size, not by the cell.

``build_cycle_table`` holds a cell's samples in memory; a cell larger than a worker's memory
budget goes through :func:`stream_cycle_table` instead, which reads the parts a batch at a time
and cuts them into blocks of whole cycles at exactly the rows
``SampleArrays.segment_blocks`` cuts the whole cell (the first cycle start at or after each
multiple of ``block_rows``), each block carrying the previous row as context. The per-block
kernels are the ones ``sample_cycles`` runs (``block_columns``), so the values are the ones the
in-memory path computes; each block carries in the running maxima (largest |I|, top of
charge) of the blocks before it, so its causal thresholds are the whole cell's
(``SampleArrays.with_prior``); the voltage-curve descriptors depend on each cycle's own
samples and the cell's reference curve only, found in a first pass. Passes over the parts:

1. the per-cycle sample reductions, block by block (also checks order and finiteness);
2. (voltage curves) the reference cycle's block, then every block's Q(V) rows.

Requirements (checked, with a clear error): the stored rows are in time order (ties ordered
by cycle, step, source row) — the order ``prepare_samples`` would sort them into — and cycle
numbers never decrease. A counter column that is entirely missing over a whole block while
present elsewhere in the cell is integrated from current in that block by both paths, but the
whole-cell voltage-curve pass of ``build_cycle_table`` would use the counter: that one edge
case may differ in the dQ/dV columns.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from data_registry.errors import ValidationError
from ml.features import capacity, cycle_input
from ml.features.cycle_table import complete_cycle_table
from ml.features.sample_cycles import block_columns
from ml.features.sample_frame import BLOCK_ROWS, OPTIONAL_FLOAT, SampleArrays
from ml.features.voltage_curves import (GRID_POINTS, _reference_position, curve_rows,
                                        reference_curve)

#: Rows per Parquet batch read.
BATCH_ROWS = 1 << 16
_CURVE_NAMES = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
                "delta_q_v_skewness", "delta_q_v_reference_cycle", "dqdv_peak_voltage_volt",
                "dqdv_peak_ah_per_volt", "dqdv_peak2_voltage_volt", "dqdv_peak2_ah_per_volt")
Opener = Callable[[str], Any]


class StreamOrderError(ValidationError):
    """The stored samples are not in the order a streamed pass needs (time order)."""


def _open(path: str, opener: Opener | None) -> pq.ParquetFile:
    return pq.ParquetFile(opener(path) if opener is not None else path)


def _present_columns(parts: Sequence[str], opener: Opener | None) -> list[str]:
    """Optional sample columns holding at least one non-null value in some part (what
    ``Registry.load_samples`` keeps), from the Parquet statistics where written."""
    wanted = list(OPTIONAL_FLOAT) + ["step_count", "source_row"]
    present: set[str] = set()
    for path in parts:
        pf = _open(path, opener)
        md, names = pf.metadata, pf.schema_arrow.names
        for name in wanted:
            if name in present or name not in names:
                continue
            j = names.index(name)
            for g in range(md.num_row_groups):
                col = md.row_group(g).column(j)
                st = col.statistics
                if st is None or not st.has_null_count or st.null_count < col.num_values:
                    present.add(name)
                    break
    return [n for n in wanted if n in present]


def _batches(parts: Sequence[str], columns: list[str], opener: Opener | None
             ) -> Iterator[dict[str, np.ndarray]]:
    for path in parts:
        pf = _open(path, opener)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield {name: batch.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
                   if name != "cycle_count" else batch.column(i).to_numpy(zero_copy_only=False)
                   for i, name in enumerate(columns)}


class _Blocks:
    """Streams a cell's rows and yields :class:`SampleArrays` blocks cut like
    ``segment_blocks`` of the whole cell, plus each block's first global segment number."""

    def __init__(self, cell_id: str, parts: Sequence[str], extra: list[str],
                 block_rows: int, opener: Opener | None) -> None:
        self.cell_id, self.parts, self.opener = cell_id, parts, opener
        self.extra = [c for c in extra if c in OPTIONAL_FLOAT]
        self.keys = [c for c in ("step_count", "source_row") if c in extra]
        self.columns = (["test_time_second", "voltage_volt", "current_ampere", "cycle_count"]
                        + self.extra + self.keys)
        self.block_rows = int(block_rows)
        self.prior = (np.nan, np.nan)  # running maxima of the rows before the next block

    def _check(self, b: dict[str, np.ndarray], prev: dict[str, Any] | None, row0: int) -> None:
        t, cyc = b["test_time_second"], b["cycle_count"]
        for name in ("test_time_second", "voltage_volt", "current_ampere", "cycle_count"):
            v = b[name]
            bad = ~np.isfinite(v.astype(np.float64)) if v.dtype.kind == "f" else None
            if bad is not None and bad.any():
                i = int(np.argmax(bad))
                raise ValidationError("value must be finite", code="not_finite",
                                      row=row0 + i + 2, column=name,
                                      expected="a finite float", found=repr(v[i]))
        keys = [t, cyc.astype(np.float64)] + [b[k] for k in self.keys]
        if prev is not None:
            keys = [np.concatenate(([prev[k]], arr)) for k, arr in zip(
                ["test_time_second", "cycle_count"] + self.keys, keys)]
        # lexicographic non-decreasing over (time, cycle, step, source_row)
        later = np.zeros(keys[0].size - 1, dtype=bool)
        tied = np.ones(keys[0].size - 1, dtype=bool)
        for k in keys:
            later |= tied & (k[1:] > k[:-1])
            tied &= k[1:] == k[:-1]
        if not (later | tied).all():
            i = int(np.argmax(~(later | tied)))
            raise StreamOrderError(
                f"samples of cell '{self.cell_id}' are not stored in time order, so the cell "
                "cannot be processed in cycle blocks", code="unsorted_samples",
                column="test_time_second", expected="rows in time order within the cell",
                found=f"an earlier sample after row {row0 + i - (prev is not None) + 2}")
        c = keys[1]
        if (c[1:] < c[:-1]).any():
            i = int(np.argmax(c[1:] < c[:-1])) + 1
            raise ValidationError(
                f"cycle_count decreases with time in cell '{self.cell_id}' "
                f"at test_time_second={keys[0][i]:g}", code="cycle_count_decreasing",
                column="cycle_count", expected=f">= {int(c[i - 1])}", found=str(int(c[i])))

    def __iter__(self) -> Iterator[tuple[SampleArrays, int]]:
        self.prior = (np.nan, np.nan)
        pieces: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        buf_lo = 0          # global row of the buffer's first row
        edge = 0            # global row where the next block starts
        scan_from = self.block_rows  # search cycle starts from this global row on
        seg_done = 0        # segments emitted so far
        prev: dict[str, Any] | None = None
        row = 0             # global row of the batch's first row
        for b in _batches(self.parts, self.columns, self.opener):
            n = b["test_time_second"].size
            if n == 0:
                continue
            self._check(b, prev, row)
            cyc = b["cycle_count"]
            cc = np.concatenate(([prev["cycle_count"]], cyc)) if prev is not None else cyc
            base = row - 1 if prev is not None else row  # global row of cc[0]
            prev = {k: b[k][-1] for k in ["test_time_second", "cycle_count"] + self.keys}
            for c in self.columns:
                pieces[c].append(b[c])
            while True:
                lo = max(scan_from, base + 1)
                if lo >= row + n:
                    break
                k = lo - base
                hit = np.flatnonzero(cc[k:] != cc[k - 1:-1])
                if hit.size == 0:
                    scan_from = row + n
                    break
                cut = lo + int(hit[0])
                buf = {c: _joined(v) for c, v in pieces.items()}
                blk, nseg = self._block(buf, buf_lo, edge, cut)
                yield blk, seg_done
                seg_done += nseg
                keep = cut - 1 - buf_lo  # the last row before the cut: next block's context
                pieces = {c: [v[keep:]] for c, v in buf.items()}
                buf_lo += keep
                edge = cut
                scan_from = (cut // self.block_rows + 1) * self.block_rows
            row += n
        if row == 0:
            return
        buf = {c: _joined(v) for c, v in pieces.items()}
        blk, _ = self._block(buf, buf_lo, edge, row)
        yield blk, seg_done

    def _block(self, buf: dict[str, np.ndarray], buf_lo: int, a: int, b: int
               ) -> tuple[SampleArrays, int]:
        """Rows [a, b) (global) as a block, with row a − 1 as context when a > 0."""
        lo = a - 1 if a > 0 else a
        sl = slice(lo - buf_lo, b - buf_lo)
        cols = {c: v[sl] for c, v in buf.items()}
        cyc = np.asarray(cols["cycle_count"]).astype(np.int64)
        n = cyc.size
        first = np.zeros(n, dtype=bool)
        if lo == 0:
            first[0] = True
        new = np.zeros(n, dtype=bool)
        new[0] = lo == 0
        new[1:] = cyc[1:] != cyc[:-1]
        if a > 0:
            new[0] = False
        starts = np.flatnonzero(new).astype(np.int64)
        arr = SampleArrays(
            cell_ids=[self.cell_id], cell_codes=np.zeros(n, dtype=np.uint8),
            time_s=cols["test_time_second"], voltage_v=cols["voltage_volt"],
            current_a=cols["current_ampere"], cycle=cyc, starts=starts, first_of_cell=first,
            extra={k: cols[k] for k in self.extra})
        arr.with_prior(np.array([self.prior[0]]), np.array([self.prior[1]]))
        self.prior = (float(arr.seg_abs_current_max_a[-1]), float(arr.seg_voltage_max_v[-1]))
        return arr, int(starts.size)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def stream_cycle_table(parts: Sequence[str], cell_id: str, meta: dict[str, Any] | None = None,
                       *, eis: pd.DataFrame | None = None, voltage_curves: bool = True,
                       block_rows: int = BLOCK_ROWS, opener: Opener | None = None
                       ) -> pd.DataFrame:
    """The completed per-cycle table of one cell from its sample parts (catalog order), in
    cycle blocks of about ``block_rows`` rows — equal to ``build_cycle_table`` of the cell's
    samples (``voltage_curves``, ``eis`` and metadata ``meta`` as there).

    ``opener`` opens a part path for reading (e.g. an fsspec file system's ``open``); default
    local files.

    Raises
    ------
    StreamOrderError
        The stored rows are not in time order (load the cell whole instead).
    ValidationError
        Non-finite values, decreasing cycle numbers — as ``prepare_samples``.
    """
    meta = dict(meta or {})
    extra = _present_columns(parts, opener)
    hv_meta = cycle_input.meta_float(meta, "high_voltage_threshold_volt")
    hv = np.array([hv_meta]) if hv_meta else None
    blocks = _Blocks(cell_id, parts, extra, block_rows, opener)
    pieces = [pd.DataFrame(block_columns(blk, hv)) for blk, _ in blocks]
    if not pieces:
        raise ValidationError(f"cell '{cell_id}' has no samples", code="empty_input",
                              expected="at least one row", found="0 rows")
    table = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
    if voltage_curves:
        table = table.join(_stream_curves(blocks, table))
    if eis is not None and len(eis):
        from ml.features.warburg_trend import align_warburg
        table = align_warburg(table, eis, spike_voltage_volt={
            cell_id: cycle_input.meta_float(meta, "aw_spike_voltage_volt")})
    return complete_cycle_table(table, {cell_id: meta})


def _stream_curves(blocks: _Blocks, table: pd.DataFrame) -> pd.DataFrame:
    """The voltage-curve columns of a streamed cell (rows = ``table``'s cycles)."""
    out = {k: np.full(len(table), np.nan) for k in _CURVE_NAMES}
    cycles = table["cycle_index"].to_numpy()
    has = table["discharge_capacity_ah"].to_numpy() > 0
    ref_pos = _reference_position(cycles, has)
    if ref_pos is None:
        return pd.DataFrame(out)
    ref = None
    for blk, seg0 in blocks:  # the reference cycle's block
        local = ref_pos - seg0
        if 0 <= local < blk.n_segments:
            dis = capacity.charge_flows(blk)["discharge_ah"]
            ref = reference_curve(blk, dis, np.array([local]), np.array([True]), GRID_POINTS)
            break
    if ref is None:
        return pd.DataFrame(out)
    for blk, seg0 in blocks:
        dis = capacity.charge_flows(blk)["discharge_ah"]
        segs = np.arange(blk.n_segments)
        mine = has[seg0:seg0 + blk.n_segments]
        part = {k: np.full(blk.n_segments, np.nan) for k in _CURVE_NAMES}
        curve_rows(blk, dis, segs[mine], blk.seg_cycle[segs[mine]], ref, part)
        for k in _CURVE_NAMES:
            out[k][seg0:seg0 + blk.n_segments] = part[k]
    return pd.DataFrame(out)
