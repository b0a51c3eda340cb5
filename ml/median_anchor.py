"""Level anchoring of the forecast MEDIAN on the cell's own history (an intercept correction).

The network forecasts the whole trajectory, including the LAST OBSERVED cycle (query 0 of every
forecast). There the truth is known to the user: the cell's current capacity level. Where the
network's median at that cycle sits off the cell's level — seen on cells unlike its training cells
(NASA PCoE: a median 6.5 % of the reference above the last measured capacities of B0034) — the
offset is a bias measured on this cell's data alone, and the whole future median is moved by it
(:func:`anchor_median`); the model's half-widths are kept, and the band is then composed around the
anchored median as before (:func:`ml.uncertainty.trend_check`, :func:`ml.uncertainty.compose_band`).

The level is the value, at the last observed row, of a ROBUST √t + N fit of the history
(:func:`robust_trend_fit`: the bounded r ≈ c0 − a·√t − b·N of :func:`ml.uncertainty.sqrt_trend_fit`
with Huber weights, iteratively reweighted), not the last point or a mean of the last few: capacity
regeneration after rests, a formation first cycle and the odd outlier would move those. Measured
(README material of issue 10): a plain last-5 median made the Geslin cells' error 2× worse, the
ordinary least-squares trend helped less than the robust one.

A √t + N curve can only DECELERATE. Where the history's fade significantly accelerates (a knee:
lithium plating, loss of contact; :func:`accelerating_level`), that fit's end lies above the
latest measurements and would lift the whole future median, so the level is then the line of the
latest window of rows at the last row. On Severson LFP cells cut late in life this
moved the end-of-life median earlier and let more intervals hold the truth; at the evaluation's
cut it changes no pybamm-dev or Geslin figure and fires on three NASA cells (figures: the session
9 note, ``fadecast evaluate`` and ``experiments/severson_early_life/midlife.py`` before/after).

Causal: only the history a user has is used. Costs no extra model run (query 0 is in every run);
the robust fit is ≤ 5 reweighted 3 × 3 solves (~0.2 ms of CPU on a 200-cycle history).
"""
from __future__ import annotations

import numpy as np

__all__ = ["HUBER_K", "MAX_ITERATIONS", "WINDOW_FRACTION", "WINDOW_MIN_ROWS", "ACCELERATING",
           "ROBUST_FIT", "NOT_ANCHORED", "weighted_trend_fit", "robust_trend_fit",
           "accelerating_level", "level_and_basis", "current_level", "anchor_median"]

#: Huber tuning constant, in robust sd of the residuals (95 % efficiency under normal noise)
HUBER_K = 1.345
#: reweighting iterations of the robust fit (it stops earlier once the weights settle; on a
#: 200-cycle history the level after 5 differs from that after 10 by < 1e-8)
MAX_ITERATIONS = 5
#: rows of each of the two latest windows whose fade rates :func:`accelerating_level` compares:
#: this share of the history, at least :data:`WINDOW_MIN_ROWS` rows
WINDOW_FRACTION = 0.2
WINDOW_MIN_ROWS = 10
#: the level's basis, as the forecast answer's ``uncertainty.level_basis`` says it
ACCELERATING = "latest rows' line (the fade accelerates)"
ROBUST_FIT = "robust sqrt(t) + N fit of the history"
NOT_ANCHORED = "not anchored"


def _design(n: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Column-scaled design [3, m] = [1, −√t/st, −N/sn] and its scales (st, sn)."""
    st = max(float(np.sqrt(t).max()), 1e-12)
    sn = max(float(np.abs(n).max()), 1e-12)
    return np.stack([np.ones_like(n), -np.sqrt(t) / st, -n / sn]), st, sn


def _det3(m: list) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def _bounded_solve(g: list, v: list, rr: float) -> tuple[float, float, float]:
    """Scaled ``(c0, ca, cb)`` minimising the weighted SSE with ca, cb >= 0 from the normal
    equations ``g`` (3 × 3 lists) and ``v``, by the four active sets (Cramer's rule in plain
    Python: 3 × 3 numpy solves cost more than the arithmetic); SSE = rr − c·v."""
    mean = v[0] / g[0][0]
    best, best_sse = (mean, 0.0, 0.0), rr - mean * v[0]
    candidates = []
    for j in (1, 2):  # intercept + one fade column
        det = g[0][0] * g[j][j] - g[0][j] * g[j][0]
        if abs(det) > 1e-12 * g[0][0] * g[j][j]:
            c0 = (v[0] * g[j][j] - g[0][j] * v[j]) / det
            cj = (g[0][0] * v[j] - g[j][0] * v[0]) / det
            candidates.append((c0, cj, 0.0) if j == 1 else (c0, 0.0, cj))
    det3 = _det3(g)
    if abs(det3) > 1e-12 * g[0][0] * g[1][1] * g[2][2]:
        cols = []
        for k in range(3):
            m = [[v[i] if c == k else g[i][c] for c in range(3)] for i in range(3)]
            cols.append(_det3(m) / det3)
        candidates.append(tuple(cols))
    for c0, ca, cb in candidates:
        if ca < 0 or cb < 0:
            continue
        sse = rr - (c0 * v[0] + ca * v[1] + cb * v[2])
        if sse < best_sse - 1e-15:
            best, best_sse = (c0, ca, cb), sse
    return best


def _median(x: np.ndarray) -> float:
    """Median of a finite 1-D array (``np.median``'s value, by one partition)."""
    m = x.size
    k = m // 2
    if m % 2:
        return float(np.partition(x, k)[k])
    p = np.partition(x, (k - 1, k))
    return 0.5 * (float(p[k - 1]) + float(p[k]))


def _fit(design: np.ndarray, st: float, sn: float, r: np.ndarray,
         w: np.ndarray) -> tuple[float, float, float]:
    dw = design * w
    c0, ca, cb = _bounded_solve((dw @ design.T).tolist(), (dw @ r).tolist(),
                                float(w @ (r * r)))
    return c0, ca / st, cb / sn


def weighted_trend_fit(cycles: np.ndarray, hours: np.ndarray, retention: np.ndarray,
                       weights: np.ndarray) -> tuple[float, float, float]:
    """``(c0, a, b)`` of r ≈ c0 − a·√t − b·N with a, b ≥ 0, weighted least squares.

    Exact bounded solution: the least-squares solution of each active set (constant; constant +
    √t; constant + N; all three) on the weighted 3 × 3 normal equations of the column-scaled
    design, the feasible one with the smallest weighted SSE. Inputs must be finite, ≥ 1 row.
    """
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    design, st, sn = _design(n, t)
    return _fit(design, st, sn, np.asarray(retention, dtype=float),
                np.asarray(weights, dtype=float))


def robust_trend_fit(cycles: np.ndarray, hours: np.ndarray, retention: np.ndarray
                     ) -> tuple[float, float, float] | None:
    """Huber-weighted :func:`weighted_trend_fit` (iteratively reweighted; the scale is
    1.4826 · MAD of the current residuals; stops when the weights move by less than 1e-6).
    None when fewer than 3 finite rows exist."""
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    r = np.asarray(retention, dtype=float)
    ok = np.isfinite(n) & np.isfinite(t) & np.isfinite(r) & (t >= 0)
    if not ok.all():
        n, t, r = n[ok], t[ok], r[ok]
    if n.size < 3:
        return None
    design, st, sn = _design(n, t)
    w = np.ones_like(r)
    fit = _fit(design, st, sn, r, w)
    sqrt_t = design[1] * -st
    for _ in range(MAX_ITERATIONS):
        resid = r - (fit[0] - fit[1] * sqrt_t - fit[2] * n)
        mad = _median(np.abs(resid - _median(resid)))
        if mad <= 0:
            break
        new_w = np.minimum(1.0, (HUBER_K * 1.4826 * float(mad)) / np.maximum(np.abs(resid),
                                                                              1e-300))
        if float(np.max(np.abs(new_w - w))) < 1e-6:
            break
        w = new_w
        fit = _fit(design, st, sn, r, w)
    return fit


def _line(x: np.ndarray, y: np.ndarray, robust: bool = True) -> tuple[float, float, float]:
    """``(slope, value at x[-1], standard error of the slope)`` of a least-squares line,
    Huber-weighted (iteratively reweighted like :func:`robust_trend_fit`) when ``robust``."""
    w = np.ones_like(y)
    slope, mid, xm, sxx = 0.0, float(y.mean()), float(x.mean()), 0.0
    for _ in range(MAX_ITERATIONS + 1 if robust else 1):
        sw = float(w.sum())
        xm, ym = float(w @ x) / sw, float(w @ y) / sw
        sxx = float(w @ (x - xm) ** 2)
        if sxx <= 0:
            return 0.0, ym, np.inf
        slope = float(w @ ((x - xm) * (y - ym))) / sxx
        mid = ym
        if not robust:
            break
        resid = y - (ym + slope * (x - xm))
        mad = _median(np.abs(resid - _median(resid)))
        if mad <= 0:
            break
        new_w = np.minimum(1.0, HUBER_K * 1.4826 * mad / np.maximum(np.abs(resid), 1e-300))
        if float(np.max(np.abs(new_w - w))) < 1e-6:
            break
        w = new_w
    resid = y - (mid + slope * (x - xm))
    se = float(np.sqrt(float(w @ resid ** 2) / max(float(w.sum()) - 2.0, 1.0) / sxx))
    return slope, mid + slope * (float(x[-1]) - xm), se


def accelerating_level(cycles: np.ndarray, retention: np.ndarray) -> float | None:
    """The level (retention units) at the last row of a history whose fade ACCELERATES, else
    None.

    Two adjacent windows of the latest rows (each :data:`WINDOW_FRACTION` of the finite rows, at
    least :data:`WINDOW_MIN_ROWS`) give line fade rates s1 (earlier) and s2 (latest, per
    cycle). The fade accelerates when s2 is a fall, steeper than s1 by more than twice the
    standard error of their difference (√(se1² + se2²)), by BOTH the least-squares and the
    Huber-weighted lines: a few odd rows (two low cycles at the end, a rest's recovery in the
    earlier window) can make either one alone see an acceleration. The level is then the
    latest window's robust line at the last row. Needs twice the window's rows."""
    n = np.asarray(cycles, dtype=float)
    r = np.asarray(retention, dtype=float)
    ok = np.isfinite(n) & np.isfinite(r)
    if not ok.all():
        n, r = n[ok], r[ok]
    w = max(WINDOW_MIN_ROWS, int(WINDOW_FRACTION * n.size))
    if n.size < 2 * w:
        return None
    level = None
    for robust in (False, True):
        s1, _, se1 = _line(n[-2 * w:-w], r[-2 * w:-w], robust)
        s2, level, se2 = _line(n[-w:], r[-w:], robust)
        if not (s2 < 0 and s2 < s1 and s1 - s2 > 2.0 * float(np.hypot(se1, se2))):
            return None
    return level


def level_and_basis(cycles: np.ndarray, hours: np.ndarray, retention: np.ndarray
                    ) -> tuple[float | None, str | None]:
    """``(level, basis)``: :func:`current_level` and which rule gave it (:data:`ACCELERATING`
    or :data:`ROBUST_FIT`; None when it cannot be fitted)."""
    fast = accelerating_level(cycles, retention)
    if fast is not None:
        return fast, ACCELERATING
    fit = robust_trend_fit(cycles, hours, retention)
    if fit is None:
        return None, None
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    c0, a, b = fit
    return float(c0 - a * np.sqrt(max(float(t[-1]), 0.0)) - b * float(n[-1])), ROBUST_FIT


def current_level(cycles: np.ndarray, hours: np.ndarray, retention: np.ndarray) -> float | None:
    """The cell's capacity level (retention units) at its last observed row: the robust
    √t + N fit's value there, or, where the fade accelerates, the latest window's line there
    (:func:`accelerating_level`). None when it cannot be fitted."""
    return level_and_basis(cycles, hours, retention)[0]


def anchor_median(q: np.ndarray, model_at_last: float, cycles: np.ndarray, hours: np.ndarray,
                  retention: np.ndarray) -> tuple[np.ndarray, float, str]:
    """``(q', offset, basis)``: raw model quantiles [..., 3] moved by ``offset = level −
    model_at_last`` (retention units), the network's median at the last observed cycle
    ``model_at_last`` brought onto the cell's :func:`current_level`; ``basis`` names the rule
    (:data:`ACCELERATING`, :data:`ROBUST_FIT`). Unchanged (offset 0, basis
    :data:`NOT_ANCHORED`) when the level cannot be fitted, the inputs are not finite or the last
    row's cycle/hours are not finite."""
    q = np.array(q, dtype=np.float64)
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    if n.size == 0 or not (np.isfinite(n[-1]) and np.isfinite(t[-1])
                           and np.isfinite(model_at_last)):
        return q, 0.0, NOT_ANCHORED
    level, basis = level_and_basis(n, t, retention)
    if level is None or not np.isfinite(level):
        return q, 0.0, NOT_ANCHORED
    offset = level - float(model_at_last)
    return q + offset, offset, basis
