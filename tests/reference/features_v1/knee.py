"""Knee (onset of accelerated fade): a Bacon–Watts breakpoint on the capacity curve so far.

Model (Bacon & Watts 1971, in the sharp-transition limit γ → 0 used by Fermín-Cueto et al.
2020 for capacity knees): ``Q = a + b·x + c·max(x − x₀, 0)`` — two straight lines meeting at
``x₀``. For each candidate ``x₀`` the fit is linear least squares; ``x₀`` minimises the
residual sum of squares. Uncertainty comes from the profile likelihood: the ``x₀`` whose RSS
stays below ``RSS_min·(1 + F(0.95; 1, n−4)/(n−4))`` form the 95 % interval; the standard error
is that interval's width / (2·1.96). Candidates are at most ``MAX_CANDIDATES`` observed
cycles, so the interval is widened by half a candidate spacing. A knee is reported only where
the fade steepens (c < 0) and the hinge beats a straight line by an F test at 1 %
(approximate: x₀ is fitted).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

MIN_POINTS = 12
MAX_CANDIDATES = 80
EDGE_POINTS = 3


def _sums(basis: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums of the normal equations for basis [k][..., n] → (A[...,n,k,k], b, yy)."""
    k = len(basis)
    a = np.empty(basis[0].shape + (k, k))
    b = np.empty(basis[0].shape + (k,))
    for p in range(k):
        for q in range(p, k):
            a[..., p, q] = a[..., q, p] = np.cumsum(basis[p] * basis[q], axis=-1)
        b[..., p] = np.cumsum(basis[p] * y, axis=-1)
    return a, b, np.cumsum(y * y, axis=-1)


def _rss(a: np.ndarray, b: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RSS and coefficients of many small least-squares fits from their normal equations.

    The symmetric 2×2 / 3×3 systems are solved in closed form (cofactors), vectorised over
    every candidate and prefix at once — ~10× faster than batched ``np.linalg.solve``.
    Singular systems give NaN.
    """
    k = a.shape[-1]
    if k == 2:
        p, q, r = a[..., 0, 0], a[..., 0, 1], a[..., 1, 1]
        det = p * r - q * q
        cof = np.stack([np.stack([r, -q], -1), np.stack([-q, p], -1)], -2)
    else:
        p, q, c = a[..., 0, 0], a[..., 0, 1], a[..., 0, 2]
        d, e, f = a[..., 1, 1], a[..., 1, 2], a[..., 2, 2]
        c11, c12, c13 = d * f - e * e, c * e - q * f, q * e - c * d
        c22, c23, c33 = p * f - c * c, q * c - p * e, p * d - q * q
        det = p * c11 + q * c12 + c * c13
        cof = np.stack([np.stack([c11, c12, c13], -1), np.stack([c12, c22, c23], -1),
                        np.stack([c13, c23, c33], -1)], -2)
    scale = np.abs(a).max(axis=(-2, -1)) ** k
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.einsum("...ij,...j->...i", cof, b) / det[..., None]
        beta = np.where((np.abs(det) > 1e-12 * scale)[..., None], beta, np.nan)
    return yy - np.einsum("...k,...k->...", beta, b), beta


def knee_columns(cycle: np.ndarray, capacity_ah: np.ndarray) -> dict[str, np.ndarray]:
    """Causal knee estimate at every row of one cell (cycle order).

    Parameters
    ----------
    cycle : float [n] — cycle index; capacity_ah : float [n] — discharge capacity (Ah).

    Returns
    -------
    ``knee_cycle`` (cycle of the breakpoint fitted on rows <= this one), ``knee_cycle_stderr``,
    ``knee_cycle_ci_low``, ``knee_cycle_ci_high`` (95 % profile interval); NaN until
    ``MIN_POINTS`` valid rows exist or while no significant steepening is found.
    """
    x_all = np.asarray(cycle, dtype=np.float64)
    y_all = np.asarray(capacity_ah, dtype=np.float64)
    n_all = x_all.size
    out = {k: np.full(n_all, np.nan) for k in
           ("knee_cycle", "knee_cycle_stderr", "knee_cycle_ci_low", "knee_cycle_ci_high")}
    ok = np.isfinite(x_all) & np.isfinite(y_all)
    if ok.sum() < MIN_POINTS:
        return out
    rows = np.flatnonzero(ok)
    x, y = x_all[ok], y_all[ok]
    scale = max(np.ptp(x), 1.0)
    xs = (x - x[0]) / scale
    yc = y - y[: MIN_POINTS].mean()
    n = x.size
    cand_idx = np.unique(np.linspace(EDGE_POINTS, n - 1 - EDGE_POINTS,
                                     min(MAX_CANDIDATES, n - 2 * EDGE_POINTS)).astype(int))
    c = xs[cand_idx]
    ones = np.ones((1, n))
    hinge = np.maximum(xs[None, :] - c[:, None], 0.0)
    a_h, b_h, yy = _sums([np.broadcast_to(ones, hinge.shape), np.broadcast_to(xs, hinge.shape),
                          hinge], np.broadcast_to(yc, hinge.shape))
    rss_h, beta_h = _rss(a_h, b_h, yy)
    a_l, b_l, _ = _sums([ones[0], xs], yc)
    rss_l, _ = _rss(a_l, b_l, yy[0])
    m = np.arange(1, n + 1)  # points in the prefix ending at each row
    # A candidate is usable for a prefix if EDGE_POINTS points lie on each side of it.
    valid = (cand_idx[:, None] >= EDGE_POINTS) & (cand_idx[:, None] <= m[None, :] - 1
                                                  - EDGE_POINTS)
    valid &= beta_h[..., 2] < 0
    rss_masked = np.where(valid, np.maximum(rss_h, 0.0), np.inf)
    best = np.argmin(rss_masked, axis=0)
    cols = np.arange(n)
    rss_min = rss_masked[best, cols]
    dof = np.maximum(m - 4, 1)
    f_prof = stats.f.ppf(0.95, 1, dof)
    f_sig = stats.f.ppf(0.99, 2, dof)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_stat = (np.maximum(rss_l, 0.0) - rss_min) / 2.0 / (rss_min / dof)
        # Round-off on noise-free data can fake a tiny improvement: demand a real one.
        gain = np.maximum(rss_l, 0.0) - rss_min
        real_gain = gain > 1e-9 * np.maximum(yy[0], 1e-300)
        significant = (m >= MIN_POINTS) & np.isfinite(rss_min) & real_gain & (
            (f_stat > f_sig) | (rss_min <= 1e-12 * np.maximum(yy[0], 1e-300)))
        inside = rss_masked <= (rss_min * (1.0 + f_prof / dof))[None, :] + 1e-300
    xc = x[cand_idx]
    # The candidate grid is coarse on long series: widen the interval by half a grid step.
    half_step = 0.5 * float(np.median(np.diff(xc))) if xc.size > 1 else 0.0
    lo = np.where(inside, xc[:, None], np.inf).min(axis=0) - half_step
    hi = np.where(inside, xc[:, None], -np.inf).max(axis=0) + half_step
    knee = xc[best]
    for key, val in (("knee_cycle", knee), ("knee_cycle_ci_low", lo),
                     ("knee_cycle_ci_high", hi), ("knee_cycle_stderr", (hi - lo) / (2 * 1.96))):
        out[key][rows] = np.where(significant, val, np.nan)
    return out
