"""Calibration: THE one implementation of the split-conformal quantiles (plain, weighted per
source and cell, by cell), reliability curves and interval scores. ``ml.training.calibration``
gathers a model's scores on calibration cells and calls these; ``ml.evaluation.trajectory``
calibrates the baselines' bands with the same functions.

Split conformal (Vovk; Romano et al. 2019 for the quantile-regression score): compute a
nonconformity score on calibration data the model never saw, take its
⌈(n + 1)(1 − α)⌉-th smallest value q̂, and widen every future band by q̂. Points of one cell
are not exchangeable with each other, so :func:`split_conformal_by_cell` reduces each
calibration cell to ONE score (a within-cell quantile, by default the median point score; the
max gives whole-trajectory coverage) before taking the conformal quantile over cells.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError

__all__ = ["reliability_curve", "conformal_quantile", "weighted_conformal_quantile",
           "interval_scores", "split_conformal_by_cell", "source_cell_weights",
           "cell_bootstrap_coverage"]


def reliability_curve(y_true: Any, quantiles: Mapping[float, Any]) -> pd.DataFrame:
    """Observed frequency of ``y_true <= forecast quantile`` for each nominal level.

    Returns a DataFrame with ``level``, ``observed`` (0–1) and ``n``; a calibrated forecast
    has observed ≈ level.
    """
    y = np.asarray(y_true, dtype="float64").ravel()
    rows = []
    for level in sorted(quantiles):
        q = np.asarray(quantiles[level], dtype="float64").ravel()
        if q.shape != y.shape:
            raise ValidationError("reliability_curve: quantile array of the wrong length",
                                  code="shape_mismatch", column=f"level {level}",
                                  expected=f"{y.size} values", found=f"{q.size} values")
        rows.append({"level": float(level), "observed": float(np.mean(y <= q)), "n": y.size})
    return pd.DataFrame(rows)


def conformal_quantile(scores: Any, alpha: float) -> float:
    """The split-conformal constant: the ⌈(n + 1)(1 − α)⌉-th smallest score (inf if n too small).

    With exchangeable scores, a new score is ≤ this value with probability ≥ 1 − α.
    """
    s = np.sort(np.asarray(scores, dtype="float64").ravel())
    if not 0.0 < alpha < 1.0:
        raise ValidationError("alpha must lie in (0, 1)", code="bad_value", column="alpha",
                              expected="a float in (0, 1)", found=str(alpha))
    if s.size == 0 or not np.isfinite(s).all():
        raise ValidationError("conformal scores must be finite and non-empty", code="bad_value",
                              expected="finite scores", found=f"{s.size} values")
    k = math.ceil((s.size + 1) * (1.0 - alpha))
    return float(s[k - 1]) if k <= s.size else float("inf")


def interval_scores(y_true: Any, lower: Any, upper: Any) -> np.ndarray:
    """Conformalized-quantile-regression scores max(lower − y, y − upper) (negative inside)."""
    y = np.asarray(y_true, dtype="float64")
    return np.maximum(np.asarray(lower, dtype="float64") - y, y - np.asarray(upper, "float64"))


def split_conformal_by_cell(cell_ids: Any, scores: Any, alpha: float = 0.1, *,
                            within_cell: float | str = 0.5) -> float:
    """Split-conformal constant with the CELL as the exchangeable unit.

    Parameters
    ----------
    cell_ids, scores:
        One calibration cell id and one nonconformity score per point (e.g.
        :func:`interval_scores`, or |error| / scale).
    alpha:
        Miscoverage: 0.1 for a 90 % band.
    within_cell:
        How a cell's points become one score: a quantile level in [0, 1] (0.5 = median point
        score: about 1 − α of cells get at least half their points covered) or ``"max"``
        (every point of 1 − α of the cells covered).

    Returns
    -------
    float
        Add it to each side of the band (it may be negative: the band then shrinks).
    """
    frame = pd.DataFrame({"cell": np.asarray(cell_ids).ravel(),
                          "score": np.asarray(scores, dtype="float64").ravel()})
    grouped = frame.groupby("cell", sort=True)["score"]
    per_cell = grouped.max() if within_cell == "max" else grouped.quantile(float(within_cell))
    return conformal_quantile(per_cell.to_numpy(), alpha)


def source_cell_weights(cell: Any, group: Any) -> np.ndarray:
    """Weight of each point so every ``group`` (source) weighs the same and, inside a group,
    every ``cell`` the same: ``1 / (n_groups · n_cells_of_group · n_points_of_cell)``."""
    cell, group = np.asarray(cell).ravel(), np.asarray(group).ravel()
    w = np.zeros(cell.size)
    groups = np.unique(group)
    for g in groups:
        in_g = group == g
        cells = np.unique(cell[in_g])
        for c in cells:
            m = in_g & (cell == c)
            w[m] = 1.0 / (len(groups) * len(cells) * m.sum())
    return w


def weighted_conformal_quantile(scores: Any, cell: Any, group: Any, alpha: float) -> float:
    """The smallest score whose cumulative weight reaches ``1 − alpha``, each ``group``
    (source) weighing the same and, inside a group, each ``cell`` the same (a point weighs
    ``1 / (n_groups · n_cells_of_group · n_points_of_cell)``)."""
    s = np.asarray(scores, dtype="float64").ravel()
    cell, group = np.asarray(cell).ravel(), np.asarray(group).ravel()
    if s.size == 0:
        raise ValidationError("conformal scores must be non-empty", code="bad_value",
                              expected="scores", found="0 values")
    w = source_cell_weights(cell, group)
    order = np.argsort(s, kind="stable")
    cum = np.cumsum(w[order])
    k = min(int(np.searchsorted(cum, (1 - alpha) * cum[-1] - 1e-12)), s.size - 1)
    return float(s[order][k])


def cell_bootstrap_coverage(cell_ids: Any, inside: Any, *, n_boot: int = 2000,
                            level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval (%) of the POOLED point coverage when whole cells are resampled.

    Points of one cell are not independent (a cell whose median is off misses most of its
    future), so the sampling uncertainty of a source's coverage is that of its cells: draw as
    many cells as there are, with replacement, and pool their points (``n_boot`` draws, fixed
    ``seed``). ``inside`` holds one bool per point. Returns ``(low, high)`` in percent,
    ``(nan, nan)`` without points. With 3 cells only 10 distinct draws exist: read the
    interval as a lower bound of the uncertainty.
    """
    cell = np.asarray(cell_ids).ravel()
    hit = np.asarray(inside, dtype=bool).ravel()
    if cell.size != hit.size:
        raise ValidationError("cell_bootstrap_coverage: one cell id per point",
                              code="shape_mismatch", column="cell_ids",
                              expected=f"{hit.size} values", found=f"{cell.size} values")
    if not 0.0 < level < 1.0:
        raise ValidationError("level must lie in (0, 1)", code="bad_value", column="level",
                              expected="a float in (0, 1)", found=str(level))
    if hit.size == 0:
        return float("nan"), float("nan")
    ids, idx = np.unique(cell, return_inverse=True)
    covered = np.bincount(idx, weights=hit.astype(float), minlength=ids.size)
    points = np.bincount(idx, minlength=ids.size).astype(float)
    draws = np.random.default_rng(seed).integers(0, ids.size, size=(int(n_boot), ids.size))
    pooled = 100.0 * covered[draws].sum(axis=1) / points[draws].sum(axis=1)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(pooled, [tail, 100.0 - tail])
    return float(low), float(high)
