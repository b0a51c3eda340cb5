"""Error figures (pure numpy). Inputs are array-likes of one length; NaN pairs are an error,
not silently dropped, so a figure always says how many points it covers."""
from __future__ import annotations

from typing import Any

import numpy as np

from data_registry.errors import ValidationError

__all__ = ["mape", "rmse", "mae", "interval_coverage", "mean_interval_width",
           "time_share_errors", "pinball_loss", "summary_quantiles"]


def _pair(a: Any, b: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype="float64").ravel()
    y = np.asarray(b, dtype="float64").ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValidationError(f"{name}: inputs must be non-empty and of one length",
                              code="shape_mismatch", expected=f"{x.size} values",
                              found=f"{y.size} values")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValidationError(f"{name}: non-finite values", code="bad_value",
                              expected="finite floats", found="NaN or inf")
    return x, y


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, in % of |y_true| (y_true must be non-zero)."""
    t, p = _pair(y_true, y_pred, "mape")
    if (t == 0).any():
        raise ValidationError("mape: y_true contains zeros", code="bad_value",
                              expected="non-zero true values", found="0")
    return float(np.mean(np.abs(p - t) / np.abs(t)) * 100.0)


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root-mean-square error, in the units of y."""
    t, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in the units of y."""
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(p - t)))


def interval_coverage(y_true: Any, lower: Any, upper: Any) -> float:
    """Fraction (0–1) of y_true inside the closed interval [lower, upper]."""
    t, lo = _pair(y_true, lower, "interval_coverage")
    _, hi = _pair(y_true, upper, "interval_coverage")
    if (hi < lo).any():
        raise ValidationError("interval_coverage: upper below lower", code="bad_value",
                              expected="lower <= upper", found="a crossed interval")
    return float(np.mean((t >= lo) & (t <= hi)))


def mean_interval_width(lower: Any, upper: Any) -> float:
    """Mean of upper − lower, in the units of y."""
    lo, hi = _pair(lower, upper, "mean_interval_width")
    return float(np.mean(hi - lo))


def time_share_errors(predicted: Any, true: Any) -> np.ndarray:
    """Absolute time-share errors |predicted − true| (shares in [0, 1]), one per cell."""
    p, t = _pair(predicted, true, "time_share_errors")
    return np.abs(p - t)


def pinball_loss(y_true: Any, y_quantile: Any, level: float) -> float:
    """Mean pinball (quantile) loss of a ``level``-quantile forecast, in the units of y.

    ``max(level·(y − q), (level − 1)·(y − q))``; minimised by the true ``level`` quantile.
    """
    if not 0.0 < level < 1.0:
        raise ValidationError("pinball_loss: level must lie in (0, 1)", code="bad_value",
                              column="level", expected="a float in (0, 1)", found=str(level))
    t, q = _pair(y_true, y_quantile, "pinball_loss")
    d = t - q
    return float(np.mean(np.maximum(level * d, (level - 1.0) * d)))


def summary_quantiles(values: Any, levels: tuple[float, ...] = (0.5, 0.9)) -> dict[str, float]:
    """``{"p50": …, "p90": …}`` of the values (linear interpolation between order statistics)."""
    v = np.asarray(values, dtype="float64").ravel()
    return {f"p{round(lv * 100):d}": float(np.quantile(v, lv)) for lv in levels}
