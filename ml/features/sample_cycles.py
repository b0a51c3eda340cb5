"""Samples → the raw per-cycle table (before completion), block by block of whole cells."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features import capacity, polarization, timing
from ml.features.sample_frame import BLOCK_ROWS, SampleArrays


def sample_cycles(arr: SampleArrays, *, high_voltage_volt: np.ndarray | None = None,
                  voltage_curves: bool = True, block_rows: int = BLOCK_ROWS) -> pd.DataFrame:
    """One row per (cell, cycle) segment with the per-sample descriptors.

    Parameters
    ----------
    arr : sorted samples (:func:`ml.features.sample_frame.prepare_samples`).
    high_voltage_volt : fixed threshold per cell code (V) for ``high_voltage_second`` (NaN:
        default); default ``timing.HIGH_VOLTAGE_FRACTION`` × the cell's top of charge up to
        the end of each cycle. All thresholds are causal (:class:`SampleArrays`): the rows of
        cycles <= k are the same whether the samples stop after cycle k or go on.
    voltage_curves : add the ΔQ(V) and dQ/dV columns.
    block_rows : rows per block (bounds the kernels' temporaries; see ``BLOCK_ROWS``).

    Returns
    -------
    DataFrame with ``cell_id``, ``cycle_index`` and the capacity (Ah), energy (Wh), timing (s)
    and voltage (V) columns of :mod:`capacity`, :mod:`timing` and :mod:`polarization`.
    """
    parts = [pd.DataFrame(block_columns(blk, high_voltage_volt))
             for blk in arr.segment_blocks(block_rows)]
    table = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    if voltage_curves:
        # ΔQ(V) needs each cell's reference cycle: blocks of whole cells.
        from ml.features.voltage_curves import curve_descriptors
        curves = [curve_descriptors(blk, capacity.charge_flows(blk))
                  for blk in arr.blocks(block_rows)]
        table = table.join(curves[0] if len(curves) == 1 else pd.concat(curves,
                                                                        ignore_index=True))
    return table


def block_columns(blk: SampleArrays, high_voltage_volt: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
    """The per-cycle columns of one block of whole cycles (see :func:`sample_cycles`); a block
    that starts inside a cell carries the previous row as context (``segment_blocks``)."""
    flows = capacity.charge_flows(blk)
    cols: dict[str, np.ndarray] = {
        "cell_id": np.asarray(blk.cell_ids, dtype=object)[blk.seg_cell],
        "cycle_index": blk.seg_cycle.astype(np.int64),
    }
    cols.update(timing.timing_per_cycle(blk, high_voltage_volt))
    cols.update(capacity.capacity_per_cycle(blk, flows))
    cols.update(polarization.voltage_per_cycle(blk, flows))
    return cols
