"""Polarization: the gap between charge and discharge voltage, and how it grows.

From samples: end-of-charge / end-of-discharge voltage, the voltage at half of each half-cycle's
throughput (so ΔV is taken at matched mid-capacity), recorded internal resistance and
temperature per cycle. From any per-cycle table: ``polarization_volt`` (mean charge − mean
discharge voltage) and rolling trend columns over cycles and over hours.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from reference.features_v1.capacity import MIN_HALF_CYCLE_AH
from reference.features_v1.columns import numeric_column
from reference.features_v1.cycle_arrays import CycleColumns
from reference.features_v1.sample_frame import SampleArrays
from reference.features_v1.trend import rolling_slope


def _segment_mean(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    s = np.add.reduceat(np.where(ok, values, 0.0), starts)
    c = np.add.reduceat(ok.astype(np.float64), starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, s / c, np.nan)


def _last_voltage_where(mask: np.ndarray, arr: SampleArrays) -> np.ndarray:
    """Voltage of each segment's last row where ``mask`` holds (NaN if none)."""
    idx = np.flatnonzero(mask)
    k = np.searchsorted(idx, arr.ends, side="right") - 1
    last = idx[np.maximum(k, 0)] if idx.size else np.zeros(arr.n_segments, dtype=np.int64)
    found = (k >= 0) & (last >= arr.starts)
    return np.where(found, arr.voltage_v[last], np.nan)


def _voltage_at_half(flow: np.ndarray, arr: SampleArrays) -> np.ndarray:
    """Voltage where a cycle's cumulative ``flow`` (>= 0 per row) reaches half its total.

    The global running sum of a non-negative flow never decreases, so one ``searchsorted``
    finds, for every cycle at once, the first row at or past its half-way mark; the voltage
    is interpolated linearly between that row and the one before.
    """
    st = arr.starts
    cum = np.cumsum(flow)
    before = np.where(st > 0, cum[np.maximum(st - 1, 0)], 0.0)
    total = np.add.reduceat(flow, st)
    target = before + 0.5 * total
    j = np.clip(np.searchsorted(cum, target, side="left"), 0, arr.n_rows - 1)
    jp = np.maximum(j - 1, 0)
    c1 = cum[j]
    c0 = np.where(j > st, cum[jp], before)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(c1 > c0, (target - c0) / (c1 - c0), 1.0)
    v0 = np.where(j > st, arr.voltage_v[jp], arr.voltage_v[j])
    v = v0 + np.clip(w, 0.0, 1.0) * (arr.voltage_v[j] - v0)
    return np.where(total > MIN_HALF_CYCLE_AH, v, np.nan)


def voltage_per_cycle(arr: SampleArrays, flows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-cycle voltage descriptors from samples (V, Ω, °C).

    ``end_of_charge_voltage_volt`` / ``end_of_discharge_voltage_volt``: voltage of the last
    charging / discharging sample; ``mid_charge_voltage_volt`` / ``mid_discharge_voltage_volt``
    at half the cycle's charge / discharge capacity and their difference
    ``mid_capacity_polarization_volt``; ``internal_resistance_ohm`` and
    ``temperature_celsius``: means of the recorded values.
    """
    i = arr.current_a
    thr = arr.rest_threshold_a
    mid_c = _voltage_at_half(flows["charge_ah"], arr)
    mid_d = _voltage_at_half(flows["discharge_ah"], arr)
    out = {
        "end_of_charge_voltage_volt": _last_voltage_where(i > thr, arr),
        "end_of_discharge_voltage_volt": _last_voltage_where(i < -thr, arr),
        "mid_charge_voltage_volt": mid_c,
        "mid_discharge_voltage_volt": mid_d,
        "mid_capacity_polarization_volt": mid_c - mid_d,
    }
    for name, src in (("internal_resistance_ohm", "internal_resistance_ohm"),
                      ("temperature_celsius", "ambient_temperature_celsius")):
        if src in arr.extra:
            out[name] = _segment_mean(arr.extra[src], arr.starts)
    return out


def polarization_volt(df: pd.DataFrame | CycleColumns) -> np.ndarray:
    """``polarization_volt`` = mean charge − mean discharge voltage (V), per row."""
    return numeric_column(df, "mean_charge_voltage_volt") - numeric_column(
        df, "mean_discharge_voltage_volt")


def polarization_trend_columns(df: pd.DataFrame | CycleColumns) -> dict[str, np.ndarray]:
    """Rolling trends of one cell's per-cycle table (cycle order).

    ``polarization_slope_volt_per_cycle`` / ``…_per_hour`` and
    ``internal_resistance_slope_ohm_per_cycle`` / ``…_per_hour``: rolling OLS slopes over the
    last ``TREND_WINDOW`` cycles (causal), in V (Ω) per cycle and per hour.
    """
    pol = polarization_volt(df)
    cyc = numeric_column(df, "cycle_index")
    hours = numeric_column(df, "test_time_second") / 3600.0
    ir = numeric_column(df, "internal_resistance_ohm")
    return {
        "polarization_slope_volt_per_cycle": rolling_slope(cyc, pol),
        "polarization_slope_volt_per_hour": rolling_slope(hours, pol),
        "internal_resistance_slope_ohm_per_cycle": rolling_slope(cyc, ir),
        "internal_resistance_slope_ohm_per_hour": rolling_slope(hours, ir),
    }
