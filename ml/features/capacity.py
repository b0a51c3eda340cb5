"""Capacity and energy per cycle from per-sample rows, and the capacity-derived columns.

Charge and discharge amounts come from the cycler's cumulative counters
(``charging_capacity_ah`` …) when present — they are what the cycler itself reports — and are
otherwise integrated from current (and voltage × current for energy) by the trapezoid rule.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features.columns import numeric_column
from ml.features.sample_frame import SampleArrays

#: A counter drop to at most this fraction of the previous value is read as a reset (per cycle
#: or per step); smaller drops are noise and add nothing.
COUNTER_RESET_FRACTION = 0.5


def counter_increments(values: np.ndarray, first_of_cell: np.ndarray) -> np.ndarray:
    """Per-row increase of a cumulative counter that may reset (per cycle or per step).

    Parameters
    ----------
    values : float [n] — cumulative counter (Ah or Wh), NaN where not recorded.
    first_of_cell : bool [n] — True on each cell's first row, where the counter is read as
        starting from 0 (BDF counters are cumulative within a cycle).

    Returns
    -------
    float [n] — increase since the previous row: the difference where the counter grew, the
    new value after a reset (drop to <= half) and on a cell's first row, 0 for small noisy
    drops and NaN gaps.
    """
    v = np.nan_to_num(values, nan=0.0)
    inc = np.empty_like(v)
    d = v[1:] - v[:-1]
    reset = v[1:] <= COUNTER_RESET_FRACTION * v[:-1]
    inc[1:] = np.where(d >= 0.0, d, np.where(reset, v[1:], 0.0))
    inc[first_of_cell] = np.maximum(v[first_of_cell], 0.0)
    return inc


def _trapezoid(values: np.ndarray, arr: SampleArrays) -> np.ndarray:
    """Per-row trapezoid area of ``values`` over the interval ending at that row (unit·s)."""
    out = np.empty_like(values)
    out[0] = 0.0
    out[1:] = 0.5 * (values[1:] + values[:-1])
    out *= arr.dt_s
    return out


def charge_flows(arr: SampleArrays) -> dict[str, np.ndarray]:
    """Per-row charge/discharge capacity (Ah) and energy (Wh) increments, all >= 0.

    Counters are used where the input has them, integration otherwise; the per-row increments
    are what the per-cycle sums and the Q(V) curves are built from.
    """
    i = arr.current_a
    v = arr.voltage_v
    ch_i = np.maximum(i, 0.0)
    dis_i = np.maximum(-i, 0.0)
    flows = {}
    for key, counter, current in (("charge_ah", "charging_capacity_ah", ch_i),
                                  ("discharge_ah", "discharging_capacity_ah", dis_i)):
        if counter in arr.extra and np.isfinite(arr.extra[counter]).any():
            flows[key] = counter_increments(arr.extra[counter], arr.first_of_cell)
        else:
            flows[key] = _trapezoid(current, arr) / 3600.0
    for key, counter, current in (("charge_wh", "charging_energy_wh", ch_i),
                                  ("discharge_wh", "discharging_energy_wh", dis_i)):
        if counter in arr.extra and np.isfinite(arr.extra[counter]).any():
            flows[key] = counter_increments(arr.extra[counter], arr.first_of_cell)
        else:
            flows[key] = _trapezoid(current * v, arr) / 3600.0
    return flows


def capacity_per_cycle(arr: SampleArrays, flows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-cycle charge/discharge capacity (Ah) and energy (Wh), and mean voltages (V).

    Mean voltage = energy / capacity; NaN where the cycle moved no charge that way.
    """
    st = arr.starts
    out = {
        "charge_capacity_ah": np.add.reduceat(flows["charge_ah"], st),
        "discharge_capacity_ah": np.add.reduceat(flows["discharge_ah"], st),
        "charge_energy_wh": np.add.reduceat(flows["charge_wh"], st),
        "discharge_energy_wh": np.add.reduceat(flows["discharge_wh"], st),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean_charge_voltage_volt"] = np.where(
            out["charge_capacity_ah"] > 0, out["charge_energy_wh"] / out["charge_capacity_ah"],
            np.nan)
        out["mean_discharge_voltage_volt"] = np.where(
            out["discharge_capacity_ah"] > 0,
            out["discharge_energy_wh"] / out["discharge_capacity_ah"], np.nan)
    return out


def reference_capacity(discharge_ah: pd.Series, nominal_ah: float | None) -> float:
    """CONTRACTS reference capacity (Ah): ``nominal_ah`` when given, else the max of the first
    three cycles' discharge capacity (NaN-aware)."""
    if nominal_ah is not None and np.isfinite(nominal_ah) and nominal_ah > 0:
        return float(nominal_ah)
    head = discharge_ah.iloc[:3].to_numpy(dtype=float)
    return float(np.nanmax(head)) if np.isfinite(head).any() else float("nan")


def capacity_columns(df: pd.DataFrame, reference_ah: float,
                     active_mass_g: float | None) -> dict[str, np.ndarray]:
    """Capacity-derived columns of one cell's per-cycle table (rows in cycle order).

    Returns ``reference_capacity_ah``, ``retention``, ``coulombic_efficiency`` (discharge /
    charge), ``coulombic_inefficiency_per_hour`` ((1 − CE) / cycle duration in hours),
    ``energy_efficiency`` (discharge / charge energy), ``equivalent_full_cycles`` (cumulative
    discharge Ah / reference Ah) and, where the active mass is known, specific capacities in
    mAh/g.
    """
    n = len(df)
    nan = np.full(n, np.nan)
    q_dis = numeric_column(df, "discharge_capacity_ah")
    q_ch = numeric_column(df, "charge_capacity_ah")
    e_dis = numeric_column(df, "discharge_energy_wh")
    e_ch = numeric_column(df, "charge_energy_wh")
    dur_h = numeric_column(df, "cycle_duration_hour")
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(q_ch > 0, q_dis / q_ch, np.nan)
        out = {
            "reference_capacity_ah": np.full(n, reference_ah),
            "retention": q_dis / reference_ah if np.isfinite(reference_ah) else nan,
            "coulombic_efficiency": ce,
            "coulombic_inefficiency_per_hour": np.where(dur_h > 0, (1.0 - ce) / dur_h, np.nan),
            "energy_efficiency": np.where(e_ch > 0, e_dis / e_ch, np.nan),
        }
        if "equivalent_full_cycles" in df.columns and df["equivalent_full_cycles"].notna().any():
            out["equivalent_full_cycles"] = numeric_column(df, "equivalent_full_cycles")
        elif np.isfinite(reference_ah):
            out["equivalent_full_cycles"] = np.cumsum(np.nan_to_num(q_dis)) / reference_ah
        else:
            out["equivalent_full_cycles"] = nan
        if active_mass_g is not None and np.isfinite(active_mass_g) and active_mass_g > 0:
            out["discharge_capacity_mah_per_g"] = q_dis * 1000.0 / active_mass_g
            out["charge_capacity_mah_per_g"] = q_ch * 1000.0 / active_mass_g
        else:
            out["discharge_capacity_mah_per_g"] = nan
            out["charge_capacity_mah_per_g"] = nan
    return out
