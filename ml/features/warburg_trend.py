"""A_w spectra aligned to the per-cycle table: slow baseline trend kept apart from spikes.

Each spectrum is placed at a cycle (its ``cycle_count``; else the first cycle ending at or after
its ``test_time_second``) and an elapsed time. "Top of charge" spectra — where A_w can spike
reversibly, e.g. above 1000 Ω s^-½ above 2.9 V in solid-state Li/Li3PS4/PTO cells, and revert
on discharge — are kept apart from the baseline, decided in this order:

1. a stated threshold (``spike_voltage_volt``, or the cell metadata
   ``aw_spike_voltage_volt``): spectra at or above it;
2. a ``state_of_charge`` column: spectra at >= ``TOP_OF_CHARGE_SOC``;
3. per EIS event (spectra of one cycle): where the event's voltages span more than
   ``SPIKE_MIN_SPAN_VOLT``, those within ``TOP_OF_CHARGE_BAND_VOLT`` of its highest voltage
   (per event, so slow voltage drift with age does not move spectra between the classes).

Only spectra whose fit is ``ok`` are used. Per cycle row (causal, latest at or before the
cycle):

``aw_ohm_per_sqrt_s`` / ``aw_stderr`` (baseline), ``aw_measurement_count``,
``aw_slope_per_cycle`` / ``aw_slope_per_hour`` (OLS over the last ``AW_TREND_WINDOW``
baseline spectra), ``aw_top_of_charge_ohm_per_sqrt_s`` and ``aw_spike_ratio`` (top / baseline).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features.trend import rolling_slope
from ml.features.warburg import warburg_table

SPIKE_MIN_SPAN_VOLT = 0.2
TOP_OF_CHARGE_SOC = 0.95
TOP_OF_CHARGE_BAND_VOLT = 0.05
AW_TREND_WINDOW = 5
AW_COLUMNS = ("aw_ohm_per_sqrt_s", "aw_stderr", "aw_measurement_count", "aw_slope_per_cycle",
              "aw_slope_per_hour", "aw_top_of_charge_ohm_per_sqrt_s", "aw_spike_ratio")


def _place(fits: pd.DataFrame, cycles: pd.DataFrame) -> pd.DataFrame:
    """Add ``cycle_pos`` (cycle index) and ``hour`` to one cell's fits."""
    ci = cycles["cycle_index"].to_numpy(float)
    end_s = cycles["test_time_second"].to_numpy(float)
    cyc = pd.to_numeric(fits["cycle_count"], errors="coerce").to_numpy(float)
    t = pd.to_numeric(fits["test_time_second"], errors="coerce").to_numpy(float)
    k = np.clip(np.searchsorted(end_s, t, side="left"), 0, max(len(ci) - 1, 0))
    from_time = np.where(np.isfinite(t) & (len(ci) > 0), ci[k] if len(ci) else np.nan, np.nan)
    pos = np.where(np.isfinite(cyc), cyc, from_time)
    k2 = np.clip(np.searchsorted(ci, pos, side="left"), 0, max(len(ci) - 1, 0))
    hour = np.where(np.isfinite(t), t, end_s[k2] if len(ci) else np.nan) / 3600.0
    return fits.assign(cycle_pos=pos, hour=hour)


def _latest(at: np.ndarray, pos: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values of the last spectrum with pos <= each ``at`` (pos sorted ascending)."""
    if pos.size == 0:
        return np.full(at.shape, np.nan)
    k = np.searchsorted(pos, at, side="right") - 1
    return np.where(k >= 0, values[np.maximum(k, 0)], np.nan)


def top_of_charge(fits: pd.DataFrame, spike_voltage_volt: float | None = None) -> np.ndarray:
    """Boolean [len(fits)]: which spectra of ONE cell are top-of-charge (module docstring)."""
    volt = pd.to_numeric(fits["voltage_volt"], errors="coerce").to_numpy(float)
    if spike_voltage_volt is not None:
        return np.nan_to_num(volt, nan=-np.inf) >= spike_voltage_volt
    if "state_of_charge" in fits.columns:
        soc = pd.to_numeric(fits["state_of_charge"], errors="coerce").to_numpy(float)
        if np.isfinite(soc).any():
            return np.nan_to_num(soc, nan=-np.inf) >= TOP_OF_CHARGE_SOC
    top = np.zeros(len(fits), dtype=bool)
    events = pd.Series(volt).groupby(fits["cycle_pos"].to_numpy())
    vmax = events.transform("max").to_numpy(float)
    span = vmax - events.transform("min").to_numpy(float)
    top = (span > SPIKE_MIN_SPAN_VOLT) & (volt >= vmax - TOP_OF_CHARGE_BAND_VOLT)
    return np.asarray(top, dtype=bool)


def align_cell_spectra(table: pd.DataFrame, eis: pd.DataFrame | None,
                       meta: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """:func:`align_warburg` for ONE registered cell's per-cycle table and spectra, with its
    metadata's ``aw_spike_voltage_volt``; the table unchanged when it has no spectra. What
    ``fadecast features`` and a stored-cell forecast both call."""
    if eis is None or not len(eis):
        return table
    from ml.features.cycle_input import meta_float

    return align_warburg(table, eis,
                         spike_voltage_volt=meta_float(meta or {}, "aw_spike_voltage_volt"))


def align_warburg(table: pd.DataFrame, eis: pd.DataFrame,
                  spike_voltage_volt: float | dict[str, float | None] | None = None
                  ) -> pd.DataFrame:
    """Add the A_w columns to a per-cycle table (rows of each cell in cycle order).

    Parameters
    ----------
    table : per-cycle rows with ``cell_id``, ``cycle_index``, ``test_time_second``.
    eis : EIS rows (schema EIS); without ``cell_id`` they belong to the table's only cell.
    spike_voltage_volt : spectra at or above this voltage (V) are top-of-charge (one value,
        or a dict cell_id → value); default: decided from state of charge or per EIS event
        (module docstring).
    """
    fits = warburg_table(eis)
    if "cell_id" not in fits.columns:
        cells = table["cell_id"].unique()
        if len(cells) != 1:
            raise ValidationError("EIS rows carry no cell_id but the samples hold several "
                                  "cells", code="missing_column", column="cell_id",
                                  expected="a cell_id column in the EIS table",
                                  found=f"{len(cells)} cells in the samples")
        fits["cell_id"] = str(cells[0])
    fits = fits[fits["ok"].astype(bool)]
    out = table.copy()
    for c in AW_COLUMNS:
        out[c] = np.nan
    for cell_id, rows in out.groupby("cell_id", sort=False):
        f = fits[fits["cell_id"] == str(cell_id)]
        if f.empty:
            continue
        f = _place(f, rows).dropna(subset=["cycle_pos"]).sort_values(["cycle_pos", "hour"],
                                                                     kind="stable")
        threshold = (spike_voltage_volt.get(str(cell_id))
                     if isinstance(spike_voltage_volt, dict) else spike_voltage_volt)
        top = top_of_charge(f, threshold)
        base, high = f[~top], f[top]
        at = rows["cycle_index"].to_numpy(float)
        bpos = base["cycle_pos"].to_numpy(float)
        baw = base["aw_ohm_per_sqrt_s"].to_numpy(float)
        bh = base["hour"].to_numpy(float)
        cols = {
            "aw_ohm_per_sqrt_s": _latest(at, bpos, baw),
            "aw_stderr": _latest(at, bpos, base["aw_stderr"].to_numpy(float)),
            "aw_measurement_count": np.searchsorted(bpos, at, side="right").astype(float),
            "aw_slope_per_cycle": _latest(at, bpos, rolling_slope(bpos, baw, AW_TREND_WINDOW)),
            "aw_slope_per_hour": _latest(at, bpos, rolling_slope(bh, baw, AW_TREND_WINDOW)),
            "aw_top_of_charge_ohm_per_sqrt_s": _latest(
                at, high["cycle_pos"].to_numpy(float), high["aw_ohm_per_sqrt_s"].to_numpy(float)),
        }
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["aw_spike_ratio"] = cols["aw_top_of_charge_ohm_per_sqrt_s"] / cols[
                "aw_ohm_per_sqrt_s"]
        for c, v in cols.items():
            out.loc[rows.index, c] = v
    return out
