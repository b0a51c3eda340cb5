"""Causal rolling least-squares slopes: how a per-cycle quantity trends over cycles or hours."""
from __future__ import annotations

import numpy as np

from ml.features.jit import kernel

#: Number of most recent valid points in each rolling slope.
TREND_WINDOW = 10


def rolling_slope(x: np.ndarray, y: np.ndarray, window: int = TREND_WINDOW,
                  min_points: int = 3) -> np.ndarray:
    """OLS slope dy/dx over the last ``window`` rows with finite x and y, at every row.

    Causal (row k uses rows <= k only). NaN where fewer than ``min_points`` valid points fall
    in the window or x does not vary. Units: unit(y) per unit(x).

    Examples
    --------
    >>> rolling_slope(np.arange(4.0), np.array([0.0, 2.0, 4.0, 6.0]), window=3)
    array([nan, nan,  2.,  2.])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    # Centre x to keep the sums well conditioned (hours reach 1e4, cycles 1e3).
    valid_x = x[ok]
    x0 = valid_x.sum() / valid_x.size if valid_x.size else 0.0  # = np.nanmean(valid_x)
    out = np.empty(x.size)
    _rolling_slope(x, y, ok, float(x0), int(window), float(min_points), out)
    return out


@kernel
def _rolling_slope(x, y, ok, x0, window, min_points, out):  # pragma: no cover
    """Windowed OLS slopes over valid points from running sums (count, x, y, x², xy of the
    centred x): each sum is the sequential cumulative sum, each window the difference of two
    of them — the same operations as the numpy formulation, compiled by numba."""
    n = x.shape[0]
    m = 0
    for i in range(n):
        if ok[i]:
            m += 1
    cn = np.zeros(m + 1)
    cx = np.zeros(m + 1)
    cy = np.zeros(m + 1)
    cxx = np.zeros(m + 1)
    cxy = np.zeros(m + 1)
    k = 0
    for i in range(n):
        if ok[i]:
            xv = x[i] - x0
            yv = y[i]
            if k == 0:
                cn[1], cx[1], cy[1], cxx[1], cxy[1] = 1.0, xv, yv, xv * xv, xv * yv
            else:
                cn[k + 1] = cn[k] + 1.0
                cx[k + 1] = cx[k] + xv
                cy[k + 1] = cy[k] + yv
                cxx[k + 1] = cxx[k] + xv * xv
                cxy[k + 1] = cxy[k] + xv * yv
            k += 1
    rank = 0
    for i in range(n):
        if ok[i]:
            rank += 1
        if not ok[i]:
            out[i] = np.nan
            continue
        lo = rank - window if rank > window else 0
        sn = cn[rank] - cn[lo]
        sx = cx[rank] - cx[lo]
        sy = cy[rank] - cy[lo]
        sxx_raw = cxx[rank] - cxx[lo]
        sxy_raw = cxy[rank] - cxy[lo]
        sxx = sxx_raw - sx * sx / sn
        sxy = sxy_raw - sx * sy / sn
        scale = sxx_raw if sxx_raw > 1e-300 else 1e-300
        if sn < min_points or not sxx > 1e-12 * scale:
            out[i] = np.nan
        else:
            out[i] = sxy / sxx
