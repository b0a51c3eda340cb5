"""Zhang et al. 2020 (Nat. Commun. 11, 1706; Zenodo, CC-BY-4.0): LCO/graphite coin cells at
25/35/45 °C with EIS through ageing. Files under ``../shared/data/zhang2020_eis``:

- ``per_cell/Capacity_data_<cell>.txt`` — discharge capacity in mAh, one line per cycle
  (12 cells). Converted to Ah here. 35C02 also has ``capacity35C02.txt`` (299 lines, a
  truncated copy of the same series); the longer ``Capacity_data_35C02.txt`` is used.
- ``per_cell/EIS_data_<cell>.txt`` (25C01, 35C02, 45C02) — one line per measurement: Re(Z)
  at 60 frequencies then −Im(Z) at the same 60, high → low; ``frequencies_hz.csv`` gives them.
  Stored here as CONTRACTS EIS rows with ``z_imag_ohm`` = Im(Z), i.e. NEGATED (negative for
  capacitive/diffusive behaviour).

Cycle mapping (the source's notes disagree): capacity line i (1-based) is ``cycle_index`` i;
EIS line i is paired with capacity line i, i.e. ``cycle_count`` = i + ``eis_cycle_offset``
(default 0; 1 is the other reading). The files hold no clock: ``test_time_second`` is NaN
unless the caller passes ``hours_per_cycle`` (then estimated, ``test_time_estimated = 1``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from ml.sources import CellRecord

N_FREQUENCIES = 60
_CELL = re.compile(r"^Capacity_data_(\d\dC\d\d)\.txt$")


def _numbers(path: Path, width: int | None) -> np.ndarray:
    if not path.is_file():
        raise InputFormatError("file not found", code="missing_file", file=str(path))
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            vals = [float(x) for x in line.split()]
        except ValueError:
            raise ValidationError("non-numeric value", code="bad_value", file=str(path), row=i,
                                  expected="whitespace-separated floats",
                                  found=repr(line[:40])) from None
        if width is not None and len(vals) != width:
            raise InputFormatError("wrong number of values", code="bad_shape", file=str(path),
                                   row=i, expected=f"{width} values", found=str(len(vals)))
        rows.append(vals)
    return np.asarray(rows, dtype="float64")


def read_capacity_ah(path: Path) -> np.ndarray:
    """A ``Capacity_data_<cell>.txt`` file (mAh, one per line) as Ah, checked in (0, 1) Ah."""
    mah = _numbers(path, 1)[:, 0]
    bad = ~((mah > 0) & (mah < 1000))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError("capacity out of range", code="bad_value", file=str(path),
                              row=i + 1, expected="a coin-cell capacity in (0, 1000) mAh",
                              found=str(mah[i]))
    return mah / 1000.0


def read_spectra(path: Path, frequencies_hz: np.ndarray, cell_id: str,
                 eis_cycle_offset: int = 0) -> pd.DataFrame:
    """An ``EIS_data_<cell>.txt`` file as long CONTRACTS EIS rows (Im(Z) negative convention).

    Columns: ``cell_id``, ``measurement_id`` (1-based line), ``cycle_count``,
    ``frequency_hz``, ``z_real_ohm``, ``z_imag_ohm``.
    """
    m = _numbers(path, 2 * N_FREQUENCIES)
    n = len(m)
    line = np.repeat(np.arange(1, n + 1), N_FREQUENCIES)
    return pd.DataFrame({
        "cell_id": cell_id,
        "measurement_id": line.astype("int64"),
        "cycle_count": (line + eis_cycle_offset).astype("int64"),
        "frequency_hz": np.tile(frequencies_hz, n),
        "z_real_ohm": m[:, :N_FREQUENCIES].ravel(),
        "z_imag_ohm": -m[:, N_FREQUENCIES:].ravel(),  # the file stores −Im(Z)
    })


def read_frequencies(path: Path) -> np.ndarray:
    """``frequencies_hz.csv`` (``index,frequency_hz``): 60 positive, decreasing frequencies."""
    f = pd.read_csv(path)["frequency_hz"].to_numpy(dtype="float64")
    if f.size != N_FREQUENCIES or not (f > 0).all() or not (np.diff(f) < 0).all():
        raise InputFormatError("frequencies must be 60 positive, decreasing values",
                               code="bad_frequencies", file=str(path),
                               expected="60 decreasing frequencies", found=f"{f.size} values")
    return f


def load(folder: Path, *, eis_cycle_offset: int = 0,
         hours_per_cycle: float | None = None) -> list[CellRecord]:
    """Load the 12 cells with capacity files (ids ``25C01`` …), sorted by id.

    ``meta``: ``temperature_celsius`` (from the id), ``nominal_capacity_ah`` (first-cycle
    capacity; no rating is published), ``eis`` (DataFrame of spectra, or None),
    ``eis_cycle_offset``.
    """
    per_cell = folder / "per_cell"
    freq = read_frequencies(folder / "frequencies_hz.csv")
    records = []
    for path in sorted(per_cell.glob("Capacity_data_*.txt")):
        match = _CELL.match(path.name)
        if not match:
            continue  # aggregates (Capacity_data.txt, _35, _train …), not per-cell files
        cid = match.group(1)
        q = read_capacity_ah(path)
        n = np.arange(1, q.size + 1)
        known = hours_per_cycle is not None
        table = pd.DataFrame({
            "cell_id": cid, "cycle_index": n.astype("int64"),
            "test_time_second": n * hours_per_cycle * 3600.0 if known else np.nan,
            "discharge_capacity_ah": q,
            "temperature_celsius": float(cid[:2]),
            "test_time_estimated": 1,
        })
        eis_path = per_cell / f"EIS_data_{cid}.txt"
        eis = read_spectra(eis_path, freq, cid, eis_cycle_offset) if eis_path.is_file() else None
        meta = {"source": "zhang2020", "temperature_celsius": float(cid[:2]),
                "nominal_capacity_ah": float(q[0]), "eis": eis,
                "eis_cycle_offset": eis_cycle_offset, "capacity_file": path.name}
        records.append(CellRecord(cid, table, None, meta))
    return records
