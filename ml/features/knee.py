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

from ml.features.jit import kernel

MIN_POINTS = 12
MAX_CANDIDATES = 80
EDGE_POINTS = 3


#: F quantiles by residual degrees of freedom, extended on demand (``_f_quantiles``).
_F_CACHE: dict[tuple[float, int], np.ndarray] = {}


def _f_quantiles(q: float, dfn: int, dof: np.ndarray) -> np.ndarray:
    """``stats.f.ppf(q, dfn, dof)`` for integer ``dof`` >= 1, from a table computed once per
    (q, dfn) and extended when a longer series arrives (scipy's ppf is elementwise, so the
    values equal a direct call; the table spares ~0.3 ms of scipy overhead per cell)."""
    table = _F_CACHE.get((q, dfn))
    top = int(dof.max()) if dof.size else 1
    if table is None or table.size <= top:
        size = max(top + 1, 2 * (table.size if table is not None else 256))
        from scipy import stats  # lazy: scipy.stats costs ~1 s of import on a CLI cold start

        table = stats.f.ppf(q, dfn, np.arange(size, dtype=np.float64))
        _F_CACHE[(q, dfn)] = table
    return table[dof]


@kernel
def _hinge_fits(xs, yc, cand, a01, a11, b0, b1, yy, det, mx, beta2, rss):  # pragma: no cover
    """For every candidate breakpoint j and prefix end i: the 3×3 normal equations of the
    hinge fit (running sums), their determinant, largest |entry|, the hinge coefficient and
    the RSS — the same floating-point operations, in the same order, as the numpy
    formulation (cumsum is sequential; einsum sums terms as (t0 + t2) + t1), so the values
    are bit-identical. Compiled by numba on first use."""
    n = xs.shape[0]
    for j in range(cand.shape[0]):
        cj = cand[j]
        a02 = 0.0
        a12 = 0.0
        a22 = 0.0
        b2 = 0.0
        for i in range(n):
            h = xs[i] - cj
            if not h > 0.0:
                h = 0.0
            if i == 0:
                a02 = h
                a12 = xs[i] * h
                a22 = h * h
                b2 = h * yc[i]
            else:
                a02 = a02 + h
                a12 = a12 + xs[i] * h
                a22 = a22 + h * h
                b2 = b2 + h * yc[i]
            p = float(i + 1)
            q = a01[i]
            d = a11[i]
            c11 = d * a22 - a12 * a12
            c12 = a02 * a12 - q * a22
            c13 = q * a12 - a02 * d
            c22 = p * a22 - a02 * a02
            c23 = q * a02 - p * a12
            c33 = p * d - q * q
            dt = p * c11 + q * c12 + a02 * c13
            m = abs(p)
            for v in (q, a02, d, a12, a22):
                if abs(v) > m:
                    m = abs(v)
            bb0 = b0[i]
            bb1 = b1[i]
            be0 = ((c11 * bb0 + c13 * b2) + c12 * bb1) / dt
            be1 = ((c12 * bb0 + c23 * b2) + c22 * bb1) / dt
            be2 = ((c13 * bb0 + c33 * b2) + c23 * bb1) / dt
            det[j, i] = dt
            mx[j, i] = m
            beta2[j, i] = be2
            rss[j, i] = yy[i] - ((be0 * bb0 + be2 * b2) + be1 * bb1)


@kernel
def _select_knee(rss, beta2, solvable, cand_idx, rss_line, yy, f_prof, f_sig, xc, half_step,
                 out):  # pragma: no cover
    """Per prefix i: the best admissible breakpoint (smallest RSS among candidates with
    ``EDGE_POINTS`` points on each side and a steepening, first on ties as ``argmin``), the F
    test against the straight line and the profile interval → ``out`` rows knee, ci_low,
    ci_high, stderr (NaN where no significant knee) — the numpy formulation's operations,
    in order, per prefix."""
    n_cand, n = rss.shape
    masked = np.empty(n_cand)
    for i in range(n):
        m = i + 1
        best = 0
        for j in range(n_cand):
            if (cand_idx[j] >= EDGE_POINTS and cand_idx[j] <= m - 1 - EDGE_POINTS
                    and solvable[j, i] and beta2[j, i] < 0):
                v = rss[j, i]
                masked[j] = v if (v != v or v >= 0.0) else 0.0
            else:
                masked[j] = np.inf
        rss_min = masked[0]
        for j in range(1, n_cand):  # argmin: the first minimum, or the first NaN
            if rss_min != rss_min:
                break
            if masked[j] < rss_min or masked[j] != masked[j]:
                rss_min = masked[j]
                best = j
        dof = float(m - 4 if m - 4 > 1 else 1)
        line = rss_line[i]
        line = line if (line != line or line >= 0.0) else 0.0
        f_stat = (line - rss_min) / 2.0 / (rss_min / dof)
        gain = line - rss_min
        floor = yy[i] if (yy[i] != yy[i] or yy[i] >= 1e-300) else 1e-300
        significant = (m >= MIN_POINTS and np.isfinite(rss_min) and gain > 1e-9 * floor
                       and (f_stat > f_sig[i] or rss_min <= 1e-12 * floor))
        if not significant:
            for k in range(4):
                out[k, i] = np.nan
            continue
        bound = rss_min * (1.0 + f_prof[i] / dof) + 1e-300
        lo = np.inf
        hi = -np.inf
        for j in range(n_cand):
            if masked[j] <= bound:
                if xc[j] < lo:
                    lo = xc[j]
                if xc[j] > hi:
                    hi = xc[j]
        lo = lo - half_step
        hi = hi + half_step
        out[0, i] = xc[best]
        out[1, i] = lo
        out[2, i] = hi
        out[3, i] = (hi - lo) / (2 * 1.96)


@kernel
def _prefix_line_fits(xs, yc, sums, rss):  # pragma: no cover
    """Running sums of x, x², y, xy, y² (``sums`` rows, sequential like ``np.cumsum``) and the
    RSS of the straight-line fit on every prefix from its closed-form 2×2 normal equations
    (NaN where singular) — the numpy formulation's operations, in order."""
    n = xs.shape[0]
    for i in range(n):
        x, y = xs[i], yc[i]
        if i == 0:
            sums[0, 0], sums[1, 0], sums[2, 0] = x, x * x, y
            sums[3, 0], sums[4, 0] = x * y, y * y
        else:
            sums[0, i] = sums[0, i - 1] + x
            sums[1, i] = sums[1, i - 1] + x * x
            sums[2, i] = sums[2, i - 1] + y
            sums[3, i] = sums[3, i - 1] + x * y
            sums[4, i] = sums[4, i - 1] + y * y
        p = float(i + 1)
        q, r = sums[0, i], sums[1, i]
        b0, b1 = sums[2, i], sums[3, i]
        det = p * r - q * q
        scale = p if p >= abs(q) else abs(q)
        scale = scale if scale >= abs(r) else abs(r)
        scale = scale * scale
        if abs(det) > 1e-12 * scale:
            beta0 = (r * b0 + (-q) * b1) / det
            beta1 = ((-q) * b0 + p * b1) / det
            rss[i] = sums[4, i] - (beta0 * b0 + beta1 * b1)
        else:
            rss[i] = np.nan


@kernel
def _median_step(xc):  # pragma: no cover
    """``np.median(np.diff(xc))`` (the middle value, or the mean of the two middle ones)."""
    d = np.sort(xc[1:] - xc[:-1])
    m = d.shape[0]
    if m % 2:
        return d[m // 2]
    return (d[m // 2 - 1] + d[m // 2]) / 2.0


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
    sums, rss_l = np.empty((5, n)), np.empty(n)
    _prefix_line_fits(xs, yc, sums, rss_l)
    a01, a11, b0, b1, yy0 = sums
    shape = (c.size, n)
    det, mx, beta2, rss_h = (np.empty(shape) for _ in range(4))
    _hinge_fits(xs, yc, c, a01, a11, b0, b1, yy0, det, mx, beta2, rss_h)
    with np.errstate(invalid="ignore", over="ignore"):
        solvable = np.abs(det) > 1e-12 * mx ** 3
    dof = np.maximum(np.arange(1, n + 1) - 4, 1)  # prefix points - 4
    xc = x[cand_idx]
    # The candidate grid is coarse on long series: widen the interval by half a grid step.
    half_step = 0.5 * float(_median_step(xc)) if xc.size > 1 else 0.0
    res = np.empty((4, n))
    _select_knee(rss_h, beta2, solvable, cand_idx.astype(np.int64), rss_l, yy0,
                 _f_quantiles(0.95, 1, dof), _f_quantiles(0.99, 2, dof), xc, half_step, res)
    knee, lo, hi, stderr = res
    for key, val in (("knee_cycle", knee), ("knee_cycle_ci_low", lo),
                     ("knee_cycle_ci_high", hi), ("knee_cycle_stderr", stderr)):
        out[key][rows] = val
    return out
