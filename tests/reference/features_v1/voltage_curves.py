"""Discharge voltage curves: Q(V) on a fixed grid, ΔQ(V) summaries (Severson 2019), dQ/dV peaks.

Q(V) is the discharge capacity delivered by the time the voltage first falls to V. Voltage
under load is not monotonic (noise, relaxation, pulses), so the curve uses the running
minimum of the voltage: Q(V) is then a proper non-decreasing function as V falls. Grid
points outside a cycle's range take its end values (0 above, the total below).

ΔQ(V) = Q_cycle(V) − Q_ref(V) with the reference cycle 10 when the cell has it, else the
earliest cycle >= 2 with a discharge (else the earliest); rows before the reference stay NaN
so the descriptors are causal.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from reference.features_v1.sample_frame import SampleArrays

GRID_POINTS = 1000
REFERENCE_CYCLE = 10
#: Gaussian smoothing of dQ/dV, as a fraction of the grid length.
DQDV_SMOOTHING_FRACTION = 0.01
#: A second dQ/dV peak must stand out by this fraction of the main peak's height.
SECOND_PEAK_PROMINENCE = 0.05


def delta_q_summary(q_reference_ah: np.ndarray, q_cycle_ah: np.ndarray) -> dict[str, float]:
    """Severson's four ΔQ(V) summaries from two Q(V) arrays on the same voltage grid (Ah).

    Parameters
    ----------
    q_reference_ah, q_cycle_ah : float [g] — discharge capacity on a common voltage grid
        (e.g. the 1000-point qdlin grid; reference = cycle 10, cycle = e.g. 100).

    Returns
    -------
    ``delta_q_v_variance_ah2`` (population variance, Ah²), ``delta_q_v_minimum_ah``,
    ``delta_q_v_mean_ah`` (Ah) and ``delta_q_v_skewness`` (unitless; NaN if ΔQ is constant)
    of ΔQ = q_cycle − q_reference, ignoring grid points where either is NaN.

    Examples
    --------
    >>> d = delta_q_summary(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.5, 2.0]))
    >>> round(d["delta_q_v_mean_ah"], 3), d["delta_q_v_minimum_ah"]
    (-0.5, -1.0)
    """
    a = np.asarray(q_reference_ah, dtype=np.float64)
    b = np.asarray(q_cycle_ah, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Q(V) arrays differ in shape: {a.shape} vs {b.shape}")
    dq = b - a
    dq = dq[np.isfinite(dq)]
    if dq.size == 0:
        return {"delta_q_v_variance_ah2": np.nan, "delta_q_v_minimum_ah": np.nan,
                "delta_q_v_mean_ah": np.nan, "delta_q_v_skewness": np.nan}
    mean = float(dq.mean())
    dev = dq - mean
    var = float(np.mean(dev * dev))
    spread = float(dq.max() - dq.min())
    # Fisher–Pearson skewness g1 = m3 / m2^1.5 (scipy.stats.skew's default), written out:
    # scipy's wrapper costs ~1 ms per call, more than the rest of a cycle's curve work.
    skew = (float(np.mean(dev * dev * dev)) / var ** 1.5
            if dq.size > 2 and spread > 1e-12 * max(float(np.abs(dq).max()), 1e-300)
            else np.nan)
    return {"delta_q_v_variance_ah2": var, "delta_q_v_minimum_ah": float(dq.min()),
            "delta_q_v_mean_ah": mean, "delta_q_v_skewness": skew}


def discharge_q_of_v(q_cumulative_ah: np.ndarray, voltage_v: np.ndarray,
                     grid_v: np.ndarray) -> np.ndarray:
    """Q(V) of one discharge on ``grid_v`` (any order) from samples in time order.

    Parameters
    ----------
    q_cumulative_ah : float [k] — discharge capacity delivered so far at each sample (Ah).
    voltage_v : float [k] — terminal voltage at each sample (V), any noise allowed.
    grid_v : float [g] — voltages to evaluate at (V).
    """
    if q_cumulative_ah.size == 0:
        return np.full(grid_v.shape, np.nan)
    env = np.minimum.accumulate(voltage_v)
    return np.interp(grid_v, env[::-1], q_cumulative_ah[::-1])


def dqdv_peaks(grid_v: np.ndarray, q_ah: np.ndarray,
               spacing_v: float | None = None) -> tuple[float, float, float, float]:
    """The two largest peaks of a discharge's smoothed −dQ/dV.

    Parameters
    ----------
    grid_v : float [g] voltage grid (V); q_ah : float [g] Q(V) on it (Ah);
    spacing_v : the grid step when uniform (faster); otherwise ``grid_v`` may be uneven.

    Returns
    -------
    (voltage V, height Ah/V) of the largest peak, then of the second-largest local maximum
    with a prominence of at least ``SECOND_PEAK_PROMINENCE`` × the largest height (NaN, NaN
    if none).
    """
    if not np.isfinite(q_ah).all() or grid_v.size < 5:
        return np.nan, np.nan, np.nan, np.nan
    dqdv = -np.gradient(q_ah, spacing_v if spacing_v is not None else grid_v)
    sigma = max(1.0, DQDV_SMOOTHING_FRACTION * grid_v.size)
    smooth = gaussian_filter1d(dqdv, sigma, mode="nearest")
    k = int(np.argmax(smooth))
    top = float(smooth[k])
    peaks, _ = find_peaks(smooth, prominence=SECOND_PEAK_PROMINENCE * max(abs(top), 1e-300))
    peaks = peaks[peaks != k]
    if peaks.size == 0:
        return float(grid_v[k]), top, np.nan, np.nan
    k2 = int(peaks[np.argmax(smooth[peaks])])
    return float(grid_v[k]), top, float(grid_v[k2]), float(smooth[k2])


def dqdv_peak(grid_v: np.ndarray, q_ah: np.ndarray,
              spacing_v: float | None = None) -> tuple[float, float]:
    """Voltage (V) and height (Ah/V) of the largest smoothed −dQ/dV peak of a discharge."""
    return dqdv_peaks(grid_v, q_ah, spacing_v)[:2]


def _reference_position(cycles: np.ndarray, has_discharge: np.ndarray) -> int | None:
    cand = np.flatnonzero(has_discharge)
    if cand.size == 0:
        return None
    at10 = cand[cycles[cand] == REFERENCE_CYCLE]
    if at10.size:
        return int(at10[0])
    ge2 = cand[cycles[cand] >= 2]
    return int(ge2[0]) if ge2.size else int(cand[0])


def curve_descriptors(arr: SampleArrays, flows: dict[str, np.ndarray],
                      grid_points: int = GRID_POINTS) -> pd.DataFrame:
    """ΔQ(V) summaries and dQ/dV peak per (cell, cycle) segment, in segment order.

    The grid spans the reference cycle's discharge voltage range (running-minimum envelope),
    ``grid_points`` points. Columns: ``delta_q_v_variance_ah2``, ``delta_q_v_minimum_ah``,
    ``delta_q_v_mean_ah``, ``delta_q_v_skewness``, ``delta_q_v_reference_cycle``,
    ``dqdv_peak_voltage_volt``, ``dqdv_peak_ah_per_volt`` and the second peak's
    ``dqdv_peak2_voltage_volt``, ``dqdv_peak2_ah_per_volt``.
    """
    names = ["delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
             "delta_q_v_skewness", "delta_q_v_reference_cycle", "dqdv_peak_voltage_volt",
             "dqdv_peak_ah_per_volt", "dqdv_peak2_voltage_volt", "dqdv_peak2_ah_per_volt"]
    out = {k: np.full(arr.n_segments, np.nan) for k in names}
    ends = arr.ends + 1
    dis = flows["discharge_ah"]
    dis_mask = dis > 0
    seg_total = np.add.reduceat(dis, arr.starts)
    cell_seg_starts = np.flatnonzero(np.diff(arr.seg_cell, prepend=-1) != 0)
    cell_seg_ends = np.append(cell_seg_starts[1:], arr.n_segments)
    for s0, s1 in zip(cell_seg_starts, cell_seg_ends):
        segs = np.arange(s0, s1)
        has = seg_total[segs] > 0
        ref_pos = _reference_position(arr.seg_cycle[segs], has)
        if ref_pos is None:
            continue

        def curve_points(seg: int) -> tuple[np.ndarray, np.ndarray]:
            sl = slice(arr.starts[seg], ends[seg])
            m = dis_mask[sl]
            return np.cumsum(dis[sl][m]), arr.voltage_v[sl][m]

        q_ref_pts, v_ref_pts = curve_points(segs[ref_pos])
        env = np.minimum.accumulate(v_ref_pts)
        if env.size < 2 or env[0] - env[-1] <= 0:
            continue
        grid, step = np.linspace(env[-1], env[0], grid_points, retstep=True)
        q_ref = discharge_q_of_v(q_ref_pts, v_ref_pts, grid)
        for k, seg in enumerate(segs):
            if not has[k]:
                continue
            q_pts, v_pts = curve_points(seg)
            q = discharge_q_of_v(q_pts, v_pts, grid)
            (out["dqdv_peak_voltage_volt"][seg], out["dqdv_peak_ah_per_volt"][seg],
             out["dqdv_peak2_voltage_volt"][seg], out["dqdv_peak2_ah_per_volt"][seg]) = dqdv_peaks(
                grid, q, spacing_v=step)
            if k < ref_pos:
                continue
            for name, val in delta_q_summary(q_ref, q).items():
                out[name][seg] = val
            out["delta_q_v_reference_cycle"][seg] = arr.seg_cycle[segs[ref_pos]]
    return pd.DataFrame(out)
