"""Severson cells' discharge curves, Attia et al. 2021 re-analysis (MIT licence).

``../shared/data/severson2019_qdlin/<split>/cellN.csv.gz``: no header, 1000 rows × 99 columns,
discharge capacity (Ah) on a linear voltage grid from 3.5 V (row 0) down to 2.0 V (row 999),
column j = cycle j + 2 (cycles 2…100). ``<split>_cycle_lives.csv``: cycles to 0.88 Ah, one
per cell in file order (cell1, cell2, …; NOT lexicographic). Cleaned differently from
``severson2019/``: never joined to it row by row.

Per cell the table has cycles 2…100 with ``discharge_capacity_ah`` = row 999 (the capacity at
2.0 V), and the ΔQ(V) summaries of Q_100 − Q_10 (column 98 − column 8) on the cycle-100 row
only (NaN elsewhere), as CONTRACTS allows. There is no clock here: ``test_time_second`` is NaN.

Outliers: a few cycles hold a curve scaled ~30× (capacity ≈ 31 Ah at 2.0 V: train cell2 and
cell9, test1 cell3 and cell9, cycles 12–13) and train cell16's cycle 73 starts at 1.49 Ah at
3.5 V. Cycles whose curve anywhere exceeds :data:`MAX_VALID_CAPACITY_AH` are dropped and listed in ``meta["dropped_cycles"]``; if cycle
10 or 100 itself were such a cycle, the ΔQ(V) summaries would be NaN (not the case here).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from ml.sources import CellRecord
from ml.features import delta_q_summary

NOMINAL_CAPACITY_AH = 1.1
MAX_VALID_CAPACITY_AH = 1.2
SUMMARY_COLUMNS = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
                   "delta_q_v_skewness")
VOLTAGE_GRID_VOLT = np.linspace(3.5, 2.0, 1000)
FIRST_CYCLE = 2
SHAPE = (1000, 99)


def read_qdlin(path: Path) -> np.ndarray:
    """One ``cellN.csv.gz`` as a (1000, 99) float array (Ah), checked for shape and NaN."""
    try:
        values = pd.read_csv(path, header=None).to_numpy(dtype="float64")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot read Q(V) matrix: {exc}", code="unparseable_file",
                               file=str(path)) from exc
    if values.shape != SHAPE:
        raise InputFormatError("unexpected Q(V) matrix shape", code="bad_shape", file=str(path),
                               expected=f"{SHAPE[0]} rows x {SHAPE[1]} columns",
                               found=f"{values.shape[0]} x {values.shape[1]}")
    if np.isnan(values).any():
        r, c = (int(x[0]) for x in np.nonzero(np.isnan(values)))
        raise ValidationError("missing value", code="bad_value", file=str(path), row=r + 1,
                              column=f"column {c}", expected="a float", found="NaN")
    return values


def cell_table(qv: np.ndarray, cell_id: str) -> tuple[pd.DataFrame, list[int]]:
    """Per-cycle table (cycles 2…100) of one Q(V) matrix, ΔQ100−10 summaries on cycle 100;
    also the cycles dropped as outliers (capacity above 1.2 Ah anywhere on the curve)."""
    cycles = np.arange(FIRST_CYCLE, FIRST_CYCLE + qv.shape[1])
    spike = qv.max(axis=0) > MAX_VALID_CAPACITY_AH
    table = pd.DataFrame({"cell_id": cell_id, "cycle_index": cycles.astype("int64"),
                          "test_time_second": np.nan,
                          "discharge_capacity_ah": qv[-1, :],
                          "temperature_celsius": 30.0, "test_time_estimated": 1})
    i100, i10 = 100 - FIRST_CYCLE, 10 - FIRST_CYCLE
    if spike[i100] or spike[i10]:
        summaries = {c: float("nan") for c in SUMMARY_COLUMNS}
    else:
        # the ONE ΔQ(V) path, shared with build_cycle_table: ml.features.delta_q_summary
        summaries = delta_q_summary(qv[:, i10], qv[:, i100])
    for col in SUMMARY_COLUMNS:
        table[col] = np.where(table["cycle_index"] == 100, summaries[col], np.nan)
    return table[~spike].reset_index(drop=True), [int(c) for c in cycles[spike]]


def load(folder: Path, *, split: str = "train") -> list[CellRecord]:
    """Load one split as cells ``severson-qdlin-<split>-NN`` (NN = the file's cell number)."""
    lives_path = folder / f"{split}_cycle_lives.csv"
    if not lives_path.is_file():
        raise InputFormatError("file not found", code="missing_file", file=str(lives_path))
    lives = pd.read_csv(lives_path, header=None, encoding="utf-8-sig")[0].to_numpy()
    files = sorted((folder / split).glob("cell*.csv.gz"),
                   key=lambda p: int(re.sub(r"\D", "", p.name.split(".")[0]) or 0))
    numbers = [int(re.sub(r"\D", "", p.name.split(".")[0])) for p in files]
    if numbers != list(range(1, len(lives) + 1)):
        raise ValidationError("cell files and cycle lives disagree", code="row_count_mismatch",
                              file=str(lives_path),
                              expected=f"cell1 … cell{len(lives)}.csv.gz",
                              found=f"{len(files)} cell files")
    records = []
    for n, path in zip(numbers, files):
        qv = read_qdlin(path)
        cid = f"severson-qdlin-{split}-{n:02d}"
        table, dropped = cell_table(qv, cid)
        meta = {"dropped_cycles": dropped, "source": f"severson-qdlin-{split}", "split": split, "file": path.name,
                "cycle_life": int(lives[n - 1]), "nominal_capacity_ah": NOMINAL_CAPACITY_AH,
                "delta_q_100_10": {c: float(table[c].iloc[-1]) for c in SUMMARY_COLUMNS}}
        records.append(CellRecord(cid, table, None, meta))
    return records
