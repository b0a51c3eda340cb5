"""pybamm-cohorts-dev: 48 PyBaMM-simulated SIBLING cells in 12 cohorts with a KNOWN split.

Layout (``../shared/data/pybamm-cohorts-dev``): ``cells.csv`` (one row per cell with
``cohort_id``, protocol, multipliers), ``<cell>.cycles.csv`` and ``<cell>.truth.csv``. The
files spell times ``test_time_s`` / ``cycle_duration_s`` / ``rest_s``; they are renamed to the
CONTRACTS names (``test_time_second`` …) here. Nominal 5 Ah (OKane2022 / LG M50). Simulated
data: cite PyBaMM (Sulzer 2021), Chen 2020, O'Kane 2022.

The cohorts are split ONCE, by cohort, into three fixed parts (:data:`COHORT_SPLIT`): the
population prior is learned on ``train``, the interval scale on ``calibration``, and
``fadecast evaluate --suite pybamm-cohorts`` scores ``evaluation`` only. Each part holds one
35 °C cohort. Never tune on the evaluation cohorts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from data_registry.errors import NotFoundError
from ml.sources import CellRecord
from ml.sources.tables import check_increasing, numeric_column, read_table

NOMINAL_CAPACITY_AH = 5.0
#: cohort id -> part. train: population prior; calibration: interval scale; evaluation: scored.
COHORT_SPLIT: dict[str, str] = {
    **{f"cd{i}": "train" for i in (1, 2, 3, 4)},
    **{f"cd{i}": "calibration" for i in (5, 6, 7, 8)},
    **{f"cd{i}": "evaluation" for i in (9, 10, 11, 12)},
}
_RENAME = {"test_time_s": "test_time_second", "cycle_duration_s": "cycle_duration_second",
           "rest_s": "rest_second"}
_NUMERIC = ("test_time_second", "cycle_duration_second", "rest_second", "c_rate",
            "temperature_celsius", "charge_capacity_ah", "discharge_capacity_ah",
            "charge_energy_wh", "discharge_energy_wh", "mean_charge_voltage_volt",
            "mean_discharge_voltage_volt")


def _read(path: Path, numeric: Iterable[str], required: tuple[str, ...]) -> pd.DataFrame:
    df = read_table(path, ("cycle_index",)).rename(columns=_RENAME)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise NotFoundError(f"missing column(s) {missing}", code="missing_column",
                            file=str(path), column=missing[0])
    out = pd.DataFrame({"cycle_index": numeric_column(df, "cycle_index", path, lo=1)
                        .astype("int64")})
    check_increasing(out["cycle_index"].to_numpy(), "cycle_index", path)
    for col in numeric:
        if col in df.columns:
            out[col] = numeric_column(df, col, path)
    return out


def load(folder: Path, *, cells: Iterable[str] | None = None,
         cohorts: Iterable[str] | None = None) -> list[CellRecord]:
    """Load the sibling cells (all, or the ids in ``cells``, or the cohorts in ``cohorts``).

    ``meta`` holds every ``cells.csv`` field plus ``source="pybamm-cohorts-dev"``,
    ``nominal_capacity_ah=5.0``, ``cohort`` (= ``cohort_id``) and ``cohort_part``
    (train / calibration / evaluation, from :data:`COHORT_SPLIT`).
    """
    table_path = folder / "cells.csv"
    table = read_table(table_path, ("cell_id", "cohort_id", "c_rate", "rest_h",
                                    "rest_every_n_cycles", "temperature_celsius"))
    table["cell_id"] = table["cell_id"].astype(str)
    if cells is not None:
        wanted = list(cells)
        unknown = sorted(set(wanted) - set(table["cell_id"]))
        if unknown:
            raise NotFoundError(f"unknown pybamm-cohorts-dev cell(s) {unknown}",
                                code="unknown_cell", file=str(table_path), column="cell_id")
        table = table[table["cell_id"].isin(wanted)]
    if cohorts is not None:
        table = table[table["cohort_id"].astype(str).isin(list(cohorts))]
    records = []
    for row in table.to_dict(orient="records"):
        cid = str(row["cell_id"])
        cycles = _read(folder / f"{cid}.cycles.csv", _NUMERIC,
                       ("test_time_second", "discharge_capacity_ah"))
        check_increasing(cycles["test_time_second"].to_numpy(), "test_time_second",
                         folder / f"{cid}.cycles.csv")
        cycles["test_time_estimated"] = 0
        cycles.insert(0, "cell_id", cid)
        truth = _read(folder / f"{cid}.truth.csv",
                      ("test_time_second", "loss_time_frac", "loss_cycle_frac",
                       "interaction_frac", "capacity_none_ah"),
                      ("loss_time_frac", "loss_cycle_frac"))
        if not np.array_equal(truth["cycle_index"].to_numpy(), cycles["cycle_index"].to_numpy()):
            raise NotFoundError("truth and cycles files disagree on cycle_index",
                                code="truth_mismatch", file=str(folder / f"{cid}.truth.csv"))
        meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        meta.update(source="pybamm-cohorts-dev", nominal_capacity_ah=NOMINAL_CAPACITY_AH,
                    cohort=str(row["cohort_id"]),
                    cohort_part=COHORT_SPLIT.get(str(row["cohort_id"]), "evaluation"),
                    split_group=str(row["cohort_id"]))
        records.append(CellRecord(cid, cycles, truth, meta))
    return records
