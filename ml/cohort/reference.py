"""The reference the cohort model must beat: a plain joint least-squares fit over siblings.

``capacity_i(k) / Q_ref = c_i − a · √(hours / 1000) − b · (rate_i / 0.5)^β · N / 100`` with a
per-cell intercept ``c_i`` and shared ``a``, ``b``, ``β`` (no prior, no posterior, no rests
or temperature). Its time share at a cell's last observed cycle is ``a√t / (a√t + b …)``; a
planned sibling is forecast with the mean intercept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ml.cohort.histories import CellHistory

__all__ = ["ReferenceFit", "reference_fit", "reference_time_shares"]


def _terms(cell: CellHistory) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(cell.hours / 1000.0), cell.cycle_index / 100.0


@dataclass(frozen=True)
class ReferenceFit:
    """Fitted intercepts (by cell id) and the shared a, b, β."""

    intercepts: dict[str, float]
    a: float
    b: float
    beta: float

    def parts(self, cell: CellHistory) -> tuple[np.ndarray, np.ndarray]:
        """(time, cycle) loss fractions at every cycle of ``cell``."""
        st, nc = _terms(cell)
        return self.a * st, self.b * (cell.typical_c_rate / 0.5) ** self.beta * nc

    def predict(self, cell: CellHistory) -> np.ndarray:
        """Capacity fraction at every cycle (own intercept if fitted, else the mean)."""
        c = self.intercepts.get(cell.cell_id, float(np.mean(list(self.intercepts.values()))))
        lt, lc = self.parts(cell)
        return c - lt - lc


def reference_fit(cells: list[CellHistory], reference_ah: float) -> ReferenceFit:
    """Joint least squares over ``cells`` (capacities as fractions of ``reference_ah``)."""
    n = len(cells)
    rates = np.array([c.typical_c_rate for c in cells])
    terms = [_terms(c) for c in cells]
    ys = [c.capacity_ah / reference_ah for c in cells]

    def resid(x: np.ndarray) -> np.ndarray:
        a, b = np.exp(np.clip(x[n:n + 2], -30.0, 5.0))
        beta = float(np.clip(x[n + 2], -5.0, 5.0))
        return np.concatenate([y - (x[i] - a * st - b * (rates[i] / 0.5) ** beta * nc)
                               for i, (y, (st, nc)) in enumerate(zip(ys, terms))])

    x0 = np.concatenate([[np.max(y[:3]) for y in ys], [np.log(0.05), np.log(0.03), 0.5]])
    x = least_squares(resid, x0, method="trf", max_nfev=400).x
    a, b = np.exp(np.clip(x[n:n + 2], -30.0, 5.0))
    return ReferenceFit({c.cell_id: float(x[i]) for i, c in enumerate(cells)},
                        float(a), float(b), float(np.clip(x[n + 2], -5.0, 5.0)))


def reference_time_shares(cells: list[CellHistory], reference_ah: float) -> dict[str, float]:
    """The reference's time share at each cell's last observed cycle."""
    fit = reference_fit(cells, reference_ah)
    out = {}
    for c in cells:
        lt, lc = fit.parts(c)
        out[c.cell_id] = float(lt[-1] / (lt[-1] + lc[-1])) if lt[-1] + lc[-1] > 0 else 0.5
    return out
