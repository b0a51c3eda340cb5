"""Capacity and energy per cycle from per-sample rows, and the capacity-derived columns.

Charge and discharge amounts come from the cycler's cumulative counters
(``charging_capacity_ah`` …) when present — they are what the cycler itself reports — and are
otherwise integrated from current (and voltage × current for energy) by the trapezoid rule.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from reference.features_v1.columns import has_values, numeric_column
from reference.features_v1.cycle_arrays import CycleColumns
from reference.features_v1.sample_frame import SampleArrays

#: A counter drop to at most this fraction of the previous value is read as a reset (per cycle
#: or per step); smaller drops are noise and add nothing.
COUNTER_RESET_FRACTION = 0.5
#: Smallest charge (Ah) for which a half-cycle's mean voltage is reported (1 nAh).
MIN_HALF_CYCLE_AH = 1e-9


def counter_increments(values: np.ndarray, cell_starts: np.ndarray) -> np.ndarray:
    """Per-row increase of a cumulative counter that may reset (per cycle or per step).

    Parameters
    ----------
    values : float [n] — cumulative counter (Ah or Wh); NaN gaps carry the last value.
    cell_starts : int [k] — each cell's first row, where the counter is read as starting from
        0 (BDF counters are cumulative within a cycle).

    Returns
    -------
    float [n] — increase since the previous row: the difference where the counter grew, the
    new value after a reset (drop to <= half) and on a cell's first row, 0 for small noisy
    drops.
    """
    v = values
    nan = np.isnan(v)
    if nan.any():  # carry the last recorded value over gaps (a NaN is not a reset)
        idx = np.where(nan, 0, np.arange(v.size))
        np.maximum.accumulate(idx, out=idx)
        v = np.where(np.isnan(v[idx]), 0.0, v[idx])
    inc = np.empty_like(v)
    inc[0] = 0.0
    np.subtract(v[1:], v[:-1], out=inc[1:])
    drops = np.flatnonzero(inc[1:] < 0.0) + 1
    if drops.size:
        now, before = v[drops], v[drops - 1]
        inc[drops] = np.where(now <= COUNTER_RESET_FRACTION * before, now, 0.0)
    inc[cell_starts] = np.maximum(v[cell_starts], 0.0)
    return inc


def _signed_trapezoid(values: np.ndarray, arr: SampleArrays) -> tuple[np.ndarray, np.ndarray]:
    """Per-row trapezoid area of ``values`` over the interval ending at that row (unit·h),
    split into its positive part and the magnitude of its negative part."""
    area = np.empty_like(values)
    area[0] = 0.0
    np.add(values[1:], values[:-1], out=area[1:])
    area *= arr.dt_s
    area *= 0.5 / 3600.0
    pos = np.maximum(area, 0.0)
    neg = np.subtract(pos, area, out=area)
    return pos, neg


def charge_flows(arr: SampleArrays) -> dict[str, np.ndarray]:
    """Per-row charge/discharge capacity (Ah) and energy (Wh) increments, all >= 0.

    Counters are used where the input has them; otherwise current (and voltage × current) is
    integrated by the trapezoid rule and each interval's area is charge when positive,
    discharge when negative (intervals across a step change share a time stamp, so dt = 0).
    These per-row increments feed the per-cycle sums and the Q(V) curves.
    """
    flows: dict[str, np.ndarray] = {}
    pairs = ((("charge_ah", "charging_capacity_ah"), ("discharge_ah", "discharging_capacity_ah"),
              None),
             (("charge_wh", "charging_energy_wh"), ("discharge_wh", "discharging_energy_wh"),
              "power"))
    for (ch_key, ch_counter), (dis_key, dis_counter), what in pairs:
        have_ch = ch_counter in arr.extra and np.isfinite(arr.extra[ch_counter]).any()
        have_dis = dis_counter in arr.extra and np.isfinite(arr.extra[dis_counter]).any()
        if not (have_ch and have_dis):
            signal = arr.current_a * arr.voltage_v if what == "power" else arr.current_a
            pos, neg = _signed_trapezoid(signal, arr)
            flows[ch_key], flows[dis_key] = pos, neg
        if have_ch:
            flows[ch_key] = counter_increments(arr.extra[ch_counter], arr.cell_starts)
        if have_dis:
            flows[dis_key] = counter_increments(arr.extra[dis_counter], arr.cell_starts)
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
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for kind in ("charge", "discharge"):
            q = out[f"{kind}_capacity_ah"]
            # Below MIN_HALF_CYCLE_AH a cycle did not really charge/discharge (rest noise).
            out[f"mean_{kind}_voltage_volt"] = np.where(
                q > MIN_HALF_CYCLE_AH, out[f"{kind}_energy_wh"] / q, np.nan)
    return out


def reference_capacity(discharge_ah: np.ndarray | pd.Series, nominal_ah: float | None) -> float:
    """CONTRACTS reference capacity (Ah): ``nominal_ah`` when given, else the max of the first
    three cycles' discharge capacity (NaN-aware)."""
    if nominal_ah is not None and np.isfinite(nominal_ah) and nominal_ah > 0:
        return float(nominal_ah)
    head = np.asarray(discharge_ah, dtype=float)[:3]
    return float(np.nanmax(head)) if np.isfinite(head).any() else float("nan")


def capacity_columns(df: pd.DataFrame | CycleColumns, reference_ah: float, active_mass_g: float | None,
                     duration_hour: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Capacity-derived columns of one cell's per-cycle table (rows in cycle order).

    Returns ``reference_capacity_ah``, ``retention``, ``coulombic_efficiency`` (discharge /
    charge), ``coulombic_inefficiency_per_hour`` ((1 − CE) / cycle duration in hours),
    ``energy_efficiency`` (discharge / charge energy), ``equivalent_full_cycles`` (cumulative
    discharge Ah / reference Ah) and, where the active mass is known, specific capacities in
    mAh/g. ``duration_hour`` defaults to the table's ``cycle_duration_hour``.
    """
    n = len(df)
    nan = np.full(n, np.nan)
    q_dis = numeric_column(df, "discharge_capacity_ah")
    q_ch = numeric_column(df, "charge_capacity_ah")
    e_dis = numeric_column(df, "discharge_energy_wh")
    e_ch = numeric_column(df, "charge_energy_wh")
    dur_h = (numeric_column(df, "cycle_duration_hour") if duration_hour is None
             else np.asarray(duration_hour, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(q_ch > 0, q_dis / q_ch, np.nan)
        out = {
            "reference_capacity_ah": np.full(n, reference_ah),
            "retention": q_dis / reference_ah if np.isfinite(reference_ah) else nan,
            "coulombic_efficiency": ce,
            "coulombic_inefficiency_per_hour": np.where(dur_h > 0, (1.0 - ce) / dur_h, np.nan),
            "energy_efficiency": np.where(e_ch > 0, e_dis / e_ch, np.nan),
        }
        if has_values(df, "equivalent_full_cycles"):
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
