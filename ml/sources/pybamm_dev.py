"""pybamm-dev: 48 PyBaMM-simulated cells with a KNOWN time-driven / cycle-driven fade split.

Layout (``../shared/data/pybamm-dev``): ``cells.csv`` (one row per cell: protocol, multipliers,
final figures), ``<cell>.cycles.csv`` (what a cycler would record, CONTRACTS columns already)
and ``<cell>.truth.csv`` (per-cycle ``loss_time_frac``, ``loss_cycle_frac``,
``interaction_frac`` … as fractions of the no-degradation run's capacity). Nominal 5 Ah
(OKane2022 / LG M50). Simulated data: cite PyBaMM (Sulzer 2021), Chen 2020, O'Kane 2022.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from data_registry.errors import NotFoundError, ValidationError
from ml.sources import CellRecord
from ml.sources.tables import check_increasing, numeric_column, read_table

NOMINAL_CAPACITY_AH = 5.0
CELLS_COLUMNS = ("cell_id", "c_rate", "rest_h", "rest_every_n_cycles", "temperature_celsius",
                 "cycles_run")
CYCLES_COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah")
TRUTH_COLUMNS = ("cycle_index", "test_time_second", "loss_time_frac", "loss_cycle_frac")
_NUMERIC_CYCLES = ("test_time_second", "cycle_duration_second", "rest_second", "c_rate",
                   "temperature_celsius", "charge_capacity_ah", "discharge_capacity_ah",
                   "charge_energy_wh", "discharge_energy_wh", "mean_charge_voltage_volt",
                   "mean_discharge_voltage_volt")


def split_group(c_rate: float, rest_h: float) -> str:
    """Stratum used by :func:`ml.sources.split_by_cell`: ``"<c_rate>C|<rest_h>h"``."""
    return f"{float(c_rate):g}C|{float(rest_h):g}h"


def _read_cycles(path: Path) -> pd.DataFrame:
    df = read_table(path, CYCLES_COLUMNS)
    out = pd.DataFrame({"cycle_index": numeric_column(df, "cycle_index", path, lo=1)
                        .astype("int64")})
    check_increasing(out["cycle_index"].to_numpy(), "cycle_index", path)
    for col in _NUMERIC_CYCLES:
        if col in df.columns:
            lo = 0.0 if col != "temperature_celsius" else -80.0
            out[col] = numeric_column(df, col, path, lo=lo)
    check_increasing(out["test_time_second"].to_numpy(), "test_time_second", path)
    if (out["discharge_capacity_ah"] <= 0).any():
        i = int(np.flatnonzero(out["discharge_capacity_ah"].to_numpy() <= 0)[0])
        raise ValidationError("discharge capacity must be positive", code="bad_value",
                              file=str(path), row=i + 2, column="discharge_capacity_ah",
                              expected="> 0", found=str(out["discharge_capacity_ah"][i]))
    out["test_time_estimated"] = 0
    return out


def _read_truth(path: Path, cycles: pd.DataFrame) -> pd.DataFrame:
    df = read_table(path, TRUTH_COLUMNS)
    out = pd.DataFrame({"cycle_index": numeric_column(df, "cycle_index", path, lo=1)
                        .astype("int64")})
    for col in df.columns:
        if col not in ("cell_id", "cycle_index"):
            out[col] = numeric_column(df, col, path)
    if not np.array_equal(out["cycle_index"].to_numpy(), cycles["cycle_index"].to_numpy()):
        raise ValidationError("truth and cycles files disagree on cycle_index",
                              code="truth_mismatch", file=str(path), column="cycle_index",
                              expected=f"{len(cycles)} cycles as in the cycles file",
                              found=f"{len(out)} rows")
    return out


def load(folder: Path, *, cells: Iterable[str] | None = None) -> list[CellRecord]:
    """Load the simulated cells (all, or only the ids in ``cells``), in ``cells.csv`` order.

    ``meta`` holds every ``cells.csv`` field (``c_rate``, ``rest_h``, ``final_time_share`` …)
    plus ``source="pybamm-dev"``, ``nominal_capacity_ah=5.0`` and ``split_group``.
    """
    table_path = folder / "cells.csv"
    table = read_table(table_path, CELLS_COLUMNS)
    table["cell_id"] = table["cell_id"].astype(str)
    wanted = None if cells is None else list(cells)
    if wanted is not None:
        unknown = sorted(set(wanted) - set(table["cell_id"]))
        if unknown:
            raise NotFoundError(f"unknown pybamm-dev cell(s) {unknown}", code="unknown_cell",
                                file=str(table_path), column="cell_id",
                                expected="ids listed in cells.csv", found=str(unknown))
        table = table[table["cell_id"].isin(wanted)]
    records = []
    for row in table.to_dict(orient="records"):
        cid = str(row["cell_id"])
        cycles = _read_cycles(folder / f"{cid}.cycles.csv")
        cycles.insert(0, "cell_id", cid)
        truth = _read_truth(folder / f"{cid}.truth.csv", cycles)
        meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        meta.update(source="pybamm-dev", nominal_capacity_ah=NOMINAL_CAPACITY_AH,
                    split_group=split_group(row["c_rate"], row["rest_h"]))
        records.append(CellRecord(cid, cycles, truth, meta))
    return records
