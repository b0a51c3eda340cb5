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
"""
from __future__ import annotations

import re
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, ValidationError
from ml.sources import CellRecord
from ml.sources.tables import read_table

NOMINAL_CAPACITY_AH = 2.0
NOMINAL_LOAD_AMPERE = 2.0
MIN_VALID_CAPACITY_AH = 0.5
MAX_VALID_CAPACITY_AH = 2.5
MAX_VALID_RESISTANCE_OHM = 10.0
MIN_CYCLES = 5
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_datevec(text: str) -> datetime:
    """A MATLAB datevec string ``[2010. 7. 21. 15. 0. 35.093]`` (also in scientific notation,
    ``[2.010e+03 7.000e+00 …]``) as a naive datetime.

    Raises
    ------
    ValueError
        Not six numbers or not a valid date.
    """
    nums = [float(x) for x in _NUMBER.findall(str(text))]
    if len(nums) != 6:
        raise ValueError(f"expected 6 numbers, found {len(nums)}")
    y, mo, d, h, mi, s = nums
    return datetime(int(round(y)), int(round(mo)), int(round(d))) + timedelta(
        hours=h, minutes=mi, seconds=s)


def _resistance(text: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return v if 0 < v <= MAX_VALID_RESISTANCE_OHM else float("nan")


def _cell(ops: pd.DataFrame, cid: str, path: Path) -> tuple[pd.DataFrame, list[IngestWarning],
                                                             pd.DataFrame]:
    ops = ops.sort_values("start").reset_index(drop=True)
    t0 = ops["start"].iloc[0]
    start_s = (ops["start"] - t0).dt.total_seconds().to_numpy()
    next_s = np.append(start_s[1:], np.inf)
    warns: list[IngestWarning] = []
    dis = ops["type"].to_numpy() == "discharge"
    cap_text = ops["Capacity"].astype(str).str.strip()
    missing = dis & cap_text.isin(["[]", ""]).to_numpy()
    if missing.any():
        warns.append(IngestWarning("missing_capacity", f"{cid}: {int(missing.sum())} discharge(s) "
                                   "with Capacity '[]' dropped", str(path),
                                   int(ops["file_row"][missing].iloc[0]), "Capacity",
                                   int(missing.sum())))
    cap = pd.to_numeric(cap_text, errors="coerce").to_numpy()
    junk = dis & ~missing & ~((cap >= MIN_VALID_CAPACITY_AH) & (cap <= MAX_VALID_CAPACITY_AH))
    if junk.any():
        warns.append(IngestWarning("junk_capacity", f"{cid}: {int(junk.sum())} discharge(s) with "
                                   f"capacity outside [{MIN_VALID_CAPACITY_AH}, "
                                   f"{MAX_VALID_CAPACITY_AH}] Ah dropped", str(path),
                                   int(ops["file_row"][junk].iloc[0]), "Capacity",
                                   int(junk.sum()), {"values": cap[junk][:10].tolist()}))
    keep = dis & ~missing & ~junk
    duration = np.minimum(cap[keep] / NOMINAL_LOAD_AMPERE * 3600.0,
                          next_s[keep] - start_s[keep])
    cycles = pd.DataFrame({
        "cell_id": cid,
        "cycle_index": np.arange(1, int(keep.sum()) + 1, dtype="int64"),
        "test_time_second": start_s[keep] + duration,
        "discharge_capacity_ah": cap[keep],
        "temperature_celsius": ops["ambient_temperature"].to_numpy(dtype="float64")[keep],
        "test_time_estimated": 0,
    })
    imp = ops[ops["type"] == "impedance"]
    re_ohm = imp["Re"].map(_resistance).to_numpy(dtype="float64")
    rct_ohm = imp["Rct"].map(_resistance).to_numpy(dtype="float64")
    bad = (np.isnan(re_ohm) | np.isnan(rct_ohm)) & (imp["Re"].astype(str).str.len() > 0).to_numpy()
    if bad.any():
        warns.append(IngestWarning("bad_impedance", f"{cid}: {int(bad.sum())} Re/Rct value(s) "
                                   "complex, non-positive or absurd set to NaN", str(path),
                                   int(imp["file_row"][bad].iloc[0]), "Re", int(bad.sum())))
    impedance = pd.DataFrame({"test_time_second": (imp["start"] - t0).dt.total_seconds()
                              .to_numpy(), "re_ohm": re_ohm, "rct_ohm": rct_ohm})
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
    starts = []
    for row, text in zip(m["file_row"], m["start_time"]):
        try:
            starts.append(parse_datevec(text))
        except ValueError as exc:
            raise ValidationError(f"unreadable start time: {exc}", code="bad_timestamp",
                                  file=str(path), row=int(row), column="start_time",
                                  expected="a MATLAB datevec '[y m d h mi s]'",
                                  found=repr(text)) from None
    m["start"] = pd.to_datetime(pd.Series(starts, index=m.index))
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
