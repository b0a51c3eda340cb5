"""Severson et al. 2019 (Nat. Energy 4, 383): A123 LFP/graphite 1.1 Ah cells, 30 °C, 4C discharge.

Files (``../shared/data/severson2019``, no headers, ``y_*``/``IvsSOC_train`` start with a BOM):
``Qn_<split>.csv`` rows = cells, column j = discharge capacity (Ah) of cycle j (column 0 is NaN,
NaN-padded after the last cycle); ``y_<split>.csv`` cycle life (cycles to 80 % of 1.1 Ah);
``IvsSOC_<split>.csv`` the charge policy, C-rate at 1 % SOC steps from 0 to 80 % SOC.

Outliers: a capacity above :data:`MAX_VALID_CAPACITY_AH` (1.2 Ah, 109 % of nominal; the
largest genuine value in both splits is 1.10 Ah) is a logging spike. That cycle is DROPPED
(not interpolated), and its index is listed in ``meta["dropped_cycles"]``. Four test1 cells
have one such spike each (max 2.88 Ah).

Clock: the files hold no timestamps, so ``test_time_second`` is ESTIMATED from the protocol
(``test_time_estimated = 1``): per cycle, charging 0 → 80 % SOC at the policy's C-rates
(Σ 0.01 / C_i hours), 80 → 100 % at 1C (0.2 h), discharge at 4C (0.25 h). Rests and the CV
tails are unknown and left out, so the estimate is a lower bound of the real cycle time.

Charge policy: ``charge_policy_c_rate`` is the policy's PLANNED mean charging C-rate over a full
charge, 1 / (charge hours) (:func:`charge_hours`, CV tail excluded): a property of the protocol
that its user states, not the measured ``charge_c_rate`` a cycler export's samples give (that
one includes the CV tail and is lower).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from ml.sources import CellRecord

NOMINAL_CAPACITY_AH = 1.1
MAX_VALID_CAPACITY_AH = 1.2
TEMPERATURE_CELSIUS = 30.0
DISCHARGE_C_RATE = 4.0
TOP_CHARGE_C_RATE = 1.0


def charge_hours(policy_c_rates: np.ndarray) -> float:
    """Hours of one full charge under a policy: Σ 0.01/C_i (0–80 % SOC, the 80 policy C-rates in
    1/h at 1 % steps) + 0.2/1C (80–100 %)."""
    rates = np.asarray(policy_c_rates, dtype="float64")
    return float(np.sum(0.01 / rates) + 0.2 / TOP_CHARGE_C_RATE)


def hours_per_cycle(policy_c_rates: np.ndarray) -> float:
    """Estimated hours of one cycle from a charge policy.

    Parameters
    ----------
    policy_c_rates:
        The 80 charge C-rates (1/h) at 1 % SOC steps from 0 to 80 % SOC.

    Returns
    -------
    float
        Σ 0.01/C_i (0–80 % SOC) + 0.2/1C (80–100 %) + 1/4C (discharge), in hours.
    """
    return charge_hours(policy_c_rates) + 1.0 / DISCHARGE_C_RATE


def _matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputFormatError("file not found", code="missing_file", file=str(path),
                               expected="an existing file", found="nothing")
    try:
        df = pd.read_csv(path, header=None, encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot parse as CSV: {exc}", code="unparseable_file",
                               file=str(path)) from exc
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    text_bad = df.notna().to_numpy() & np.isnan(values)
    if text_bad.any():
        r, c = (int(x[0]) for x in np.nonzero(text_bad))
        raise ValidationError("non-numeric value", code="bad_value", file=str(path),
                              row=r + 1, column=f"column {c}", expected="a float",
                              found=repr(df.iat[r, c]))
    return values


def cell_cycles(capacity_ah: np.ndarray, policy_c_rates: np.ndarray,
                cell_id: str) -> tuple[pd.DataFrame, list[int]]:
    """One cell's per-cycle table from its ``Qn`` row (column j = cycle j) and its policy.

    Returns the table and the cycle indices dropped as outliers (> 1.2 Ah).
    """
    q = np.asarray(capacity_ah, dtype="float64")
    cycle = np.arange(q.size)
    spikes = np.flatnonzero(q > MAX_VALID_CAPACITY_AH)
    keep = ~np.isnan(q) & (q <= MAX_VALID_CAPACITY_AH) & (cycle >= 1)
    h = hours_per_cycle(policy_c_rates)
    n = cycle[keep]
    table = pd.DataFrame({
        "cell_id": cell_id,
        "cycle_index": n.astype("int64"),
        # every cycle up to n took h hours, dropped ones included (they happened)
        "test_time_second": n * h * 3600.0,
        "cycle_duration_second": h * 3600.0,
        "discharge_capacity_ah": q[keep],
        "c_rate": DISCHARGE_C_RATE,
        "charge_policy_c_rate": 1.0 / charge_hours(policy_c_rates),
        "temperature_celsius": TEMPERATURE_CELSIUS,
        "test_time_estimated": 1,
    })
    return table, [int(c) for c in spikes]


def load(folder: Path, *, split: str = "train") -> list[CellRecord]:
    """Load one split (``train`` or ``test1``) as cells ``severson-<split>-NN`` (file order).

    ``meta``: ``cycle_life`` (from ``y``), ``nominal_capacity_ah`` 1.1, ``charge_policy``
    (80 C-rates), ``hours_per_cycle`` (estimate), ``dropped_cycles``, ``split``.
    """
    q = _matrix(folder / f"Qn_{split}.csv")
    y = _matrix(folder / f"y_{split}.csv")[:, 0]
    policy = _matrix(folder / f"IvsSOC_{split}.csv")
    if not (len(q) == len(y) == len(policy)):
        raise ValidationError("Qn, y and IvsSOC disagree on the number of cells",
                              code="row_count_mismatch", file=str(folder / f"Qn_{split}.csv"),
                              expected=f"{len(y)} rows as in y_{split}.csv", found=str(len(q)))
    bad_policy = np.flatnonzero(~(policy > 0).all(axis=1))
    if bad_policy.size:
        raise ValidationError("charge C-rates must be positive", code="bad_value",
                              file=str(folder / f"IvsSOC_{split}.csv"), row=int(bad_policy[0]) + 1,
                              expected="C-rates > 0", found="a zero, negative or missing rate")
    records = []
    for i in range(len(q)):
        cid = f"severson-{split}-{i + 1:02d}"
        table, dropped = cell_cycles(q[i], policy[i], cid)
        meta = {"source": f"severson-{split}", "split": split, "row": i + 1,
                "cycle_life": int(y[i]), "nominal_capacity_ah": NOMINAL_CAPACITY_AH,
                "charge_policy": policy[i].tolist(), "hours_per_cycle": hours_per_cycle(policy[i]),
                "dropped_cycles": dropped, "temperature_celsius": TEMPERATURE_CELSIUS}
        records.append(CellRecord(cid, table, None, meta))
    return records
