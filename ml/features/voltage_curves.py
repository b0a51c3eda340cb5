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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.features.jit import kernel
from ml.features.sample_frame import SampleArrays

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
    from scipy.ndimage import gaussian_filter1d  # lazy: scipy.signal/ndimage cost ~1 s of
    from scipy.signal import find_peaks  # import on a CLI cold start that never needs them

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


@kernel
def _q_of_v_rows(dis, voltage, starts, ends, grid, out):  # pragma: no cover
    """Q(V) on ``grid`` of the segments [starts[r], ends[r]) into ``out[r]``: the running sum
    of the positive discharge increments, interpolated against the running minimum of their
    voltages — :func:`discharge_q_of_v` over ``curve_points`` for every row at once
    (sequential cumsum; numba's ``np.interp`` is numpy's algorithm, ties included)."""
    for r in range(starts.shape[0]):
        a, b = starts[r], ends[r]
        k = 0
        for i in range(a, b):
            if dis[i] > 0:
                k += 1
        if k == 0:
            out[r, :] = np.nan
            continue
        q = np.empty(k)
        env = np.empty(k)
        k = 0
        for i in range(a, b):
            if dis[i] > 0:
                if k == 0:
                    q[0] = dis[i]
                    env[0] = voltage[i]
                else:
                    q[k] = q[k - 1] + dis[i]
                    env[k] = voltage[i] if voltage[i] < env[k - 1] else env[k - 1]
                k += 1
        out[r, :] = np.interp(grid, env[::-1].copy(), q[::-1].copy())


@kernel
def _second_peaks(smooth, first, threshold, out):  # pragma: no cover
    """Per row of ``smooth``: the index of the highest local maximum other than ``first[r]``
    whose prominence is >= ``threshold[r]`` (-1 if none) — scipy's ``find_peaks`` with a
    ``prominence`` bound (plateau midpoints, bases searched to the first higher sample)."""
    n = smooth.shape[1]
    for r in range(smooth.shape[0]):
        x = smooth[r]
        best = -1
        i = 1
        while i < n - 1:
            if x[i - 1] < x[i]:
                ahead = i + 1
                while ahead < n - 1 and x[ahead] == x[i]:
                    ahead += 1
                if x[ahead] < x[i]:
                    peak = (i + ahead - 1) // 2
                    top = x[peak]
                    left = top
                    j = peak
                    while j >= 0 and x[j] <= top:
                        if x[j] < left:
                            left = x[j]
                        j -= 1
                    right = top
                    j = peak
                    while j <= n - 1 and x[j] <= top:
                        if x[j] < right:
                            right = x[j]
                        j += 1
                    prominence = top - max(left, right)
                    if threshold[r] <= prominence and peak != first[r]:
                        if best < 0 or x[peak] > x[best]:
                            best = peak
                    i = ahead
            i += 1
        out[r] = best


#: Truncation of the Gaussian kernel in standard deviations (scipy's default).
GAUSSIAN_TRUNCATE = 4.0


def gaussian_weights(sigma: float) -> np.ndarray:
    """The 1-D Gaussian kernel ``gaussian_filter1d(…, sigma)`` correlates with (radius
    ``int(4 σ + 0.5)``), computed the way scipy computes it."""
    radius = int(GAUSSIAN_TRUNCATE * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    return (phi / phi.sum())[::-1]


@kernel
def _smooth_rows(values, weights, out):  # pragma: no cover
    """``gaussian_filter1d(values, σ, mode="nearest", axis=-1)`` for a symmetric kernel
    ``weights`` [2r+1]: scipy's symmetric correlation loop (centre term, then the pairs from the
    outermost in), so each output sees the same operations; the loop over outputs is the inner
    one, which lets the compiler use SIMD lanes without reordering any sum."""
    n = values.shape[1]
    r = weights.shape[0] // 2
    ext = np.empty(n + 2 * r)
    acc = np.empty(n)
    for row in range(values.shape[0]):
        x = values[row]
        for i in range(r):
            ext[i] = x[0]
            ext[r + n + i] = x[n - 1]
        ext[r:r + n] = x
        o = acc
        c = ext[r:r + n]
        w0 = weights[r]
        for i in range(n):
            o[i] = c[i] * w0
        for j in range(-r, 0):
            w = weights[r + j]
            lo = ext[r + j:r + j + n]
            hi = ext[r - j:r - j + n]
            for i in range(n):
                o[i] = o[i] + (lo[i] + hi[i]) * w
        out[row, :] = o


def _peaks_of_rows(grid: np.ndarray, q: np.ndarray, step: float) -> np.ndarray:
    """:func:`dqdv_peaks` of every row of ``q`` (Q(V) curves on one uniform ``grid``), with
    the same numpy/scipy operations along the last axis → float [rows, 4]."""
    out = np.full((q.shape[0], 4), np.nan)
    ok = np.isfinite(q).all(axis=1)
    if grid.size < 5 or not ok.any():
        return out
    rows = np.flatnonzero(ok)
    dqdv = -np.gradient(q[rows], step, axis=-1)
    sigma = max(1.0, DQDV_SMOOTHING_FRACTION * grid.size)
    weights = gaussian_weights(sigma)
    if (np.abs(weights - weights[::-1]) <= np.finfo(float).eps).all():
        smooth = np.empty_like(dqdv)
        _smooth_rows(dqdv, weights, smooth)
    else:  # pragma: no cover - a Gaussian kernel is symmetric
        from scipy.ndimage import gaussian_filter1d

        smooth = gaussian_filter1d(dqdv, sigma, mode="nearest", axis=-1)
    k = np.argmax(smooth, axis=1)
    top = smooth[np.arange(rows.size), k]
    k2 = np.empty(rows.size, dtype=np.int64)
    _second_peaks(smooth, k, SECOND_PEAK_PROMINENCE * np.maximum(np.abs(top), 1e-300), k2)
    found = k2 >= 0
    k2c = np.maximum(k2, 0)
    out[rows, 0] = grid[k]
    out[rows, 1] = top
    out[rows, 2] = np.where(found, grid[k2c], np.nan)
    out[rows, 3] = np.where(found, smooth[np.arange(rows.size), k2c], np.nan)
    return out


@kernel
def _pow_1_5(values, out):  # pragma: no cover
    """``v ** 1.5`` by libm ``pow``, as Python's float power computes it."""
    for i in range(values.shape[0]):
        out[i] = values[i] ** 1.5


def _summaries_of_rows(q_ref: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`delta_q_summary` of every row of ``q`` against ``q_ref``, row-wise numpy
    reductions (the same pairwise sums as the 1-D calls); rows with a non-finite point go
    through :func:`delta_q_summary` itself."""
    dq = q - q_ref[None, :]
    n = dq.shape[1]
    finite = np.isfinite(dq).all(axis=1)
    mean = dq.mean(axis=1)
    dev = dq - mean[:, None]
    var = np.mean(dev * dev, axis=1)
    lo, hi = dq.min(axis=1), dq.max(axis=1)
    spread = hi - lo
    var15 = np.empty_like(var)
    _pow_1_5(var, var15)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.mean(dev * dev * dev, axis=1) / var15
    skewed = (n > 2) & (spread > 1e-12 * np.maximum(np.abs(dq).max(axis=1), 1e-300))
    out = {"delta_q_v_variance_ah2": var, "delta_q_v_minimum_ah": lo, "delta_q_v_mean_ah": mean,
           "delta_q_v_skewness": np.where(skewed, skew, np.nan)}
    for r in np.flatnonzero(~finite):  # rare: a curve with a non-finite point
        for name, val in delta_q_summary(q_ref, q[r]).items():
            out[name][r] = val
    return out


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
    dis = flows["discharge_ah"]
    seg_total = np.add.reduceat(dis, arr.starts)
    cell_seg_starts = np.flatnonzero(np.diff(arr.seg_cell, prepend=-1) != 0)
    cell_seg_ends = np.append(cell_seg_starts[1:], arr.n_segments)
    for s0, s1 in zip(cell_seg_starts, cell_seg_ends):
        segs = np.arange(s0, s1)
        has = seg_total[segs] > 0
        ref = reference_curve(arr, dis, segs, has, grid_points)
        if ref is None:
            continue
        curve_rows(arr, dis, segs[has], arr.seg_cycle[segs[has]], ref, out)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class ReferenceCurve:
    """A cell's ΔQ(V) reference: its cycle number and Q(V) on the voltage ``grid`` (uniform,
    spacing ``step``) that every cycle of the cell is evaluated on."""

    cycle: int
    grid: np.ndarray
    step: float
    q: np.ndarray


def reference_curve(arr: SampleArrays, dis: np.ndarray, segs: np.ndarray, has: np.ndarray,
                    grid_points: int = GRID_POINTS) -> ReferenceCurve | None:
    """The reference cycle of one cell (segments ``segs`` of ``arr``; ``has`` = segment
    discharged) and its Q(V); None when the cell has no usable discharge."""
    ref_pos = _reference_position(arr.seg_cycle[segs], has)
    if ref_pos is None:
        return None
    seg = segs[ref_pos]
    sl = slice(arr.starts[seg], arr.ends[seg] + 1)
    m = dis[sl] > 0
    q_pts, v_pts = np.cumsum(dis[sl][m]), arr.voltage_v[sl][m]
    env = np.minimum.accumulate(v_pts)
    if env.size < 2 or env[0] - env[-1] <= 0:
        return None
    grid, step = np.linspace(env[-1], env[0], grid_points, retstep=True)
    return ReferenceCurve(int(arr.seg_cycle[seg]), grid, float(step),
                          discharge_q_of_v(q_pts, v_pts, grid))


#: Cycles whose Q(V) curves are processed together (bounds the [cycles × grid] temporaries).
CURVE_ROWS = 2048


def curve_rows(arr: SampleArrays, dis: np.ndarray, rows: np.ndarray, cycles: np.ndarray,
               ref: ReferenceCurve, out: dict[str, np.ndarray]) -> None:
    """dQ/dV peaks of the discharging segments ``rows`` of ``arr`` (cycle numbers
    ``cycles``) and, from the reference cycle on, their ΔQ(V) summaries, written into ``out``
    at positions ``rows``. Each row depends only on its own samples and ``ref``, so any split
    of a cell's cycles into blocks gives the same values."""
    names = ("dqdv_peak_voltage_volt", "dqdv_peak_ah_per_volt", "dqdv_peak2_voltage_volt",
             "dqdv_peak2_ah_per_volt")
    ends = arr.ends + 1
    for a in range(0, rows.size, CURVE_ROWS):
        chunk, cyc = rows[a:a + CURVE_ROWS], cycles[a:a + CURVE_ROWS]
        q = np.empty((chunk.size, ref.grid.size))
        _q_of_v_rows(dis, arr.voltage_v, arr.starts[chunk], ends[chunk], ref.grid, q)
        peaks = _peaks_of_rows(ref.grid, q, ref.step)
        for col, name in enumerate(names):
            out[name][chunk] = peaks[:, col]
        later = cyc >= ref.cycle
        if not later.any():
            continue
        for name, val in _summaries_of_rows(ref.q, q[later]).items():
            out[name][chunk[later]] = val
        out["delta_q_v_reference_cycle"][chunk[later]] = ref.cycle
