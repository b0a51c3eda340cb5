"""Time versus cycle: when each cycle starts and ends, how long it rests, how fast it runs.

Per-sample kernels give seconds per cycle; :func:`timing_columns` turns any per-cycle table
(built from samples or brought by a user) into the ``_hour`` columns and C-rates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features.columns import numeric_column
from ml.features.cycle_arrays import CycleColumns
from ml.features.jit import kernel
from ml.features.sample_frame import SampleArrays

#: Default "high voltage" threshold as a fraction of the cell's top of charge so far — the
#: highest voltage of a charging sample up to the end of the cycle (e.g. 0.9 × 4.2 V = 3.78 V);
#: causal, so a cycle's value never depends on later cycles; none (0 s) before the cell first
#: charges. A cell's ``high_voltage_threshold_volt`` metadata overrides it.
HIGH_VOLTAGE_FRACTION = 0.9


def timing_per_cycle(arr: SampleArrays,
                     high_voltage_volt: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-cycle timing from samples (seconds).

    Parameters
    ----------
    arr : sorted samples.
    high_voltage_volt : fixed threshold per cell (V), indexed by cell code; NaN (or None for
        all cells) means the causal default ``HIGH_VOLTAGE_FRACTION`` × the cell's top of
        charge up to the end of each cycle (``SampleArrays.seg_voltage_max_v``).

    Rest and flow directions use ``arr.rest_threshold_a`` (causal too: a fraction of the
    largest |I| up to the end of each cycle; see :class:`SampleArrays`).

    Returns
    -------
    ``cycle_start_second`` (first sample), ``test_time_second`` (last sample = end of cycle),
    ``cycle_duration_second`` (end − previous cycle's end; end − start for a cell's first
    cycle), ``rest_second`` (time at rest between the cycle's own samples),
    ``rest_before_second`` (gap since the previous cycle's last sample),
    ``charge_duration_second`` / ``discharge_duration_second`` (time with current flowing
    that way), ``high_voltage_second`` (time with voltage >= the threshold).
    """
    st = arr.starts
    ends = arr.ends
    n = arr.n_rows
    seg_thr = np.broadcast_to(np.asarray(arr.seg_rest_threshold_a, dtype=np.float64),
                              st.shape)
    seg_hv2 = np.broadcast_to(2.0 * np.asarray(
        arr.seg_high_voltage_v(HIGH_VOLTAGE_FRACTION, high_voltage_volt), dtype=np.float64),
        st.shape)
    rest_dt, ch_dt, dis_dt, hv_dt = (np.empty(n) for _ in range(4))
    run = _interval_times_kernel if n >= 64 else _interval_times  # small: not worth compiling
    run(np.ascontiguousarray(arr.current_a, dtype=np.float64),
        np.ascontiguousarray(arr.voltage_v, dtype=np.float64),
        np.ascontiguousarray(arr.dt_s, dtype=np.float64), np.ascontiguousarray(st),
        np.ascontiguousarray(seg_thr), np.ascontiguousarray(seg_hv2),
        rest_dt, ch_dt, dis_dt, hv_dt)

    start_s = arr.time_s[st]
    end_s = arr.time_s[ends]
    prev_end = np.empty_like(end_s)
    prev_end[0] = arr.time_s[st[0] - 1] if st[0] > 0 else start_s[0]
    prev_end[1:] = end_s[:-1]
    first_seg = arr.first_of_cell[st]
    prev_end[first_seg] = start_s[first_seg]
    return {
        "cycle_start_second": start_s,
        "test_time_second": end_s,
        "cycle_duration_second": end_s - prev_end,
        "rest_second": np.add.reduceat(rest_dt, st),
        "rest_before_second": start_s - prev_end,
        "charge_duration_second": np.add.reduceat(ch_dt, st),
        "discharge_duration_second": np.add.reduceat(dis_dt, st),
        "high_voltage_second": np.add.reduceat(hv_dt, st),
    }


def _interval_times(i, v, dt, starts, seg_thr, seg_hv2, rest_dt, ch_dt, dis_dt, hv_dt):
    """Per-row seconds of the interval ending at each row spent at rest, charging,
    discharging and at high voltage (written into the four output arrays; 0 before the first
    segment). Interval k joins rows k−1 and k: at rest when both |I| ≤ the segment's rest
    threshold; charging / discharging when its mean current (I[k] + I[k−1]) · 0.5 is above it /
    below its negative; at high voltage when V[k] + V[k−1] ≥ twice the segment's level (row 0:
    2·V[0]). The interval ending at a segment's first row lies between cycles: 0 for rest and
    flow, counted for high voltage (as ever). One pass, each value from the same IEEE
    operations as the former whole-array numpy form (``dt · (condition)``), so the sums are
    bit-identical."""
    n = i.shape[0]
    m = starts.shape[0]
    for k in range(starts[0] if m else n):
        rest_dt[k] = 0.0
        ch_dt[k] = 0.0
        dis_dt[k] = 0.0
        hv_dt[k] = 0.0
    for s in range(m):
        a = starts[s]
        b = starts[s + 1] if s + 1 < m else n
        thr = seg_thr[s]
        hv2 = seg_hv2[s]
        rest_dt[a] = 0.0
        ch_dt[a] = 0.0
        dis_dt[a] = 0.0
        v_sum = 2.0 * v[0] if a == 0 else v[a] + v[a - 1]
        hv_dt[a] = dt[a] * (1.0 if v_sum >= hv2 else 0.0)
        for k in range(a + 1, b):
            both = abs(i[k]) <= thr and abs(i[k - 1]) <= thr
            rest_dt[k] = dt[k] * (1.0 if both else 0.0)
            mean = (i[k] + i[k - 1]) * 0.5
            ch_dt[k] = dt[k] * (1.0 if mean > thr else 0.0)
            dis_dt[k] = dt[k] * (1.0 if -mean > thr else 0.0)
            hv_dt[k] = dt[k] * (1.0 if v[k] + v[k - 1] >= hv2 else 0.0)


_interval_times_kernel = kernel(_interval_times)


def cycle_clock_hours(elapsed_hour: np.ndarray, cycle_index: np.ndarray) -> np.ndarray:
    """Hours of the test clock per cycle at each row (rows in cycle order): the time since the
    previous row over the cycles since it — a history that records every 10th cycle gives each
    cycle a tenth of the gap (the planned clock, not the ``cycle_duration_hour`` feature, which
    keeps the whole gap: the network reads it so, see :func:`timing_columns`). The first row:
    its end time when the table starts at cycle 0 or 1 (it started with the test), else NaN."""
    t = np.asarray(elapsed_hour, dtype=np.float64)
    n = np.asarray(cycle_index, dtype=np.float64)
    out = np.full(len(t), np.nan)
    if len(t) > 1:
        out[1:] = np.diff(t) / np.maximum(np.diff(n), 1.0)
    if len(t) and n[0] <= 1 and t[0] > 0:
        out[0] = t[0]
    return out


#: observed cycles whose median duration is the default planned pace (CONTRACTS)
PACE_CYCLES = 10


def default_hours_per_cycle(elapsed_hour: np.ndarray, cycle_index: np.ndarray) -> float:
    """The CONTRACTS default pace of future cycles (h per cycle): the median duration of the
    last :data:`PACE_CYCLES` observed cycles on the test clock (:func:`cycle_clock_hours`:
    rests included, per cycle where rows skip cycles), NaN when none is known. The one rule
    behind the served forecast, the training's planned queries and the evaluation's planned
    clock."""
    dur = cycle_clock_hours(elapsed_hour, cycle_index)[-PACE_CYCLES:]
    dur = dur[np.isfinite(dur)]
    return float(np.median(dur)) if dur.size else float("nan")


def timing_columns(df: pd.DataFrame | CycleColumns, reference_ah: float,
                   nominal_ah: float | None) -> dict[str, np.ndarray]:
    """Hour columns and C-rates of one cell's per-cycle table (rows in cycle order).

    ``elapsed_hour`` = test_time_second / 3600 (end of cycle); ``cycle_start_hour``;
    ``cycle_duration_hour`` (given, else the time since the previous ROW — a gap of k cycles
    counts whole, as the network was trained and evaluated: on geslin2024's checkpoints
    every ~27 cycles, per-cycle values made its forecasts much worse (session 5's note);
    the first row's end time when the table starts at cycle 0 or 1, else NaN; the planned
    clock is :func:`default_hours_per_cycle`); ``rest_hour``;
    ``rest_before_hour``; ``high_voltage_hour`` and its cumulative sum
    ``cumulative_high_voltage_hour``; ``charge_c_rate`` / ``discharge_c_rate`` = mean current
    during charge / discharge over the C-rate capacity (``nominal_ah`` if known, else the
    reference capacity), in 1/h; ``c_rate`` as given, else the discharge C-rate.
    """
    n = len(df)
    nan = np.full(n, np.nan)
    t = numeric_column(df, "test_time_second")
    out: dict[str, np.ndarray] = {"elapsed_hour": t / 3600.0}
    dur = numeric_column(df, "cycle_duration_second")
    if not np.isfinite(dur).any():
        dur = nan.copy()
        if n > 1:
            dur[1:] = np.diff(t)
        # A table that starts at cycle 0 or 1 starts with the test: its first cycle lasted t.
        if n and numeric_column(df, "cycle_index")[0] <= 1 and t[0] > 0:
            dur[0] = t[0]
    out["cycle_duration_hour"] = dur / 3600.0
    start = numeric_column(df, "cycle_start_second")
    out["cycle_start_hour"] = np.where(np.isfinite(start), start, t - dur) / 3600.0
    out["rest_hour"] = numeric_column(df, "rest_second") / 3600.0
    out["rest_before_hour"] = numeric_column(df, "rest_before_second") / 3600.0
    hv = numeric_column(df, "high_voltage_second") / 3600.0
    out["high_voltage_hour"] = hv
    out["cumulative_high_voltage_hour"] = (np.cumsum(np.nan_to_num(hv)) if np.isfinite(hv).any()
                                           else nan)
    cap = nominal_ah if nominal_ah is not None and np.isfinite(nominal_ah) else reference_ah
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for kind in ("charge", "discharge"):
            q = numeric_column(df, f"{kind}_capacity_ah")
            h = numeric_column(df, f"{kind}_duration_second") / 3600.0
            rate = np.where(h > 0, q / h / cap, np.nan)
            out[f"{kind}_c_rate"] = np.where(np.isfinite(rate), rate, np.nan)
    given = numeric_column(df, "c_rate")
    out["c_rate"] = np.where(np.isfinite(given), given, out["discharge_c_rate"])
    return out
