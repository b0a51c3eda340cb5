"""The four ΔQ(V) summaries of Severson et al. 2019 from two Q(V) curves on one voltage grid.

ΔQ(V) = Q_cycle(V) − Q_ref(V), e.g. Q_100 − Q_10 over the discharge. Names follow CONTRACTS:
``delta_q_v_variance_ah2``, ``delta_q_v_minimum_ah``, ``delta_q_v_mean_ah``,
``delta_q_v_skewness``. Pure numpy; no file access.
"""
from __future__ import annotations

import numpy as np

from data_registry.errors import ValidationError

SUMMARY_COLUMNS = ("delta_q_v_variance_ah2", "delta_q_v_minimum_ah", "delta_q_v_mean_ah",
                   "delta_q_v_skewness")


def delta_q_summaries(q_cycle_ah: np.ndarray, q_ref_ah: np.ndarray) -> dict[str, float]:
    """Variance (Ah², population, ddof=0), minimum (Ah), mean (Ah) and skewness (biased,
    dimensionless; 0 for a constant difference) of ΔQ(V) = ``q_cycle_ah`` − ``q_ref_ah``.

    Both arrays hold discharge capacity (Ah) on the SAME voltage grid; NaN points are skipped.
    """
    a = np.asarray(q_cycle_ah, dtype="float64")
    b = np.asarray(q_ref_ah, dtype="float64")
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError("Q(V) curves must be 1-D and on the same grid",
                              code="shape_mismatch", expected=f"two arrays of shape {b.shape}",
                              found=str(a.shape))
    d = a - b
    d = d[~np.isnan(d)]
    if d.size < 3:
        raise ValidationError("too few voltage points for ΔQ(V) summaries",
                              code="too_few_points", expected=">= 3 non-NaN points",
                              found=str(d.size))
    mean = float(d.mean())
    var = float(d.var())
    # a spread below float noise of the values is no spread: skewness is then undefined -> 0
    spread = var > (1e-9 * float(np.abs(d).max())) ** 2
    skew = float(np.mean((d - mean) ** 3) / var**1.5) if spread else 0.0
    return {"delta_q_v_variance_ah2": var, "delta_q_v_minimum_ah": float(d.min()),
            "delta_q_v_mean_ah": mean, "delta_q_v_skewness": skew}
