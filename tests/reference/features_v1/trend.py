"""Causal rolling least-squares slopes: how a per-cycle quantity trends over cycles or hours."""
from __future__ import annotations

import numpy as np

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
    xv, yv = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    # Centre x to keep the sums well conditioned (hours reach 1e4, cycles 1e3).
    x0 = np.nanmean(x[ok]) if ok.any() else 0.0
    xv = np.where(ok, xv - x0, 0.0)
    # Window over VALID points: map each row to its rank among valid rows.
    rank = np.cumsum(ok)
    csum = {name: np.concatenate(([0.0], np.cumsum(a[ok]))) for name, a in
            (("n", np.ones_like(xv)), ("x", xv), ("y", yv), ("xx", xv * xv), ("xy", xv * yv))}
    hi = rank
    lo = np.maximum(rank - window, 0)
    s = {k: v[hi] - v[lo] for k, v in csum.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        sxx = s["xx"] - s["x"] ** 2 / s["n"]
        sxy = s["xy"] - s["x"] * s["y"] / s["n"]
        slope = sxy / sxx
    scale = np.maximum(s["xx"], 1e-300)
    bad = (s["n"] < min_points) | ~(sxx > 1e-12 * scale) | ~ok
    return np.where(bad, np.nan, slope)
