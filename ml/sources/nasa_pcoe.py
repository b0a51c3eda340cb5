"""NASA Ames PCoE 18650 cells (Saha & Goebel 2007, US-government public data), ``metadata.csv``.

One row per operation (charge / discharge / impedance) with a MATLAB datevec start time, the
ambient temperature, the discharge ``Capacity`` (Ah) and ``Re``/``Rct`` (Ω) from impedance.
Per cell, each valid DISCHARGE becomes one cycle (``cycle_index`` 1, 2, … in time order).

Clock: start times are real; end times are not shipped, so the end of a discharge is its start
plus ``capacity / 2 A`` (the nominal load; loads were 1–4 A), capped at the next operation's
start. ``test_time_second`` counts from the cell's first operation, so rests (up to 307 h)
between operations are kept. ``test_time_estimated`` is 0 (the clock is real to ~1 h).

Validation (each finding is an :class:`~data_registry.errors.IngestWarning` in
``meta["warnings"]``, codes ``missing_capacity``, ``junk_capacity``, ``bad_impedance``):
``"[]"`` capacities are dropped; capacities below :data:`MIN_VALID_CAPACITY_AH` (0.5 Ah, a
quarter of the 2 Ah rating; EOL thresholds are 1.4–1.6 Ah) are aborted or junk discharges
(B0033/34/39/41 start with some) and are dropped; ``Re``/``Rct`` that are complex strings,
non-positive or above :data:`MAX_VALID_RESISTANCE_OHM` become NaN. Cells left with fewer than
:data:`MIN_CYCLES` cycles are skipped (a ``UserWarning`` names them).

The per-cell rule is :func:`data_registry.readers.nasa_pcoe.operations_to_cycles`, the one
``fadecast ingest metadata.csv --cell-column battery_id`` applies: a user's ingest and this
evaluation source read the same cycles.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.readers.nasa_pcoe import (MAX_VALID_CAPACITY_AH, MAX_VALID_RESISTANCE_OHM,
                                             MIN_VALID_CAPACITY_AH, NOMINAL_CAPACITY_AH,
                                             NOMINAL_LOAD_AMPERE, operations_to_cycles,
                                             parse_datevec, parse_starts)
from ml.sources import CellRecord
from ml.sources.tables import read_table

__all__ = ["load", "parse_datevec", "NOMINAL_CAPACITY_AH", "NOMINAL_LOAD_AMPERE",
           "MIN_VALID_CAPACITY_AH", "MAX_VALID_CAPACITY_AH", "MAX_VALID_RESISTANCE_OHM",
           "MIN_CYCLES"]

MIN_CYCLES = 5


def _cell(ops: pd.DataFrame, cid: str, path: Path) -> tuple[pd.DataFrame, list, pd.DataFrame]:
    """:func:`data_registry.readers.nasa_pcoe.operations_to_cycles` (the ingest reader's own
    rule) with this loader's ``cell_id`` and ``test_time_estimated`` columns."""
    cycles, warns, impedance = operations_to_cycles(ops, cid, str(path))
    cycles = cycles.drop(columns=["source_row"])
    impedance = impedance.drop(columns=["source_row"])
    cycles.insert(0, "cell_id", cid)
    cycles["test_time_estimated"] = 0
    return cycles, warns, impedance


def load(folder: Path) -> list[CellRecord]:
    """Load the cells of ``metadata.csv`` (ids ``B0005`` …), sorted by id.

    ``meta``: ``nominal_capacity_ah`` 2.0, ``warnings`` (IngestWarning list), ``impedance``
    (DataFrame: ``test_time_second``, ``re_ohm``, ``rct_ohm``), ``start_time`` (ISO).
    """
    path = folder / "metadata.csv"
    m = read_table(path, ("type", "start_time", "ambient_temperature", "battery_id",
                          "Capacity", "Re", "Rct"), dtype=str)
    m["file_row"] = np.arange(len(m)) + 2
    m["start"] = parse_starts(m["start_time"], m["file_row"].to_numpy(), str(path))
    m["ambient_temperature"] = pd.to_numeric(m["ambient_temperature"], errors="coerce")
    records = []
    for cid, ops in m.groupby("battery_id", sort=True):
        cycles, warns, impedance = _cell(ops, str(cid), path)
        if len(cycles) < MIN_CYCLES:
            warnings.warn(f"nasa-pcoe: cell {cid} skipped: {len(cycles)} valid discharge(s), "
                          f"fewer than {MIN_CYCLES}", UserWarning, stacklevel=2)
            continue
        meta = {"source": "nasa-pcoe", "nominal_capacity_ah": NOMINAL_CAPACITY_AH,
                "warnings": warns, "impedance": impedance,
                "start_time": ops["start"].min().isoformat()}
        records.append(CellRecord(str(cid), cycles, None, meta))
    return records
