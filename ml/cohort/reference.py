"""The reference the cohort model must beat: a plain joint least-squares fit over siblings.

``capacity_i(k) / Q_ref = c_i − a · √(hours) − b · (rate_i / 0.5)^β · N / 100`` with a per-cell
intercept ``c_i``, a shared ``a`` and a shared ``b``, ``β`` (no prior, no posterior, no rests
or temperature). Its time share at a cell's last observed cycle is ``a√t / (a√t + b …)``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from ml.cohort.histories import CellHistory

__all__ = ["reference_time_shares"]


def _terms(cell: CellHistory) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(cell.hours / 1000.0), cell.cycle_index / 100.0


def reference_time_shares(cells: list[CellHistory], reference_ah: float) -> dict[str, float]:
    """Joint least squares over ``cells``; time share at each cell's last observed cycle."""
    n = len(cells)
    rates = np.array([c.typical_c_rate for c in cells])

    def resid(x: np.ndarray) -> np.ndarray:
        a, b, beta = np.exp(x[n]), np.exp(x[n + 1]), x[n + 2]
        out = []
        for i, c in enumerate(cells):
            st, nc = _terms(c)
            f = x[i] - a * st - b * (rates[i] / 0.5) ** beta * nc
            out.append(c.capacity_ah / reference_ah - f)
        return np.concatenate(out)

    x0 = np.concatenate([[np.max(c.capacity_ah[:3]) / reference_ah for c in cells],
                         [np.log(0.05), np.log(0.03), 0.5]])
    x = least_squares(resid, x0, method="trf", max_nfev=400).x
    a, b, beta = np.exp(x[n]), np.exp(x[n + 1]), x[n + 2]
    out = {}
    for i, c in enumerate(cells):
        st, nc = _terms(c)
        lt = a * st[-1]
        lc = b * (rates[i] / 0.5) ** beta * nc[-1]
        out[c.cell_id] = float(lt / (lt + lc)) if lt + lc > 0 else 0.5
    return out
