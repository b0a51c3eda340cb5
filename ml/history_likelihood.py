"""Weigh the model's posterior samples by how well each one backcasts the cell's recent history.

The network proposes K samples of a cell's fade law (exponents, knee, time share) from what its
training taught it; each sample's fresh capacity and loss are already fitted to the history in
the graph. On a cell unlike the training cells (a source the network never saw) the proposed
SHAPES can be wrong while every sample still matches the history's level. The samples'
backcasts over the recent history tell them apart: a shape that bends the wrong way misses the
latest cycles. This module turns that evidence into weights and resamples:

* backcast rows: the later half of the rows the model reads (``ml.windows.subsample_indices``);
  the early rows pin the level, the recent ones judge the shape about to be extrapolated;
* log-likelihood of sample k: ``-0.5 · τ · n · log(mse_k + ε)`` — the Gaussian profile
  likelihood of its backcast residuals, TEMPERED by ``τ`` because residuals of neighbouring
  cycles are correlated (n rows carry far fewer than n independent errors);
* systematic resampling at fixed positions ``(j + 0.5) / K`` (deterministic) gives the weighted
  median; the samples are MOVED to it, keeping their own spread (:func:`weigh_samples`), so
  every later step (quantiles, the band's floor and anchor, the conformal scale) is unchanged.

``τ`` is chosen per model on its CALIBRATION cells (``ml.training.calibration``; never the
cells that pick epochs or champions, never evaluation cells) and stored in the model card as
``history_weighting``; a card without it (τ = 0) serves its samples unweighted.
The calibration search's errors per τ are stored beside it in the card.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ml.windows import subsample_indices

__all__ = ["TEMPERING_GRID", "MIN_BACKCAST_ROWS", "backcast_indices", "sample_log_likelihood",
           "resample_indices", "effective_samples", "weigh_samples", "median_shift"]

#: candidate tempering values searched on the calibration cells (0 = samples unweighted)
TEMPERING_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
#: fewer finite backcast rows than this: no weighting (too little evidence on the shape)
MIN_BACKCAST_ROWS = 3
_EPS = 1e-8  # (retention units)² added to a sample's mean squared backcast error


def backcast_indices(n_rows: int, max_history: int) -> np.ndarray:
    """Row indices (into a history of ``n_rows`` per-cycle rows) whose backcast judges the
    samples: the later half of the rows the model reads."""
    idx = subsample_indices(int(n_rows), int(max_history))
    return idx[len(idx) // 2:]


def sample_log_likelihood(backcast: np.ndarray, retention: np.ndarray,
                          tempering: float) -> np.ndarray:
    """Tempered log-likelihood [K] of each sample's ``backcast`` [R, K] (retention, fraction of
    the reference) against the observed ``retention`` [R]; zeros when ``tempering`` is 0 or
    fewer than :data:`MIN_BACKCAST_ROWS` rows are finite."""
    back = np.asarray(backcast, dtype=np.float64)
    r = np.asarray(retention, dtype=np.float64)
    ok = np.isfinite(r) & np.all(np.isfinite(back), axis=-1)
    k = back.shape[-1]
    n = int(ok.sum())
    if tempering <= 0.0 or n < MIN_BACKCAST_ROWS:
        return np.zeros(k)
    mse = np.mean((back[ok] - r[ok, None]) ** 2, axis=0)
    return -0.5 * float(tempering) * n * np.log(mse + _EPS)


def resample_indices(log_weights: np.ndarray) -> np.ndarray:
    """K sample indices drawn by systematic resampling at positions ``(j + 0.5) / K`` from the
    normalised weights ``exp(log_weights)`` (equal weights give ``0 … K−1`` back)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    k = lw.size
    w = np.exp(lw - lw.max())
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, (np.arange(k) + 0.5) / k), k - 1)


def effective_samples(log_weights: np.ndarray) -> float:
    """Kish effective sample size of the weights (K when equal, 1 when one sample dominates)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / np.sum(w * w))


def weigh_samples(samples: Mapping[str, np.ndarray], backcast: np.ndarray,
                  retention: np.ndarray, tempering: float
                  ) -> tuple[dict[str, np.ndarray], float]:
    """Move every array of ``samples`` (each [..., K], samples on the LAST axis) so its median
    is the median of the samples resampled by the likelihood of ``backcast`` [R, K] against
    ``retention`` [R]; the spread stays the unweighted samples' own.

    Why not serve the resampled samples themselves: with a few effective samples left their
    spread collapses, and the band would rest on the conformal scale alone (measured on the
    calibration cells: the pooled scale rose from 0.08 to 0.93, per source from −0.32 to
    3.06). The weighting carries evidence about the CENTRE (which shape the recent history
    supports); the ensemble's spread stays the honest part of the width. Arrays without
    negative values stay non-negative (they are fractions).

    Returns the moved arrays (same shapes) and the effective number of samples behind the
    weighted median (K when nothing was weighted).
    """
    lw = sample_log_likelihood(backcast, retention, tempering)
    if not np.any(lw):
        return dict(samples), float(lw.size)
    out = {}
    for name, values in samples.items():
        a = np.asarray(values)
        moved = a + median_shift(a, lw)[..., None]
        out[name] = np.maximum(moved, 0.0) if np.all(a >= 0) else moved
    ess = effective_samples(lw)
    return out, ess if math.isfinite(ess) else 1.0


def median_shift(samples: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """Weighted minus unweighted median of ``samples`` [..., K] (weights ``exp(log_weights)``
    [K], by systematic resampling); shape [...]."""
    a = np.asarray(samples)
    return (np.median(np.take(a, resample_indices(log_weights), axis=-1), axis=-1)
            - np.median(a, axis=-1))
