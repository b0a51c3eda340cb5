"""Raw per-sample time series of a synthetic cell (what a cycler export holds), cycle by cycle.

``fadecast follow`` tests, ``make demo`` and the follow-latency benchmark need an export that
GROWS while it is read; :func:`sample_rows` turns each row of a per-cycle table
(:func:`ml.synthetic.make_cell`) into CC charge → rest → CC discharge → rest samples whose
per-cycle reduction (``ml.features``) gives back the table's capacities (Ah), end times (s)
and C-rate. Voltages are a plain linear-in-state-of-charge curve shifted by half the cell's
polarization (V) — enough for the features the model reads, not a physical model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "csv_header", "csv_rows", "sample_rows"]

COLUMNS = ("test_time_second", "cycle_count", "step_count", "current_ampere", "voltage_volt",
           "charging_capacity_ah", "discharging_capacity_ah")


def sample_rows(cycles: pd.DataFrame, nominal_capacity_ah: float, *,
                points_per_step: int = 6) -> pd.DataFrame:
    """Samples of every cycle in ``cycles`` (``cycle_index``, ``test_time_second`` at the end
    of the cycle, ``cycle_duration_second``, ``c_rate``, ``charge_capacity_ah``,
    ``discharge_capacity_ah``; optional ``mean_charge_voltage_volt`` /
    ``mean_discharge_voltage_volt``)."""
    frames = [_cycle(row, nominal_capacity_ah, points_per_step)
              for row in cycles.to_dict("records")]
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def _cycle(row: dict, q_nom: float, k: int) -> pd.DataFrame:
    end = float(row["test_time_second"])
    duration = float(row["cycle_duration_second"])
    start = end - duration
    current = float(row["c_rate"]) * q_nom
    q_ch, q_dis = float(row["charge_capacity_ah"]), float(row["discharge_capacity_ah"])
    t_ch, t_dis = 3600.0 * q_ch / current, 3600.0 * q_dis / current
    rest = max(duration - t_ch - t_dis, 2.0)
    scale = min(1.0, (duration - 2.0) / (t_ch + t_dis)) if rest == 2.0 else 1.0
    t_ch, t_dis = t_ch * scale, t_dis * scale
    pol = 0.0
    v_ch, v_dis = row.get("mean_charge_voltage_volt"), row.get("mean_discharge_voltage_volt")
    if v_ch is not None and v_dis is not None and np.isfinite(v_ch) and np.isfinite(v_dis):
        pol = float(v_ch - v_dis)
    f = np.arange(1, k + 1) / k
    t1 = start + t_ch * f
    t2 = start + t_ch + 0.5 * rest * f
    t3 = start + t_ch + 0.5 * rest + t_dis * f
    t4 = start + t_ch + 0.5 * rest + t_dis + (end - (start + t_ch + 0.5 * rest + t_dis)) * f
    n = k
    cyc = int(row["cycle_index"])
    return pd.DataFrame({
        "test_time_second": np.concatenate([t1, t2, t3, t4]),
        "cycle_count": np.full(4 * n, cyc, dtype=np.int64),
        "step_count": np.repeat(np.arange(1, 5, dtype=np.int64), n),
        "current_ampere": np.concatenate([np.full(n, current), np.zeros(n),
                                          np.full(n, -current), np.zeros(n)]),
        "voltage_volt": np.concatenate([3.3 + 0.8 * f + pol / 2, np.full(n, 4.05),
                                        4.0 - 0.8 * f - pol / 2, np.full(n, 3.25)]),
        "charging_capacity_ah": np.concatenate([q_ch * f, np.full(3 * n, q_ch)]),
        "discharging_capacity_ah": np.concatenate([np.zeros(2 * n), q_dis * f,
                                                   np.full(n, q_dis)]),
    })


def csv_header() -> bytes:
    """The export's header line."""
    return (",".join(COLUMNS) + "\n").encode()


def csv_rows(samples: pd.DataFrame) -> bytes:
    """Rows as CSV text (no header), full precision."""
    return samples.to_csv(header=False, index=False, float_format="%.9g").encode()
