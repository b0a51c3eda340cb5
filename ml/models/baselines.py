"""Baselines every fadecast figure is compared against (numpy/scipy/scikit-learn; no torch).

Per-cell trajectory baselines are fitted on ONE cell's observed history and extrapolate its
retention q (discharge capacity / reference capacity) to future (cycle, elapsed hour) pairs:

- :class:`PersistenceBaseline` — the last observed retention, forever;
- :class:`NaiveSqrtBaseline` — q = c0 − a·√t − b·N, a, b ≥ 0, free intercept c0 (t in hours,
  N in cycles): THE naive baseline; its implied time share is a√t / (a√t + bN);
- :class:`PowerLawBaseline` — q = 1 − a·t^p − b·N^c, a, b ≥ 0, bounded exponents.

Fleet baseline: :class:`ElasticNetCycleLife` — Severson et al. 2019's recipe, an elastic net
on early-cycle features (:func:`early_cycle_features`) predicting log10 cycle life.

Every estimator follows scikit-learn: the constructor only stores, ``fit`` validates then calls
``_fit``, learned state ends in ``_``, ``predict`` needs a fitted estimator.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, ValidationError

__all__ = ["PersistenceBaseline", "NaiveSqrtBaseline", "PowerLawBaseline",
           "ElasticNetCycleLife", "early_cycle_features", "early_cycle_arrays",
           "TRAJECTORY_BASELINES", "retention_history"]

FIRST_CYCLES = 3


def retention_history(cycles: pd.DataFrame, nominal_capacity_ah: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(cycle N, elapsed hours t, retention q, reference Ah) of a per-cycle table.

    The reference is ``nominal_capacity_ah`` when given, else the max discharge capacity of the
    first 3 cycles (CONTRACTS). Rows with a missing capacity are skipped.
    """
    for col in ("cycle_index", "test_time_second", "discharge_capacity_ah"):
        if col not in cycles.columns:
            raise ValidationError("per-cycle history lacks a required column",
                                  code="missing_column", column=col,
                                  expected="cycle_index, test_time_second, discharge_capacity_ah",
                                  found=str(list(cycles.columns)))
    q_ah = cycles["discharge_capacity_ah"].to_numpy(dtype="float64")
    ok = np.isfinite(q_ah)
    ref = (float(nominal_capacity_ah) if nominal_capacity_ah is not None
           else float(np.nanmax(q_ah[ok][:FIRST_CYCLES])))
    n = cycles["cycle_index"].to_numpy(dtype="float64")[ok]
    t = cycles["test_time_second"].to_numpy(dtype="float64")[ok] / 3600.0
    return n, t, q_ah[ok] / ref, ref


def _check_xy(n: Any, t: Any, q: Any | None = None, *, min_rows: int = 1,
              name: str = "baseline") -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(n, dtype="float64"), np.asarray(t, dtype="float64")]
    if q is not None:
        arrays.append(np.asarray(q, dtype="float64"))
    shape = arrays[0].shape
    if any(a.shape != shape or a.ndim != 1 for a in arrays):
        raise ValidationError(f"{name}: inputs must be 1-D arrays of one length",
                              code="shape_mismatch", expected=f"shape {shape}",
                              found=str([a.shape for a in arrays]))
    labels = ("cycle_index", "elapsed_hour", "retention")
    for label, a in zip(labels, arrays):
        if not np.isfinite(a).all():
            raise ValidationError(f"{name}: non-finite values", code="bad_value", column=label,
                                  expected="finite floats", found=f"{int((~np.isfinite(a)).sum())}"
                                  " NaN/inf")
    if (arrays[1] < 0).any() or (arrays[0] < 0).any():
        raise ValidationError(f"{name}: cycles and hours must be >= 0", code="bad_value",
                              expected=">= 0", found="a negative value")
    if shape[0] < min_rows:
        raise ValidationError(f"{name}: too few cycles to fit", code="too_few_cycles",
                              expected=f">= {min_rows} cycles", found=str(shape[0]))
    return tuple(arrays)


class _TrajectoryBaseline:
    """Shared ``fit``/``predict``/``time_share`` plumbing; subclasses define ``_fit`` etc."""

    min_rows = 1

    def fit(self, cycle_index: Any, elapsed_hour: Any, retention: Any) -> "_TrajectoryBaseline":
        """Fit to one cell's history: cycle numbers, elapsed hours and retention (fraction)."""
        n, t, q = _check_xy(cycle_index, elapsed_hour, retention, min_rows=self.min_rows,
                            name=type(self).__name__)
        self._fit(n, t, q)
        self.n_last_, self.t_last_ = float(n[-1]), float(t[-1])
        return self

    def fit_table(self, cycles: pd.DataFrame, nominal_capacity_ah: float | None = None
                  ) -> "_TrajectoryBaseline":
        """Fit to a per-cycle table (CONTRACTS columns); stores ``reference_capacity_ah_``."""
        n, t, q, ref = retention_history(cycles, nominal_capacity_ah)
        self.reference_capacity_ah_ = ref
        return self.fit(n, t, q)

    def _require_fitted(self) -> None:
        if not hasattr(self, "n_last_"):
            raise FadecastError(f"{type(self).__name__} is not fitted; call fit first",
                                code="not_fitted")

    def predict(self, cycle_index: Any, elapsed_hour: Any) -> np.ndarray:
        """Retention (fraction of the reference) at the given cycles and elapsed hours."""
        self._require_fitted()
        n, t = _check_xy(cycle_index, elapsed_hour, name=type(self).__name__)
        return self._predict(n, t)

    def losses(self, cycle_index: Any, elapsed_hour: Any) -> tuple[np.ndarray, np.ndarray]:
        """(time-driven, cycle-driven) loss fractions implied by the fit; NaN if it has none."""
        self._require_fitted()
        n, t = _check_xy(cycle_index, elapsed_hour, name=type(self).__name__)
        return self._losses(n, t)

    def time_share(self) -> float:
        """Time-driven / (time- + cycle-driven) loss at the last observed cycle (NaN if 0/0)."""
        lt, lc = self.losses([self.n_last_], [self.t_last_])
        total = lt[0] + lc[0]
        return float(lt[0] / total) if total > 0 else float("nan")

    def _losses(self, n: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(n.shape, np.nan), np.full(n.shape, np.nan)


class PersistenceBaseline(_TrajectoryBaseline):
    """Future retention = mean of the last ``last_k`` observed retentions (default 1)."""

    def __init__(self, last_k: int = 1) -> None:
        self.last_k = last_k

    def _fit(self, n: np.ndarray, t: np.ndarray, q: np.ndarray) -> None:
        if not (isinstance(self.last_k, int) and self.last_k >= 1):
            raise FadecastError("The 'last_k' parameter of PersistenceBaseline must be an int "
                                f">= 1. Got {self.last_k!r} instead.", code="bad_parameter")
        self.level_ = float(np.mean(q[-self.last_k:]))

    def _predict(self, n: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.full(n.shape, self.level_)


class NaiveSqrtBaseline(_TrajectoryBaseline):
    """q = c0 − a·√t − b·N with a, b ≥ 0 and a free intercept c0 (t hours, N cycles).

    Bounded linear least squares (``scipy.optimize.lsq_linear``). Where t ∝ N (constant
    protocol) the split between a and b is set by curvature only — which is the point of the
    baseline: it says how much a naive fit can tell about time vs cycle driven loss.
    """

    min_rows = 3

    def _fit(self, n: np.ndarray, t: np.ndarray, q: np.ndarray) -> None:
        from scipy.optimize import lsq_linear

        # scale columns so the solver sees O(1) numbers; bounds are scale-invariant (>= 0)
        st = max(float(np.sqrt(t).max()), 1e-12)
        sn = max(float(n.max()), 1e-12)
        design = np.column_stack([np.ones_like(n), -np.sqrt(t) / st, -n / sn])
        res = lsq_linear(design, q, bounds=([-np.inf, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                         method="bvls")
        self.c0_ = float(res.x[0])
        self.a_ = float(res.x[1] / st)
        self.b_ = float(res.x[2] / sn)

    def _predict(self, n: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.c0_ - self.a_ * np.sqrt(t) - self.b_ * n

    def _losses(self, n: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.a_ * np.sqrt(t), self.b_ * n


class PowerLawBaseline(_TrajectoryBaseline):
    """q = 1 − a·t^p − b·N^c, a, b ≥ 0, p ∈ ``time_exponent_bounds``, c ∈
    ``cycle_exponent_bounds`` (t hours, N cycles); ``scipy.optimize.least_squares`` from a
    small grid of starting exponents, best cost kept. The intercept is fixed at 1, so the
    history should be retention against the cell's own initial capacity.
    """

    min_rows = 4

    def __init__(self, time_exponent_bounds: tuple[float, float] = (0.2, 1.0),
                 cycle_exponent_bounds: tuple[float, float] = (0.5, 2.0)) -> None:
        self.time_exponent_bounds = time_exponent_bounds
        self.cycle_exponent_bounds = cycle_exponent_bounds

    def _fit(self, n: np.ndarray, t: np.ndarray, q: np.ndarray) -> None:
        from scipy.optimize import least_squares

        (plo, phi), (clo, chi) = self.time_exponent_bounds, self.cycle_exponent_bounds
        if not (0 < plo < phi and 0 < clo < chi):
            raise FadecastError("The exponent bounds of PowerLawBaseline must be 0 < lo < hi. "
                                f"Got {self.time_exponent_bounds}, {self.cycle_exponent_bounds}"
                                " instead.", code="bad_parameter")
        tn = max(float(t.max()), 1e-12)
        nn = max(float(n.max()), 1e-12)
        x_t, x_n, loss = t / tn, n / nn, 1.0 - q

        def resid(theta: np.ndarray) -> np.ndarray:
            a, p, b, c = theta
            return a * x_t**p + b * x_n**c - loss

        total = max(float(loss.max()), 1e-6)
        best = None
        for p0 in (plo + 0.25 * (phi - plo), 0.5 * (plo + phi)):
            for c0 in (clo + 0.25 * (chi - clo), 0.5 * (clo + chi)):
                for frac in (0.2, 0.5, 0.8):
                    start = np.array([frac * total, p0, (1 - frac) * total, c0])
                    res = least_squares(resid, start, bounds=([0, plo, 0, clo],
                                                              [np.inf, phi, np.inf, chi]))
                    if best is None or res.cost < best.cost:
                        best = res
        a, p, b, c = best.x
        # back to raw units: a·(t/tn)^p = (a / tn^p)·t^p
        self.a_, self.p_, self.b_, self.c_ = float(a / tn**p), float(p), float(b / nn**c), float(c)

    def _losses(self, n: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.a_ * t**self.p_, self.b_ * n**self.c_

    def _predict(self, n: np.ndarray, t: np.ndarray) -> np.ndarray:
        lt, lc = self._losses(n, t)
        return 1.0 - lt - lc


TRAJECTORY_BASELINES = {"naive_sqrt": NaiveSqrtBaseline, "power_law": PowerLawBaseline,
                        "persistence": PersistenceBaseline}


# ---- fleet baseline: cycle life from early cycles (Severson et al. 2019) -------------------
CAPACITY_FEATURES = ("q2_ah", "qmax_minus_q2_ah", "fade_slope_ah_per_cycle",
                     "fade_intercept_ah", "qn_minus_q2_ah", "late_fade_slope_ah_per_cycle",
                     "log10_fade_rate", "log10_late_fade_rate", "log10_capacity_drop")
FADE_RATE_FLOOR = 1e-7  # Ah per cycle: floor under the log of a fade rate (no fade / gain)
CAPACITY_DROP_FLOOR = 1e-5  # Ah
DELTA_Q_FEATURES = ("log10_delta_q_v_variance", "log10_abs_delta_q_v_minimum",
                    "log10_abs_delta_q_v_mean", "delta_q_v_skewness")


def early_cycle_features(cycles: pd.DataFrame, *, n_cycles: int = 100) -> dict[str, float]:
    """Severson-style early-life features from one cell's first ``n_cycles`` cycles.

    Capacity features (Ah; cycles 2 … n): ``q2_ah`` (cycle-2 capacity), ``qmax_minus_q2_ah``,
    ``fade_slope_ah_per_cycle`` and ``fade_intercept_ah`` (linear fit over cycles 2 … n),
    ``qn_minus_q2_ah`` (median of the window's last 5 cycles minus cycle 2: robust to a
    single-cycle spike), ``late_fade_slope_ah_per_cycle`` (linear fit over the last 40 % of
    the window: captures acceleration), and the log10 of the fade rates and of the drop
    (−slope, −late slope in Ah/cycle floored at 1e-7; −(qn − q2) in Ah floored at 1e-5): life
    scales roughly as a power of the fade rate, so logs make it linear. ΔQ(V) features (when the table has ``delta_q_v_*``
    columns; the last row that has them, at or before cycle n): log10 variance (Ah²),
    log10 |minimum|, log10 |mean| (Ah) and skewness.
    """
    cyc = cycles["cycle_index"].to_numpy(dtype="float64")
    dq_row = None
    if "delta_q_v_variance_ah2" in cycles.columns:
        dq = cycles[(cycles["cycle_index"] <= n_cycles)
                    & cycles["delta_q_v_variance_ah2"].notna()]
        if len(dq):
            row = dq.iloc[-1]
            dq_row = tuple(float(row[c]) for c in _DELTA_Q_COLUMNS)
    return early_cycle_arrays(cyc, cycles["discharge_capacity_ah"].to_numpy(dtype="float64"),
                              dq_row, n_cycles=n_cycles)


#: the per-cycle ΔQ(V) summary columns behind DELTA_Q_FEATURES, in that order
_DELTA_Q_COLUMNS = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
                    "delta_q_v_skewness")


def early_cycle_arrays(cycle_index: np.ndarray, capacity_ah: np.ndarray,
                       delta_q_row: tuple[float, float, float, float] | None = None, *,
                       n_cycles: int = 100) -> dict[str, float]:
    """:func:`early_cycle_features` on arrays (the serving path: no DataFrame).

    ``cycle_index`` and ``capacity_ah`` (Ah) are one cell's rows in table order;
    ``delta_q_row`` the ΔQ(V) summaries (variance Ah², minimum Ah, mean Ah, skewness) of the
    row they come from, or None.
    """
    cycle_index = np.asarray(cycle_index, dtype="float64")
    window = (cycle_index >= 2) & (cycle_index <= n_cycles)
    n = cycle_index[window]
    q = np.asarray(capacity_ah, dtype="float64")[window]
    ok = np.isfinite(q)
    n, q = n[ok], q[ok]
    if n.size < 10:
        raise ValidationError("too few early cycles for cycle-life features",
                              code="too_few_cycles", column="discharge_capacity_ah",
                              expected=f">= 10 cycles in 2 … {n_cycles}", found=str(n.size))
    slope, intercept = np.polyfit(n, q, 1)
    late = n >= n_cycles - 0.4 * (n_cycles - 2)
    late_slope = np.polyfit(n[late], q[late], 1)[0] if late.sum() >= 3 else float("nan")
    q2 = float(q[0])
    out = {"q2_ah": q2, "qmax_minus_q2_ah": float(q.max()) - q2,
           "fade_slope_ah_per_cycle": float(slope), "fade_intercept_ah": float(intercept),
           "qn_minus_q2_ah": float(np.median(q[-5:])) - q2,
           "late_fade_slope_ah_per_cycle": float(late_slope)}
    out["log10_fade_rate"] = float(np.log10(max(-slope, FADE_RATE_FLOOR)))
    out["log10_late_fade_rate"] = float(np.log10(max(-late_slope, FADE_RATE_FLOOR)))
    out["log10_capacity_drop"] = float(np.log10(max(-out["qn_minus_q2_ah"],
                                                    CAPACITY_DROP_FLOOR)))
    if delta_q_row is not None:
        variance, minimum, mean, skewness = delta_q_row
        tiny = 1e-30
        out.update({
            "log10_delta_q_v_variance": float(np.log10(variance + tiny)),
            "log10_abs_delta_q_v_minimum": float(np.log10(abs(minimum) + tiny)),
            "log10_abs_delta_q_v_mean": float(np.log10(abs(mean) + tiny)),
            "delta_q_v_skewness": float(skewness)})
    return out


class ElasticNetCycleLife:
    """Elastic net on early-cycle features → cycles to end of life (log10 target).

    ``StandardScaler`` + ``ElasticNetCV`` (alpha and ``l1_ratios`` chosen by ``cv``-fold
    cross-validation over the training cells), as in Severson et al. 2019.

    Parameters
    ----------
    features:
        Column names of X to use (default: all columns of the X given to ``fit``).
    l1_ratios:
        Candidate L1 shares (1.0 = lasso; small = ridge-like).
    cv:
        Folds for the alpha / l1 choice.
    """

    def __init__(self, features: tuple[str, ...] | None = None,
                 l1_ratios: tuple[float, ...] = (0.01, 0.1, 0.5, 0.9, 1.0), cv: int = 5,
                 random_state: int = 0) -> None:
        self.features = features
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame, names: list[str]) -> np.ndarray:
        missing = [f for f in names if f not in X.columns]
        if missing:
            raise ValidationError("feature table lacks columns", code="missing_column",
                                  column=missing[0], expected=str(names),
                                  found=str(list(X.columns)))
        m = X[names].to_numpy(dtype="float64")
        if not np.isfinite(m).all():
            r, c = (int(v[0]) for v in np.nonzero(~np.isfinite(m)))
            raise ValidationError("non-finite feature value", code="bad_value", row=r + 1,
                                  column=names[c], expected="a finite float", found=str(m[r, c]))
        return m

    def fit(self, X: pd.DataFrame, y: Any) -> "ElasticNetCycleLife":
        """Fit on a feature table (one row per cell) and cycle lives ``y`` (cycles, > 0)."""
        names = list(self.features) if self.features is not None else list(X.columns)
        m = self._matrix(X, names)
        yv = np.asarray(y, dtype="float64")
        if yv.shape != (len(m),) or not (np.isfinite(yv) & (yv > 0)).all():
            raise ValidationError("cycle lives must be positive, one per row of X",
                                  code="bad_value", column="cycle_life",
                                  expected=f"{len(m)} positive numbers",
                                  found=f"shape {yv.shape}")
        if len(m) < max(self.cv, 3):
            raise ValidationError("too few cells to fit", code="too_few_cells",
                                  expected=f">= {max(self.cv, 3)}", found=str(len(m)))
        return self._fit(m, yv, names)

    def _fit(self, m: np.ndarray, y: np.ndarray, names: list[str]) -> "ElasticNetCycleLife":
        from sklearn.linear_model import ElasticNetCV
        from sklearn.model_selection import KFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        folds = KFold(self.cv, shuffle=True, random_state=self.random_state)
        self.pipeline_ = make_pipeline(StandardScaler(), ElasticNetCV(
            l1_ratio=list(self.l1_ratios), cv=folds, max_iter=100_000))
        self.pipeline_.fit(m, np.log10(y))
        self.feature_names_in_ = names
        net = self.pipeline_[-1]
        self.alpha_, self.l1_ratio_ = float(net.alpha_), float(net.l1_ratio_)
        self.coef_ = dict(zip(names, net.coef_.tolist()))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted cycle life (cycles) per row of X."""
        if not hasattr(self, "pipeline_"):
            raise FadecastError("ElasticNetCycleLife is not fitted; call fit first",
                                code="not_fitted")
        return 10.0 ** self.pipeline_.predict(self._matrix(X, self.feature_names_in_))
