"""Cycle-life head: early-life features (ΔQ(V) summaries, capacity-curve shape) → the cycle at
which the cell reaches 80 % of its reference, as a log-normal distribution; and the knee it
implies for the served trajectory.

Why: a flat early capacity curve (LFP) says nothing about a knee that has not happened yet, so a
trajectory model extrapolates it as "never". The voltage-curve change ΔQ₁₀₀₋₁₀(V) does (Severson
et al. 2019). The head is a linear model on log10 cycle life, fitted by elastic net with
cross-validated alpha on public cells, stored in the model card (coefficients, scaler, domain),
and applied in numpy by ``ml.inference.forecast`` — the served path (CLI, API, evaluation).

Three heads, the most informative one whose inputs are present and inside its training range is
used:

``delta_q_capacity``
    the four ΔQ(V) summaries + cycle-2 capacity and its max rise, in units of the NOMINAL
    capacity (needs ``nominal_capacity_ah``);
``delta_q``
    the four ΔQ(V) summaries alone (in units of the reference capacity);
``capacity``
    capacity-curve shape only (fade slopes, drops) — weak (wide), but honest: the band then
    says a knee may come.

Features use cycles 2…100 (``WINDOW_CYCLES``) and the ΔQ(V) row at a cycle in 90…100; a history
that has not reached cycle 100, or runs past ``MAX_LAST_CYCLE`` (200), gets no head. Given that the cell has not reached end of life by its
last observed cycle, the log-normal is truncated there (conditioning, not clipping).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Mapping

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features.columns import numeric_column
from ml.models.baselines import DELTA_Q_FEATURES, early_cycle_arrays

__all__ = ["HEADS", "WINDOW_CYCLES", "THRESHOLD_FRACTION", "head_features", "select_head",
           "eol_draws", "apply_knee", "fit_heads", "fit_knee_exponent"]

WINDOW_CYCLES = 100
#: the heads are EARLY-life predictors (features of cycles 2…100): they shape the forecast only
#: while the history ends by this cycle; later, the cell's own trajectory speaks (measured: the
#: capacity head applied at 40 % of life doubled the Severson capacity error of the model alone)
MAX_LAST_CYCLE = 2 * WINDOW_CYCLES
THRESHOLD_FRACTION = 0.8
Z_LIMIT = 6.0  # a head applies only while every input lies within 6 sd of its training cells
_DQ = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
       "delta_q_v_skewness")
_CAPACITY_SHAPE = ("qmax_minus_q2_ah", "fade_slope_ah_per_cycle", "qn_minus_q2_ah",
                   "late_fade_slope_ah_per_cycle", "log10_fade_rate", "log10_late_fade_rate",
                   "log10_capacity_drop")
#: head name -> (features, needs a nominal capacity); in order of preference
HEADS: dict[str, tuple[tuple[str, ...], bool]] = {
    "delta_q_capacity": (DELTA_Q_FEATURES + ("q2_ah", "qmax_minus_q2_ah"), True),
    "delta_q": (DELTA_Q_FEATURES, False),
    "capacity": (_CAPACITY_SHAPE, False),
}


def head_features(history: Mapping[str, Any], reference_ah: float) -> dict[str, float] | None:
    """Early-life features of one history, capacities in units of ``reference_ah``.

    ``history`` is a per-cycle DataFrame or a mapping of column name → array (the serving
    path's columns). None when the history has not reached cycle ``WINDOW_CYCLES``, ends after
    ``MAX_LAST_CYCLE``, or has too few cycles in 2…100. ΔQ(V) features only when a row at
    cycle 90…100 carries all four summaries (the last such row, in table order).
    """
    if "cycle_index" not in history or "discharge_capacity_ah" not in history:
        return None
    cyc = numeric_column(history, "cycle_index")
    if not np.isfinite(cyc).any() or not WINDOW_CYCLES <= np.nanmax(cyc) <= MAX_LAST_CYCLE:
        return None
    q = numeric_column(history, "discharge_capacity_ah") / reference_ah
    dq_row = None
    if all(c in history for c in _DQ):
        variance, minimum, mean, skewness = (numeric_column(history, c) for c in _DQ)
        complete = ~(np.isnan(variance) | np.isnan(minimum) | np.isnan(mean)
                     | np.isnan(skewness))
        near = np.flatnonzero((cyc >= WINDOW_CYCLES - 10) & (cyc <= WINDOW_CYCLES) & complete)
        if near.size:
            i = near[-1]
            dq_row = (float(variance[i] / reference_ah ** 2), float(minimum[i] / reference_ah),
                      float(mean[i] / reference_ah), float(skewness[i]))
    try:
        return early_cycle_arrays(cyc, q, dq_row, n_cycles=WINDOW_CYCLES)
    except (ValidationError, ValueError, np.linalg.LinAlgError):  # too few early cycles (or
        return None  # a degenerate fit): no head, the model alone answers


def select_head(card_head: Mapping[str, Any] | None, features: Mapping[str, float] | None, *,
                nominal_given: bool, hours_per_cycle: float | None,
                chemistry: str | None = None) -> tuple[str, float, float] | None:
    """``(head name, mu, sd)`` of log10 cycle life from the first usable head, or None.

    A head is usable when every input is finite and within ``Z_LIMIT`` (6) sd of its training
    cells, the observed pace lies inside the heads' trained hours-per-cycle range (±10 %), and a
    stated chemistry matches the heads' chemistry.
    """
    if not card_head or not features:
        return None
    dom = card_head.get("domain") or {}
    pace = dom.get("hours_per_cycle")
    if pace and hours_per_cycle is not None and math.isfinite(hours_per_cycle):
        if not pace[0] / 1.1 <= hours_per_cycle <= pace[1] * 1.1:
            return None
    chem = dom.get("chemistry")
    if chemistry and chem:
        from ml.domain import same_chemistry

        if not same_chemistry(chemistry, chem):
            return None
    for name, head in (card_head.get("heads") or {}).items():
        if head.get("needs_nominal") and not nominal_given:
            continue
        x = np.array([features.get(f, np.nan) for f in head["features"]], dtype=float)
        if not np.isfinite(x).all():
            continue
        z = (x - np.asarray(head["mean"])) / np.asarray(head["std"])
        if np.any(np.abs(z) > Z_LIMIT):
            continue
        mu = float(head["intercept"] + np.dot(np.asarray(head["coef"]), z))
        return name, mu, float(head["residual_sd_log10"])
    return None


def eol_draws(mu: float, sd: float, last_cycle: float, n: int, seed: int = 0) -> np.ndarray:
    """``n`` fixed quantile draws of the EOL cycle ~ 10^N(mu, sd), given EOL > ``last_cycle``."""
    nd = NormalDist(mu, max(sd, 1e-6))
    a = nd.cdf(math.log10(max(last_cycle, 1.0)))
    if a > 1.0 - 1e-6:  # the head thinks this cell should be dead already: it is not, widen
        a = 1.0 - 1e-6
    u = (np.arange(n) + 0.5) / n
    u = a + u * (1.0 - a)
    draws = np.array([10.0 ** nd.inv_cdf(float(v)) for v in u])
    return np.random.default_rng(seed).permutation(np.maximum(draws, last_cycle + 1.0))


def apply_knee(cap: np.ndarray, future_cycles: np.ndarray, last_cycle: float,
               eol_cycles: np.ndarray, exponent: float,
               threshold: float = THRESHOLD_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Bend each sample's trajectory so it crosses ``threshold`` at its EOL draw.

    ``cap`` [H, K] retention samples at ``future_cycles`` [H]; sample k loses an extra
    ``max(0, cap_k(N*_k) − threshold) · ((N − N_last) / (N*_k − N_last))^p`` (p = the knee
    exponent fitted on the training cells). Returns (new cap, extra loss), both [H, K].
    """
    fut = np.asarray(future_cycles, dtype=float)
    cap = np.asarray(cap, dtype=float)
    k = cap.shape[1]
    extra = np.zeros_like(cap)
    for j in range(k):
        n_star = float(eol_cycles[j % len(eol_cycles)])
        at_star = float(np.interp(n_star, fut, cap[:, j]))
        drop = max(0.0, at_star - threshold)
        u = np.clip((fut - last_cycle) / max(n_star - last_cycle, 1.0), 0.0, None)
        extra[:, j] = drop * u ** exponent
    return cap - extra, extra


# ---- fitting (training only: sklearn) ----------------------------------------------------------

def _cv_residual_sd(m: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Cross-validated sd of log10 residuals and MAPE (%) of the elastic-net pipeline."""
    from sklearn.model_selection import KFold

    from ml.models.baselines import ElasticNetCycleLife

    pred = np.empty_like(y)
    for tr, te in KFold(5, shuffle=True, random_state=seed).split(m):
        names = [f"f{i}" for i in range(m.shape[1])]
        net = ElasticNetCycleLife(features=tuple(names)).fit(pd.DataFrame(m[tr], columns=names),
                                                              y[tr])
        pred[te] = net.predict(pd.DataFrame(m[te], columns=names))
    resid = np.log10(pred) - np.log10(y)
    return float(np.sqrt(np.mean(resid ** 2))), float(np.mean(np.abs(pred - y) / y) * 100)


def fit_heads(cells_by_head: Mapping[str, list], nominal_ah: float = 1.1) -> dict:
    """Fit every head on its cells (CellRecords with ``meta["cycle_life"]``: cycles to 80 % of
    ``nominal_ah``). Returns the card's ``heads`` mapping (heads lacking cells are skipped)."""
    from ml.models.baselines import ElasticNetCycleLife

    out: dict[str, dict] = {}
    for name, (feats, needs_nominal) in HEADS.items():
        cells = cells_by_head.get(name) or []
        rows, ys, ids = [], [], []
        for c in cells:
            f = head_features(c.cycles[c.cycles["cycle_index"] <= WINDOW_CYCLES], nominal_ah)
            if f is None or not all(np.isfinite(f.get(k, np.nan)) for k in feats):
                continue
            rows.append([f[k] for k in feats])
            ys.append(float(c.meta["cycle_life"]))
            ids.append(c.cell_id)
        if len(rows) < 10:
            continue
        m, y = np.asarray(rows), np.asarray(ys)
        net = ElasticNetCycleLife(features=tuple(feats)).fit(pd.DataFrame(m, columns=feats), y)
        scaler, enet = net.pipeline_[0], net.pipeline_[-1]
        sd, cv_mape = _cv_residual_sd(m, y)
        out[name] = {"features": list(feats), "needs_nominal": needs_nominal,
                     "mean": scaler.mean_.tolist(), "std": scaler.scale_.tolist(),
                     "coef": enet.coef_.tolist(), "intercept": float(enet.intercept_),
                     "residual_sd_log10": sd, "cv_mape_pct": cv_mape, "n_cells": len(rows),
                     "target": f"log10 cycles to {THRESHOLD_FRACTION:.0%} of the reference",
                     "alpha": net.alpha_, "l1_ratio": net.l1_ratio_,
                     "sources": sorted({str(c.meta.get("source", "?")) for c in cells})}
    return out


def fit_knee_exponent(cells: list, nominal_ah: float = 1.1,
                      grid: tuple[float, ...] = tuple(np.arange(1.0, 12.01, 0.5))) -> float:
    """Knee exponent p minimising the squared retention error of
    ``r(N) = r₁₀₀ − (r₁₀₀ − 0.8)·((N − 100)/(N* − 100))^p`` over cycles 100…N* of full
    trajectories (``meta["cycle_life"]`` = N*)."""
    pairs = []
    for c in cells:
        life = float(c.meta.get("cycle_life", np.nan))
        t = c.cycles
        n = t["cycle_index"].to_numpy(float)
        r = t["discharge_capacity_ah"].to_numpy(float) / nominal_ah
        if not np.isfinite(life) or life <= WINDOW_CYCLES + 10:
            continue
        early = (n > WINDOW_CYCLES - 6) & (n <= WINDOW_CYCLES)
        span = (n > WINDOW_CYCLES) & (n <= life)
        if early.sum() < 2 or span.sum() < 10:
            continue
        r100 = float(np.median(r[early]))
        pairs.append((r100, (n[span] - WINDOW_CYCLES) / (life - WINDOW_CYCLES), r[span]))
    if not pairs:
        return 3.0
    errors = [sum(float(np.mean((r100 - max(r100 - THRESHOLD_FRACTION, 0) * u ** p - rr) ** 2))
                  for r100, u, rr in pairs) for p in grid]
    return float(grid[int(np.argmin(errors))])
