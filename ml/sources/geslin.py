"""Geslin et al. 2024 (Nat. Energy, "Dynamic cycling enhances battery lifetime"): 77 cells of one
commercial type under CC (with 5/50/100 % SOC storage or none), Periodic, Synthetic and Drive
protocols, average C-rate 0.06–0.6C. Stanford Digital Repository, purl.stanford.edu/td676xr4322.

``diagnostics.csv`` gives, per cell, the C/2 diagnostic capacity normalised to the initial
capacity (``capacity_normalized``) at some cycle indices, with equivalent full cycles ``efc``.
The files carry no Ah scale and no clock, so:

- ``discharge_capacity_ah`` holds the NORMALISED capacity (``meta["nominal_capacity_ah"] = 1.0``,
  ``meta["capacity_unit"] = "normalized"``): retention is exact, absolute Ah are not available;
- ``test_time_second`` is ESTIMATED (``test_time_estimated = 1``) as 2 × EFC / average C-rate
  hours (one EFC = one full charge plus one full discharge at the average current); rests
  at zero current are not counted by this estimate, so storage protocols get a lower bound.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.sources import CellRecord
from ml.sources.tables import check_increasing, numeric_column, read_table


def elapsed_hours(efc: np.ndarray, average_c_rate: float) -> np.ndarray:
    """Estimated elapsed hours: 2 × EFC / average C-rate (C-rate in 1/h, > 0)."""
    return 2.0 * np.asarray(efc, dtype="float64") / float(average_c_rate)


def load(folder: Path) -> list[CellRecord]:
    """Load every cell (ids as in the files, e.g. ``cell_003``), in ``cells.csv`` order.

    ``meta``: the protocol (``protocol_type``, ``protocol_variant``, ``protocol_name``,
    ``average_c_rate``), the ``protocol_features.csv`` fields, the ``eol_soh90.csv`` fields
    (``cycles_to_soh90``, ``efc_to_soh90`` …) and ``split_group`` = protocol type.
    """
    cells_path = folder / "cells.csv"
    cells = read_table(cells_path, ("cell_name", "protocol_type", "avg_crate_exp"))
    crate = numeric_column(cells, "avg_crate_exp", cells_path, lo=1e-6, hi=10.0)
    diag_path = folder / "diagnostics.csv"
    diag = read_table(diag_path, ("cell_name", "cycle_index", "capacity_normalized", "efc"))
    diag["cycle_index"] = numeric_column(diag, "cycle_index", diag_path, lo=0)
    diag["capacity_normalized"] = numeric_column(diag, "capacity_normalized", diag_path,
                                                 lo=0.0, hi=1.5)
    diag["efc"] = numeric_column(diag, "efc", diag_path, lo=0.0)
    diag["file_row"] = np.arange(len(diag)) + 2
    extra = {}
    for name, rename in (("protocol_features.csv", {}),
                         ("eol_soh90.csv", {"Cycles": "cycles_to_soh90",
                                            "EFCs (with Diagnostic)": "efc_to_soh90"})):
        path = folder / name
        if path.is_file():
            t = read_table(path, ("cell_name",)).rename(columns=rename)
            for row in t.to_dict(orient="records"):
                extra.setdefault(str(row.pop("cell_name")), {}).update(row)
    records = []
    for i, row in enumerate(cells.to_dict(orient="records")):
        cid = str(row["cell_name"])
        d = diag[diag["cell_name"] == cid]
        if d.empty:
            raise ValidationError(f"cell '{cid}' has no diagnostics rows", code="empty_cell",
                                  file=str(diag_path), column="cell_name",
                                  expected="at least one row per cell in cells.csv", found="0")
        first = int(d["file_row"].iloc[0]) - 1
        check_increasing(d["cycle_index"].to_numpy(), "cycle_index", diag_path,
                         header_rows=first)
        check_increasing(d["efc"].to_numpy(), "efc", diag_path, strict=False,
                         header_rows=first)
        hours = elapsed_hours(d["efc"].to_numpy(), crate[i])
        table = pd.DataFrame({
            "cell_id": cid,
            "cycle_index": d["cycle_index"].to_numpy().astype("int64"),
            "test_time_second": hours * 3600.0,
            "discharge_capacity_ah": d["capacity_normalized"].to_numpy(),
            "equivalent_full_cycles": d["efc"].to_numpy(),
            "c_rate": crate[i],
            "test_time_estimated": 1,
        })
        meta = {"source": "geslin2024", "nominal_capacity_ah": 1.0,
                "capacity_unit": "normalized", "average_c_rate": float(crate[i]),
                "protocol_type": row["protocol_type"],
                "protocol_variant": row.get("protocol_variant"),
                "protocol_name": row.get("protocol_name"),
                "split_group": str(row["protocol_type"])}
        meta.update({k: (v.item() if isinstance(v, np.generic) else v)
                     for k, v in extra.get(cid, {}).items()})
        records.append(CellRecord(cid, table, None, meta))
    return records
