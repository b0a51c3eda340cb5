"""Cycle-life head: early-life features (ΔQ(V) summaries, capacity-curve shape) → the cycle at
which the cell reaches 80 % of its reference, as a log-normal distribution; and the knee it
implies for the served trajectory.

Why: a flat early capacity curve (LFP) says nothing about a knee that has not happened yet, so a
trajectory model extrapolates it as "never". The voltage-curve change ΔQ₁₀₀₋₁₀(V) does (Severson
et al. 2019). The head is a linear model on log10 cycle life, fitted by elastic net with
cross-validated alpha on public cells, stored in the model card (coefficients, scaler, domain),
and applied in numpy by ``ml.inference.forecast`` — the served path (CLI, API, evaluation).

Four heads; the most informative one whose inputs are present and inside its training range is
used:

``delta_q_capacity``
    the four ΔQ(V) summaries + cycle-2 capacity and its max rise, in units of the NOMINAL
    capacity (needs ``nominal_capacity_ah``);
``delta_q``
    the four ΔQ(V) summaries alone (in units of the reference capacity);
``capacity_charge_policy``
    capacity-curve shape + log10 of the median ``charge_policy_c_rate`` of cycles 2…W: the
    charge protocol's PLANNED mean charging C-rate, which the user states (Severson et al.'s
    "full" model reads the charge time; on the Severson training cells, 5-fold, it took the
    100-cycle capacity head's CV MAPE from 27–28 % to 20 %). Never the measured
    ``charge_c_rate`` of a cycler export (it includes the CV tail: a few % lower, and life is
    steep in this rate, so the head would read a different policy). The rate is read only
    inside the policies trained on (:data:`RANGE_GATED`);
``capacity``
    capacity-curve shape only (fade slopes, drops) — weak (wide), but honest: the band then
    says a knee may come.

Each head is fitted at WINDOWS (``WINDOWS``: 100 to 400 cycles in steps of 50, and 500):
features of cycles 2…W, fitted on the training cells still alive at cycle W, so a history of
300 cycles is read by a head that learnt what 300 cycles say, not by the 100-cycle head (the
ΔQ(V) heads exist where the data carry ΔQ(V) rows at cycle W − 10…W: for Severson, at 100
only). A head of a window past the first is kept only where its cross-validated error beats a
constant life (:func:`fit_heads`). A head of window W serves histories ending at cycles W…2W
(``window_span``); the largest window with a usable head is chosen, and within it the first
usable head in ``HEADS`` order (:func:`choose_head`). Cards written before windows existed
carry one window, the card's ``window_cycles`` (100). Given that the cell has not reached end
of life by its last observed cycle, the log-normal is truncated there (conditioning, not
clipping).
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

__all__ = ["HEADS", "POLICY_COLUMN", "WINDOW_CYCLES", "WINDOWS", "THRESHOLD_FRACTION",
           "head_features", "select_head", "choose_head", "window_span", "head_window", "eol_draws",
           "apply_knee", "fit_heads", "fit_knee_exponent"]

#: the first (and, in cards written before windows, only) window: features of cycles 2…100
WINDOW_CYCLES = 100
#: the windows heads are fitted at (cycles); features of cycles 2…W
WINDOWS = (100, 150, 200, 250, 300, 350, 400, 500)
#: a head of window W reads histories ending by cycle ``SPAN_FACTOR`` × W: features of cycles
#: 2…W say less and less about a cell observed far past W (measured: the 100-cycle capacity head
#: applied at 40 % of life doubled the Severson capacity error of the model alone)
SPAN_FACTOR = 2
#: a history read at window W has a measured capacity within this many cycles before W (and a
#: ΔQ(V) row there for the ΔQ(V) heads): else a gap over W leaves its features describing an
#: earlier cycle
WINDOW_END_CYCLES = 10
THRESHOLD_FRACTION = 0.8
Z_LIMIT = 6.0  # a head applies only while every input lies within 6 sd of its training cells
_DQ = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
       "delta_q_v_skewness")
_CAPACITY_SHAPE = ("qmax_minus_q2_ah", "fade_slope_ah_per_cycle", "qn_minus_q2_ah",
                   "late_fade_slope_ah_per_cycle", "log10_fade_rate", "log10_late_fade_rate",
                   "log10_capacity_drop")
#: the per-cycle column that states the charge protocol's planned mean charge rate (1/h)
POLICY_COLUMN = "charge_policy_c_rate"
#: head name -> (features, needs a nominal capacity); in order of preference
HEADS: dict[str, tuple[tuple[str, ...], bool]] = {
    "delta_q_capacity": (DELTA_Q_FEATURES + ("q2_ah", "qmax_minus_q2_ah"), True),
    "delta_q": (DELTA_Q_FEATURES, False),
    "capacity_charge_policy": (_CAPACITY_SHAPE + ("log10_charge_policy_c_rate",), False),
    "capacity": (_CAPACITY_SHAPE, False),
}
#: a head that adds inputs to another head (its features start with the other's) -> that head:
#: at a window where the other is fitted, the refining head is kept only where its
#: cross-validated log10 error is below the other's ON THE SAME CELLS (on the Severson training
#: cells the charge policy helps up to 250 cycles, not at 300-400); where the other is not
#: fitted (it did not beat a constant life), the refining head stands on its own test
REFINES = {"capacity_charge_policy": "capacity"}
#: features a head reads only inside the range of its training cells, widened by
#: RANGE_MARGIN × that range on each side (not the Z_LIMIT of the others): a charge policy is a
#: design variable of the training experiment, and life is steep in it (the shipped 100-cycle
#: head: about −9 in log life per log rate), so a policy outside the trained ones is not
#: extrapolated
RANGE_GATED = ("log10_charge_policy_c_rate",)
RANGE_MARGIN = 0.1
for _refining, _base in REFINES.items():  # the rule needs this order and prefix
    assert list(HEADS).index(_refining) < list(HEADS).index(_base), _refining
    assert HEADS[_refining][0][:len(HEADS[_base][0])] == HEADS[_base][0], _refining


def window_span(window: int) -> tuple[int, int]:
    """(first, last) cycle a history may end at to be read by a head of ``window`` cycles."""
    return int(window), int(SPAN_FACTOR * window)


def head_window(card_head: Mapping[str, Any], head: Mapping[str, Any]) -> int:
    """A head's window (cycles): its own, else the card's ``window_cycles`` (older cards)."""
    return int(head.get("window_cycles") or card_head.get("window_cycles") or WINDOW_CYCLES)


def head_features(history: Mapping[str, Any], reference_ah: float,
                  window: int = WINDOW_CYCLES) -> dict[str, float] | None:
    """Early-life features of one history (cycles 2…``window``), capacities in units of
    ``reference_ah``.

    ``history`` is a per-cycle DataFrame or a mapping of column name → array (the serving
    path's columns). None when the history ends outside :func:`window_span` of ``window``
    (before cycle ``window`` or after twice it), has no measured capacity in cycles
    ``window`` − 10…``window`` (a gap over the window's end), or has too few cycles in
    2…``window``. ΔQ(V) features only when a row at cycle ``window`` − 10…``window`` carries
    all four summaries (the last such row, in table order).
    """
    if "cycle_index" not in history or "discharge_capacity_ah" not in history:
        return None
    cyc = numeric_column(history, "cycle_index")
    first, last = window_span(window)
    if not np.isfinite(cyc).any() or not first <= np.nanmax(cyc) <= last:
        return None
    q = numeric_column(history, "discharge_capacity_ah") / reference_ah
    if not np.any((cyc >= window - WINDOW_END_CYCLES) & (cyc <= window) & np.isfinite(q)):
        return None  # a gap over cycle W: the "late" features would describe an earlier cycle
    dq_row = None
    if all(c in history for c in _DQ):
        variance, minimum, mean, skewness = (numeric_column(history, c) for c in _DQ)
        complete = ~(np.isnan(variance) | np.isnan(minimum) | np.isnan(mean)
                     | np.isnan(skewness))
        near = np.flatnonzero((cyc >= window - WINDOW_END_CYCLES) & (cyc <= window)
                              & complete)
        if near.size:
            i = near[-1]
            dq_row = (float(variance[i] / reference_ah ** 2), float(minimum[i] / reference_ah),
                      float(mean[i] / reference_ah), float(skewness[i]))
    try:
        out = early_cycle_arrays(cyc, q, dq_row, n_cycles=int(window))
    except (ValidationError, ValueError, np.linalg.LinAlgError):  # too few early cycles (or
        return None  # a degenerate fit): no head, the model alone answers
    out["log10_charge_policy_c_rate"] = _log10_charge_policy_rate(history, cyc, window)
    return out


def _log10_charge_policy_rate(history: Mapping[str, Any], cyc: np.ndarray,
                              window: int) -> float:
    """log10 of the median positive ``charge_policy_c_rate`` (1/h) of cycles 2…``window``; NaN
    when the history does not carry one (the heads that read it are then not usable)."""
    if POLICY_COLUMN not in history:
        return float("nan")
    rate = numeric_column(history, POLICY_COLUMN)
    keep = (cyc >= 2) & (cyc <= window) & np.isfinite(rate) & (rate > 0)
    return float(np.log10(np.median(rate[keep]))) if keep.any() else float("nan")


def select_head(card_head: Mapping[str, Any] | None, features: Mapping[str, float] | None, *,
                nominal_given: bool, hours_per_cycle: float | None,
                chemistry: str | None = None,
                window: int | None = None) -> tuple[str, float, float] | None:
    """``(head name, mu, sd)`` of log10 cycle life from the first usable head, or None.

    A head is usable when every input is finite and within ``Z_LIMIT`` (6) sd of its training
    cells, the observed pace lies inside the heads' trained hours-per-cycle range (±10 %), and a
    stated chemistry matches the heads' chemistry. Only heads of ``window`` (:func:`head_window`;
    default: the card's first, ``window_cycles``) are considered: ``features`` are that
    window's. The best is the
    first usable one in card order (``HEADS``' order: the more informative inputs first).
    """
    if not card_head or not features or not _heads_domain(card_head, hours_per_cycle,
                                                           chemistry):
        return None
    first_window = int(card_head.get("window_cycles") or WINDOW_CYCLES)
    for name, head in (card_head.get("heads") or {}).items():
        if head_window(card_head, head) != (window or first_window):
            continue
        if head.get("needs_nominal") and not nominal_given:
            continue
        x = np.array([features.get(f, np.nan) for f in head["features"]], dtype=float)
        if not np.isfinite(x).all():
            continue
        z = (x - np.asarray(head["mean"])) / np.asarray(head["std"])
        if np.any(np.abs(z) > Z_LIMIT) or not _inside_trained_range(head, x):
            continue
        mu = float(head["intercept"] + np.dot(np.asarray(head["coef"]), z))
        return name, mu, float(head["residual_sd_log10"])
    return None


def _inside_trained_range(head: Mapping[str, Any], x: np.ndarray) -> bool:
    """Whether every :data:`RANGE_GATED` input of ``head`` lies in its training cells' range
    (``head["range"]``) widened by :data:`RANGE_MARGIN` of it on each side; True for heads
    without a range (cards written before it)."""
    ranges = head.get("range")
    if not ranges:
        return True
    for f, v, (lo, hi) in zip(head["features"], x, ranges):
        if f in RANGE_GATED:
            pad = RANGE_MARGIN * (hi - lo)
            if not lo - pad <= v <= hi + pad:
                return False
    return True


def _heads_domain(card_head: Mapping[str, Any], hours_per_cycle: float | None,
                  chemistry: str | None) -> bool:
    """Whether the observed pace lies inside the heads' trained hours-per-cycle range (±10 %)
    and a stated chemistry matches theirs."""
    dom = card_head.get("domain") or {}
    pace = dom.get("hours_per_cycle")
    if pace and hours_per_cycle is not None and math.isfinite(hours_per_cycle):
        if not pace[0] / 1.1 <= hours_per_cycle <= pace[1] * 1.1:
            return False
    chem = dom.get("chemistry")
    if chemistry and chem:
        from ml.domain import same_chemistry

        return same_chemistry(chemistry, chem)
    return True


def choose_head(card_head: Mapping[str, Any] | None, history: Mapping[str, Any],
                reference_ah: float, *, nominal_given: bool, hours_per_cycle: float | None,
                chemistry: str | None = None) -> tuple[str, float, float, int] | None:
    """``(head name, mu, sd, window)``: the usable head (:func:`select_head`) of the LARGEST
    window whose span holds the history's last cycle — it reads more of this cell's own
    history than a smaller window's head — else of the next smaller one; None when no head
    reads this history."""
    if not card_head or not card_head.get("heads") or not _heads_domain(
            card_head, hours_per_cycle, chemistry):
        return None  # (checked before any window's features are computed: the serving path)
    windows = sorted({head_window(card_head, h) for h in card_head["heads"].values()},
                     reverse=True)
    for window in windows:
        features = head_features(history, reference_ah, window)
        got = select_head(card_head, features, nominal_given=nominal_given,
                          hours_per_cycle=hours_per_cycle, chemistry=chemistry, window=window)
        if got is not None:
            return (*got, window)
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

def _cv_residual_sd(m: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Cross-validated sd of log10 residuals and MAPE (%) of the elastic-net pipeline, and the
    sd of a CONSTANT (the training folds' mean log10 life) under the same folds."""
    from sklearn.model_selection import KFold

    from ml.models.baselines import ElasticNetCycleLife

    pred, const = np.empty_like(y), np.empty_like(y)
    for tr, te in KFold(5, shuffle=True, random_state=seed).split(m):
        names = [f"f{i}" for i in range(m.shape[1])]
        net = ElasticNetCycleLife(features=tuple(names)).fit(pd.DataFrame(m[tr], columns=names),
                                                              y[tr])
        pred[te] = net.predict(pd.DataFrame(m[te], columns=names))
        const[te] = float(np.mean(np.log10(y[tr])))
    resid = np.log10(pred) - np.log10(y)
    return (float(np.sqrt(np.mean(resid ** 2))), float(np.mean(np.abs(pred - y) / y) * 100),
            float(np.sqrt(np.mean((const - np.log10(y)) ** 2))))


def fit_heads(cells_by_head: Mapping[str, list], nominal_ah: float = 1.1,
              windows: tuple[int, ...] = WINDOWS, knee_cells: list | None = None) -> dict:
    """Fit every head at every window on its cells (CellRecords with ``meta["cycle_life"]``:
    cycles to 80 % of ``nominal_ah``) that were still alive at that window. Returns the card's
    ``heads`` mapping: ``<head>`` for window 100, ``<head>@<W>`` for the others, each with its
    ``window_cycles`` and the knee exponent of its window, fitted on ``knee_cells`` (whole
    trajectories; default: the head's own cells). Skipped: heads lacking 10 cells, a head that
    refines another (:data:`REFINES`) where its CV error is not below that head's on the same
    cells and folds (where that head is fitted at this window), and heads
    of a LATER window whose cross-validated log10 error is no smaller than a constant's under
    the same folds (``constant_sd_log10``: the training folds' mean log life): their features
    carry no information there, and a knee drawn from them bends every median toward the
    usual life, where the network has already seen a part of the fade (measured on the
    Severson training source's held-out cells, forecast from their first 40 %: the capacity
    error rose from 4.8 to 8.6 % of the reference on the test cells and from 3.0 to 3.9 % on
    the validation cells with a 200-cycle head whose CV error was above the constant's). The
    FIRST window's heads are kept even so, as they were before windows existed: there the
    alternative is the network extrapolating a flat early curve as "never", and a weak head
    at least gives an honest, wide interval (seen on Severson test1 from 100 cycles when this rule was written:
    29 % MAPE with the capacity head, 206 % without — a test-split figure, so read it as the
    reason, not as a held-out score of the rule).
    """
    from ml.models.baselines import ElasticNetCycleLife

    out: dict[str, dict] = {}
    for window in windows:
        window_out: dict[str, dict] = {}  # this window's kept heads
        for name, (feats, needs_nominal) in reversed(HEADS.items()):  # a refined head first
            cells = [c for c in cells_by_head.get(name) or []
                     if float(c.meta["cycle_life"]) > window]
            rows, ys = [], []
            for c in cells:
                f = head_features(c.cycles[c.cycles["cycle_index"] <= window], nominal_ah, window)
                if f is None or not all(np.isfinite(f.get(k, np.nan)) for k in feats):
                    continue
                rows.append([f[k] for k in feats])
                ys.append(float(c.meta["cycle_life"]))
            if len(rows) < 10:
                continue
            m, y = np.asarray(rows), np.asarray(ys)
            net = ElasticNetCycleLife(features=tuple(feats)).fit(pd.DataFrame(m, columns=feats), y)
            scaler, enet = net.pipeline_[0], net.pipeline_[-1]
            sd, cv_mape, constant_sd = _cv_residual_sd(m, y)
            if window > min(windows) and sd >= constant_sd:
                continue  # predicts no better than "the usual life" of cells alive at W
            base = REFINES.get(name)
            if base in window_out:  # the base head's CV error on these same cells and folds
                base_sd = _cv_residual_sd(m[:, :len(HEADS[base][0])], y)[0]
                if sd >= base_sd:
                    continue  # its extra inputs do not help at this window
            window_out[name] = {
                "features": list(feats), "needs_nominal": needs_nominal,
                "window_cycles": int(window),
                "knee_exponent": fit_knee_exponent(
                    cells if knee_cells is None else knee_cells, nominal_ah, window=window),
                "mean": scaler.mean_.tolist(), "std": scaler.scale_.tolist(),
                "range": [[float(lo), float(hi)] for lo, hi in zip(m.min(axis=0),
                                                                   m.max(axis=0))],
                "coef": enet.coef_.tolist(), "intercept": float(enet.intercept_),
                "residual_sd_log10": sd, "cv_mape_pct": cv_mape, "n_cells": len(rows),
                "constant_sd_log10": constant_sd,
                "target": f"log10 cycles to {THRESHOLD_FRACTION:.0%} of the reference",
                "alpha": net.alpha_, "l1_ratio": net.l1_ratio_,
                "sources": sorted({str(c.meta.get("source", "?")) for c in cells})}
        for name in HEADS:  # the card keeps HEADS' order: the order of preference
            if name in window_out:
                out[name if window == WINDOW_CYCLES else f"{name}@{window}"] = window_out[name]
    return out


def fit_knee_exponent(cells: list, nominal_ah: float = 1.1,
                      grid: tuple[float, ...] = tuple(np.arange(1.0, 12.01, 0.5)),
                      window: int = WINDOW_CYCLES) -> float:
    """Knee exponent p minimising the squared retention error of
    ``r(N) = r_W − (r_W − 0.8)·((N − W)/(N* − W))^p`` over cycles W…N* of full
    trajectories (``meta["cycle_life"]`` = N*, W = ``window``)."""
    pairs = []
    for c in cells:
        life = float(c.meta.get("cycle_life", np.nan))
        t = c.cycles
        n = t["cycle_index"].to_numpy(float)
        r = t["discharge_capacity_ah"].to_numpy(float) / nominal_ah
        if not np.isfinite(life) or life <= window + 10:
            continue
        early = (n > window - 6) & (n <= window)
        span = (n > window) & (n <= life)
        if early.sum() < 2 or span.sum() < 10:
            continue
        r_w = float(np.median(r[early]))
        pairs.append((r_w, (n[span] - window) / (life - window), r[span]))
    if not pairs:
        return 3.0
    errors = [sum(float(np.mean((r_w - max(r_w - THRESHOLD_FRACTION, 0) * u ** p - rr) ** 2))
                  for r_w, u, rr in pairs) for p in grid]
    return float(grid[int(np.argmin(errors))])
