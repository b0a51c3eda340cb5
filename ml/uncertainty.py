"""Honest forecast bands: model spread + observation noise + trend extrapolation, never zero.

The capacity band of a forecast is built from three parts (all in retention units, fractions of
the reference capacity):

* the MODEL's spread — the p05/p50/p95 of its posterior samples, scaled by the split-conformal
  factor ``1 + s`` fitted on calibration cells (:func:`conformal_score` is the score);
* the OBSERVATION noise of this cell — a robust standard deviation of the history's cycle-to-cycle
  scatter (:func:`history_noise`); a future measurement scatters at least that much;
* the EXTRAPOLATION uncertainty that noise leaves in the history's trend — the prediction
  interval of a straight line fitted to n noisy points (:func:`trend_floor`), which grows with
  the distance ahead.

The last two form the per-cell FLOOR ``f`` (half-width of a 90 % interval); each side of the band
is ``sqrt(((1 + s) · m)² + f²)`` with ``m`` the model's half-width on that side.

A per-cell TREND CHECK (:func:`trend_check`) then guards against a model that is confidently
wrong on a cell unlike its training cells: a √t + N least-squares fit of the history so far
(:func:`sqrt_trend_fit`) adds (a) its own residual scale to the floor — a history that scatters
around any smooth trend (capacity regeneration after rests, jumps) will scatter as much ahead —
and (b) the gap between the model's median and the trend's forecast to the model's half-width on
the trend's side, so where the two disagree the band reaches the trend. Both vanish on a cell
the model and the trend agree on; both are derived from the history alone. The floor is
derived from the history alone — no constant — and is positive for any history whose capacity
moves at all; a perfectly constant history falls back to the reported resolution
(:data:`QUANTISATION_FRACTION`).

The time share is widened where the data cannot identify it (:func:`share_band`): before any fade
rises above the noise, the model's share samples are mixed with a uniform share, so the answer is
"unknown", never a confident 0.00.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from statistics import NormalDist

import numpy as np

__all__ = ["Z90", "QUANTISATION_FRACTION", "OOD_WIDENING", "history_noise", "trend_floor",
           "physical_band", "band_ceiling",
           "compose_band", "conformal_score", "share_band", "identifiability_weight",
           "sqrt_trend_fit", "trend_check", "fade_progress", "end_of_life_scales",
           "widen_end_of_life"]

Z90 = NormalDist().inv_cdf(0.95)  # half-width of a 90 % normal interval, in sd
#: a history whose retention never changes: its scatter is taken as the resolution a capacity is
#: usually reported with (0.1 % of the reference), since zero scatter cannot be measured
QUANTISATION_FRACTION = 1e-3
#: outside the training domain the model's spread is multiplied by this factor (a policy, stated
#: in the card and the answer's domain reasons; not a measurement)
OOD_WIDENING = 2.0


def history_noise(retention: np.ndarray) -> float:
    """Robust sd of the history's cycle-to-cycle scatter (retention units).

    ``1.4826 · MAD(Δr − median Δr) / √2``: differences remove the slow trend, the MAD ignores the
    odd outlier cycle, and the √2 undoes the differencing. Falls back to the
    :data:`QUANTISATION_FRACTION` when fewer than 3 finite values exist or the scatter is zero.
    """
    r = np.asarray(retention, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return QUANTISATION_FRACTION
    d = np.diff(r)
    mad = float(np.median(np.abs(d - np.median(d))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    if sigma > 0:
        return sigma
    steps = np.abs(d[d != 0])
    return float(steps.min()) / math.sqrt(12.0) if steps.size else QUANTISATION_FRACTION


def trend_floor(cycles: np.ndarray, retention: np.ndarray, future_cycles: np.ndarray, *,
                noise: float | None = None) -> np.ndarray:
    """Half-width (90 %) of the prediction interval of a straight-line trend, at ``future_cycles``.

    σ is the history's cycle-to-cycle scatter (:func:`history_noise`), not the straight line's
    residual: a smooth curved history (√t fade) is the MODEL's business, whose own spread is
    calibrated; the floor is what noise alone leaves unknown — a future point scatters by σ and a
    trend estimated from n noisy points is uncertain by the usual prediction-interval formula
    ``z · σ · sqrt(1 + 1/n + (N − N̄)² / Sxx)``. Returns [H] (retention units, > 0).
    (Measured: with σ = max(line residual, scatter) the pybamm-dev test band covered 98.8 % at
    1.6× the naive band's width — the curvature was counted as noise.)
    """
    n_arr = np.asarray(cycles, dtype=float)
    r = np.asarray(retention, dtype=float)
    ok = np.isfinite(n_arr) & np.isfinite(r)
    n_arr, r = n_arr[ok], r[ok]
    sigma_noise = history_noise(r) if noise is None else float(noise)
    fut = np.asarray(future_cycles, dtype=float)
    if n_arr.size < 3 or np.ptp(n_arr) == 0:
        return np.full(fut.shape, Z90 * sigma_noise * math.sqrt(2.0))
    mean_n = float(n_arr.mean())
    sxx = float(np.sum((n_arr - mean_n) ** 2))
    return Z90 * sigma_noise * np.sqrt(1.0 + 1.0 / n_arr.size + (fut - mean_n) ** 2 / sxx)


def sqrt_trend_fit(cycles: np.ndarray, hours: np.ndarray, retention: np.ndarray
                   ) -> tuple[float, float, float] | None:
    """``(c0, a, b)`` of r ≈ c0 − a·√t − b·N with a, b ≥ 0 (t hours, N cycles), least squares.

    The per-cell √t + N fit of the evaluation's ``naive_sqrt`` baseline, solved exactly by trying
    the four active sets of the two bounded coefficients on the 3 × 3 normal equations (numpy
    only; tens of µs). None when fewer than 3 finite rows exist.
    """
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    r = np.asarray(retention, dtype=float)
    ok = np.isfinite(n) & np.isfinite(t) & np.isfinite(r) & (t >= 0)
    n, t, r = n[ok], t[ok], r[ok]
    if n.size < 3:
        return None
    # normal equations of the column-scaled design [1, −√t/st, −N/sn] (3 × 3, well conditioned
    # after scaling), solved in closed form (Cramer) on each active set; at a least-squares
    # solution SSE = r·r − c·b
    st = max(float(np.sqrt(t).max()), 1e-12)
    sn = max(float(np.abs(n).max()), 1e-12)
    design = np.stack([np.ones_like(r), -np.sqrt(t) / st, -n / sn])
    g = (design @ design.T).tolist()
    v = (design @ r).tolist()
    rr = float(r @ r)
    mean = v[0] / g[0][0]
    best, best_sse = (mean, 0.0, 0.0), rr - mean * v[0]
    candidates = []
    for j in (1, 2):  # intercept + one fade column
        det = g[0][0] * g[j][j] - g[0][j] ** 2
        if det > 1e-12 * g[0][0] * g[j][j]:
            c0 = (v[0] * g[j][j] - g[0][j] * v[j]) / det
            cj = (g[0][0] * v[j] - g[0][j] * v[0]) / det
            candidates.append((c0, cj if j == 1 else 0.0, cj if j == 2 else 0.0))
    det3 = float(np.linalg.det(np.array(g)))
    if abs(det3) > 1e-12 * g[0][0] * g[1][1] * g[2][2]:
        c = np.linalg.solve(np.array(g), np.array(v)).tolist()
        candidates.append((c[0], c[1], c[2]))
    for c0, ca, cb in candidates:
        if ca < 0 or cb < 0:
            continue
        sse = rr - (c0 * v[0] + ca * v[1] + cb * v[2])
        if sse < best_sse - 1e-15:
            best, best_sse = (c0, ca / st, cb / sn), sse
    return best


def trend_check(q: np.ndarray, floor: np.ndarray, cycles: np.ndarray, hours: np.ndarray,
                retention: np.ndarray, future_cycles: np.ndarray, future_hours: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(q', floor')``: raw model quantiles [H, 3] and floor [H] checked against the history's
    own √t + N trend (:func:`sqrt_trend_fit`), for :func:`compose_band`.

    * ``floor' = sqrt(floor² + (Z90 · σ_fit)²)`` with σ_fit the trend's rms residual on the
      history (retention units): scatter about a smooth trend is expected ahead too;
    * with ``g = p50 − trend`` at each future point (trend from the PLANNED future hours), the
      model's half-width on the trend's side becomes ``sqrt(m² + g²)`` (the lower side when the
      trend lies below the median, else the upper one): the calibrated model spread then covers
      the trend forecast too. The median is never moved.

    Returns the inputs unchanged when the trend cannot be fitted (fewer than 3 rows).
    """
    q = np.array(q, dtype=np.float64)
    f = np.asarray(floor, dtype=np.float64)
    fit = sqrt_trend_fit(cycles, hours, retention)
    if fit is None:
        return q, f
    c0, a, b = fit
    n = np.asarray(cycles, dtype=float)
    t = np.asarray(hours, dtype=float)
    r = np.asarray(retention, dtype=float)
    ok = np.isfinite(n) & np.isfinite(t) & np.isfinite(r) & (t >= 0)
    resid = r[ok] - (c0 - a * np.sqrt(t[ok]) - b * n[ok])
    sigma_fit = float(np.sqrt(np.mean(resid ** 2)))
    trend = c0 - a * np.sqrt(np.maximum(np.asarray(future_hours, dtype=float), 0.0)) \
        - b * np.asarray(future_cycles, dtype=float)
    gap = q[..., 1] - trend
    below, above = np.maximum(gap, 0.0), np.maximum(-gap, 0.0)
    q[..., 0] = q[..., 1] - np.sqrt((q[..., 1] - q[..., 0]) ** 2 + below ** 2)
    q[..., 2] = q[..., 1] + np.sqrt((q[..., 2] - q[..., 1]) ** 2 + above ** 2)
    return q, np.sqrt(f ** 2 + (Z90 * sigma_fit) ** 2)


def history_checked_band(q: np.ndarray, model_at_last: float, cycles: np.ndarray,
                         hours: np.ndarray, retention: np.ndarray, future_cycles: np.ndarray,
                         future_hours: np.ndarray, *, anchor: bool = True,
                         noise: float | None = None
                         ) -> tuple[np.ndarray, np.ndarray, float, str]:
    """``(q', floor, offset, basis)``: the model's raw quantiles [H, 3] checked against the
    cell's own history exactly as the service serves them, ready for :func:`compose_band`
    (``offset``, ``basis``: the level anchoring's, :func:`ml.median_anchor.anchor_median`).

    The floor is :func:`trend_floor` (history scatter ``noise``, default
    :func:`history_noise`); the median is level-anchored at the last observed cycle
    (:func:`ml.median_anchor.anchor_median`, skipped with ``anchor=False`` — a cycle-life head
    set it), then :func:`trend_check` compares it with the history's √t + N trend.
    ``model_at_last`` is the network's median at the last observed cycle (retention units);
    ``cycles``/``hours``/``retention`` the history, ``future_*`` the planned schedule. One
    composition for ``ml.inference.forecast``, training calibration and its reliability plot.
    """
    from ml.median_anchor import NOT_ANCHORED, anchor_median

    cycles = np.asarray(cycles, dtype=float)
    hours = np.asarray(hours, dtype=float)
    retention = np.asarray(retention, dtype=float)
    floor = trend_floor(cycles, retention, future_cycles,
                        noise=history_noise(retention) if noise is None else noise)
    offset, basis = 0.0, NOT_ANCHORED
    if anchor:
        q, offset, basis = anchor_median(q, float(model_at_last), cycles, hours, retention)
    q, floor = trend_check(q, floor, cycles, hours, retention, future_cycles, future_hours)
    return q, floor, float(offset), basis


def compose_band(q: np.ndarray, floor: np.ndarray, scale: float = 0.0,
                 widening: float = 1.0) -> np.ndarray:
    """Final band [..., 3] from raw model quantiles ``q`` [..., 3] and the per-point floor.

    Each side: ``sqrt((widening · max(1 + scale, 0) · m)² + floor²)`` around the model median,
    with ``m`` the model's half-width on that side. Never narrower than ``floor`` (> 0).
    """
    q = np.array(q, dtype=np.float64)
    f = np.broadcast_to(np.asarray(floor, dtype=np.float64), q.shape[:-1])
    k = widening * max(1.0 + float(scale), 0.0)
    lo = np.sqrt((k * (q[..., 1] - q[..., 0])) ** 2 + f ** 2)
    hi = np.sqrt((k * (q[..., 2] - q[..., 1])) ** 2 + f ** 2)
    out = q.copy()
    out[..., 0] = q[..., 1] - lo
    out[..., 2] = q[..., 1] + hi
    return out


def physical_band(q: np.ndarray, retention: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """The band [..., 3] (retention units) kept where a capacity can be: never below 0, and
    never above the most the history has shown plus its one-step allowance ``floor[0]``
    (noise and trend uncertainty one cycle ahead): a cell does not come back above its best.

    Why: the trend floor grows with the distance ahead, symmetrically; a 4-cycle history
    forecast 50 cycles ahead (a real Maccor file, cellpy's ``maccor_001.txt``) got a p95
    several times its reference capacity. A band that is wide because nothing is known stays
    wide downwards. A history without a finite retention is only clipped at 0."""
    return np.minimum(np.clip(np.asarray(q, dtype=np.float64), 0.0, None),
                      band_ceiling(retention, floor))


def band_ceiling(retention: np.ndarray, floor: np.ndarray) -> float:
    """The ceiling of :func:`physical_band` (retention units): the history's largest finite
    retention plus ``floor[0]``; ``inf`` when either is unknown."""
    r = np.asarray(retention, dtype=np.float64)
    r = r[np.isfinite(r)]
    f = np.asarray(floor, dtype=np.float64).ravel()
    if not (r.size and f.size and np.isfinite(f[0])):
        return np.inf
    return float(r.max()) + float(f[0])


def conformal_score(q: np.ndarray, floor: np.ndarray, y: np.ndarray,
                    eps: float = 1e-4) -> np.ndarray:
    """The smallest ``scale`` for which :func:`compose_band` covers ``y`` (per point).

    With d = distance of ``y`` from the median on its side and m the model half-width there:
    ``sqrt(max(d² − f², 0)) / max(m, eps) − 1`` (−1 when the floor alone covers it).
    """
    q = np.asarray(q, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    f = np.broadcast_to(np.asarray(floor, dtype=np.float64), y.shape)
    below = y < q[..., 1]
    d = np.where(below, q[..., 1] - y, y - q[..., 1])
    m = np.where(below, q[..., 1] - q[..., 0], q[..., 2] - q[..., 1])
    need = np.sqrt(np.maximum(d ** 2 - f ** 2, 0.0))
    return need / np.maximum(m, eps) - 1.0


def identifiability_weight(retention: np.ndarray, noise: float) -> float:
    """Weight (0–1) of "the share is unknown": 1 while the observed loss is within the noise.

    Observed loss = max of the first 3 retentions − median of the last 3; the weight falls
    linearly from 1 at zero loss to 0 at 3 noise sd (then the fade is clearly measured).
    """
    r = np.asarray(retention, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return 1.0
    loss = float(np.max(r[:3]) - np.median(r[-3:]))
    sd = max(float(noise), QUANTISATION_FRACTION)
    return float(np.clip(1.0 - loss / (3.0 * sd), 0.0, 1.0))


def share_band(samples: np.ndarray, unknown_weight: float, conformal: dict | None = None
               ) -> np.ndarray:
    """(p05, p50, p95) of the time share from the model's samples [K], widened where the data
    cannot identify it: the quantiles of the mixture (1 − w) · model + w · Uniform(0, 1)."""
    from ml.inference import band

    s = np.clip(np.asarray(samples, dtype=np.float64).ravel(), 0.0, 1.0)
    w = float(np.clip(unknown_weight, 0.0, 1.0))
    if w <= 0.0:
        return band(s, conformal, lo=0.0, hi=1.0)
    model_q = band(s, conformal, lo=0.0, hi=1.0)
    # quantiles of the mixture by bisection on its CDF; the share of samples <= x is counted
    # on a sorted list (the same count / K as ``np.mean(s <= x)``, without a numpy call per
    # step) unless a sample is NaN (or there are none), where the numpy form is kept
    ordered = np.sort(s).tolist()
    if ordered and np.isfinite(s).all():
        k = len(ordered)

        def cdf(x: float) -> float:
            return (1.0 - w) * (bisect_right(ordered, x) / k) + w * x
    else:
        def cdf(x: float) -> float:
            return (1.0 - w) * float(np.mean(s <= x)) + w * x

    out = []
    for level in (0.05, 0.5, 0.95):
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if cdf(mid) < level:
                lo = mid
            else:
                hi = mid
        out.append(hi)
    q = np.array(out)
    # never narrower than the model's own (conformal) band
    q[0] = min(q[0], model_q[0]) if w < 1.0 else q[0]
    q[2] = max(q[2], model_q[2]) if w < 1.0 else q[2]
    return np.clip(q, 0.0, 1.0)


def fade_progress(retention: np.ndarray, threshold: float) -> float | None:
    """How far a history has faded toward ``threshold`` (fraction of the reference): ``(1 −
    r) / (1 − threshold)`` with ``r`` the median of its last 5 finite retentions (0 = nothing
    lost yet, 1 = at the threshold). None without a finite retention or a threshold in (0, 1).
    The end-of-life calibration's bins (:mod:`ml.training.eol_calibration`)."""
    r = np.asarray(retention, dtype=float)
    r = r[np.isfinite(r)]
    if not r.size or not 0.0 < float(threshold) < 1.0:
        return None
    return (1.0 - float(np.median(r[-5:]))) / (1.0 - float(threshold))


def end_of_life_scales(conformal: dict | None, progress: float | None) -> dict:
    """The end-of-life calibration that serves a history at fade ``progress``
    (:func:`fade_progress`): its bin's ``{scale_p05, scale_p95}`` where the card's
    ``by_progress`` bin was calibrated on enough cells (``used``), else the pooled scales."""
    conf = conformal or {}
    by = conf.get("by_progress") or {}
    edges, bins = by.get("edges") or [], by.get("bins") or []
    if progress is None or not math.isfinite(progress) or len(bins) != len(edges) + 1 \
            or not bins:
        return conf
    chosen = bins[int(np.searchsorted(np.asarray(edges, dtype=float), progress, side="right"))]
    return chosen if chosen.get("used") else conf


def _calibration_sources(conf: dict, conformal: dict | None) -> list[str] | None:
    """The sources whose calibration cells set the scales ``conf``: a progress bin's
    ``scale_sources``, else the card's pooled sources (``by_source`` entries with
    ``pooled``); None for a card that does not record them."""
    if conf.get("scale_sources") is not None:
        return [str(s) for s in conf["scale_sources"]]
    by_source = (conformal or {}).get("by_source") or {}
    pooled = [str(s) for s, v in sorted(by_source.items())
              if isinstance(v, dict) and v.get("pooled")]
    return pooled or None


def widen_end_of_life(eol: dict | None, conformal: dict | None, origin_cycle: float,
                      cycles: np.ndarray, hours: np.ndarray,
                      progress: float | None = None) -> dict | None:
    """The forecast's ``end_of_life`` with its p05 / p95 widened by the card's end-of-life
    calibration (``conformal["end_of_life"]``, :mod:`ml.training.eol_calibration`; the bin of
    the history's fade ``progress`` where the card has one, :func:`end_of_life_scales`): the
    remaining cycles from ``origin_cycle`` (the last observed cycle, where the schedule starts)
    to p05 shrink by ``exp(-scale_p05)`` (rounded down to a scheduled cycle) and to p95 grow by
    ``exp(scale_p95)`` (rounded up); the median is kept and ``calibrated_widening`` holds the
    two scales applied (and the ``fade_progress`` whose bin gave them, where a calibrated bin
    did; absent when the pooled scales served), and ``calibrated_on`` the sources whose
    calibration cells set those scales (where the card records them). Unchanged
    when the scales are not positive or the end of life is already observed. ``cycles`` /
    ``hours``: the forecast schedule (a p95 beyond it is clamped to its last row and flagged
    censored; a censored p95 stays)."""
    conf = end_of_life_scales(conformal, progress)
    scales = {k: conf.get(f"scale_{k}") for k in ("p05", "p95")}
    scales = {k: float(v) for k, v in scales.items()
              if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
    if not eol or eol.get("observed") or not scales:
        return eol
    cycles = np.asarray(cycles, dtype=float)
    hours = np.asarray(hours, dtype=float)
    out = {**eol, "cycle_index": dict(eol["cycle_index"]),
           "test_time_second": dict(eol["test_time_second"]),
           "censored": dict(eol.get("censored") or {}),
           "calibrated_widening": {k: scales.get(k, 0.0) for k in ("p05", "p95")}}
    if conformal and conf is not conformal:  # a progress bin's own scales chose the widening
        out["calibrated_widening"]["fade_progress"] = float(progress)
    sources = _calibration_sources(conf, conformal)
    if sources:
        out["calibrated_on"] = sources
    for key, scale in scales.items():
        if key == "p95" and out["censored"].get("p95"):
            continue  # already a lower bound at the horizon's end
        factor = math.exp(-scale if key == "p05" else scale)
        target = origin_cycle + (float(eol["cycle_index"][key]) - origin_cycle) * factor
        if key == "p05":  # the scheduled cycle at or before the target (never past the median)
            i = max(int(np.searchsorted(cycles, target, side="right")) - 1, 0)
            censored = False
        else:  # the scheduled cycle at or after it
            i = int(np.searchsorted(cycles, target, side="left"))
            censored = i >= cycles.size
            i = min(i, cycles.size - 1)
        out["cycle_index"][key] = int(cycles[i])
        out["test_time_second"][key] = float(hours[i] * 3600.0)
        out["censored"][key] = bool(censored or out["censored"].get(key, False))
    return out
